"""Hugging Face classifiers: a ``save_pretrained`` folder loaded with transformers' Auto classes from
local files only (``local_files_only=True``: never the hub), so the key renaming some models need on
load is the library's; and the ``huggingface`` architecture record that a fine-tuned checkpoint stores
(class name + config as plain data) to be rebuilt without the folder.

The head is the model's classifier module (``classifier``, ``score``, ``head`` or ``fc``; a block such as
RoBERTa's ``classifier`` stands for its last nn.Linear); features are that module's input. transformers
is imported only here and only when used: without it, one InputError says which extra to install.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.heads import USUAL_HEAD_NAMES
from nc_audit.models.hooks import find_head_module

HF_RECORD_NAME = "huggingface"
#: Auto class per task, by the suffix of the architecture config.json names.
AUTO_CLASSES = {
    "ForSequenceClassification": "AutoModelForSequenceClassification",
    "ForImageClassification": "AutoModelForImageClassification",
    "ForAudioClassification": "AutoModelForAudioClassification",
    "ForVideoClassification": "AutoModelForVideoClassification",
}


def require_transformers() -> ModuleType:
    """transformers, or an InputError naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        raise InputError(
            "this is a Hugging Face model, which needs transformers: pip install 'nc-audit[hf]'"
        ) from None
    return transformers


@contextlib.contextmanager
def _quiet(transformers: ModuleType) -> Iterator[None]:
    """No progress bars or info logs from transformers while nc-audit loads a model."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _model_class(transformers: ModuleType, architecture: str | None, where: str) -> Any:
    """The Auto class for the architecture's task, else the architecture's own class; a PreTrainedModel."""
    for suffix, auto_name in AUTO_CLASSES.items():
        if architecture and architecture.endswith(suffix):
            return getattr(transformers, auto_name)
    cls = getattr(transformers, architecture, None) if architecture else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise InputError(
            f"{where}: config.json names architecture {architecture!r}, which transformers "
            f"{transformers.__version__} does not provide as a model class"
        )
    return cls


def load_pretrained(folder: Path) -> nn.Module:
    """The classifier saved in ``folder``, loaded from local files only, in eval mode."""
    transformers = require_transformers()
    with _quiet(transformers):
        try:
            config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
            architecture = (getattr(config, "architectures", None) or [None])[0]
            cls = _model_class(transformers, architecture, str(folder))
            model = cls.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        except InputError:
            raise
        except Exception as error:  # transformers raises OSError, ValueError, KeyError, ...
            raise InputError(
                f"{folder}: transformers could not load the model ({type(error).__name__}: {first_line(error)})"
            ) from None
    return model.eval()


def head_name(model: nn.Module, num_classes: int | None = None) -> str:
    """The dotted name of a Hugging Face model's classifier nn.Linear."""
    for name in ("classifier", "score", *USUAL_HEAD_NAMES):
        if isinstance(getattr(model, name, None), nn.Module):
            return find_head_module(model, name)[0]
    labels = getattr(getattr(model, "config", None), "num_labels", None)
    return find_head_module(model, None, num_classes or labels)[0]


def is_huggingface(model: nn.Module) -> bool:
    """Whether ``model`` is a transformers PreTrainedModel (without importing transformers)."""
    return any(cls.__name__ == "PreTrainedModel" for cls in type(model).__mro__)


def hf_record(model: nn.Module, head: str) -> dict[str, Any]:
    """The ``huggingface`` architecture record (nc-audit-arch/1): class name and config as plain data."""
    config = model.config.to_dict()
    return {
        "format": "nc-audit-arch/1",
        "name": HF_RECORD_NAME,
        "config": {"class": type(model).__name__, "config": config},
        "num_classes": int(model.config.num_labels),
        "head": head,
    }


def build_from_record(record: dict[str, Any]) -> nn.Module:
    """A freshly initialised model of a ``huggingface`` record (its weights come from the checkpoint)."""
    transformers = require_transformers()
    config = record.get("config") or {}
    name, values = config.get("class"), config.get("config")
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)) or not isinstance(
        values, dict
    ):
        raise InputError(f"the huggingface record names {name!r}, not a transformers model class")
    with _quiet(transformers):
        try:
            hf_config = cls.config_class.from_dict(values)
            model = cls(hf_config)
        except Exception as error:  # transformers validates configs with several error types
            raise InputError(
                f"rebuilding {name} from its record failed ({type(error).__name__}: {first_line(error)})"
            ) from None
    return model.eval()
