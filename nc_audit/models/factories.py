"""Model factories: ``--model package.module:factory`` or ``path/to/file.py:factory`` named by the user
(their code, their trust), with arguments from ``--model-arg KEY=VALUE`` (VALUE read as JSON, else as a
string); and the ``factory`` architecture record a checkpoint carries, which is data, never a path into
Python.

When the callable takes ``num_classes`` or ``num_labels`` (by name, or through ``**kwargs`` as
``timm.create_model`` does) and no argument gives it, it is set to the checkpoint's number of classes,
so ``torchvision.models:resnet18`` and ``timm:create_model --model-arg model_name=resnet10t`` build a
model whose head fits the checkpoint.

**The rule for a recorded factory** (:mod:`nc_audit.models.factory_rule`): a checkpoint written by
``finetune`` records its callable and arguments, and in CI the checkpoint comes from a pull request.
nc-audit builds a recorded callable by itself only when it resolves, without following any dotted
attribute chain (one public name, read from the module's own namespace, no ``getattr``) and without the
working folder or any input's folder on ``sys.path``, to a model constructor of ``torch.nn`` (an
``nn.Module`` class), ``torchvision.models`` (a listed builder or ``nn.Module`` class) or ``timm``
(``create_model``), imported from the installed distribution's own files in site-packages
(:mod:`nc_audit.models.trusted_import`); and only with plain arguments (numbers, name-like strings,
bools, short lists of them; no key that downloads, trusts remote code, names a file or a device). It
is then built on the meta device and checked against the checkpoint's tensors before any real
allocation (:mod:`nc_audit.models.loading`). Anything else needs ``--model MODULE:CALLABLE`` (exit 2,
one line saying so); the recorded arguments given to a user's ``--model`` (when no ``--model-arg`` is
given) pass through the same argument rule, and a note says what it dropped. Modules of the model
libraries (torch, torchvision, timm, transformers) named by ``--model`` are imported from their
installed files too; only the user's own modules are looked up in the working folder.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from nc_audit.core.errors import InputError, first_line
from nc_audit.models.factory_rule import RecordRefusedError, check_args, resolve_recorded
from nc_audit.models.spec import parse_model_args  # noqa: F401 - where callers import it from
from nc_audit.models.trusted_import import DISTRIBUTIONS, import_installed, only_installed_path

#: Keyword names a callable may take the number of classes under, in order of preference.
CLASS_COUNT_NAMES = ("num_classes", "num_labels")


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
    if target.partition(".")[0] in DISTRIBUTIONS:  # a model library: its installed files, never ./timm.py
        return import_installed(target)
    with _on_sys_path(str(Path.cwd())):
        return importlib.import_module(target)


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
    """A model callable with its arguments; calling it builds the module. ``label`` is how messages name
    it: ``--model SPEC`` when the user named it, the checkpoint's recorded factory otherwise."""

    spec: str
    factory: Callable[..., Any]
    args: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. the number of classes it was given
    label: str = ""
    installed_only: bool = False  # a recorded constructor: built with sys.path reduced to site-packages

    def __post_init__(self) -> None:
        self.label = self.label or f"--model {self.spec}"

    def __call__(self, num_classes: int | None = None) -> nn.Module:
        """Build the model; ``num_classes`` (the checkpoint's) fills num_classes/num_labels when the
        callable takes it and the arguments do not give it."""
        args = dict(self.args)
        name, through_kwargs = _class_count_name(self.factory)
        injected = None
        if num_classes is not None and name is not None and not any(k in args for k in CLASS_COUNT_NAMES):
            args[name] = injected = num_classes
        try:
            with only_installed_path() if self.installed_only else contextlib.nullcontext():
                model = self.factory(**args)
        except TypeError as error:
            if injected is None or name is None or not through_kwargs or name not in str(error):
                raise self._failed(error) from None
            args.pop(name)  # **kwargs did not accept it after all: build as asked
            injected = None
            try:
                with only_installed_path() if self.installed_only else contextlib.nullcontext():
                    model = self.factory(**args)
            except Exception as retry_error:  # user code
                raise self._failed(retry_error) from None
        except Exception as error:  # user code may raise anything
            raise self._failed(error) from None
        if not isinstance(model, nn.Module):
            raise InputError(f"{self.label}: the factory returned a {type(model).__name__}, not an nn.Module")
        if injected is not None and not any(f"{name}={injected}" in note for note in self.notes):
            self.notes.append(f"{self.label}: {name}={injected} taken from the checkpoint's head")
        return model

    def _failed(self, error: Exception) -> InputError:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        called = f" with {shown}" if shown else ""
        message = first_line(error)
        return InputError(f"{self.label}: the factory raised {type(error).__name__}: {message}{called}")

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

    Imports the user's code (their trust); a module of a model library comes from its installed files
    only. Calling the result builds the model; a factory that fails or returns something other than an
    nn.Module raises InputError, as do bad specs and failed imports.
    """
    target, _, attribute = spec.rpartition(":")
    if not target or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", attribute):
        raise InputError(f"--model {spec!r}: expected package.module:factory or path/to/file.py:factory")
    try:
        module = _import_user_module(target, spec)
    except InputError as error:
        if str(error).startswith("--model"):
            raise
        raise InputError(f"--model {spec}: {error}") from None
    except Exception as error:  # user code may raise anything while importing
        raise InputError(
            f"--model {spec}: importing {target} failed: {type(error).__name__}: {first_line(error)}"
        ) from None
    factory: Any = module
    for part in attribute.split("."):  # the user's own word: a chain they wrote
        if not hasattr(factory, part):
            raise InputError(f"--model {spec}: {target} has no attribute {attribute!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise InputError(f"--model {spec}: {attribute} is a {type(factory).__name__}, not a callable")
    return ModelFactory(spec, factory, dict(args or {}))


def recorded_label(source: str, spec: object) -> str:
    """How messages name a factory the checkpoint recorded (never as a --model the user did not give)."""
    shown = spec if isinstance(spec, str) and len(spec) <= 200 else type(spec).__name__
    return f"{source}: the checkpoint's recorded factory {shown}"


def factory_from_record(record: dict[str, Any], source: str) -> ModelFactory:
    """The factory a ``factory`` record names, if nc-audit may build it on the file's word (the rule of
    the module docstring); otherwise an InputError, naming ``source``, that says to pass ``--model``."""
    config = record.get("config")
    config = config if isinstance(config, dict) else {}
    spec, args = config.get("callable"), config.get("args", {})
    label = recorded_label(source, spec)
    try:
        factory = resolve_recorded(spec)
        checked = check_args(args)
        if checked.refused:
            raise RecordRefusedError(f"arguments not passed on a file's word: {', '.join(checked.refused)}")
    except RecordRefusedError as why:
        raise InputError(
            f"{label} is not built on the file's word ({why}); nc-audit runs no code a file names: pass "
            "--model MODULE:CALLABLE naming a model constructor you trust (your code, your trust)"
        ) from None
    except InputError as error:  # the library is shadowed, or installed oddly
        raise InputError(f"{label} is not built ({error}); pass --model MODULE:CALLABLE") from None
    # resolve_recorded accepted spec, so it is a MODULE:NAME str
    built = ModelFactory(str(spec), factory, checked.kept, label=label, installed_only=True)
    if checked.dropped:
        built.notes.append(
            f"{label}: dropped the argument(s) {', '.join(checked.dropped)} (they ask for nothing)"
        )
    return built
