"""A corpus as one token stream on disk, and its next-token samples in ``--context N`` windows.

The corpus's documents are concatenated into one stream of T token ids, written to two raw files in a
work folder (``tokens``: int64, ``next_same``: uint8, 9 bytes a token) and memory-mapped, so memory
stays bounded whatever T is. ``next_same[g]`` is 1 when token g+1 exists and belongs to the same
document as token g: position g then gives one sample (the final hidden state at g, label token g+1).

Windows: the stream is cut into consecutive windows of N tokens (the last one shorter, padded when
batched); each window is one forward pass, so a position sees the earlier tokens of its own window
(earlier documents of the window included: packing, as in GPT-2's training). The last position of a
window still gives a sample: its next token is the first of the next window (known from the stream).
Padding never gives a sample, and no sample crosses a document boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nc_audit.core.errors import InputError

#: Checks each block of new ids (raises InputError for ids the model cannot take).
IdCheck = Callable[[np.ndarray], None]


class TokenStreamWriter:
    """Appends documents' token ids to ``folder``/tokens and ``folder``/next_same."""

    def __init__(self, folder: Path, check: IdCheck) -> None:
        self.folder = folder
        self.check = check
        self._tokens = open(folder / "tokens", "wb")
        self._flags = open(folder / "next_same", "wb")
        self.count = 0
        self._pending = False  # the last token's flag waits for the next piece

    def add(self, ids: np.ndarray, new_document: bool) -> None:
        """Append ``ids`` (1-D), as the start of a new document or the continuation of the current one."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        self.check(ids)
        if self._pending:
            self._flags.write(bytes([0 if new_document else 1]))
        flags = np.ones(ids.size - 1, dtype=np.uint8)
        self._tokens.write(ids.tobytes())
        self._flags.write(flags.tobytes())
        self._pending = True
        self.count += int(ids.size)

    def add_separated(self, block: np.ndarray, new_document: bool) -> bool:
        """Append a block of a ``-1``-separated stream (``new_document``: whether its first token starts
        a document); returns whether the next block's first token starts one."""
        start = 0
        for cut in [*np.flatnonzero(block < 0).tolist(), int(block.size)]:
            if cut > start:
                self.add(block[start:cut], new_document)
                new_document = False
            if cut < block.size:
                new_document = True
            start = cut + 1
        return new_document

    def close(self) -> TokenStream:
        if self._pending:
            self._flags.write(b"\x00")  # the last token has no next token
        self._tokens.close()
        self._flags.close()
        return TokenStream.open(self.folder, self.count)

    def abandon(self) -> None:
        self._tokens.close()
        self._flags.close()


@dataclass(frozen=True)
class TokenStream:
    """The memory-mapped stream: ``tokens`` (T,) int64, ``next_same`` (T,) uint8."""

    tokens: np.ndarray
    next_same: np.ndarray

    @classmethod
    def open(cls, folder: Path, count: int) -> TokenStream:
        if count == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty.astype(np.uint8))
        tokens = np.memmap(folder / "tokens", dtype=np.int64, mode="r", shape=(count,))
        flags = np.memmap(folder / "next_same", dtype=np.uint8, mode="r", shape=(count,))
        return cls(tokens, flags)

    @classmethod
    def of(cls, tokens: np.ndarray, next_same: np.ndarray) -> TokenStream:
        """A stream held in memory (tests, small corpora)."""
        return cls(np.asarray(tokens, dtype=np.int64), np.asarray(next_same, dtype=np.uint8))

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])


@dataclass(frozen=True)
class Window:
    """One forward pass: stream positions [start, stop) and where its samples go in the dump."""

    start: int
    stop: int
    first_row: int  # the dump row of this window's first sample


@dataclass(frozen=True)
class Plan:
    """The windows of a stream, grouped into batches of ``per_batch`` windows (the last may be short)."""

    stream: TokenStream
    context: int
    per_batch: int
    counts: np.ndarray  # samples per window (int64)
    row_starts: np.ndarray  # dump row of each window's first sample, then the total (int64, W + 1)

    @property
    def num_windows(self) -> int:
        return int(self.counts.shape[0])

    @property
    def num_batches(self) -> int:
        return -(-self.num_windows // self.per_batch)

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())

    def batch_rows(self, batch: int) -> int:
        """The dump row where batch ``batch``'s samples start."""
        return int(self.row_starts[min(batch * self.per_batch, self.num_windows)])

    def windows(self, batch: int) -> list[Window]:
        first = batch * self.per_batch
        row = self.batch_rows(batch)
        found = []
        for w in range(first, min(first + self.per_batch, self.num_windows)):
            start = w * self.context
            found.append(Window(start, min(start + self.context, self.stream.num_tokens), row))
            row += int(self.counts[w])
        return found


def plan_windows(stream: TokenStream, context: int, per_batch: int, block_windows: int = 4096) -> Plan:
    """The windows of ``stream`` and their sample counts, read from the flags in blocks."""
    if context < 2:
        raise InputError(f"--context {context}: a window needs at least 2 tokens")
    T = stream.num_tokens
    num_windows = -(-T // context)
    counts = np.zeros(num_windows, dtype=np.int64)
    span = block_windows * context
    for start in range(0, T, span):
        flags = np.asarray(stream.next_same[start : start + span], dtype=np.int64)
        starts = np.arange(0, flags.size, context)
        counts[start // context : start // context + starts.size] = np.add.reduceat(flags, starts)
    row_starts = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
    return Plan(stream, context, max(1, per_batch), counts, row_starts)


def batch_arrays(plan: Plan, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(input ids (B, L), attention mask (B, L), sample mask (B, L), labels (n,)) of one batch; L is
    the longest window of the batch, shorter windows padded with id 0 and mask 0. Samples in row-major
    order: window by window, position by position, as the dump stores them."""
    windows = plan.windows(batch)
    length = max(w.stop - w.start for w in windows)
    ids = np.zeros((len(windows), length), dtype=np.int64)
    attention = np.zeros((len(windows), length), dtype=np.int64)
    samples = np.zeros((len(windows), length), dtype=bool)
    labels = []
    tokens, flags = plan.stream.tokens, plan.stream.next_same
    for row, window in enumerate(windows):
        n = window.stop - window.start
        ids[row, :n] = tokens[window.start : window.stop]
        attention[row, :n] = 1
        keep = np.asarray(flags[window.start : window.stop], dtype=bool)
        samples[row, :n] = keep
        positions = np.flatnonzero(keep) + window.start + 1
        labels.append(np.asarray(tokens[positions], dtype=np.int64))
    return ids, attention, samples, np.concatenate(labels) if labels else np.zeros(0, np.int64)


def add_blocks(blocks: Iterator[np.ndarray], writer: TokenStreamWriter) -> None:
    """Feed a ``-1``-separated stream of blocks to ``writer``."""
    new_document = True
    for block in blocks:
        new_document = writer.add_separated(block, new_document)
