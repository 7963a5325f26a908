"""Next-token extraction: a causal LM's final hidden states on a corpus, labelled by the next token.

Every position g of the corpus's token stream whose next token is in the same document gives one
sample: features = the unembedding's input at g (after the final norm), label = token g+1; the head is
the unembedding (V classes). Windows, padding and document boundaries: :mod:`nc_audit.io.data.token_stream`;
corpus formats: :mod:`nc_audit.io.data.corpus`. The dump is written batch by batch with bounded memory and
resumes after an interruption (:mod:`nc_audit.io.dumps.token_dump`). Under ``torchrun`` each rank extracts a
contiguous range of batches (so a contiguous token range) into its own part; rank 0 joins them in rank
order, and the dump is the same as one process writes. The corpus is tokenized once, by rank 0, and
memory-mapped by the others (:mod:`nc_audit.models.corpus_stream`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nc_audit.core.errors import InputError
from nc_audit.core.progress import SilentTracker, Tracker
from nc_audit.distributed import DistributedContext
from nc_audit.io.data.corpus import PIECE_CHARS, Piece, corpus_kind, corpus_sha256, text_pieces, token_blocks
from nc_audit.io.data.token_stream import (
    IdCheck,
    Plan,
    TokenStream,
    TokenStreamWriter,
    add_blocks,
    batch_arrays,
    plan_windows,
)
from nc_audit.io.dumps.token_dump import PartialDump, finish, join_parts, output_target, partial_path
from nc_audit.models.causal_lm import (
    DEFAULT_CONTEXT,
    CausalLM,
    final_hidden,
    load_causal_lm,
    load_tokenizer,
    quiet_transformers,
    tokenizer_digest,
)
from nc_audit.models.corpus_stream import corpus_stream

#: Tokens per forward pass (windows per batch = max(1, this // context)).
TOKENS_PER_BATCH = 4096
#: Text pieces tokenized in one call.
PIECES_PER_CALL = 256
#: The longest window of a model whose config names no limit.
MAX_CONTEXT = 1 << 17
#: Bumped when the rows a key describes change.
EXTRACTION_VERSION = "next-token/1"


def check_next_token_options(model: str | None, model_args: object, head: str | None, split: object) -> None:
    """Options of the classification route that have no meaning for --task next-token are refused, not
    ignored: the model is the folder's, its head the unembedding, the corpus has no splits."""
    given = [name for name, value in (("--model", model), ("--model-arg", model_args), ("--head", head),
                                       ("--split", split)) if value]  # fmt: skip
    if given:
        raise InputError(
            f"{', '.join(given)}: not used by --task next-token (the model is the folder's causal LM, the "
            "head its unembedding, the corpus one split)"
        )


def resolve_context(lm: CausalLM, context: int | None) -> int:
    """``--context``: given, else the model's longest sequence capped at DEFAULT_CONTEXT."""
    limit = lm.max_positions or MAX_CONTEXT
    if context is None:
        return min(limit, DEFAULT_CONTEXT)
    if context < 2:
        raise InputError(f"--context {context}: a window needs at least 2 tokens")
    if context > limit:
        raise InputError(f"--context {context}: {lm.folder} takes at most {limit} positions")
    return context


def next_token_dataset(corpus: Path) -> str:
    """The ``dataset`` attribute of a next-token dump (and the data its cache proof names)."""
    return f"{corpus.resolve()}:sha256={corpus_sha256(corpus)}"


def extraction_key(lm: CausalLM, corpus: Path, context: int, text_column: str) -> str:
    """What the rows depend on: model, corpus bytes, tokenizer files (text corpora), context, column."""
    kind = corpus_kind(corpus)
    parts = [EXTRACTION_VERSION, lm.sha256, kind, corpus_sha256(corpus), str(context)]
    if kind != "npy":
        parts += [tokenizer_digest(lm.folder), text_column if kind == "jsonl" else ""]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _id_check(lm: CausalLM, corpus: Path, tokenized: bool) -> IdCheck:
    vocab = lm.vocab_size

    def check(ids: np.ndarray) -> None:
        top = int(ids.max())
        if top >= vocab:
            source = f"the tokenizer of {lm.folder} gives token id" if tokenized else "token id"
            raise InputError(f"{corpus}: {source} {top}, outside the model's vocabulary ({vocab} ids)")

    return check


def tokenize_corpus(lm: CausalLM, corpus: Path, folder: Path, text_column: str = "text") -> TokenStream:
    """The corpus as a token stream in ``folder`` (ids checked against the vocabulary before any forward)."""
    kind = corpus_kind(corpus)
    writer = TokenStreamWriter(folder, _id_check(lm, corpus, tokenized=kind != "npy"))
    try:
        if kind == "npy":
            add_blocks(token_blocks(corpus), writer)
        else:
            _tokenize_text(load_tokenizer(lm.folder), corpus, text_column, writer)
    except BaseException:
        writer.abandon()
        raise
    return writer.close()


#: A transformers tokenizer called on a batch of texts: a BatchEncoding whose "input_ids" are lists of ids.
Tokenizer = Callable[..., Mapping[str, Any]]


