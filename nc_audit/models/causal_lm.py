"""A causal language model from a ``save_pretrained`` folder, seen as a classifier over its vocabulary.

The model is loaded by :func:`nc_audit.models.huggingface.load_pretrained` (local files only, no remote
code) and its tokenizer by ``AutoTokenizer.from_pretrained(folder, local_files_only=True,
trust_remote_code=False)``. The head is the unembedding, ``get_output_embeddings()`` (``lm_head``: tied
to the input embedding or not, with or without a bias), weight (V, d); the features are that module's
input, the final hidden state after the last norm (GPT-2's ``ln_f``, Llama's ``norm``), read by a
forward pre-hook that then stops the forward pass, so the (B, L, V) logits are never computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.checkpoints.load import file_sha256, source_sha256
from nc_audit.io.guards.files import human_bytes, load_json, regular_file
from nc_audit.models.huggingface import load_pretrained, require_transformers

#: The files a Hugging Face tokenizer is read from (those present make its identity).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
)
#: Longest window when the config names no limit.
DEFAULT_CONTEXT = 1024
#: The largest tokenizer file read (real ones are a few MB).
MAX_TOKENIZER_BYTES = 256 << 20


@dataclass(frozen=True)
class CausalLM:
    """A loaded causal LM: the model (eval mode), its unembedding and the facts extraction needs."""

    folder: Path
    model: nn.Module
    head: nn.Linear
    head_name: str
    sha256: str
    max_positions: int | None

    @property
    def vocab_size(self) -> int:
        """Ids the model takes and predicts: the smaller of the input and output embeddings' rows."""
        inputs = self.model.get_input_embeddings()  # type: ignore[operator]  # a transformers method; nn.Module types unknown attributes Tensor | Module
        rows = getattr(inputs, "num_embeddings", None) or self.head.out_features
        return min(int(rows), int(self.head.out_features))

    @property
    def feature_dim(self) -> int:
        return int(self.head.in_features)


class _Captured(Exception):  # noqa: N818 -- a control-flow signal, not an error
    """Raised by the unembedding's pre-hook once its input is captured."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__("captured")
        self.hidden = hidden


def _max_positions(config: Any) -> int | None:
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "max_seq_len"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def load_causal_lm(folder: Path | str) -> CausalLM:
    """The causal LM saved in ``folder``; a model without an nn.Linear unembedding is refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: --task next-token reads a Hugging Face save_pretrained folder")
    model = load_pretrained(folder)
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, nn.Linear):
        raise InputError(
            f"{folder}: {type(model).__name__} has no nn.Linear output embedding (lm_head); "
            "--task next-token needs a causal language model"
        )
    name = next((n for n, module in model.named_modules() if module is head), "lm_head")
    return CausalLM(folder, model, head, name, source_sha256(folder), _max_positions(model.config))


def tokenizer_files(folder: Path) -> list[Path]:
    """The folder's tokenizer files that exist, checked before transformers opens any: regular files
    (a FIFO would hang the reader) inside the folder (a symbolic link out of it is refused) of at most
    MAX_TOKENIZER_BYTES, and no ``*_file`` entry of tokenizer_config.json naming a path (only a file
    name of the folder), so that nothing outside the folder is read."""
    root = os.path.realpath(folder)
    found = []
    for name in TOKENIZER_FILES:
        path = folder / name
        if not (path.exists() or path.is_symlink()):
            continue
        info = regular_file(path, "tokenizer file")
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise InputError(
                f"{path}: a link out of the model folder; the tokenizer is read only from {folder}"
            )
        if info.st_size > MAX_TOKENIZER_BYTES:
            raise InputError(
                f"{path}: {human_bytes(info.st_size)}, more than a tokenizer file nc-audit reads"
            )
        found.append(path)
    config = folder / "tokenizer_config.json"
    if config in found:
        values = load_json(config, "tokenizer config")
        for key, value in values.items() if isinstance(values, dict) else ():
            named = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            if key.endswith(("_file", "_files")) and any(
                not isinstance(item, str) or Path(item).name != item or item in ("", ".", "..")
                for item in named
            ):
                raise InputError(
                    f"{config}: {key} names a path ({str(value)[:80]}); only a file of the folder is read"
                )
    return found


def load_tokenizer(folder: Path) -> Any:
    """The folder's own tokenizer, from local files only and without remote code (files checked first)."""
    tokenizer_files(folder)
    transformers = require_transformers()
    with quiet_transformers():
        try:
            return transformers.AutoTokenizer.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False
            )
        except Exception as error:  # transformers raises OSError, ValueError, KeyError, ...
            raise InputError(
                f"{folder}: no usable tokenizer in the folder ({type(error).__name__}: {first_line(error)}); "
                "pass token ids as --data tokens.npy"
            ) from None


def tokenizer_digest(folder: Path) -> str:
    """One digest of the folder's tokenizer files (name and content) that exist: the cache key part."""
    digest = hashlib.sha256()
    for path in tokenizer_files(folder):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No warnings or progress bars from transformers (e.g. "sequence longer than the maximum")."""
    logging = require_transformers().utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def final_hidden(lm: CausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The unembedding's input (B, L, d) for one batch: the model runs up to its head and stops."""

    def capture(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        raise _Captured(inputs[0])

    handle = lm.head.register_forward_pre_hook(capture)
    try:
        lm.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _Captured as captured:
        return captured.hidden
    finally:
        handle.remove()
    raise InputError(f"{lm.folder}: the forward pass never reached the output embedding {lm.head_name}")
