"""Bad data files give one line naming the file and the cause (issue 19, section 9): an .npz header that
claims terabytes, object arrays, token ids beyond the vocabulary, inputs of the wrong width, a float64
row whose squares overflow, a split of one class."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from runs import SAMPLES, invoke

from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.save import save_checkpoint
from nc_audit.io.data.datasets import load_dataset
from nc_audit.models.registry import architecture_record, build_model

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")
CHECKPOINT = SAMPLES / "epoch_0030.pt"  # digits MLP: inputs (N, 64), 10 classes


def npz_with_header(path: Path, shape: tuple[int, ...], rows: int = 60) -> Path:
    """An .npz whose inputs.npy header claims ``shape`` but holds ``rows`` × 64 float32 values."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
    member.write(np.zeros((rows, 64), np.float32).tobytes())
    labels = io.BytesIO()
    np.save(labels, np.arange(rows) % 10)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inputs.npy", member.getvalue())
        archive.writestr("labels.npy", labels.getvalue())
    return path


def one_error_line(result: object, *fragments: str) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = [line for line in result.stderr.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_an_npz_header_claiming_terabytes_is_refused_before_allocating(tmp_path: Path) -> None:
    path = npz_with_header(tmp_path / "huge.npz", (10**10, 64))
    with pytest.raises(InputError, match="claims shape") as error:
        load_dataset(str(path))
    assert str(path) in str(error.value) and "inputs.npy" in str(error.value)
    result = invoke("measure", CHECKPOINT, "--data", path, "--cache-dir", tmp_path / "cache")
    one_error_line(result, str(path), "claims shape (10000000000, 64)")


def test_an_npz_header_claiming_fewer_bytes_than_held_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="claims shape"):
        load_dataset(str(npz_with_header(tmp_path / "short.npz", (10, 64))))


def test_an_honest_compressed_npz_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    np.savez_compressed(path, inputs=np.ones((20, 64), np.float32), labels=np.arange(20) % 10)
    assert len(load_dataset(str(path))) == 20


def test_object_arrays_are_refused_naming_the_array(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, inputs=np.array([{"a": 1}] * 4, dtype=object), labels=np.arange(4))
    with pytest.raises(InputError, match=r"inputs\.npy: holds Python objects"):
        load_dataset(str(path))


def test_an_anchor_npy_header_is_checked_too(tmp_path: Path) -> None:
    from nc_audit.train.anchors import load_anchors

    path = tmp_path / "anchors.npy"
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 64)}
        )
        handle.write(np.zeros(16).tobytes())
    with pytest.raises(InputError, match="claims shape"):
        load_anchors(path, 10, 64)


@pytest.mark.parametrize("command", ["measure", "extract"])
def test_inputs_of_the_wrong_width_name_the_file_and_both_widths(tmp_path: Path, command: str) -> None:
    path = tmp_path / "narrow.npz"
    np.savez(path, inputs=np.ones((30, 10), np.float32), labels=np.arange(30) % 10)
    out = ("--cache-dir", tmp_path / "cache") if command == "measure" else ("--out", tmp_path / "f.h5")
    result = invoke(command, CHECKPOINT, "--data", path, *out)
    one_error_line(result, str(path), "width 10", "expects 64")


@pytest.fixture(scope="module")
def transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    record = architecture_record("transformer", {"p": 11, "d_model": 8, "heads": 2, "d_mlp": 8}, 11)
    path = tmp_path_factory.mktemp("t") / "t.pt"
    save_checkpoint(path, build_model(record).state_dict(), record, {"step": 0})
    return path


@pytest.mark.parametrize(("bad", "shown"), [(500, "0..500"), (-2, "-2..10")])
def test_token_ids_outside_the_vocabulary_are_refused_before_the_forward_pass(
    tmp_path: Path, transformer: Path, bad: int, shown: str
) -> None:
    pairs = np.stack([np.arange(40) % 11, (np.arange(40) * 3) % 11], 1)
    pairs[3, 1] = bad
    path = tmp_path / "tokens.npz"
    np.savez(path, inputs=pairs, labels=pairs.sum(1) % 11)
    result = invoke("measure", transformer, "--data", path, "--cache-dir", tmp_path / "cache")
    one_error_line(result, str(path), shown, "vocabulary has 11 entries")


def test_one_float64_row_whose_squares_overflow_is_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 8))
    labels = np.arange(6000) % 5
    features = W[labels] + rng.normal(size=(6000, 8))
    features[5000] *= 1e200  # beyond the rows the scale is taken from
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as handle:
        handle["features"], handle["labels"], handle["head/weight"] = features, labels, W
    line = one_error_line(invoke("measure", path), str(path), "row 5000", "1 of 6000 feature rows")
    assert "6000 of 6000" not in line


@pytest.mark.parametrize("command", ["finetune", "interpolate"])
def test_a_split_of_one_class_is_named(tmp_path: Path, command: str) -> None:
    path = tmp_path / "one.npz"
    np.savez(path, inputs=np.ones((20, 64), np.float32), labels=np.zeros(20, np.int64))
    if command == "finetune":
        args = (
            "finetune",
            CHECKPOINT,
            "--data",
            path,
            "--cma-weight",
            "0.1",
            "--epochs",
            "1",
            "--out",
            tmp_path / "o",
        )
    else:
        args = ("interpolate", CHECKPOINT, SAMPLES / "epoch_0300.pt", "--data", path)
    one_error_line(invoke(*args), str(path), "every label is 0")
