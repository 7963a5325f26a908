"""Next-token extraction from causal LM folders built locally (GPT-2 tied, Llama untied, GPT-J with a
bias): the dump's features are the model's own last hidden states (after the final norm) at the kept
positions, its labels the next tokens, its head the unembedding; padding and document boundaries give no
sample; an interrupted extraction resumes; the cache key covers context and corpus; the CLI runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tiny_lm import build, write_tokens
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.core.progress import Advance, SilentTracker
from nc_audit.io.dumps.token_dump import partial_path
from nc_audit.measurement.next_token_cache import cached_next_token_dump
from nc_audit.models.causal_lm import load_causal_lm, load_tokenizer
from nc_audit.models.next_token import extract_next_token

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("lms")
    return {
        "gpt2": build(root / "gpt2", "gpt2"),
        "llama": build(root / "llama", "llama", tie_word_embeddings=False),
        "gptj": build(root / "gptj", "gptj"),
    }


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def read_dump(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as handle:
        found = {key: handle[key][()] for key in ("features", "labels", "head/weight")}
        found["head/bias"] = handle["head/bias"][()] if "head/bias" in handle else None
        found["attrs"] = dict(handle.attrs)
    return found


def reference(folder: Path, documents: list[list[int]], context: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's own hidden_states[-1] at every position whose next token is in its document, one
    unpadded forward per window of the concatenated stream."""
    model = load_causal_lm(folder).model
    stream = np.concatenate([np.asarray(doc, dtype=np.int64) for doc in documents])
    same = np.concatenate([np.r_[np.ones(len(doc) - 1), 0] for doc in documents]).astype(bool)
    features, labels = [], []
    with torch.inference_mode():
        for start in range(0, stream.size, context):
            ids = torch.from_numpy(stream[start : start + context])[None]
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
            keep = np.flatnonzero(same[start : start + context])
            features.append(hidden[torch.from_numpy(keep)].numpy())
            labels.append(stream[keep + start + 1])
    return np.concatenate(features), np.concatenate(labels)


def documents_of(seed: int, vocab: int, sizes: tuple[int, ...]) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size).tolist() for size in sizes]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gptj"])
def test_features_labels_and_head_are_the_models_own(
    models: dict[str, tuple[Path, Path]], tmp_path: Path, arch: str
) -> None:
    folder, _ = models[arch]
    lm = load_causal_lm(folder)
    # 1-token document (no sample), a boundary inside a window, a short padded last window
    documents = documents_of(1, lm.vocab_size, (23, 1, 40, 9, 17))
    corpus = write_tokens(tmp_path / "tokens.npy", documents)
    dump = extract_next_token(folder, corpus, tmp_path / "d.h5", context=16, tokens_per_batch=48)
    found = read_dump(dump)
    features, labels = reference(folder, documents, 16)
    assert found["features"].shape == (sum(len(d) - 1 for d in documents), lm.feature_dim)
    np.testing.assert_array_equal(found["labels"], labels)
    np.testing.assert_allclose(found["features"], features, rtol=1e-4, atol=1e-5)
    model = lm.model
    np.testing.assert_array_equal(found["head/weight"], model.lm_head.weight.detach().double().numpy())
    if arch == "gpt2":  # tied: the unembedding is the input embedding
        np.testing.assert_array_equal(
            found["head/weight"], model.transformer.wte.weight.detach().double().numpy()
        )
    if arch == "gptj":
        np.testing.assert_array_equal(found["head/bias"], model.lm_head.bias.detach().double().numpy())
    else:
        assert found["head/bias"] is None
    assert found["attrs"]["task"] == "next-token"


