"""User architectures: ``--model package.module:factory`` or ``path/to/file.py:factory`` (their code, their trust)."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from nc_audit.core.errors import InputError


@contextmanager
def _on_sys_path(folder: str) -> Iterator[None]:
    """Put folder first on sys.path while a user's module is imported (its own imports need it)."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)


def _import_user_module(target: str, spec: str) -> ModuleType:
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise InputError(f"--model {spec}: file {target} does not exist")
        module_name = "nc_audit_user_" + re.sub(r"\W", "_", str(path))
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise InputError(f"--model {spec}: cannot import {target} as a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            with _on_sys_path(str(path.parent)):
                module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]  # leave no half-imported module behind
            raise
        return module
    with _on_sys_path(str(Path.cwd())):
        return importlib.import_module(target)


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """The user's model factory named by ``package.module:factory`` or ``path/to/file.py:factory``.

    Imports the user's code (their trust). The returned callable builds the model; a factory that fails
    or returns something other than an nn.Module raises InputError, as do bad specs and failed imports.
    """
    target, _, attribute = spec.rpartition(":")
    if not target or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", attribute):
        raise InputError(f"--model {spec!r}: expected package.module:factory or path/to/file.py:factory")
    try:
        module = _import_user_module(target, spec)
    except InputError:
        raise
    except Exception as error:  # user code may raise anything while importing
        raise InputError(
            f"--model {spec}: importing {target} failed: {type(error).__name__}: {error}"
        ) from None
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise InputError(f"--model {spec}: {target} has no attribute {attribute!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise InputError(f"--model {spec}: {attribute} is a {type(factory).__name__}, not a callable")

    def build() -> nn.Module:
        try:
            model = factory()
        except Exception as error:  # user code
            raise InputError(f"--model {spec}: the factory raised {type(error).__name__}: {error}") from None
        if not isinstance(model, nn.Module):
            raise InputError(
                f"--model {spec}: the factory returned a {type(model).__name__}, not an nn.Module"
            )
        return model

    return build
