"""User architectures: ``--model package.module:factory`` or ``path/to/file.py:factory`` (their code, their
trust), with arguments from ``--model-arg KEY=VALUE`` (VALUE read as JSON, else as a string).

When the callable takes ``num_classes`` or ``num_labels`` (by name, or through ``**kwargs`` as
``timm.create_model`` does) and no argument gives it, it is set to the checkpoint's number of classes,
so ``torchvision.models:resnet18`` and ``timm:create_model --model-arg model_name=resnet10t`` build a
model whose head fits the checkpoint.

A checkpoint written by ``finetune`` records the callable and its arguments (a ``factory``
architecture record). Calling what a file names is running code on a file's word, and in CI the file
comes from a pull request, so a recorded callable is called by itself only from the model libraries of
:data:`TRUSTED_FACTORY_MODULES` (torchvision.models, timm, transformers, torch.nn), never from a
``.py`` path, and never with arguments that download weights or run remote code. Any other recorded
callable needs the user to name it: ``--model MODULE:CALLABLE`` (its recorded arguments are then used
when no ``--model-arg`` is given).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from nc_audit.core.errors import InputError

#: Keyword names a callable may take the number of classes under, in order of preference.
CLASS_COUNT_NAMES = ("num_classes", "num_labels")
#: Top-level modules a recorded callable may not come from (they load pickles, run code or fetch it).
#: Packages whose recorded model factories nc-audit calls without being told to (their own model zoos).
TRUSTED_FACTORY_MODULES = ("torchvision.models", "timm", "transformers", "torch.nn")
#: Arguments that would fetch weights or code from the network (nc-audit never downloads at run time).
_NETWORK_ARGS = frozenset(
    {
        "pretrained",
        "weights",
        "trust_remote_code",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "checkpoint_path",
    }
)


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


def parse_model_args(items: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """``--model-arg KEY=VALUE`` items as keyword arguments: VALUE is read as JSON (``10``, ``true``,
    ``[64, 64]``, ``{"a": 1}``), else kept as the string it is (``resnet10t``)."""
    args: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputError(f"--model-arg {item!r}: expected KEY=VALUE with KEY a Python identifier")
        if key in args:
            raise InputError(f"--model-arg {key} is given twice")
        try:
            args[key] = json.loads(text)
        except json.JSONDecodeError:
            args[key] = text
    return args


def _class_count_name(factory: Callable[..., Any]) -> tuple[str | None, bool]:
    """(the keyword taking the number of classes, whether only through **kwargs), or (None, False)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins and C extensions have no signature
        return None, False
    for name in CLASS_COUNT_NAMES:
        if name in parameters:
            return name, False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return CLASS_COUNT_NAMES[0], True
    return None, False


@dataclass
class ModelFactory:
    """A user's model callable with its arguments; calling it builds the module (their code)."""

    spec: str
    factory: Callable[..., Any]
    args: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. the number of classes it was given

    def __call__(self, num_classes: int | None = None) -> nn.Module:
        """Build the model; ``num_classes`` (the checkpoint's) fills num_classes/num_labels when the
        callable takes it and the arguments do not give it."""
        args = dict(self.args)
        name, through_kwargs = _class_count_name(self.factory)
        injected = None
        if num_classes is not None and name is not None and not any(k in args for k in CLASS_COUNT_NAMES):
            args[name] = injected = num_classes
        try:
            model = self.factory(**args)
        except TypeError as error:
            if injected is None or not through_kwargs or name not in str(error):
                raise self._failed(error) from None
            args.pop(name)  # **kwargs did not accept it after all: build as asked
            injected = None
            try:
                model = self.factory(**args)
            except Exception as retry_error:  # user code
                raise self._failed(retry_error) from None
        except Exception as error:  # user code may raise anything
            raise self._failed(error) from None
        if not isinstance(model, nn.Module):
            raise InputError(
                f"--model {self.spec}: the factory returned a {type(model).__name__}, not an nn.Module"
            )
        if injected is not None:
            self.notes.append(f"--model {self.spec}: {name}={injected} taken from the checkpoint's head")
        return model

    def _failed(self, error: Exception) -> InputError:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        called = f" with {shown}" if shown else ""
        return InputError(f"--model {self.spec}: the factory raised {type(error).__name__}: {error}{called}")

    def record(self, num_classes: int, head: str) -> dict[str, Any]:
        """The ``factory`` architecture record (nc-audit-arch/1) a checkpoint stores to be rebuilt."""
        spec = self.spec
        target, _, attribute = spec.rpartition(":")
        if target.endswith(".py"):  # a file: record where it is, so another folder finds it
            spec = f"{Path(target).expanduser().resolve()}:{attribute}"
        return {
            "format": "nc-audit-arch/1",
            "name": "factory",
            "config": {"callable": spec, "args": self.args},
            "num_classes": num_classes,
            "head": head,
        }


def load_factory(spec: str, args: dict[str, Any] | None = None) -> ModelFactory:
    """The user's model factory named by ``package.module:factory`` or ``path/to/file.py:factory``.

    Imports the user's code (their trust). Calling the result builds the model; a factory that fails
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
    return ModelFactory(spec, factory, dict(args or {}))


def trusted_record(spec: str, args: dict[str, Any]) -> str | None:
    """Why nc-audit will not call the recorded ``spec`` with ``args`` by itself, or None when it will."""
    target, _, attribute = spec.rpartition(":")
    if target.endswith(".py") or "/" in target:
        return "a Python file named by the checkpoint"
    if not any(target == module or target.startswith(module + ".") for module in TRUSTED_FACTORY_MODULES):
        return f"not from {', '.join(TRUSTED_FACTORY_MODULES)}"
    if "from_pretrained" in attribute:
        return "a from_pretrained loader"
    network = sorted(key for key, value in args.items() if key in _NETWORK_ARGS and value)
    if network:
        return f"arguments that fetch weights or code ({', '.join(network)})"
    return None


def factory_from_record(record: dict[str, Any], source: str) -> ModelFactory:
    """The factory a ``factory`` record names, if nc-audit may call it on the file's word (see the module
    docstring); otherwise an InputError that says to pass ``--model``."""
    config = record.get("config") or {}
    spec, args = config.get("callable"), config.get("args") or {}
    if not isinstance(spec, str) or not isinstance(args, dict):
        raise InputError(f"{source}: the factory record is malformed (expected a callable and its args)")
    why = trusted_record(spec, args)
    if why is not None:
        raise InputError(
            f"{source}: the checkpoint names the model factory {spec} ({why}); nc-audit does not run code "
            f"on a file's word: pass --model {spec} to run it (your code, your trust)"
        )
    try:
        return load_factory(spec, args)
    except InputError as error:
        raise InputError(
            f"{source}: rebuilding the recorded model failed ({error}); pass --model MODULE:CALLABLE"
        ) from None
