"""Built-in architectures, their plain-data records, user factories, weight loading and the feature tap.

Every built-in model ends in an ``nn.Linear`` named ``head``, registered last, so its state dict ends with
``head.weight`` / ``head.bias``. Features are the head's input, read by a forward pre-hook on the head.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import itertools
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from nc_audit.errors import InputError

ARCH_FORMAT = "nc-audit-arch/1"
_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
_SHOW = 5  # how many offending keys an error message names before it counts the rest


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _int_list(name: str, value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of positive integers, got {value!r}")
    return [_positive_int(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _activation(value: Any) -> nn.Module:
    if value not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {value!r}")
    return _ACTIVATIONS[value]()


class MLP(nn.Module):
    """Flatten, then Linear+activation per hidden width, then ``head``. Features: the last hidden output."""

    def __init__(
        self,
        *,
        num_classes: int,
        input_dim: int,
        hidden: list[int] | tuple[int, ...] = (128, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        widths = [_positive_int("input_dim", input_dim), *_int_list("hidden", hidden)]
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), _activation(activation)]
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.head = nn.Linear(widths[-1], _positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) from inputs (N, ...) whose trailing dimensions hold ``input_dim`` numbers."""
        return self.head(self.body(x.to(self.head.weight.dtype)))  # (N, C)


class SmallCNN(nn.Module):
    """Conv3x3+ReLU+MaxPool2 per channel count, a Linear to ``feature_dim``+ReLU, then ``head``."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        image_size: int,
        channels: list[int] | tuple[int, ...] = (16, 32),
        feature_dim: int = 64,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int("in_channels", in_channels)
        self.image_size = _positive_int("image_size", image_size)
        widths = [in_channels, *_int_list("channels", channels)]
        side = image_size // 2 ** len(channels)  # each stage halves the side (floor)
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(channels)} pooling stages")
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(width_in, width_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        projection = nn.Linear(widths[-1] * side * side, _positive_int("feature_dim", feature_dim))
        self.body = nn.Sequential(*layers, nn.Flatten(), projection, nn.ReLU())
        self.head = nn.Linear(feature_dim, _positive_int("num_classes", num_classes))

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, C) from images (N, in_channels, S, S) or flat rows (N, in_channels·S·S)."""
        x = x.to(self.head.weight.dtype).reshape(-1, self.in_channels, self.image_size, self.image_size)
        return self.head(self.body(x))  # (N, C)


class ModMLP(nn.Module):
    """For a+b mod p: one embedding table shared by a and b, concatenated, Linear+ReLU, then ``head``."""

    def __init__(self, *, num_classes: int, p: int, embed_dim: int = 128, hidden: int = 256) -> None:
        super().__init__()
        if _positive_int("num_classes", num_classes) != _positive_int("p", p):
            raise ValueError(f"modmlp predicts a+b mod p, so num_classes must equal p={p}, got {num_classes}")
        self.embed = nn.Embedding(p, _positive_int("embed_dim", embed_dim))
        self.body = nn.Sequential(nn.Linear(2 * embed_dim, _positive_int("hidden", hidden)), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, pairs: Tensor) -> Tensor:
        """Logits (N, p) from integer pairs (N, 2) of operands a, b in [0, p)."""
        E = self.embed(pairs.long())  # (N, 2, embed_dim)
        return self.head(self.body(E.flatten(1)))  # (N, p)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"mlp": MLP, "cnn": SmallCNN, "modmlp": ModMLP}


