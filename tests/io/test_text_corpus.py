"""Corpus reading for --task next-token (documents of .txt/.jsonl, ids of .npy, streamed) and the token
stream's samples: flags at document boundaries, window counts, padding masks and labels."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nc_audit.core.errors import InputError
from nc_audit.io.data import corpus as corpus_module
from nc_audit.io.data.corpus import Piece, corpus_sha256, text_pieces, token_blocks
from nc_audit.io.data.token_stream import (
    TokenStream,
    TokenStreamWriter,
    add_blocks,
    batch_arrays,
    plan_windows,
)


def no_check(ids: np.ndarray) -> None:
    return None


def stream_of(folder: Path, blocks: list[np.ndarray]) -> TokenStream:
    writer = TokenStreamWriter(folder, no_check)
    add_blocks(iter(blocks), writer)
    return writer.close()


def test_txt_documents_are_separated_by_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("\n\none\ntwo\n \t\n\nthree\n\n\nfour")
    assert list(text_pieces(path)) == [Piece("one\ntwo\n", True), Piece("three\n", True), Piece("four", True)]


def test_a_long_document_comes_in_pieces_of_one_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_module, "PIECE_CHARS", 10)
    path = tmp_path / "c.txt"
    path.write_text("aaaa\nbbbb\ncccc\n\ndd\n")
    assert list(text_pieces(path)) == [
        Piece("aaaa\nbbbb\n", True),  # cut at the first line end at or past 10 characters
        Piece("cccc\n", False),  # the same document goes on
        Piece("dd\n", True),
    ]


def test_jsonl_reads_the_column_and_names_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "a b"}) + "\n\n" + json.dumps({"text": "c", "x": 1}) + "\n")
    assert [piece.text for piece in text_pieces(path)] == ["a b", "c"]
    path.write_text(json.dumps({"text": "a"}) + "\n[1, 2]\n")
    with pytest.raises(InputError, match=r"c\.jsonl: line 2 has no string field 'text'"):
        list(text_pieces(path))
    path.write_text("{not json\n")
    with pytest.raises(InputError, match=r"line 1 is not JSON"):
        list(text_pieces(path))


def test_not_utf8_and_not_a_regular_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(InputError, match="not UTF-8"):
        list(text_pieces(path))
    fifo = tmp_path / "f.txt"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        list(text_pieces(fifo))
    with pytest.raises(InputError, match="not a regular file"):
        corpus_sha256(fifo)
    with pytest.raises(InputError, match=r"\.txt, \.jsonl or \.npy"):
        list(text_pieces(tmp_path / "c.csv"))


def test_npy_tokens_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.array([[1, 2]]))
    with pytest.raises(InputError, match="1-D integer array"):
        list(token_blocks(path))
    np.save(path, np.array([1.0, 2.0]))
    with pytest.raises(InputError, match="1-D integer array"):
        list(token_blocks(path))
    np.save(path, np.array([1, -2, 3]))
    with pytest.raises(InputError, match="entry 1 is -2"):
        list(token_blocks(path))
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"t\.npy"):
        list(token_blocks(path))
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match=r"not a readable \.npy"):
        list(token_blocks(path))


def test_flags_mark_document_ends_across_blocks_and_separators(tmp_path: Path) -> None:
    blocks = [np.array([5, 6, -1, -1, 7]), np.array([8, -1]), np.array([-1, 9, 10, 11])]
    stream = stream_of(tmp_path, blocks)
    np.testing.assert_array_equal(stream.tokens, [5, 6, 7, 8, 9, 10, 11])
    np.testing.assert_array_equal(stream.next_same, [1, 0, 1, 0, 1, 1, 0])


def test_pieces_of_one_document_continue_it(tmp_path: Path) -> None:
    writer = TokenStreamWriter(tmp_path, no_check)
    writer.add(np.array([1, 2]), True)
    writer.add(np.array([3]), False)
    writer.add(np.array([], dtype=np.int64), True)
    writer.add(np.array([4, 5]), True)
    stream = writer.close()
    np.testing.assert_array_equal(stream.next_same, [1, 1, 0, 1, 0])


def test_windows_padding_and_labels(tmp_path: Path) -> None:
    stream = stream_of(tmp_path, [np.array([1, 2, 3, 4, 5, -1, 6, 7, 8])])  # T = 8, documents 5 + 3
    plan = plan_windows(stream, context=3, per_batch=3)
    np.testing.assert_array_equal(plan.counts, [3, 2, 1])  # [1 2 3] [4 5|6] [7 8]
    assert plan.num_samples == 6 and plan.num_batches == 1
    ids, attention, samples, labels = batch_arrays(plan, 0)
    np.testing.assert_array_equal(ids, [[1, 2, 3], [4, 5, 6], [7, 8, 0]])  # the last window padded
    np.testing.assert_array_equal(attention, [[1, 1, 1], [1, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(samples, [[True, True, True], [True, False, True], [True, False, False]])
    np.testing.assert_array_equal(labels, [2, 3, 4, 5, 7, 8])  # a window's edge keeps its next token
    plan = plan_windows(stream, context=3, per_batch=2)
    assert plan.num_batches == 2 and plan.batch_rows(1) == 5
    ids, attention, samples, labels = batch_arrays(plan, 1)  # a short window alone is not padded
    np.testing.assert_array_equal(ids, [[7, 8]])
    np.testing.assert_array_equal(labels, [8])


@settings(max_examples=40, deadline=None)
@given(
    documents=st.lists(st.lists(st.integers(0, 50), min_size=0, max_size=12), min_size=1, max_size=8),
    context=st.integers(2, 7),
    per_batch=st.integers(1, 3),
)
def test_every_sample_is_a_next_token_in_its_document(
    tmp_path_factory: pytest.TempPathFactory, documents: list[list[int]], context: int, per_batch: int
) -> None:
    folder = tmp_path_factory.mktemp("s")
    separated = [x for i, doc in enumerate(documents) for x in ([-1] if i else []) + doc]
    stream = stream_of(folder, [np.asarray(separated[:5], np.int64), np.asarray(separated[5:], np.int64)])
    expected = [doc[i + 1] for doc in documents for i in range(len(doc) - 1)]
    plan = plan_windows(stream, context, per_batch)
    found = [batch_arrays(plan, b)[3] for b in range(plan.num_batches)]
    labels = np.concatenate(found) if found else np.zeros(0, np.int64)
    np.testing.assert_array_equal(labels, expected)
    assert plan.num_samples == len(expected)
