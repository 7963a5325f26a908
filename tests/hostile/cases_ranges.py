"""Round 2 (issue 19), sections 5 and 9: metrics outside their range, and messages that did not name the
user's file. Every case is generated (no binaries); see the README's "Metric ranges, memory bounds and
messages" table."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from generate import SAMPLES, SLOW_CASES, Case, case, hdf5, run_cli, sample_arrays

#: A note that says a metric left its range: no input may ever cause one (report/ranges.py).
RANGE_NOTE = "outside its range"
JSON_RUN = ["--format", "json", "--no-progress"]


def _simplex(C: int) -> np.ndarray:
    M = np.eye(C) - 1.0 / C
    return M / np.linalg.norm(M, axis=1, keepdims=True)


def _collapsed(means: np.ndarray, per_class: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Features whose class means are exactly ``means`` (opposite ±1e-3 noise in pairs)."""
    labels = np.repeat(np.arange(means.shape[0]), per_class)
    noise = np.zeros((labels.size, means.shape[1]))
    noise[0::2, 0], noise[1::2, 0] = 1e-3, -1e-3
    return means[labels] + noise, labels


def _dump(path: Path, features: np.ndarray, labels: np.ndarray, W: np.ndarray) -> Path:
    with hdf5(path, "w") as handle:
        handle["features"], handle["labels"] = features, labels
        handle["head/weight"], handle["head/bias"] = W, np.zeros(W.shape[0])
    return path


# --- 5. metrics outside their range -------------------------------------------------------------------
@case
def case_ranges_zero_head_row(root: Path) -> Case:
    arrays = sample_arrays()
    W = arrays["W"].copy()
    W[3] = 0.0  # a pruned class
    dump = _dump(root / "pruned_class.h5", arrays["features"], arrays["labels"], W)
    return Case(
        "ranges_zero_head_row", 5,
        "one all-zero head row (a pruned class): it leaves the cosine Grams with a note naming class 3; MIR "
        "was 1.0004 and MI > H(K_W) before; every metric in range, sample level included",
        [["measure", str(dump), *JSON_RUN], ["measure", str(dump), *JSON_RUN, "--sample-level"]],
        "ok", extra={"no_note": RANGE_NOTE},
    )  # fmt: skip


@case
def case_ranges_mean_at_global_mean(root: Path) -> Case:
    etf = _simplex(4)  # classes 0..3: a simplex ETF summing to 0; class 4 sits at the global mean
    means = np.vstack([etf, np.zeros((1, 4))]) @ np.eye(4, 8)  # (5, 8)
    features, labels = _collapsed(means)
    W = np.random.default_rng(1).normal(size=(5, 8))
    dump = _dump(root / "mean_at_global.h5", features, labels, W)
    return Case(
        "ranges_mean_at_global_mean", 5,
        "a class mean equal to the global mean (a zero centred mean; MIR 2.35 before): the class leaves the "
        "cosine Grams with a note; every metric in range",
        [["measure", str(dump), *JSON_RUN, "--sample-level"]],
        "ok", extra={"no_note": RANGE_NOTE},
    )  # fmt: skip


@case
def case_ranges_all_zero_head(root: Path) -> Case:
    arrays = sample_arrays()
    dump = _dump(root / "zero_head.h5", arrays["features"], arrays["labels"], np.zeros_like(arrays["W"]))
    return Case(
        "ranges_all_zero_head", 5,
        "an all-zero head (h_head 0 with MI 1.039 before): h_head, MI, MIR, HDR and the head-side sample-level "
        "metrics are null with a note naming the classes",
        [["measure", str(dump), *JSON_RUN, "--sample-level"]],
        "ok", extra={"no_note": RANGE_NOTE},
    )  # fmt: skip


@case
def case_ranges_zero_width(root: Path) -> Case:
    dump = _dump(root / "width0.h5", np.zeros((20, 0)), np.arange(20) % 2, np.zeros((2, 0)))
    return Case(
        "ranges_zero_width", 5,
        "features of width d = 0 (nc2_equiangular_head 0.0, the NC value, before): refused at input",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["width d = 0"],
    )  # fmt: skip