def _architecture(name: Any) -> Callable[..., nn.Module]:
    if name == "adapter":  # the feature adapter of `finetune --features` lives with the training code
        from nc_audit.train.adapter import FeatureAdapter

        return FeatureAdapter
    if not isinstance(name, str) or name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; built-in architectures: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def _plain(value: Any) -> Any:
    """The value as JSON-like plain data (tuples become lists), or ValueError."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    raise ValueError(f"{value!r} is not plain data (str, int, float, bool, list, dict)")


def _full_config(name: str, config: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """The config with defaults filled in, checked by building the model on the meta device (no memory)."""
    factory = _architecture(name)
    params = {k: p for k, p in inspect.signature(factory).parameters.items() if k != "num_classes"}
    if not isinstance(config, dict):
        raise InputError(f"architecture {name!r}: config must be a dict, got {type(config).__name__}")
    config = dict(config)
    if "num_classes" in config and config.pop("num_classes") != num_classes:
        raise InputError(
            f"architecture {name!r}: config num_classes disagrees with num_classes={num_classes}"
        )
    unknown = sorted(set(config) - set(params))
    missing = sorted(k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in config)
    if unknown or missing:
        problem = (
            f"unknown key(s) {', '.join(unknown)}" if unknown else f"missing key(s) {', '.join(missing)}"
        )
        raise InputError(f"architecture {name!r}: {problem}; accepted keys: {', '.join(params)}")
    full = {k: config.get(k, p.default) for k, p in params.items()}
    try:
        full = _plain(full)
        with torch.device("meta"):
            factory(num_classes=num_classes, **full)
    except (TypeError, ValueError) as error:
        raise InputError(f"architecture {name!r}: bad config: {error}") from None
    return full


def architecture_record(name: str, config: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Plain-data record of a built-in architecture, to store in a checkpoint and rebuild with build_model.

    Format ``{"format": "nc-audit-arch/1", "name", "config" (defaults filled in), "num_classes", "head"}``.
    An unknown name, unknown or missing config keys and bad values raise InputError.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    full = _full_config(name, config, num_classes)
    return {"format": ARCH_FORMAT, "name": name, "config": full, "num_classes": num_classes, "head": "head"}


def build_model(record: dict[str, Any]) -> nn.Module:
    """A freshly initialised built-in model from a record made by architecture_record."""
    if not isinstance(record, dict) or record.get("format") != ARCH_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"architecture record must have format {ARCH_FORMAT!r}, got {found!r}")
    checked = architecture_record(record.get("name"), record.get("config", {}), record.get("num_classes"))
    return ARCHITECTURES[checked["name"]](num_classes=checked["num_classes"], **checked["config"])


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


def _listed(label: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOW]) + (f", … (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")
    return f"{len(items)} {label} ({shown})"


def load_weights(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> None:
    """Load a state dict strictly; missing, unexpected or misshapen keys raise InputError naming ``source``."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: file {tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__} vs model {tuple(w.shape)}"
        for k, v in state_dict.items()
        if (w := expected.get(k)) is not None and (not isinstance(v, Tensor) or v.shape != w.shape)
    ]
    if missing or unexpected or mismatched:
        labels = ("missing key(s)", "unexpected key(s)", "shape mismatch(es)")
        parts = [
            _listed(label, items)
            for label, items in zip(labels, (missing, unexpected, mismatched), strict=True)
            if items
        ]
        raise InputError(f"{source}: weights do not fit the model: {'; '.join(parts)}")
    model.load_state_dict(state_dict, strict=True)


def find_head_module(model: nn.Module, head_name: str | None = None) -> tuple[str, nn.Linear]:
    """The classifier head as (dotted name, module): ``head_name``, else attribute ``head``, else last Linear."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    known = ", ".join(name for name, _ in linears) or "none"
    if head_name is None:
        if isinstance(getattr(model, "head", None), nn.Linear):
            return "head", model.head
        if not linears:
            raise InputError(f"{type(model).__name__} has no nn.Linear layer to use as the classifier head")
        return linears[-1]
    try:
        module = model.get_submodule(head_name)
    except AttributeError:
        raise InputError(f"--head {head_name}: no such module; nn.Linear modules: {known}") from None
    if not isinstance(module, nn.Linear):
        raise InputError(
            f"--head {head_name} is a {type(module).__name__}, not nn.Linear; nn.Linear modules: {known}"
        )
    return head_name, module


class FeatureTap:
    """Context manager that records the input of a model's head on each forward (features (N, d)).

    ``with FeatureTap(model) as tap: logits = model(x)`` then ``tap.features``; the hook is removed on exit.
    Features keep their autograd graph, so losses on them can train the model.
    """

    def __init__(self, model: nn.Module, head_name: str | None = None) -> None:
        self.head_name, self.head = find_head_module(model, head_name)
        self._captured: list[Tensor] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _record(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        self._captured.append(inputs[0])

    def __enter__(self) -> FeatureTap:
        self._captured.clear()
        self._handle = self.head.register_forward_pre_hook(self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def features(self) -> Tensor:
        """The head's input from the single forward call made inside the block. (N, d)."""
        if len(self._captured) != 1:
            raise InputError(
                f"head {self.head_name!r} ran {len(self._captured)} times in one forward, expected once"
            )
        return self._captured[0]


def forward_with_features(
    model: nn.Module, inputs: Tensor, head_name: str | None = None
) -> tuple[Tensor, Tensor]:
    """One forward pass returning (logits (N, C), features (N, d)); features are the head's input."""
    with FeatureTap(model, head_name) as tap:
        logits = model(inputs)  # (N, C)
    features = tap.features  # (N, d)
    if logits.dim() != 2 or features.dim() != 2:
        raise InputError(
            f"head {tap.head_name!r} maps {tuple(features.shape)} to {tuple(logits.shape)}; expected (N, d) to (N, C)"
        )
    return logits, features


def default_architecture(dataset_info: Any) -> dict[str, Any]:
    """Record of a sensible built-in for a dataset (anything with ``name``, ``input_shape``, ``num_classes``).

    modadd → modmlp; images (channels, S, S) → cnn; everything else (digits, gaussian, user arrays) → mlp.
    """
    shape = tuple(dataset_info.input_shape)
    num_classes = int(dataset_info.num_classes)
    if dataset_info.name == "modadd":
        return architecture_record("modmlp", {"p": num_classes}, num_classes)
    if len(shape) == 3 and shape[1] == shape[2] and shape[0] <= 4:
        return architecture_record("cnn", {"in_channels": shape[0], "image_size": shape[1]}, num_classes)
    return architecture_record("mlp", {"input_dim": int(torch.Size(shape).numel())}, num_classes)
