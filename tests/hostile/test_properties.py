"""Property tests (hypothesis): random dumps, checkpoints, baselines and output paths through the CLI.

Each example writes small files with h5py / torch / safetensors, runs ``nc-audit`` in-process through
Typer's CliRunner (about 50 ms a run; exit code, stdout and stderr kept apart) and asserts the contract of
``contract.py``: exit 0 with finite, in-range metrics (or null with a note) whose accuracy agrees with a
NumPy recomputation; or exit 2 with one stderr line naming the file at fault, never claiming NaN/Inf
rows or out-of-range labels that are not there; never an exception; and every input file keeps its bytes.
Memory is not measured here (the corpus's subprocess runs do that).

Profiles: ``ci`` (default: CI_EXAMPLES examples per property, twice that for dumps, derandomized so
every run draws the same examples, no shrinking) and ``long`` (``HYPOTHESIS_PROFILE=long``:
LONG_EXAMPLES random examples per property, with shrinking, for runs by hand; add
``--hypothesis-seed=N`` to draw from (or replay) seed N and ``--hypothesis-show-statistics`` to see the
examples run). pytest's header line says which profile ran (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import contract
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

#: Examples per property in CI (the dump property takes twice as many): the whole of tests/hostile
#: stays near a minute on 2 cores. The long profile, run by hand, takes 10 times more.
CI_EXAMPLES = 40
LONG_EXAMPLES = 1500
settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=LONG_EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
#: The dump property draws from the largest space: it gets twice the profile's examples.
DUMP_EXAMPLES = 2 * PROFILE.max_examples

FEATURE_DTYPES = ("<f2", ">f2", "<f4", ">f4", "<f8", ">f8")
LABEL_DTYPES = ("|i1", "|u1", "<i2", ">i2", "<i4", ">i4", "<u4", "<i8", ">i8", ">u8")
HEAD_DTYPES = ("<f2", "<f4", ">f4", "<f8", ">f8")
SCALES = (1.0, 1.0, 1.0, 1e-300, 1e-200, 1e-30, 1e-6, 1e6, 1e30, 1e154, 1e300)
LAYOUTS = (
    "contiguous", "chunk_rows", "chunk_1x1", "chunk_partial_width", "gzip", "shuffle_gzip", "fletcher32",
    "soft_link", "external_link", "virtual", "external_raw",
)  # fmt: skip
VALUE_MODES = ("gaussian", "gaussian", "collapsed", "all_constant", "zero", "duplicate_rows", "one_hot")
LABEL_MODES = ("random", "random", "balanced", "one_class", "missing_classes", "out_of_range")


# --- running the CLI in-process -----------------------------------------------------------------------------
@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def document(self) -> dict[str, Any]:
        document = json.loads(self.stdout)
        assert isinstance(document, dict)
        return document


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A fresh folder, also the working directory (no project [tool.nc-audit] defaults apply)."""
    previous = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="nc-hostile-prop-") as folder:
        os.chdir(folder)
        try:
            yield Path(folder)
        finally:
            os.chdir(previous)


def invoke(*args: str | Path) -> Outcome:
    from typer.testing import CliRunner

    from nc_audit.cli import app

    result = CliRunner().invoke(
        app,
        [str(a) for a in args],
        env={"GITHUB_STEP_SUMMARY": None, "NC_AUDIT_DEBUG": None, "NO_COLOR": "1"},
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"the CLI raised {type(result.exception).__name__}: {result.exception}")
    contract.assert_no_crash(result.stdout, result.stderr)
    note(f"exit {result.exit_code}; stderr {result.stderr.strip()[:400]!r}")
    return Outcome(result.exit_code, result.stdout, result.stderr)


