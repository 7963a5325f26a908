"""The rule that decides whether a checkpoint's recorded factory is built without the user naming it.

A ``factory`` architecture record (``{"callable": "MODULE:NAME", "args": {...}}``, in a ``.pt`` or in
safetensors metadata) is data from a file, and in CI the file comes from a pull request. It is built by
nc-audit on its own only when all of this holds (otherwise ``--model`` is required):

- MODULE is exactly one of :data:`RECORDABLE` (``torch.nn``, ``torchvision.models``, ``timm``) and NAME
  is one public name (no dots: no attribute chain is followed, no leading underscore);
- the module is imported from its installed distribution's own files in site-packages, with neither the
  working folder nor any input's folder searched (:mod:`nc_audit.models.trusted_import`);
- NAME is read from the module's own namespace (no ``getattr``, so no lazy-module hook runs) and is a
  model constructor: an ``nn.Module`` subclass defined in ``torch.nn`` or ``torchvision.models``, one of
  ``torchvision.models.list_models()``'s builders, or ``timm.create_model``;
- every argument is plain data (:func:`check_args`): a number, a short name-like string (letters,
  digits, ``_ . + -``: no path, URL or ``hub:`` prefix) or a bool, or a short list of those, with counts
  of layers, blocks and heads bounded; no key that downloads, trusts code, names a file or a device
  (``pretrained*``, ``weights*``, ``*remote_code*``, ``*_path``, ``*_file``, ``*_dir``, ``*_url``,
  ``cache_dir``, ``checkpoint_path``, ``token``, ``revision``, ``device``, ``dtype``, ...); such a key
  whose value asks for nothing (false, null, empty) is dropped.

A user-named ``--model`` is the user's code and trust, but the recorded arguments it is given (when no
``--model-arg`` is) pass through the same argument rule, what it drops being said in a note.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from torch import nn

from nc_audit.models.hf_config import count_cap
from nc_audit.models.trusted_import import import_installed

#: Modules whose model constructors a record may name, and what from each is a constructor.
RECORDABLE = {
    "torch.nn": "its nn.Module classes",
    "torchvision.models": "its model builders and nn.Module classes",
    "timm": "create_model",
}
RULE = "torch.nn module classes, torchvision.models builders, timm:create_model"
_SPEC = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_][\w.]*)")
_NAME_STRING = re.compile(r"[A-Za-z0-9_.+\-]{0,128}")
_FORBIDDEN_KEYS = frozenset(
    {
        "weights", "weights_backbone", "cache_dir", "checkpoint", "checkpoint_path", "token",
        "use_auth_token", "revision", "code_revision", "local_files_only", "force_download", "proxies",
        "device", "dtype", "url", "file", "path", "filename", "model_dir", "repo_id", "hf_hub_id",
        "subfolder", "progress", "download", "root", "source", "map_location",
    }
)  # fmt: skip
_FORBIDDEN_PARTS = ("pretrained", "remote_code", "weights")
_FORBIDDEN_ENDINGS = ("_path", "_paths", "_file", "_files", "_dir", "_url", "_uri", "_hub")
MAX_ARGS = 64
MAX_LIST = 64
MAX_INT = 2**31


class RecordRefusedError(Exception):
    """Why a recorded factory is not built on the file's word (the text completes 'it is ...')."""


@dataclass(frozen=True)
class CheckedArgs:
    """Arguments after the rule: those kept, the names dropped (asked for nothing), the refusals."""

    kept: dict[str, Any]
    dropped: tuple[str, ...]
    refused: tuple[str, ...]


def forbidden_key(key: str) -> bool:
    """Whether an argument named ``key`` could download, trust code, name a file or pick a device."""
    lowered = key.lower()
    return (
        lowered in _FORBIDDEN_KEYS
        or any(part in lowered for part in _FORBIDDEN_PARTS)
        or lowered.endswith(_FORBIDDEN_ENDINGS)
    )


