"""Specification of the offline datasets: built-ins, user files, splits, determinism and canonical specs."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nc_audit.core.errors import InputError
from nc_audit.io.data.datasets import BUILTIN_DATASETS, ArrayDataset, dataset_splits, load_dataset


def _sorted_rows(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    table = np.concatenate([inputs.reshape(len(labels), -1), labels[:, None]], axis=1)
    return table[np.lexsort(table.T[::-1])]


def test_builtin_names() -> None:
    assert set(BUILTIN_DATASETS) == {"digits", "gaussian", "modadd"}


def test_digits_split_is_fixed_disjoint_complete_and_stratified() -> None:
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1347, 450)  # 1797 images, 25 % (rounded up) for test
    assert (
        train.input_shape == (64,)
        and train.inputs.dtype == torch.float32
        and train.labels.dtype == torch.int64
    )
    assert float(train.inputs.min()) == 0.0 and float(train.inputs.max()) == 1.0
    bunch = load_digits()
    together = _sorted_rows(
        np.concatenate([train.inputs.numpy(), test.inputs.numpy()]) * 16.0,
        np.concatenate([train.labels.numpy(), test.labels.numpy()]),
    )
    np.testing.assert_array_equal(together, _sorted_rows(bunch.data.astype(np.float32), bunch.target))
    per_class = np.bincount(bunch.target, minlength=10)
    assert np.all(np.abs(np.bincount(test.labels.numpy(), minlength=10) - per_class / 4) <= 1)
    again = load_dataset("digits", "test")
    assert torch.equal(again.inputs, test.inputs) and torch.equal(again.labels, test.labels)
    assert train.num_classes == 10 and train.spec == "digits:layout=flat" and train.name == "digits"


def test_digits_image_layout_is_the_flat_rows_reshaped() -> None:
    flat, image = load_dataset("digits", "test"), load_dataset("digits:layout=image", "test")
    assert image.input_shape == (1, 8, 8) and image.spec == "digits:layout=image"
    assert torch.equal(image.inputs.reshape(-1, 64), flat.inputs)


def test_gaussian_is_deterministic_by_seed() -> None:
    spec = "gaussian:classes=4,dim=8,samples=400,seed=3"
    a, b = load_dataset(spec), load_dataset(spec)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    other = load_dataset("gaussian:classes=4,dim=8,samples=400,seed=4")
    assert not torch.equal(a.inputs, other.inputs)
    test = load_dataset(spec, "test")
    assert len(test) == 400 and not torch.equal(a.inputs, test.inputs)


def test_gaussian_shapes_balance_and_class_centres() -> None:
    data = load_dataset("gaussian:classes=4,dim=8,samples=2000,separation=4,seed=0")
    assert data.inputs.shape == (2000, 8) and data.input_shape == (8,) and data.num_classes == 4
    assert torch.bincount(data.labels).tolist() == [500, 500, 500, 500]
    for c in range(4):
        rows = data.inputs[data.labels == c].double()  # (500, 8)
        assert abs(float(rows.mean(0).norm()) - 4.0) < 0.5  # centre norm = separation
        assert abs(float(rows.var(0).mean()) - 1.0) < 0.15  # unit noise


def test_gaussian_imbalance_orders_class_sizes() -> None:
    counts = torch.bincount(load_dataset("gaussian:classes=3,samples=700,imbalance=4").labels).tolist()
    assert sum(counts) == 700 and counts[0] > counts[1] > counts[2]
    assert 3.5 < counts[0] / counts[2] < 4.5


def test_modadd_labels_and_partition_of_all_pairs() -> None:
    p = 13
    train, test = (
        load_dataset(f"modadd:p={p},train_fraction=0.4,seed=0"),
        load_dataset(f"modadd:p={p}", "test"),
    )
    for split in (train, test):
        a, b = split.inputs[:, 0], split.inputs[:, 1]
        assert split.inputs.dtype == torch.int64 and torch.equal(split.labels, (a + b) % p)
    assert len(train) == round(0.4 * p * p) and len(train) + len(test) == p * p
    pairs = {tuple(row) for row in torch.cat([train.inputs, test.inputs]).tolist()}
    assert pairs == {(a, b) for a in range(p) for b in range(p)}
    assert train.num_classes == p and train.input_shape == (2,)


def test_modadd_seed_changes_the_train_pairs() -> None:
    same = load_dataset("modadd:p=11,seed=1"), load_dataset("modadd:p=11,seed=1")
    assert torch.equal(same[0].inputs, same[1].inputs)
    assert not torch.equal(same[0].inputs, load_dataset("modadd:p=11,seed=2").inputs)


def test_canonical_specs_sort_keys_and_fill_defaults() -> None:
    assert (
        load_dataset("gaussian").spec
        == "gaussian:classes=10,dim=32,imbalance=1.0,samples=2000,seed=0,separation=4.0"
    )
    assert load_dataset("gaussian:seed=0, separation=4,classes=10").spec == load_dataset("gaussian").spec
    assert load_dataset("modadd").spec == "modadd:p=97,seed=0,train_fraction=0.4"
    assert load_dataset("modadd:train_fraction=0.40,p=97").spec == load_dataset("modadd").spec
    assert load_dataset("modadd:p=7").spec != load_dataset("modadd:p=7,seed=1").spec


@pytest.mark.parametrize(
    ("spec", "split", "message"),
    [
        ("mnist", "train", "built-in datasets: digits, gaussian, modadd"),
        ("gaussian:colour=3", "train", "unknown option 'colour'"),
        ("gaussian:classes=1", "train", "classes='1' must be an integer >= 2"),
        ("gaussian:classes=ten", "train", "classes='ten' must be an integer >= 2"),
        ("gaussian:separation=nan", "train", "separation='nan' must be a number"),
        ("gaussian:seed=1,seed=2", "train", "option 'seed' given twice"),
        ("gaussian:seed", "train", "option 'seed' is not key=value"),
        ("gaussian:classes=10,samples=5", "train", "samples=5 must be at least classes=10"),
        ("modadd:train_fraction=1", "train", "leaves a split empty"),
        ("digits:seed=1", "train", "unknown option 'seed'"),
        ("digits", "validation", "no split 'validation'; available splits: train, test"),
    ],
)
def test_bad_specs_raise_input_error(spec: str, split: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        load_dataset(spec, split)


def test_batches_cover_the_split_in_order() -> None:
    data = load_dataset("modadd:p=7")
    batches = list(data.batches(8))
    assert [len(y) for _, y in batches] == [8, 8, 4]  # round(0.4 * 49) = 20
    assert torch.equal(torch.cat([x for x, _ in batches]), data.inputs)
    with pytest.raises(InputError):
        next(data.batches(0))


def test_user_npz_without_groups_is_the_train_split_and_any_split_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, inputs=np.arange(12, dtype=np.float64).reshape(6, 2), labels=np.array([0, 1, 2, 0, 1, 4]))
    data = load_dataset(str(path))
    assert isinstance(data, ArrayDataset) and data.inputs.dtype == torch.float32
    assert data.labels.tolist() == [0, 1, 2, 0, 1, 4] and data.num_classes == 5 and data.input_shape == (2,)
    assert dataset_splits(str(path)) == ["train"]
    test = load_dataset(str(path), "test")  # a plain val.npz is the split it is asked to be
    assert test.split == "test" and torch.equal(test.inputs, data.inputs)


def test_user_hdf5_with_split_groups(tmp_path: Path) -> None:
    path = tmp_path / "mine.h5"
    with h5py.File(path, "w") as handle:
        handle["train/inputs"] = np.ones((4, 1, 3, 3), dtype=np.float16)
        handle["train/labels"] = np.array([0, 1, 0, 1], dtype=np.int32)
        handle["test/inputs"] = np.zeros((2, 1, 3, 3), dtype=np.float16)
        handle["test/labels"] = np.array([2, 1], dtype=np.uint8)
    assert sorted(dataset_splits(str(path))) == ["test", "train"]
    test = load_dataset(str(path), "test")
    assert test.inputs.shape == (2, 1, 3, 3) and test.labels.dtype == torch.int64
    assert test.num_classes == 3 == load_dataset(str(path), "train").num_classes  # counted over all splits


def test_user_file_spec_is_absolute_with_its_hash_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mine.npz"
    np.savez(path, inputs=np.zeros((3, 2)), labels=np.array([0, 1, 1]))
    monkeypatch.chdir(tmp_path)
    spec = load_dataset("mine.npz").spec
    assert spec.startswith(f"{path.resolve()}:sha256=") and spec == load_dataset(str(path)).spec
    assert torch.equal(load_dataset(spec).labels, torch.tensor([0, 1, 1]))
    np.savez(path, inputs=np.zeros((3, 2)), labels=np.array([0, 1, 0]))
    assert load_dataset("mine.npz").spec != spec
    with pytest.raises(InputError, match="contents changed"):
        load_dataset(spec)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((2, 2)), "y": np.zeros(2)}, "needs arrays inputs and labels; it has: x, y"),
        ({"inputs": np.zeros((2, 2))}, "it has: inputs"),
        (
            {"inputs": np.zeros((2, 2)), "labels": np.array([0.0, 1.0])},
            "labels must be integers, found dtype float64",
        ),
        ({"inputs": np.zeros((2, 2)), "labels": np.array([0, -1])}, "1 negative values"),
        ({"inputs": np.zeros((3, 2)), "labels": np.array([0, 1])}, "must be (N, ...) and (N,)"),
        (
            {
                "train/inputs": np.zeros((2, 2)),
                "train/labels": np.array([0, 1]),
                "test/inputs": np.zeros((2, 2)),
            },
            "test/labels",
        ),
    ],
)
def test_bad_user_files_raise_input_error_naming_the_file(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "broken.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        load_dataset(str(path))
    assert "broken.npz" in str(caught.value)


def test_unreadable_or_missing_user_files(tmp_path: Path) -> None:
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match=re.escape("junk.h5: cannot read")):
        load_dataset(str(tmp_path / "junk.h5"))
    with pytest.raises(InputError, match="no such file"):
        load_dataset(str(tmp_path / "absent.npz"))