def digests(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def assert_error(outcome: Outcome, *culprits: Path | str) -> str:
    assert outcome.code == 2, f"expected exit 2, got {outcome.code}: {outcome.stderr[-500:]!r}"
    names = [c.name if isinstance(c, Path) else c for c in culprits]
    return contract.assert_one_error_line(outcome.stderr, names)


# --- dumps ------------------------------------------------------------------------------------------------
@dataclass
class DumpRecipe:
    seed: int
    n: int
    d: int
    num_classes: int
    feature_dtype: str
    label_dtype: str
    head_dtype: str
    scale: float
    layout: str
    values: str
    labels: str
    nonfinite_rows: int
    bias: str  # none | C | C1 | wrong
    splits: bool  # /train + /test groups (measured with --split test) instead of root arrays


@st.composite
def dump_recipes(draw: st.DrawFn) -> DumpRecipe:
    return DumpRecipe(
        seed=draw(st.integers(0, 2**32 - 1)),
        n=draw(st.integers(1, 160)),
        d=draw(st.integers(1, 9)),
        num_classes=draw(st.integers(1, 6)),
        feature_dtype=draw(st.sampled_from(FEATURE_DTYPES)),
        label_dtype=draw(st.sampled_from(LABEL_DTYPES)),
        head_dtype=draw(st.sampled_from(HEAD_DTYPES)),
        scale=draw(st.sampled_from(SCALES)),
        layout=draw(st.sampled_from(LAYOUTS)),
        values=draw(st.sampled_from(VALUE_MODES)),
        labels=draw(st.sampled_from(LABEL_MODES)),
        nonfinite_rows=draw(st.sampled_from((0, 0, 0, 1, 3))),
        bias=draw(st.sampled_from(("C", "C", "none", "C1", "wrong"))),
        splits=draw(st.booleans()),
    )


@dataclass
class Arrays:
    features: np.ndarray  # as stored (its dtype, byte order)
    labels: np.ndarray
    W: np.ndarray
    b: np.ndarray | None


def make_arrays(recipe: DumpRecipe, n: int, salt: int = 0) -> Arrays:
    rng = np.random.default_rng([recipe.seed, salt])
    C, d = recipe.num_classes, recipe.d
    if recipe.labels == "balanced":
        labels = np.arange(n) % C
    elif recipe.labels == "one_class":
        labels = np.zeros(n, dtype=np.int64)
    elif recipe.labels == "missing_classes":
        labels = rng.integers(0, max(1, C // 2), size=n)
    else:
        labels = rng.integers(0, C, size=n)
    centres = 3.0 * rng.normal(size=(C, d))
    classes = labels.copy()  # the class each row is drawn from (labels may then be put out of range)
    if recipe.labels == "out_of_range":
        labels[rng.integers(0, n)] = rng.choice([-1, C, C + 7]) if np.iinfo(recipe.label_dtype).min < 0 else C
    if recipe.values == "collapsed":
        X = centres[classes]
    elif recipe.values == "all_constant":
        X = np.full((n, d), 1.5)
    elif recipe.values == "zero":
        X = np.zeros((n, d))
    elif recipe.values == "duplicate_rows":
        X = np.repeat(centres[classes][:1] + rng.normal(size=(1, d)), n, axis=0)
    elif recipe.values == "one_hot":
        X = np.eye(C, d)[classes]
    else:
        X = centres[classes] + rng.normal(size=(n, d)) + 5.0
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        X = X * recipe.scale
        if recipe.nonfinite_rows:
            rows = rng.choice(n, size=min(n, recipe.nonfinite_rows), replace=False)
            X[rows, rng.integers(0, d)] = rng.choice([np.nan, np.inf, -np.inf])
        features = X.astype(recipe.feature_dtype)
    W = (centres + 0.3 * rng.normal(size=(C, d))).astype(recipe.head_dtype)
    b = {
        "none": None,
        "C": rng.normal(size=C),
        "C1": rng.normal(size=(C, 1)),
        "wrong": rng.normal(size=C + 1),
    }[recipe.bias]
    return Arrays(features, labels.astype(recipe.label_dtype), W, b)


def write_features(
    handle: h5py.Group, name: str, data: np.ndarray, layout: str, folder: Path, tag: str
) -> None:
    """``data`` at ``name`` in the layout named (links and external files go beside the dump)."""
    n, d = data.shape
    rows = max(1, min(n, 7))
    if layout == "contiguous":
        handle.create_dataset(name, data=data)
    elif layout == "chunk_rows":
        handle.create_dataset(name, data=data, chunks=(rows, d))
    elif layout == "chunk_1x1":
        handle.create_dataset(name, data=data, chunks=(1, 1))
    elif layout == "chunk_partial_width":
        handle.create_dataset(name, data=data, chunks=(rows, max(1, d // 2)))
    elif layout == "gzip":
        handle.create_dataset(name, data=data, chunks=(rows, d), compression="gzip")
    elif layout == "shuffle_gzip":
        handle.create_dataset(name, data=data, chunks=(rows, d), compression="gzip", shuffle=True)
    elif layout == "fletcher32":
        handle.create_dataset(name, data=data, chunks=(rows, d), fletcher32=True)
    elif layout == "soft_link":
        handle.create_dataset(f"/store/{tag}", data=data, chunks=(rows, d))
        handle[name] = h5py.SoftLink(f"/store/{tag}")
    elif layout == "external_link":
        side = folder / f"side_{tag}.h5"
        with h5py.File(side, "a") as other:
            other.create_dataset(f"pad_{tag}", data=np.arange(4096.0))  # offsets differ from the dump's
            other.create_dataset("x", data=data, chunks=(rows, d))
        handle[name] = h5py.ExternalLink(side.name, "/x")
    elif layout == "virtual":
        side = folder / f"virtual_{tag}.h5"
        with h5py.File(side, "w") as other:
            other.create_dataset("x", data=data)
        layout_ = h5py.VirtualLayout(shape=data.shape, dtype=data.dtype)
        layout_[:] = h5py.VirtualSource(str(side), "x", shape=data.shape)
        handle.create_virtual_dataset(name, layout_)
    elif layout == "external_raw":
        raw = folder / f"raw_{tag}.bin"
        raw.write_bytes(data.tobytes())
        handle.create_dataset(name, shape=data.shape, dtype=data.dtype, external=[(str(raw), 0, data.nbytes)])
    else:
        raise ValueError(layout)


def write_recipe(recipe: DumpRecipe, folder: Path) -> tuple[Path, Arrays, Arrays | None]:
    """The dump of a recipe; returns (path, arrays of the measured split, train arrays when split)."""
    path = folder / "dump.h5"
    main = make_arrays(recipe, recipe.n)
    train = make_arrays(recipe, max(recipe.n, 2 * recipe.num_classes), salt=1) if recipe.splits else None
    with h5py.File(path, "w") as handle:
        if recipe.layout == "external_link":  # numbers of its own where the target file keeps its rows
            handle["aaa_padding"] = np.random.default_rng(recipe.seed).normal(size=16384) * 1e3
        groups = (
            [("test/", main, "test"), ("train/", train, "train")]
            if train is not None
            else [("", main, "all")]
        )
        for prefix, arrays, tag in groups:
            write_features(handle, f"{prefix}features", arrays.features, recipe.layout, folder, tag)
            handle[f"{prefix}labels"] = arrays.labels
        handle["head/weight"] = main.W
        if main.b is not None:
            handle["head/bias"] = main.b
    return path, main, train


def expected_accuracy(arrays: Arrays) -> float | None:
    """argmax(W h + b) == y in float64, or None when ties or non-finite logits make it ambiguous."""
    X = arrays.features.astype(np.float64)
    W = arrays.W.astype(np.float64)
    b = 0.0 if arrays.b is None else np.asarray(arrays.b, dtype=np.float64).reshape(-1)
    if np.ndim(b) and b.shape[0] != W.shape[0]:
        return None
    with np.errstate(all="ignore"):
        logits = X @ W.T + b
    if not np.isfinite(logits).all():
        return None
    top = np.sort(logits, axis=1)
    if top.shape[1] > 1:
        gap = top[:, -1] - top[:, -2]
        if (gap <= 1e-9 * np.maximum(1.0, np.abs(top[:, -1]))).any():
            return None
    return float(np.mean(logits.argmax(axis=1) == arrays.labels.astype(np.int64)))


def between_class_spread_is_zero(arrays: Arrays) -> bool:
    """True when every present class has the same mean (NC1 is then undefined)."""
    X = arrays.features.astype(np.float64)
    y = arrays.labels.astype(np.int64)
    if not np.isfinite(X).all():
        return False
    means = np.stack([X[y == c].mean(axis=0) for c in np.unique(y)])
    return bool(np.all(means == means[0]))


@pytest.mark.slow  # about 5 s; make test keeps the other properties, make test-all runs it
@settings(PROFILE, max_examples=DUMP_EXAMPLES)
@given(recipe=dump_recipes())
def test_random_dumps_keep_the_contract(recipe: DumpRecipe) -> None:
    note(repr(recipe))
    with workdir() as folder:
        path, measured, train = write_recipe(recipe, folder)
        before = digests(folder)
        args = [path, "--format", "json", "--no-progress"] + (["--split", "test"] if recipe.splits else [])
        outcome = invoke("measure", *args)
        assert digests(folder) == before, "an input file changed"

    finite = all(np.isfinite(a.features.astype(np.float64)).all() for a in (measured, train) if a is not None)
    labels_ok = all(
        ((a.labels.astype(np.int64) >= 0) & (a.labels.astype(np.int64) < recipe.num_classes)).all()
        for a in (measured, train)
        if a is not None
    )
    if outcome.code == 2:
        line = assert_error(outcome, path)
        if finite:
            assert "NaN or Inf" not in line, f"claims non-finite rows in finite features: {line!r}"
        if labels_ok:
            assert "outside" not in line, f"claims out-of-range labels: {line!r}"
        return
    assert outcome.code == 0, f"exit {outcome.code}: {outcome.stderr[-500:]!r}"
    assert finite, "features holding NaN/Inf were measured (exit 0)"
    assert labels_ok, "labels outside 0..C-1 were measured (exit 0)"
    assert recipe.bias in ("C", "none", "C1"), f"a /head/bias of shape {np.shape(measured.b)} was accepted"
    document = outcome.document()
    contract.assert_metrics_in_range(document)
    accuracy = expected_accuracy(measured)
    if accuracy is not None:
        reported = (document.get("details") or {}).get("accuracy")
        assert reported is not None and math.isclose(reported, accuracy, abs_tol=1e-12), (
            f"accuracy {reported} but argmax(W h + b) on the stored rows gives {accuracy}"
        )
    means_split = train if train is not None else measured
    if between_class_spread_is_zero(means_split):
        assert document["metrics"]["nc1"] is None, (
            f"nc1 = {document['metrics']['nc1']} with zero between-class spread (must be null with a note)"
        )


# --- checkpoints ---------------------------------------------------------------------------------------------
@dataclass
class CheckpointRecipe:
    seed: int
    d: int
    num_classes: int
    container: str  # bare | state_dict | model | module_prefix | safetensors
    head_dtype: str  # float16 | bfloat16 | float32 | float64 | int64 | complex64
    neck: bool  # a (d, d) weight before the head (also fits the features)
    bias: str  # C | C1 | none


@st.composite
def checkpoint_recipes(draw: st.DrawFn) -> CheckpointRecipe:
    return CheckpointRecipe(
        seed=draw(st.integers(0, 2**32 - 1)),
        d=draw(st.integers(4, 10)),
        num_classes=draw(st.integers(2, 6)),
        container=draw(st.sampled_from(("bare", "state_dict", "model", "module_prefix", "safetensors"))),
        head_dtype=draw(st.sampled_from(("float32", "float64", "float16", "bfloat16", "int64", "complex64"))),
        neck=draw(st.booleans()),
        bias=draw(st.sampled_from(("C", "C", "C1", "none"))),
    )


@pytest.mark.slow  # a property: make test keeps this class's example cases; make test-all runs it
@settings(PROFILE)
@given(recipe=checkpoint_recipes())
def test_random_checkpoints_keep_the_contract(recipe: CheckpointRecipe) -> None:
    import torch

    note(repr(recipe))
    rng = np.random.default_rng(recipe.seed)
    C, d, n = recipe.num_classes, recipe.d, 120
    labels = np.arange(n) % C
    centres = 3.0 * rng.normal(size=(C, d))
    features = centres[labels] + rng.normal(size=(n, d))
    W = centres + 0.3 * rng.normal(size=(C, d))
    b = rng.normal(size=C)
    dtype = getattr(torch, recipe.head_dtype)
    state: dict[str, torch.Tensor] = {
        "encoder.weight": torch.from_numpy(rng.normal(size=(d, 3))),
        "encoder.bias": torch.from_numpy(rng.normal(size=d)),
    }
    if recipe.neck:
        state["neck.weight"] = torch.from_numpy(rng.normal(size=(d, d)))
        state["neck.bias"] = torch.from_numpy(rng.normal(size=d))
    head = torch.from_numpy(W)
    state["fc.weight"] = (
        (head * 100).round().to(dtype)
        if not dtype.is_floating_point and not dtype.is_complex
        else head.to(dtype)
    )
    if recipe.bias != "none":
        state["fc.bias"] = torch.from_numpy(b if recipe.bias == "C" else b.reshape(C, 1))
    with workdir() as folder:
        dump = folder / "features.h5"
        with h5py.File(dump, "w") as handle:
            handle["features"], handle["labels"] = features, labels
        if recipe.container == "safetensors":
            import safetensors.torch

            checkpoint = folder / "model.safetensors"
            safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(checkpoint))
        else:
            checkpoint = folder / "model.pt"
            payload: dict[str, Any] = state
            if recipe.container == "module_prefix":
                payload = {f"module.{k}": v for k, v in state.items()}
            elif recipe.container in ("state_dict", "model"):
                payload = {recipe.container: state, "epoch": 1}
            torch.save(payload, checkpoint)
        before = digests(folder)
        outcome = invoke("measure", checkpoint, "--features", dump, "--format", "json", "--no-progress")
        assert digests(folder) == before, "an input file changed"

    real_head = recipe.head_dtype not in ("int64", "complex64")
    if outcome.code == 2:
        assert_error(outcome, checkpoint, dump)
        return
    assert outcome.code == 0, f"exit {outcome.code}: {outcome.stderr[-500:]!r}"
    document = outcome.document()
    contract.assert_metrics_in_range(document)
    used = document["checkpoint"]["head"]
    assert real_head, f"a {recipe.head_dtype} head.weight was not refused (the report used {used!r})"
    assert used == "fc", f"the head used is {used!r}, not the classifier 'fc'"
    stored_W = state["fc.weight"].to(torch.float64).numpy()
    bias = None if recipe.bias == "none" else b
    accuracy = expected_accuracy(Arrays(features, labels, stored_W, bias))
    if accuracy is not None:
        assert math.isclose(document["details"]["accuracy"], accuracy, abs_tol=1e-12), (
            f"accuracy {document['details']['accuracy']}, expected {accuracy} (bias {recipe.bias})"
        )


# --- baselines -----------------------------------------------------------------------------------------------
METRIC_VALUES = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 2),
    st.text(max_size=5),
    st.integers(-(10**30), 10**30),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def baselines(draw: st.DrawFn) -> tuple[str, bool]:
    """(baseline text, whether it holds any finite number for a metric with an NC target)."""
    metrics = draw(
        st.dictionaries(st.sampled_from((*contract.SCALE_INVARIANT, "nc4", "bogus")), METRIC_VALUES)
    )
    usable = any(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and k != "bogus"
        for k, v in metrics.items()
    )
    record = {"schema": "nc-audit-report/1", "metrics": metrics, "features": {"num_classes": 3}}
    return json.dumps(record), usable


@pytest.mark.slow  # a property: make test keeps this class's example cases; make test-all runs it
@settings(PROFILE)
@given(baseline=baselines(), tolerance=st.sampled_from(("0", "0.5", "1e300")))
def test_random_baselines_gate_something_or_refuse(baseline: tuple[str, bool], tolerance: str) -> None:
    text, usable = baseline
    note(text)
    with workdir() as folder:
        dump = folder / "dump.h5"
        rng = np.random.default_rng(0)
        labels = np.arange(90) % 3
        with h5py.File(dump, "w") as handle:
            handle["features"] = rng.normal(size=(3, 4))[labels] + 0.3 * rng.normal(size=(90, 4))
            handle["labels"] = labels
            handle["head/weight"], handle["head/bias"] = rng.normal(size=(3, 4)), rng.normal(size=3)
        path = folder / "baseline.json"
        path.write_text(text)
        before = digests(folder)
        outcome = invoke(
            "measure", dump, "--baseline", path, "--tolerance", tolerance, "--format", "json", "--no-progress"
        )
        assert digests(folder) == before, "an input file changed"
    if outcome.code == 2:
        assert_error(outcome, path)
        return
    assert outcome.code in (0, 1), f"exit {outcome.code}: {outcome.stderr[-500:]!r}"
    checks = outcome.document()["checks"]
    assert checks, (
        f"a baseline gate that checks nothing passed silently (usable numbers: {usable}); it must be exit 2 "
        "saying why"
    )


@pytest.mark.slow  # a property: make test keeps this class's example cases; make test-all runs it
# --- output paths ----------------------------------------------------------------------------------------------
@settings(PROFILE)
@given(
    json_to=st.sampled_from(("fresh", "dump", "alias", "markdown", "checkpoint")),
    markdown_to=st.sampled_from(("none", "fresh", "dump", "checkpoint")),
    junit_to=st.sampled_from(("none", "fresh", "json")),
)
def test_outputs_never_replace_inputs_or_each_other(json_to: str, markdown_to: str, junit_to: str) -> None:
    import torch

    with workdir() as folder:
        rng = np.random.default_rng(1)
        labels = np.arange(60) % 3
        W = rng.normal(size=(3, 4))
        dump, checkpoint = folder / "dump.h5", folder / "model.pt"
        with h5py.File(dump, "w") as handle:
            handle["features"] = rng.normal(size=(3, 4))[labels] + 0.3 * rng.normal(size=(60, 4))
            handle["labels"] = labels
        torch.save(
            {"fc.weight": torch.from_numpy(W), "fc.bias": torch.zeros(3, dtype=torch.float64)}, checkpoint
        )
        (folder / "alias.h5").symlink_to(dump.name)
        paths = {"fresh": folder / "report.json", "dump": dump, "alias": folder / "alias.h5",
                 "checkpoint": checkpoint, "markdown": folder / "summary.md"}  # fmt: skip
        json_path = paths[json_to]
        markdown_path = {
            "none": None,
            "fresh": folder / "summary.md",
            "dump": dump,
            "checkpoint": checkpoint,
        }[markdown_to]
        junit_path = {"none": None, "fresh": folder / "junit.xml", "json": json_path}[junit_to]
        args: list[str | Path] = [
            "measure",
            checkpoint,
            "--features",
            dump,
            "--json",
            json_path,
            "--no-progress",
        ]
        if markdown_path is not None:
            args += ["--markdown", markdown_path]
        if junit_path is not None:
            args += ["--junit", junit_path]
        inputs = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (dump, checkpoint)}
        outcome = invoke(*args)
        for p, digest in inputs.items():
            assert hashlib.sha256(p.read_bytes()).hexdigest() == digest, f"{p.name} was overwritten"
        assert (folder / "alias.h5").is_symlink(), "the symlink alias.h5 was replaced by a regular file"
        outputs = [p for p in (json_path, markdown_path, junit_path) if p is not None]
        resolved = [os.path.realpath(p) for p in outputs]
        collide = len(set(resolved)) < len(resolved) or any(
            os.path.realpath(p) in {os.path.realpath(dump), os.path.realpath(checkpoint)} for p in outputs
        )
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        assert not leftovers, f"temporary files left: {leftovers}"
    if collide:
        assert_error(outcome, *outputs, dump, checkpoint)
    else:
        assert outcome.code == 0, f"exit {outcome.code}: {outcome.stderr[-500:]!r}"


def test_the_ci_profile_is_bounded() -> None:
    """The default profile stays bounded and reproducible (the CI budget is about a minute)."""
    ci = settings.get_profile("ci")
    assert ci.derandomize and ci.max_examples <= 200 and ci.deadline is None
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci":
        assert PROFILE.max_examples == ci.max_examples