def _plain_problem(key: str, value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not plain data for argument ``key``, or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        cap = count_cap(key) or MAX_INT
        return None if abs(value) <= cap else f"{key}={value} (over {cap})"
    if isinstance(value, float):
        return (
            None
            if math.isfinite(value) and abs(value) <= MAX_INT
            else f"{key}={value!r} (not a bounded number)"
        )
    if isinstance(value, str):
        if _NAME_STRING.fullmatch(value) and ".." not in value:
            return None
        return f"{key}={value[:40]!r} (a string that is not a plain name)"
    if isinstance(value, (list, tuple)) and depth < 2 and len(value) <= MAX_LIST:
        return next((p for v in value if (p := _plain_problem(key, v, depth + 1))), None)
    return f"{key} holds a {type(value).__name__} (only numbers, names, bools and short lists of them)"


def check_args(args: Any) -> CheckedArgs:
    """The recorded arguments under the rule of the module docstring."""
    if not isinstance(args, dict):
        return CheckedArgs({}, (), (f"the arguments are a {type(args).__name__}, not a mapping",))
    if len(args) > MAX_ARGS:
        return CheckedArgs({}, (), (f"{len(args)} arguments (at most {MAX_ARGS})",))
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    refused: list[str] = []
    for key, value in args.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            refused.append(f"the argument name {str(key)[:40]!r}")
        elif forbidden_key(key):
            (refused if value not in (None, False, "", 0, [], ()) else dropped).append(key)
        elif (problem := _plain_problem(key, value)) is not None:
            refused.append(problem)
        else:
            kept[key] = list(value) if isinstance(value, tuple) else value
    return CheckedArgs(kept, tuple(dropped), tuple(refused))


def _defined_in(obj: Any, package: str) -> bool:
    return str(getattr(obj, "__module__", "")).startswith(package + ".")


def _constructor(module_name: str, module: ModuleType, name: str) -> Callable[..., Any] | None:
    """The model constructor ``name`` of ``module`` (its own namespace only), or None."""
    obj = vars(module).get(name)
    if obj is None:
        return None
    is_class = isinstance(obj, type) and issubclass(obj, nn.Module)
    if module_name == "torch.nn":
        return obj if is_class and _defined_in(obj, "torch.nn") else None
    if module_name == "torchvision.models":
        list_models = vars(module).get("list_models")
        builders = set(list_models()) if callable(list_models) else set()
        is_builder = callable(obj) and name in builders
        return obj if (is_class or is_builder) and _defined_in(obj, "torchvision.models") else None
    if module_name == "timm":
        return obj if name == "create_model" and _defined_in(obj, "timm") else None
    return None


def resolve_recorded(spec: Any) -> Callable[..., Any]:
    """The constructor a record's ``callable`` names, under the rule; RecordRefusedError (saying why) otherwise.
    Nothing is imported unless the module is one of :data:`RECORDABLE`."""
    if not isinstance(spec, str) or len(spec) > 200:
        raise RecordRefusedError("not a MODULE:NAME string")
    match = _SPEC.fullmatch(spec)
    if match is None or match.group(1).endswith(".py"):
        raise RecordRefusedError("not a MODULE:NAME of an installed library (a file path, or malformed)")
    module_name, name = match.groups()
    if "." in name:
        raise RecordRefusedError(f"a dotted attribute chain ({name}); nc-audit follows none")
    if name.startswith("_"):
        raise RecordRefusedError(f"a private name ({name})")
    if module_name not in RECORDABLE:
        raise RecordRefusedError(f"not one of the model constructors nc-audit builds by itself ({RULE})")
    try:
        module = import_installed(module_name)
    except ImportError:
        raise RecordRefusedError(f"from {module_name}, which is not installed") from None
    found = _constructor(module_name, module, name)
    if found is None:
        raise RecordRefusedError(f"not a model constructor of {module_name} ({RECORDABLE[module_name]})")
    return found