def _tampered_prune(root: Path, name: str, replace: tuple[str, str]) -> Case:
    checkpoint = root / "model.pt"
    shutil.copyfile(SAMPLES / "epoch_0030.pt", checkpoint)
    out = root / "study"
    args = [
        "prune",
        str(checkpoint),
        "--data",
        "digits",
        "--sparsities",
        "0.5",
        "--out",
        str(out),
        "--no-progress",
    ]
    done = run_cli(args, cwd=root)
    if done.returncode != 0:
        return Case(name, 5, "", [], "error", skip=f"the priming prune run failed: {done.stderr[-300:]}")
    runs = out / "runs.jsonl"
    line = runs.read_text().splitlines()[0]
    pattern, value = replace
    runs.write_text(re.sub(pattern, value, line, count=1) + "\n")
    field = pattern.split('"')[1]
    return Case(
        name, 5,
        f"prune --resume over a runs.jsonl whose record holds {value} (reported as measured before): refused "
        f"naming the file, line 1 and the field {field}",
        [[*args, "--resume"]],
        "error", culprits=[runs.name], fragments=["line 1", field], timeout=120,
    )  # fmt: skip


@case
def case_ranges_tampered_accuracy(root: Path) -> Case:
    return _tampered_prune(root, "ranges_tampered_accuracy", (r'"accuracy": [0-9.e-]+', '"accuracy": 7.0'))


@case
def case_ranges_tampered_nc1(root: Path) -> Case:
    return _tampered_prune(root, "ranges_tampered_nc1", (r'"nc1": [0-9.e-]+', '"nc1": NaN'))


SLOW_CASES["ranges_tampered_accuracy"] = "primes a prune study (one run, about 4 s)"
SLOW_CASES["ranges_tampered_nc1"] = "primes a prune study (one run, about 4 s)"


