"""One measurement pipeline (issue 20, item 5): features held in memory — ``measure_arrays``,
``measure(model, loader)``, the Monitor — go through the passes, the metrics and the report builder of a
dump, read through the same chunks, and no temporary file is written on the way."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from conftest import DumpWriter, make_etf_problem, make_random_problem
from reference import Problem, relative_difference

import nc_audit
from nc_audit.measurement.monitor import Monitor
from nc_audit.metrics.information import nc_targets
from nc_audit.report.model import Report

TOLERANCE = 1e-12


def assert_close(memory: Any, dump: Any, where: str) -> None:
    """Equal structures; floats to 1e-12."""
    if isinstance(dump, dict):
        assert isinstance(memory, dict) and memory.keys() == dump.keys(), where
        for key in dump:
            assert_close(memory[key], dump[key], f"{where}.{key}")
    elif isinstance(dump, float) and isinstance(memory, float):
        assert abs(memory - dump) <= TOLERANCE * max(1.0, abs(dump)), (where, memory, dump)
    else:
        assert memory == dump, where


def assert_same_report(memory: dict[str, Any], dump: dict[str, Any]) -> None:
    """Every metric to 1e-12 (relative, absolute near 0), the same nulls, and the same conventions,
    notes, targets, details and features (but the dump's path)."""
    assert memory["metrics"].keys() == dump["metrics"].keys()
    for key, value in dump["metrics"].items():
        other = memory["metrics"][key]
        if value is None or other is None:
            assert value is None and other is None, key
        else:
            assert abs(other - value) <= TOLERANCE * max(1.0, abs(value)), (key, other, value)
    assert memory["conventions"] == dump["conventions"]
    assert memory["notes"] == dump["notes"]
    assert memory["targets"] == dump["targets"]
    assert_close(memory["details"], dump["details"], "details")
    assert memory["features"] == {**dump["features"], "path": None}
    assert memory["checkpoint"] == {"path": None, "sha256": None, "head": "head"}


def test_arrays_equal_their_dump_on_random_data(write_dump: DumpWriter) -> None:
    p = make_random_problem(seed=4)
    dump = write_dump(p)
    for options in ({}, {"chunk_rows": 97}, {"sample_level": True}, {"decision_samples": 300}):
        from_dump = nc_audit.measure(dump, **options).to_dict()
        from_memory = nc_audit.measure_arrays(p.features, p.labels, p.W, p.b, **options).to_dict()
        assert_same_report(from_memory, from_dump)


def test_arrays_equal_their_dump_for_a_simplex_etf_and_meet_the_closed_form(write_dump: DumpWriter) -> None:
    """At an exact simplex ETF with a self-dual head: NC1 = NC3 = HDR = 0 and MIR = MIR_NC(C), both ways."""
    C = 6
    p = make_etf_problem(C, 9, per_class=4)
    from_dump = nc_audit.measure(write_dump(p)).to_dict()
    from_memory = nc_audit.measure_arrays(p.features, p.labels, p.W, p.b).to_dict()
    assert_same_report(from_memory, from_dump)
    metrics = from_memory["metrics"]
    for key in ("nc1", "nc3", "hdr"):
        assert abs(metrics[key]) <= TOLERANCE, (key, metrics[key])
    mir_nc = nc_targets(C)["mir"]
    assert mir_nc is not None and 0.0 < mir_nc < 1.0
    assert abs(metrics["mir"] - mir_nc) <= TOLERANCE
    assert from_memory["details"]["accuracy"] == 1.0 and metrics["nc4"] == 0.0


def test_held_out_splits_follow_the_dump_rules(tmp_path: Path) -> None:
    """Decisions on ``test`` with the ``train`` means (Papyan's protocol), or the test split's own means."""
    train, test = make_random_problem(seed=2), make_random_problem(seed=3)
    path = tmp_path / "splits.h5"
    with h5py.File(path, "w") as handle:
        for name, part in (("train", train), ("test", test)):
            handle[f"{name}/features"], handle[f"{name}/labels"] = part.features, part.labels
        handle["head/weight"], handle["head/bias"] = train.W, train.b
    features = {"train": train.features, "test": test.features}
    labels = {"train": train.labels, "test": test.labels}
    for options in ({"split": "test"}, {"split": "test", "means_split": "test"}, {}):
        from_dump = nc_audit.measure(path, **options).to_dict()
        from_memory = nc_audit.measure_arrays(features, labels, train.W, train.b, **options).to_dict()
        assert_same_report(from_memory, from_dump)
    assert nc_audit.measure_arrays(features, labels, train.W, split="test").features["means_split"] == "train"


def test_extreme_float64_features_are_read_at_the_dump_scale(write_dump: DumpWriter) -> None:
    """float64 features of magnitude 1e200 are read multiplied by the same power of two as a dump's."""
    p = make_random_problem(seed=5)
    huge = Problem(p.features * 1e200, p.labels, p.W, p.b * 1e200)
    from_dump = nc_audit.measure(write_dump(huge)).to_dict()
    from_memory = nc_audit.measure_arrays(huge.features, huge.labels, huge.W, huge.b).to_dict()
    assert_same_report(from_memory, from_dump)
    assert any("multiplied by 2^" in note for note in from_memory["notes"])


def test_float32_tensors_equal_the_float32_dump(write_dump: DumpWriter) -> None:
    p = make_random_problem(seed=6)
    from_dump = nc_audit.measure(write_dump(p, feature_dtype=np.float32)).to_dict()
    from_memory = nc_audit.measure_arrays(
        torch.from_numpy(p.features.astype(np.float32)), torch.from_numpy(p.labels), p.W, p.b
    ).to_dict()
    assert_same_report(from_memory, from_dump)
    assert from_memory["features"]["dtype"] == "float32"


def test_a_monitor_record_is_the_report_of_its_batch(tmp_path: Path, write_dump: DumpWriter) -> None:
    """The Monitor's record is the measurement of the batch as a one-split dump named 'batch', plus its
    step, label, accuracy and extra scalars."""
    p = make_random_problem(seed=7)
    path = tmp_path / "batch.h5"
    with h5py.File(path, "w") as handle:
        handle["batch/features"], handle["batch/labels"] = p.features, p.labels
        handle["head/weight"], handle["head/bias"] = p.W, p.b
    record = Monitor(tmp_path / "run.jsonl", fail_on=[]).log(
        3, torch.from_numpy(p.features), torch.from_numpy(p.labels), torch.from_numpy(p.W),
        torch.from_numpy(p.b), loss=0.5,
    )  # fmt: skip
    assert record is not None
    from_dump = nc_audit.measure(path, split="batch").to_dict()
    extra = {"accuracy": from_dump["details"]["accuracy"], "loss": 0.5}
    record = {**record, "metrics": {k: v for k, v in record["metrics"].items() if k not in extra}}
    assert_same_report({**record, "checkpoint": {**record["checkpoint"], "head": "head"}}, from_dump)
    assert record["step"] == 3 and record["label"] == "step 3"


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the in-memory path created a temporary file or opened an HDF5 file")


def test_no_temporary_file_and_no_hdf5_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """measure_arrays, measure(model, loader) and the Monitor neither make a temporary file nor open an
    HDF5 file, and leave the temporary folder as it was."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for name in ("TemporaryDirectory", "NamedTemporaryFile", "mkstemp", "mkdtemp", "SpooledTemporaryFile"):
        monkeypatch.setattr(tempfile, name, _refuse)
    monkeypatch.setattr(h5py, "File", _refuse)
    p = make_random_problem(seed=8)
    report = nc_audit.measure_arrays(p.features, p.labels, p.W, p.b, sample_level=True)
    assert isinstance(report, Report) and math.isfinite(report.metrics["nc1"])
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("body", torch.nn.Linear(12, 8))
    model.add_module("head", torch.nn.Linear(8, 7))
    X, y = torch.from_numpy(p.features).float(), torch.from_numpy(p.labels)
    loaders = {"train": [(X[:500], y[:500]), (X[500:], y[500:])], "test": [(X[:300], y[:300])]}
    by_model = nc_audit.measure(model, loaders, split="test", head="head")
    assert by_model.checkpoint["model"] == "Sequential" and by_model.features["means_split"] == "train"
    with torch.no_grad():
        Monitor(tmp_path / "run.jsonl", fail_on=[]).log(
            0, model.body(X), y, model.head.weight, model.head.bias
        )
    assert list(scratch.iterdir()) == []


def test_the_in_memory_path_is_not_a_dump_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of nc_audit's dump writer is called: the arrays are never written."""
    import nc_audit.io.dumps.writer as writer

    monkeypatch.setattr(writer, "write_dump", _refuse)
    p = make_random_problem(seed=9)
    assert nc_audit.measure_arrays(p.features, p.labels, p.W).metrics["nc1"] is not None


def test_the_caller_arrays_are_left_as_they_were() -> None:
    p = make_random_problem(seed=10)
    features, labels = p.features.copy(), p.labels.copy()
    nc_audit.measure_arrays(features, labels, p.W, p.b)
    assert features.flags.writeable and labels.flags.writeable
    assert np.array_equal(features, p.features) and np.array_equal(labels, p.labels)


@pytest.mark.cuda
def test_tensors_on_the_gpu_give_the_cpu_reports(tmp_path: Path, cuda_device: torch.device) -> None:
    """measure_arrays, metrics_from_arrays and the Monitor on device tensors measure on that device and
    give the CPU's numbers (run by make gpu-check; NC_AUDIT_TEST_CUDA_DEVICE=cpu checks the logic)."""
    from nc_audit.io.checkpoints.load import Head
    from nc_audit.measurement.compute import metrics_from_arrays

    p = make_random_problem(seed=11)
    H, y = torch.from_numpy(p.features).float(), torch.from_numpy(p.labels)
    W, b = torch.from_numpy(p.W), torch.from_numpy(p.b)
    on = [t.to(cuda_device) for t in (H, y, W, b)]
    cpu = nc_audit.measure_arrays(H, y, W, b, device="cpu").to_dict()
    gpu = nc_audit.measure_arrays(*on, device=str(cuda_device)).to_dict()
    assert gpu["details"]["device"] == str(cuda_device)
    for key, value in cpu["metrics"].items():  # float64 GEMMs sum in another order: 1e-9 as the cuda tests
        assert relative_difference(gpu["metrics"][key], value) <= 1e-9, key
    record = Monitor(tmp_path / "gpu.jsonl", fail_on=[]).log(0, *on)
    assert record is not None and record["details"]["device"] == str(cuda_device)
    assert relative_difference(record["metrics"]["nc1"], cpu["metrics"]["nc1"]) <= 1e-9
    metrics, counter = metrics_from_arrays(on[0], on[1], Head("head", on[2], on[3]))
    assert relative_difference(metrics["mir"], cpu["metrics"]["mir"]) <= 1e-9
    assert counter.accuracy == cpu["details"]["accuracy"]
