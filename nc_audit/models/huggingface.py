"""Hugging Face classifiers: a ``save_pretrained`` folder loaded with transformers' Auto classes from
local files only (``local_files_only=True``: never the hub), so the key renaming some models need on
load is the library's; and the ``huggingface`` architecture record that a fine-tuned checkpoint stores
(class name + config as plain data) to be rebuilt without the folder.

The head is the model's classifier module (``classifier``, ``score``, ``head`` or ``fc``; a block such as
RoBERTa's ``classifier`` stands for its last nn.Linear); features are that module's input. transformers
is imported only here and only when used, from its installed files only (never a ``./transformers.py``
of the working folder: :mod:`nc_audit.models.trusted_import`); without it, one InputError says which
extra to install.

**No code on a file's word, no prompt, no unbounded config.** Every transformers call is made with
``trust_remote_code=False`` and ``local_files_only=True`` (a config.json with ``auto_map`` naming the
folder's own Python file is refused at once), with ``sys.stdin`` replaced by an empty stream so that no
y/N question can wait for or read an answer; the config is bounded as data before transformers reads
it (:mod:`nc_audit.models.hf_config`), and the model is built on the meta device and its size compared
with the weight files' before the real one is loaded (:mod:`nc_audit.models.meta_build`).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.checkpoints.heads import USUAL_HEAD_NAMES
from nc_audit.models.hf_config import check_config, check_config_file
from nc_audit.models.hooks import find_head_module
from nc_audit.models.meta_build import check_model_size
from nc_audit.models.trusted_import import import_installed, only_installed_path

HF_RECORD_NAME = "huggingface"
#: A transformers class name: one public name, no dotted chain.
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9_]{0,127}")
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
        return import_installed("transformers")
    except ImportError:
        raise InputError(
            "this is a Hugging Face model, which needs transformers: pip install 'nc-audit[hf]'"
        ) from None


@contextlib.contextmanager
def _quiet(transformers: ModuleType) -> Iterator[None]:
    """No progress bars or info logs from transformers while nc-audit loads a model, and no stdin: a
    question transformers might ask reads an empty stream (EOF) instead of waiting for an answer; and
    ``sys.path`` reduced to site-packages and the standard library for whatever it imports meanwhile."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    stdin, sys.stdin = sys.stdin, io.StringIO("")
    try:
        with only_installed_path():  # what transformers imports lazily comes from site-packages too
            yield
    finally:
        sys.stdin = stdin
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _model_class(transformers: ModuleType, architecture: str | None, where: str) -> Any:
    """The Auto class for the architecture's task, else the architecture's own class; a PreTrainedModel."""
    for suffix, auto_name in AUTO_CLASSES.items():
        if architecture and architecture.endswith(suffix):
            return getattr(transformers, auto_name)
    named = isinstance(architecture, str) and _CLASS_NAME.fullmatch(architecture) is not None
    cls = getattr(transformers, architecture, None) if named and architecture is not None else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise InputError(
            f"{where}: config.json names architecture {architecture!r}, which transformers "
            f"{transformers.__version__} does not provide as a model class"
        )
    return cls


def _probe(cls: Any, config: Any) -> nn.Module:
    """The model ``cls`` builds from ``config``, on the meta device (shapes only, no memory)."""
    model: nn.Module
    with torch.device("meta"):
        if cls.__name__.startswith("AutoModel"):
            model = cls.from_config(config, trust_remote_code=False)
            return model
        model = cls(config)
        return model


def load_pretrained(folder: Path, values: Any = None, file_bytes: int | None = None) -> nn.Module:
    """The classifier saved in ``folder``, loaded from local files only, in eval mode. ``values`` is
    config.json as read (bounded before transformers reads it); with ``file_bytes`` (the weight files'
    tensors) the model is first built on the meta device and refused when it would need more memory."""
    if values is not None:
        check_config_file(folder, values)
    try:
        transformers = require_transformers()
    except InputError as error:
        raise InputError(f"{folder}: {error}") from None
    with _quiet(transformers):
        try:
            config = transformers.AutoConfig.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False
            )
            architecture = (getattr(config, "architectures", None) or [None])[0]
            cls = _model_class(transformers, architecture, str(folder))
            if file_bytes is not None:
                check_model_size(_probe(cls, config), file_bytes, str(folder), "config.json")
            model: nn.Module = cls.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False
            )
        except InputError:
            raise
        except Exception as error:  # transformers raises OSError, ValueError, KeyError, ...
            if isinstance(values, dict) and "auto_map" in values and "custom code" in str(error):
                raise InputError(
                    f"{folder / 'config.json'}: its auto_map names Python code in the folder (model_type "
                    f"{str(values.get('model_type'))[:60]!r} is not one transformers provides); nc-audit never "
                    "runs a model folder's code (trust_remote_code=False)"
                ) from None
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


def hf_record(model: nn.Module, head: str) -> dict[str, Any]:
    """The ``huggingface`` architecture record (nc-audit-arch/1): class name and config as plain data."""
    hf_config: Any = model.config  # a transformers PretrainedConfig
    return {
        "format": "nc-audit-arch/1",
        "name": HF_RECORD_NAME,
        "config": {"class": type(model).__name__, "config": hf_config.to_dict()},
        "num_classes": int(hf_config.num_labels),
        "head": head,
    }


def build_from_record(record: dict[str, Any], where: str = "the checkpoint") -> nn.Module:
    """A freshly initialised model of a ``huggingface`` record (its weights come from the checkpoint):
    the class named must be a transformers model class (one name, no chain), the config is bounded first."""
    config = record.get("config")
    config = config if isinstance(config, dict) else {}
    name, values = config.get("class"), config.get("config")
    check_config(values, where)
    try:
        transformers = require_transformers()
    except InputError as error:
        raise InputError(f"{where}: {error}") from None
    named = isinstance(name, str) and _CLASS_NAME.fullmatch(name) is not None
    cls: type[Any] | None = getattr(transformers, name, None) if named and name is not None else None
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        shown = name[:80] if isinstance(name, str) else type(name).__name__
        raise InputError(f"{where}: the huggingface record names {shown!r}, not a transformers model class")
    with _quiet(transformers):
        try:
            hf_config = cls.config_class.from_dict(values)
            model: nn.Module = cls(hf_config)
        except Exception as error:  # transformers validates configs with several error types
            raise InputError(
                f"{where}: rebuilding {name} from its record failed ({type(error).__name__}: {first_line(error)})"
            ) from None
    return model.eval()