def _tokenize_text(tokenizer: Tokenizer, corpus: Path, text_column: str, writer: TokenStreamWriter) -> None:
    pending: list[Piece] = []

    def flush() -> None:
        if pending:
            with quiet_transformers():
                encoded = tokenizer([piece.text for piece in pending], add_special_tokens=False)
            for piece, ids in zip(pending, encoded["input_ids"], strict=True):
                writer.add(np.asarray(ids, dtype=np.int64), piece.new_document)
            pending.clear()

    size = 0
    for piece in text_pieces(corpus, text_column):
        pending.append(piece)
        size += len(piece.text)
        if len(pending) >= PIECES_PER_CALL or size >= PIECE_CHARS:  # bounded text in memory
            flush()
            size = 0
    flush()


def label_classes_note(plan: Plan, vocab: int, context: int) -> str:
    """How many samples, tokens and vocabulary classes the extraction saw (streamed over the flags)."""
    present = np.zeros(vocab, dtype=bool)
    stream, step = plan.stream, 1 << 20
    for start in range(0, stream.num_tokens, step):
        keep = np.flatnonzero(np.asarray(stream.next_same[start : start + step], dtype=bool))
        present[np.asarray(stream.tokens[keep + start + 1])] = True
    return (
        f"next-token extraction: {plan.num_samples:,} samples from {stream.num_tokens:,} tokens in windows "
        f"of {context}; {int(present.sum()):,} of the {vocab:,} vocabulary classes occur as labels"
    )


def extract_next_token(
    folder: Path | str,
    corpus: Path | str,
    out: Path | str,
    *,
    context: int | None = None,
    text_column: str = "text",
    device: torch.device | str = "cpu",
    tracker: Tracker | None = None,
    tokens_per_batch: int = TOKENS_PER_BATCH,
    ctx: DistributedContext | None = None,
    lm: CausalLM | None = None,
) -> Path:
    """Write the next-token dump of ``corpus`` through the causal LM in ``folder`` to ``out`` (see the
    module's docstring); a partial dump left by an interrupted run with the same inputs is continued.
    ``lm``: the model of ``folder`` when the caller loaded it already."""
    tracker = tracker or SilentTracker()
    corpus, target = Path(corpus), output_target(out)
    lm = lm or load_causal_lm(folder)
    context = resolve_context(lm, context)
    key = extraction_key(lm, corpus, context, text_column)
    ctx = ctx or DistributedContext.from_env(device)
    device = ctx.device  # under torchrun with CUDA: this rank's GPU
    model = lm.model.to(device)

    def tokenize(folder: Path) -> TokenStream:
        return tokenize_corpus(lm, corpus, folder, text_column)

    # tokenized once: under torchrun by rank 0 only, the other ranks memory-map its stream
    with corpus_stream(tokenize, corpus, target, ctx) as stream:
        plan = plan_windows(stream, context, max(1, tokens_per_batch // context))
        if plan.num_samples == 0:
            raise InputError(f"{corpus}: no next-token samples (no document has two tokens)")
        note = label_classes_note(plan, int(lm.head.out_features), context)
        first, stop = ctx.row_range(plan.num_batches)
        offset = plan.batch_rows(first)
        partial = partial_path(target, ctx.rank, ctx.world_size)
        part = PartialDump(
            partial, f"{key}:{ctx.rank}/{ctx.world_size}", plan.batch_rows(stop) - offset, lm.feature_dim
        )
        try:
            _run_batches(lm, plan, part, first, stop, offset, device, tracker)
        except BaseException as error:
            part.fail(error)
            raise
        part.close()
    del model
    attrs = {
        "checkpoint_sha256": lm.sha256,
        "checkpoint_path": str(lm.folder),
        "dataset": next_token_dataset(corpus),
        "task": "next-token",
        "context": str(context),
        "head": lm.head_name,
        "notes": json.dumps([note]),
    }
    if ctx.distributed:
        ctx.barrier()  # every part complete
        if ctx.is_main:
            parts = [partial_path(target, rank, ctx.world_size) for rank in range(ctx.world_size)]
            joined = join_parts(parts, partial_path(target), key, plan.num_samples, lm.feature_dim)
            finish(joined, target, attrs, lm.head.weight, lm.head.bias, lm.head_name)
        ctx.barrier()  # the dump is in place for every rank
        return target
    return finish(partial, target, attrs, lm.head.weight, lm.head.bias, lm.head_name)


def _run_batches(
    lm: CausalLM,
    plan: Plan,
    part: PartialDump,
    first: int,
    stop: int,
    offset: int,
    device: torch.device,
    tracker: Tracker,
) -> None:
    done = part.batches_done
    windows = min(stop * plan.per_batch, plan.num_windows) - first * plan.per_batch
    with tracker.stage("extract next-token", windows, unit="windows") as advance, torch.inference_mode():
        advance(min((first + done) * plan.per_batch, plan.num_windows) - first * plan.per_batch)
        for batch in range(first + done, stop):
            ids, attention, samples, labels = batch_arrays(plan, batch)
            hidden = final_hidden(
                lm, torch.from_numpy(ids).to(device), torch.from_numpy(attention).to(device)
            )
            features = hidden[torch.from_numpy(samples).to(device)]
            part.write(plan.batch_rows(batch) - offset, features, labels, batch - first + 1)
            advance(ids.shape[0])
