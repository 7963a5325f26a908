"""A resumed study record is checked before it is reported (issue 19): a tampered DIR/runs.jsonl line is
refused with one line naming the file, the line and the field (exit 2), never reported as measured."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runs import SAMPLES, invoke

from nc_audit.core.errors import InputError
from nc_audit.experiments.studies.record_checks import check_record
from nc_audit.experiments.studies.records import StudyRecords

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")

PRUNE_ARGS = ("prune", SAMPLES / "epoch_0030.pt", "--data", "digits", "--sparsities", "0.5")


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def change(record: dict) -> None:
        *parents, last = path.split(".")
        target = record
        for part in parents:
            target = target[part]
        target[last] = value

    return change


def _drop(path: str) -> Callable[[dict], None]:
    def change(record: dict) -> None:
        *parents, last = path.split(".")
        target = record
        for part in parents:
            target = target[part]
        del target[last]

    return change


#: (name, change of the record or raw line text, the field the message must name, a fragment of it)
TAMPERED: list[tuple[str, Any, str, str]] = [
    ("accuracy 7", _set("accuracy", 7.0), "'accuracy'", "outside [0, 1]"),
    ("nc1 -5", _set("report.metrics.nc1", -5), "'report.metrics.nc1'", "outside its range"),
    ("mir 2.35", _set("report.metrics.mir", 2.35), "'report.metrics.mir'", "outside its range"),
    ("test accuracy -1", _set("test_accuracy", -1.0), "'test_accuracy'", "outside [0, 1]"),
    ("inf", "Infinity", "'accuracy'", "not a finite number"),
    ("nan", "NaN", "'accuracy'", "not a finite number"),
    ("string", _set("accuracy", "1.0"), "'accuracy'", "must be a number"),
    ("bool", _set("report.metrics.nc4", True), "'report.metrics.nc4'", "number or null"),
    ("missing report", _drop("report"), "'report'", "is missing"),
    ("missing nc1", _drop("report.metrics.nc1"), "'report.metrics.nc1'", "is missing"),
    ("missing key", _drop("key"), "'key'", "missing or not a string"),
    ("kept fraction 3", _set("kept.fraction", 3), "'kept.fraction'", "outside [0, 1]"),
]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-run prune study (about 3 s)."""
    out = tmp_path_factory.mktemp("prune") / "run"
    result = invoke(*PRUNE_ARGS, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def _tampered_copy(pruned: Path, tmp_path: Path, change: Any) -> Path:
    out = tmp_path / "run"
    shutil.copytree(pruned, out)
    line = (out / "runs.jsonl").read_text().splitlines()[0]
    if isinstance(change, str):  # a raw JSON token put in place of the accuracy
        text = re.sub(r'"accuracy": [0-9.e-]+', f'"accuracy": {change}', line, count=1)
        assert text != line
    else:
        record = copy.deepcopy(json.loads(line))
        change(record)
        text = json.dumps(record)
    (out / "runs.jsonl").write_text(text + "\n")
    return out


@pytest.mark.slow  # one prune run (about 4 s), then one --resume per tampering
@pytest.mark.parametrize(("name", "change", "field", "fragment"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_a_tampered_prune_record_is_refused_naming_file_line_and_field(
    pruned: Path, tmp_path: Path, name: str, change: Any, field: str, fragment: str
) -> None:
    out = _tampered_copy(pruned, tmp_path, change)
    result = invoke(*PRUNE_ARGS, "--out", out, "--resume")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert f"{out / 'runs.jsonl'} line 1" in lines[0] and field in lines[0] and fragment in lines[0], lines[0]
    assert not (out / "pruning.json").read_text().count('"accuracy": 7')  # nothing reported from it


@pytest.mark.slow
def test_the_untampered_record_is_read_back(pruned: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(pruned, out)
    result = invoke(*PRUNE_ARGS, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "read back from runs.jsonl" in result.stderr


def prune_record() -> dict[str, Any]:
    """The shape of a prune run's record (experiments/prune.py), with plausible values."""
    metrics = dict.fromkeys(("nc1", "nc1_cdnv", "nc4", "h_head", "h_means", "mi", "mir", "hdr"), 0.1)
    return {
        "key": "sparsity=0.5", "sparsity": 0.5, "checkpoint": "x.pt", "finetune_losses": [],
        "kept": {"total": 10, "kept": 5, "fraction": 0.5, "tensors": [{"name": "a", "total": 10, "kept": 5}]},
        "accuracy": 0.9, "test_accuracy": None, "seconds": 1.0,
        "report": {"metrics": metrics, "targets": {"mir": 0.5}, "features": {"num_classes": 10}},
    }  # fmt: skip


@pytest.mark.parametrize(("name", "change", "field", "fragment"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_check_record_refuses_each_tampering(name: str, change: Any, field: str, fragment: str) -> None:
    record = prune_record()
    check_record(copy.deepcopy(record), "prune", "runs.jsonl line 1")  # the untampered one passes
    if isinstance(change, str):
        record["accuracy"] = float(change.replace("Infinity", "inf"))
    else:
        change(record)
    with pytest.raises(InputError, match=r"runs\.jsonl line 1") as error:
        check_record(record, "prune", "runs.jsonl line 1")
    assert field in str(error.value) and fragment in str(error.value)


def _study(tmp_path: Path, lines: list[str]) -> Path:
    StudyRecords.open(tmp_path / "s", "demo", {}, resume=False)
    (tmp_path / "s" / "runs.jsonl").write_text("".join(lines))
    return tmp_path / "s"


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        (['{"key": "a"}\n', '{"key": "b", "value": \n', '{"key": "c"}\n'], "line 2: not valid JSON"),
        (["[1, 2]\n"], "line 1: not a run record"),
        (['{"key": 3}\n'], "field 'key'"),
        (['{"key": "a"}\n', '{"key": "a"}\n'], "appears twice"),
        (['{"key": "a", "seconds": -1}\n'], "field 'seconds' = -1 is negative"),
        (['{"key": "a", "train": {"metrics": {"hdr": 1.5}}}\n'], "field 'train.metrics.hdr' = 1.5"),
        (
            ['{"key": "a", "train": {"metrics": {"mi": 2.0, "h_head": 0.5, "h_means": 0.7}}}\n'],
            "train.metrics.mi",
        ),
    ],
)
def test_a_bad_line_inside_the_file_is_refused(tmp_path: Path, lines: list[str], fragment: str) -> None:
    folder = _study(tmp_path, lines)
    with pytest.raises(InputError, match="--resume: ") as error:
        StudyRecords.open(folder, "demo", {}, resume=True)
    assert str(folder / "runs.jsonl") in str(error.value) and fragment in str(error.value)


def test_only_an_unterminated_last_line_is_taken_for_a_killed_write(tmp_path: Path) -> None:
    folder = _study(tmp_path, ['{"key": "a"}\n', '{"key": "b", "val'])
    study = StudyRecords.open(folder, "demo", {}, resume=True)
    assert list(study.records) == ["a"] and "line 2" in study.notes[0]
