"""Resumable study records: DIR/study.json (what the study is) and DIR/runs.jsonl (one line per finished run).

A study is a list of runs, each with a key (``eps=0.1,seed=2``). :func:`run_study` runs them in order and,
after each, rewrites DIR/runs.jsonl with every record so far — atomically (temporary file, fsync, rename;
nc_audit.io.guards.atomic), so the file on disk always holds whole records, as ``finetune``'s history.jsonl does.
A killed study started again with ``resume=True`` reads the records, skips the runs they hold and runs
the rest; its settings must be the ones DIR/study.json holds (anything else would mix two studies).
Without ``resume`` a folder that already holds a study is refused, never overwritten. A run is the
unit of resumption: a run killed half-way starts over (runs are seconds to minutes long).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError, changed_settings, first_line
from nc_audit.core.formats import STUDY_RESULTS_SCHEMA, STUDY_SCHEMA
from nc_audit.core.progress import Tracker
from nc_audit.core.version import __version__
from nc_audit.experiments.studies.record_checks import check_record
from nc_audit.io.guards.atomic import atomic_write_text
from nc_audit.io.guards.files import MAX_JSON_BYTES, load_json, parse_json, read_capped
from nc_audit.metrics.information import nc_targets

STUDY_NAME = "study.json"
RUNS_NAME = "runs.jsonl"
_STALE_TEMPS = (f".{STUDY_NAME}.*.tmp", f".{RUNS_NAME}.*.tmp")

#: Called once per run, in order, with (index from 1, number of runs, the run's record, whether the record
#: comes from an earlier, resumed invocation).
OnRecord = Callable[[int, int, dict[str, Any], bool], None]


@dataclass(frozen=True)
class Run:
    """One run of a study: its key (unique, stable across invocations), a label for progress, the work."""

    key: str
    label: str
    work: Callable[[Tracker], dict[str, Any]]


def plain(value: Any) -> Any:
    """JSON-safe plain data: tuples become lists, non-finite floats None, Paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(document: dict[str, Any]) -> str:
    """A results document as indented JSON (plain data; NaN and Inf become null)."""
    return json.dumps(plain(document), indent=1, allow_nan=False) + "\n"


@dataclass
class StudyRecords:
    """The records of one study in DIR; open with :meth:`open`."""

    out: Path
    kind: str
    settings: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, out: Path | str, kind: str, settings: dict[str, Any], resume: bool) -> StudyRecords:
        """Create DIR/study.json, or (``resume``) read the records of the same study; InputError when DIR
        holds another study, or a study and no ``resume``."""
        out = Path(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
        for pattern in _STALE_TEMPS:  # what a killed write left behind
            for stale in out.glob(pattern):
                stale.unlink(missing_ok=True)
        study = cls(out, kind, plain(settings))
        header_path = out / STUDY_NAME
        if header_path.exists() or (out / RUNS_NAME).exists():
            if not resume:
                raise InputError(
                    f"--out {out} already holds a study ({STUDY_NAME}, {RUNS_NAME}); pass --resume to "
                    "continue it or choose another --out"
                )
            study._check_header(header_path)
            study._read_runs()
        else:
            atomic_write_text(header_path, json.dumps(study.header(), indent=1) + "\n")
        return study

    def header(self) -> dict[str, Any]:
        return {"schema": STUDY_SCHEMA, "kind": self.kind, "nc_audit_version": __version__,
                "settings": self.settings}  # fmt: skip

    def _check_header(self, path: Path) -> None:
        try:
            header = load_json(path, "study header")  # a regular file, bounded in size, depth and digits
        except InputError as error:
            raise InputError(f"--resume: {error} (not a readable study header)") from None
        if not isinstance(header, dict) or header.get("schema") != STUDY_SCHEMA:
            raise InputError(f"--resume: {path} is not an nc-audit study ({STUDY_SCHEMA})")
        if header.get("kind") != self.kind:
            raise InputError(
                f"--resume: {path.parent} holds a {header.get('kind')} study, not {self.kind}; use another --out"
            )
        changed = changed_settings(header.get("settings", {}), self.settings)
        if changed:
            raise InputError(
                f"--resume: settings differ from the study in {path.parent}: {'; '.join(changed)}; "
                "repeat the original options or use another --out"
            )

    def _read_runs(self) -> None:
        path = self.out / RUNS_NAME
        if not path.exists():
            return
        lines = read_capped(path, MAX_JSON_BYTES, "study record file").split(b"\n")  # regular, bounded
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                record = parse_json(line, where)
            except InputError as error:
                if number == len(lines):  # an unterminated last line: a write cut short by a kill
                    self.notes.append(
                        f"{path.name} line {number}: a truncated run record, ignored (it runs again)"
                    )
                    continue
                raise InputError(f"--resume: {first_line(error)}") from None
            check_record(record, self.kind, where)  # never report a tampered record as measured
            if record["key"] in self.records:
                raise InputError(f"--resume: {where}: run '{record['key']:.60}' appears twice")
            self.records[record["key"]] = record

    def add(self, record: dict[str, Any]) -> None:
        """Keep ``record`` (it has a ``key``) and rewrite DIR/runs.jsonl atomically with every record."""
        self.records[record["key"]] = plain(record)
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records.values())
        atomic_write_text(self.out / RUNS_NAME, text)


def run_study(
    study: StudyRecords, runs: list[Run], tracker: Tracker, on_record: OnRecord | None = None
) -> list[dict[str, Any]]:
    """Every run's record, in the order of ``runs``: read back when the study holds it, else computed
    (its wall time in ``seconds``) and added at once. Keys must be unique."""
    keys = [run.key for run in runs]
    if len(set(keys)) != len(keys):
        raise InputError(f"a study's runs need unique keys, got {keys}")
    results = []
    with tracker.stage(f"{study.kind}: {len(runs)} runs", len(runs), unit="runs") as advance:
        for index, run in enumerate(runs, 1):
            resumed = run.key in study.records
            if not resumed:
                started = time.perf_counter()
                record = {"key": run.key, **run.work(tracker)}
                record["seconds"] = time.perf_counter() - started
                study.add(record)
            results.append(study.records[run.key])
            if on_record is not None:
                on_record(index, len(runs), study.records[run.key], resumed)
            advance(1)
    return results


def write_results(
    study: StudyRecords,
    model: dict[str, Any],
    num_classes: int,
    results: list[dict[str, Any]],
    summary: list[dict[str, Any]],
) -> dict[str, Any]:
    """DIR/results.json (atomically): the settings, the model's record, the NC targets for
    ``num_classes``, every run's record and the summary; returns the document."""
    document = {
        "schema": STUDY_RESULTS_SCHEMA,
        "kind": study.kind,
        "nc_audit_version": __version__,
        "settings": study.settings,
        "model": model,
        "targets": nc_targets(num_classes),
        "records": results,
        "summary": summary,
        "notes": study.notes,
    }
    atomic_write_text(study.out / "results.json", json_text(document))
    return document
