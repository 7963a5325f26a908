"""Reading a text corpus for next-token extraction, streamed: documents from .txt/.jsonl, ids from .npy.

Formats (``--task next-token --data FILE``):

- ``.txt``: UTF-8 text; documents are separated by one or more blank lines (a line holding only
  whitespace). A file without blank lines is one document.
- ``.jsonl``: one JSON object per line, one document each; its text is the ``--text-column`` field
  (default ``text``). Blank lines are skipped; a line that is not an object with a string there is
  refused, naming the line.
- ``.npy``: a 1-D integer array of token ids (no tokenization); an entry ``-1`` separates documents
  (it is not a token), any other negative entry is refused.

Nothing is read whole: text comes line by line (a line is read at most :data:`MAX_LINE_CHARS` at a
time) and a long document is handed on in pieces of about :data:`PIECE_CHARS` characters, cut at line
ends, each tokenized on its own (tokens never span a piece boundary); ``.npy`` arrays are memory-mapped
and read in blocks. Files are opened only when they are regular files (never a FIFO or a device).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nc_audit.core.errors import InputError, first_line
from nc_audit.io.checkpoints.load import file_sha256
from nc_audit.io.guards.files import regular_file

CORPUS_SUFFIXES = (".txt", ".jsonl", ".npy")
#: A document longer than this (characters) is tokenized in pieces cut at line ends.
PIECE_CHARS = 1 << 20
#: The longest line read at once; a longer .txt line is cut there, a longer .jsonl line refused.
MAX_LINE_CHARS = 64 << 20
#: Token ids read from a .npy file per block.
NPY_BLOCK = 1 << 20
#: The entry of a tokens.npy stream that separates two documents.
DOCUMENT_SEPARATOR = -1


@dataclass(frozen=True)
class Piece:
    """Part of a document's text; ``new_document`` is True for the first piece of each document."""

    text: str
    new_document: bool


def is_corpus(spec: str | Path) -> bool:
    """Whether ``spec`` names a corpus file by its suffix (.txt, .jsonl, .npy)."""
    return Path(str(spec)).suffix.lower() in CORPUS_SUFFIXES


def corpus_kind(path: Path) -> str:
    """'txt', 'jsonl' or 'npy' for a regular corpus file; else an InputError naming it."""
    suffix = path.suffix.lower()
    if suffix not in CORPUS_SUFFIXES:
        raise InputError(
            f"{path}: --task next-token reads a corpus .txt, .jsonl or .npy (token ids), not {suffix or 'a file without suffix'}"
        )
    regular_file(path, "corpus", missing=f"{path}: no such corpus")
    return suffix[1:]


def corpus_sha256(path: Path) -> str:
    """SHA-256 of the corpus file's bytes (its identity in the feature cache), read in blocks and
    remembered while the file is unchanged (:func:`nc_audit.io.checkpoints.load.file_sha256`)."""
    regular_file(path, "corpus", missing=f"{path}: no such corpus")
    return file_sha256(path)


def _lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="strict", newline="") as handle:
            while line := handle.readline(MAX_LINE_CHARS):
                yield line
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({first_line(error)})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the corpus ({error.strerror or error})") from None


def text_pieces(path: Path, text_column: str = "text") -> Iterator[Piece]:
    """The documents of a .txt or .jsonl corpus, as pieces of at most about PIECE_CHARS characters."""
    kind = corpus_kind(path)
    if kind == "npy":
        raise InputError(f"{path}: a .npy corpus holds token ids, not text")
    yield from (_txt_pieces(path) if kind == "txt" else _jsonl_pieces(path, text_column))


def _txt_pieces(path: Path) -> Iterator[Piece]:
    buffer: list[str] = []
    size, new_document = 0, True
    for line in _lines(path):
        if not line.strip():
            if buffer:
                yield Piece("".join(buffer), new_document)
            buffer, size, new_document = [], 0, True
            continue
        buffer.append(line)
        size += len(line)
        if size >= PIECE_CHARS:
            yield Piece("".join(buffer), new_document)
            buffer, size, new_document = [], 0, False
    if buffer:
        yield Piece("".join(buffer), new_document)


def _jsonl_pieces(path: Path, text_column: str) -> Iterator[Piece]:
    for number, line in enumerate(_lines(path), start=1):
        if len(line) >= MAX_LINE_CHARS and not line.endswith("\n"):
            raise InputError(f"{path}: line {number} is longer than {MAX_LINE_CHARS} characters")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as error:
            raise InputError(f"{path}: line {number} is not JSON ({first_line(error)})") from None
        text = record.get(text_column) if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise InputError(
                f"{path}: line {number} has no string field {text_column!r}; pass --text-column NAME"
            )
        for start in range(0, max(len(text), 1), PIECE_CHARS):
            if text:
                yield Piece(text[start : start + PIECE_CHARS], start == 0)


def token_blocks(path: Path) -> Iterator[np.ndarray]:
    """The entries of a tokens.npy stream as int64 blocks (``-1`` separates documents); the array is
    memory-mapped (never pickled, never read whole) and must be 1-D integers with no other negatives."""
    corpus_kind(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{path}: not a readable .npy array ({first_line(error)})") from None
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.kind not in "iu":
        shape = getattr(array, "shape", "?")
        raise InputError(
            f"{path}: a tokens .npy must be a 1-D integer array, found {getattr(array, 'dtype', '?')} {shape}"
        )
    for start in range(0, array.shape[0], NPY_BLOCK):
        block = np.asarray(array[start : start + NPY_BLOCK])
        if block.dtype.kind == "u" and block.size and int(block.max()) > np.iinfo(np.int64).max:
            raise InputError(f"{path}: token id {int(block.max())} does not fit int64")
        block = block.astype(np.int64)
        low = int(block.min()) if block.size else 0
        if low < DOCUMENT_SEPARATOR:
            where = start + int(np.argmax(block < DOCUMENT_SEPARATOR))
            raise InputError(f"{path}: entry {where} is {low}; token ids are >= 0 and -1 separates documents")
        yield block