# --- 9. messages that name the user's file --------------------------------------------------------------
@case
def case_ranges_npz_huge_header(root: Path) -> Case:
    checkpoint = root / "model.pt"
    shutil.copyfile(SAMPLES / "epoch_0030.pt", checkpoint)
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f4", "fortran_order": False, "shape": (10**10, 64)}
    )
    member.write(np.zeros((60, 64), np.float32).tobytes())
    labels = io.BytesIO()
    np.save(labels, np.arange(60) % 10)
    data = root / "huge_header.npz"
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("inputs.npy", member.getvalue())
        archive.writestr("labels.npy", labels.getvalue())
    return Case(
        "ranges_npz_huge_header", 9,
        "an .npz whose inputs.npy header claims (1e10, 64) float32 over 15 KB ('MemoryError: Unable to "
        "allocate 2.33 TiB' before): refused before allocating, naming the file and the array",
        [["measure", str(checkpoint), "--data", str(data), "--no-progress", "--cache-dir", str(root / "cache")]],
        "error", culprits=[data.name], fragments=["inputs.npy", "claims shape"], outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_ranges_npz_object_array(root: Path) -> Case:
    checkpoint = root / "model.pt"
    shutil.copyfile(SAMPLES / "epoch_0030.pt", checkpoint)
    data = root / "objects.npz"
    np.savez(data, inputs=np.array([{"a": 1}] * 20, dtype=object), labels=np.arange(20) % 10)
    return Case(
        "ranges_npz_object_array", 9,
        "an .npz holding a pickled object array: refused naming the array (allow_pickle stays off)",
        [["extract", str(checkpoint), "--data", str(data), "--out", str(root / "f.h5"), "--no-progress"]],
        "error", culprits=[data.name], fragments=["Python objects"], outputs=["f.h5"],
    )  # fmt: skip


@case
def case_ranges_wrong_width(root: Path) -> Case:
    checkpoint = root / "model.pt"
    shutil.copyfile(SAMPLES / "epoch_0030.pt", checkpoint)
    data = root / "narrow.npz"
    np.savez(data, inputs=np.ones((30, 10), np.float32), labels=np.arange(30) % 10)
    return Case(
        "ranges_wrong_width", 9,
        "inputs of width 10 for a model whose first Linear takes 64 ('RuntimeError: mat1 and mat2 shapes cannot "
        "be multiplied' before): refused naming the file and both widths, for measure and finetune",
        [["measure", str(checkpoint), "--data", str(data), "--no-progress", "--cache-dir", str(root / "cache")],
         ["finetune", str(checkpoint), "--data", str(data), "--cma-weight", "0.1", "--epochs", "1",
          "--out", str(root / "run"), "--no-progress"]],
        "error", culprits=[data.name], fragments=["width 10", "expects 64"],
        outputs=["cache", "cache/*", "run", "run/*"],
    )  # fmt: skip


@case
def case_ranges_token_ids_beyond_vocab(root: Path) -> Case:
    checkpoint = root / "transformer.pt"
    script = (
        "import sys; from pathlib import Path; from nc_audit.io.checkpoints.save import save_checkpoint; "
        "from nc_audit.models.registry import architecture_record, build_model; "
        "r = architecture_record('transformer', {'p': 11, 'd_model': 8, 'heads': 2, 'd_mlp': 8}, 11); "
        "save_checkpoint(Path(sys.argv[1]), build_model(r).state_dict(), r, {'step': 0})"
    )
    done = subprocess.run([sys.executable, "-c", script, str(checkpoint)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    if done.returncode != 0:
        return Case("ranges_token_ids_beyond_vocab", 9, "", [], "error", skip=done.stderr[-300:])
    pairs = np.stack([np.arange(40) % 11, (np.arange(40) * 3) % 11], 1)
    pairs[7, 0] = 500
    data = root / "tokens.npz"
    np.savez(data, inputs=pairs, labels=pairs.sum(1) % 11)
    return Case(
        "ranges_token_ids_beyond_vocab", 9,
        "token ids up to 500 for a model of 11 ('IndexError: index out of range in self' before): refused before "
        "the forward pass naming the file, the array, the largest id and the vocabulary",
        [["measure", str(checkpoint), "--data", str(data), "--no-progress", "--cache-dir", str(root / "cache")],
         ["extract", str(checkpoint), "--data", str(data), "--out", str(root / "f.h5"), "--no-progress"]],
        "error", culprits=[data.name], fragments=["0..500", "vocabulary has 11"],
        outputs=["cache", "cache/*", "f.h5"],
    )  # fmt: skip


@case
def case_ranges_overflow_row(root: Path) -> Case:
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 8))
    labels = np.arange(6000) % 5
    features = W[labels] + rng.normal(size=(6000, 8))
    features[5000] *= 1e200  # past the rows the read scale is taken from
    dump = _dump(root / "one_huge_row.h5", features, labels, W)
    return Case(
        "ranges_overflow_row", 9,
        "one float64 row ×1e200 past the first 4096 rows ('6000 of 6000 rows hold NaN or Inf' before): the "
        "message names the row and says its squares overflow next to the others",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["row 5000", "1 of 6000"], forbidden=["6000 of 6000"],
    )  # fmt: skip


@case
def case_ranges_one_class_interpolate(root: Path) -> Case:
    a, b = root / "a.pt", root / "b.pt"
    shutil.copyfile(SAMPLES / "epoch_0030.pt", a)
    shutil.copyfile(SAMPLES / "epoch_0300.pt", b)
    data = root / "one_class.npz"
    np.savez(data, inputs=np.ones((20, 64), np.float32), labels=np.zeros(20, np.int64))
    return Case(
        "ranges_one_class_interpolate", 9,
        "interpolate on data of one class ('Neural Collapse metrics need samples of at least 2 classes', no "
        "file, before): the message names the file and the split",
        [["interpolate", str(a), str(b), "--data", str(data), "--no-progress"]],
        "error", culprits=[data.name], fragments=["every label is 0"],
    )  # fmt: skip


#: The cases `make test` runs; the other variants of this class are marked slow (`make test-all`, CI).
FAST = ("ranges_npz_huge_header",)
