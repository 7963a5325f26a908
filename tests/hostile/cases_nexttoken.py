"""Hostile inputs of ``--task next-token`` (issue 23): a causal LM folder's tokenizer files and the corpus.

The model folder is a tiny GPT-2 built once per process by scripts/make_tiny_lm.py (transformers, no
download) and copied into each case; every case must be refused with one line naming the culprit, before
a forward pass, and no byte outside the case's folder read.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from generate import REPO, SLOW_CASES, TRANSFORMERS_LOCK, Case, case, make_fifo


def _built() -> Path:
    with TRANSFORMERS_LOCK:
        return _build()


@functools.lru_cache(maxsize=1)
def _build() -> Path:
    """A tiny GPT-2 folder (vocab ~300, d 32, 2 layers) with its tokenizer, in a process-wide temp folder."""
    spec = importlib.util.spec_from_file_location("make_tiny_lm", REPO / "scripts" / "make_tiny_lm.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    out = Path(tempfile.mkdtemp(prefix="nc-hostile-lm-"))
    folder, _ = builder.build(out, "gpt2", vocab=300, embd=32, layers=2, documents=10, positions=64)
    return folder


def tiny_lm(root: Path) -> Path:
    folder = root / "lm"
    shutil.copytree(_built(), folder)
    return folder


def next_token(folder: Path, corpus: Path, root: Path) -> list[str]:
    return ["measure", str(folder), "--data", str(corpus), "--task", "next-token", "--context", "32",
            "--cache-dir", str(root / "cache"), "--no-progress"]  # fmt: skip


def text_corpus(root: Path) -> Path:
    corpus = root / "corpus.txt"
    corpus.write_text("the cat sees the dog.\n\nthe old king hears a storm.\n")
    return corpus


@case
def case_lm_token_id_beyond_vocab(root: Path) -> Case:
    folder = tiny_lm(root)
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    corpus = root / "tokens.npy"
    np.save(corpus, np.array([1, 2, 3, -1, 4, vocab], dtype=np.int64))
    return Case(
        "lm_token_id_beyond_vocab", 8,
        "a tokens.npy stream holding the id V (one past the vocabulary): refused naming the file, before any forward",
        [next_token(folder, corpus, root)],
        "error", culprits=[corpus.name], fragments=[f"token id {vocab}", "vocabulary"], outputs=["cache"],
    )  # fmt: skip


@case
def case_lm_tokenizer_config_path(root: Path) -> Case:
    folder = tiny_lm(root)
    config = folder / "tokenizer_config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"vocab_file": "/etc/passwd"}))
    return Case(
        "lm_tokenizer_config_path", 1,
        "tokenizer_config.json names vocab_file /etc/passwd (a path out of the folder): refused, never read",
        [next_token(folder, text_corpus(root), root)],
        "error", culprits=[config.name], fragments=["vocab_file"], outputs=["cache"],
    )  # fmt: skip


@case
def case_lm_tokenizer_fifo(root: Path) -> Case:
    folder = tiny_lm(root)
    (folder / "tokenizer.json").unlink()
    fifo = make_fifo(folder / "tokenizer.json")
    return Case(
        "lm_tokenizer_fifo", 11,
        "the folder's tokenizer.json is a FIFO nobody writes to: refused, never hang",
        [next_token(folder, text_corpus(root), root)],
        "error", culprits=[fifo.name], fragments=["not a regular file"], outputs=["cache"], timeout=30,
    )  # fmt: skip


@case
def case_lm_corpus_fifo(root: Path) -> Case:
    folder = tiny_lm(root)
    corpus = make_fifo(root / "corpus.txt")
    return Case(
        "lm_corpus_fifo", 11,
        "--data corpus.txt is a FIFO nobody writes to: refused, never hang",
        [next_token(folder, corpus, root)],
        "error", culprits=[corpus.name], fragments=["not a regular file"], outputs=["cache"], timeout=30,
    )  # fmt: skip


@case
def case_lm_jsonl_deep(root: Path) -> Case:
    folder = tiny_lm(root)
    corpus = root / "corpus.jsonl"
    corpus.write_text("[" * 200_000 + "]" * 200_000 + "\n")
    return Case(
        "lm_jsonl_deep", 11,
        "a .jsonl corpus line nested 200,000 deep: one line naming the file and the line (no RecursionError trace)",
        [next_token(folder, corpus, root)],
        "error", culprits=[corpus.name], fragments=["line 1"], outputs=["cache"],
    )  # fmt: skip


for _name in (
    "lm_token_id_beyond_vocab",
    "lm_tokenizer_config_path",
    "lm_tokenizer_fifo",
    "lm_corpus_fifo",
    "lm_jsonl_deep",
):
    SLOW_CASES[_name] = "builds and loads a transformers model (the import alone takes seconds)"