def test_text_corpus_labels_are_the_tokenizers_ids(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, _ = models["gpt2"]
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sees the dog.\nthe dog sleeps.\n\n\n  \nthe old king hears a storm.\n")
    dump = extract_next_token(folder, corpus, tmp_path / "d.h5", context=8)
    tokenizer = load_tokenizer(folder)
    docs = ["the cat sees the dog.\nthe dog sleeps.\n", "the old king hears a storm.\n"]
    ids = [tokenizer(doc, add_special_tokens=False)["input_ids"] for doc in docs]
    expected = np.concatenate([doc[1:] for doc in ids])
    np.testing.assert_array_equal(read_dump(dump)["labels"], expected)


def test_jsonl_corpus_reads_the_text_column(models: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    folder, _ = models["gpt2"]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        json.dumps({"body": "the cat sees the dog."}) + "\n\n" + json.dumps({"body": "a storm."}) + "\n"
    )
    dump = extract_next_token(folder, corpus, tmp_path / "d.h5", context=8, text_column="body")
    tokenizer = load_tokenizer(folder)
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("the cat sees the dog.", "a storm.")]
    np.testing.assert_array_equal(read_dump(dump)["labels"], np.concatenate([doc[1:] for doc in ids]))
    result = invoke("extract", folder, "-d", corpus, "--task", "next-token", "-o", tmp_path / "x.h5")
    assert result.exit_code == 2 and "has no string field 'text'" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_token_ids_beyond_the_vocabulary_are_refused_before_any_forward(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, _ = models["llama"]
    vocab = load_causal_lm(folder).vocab_size
    corpus = write_tokens(tmp_path / "tokens.npy", [[1, 2, 3], [4, vocab]])
    result = invoke("extract", folder, "-d", corpus, "--task", "next-token", "-o", tmp_path / "x.h5")
    assert result.exit_code == 2, result.output
    assert str(corpus) in result.output and f"token id {vocab}" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.h5").exists() and not partial_path(tmp_path / "x.h5").exists()


class Interrupt:
    """A tracker that raises KeyboardInterrupt once ``after`` windows were extracted; counts windows."""

    def __init__(self, after: int | None) -> None:
        self.after, self.seen = after, 0
        self.started: int | None = None

    @contextlib.contextmanager
    def stage(self, description: str, total: int | None, unit: str = "") -> Iterator[Advance]:
        def advance(n: int) -> None:
            if self.started is None:
                self.started = n  # the windows a resumed run skips
                return
            self.seen += n
            if self.after is not None and self.seen >= self.after:
                raise KeyboardInterrupt

        yield advance


def test_an_interrupted_extraction_resumes_where_it_stopped(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, corpus = models["gpt2"]
    whole = extract_next_token(folder, corpus, tmp_path / "whole.h5", context=16, tokens_per_batch=64)
    out = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        extract_next_token(folder, corpus, out, context=16, tokens_per_batch=64, tracker=Interrupt(12))
    partial = partial_path(out)
    assert partial.is_file() and not out.exists()
    with h5py.File(partial, "r") as handle:
        assert int(handle.attrs["batches_done"]) == 3  # 4 windows a batch
    resumed = Interrupt(None)
    extract_next_token(folder, corpus, out, context=16, tokens_per_batch=64, tracker=resumed)
    assert resumed.started == 12 and not partial.exists()
    a, b = read_dump(whole), read_dump(out)
    np.testing.assert_array_equal(a["features"], b["features"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    # another context does not resume the partial rows of this one
    with pytest.raises(KeyboardInterrupt):
        extract_next_token(folder, corpus, out, context=16, tokens_per_batch=64, tracker=Interrupt(8))
    other = Interrupt(None)
    extract_next_token(folder, corpus, out, context=32, tokens_per_batch=64, tracker=other)
    assert other.started == 0


def test_cache_key_covers_context_and_corpus(models: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    folder, corpus = models["gpt2"]
    cache = tmp_path / "cache"
    first, hit = cached_next_token_dump(
        folder, str(corpus), cache_dir=cache, context=16, tracker=SilentTracker()
    )
    assert not hit
    assert cached_next_token_dump(folder, str(corpus), cache_dir=cache, context=16) == (first, True)
    other, hit = cached_next_token_dump(folder, str(corpus), cache_dir=cache, context=32)
    assert not hit and other != first
    changed = tmp_path / "corpus.txt"
    changed.write_text(corpus.read_text() + "\nthe end.\n")
    assert cached_next_token_dump(folder, str(changed), cache_dir=cache, context=16)[0] not in (first, other)


def test_an_unproven_next_token_entry_is_never_reused(
    models: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A next-token cache entry is proven like any other: one planted from a project's cache folder (its
    proof missing) is ignored and left as it is; the features come from the user's own cache."""
    folder, corpus = models["gpt2"]
    project = tmp_path / "project-cache"
    planted, hit = cached_next_token_dump(folder, str(corpus), cache_dir=project, context=16)
    assert not hit
    planted.with_name(planted.name + ".proof").unlink()  # what a pull request ships: a dump, no proof
    before = planted.read_bytes()
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "own"))
    notes: list[str] = []
    path, hit = cached_next_token_dump(
        folder, str(corpus), cache_dir=project, context=16, on_rebuild=notes.append
    )
    assert not hit and path.parent == tmp_path / "own" and path.name == planted.name
    assert planted.read_bytes() == before and "ignored" in notes[0]
    assert cached_next_token_dump(folder, str(corpus), cache_dir=project, context=16)[0] == path


def test_measure_a_llama_folder_on_a_text_corpus(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, corpus = models["llama"]
    result = invoke(
        "measure", folder, "--data", corpus, "--task", "next-token", "--context", "32",
        "--cache-dir", tmp_path / "cache", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    vocab = load_causal_lm(folder).head.out_features
    assert report["checkpoint"]["path"] == str(folder)
    assert any("vocabulary classes occur as labels" in note for note in report["notes"])
    assert report["metrics"]["nc1"] >= 0 and report["features"]["num_classes"] <= vocab


def test_a_classifier_folder_is_not_a_language_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="save_pretrained folder"):
        load_causal_lm(tmp_path / "missing")


@pytest.mark.parametrize("kind", ["fifo", "link-out", "config-path"])
def test_tokenizer_files_are_read_only_inside_the_folder(
    models: dict[str, tuple[Path, Path]], tmp_path: Path, kind: str
) -> None:
    source, corpus = models["gpt2"]
    folder = tmp_path / "model"
    shutil.copytree(source, folder)
    tokenizer = folder / "tokenizer.json"
    if kind == "fifo":
        tokenizer.unlink()
        os.mkfifo(tokenizer)
    elif kind == "link-out":
        outside = tmp_path / "outside.json"
        tokenizer.rename(outside)
        tokenizer.symlink_to(outside)
    else:
        config = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps(config | {"vocab_file": "/etc/passwd"}))
    result = invoke("extract", folder, "-d", corpus, "--task", "next-token", "-o", tmp_path / "x.h5")
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and str(folder) in result.output


def test_a_partial_dump_that_links_elsewhere_is_started_over(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, corpus = models["gpt2"]
    out = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        extract_next_token(folder, corpus, out, context=16, tokens_per_batch=64, tracker=Interrupt(8))
    victim = tmp_path / "victim.h5"
    with h5py.File(partial_path(out), "r+") as handle, h5py.File(victim, "w") as other:
        other.create_dataset("features", data=handle["features"][()])
        del handle["features"]
        handle["features"] = h5py.ExternalLink(str(victim), "features")
    before = victim.read_bytes()
    restarted = Interrupt(None)
    extract_next_token(folder, corpus, out, context=16, tokens_per_batch=64, tracker=restarted)
    assert restarted.started == 0 and victim.read_bytes() == before


def test_classification_options_and_a_corpus_without_the_task_are_refused(
    models: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, corpus = models["gpt2"]
    result = invoke("measure", folder, "--data", corpus, "--task", "next-token", "--head", "transformer.h.0")
    assert result.exit_code == 2 and "--head: not used by --task next-token" in result.output, result.output
    result = invoke("extract", folder, "--data", corpus, "-o", tmp_path / "x.h5")
    assert result.exit_code == 2 and "with --task next-token" in result.output, result.output
    assert not (tmp_path / "x.h5").exists()
