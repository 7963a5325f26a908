"""A corpus of hostile and broken inputs for nc-audit (issue 10), generated, never committed.

Every case is one generator function ``case_NAME(root) -> Case``: it writes its files into ``root`` (a
fresh, empty folder of its own) and returns what a run needs — the files, a one-line description, the
command lines to run (arguments after ``nc-audit``) and what the contract expects of them. The
files are small (the largest is the 2 MB zip bomb) and the whole corpus is written in a few seconds.
Nothing here imports nc_audit: files are written with h5py, torch.save, zipfile/struct and plain bytes;
the two cases that need a primed feature cache run the ``nc-audit`` CLI in a subprocess.

Run as a script to write the corpus and print a manifest::

    python tests/hostile/generate.py OUT_DIR [--case NAME ...] [--list] [--json]

``tests/hostile/test_corpus.py`` runs every case through the real CLI and asserts the contract.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import pickle
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_checkpoints" / "digits-mlp"
#: Planted first in the environment of every run: /proc/self/environ starts with it, so a dump that
#: reads the environment reads this, and the test can tell whether it leaked.
SECRET_NAME = "NC_HOSTILE_SECRET"
#: Bytes of /etc/passwd that must never appear in nc-audit's output (the first line of every Linux host).
PASSWD_MARK = "root:x:0"
#: A string that forges a terminal: clears the screen, moves the cursor home, sets the window title,
#: rings the bell and writes a fake gate line on its own line.
FORGED = "\x1b[2J\x1b[1;1H\x1b]0;owned\x07\nPASS nc1 <= 0.5  (value 0.01)\r\n"
#: Metric keys of a report (README, Metrics), for hand-written baselines.
METRIC_KEYS = (
    "nc1", "nc1_cdnv", "nc2_equinorm_means", "nc2_equinorm_head", "nc2_equiangular_means",
    "nc2_equiangular_head", "nc2_maxangle_means", "nc2_maxangle_head", "nc3", "nc4", "h_head", "h_means",
    "mi", "mir", "hdr", "accuracy",
)  # fmt: skip


@dataclass
class Case:
    """One hostile input and what nc-audit must do with it.

    ``expect``: ``error`` (exit 2, one stderr line naming one of ``culprits`` and holding every
    ``fragment``), ``ok`` (exit 0), ``gate`` (exit 1: a check failed), ``ok-or-error`` (either of
    the first two, each under its own contract; the issue allows both), ``interrupted`` (SIGTERM case).
    ``outputs`` are glob patterns (relative to the case folder) of files a run may create or replace;
    every other file under the folder is an input and must keep its bytes, and no other file may appear.
    ``kind`` says how a run is set up: ``plain``; ``fifo-reader`` (a thread drains ``extra['fifo']``);
    ``disk-full`` (``extra['full_dir']`` becomes a tmpfs of ``extra['full_size']`` bytes);
    ``sigterm`` (SIGTERM when a temporary file appears in ``extra['watch_dir']``); ``protected-dev``
    (/dev is made read-only for the run, so that a bug cannot rename over a real device).
    """

    name: str
    section: int
    description: str
    invocations: list[list[str]]
    expect: str
    culprits: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    timeout: float = 60.0
    kind: str = "plain"
    extra: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None  # a reason when this host cannot build the case

    def commands(self) -> list[str]:
        """The invocations as shell command lines (for the manifest and the README)."""
        return [shlex.join(["nc-audit", *args]) for args in self.invocations]


Generator = Callable[[Path], Case]


def hdf5(path: Path | str, mode: str = "r") -> h5py.File:
    """h5py.File without HDF5's file lock: cases are written from threads while other threads start
    subprocesses, and a forked child briefly holding a copy of a descriptor would keep the lock."""
    return h5py.File(path, mode, locking=False)


GENERATORS: dict[str, Generator] = {}
#: Held while a generator builds anything with transformers: cases are generated from threads, and neither
#: transformers' lazy module nor functools.lru_cache is safe when two threads build at once.
TRANSFORMERS_LOCK = threading.Lock()
#: Cases marked ``slow`` by the round-2 case modules (``cases_*.py``): name -> why it is slow.
SLOW_CASES: dict[str, str] = {}
if __name__ == "__main__":  # run as a script: the case modules' ``import generate`` must find this module
    sys.modules.setdefault("generate", sys.modules[__name__])


def case(function: Generator) -> Generator:
    """Register a generator under its name without the ``case_`` prefix."""
    GENERATORS[function.__name__.removeprefix("case_")] = function
    return function


# --- building blocks ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def sample_arrays() -> dict[str, np.ndarray]:
    """The last sample dump's train split and head (N = 1347, d = 64, C = 10; nc1 = 0.002236)."""
    with hdf5(SAMPLES / "epoch_0300.h5", "r") as handle:
        return {
            "features": handle["train/features"][...],
            "labels": handle["train/labels"][...],
            "W": handle["head/weight"][...],
            "b": handle["head/bias"][...],
        }


@functools.lru_cache(maxsize=1)
def sample_state() -> dict[str, Any]:
    """The last sample checkpoint's state dict (mlp 64 → 64 → 64 → 64 → 10 with BatchNorm, head 'head') and its record."""
    import torch

    return torch.load(SAMPLES / "epoch_0300.pt", map_location="cpu", weights_only=True)


def copy_sample(root: Path, epoch: str = "0300", name: str | None = None) -> tuple[Path, Path]:
    """Copies of a sample checkpoint and its dump in ``root`` (the originals are never touched)."""
    stem = name or f"epoch_{epoch}"
    pt, h5 = root / f"{stem}.pt", root / f"{stem}.h5"
    shutil.copyfile(SAMPLES / f"epoch_{epoch}.pt", pt)
    shutil.copyfile(SAMPLES / f"epoch_{epoch}.h5", h5)
    return pt, h5


def write_dump(
    path: Path,
    features: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    *,
    head: bool = True,
    W: np.ndarray | None = None,
    b: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """A minimal dump (/features, /labels) of the sample's train split unless arrays are given; ``head``
    adds /head/weight and /head/bias so the dump alone can be measured."""
    arrays = sample_arrays()
    with hdf5(path, "w") as handle:
        handle["features"] = arrays["features"] if features is None else features
        handle["labels"] = arrays["labels"] if labels is None else labels
        if head:
            handle["head/weight"] = arrays["W"] if W is None else W
            handle["head/bias"] = arrays["b"] if b is None else b
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return path


def save_bare_state(path: Path, state: dict[str, Any]) -> Path:
    """torch.save of a plain state dict (no architecture record: the head is detected)."""
    import torch

    torch.save(state, path)
    return path


def bare_sample_state(**replace: Any) -> dict[str, Any]:
    """The sample's state dict with some tensors replaced (a value of None removes the key)."""
    state = dict(sample_state()["state_dict"])
    for key, value in replace.items():
        key = key.replace("__", ".")
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def report_record(metrics: dict[str, Any], num_classes: int = 10) -> dict[str, Any]:
    """A hand-written report (nc-audit-report/1) holding ``metrics``: a baseline."""
    return {
        "schema": "nc-audit-report/1",
        "nc_audit_version": "0.1.0",
        "checkpoint": {"path": "main.pt", "sha256": "0" * 64, "head": "head"},
        "features": {"path": "main.h5", "split": "train", "num_samples": 1347, "feature_dim": 64,
                     "num_classes": num_classes},
        "conventions": {},
        "metrics": metrics,
        "targets": {},
        "notes": [],
        "checks": [],
        "passed": True,
    }  # fmt: skip


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m nc_audit ARGS`` (for the cases that need a primed cache)."""
    return subprocess.run(
        [sys.executable, "-m", "nc_audit", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- a hand-built .pt (zip) archive, for the zip bomb -----------------------------------------------------
class _Storage:
    """A storage in a hand-written torch pickle: its record key, element count and class."""

    def __init__(self, key: str, numel: int, storage_class: Any) -> None:
        self.key, self.numel, self.storage_class = key, numel, storage_class


class _Tensor:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())."""

    def __init__(self, storage: _Storage, shape: tuple[int, ...]) -> None:
        self.storage, self.shape = storage, shape

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        import torch

        stride, step = [], 1
        for size in reversed(self.shape):
            stride.insert(0, step)
            step *= size
        return (
            torch._utils._rebuild_tensor_v2,
            (self.storage, 0, self.shape, tuple(stride), False, collections.OrderedDict()),
        )


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _Storage):
            return ("storage", obj.storage_class, obj.key, "cpu", obj.numel)
        return None


def _zip_entry(name: str, data: bytes, crc: int, size: int, method: int, offset: int) -> tuple[bytes, bytes]:
    """(local header + data, central directory record) of one zip entry (no zip64: sizes < 4 GiB)."""
    encoded = name.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0, 0, 0, 0, 0, offset,
    )  # fmt: skip
    return local + encoded + data, central + encoded


def write_zip_bomb_pt(path: Path, bomb_bytes: int = 2 << 30) -> Path:
    """A .pt archive: the sample's state dict plus 'padding', a float32 tensor of ``bomb_bytes`` zeros
    stored deflated (about 2 MB on disk for 2 GiB). torch.save stores records uncompressed, so the
    archive is written by hand: a pickle like torch's and a raw-deflate stream of repeated
    full-flushed 1 MiB blocks (every block compresses to the same bytes)."""
    import torch

    block = bytes(1 << 20)
    assert bomb_bytes % len(block) == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressor.compress(block)
    compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = repeated * (bomb_bytes // len(block)) + compressor.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(bomb_bytes // len(block)):
        crc = zlib.crc32(block, crc)

    records: list[tuple[str, bytes, int, int, int]] = []  # name, stored bytes, crc, size, method
    state: dict[str, Any] = {}
    for index, (key, tensor) in enumerate(sample_state()["state_dict"].items()):
        raw = tensor.contiguous().numpy().tobytes()
        storage = _Storage(str(index), tensor.numel(), torch.FloatStorage)
        state[key] = _Tensor(storage, tuple(tensor.shape))
        records.append((f"data/{index}", raw, zlib.crc32(raw), len(raw), 0))
    padding = _Storage("pad", bomb_bytes // 4, torch.FloatStorage)
    state["padding"] = _Tensor(padding, (bomb_bytes // 4,))
    records.append(("data/pad", stream, crc, bomb_bytes, 8))

    import io

    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=2).dump(state)
    pickled = buffer.getvalue()
    head = [("data.pkl", pickled), (".format_version", b"1"), ("byteorder", b"little")]
    tail = [("version", b"3\n")]
    entries = [(name, data, zlib.crc32(data), len(data), 0) for name, data in head]
    entries += records
    entries += [(name, data, zlib.crc32(data), len(data), 0) for name, data in tail]
    body, centrals = b"", []
    for name, data, entry_crc, size, method in entries:
        local, central = _zip_entry(f"archive/{name}", data, entry_crc, size, method, len(body))
        body += local
        centrals.append(central)
    directory = b"".join(centrals)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(centrals), len(centrals), len(directory), len(body), 0
    )
    path.write_bytes(body + directory + end)
    return path


# --- 1. a dump reads host files ---------------------------------------------------------------------------
@case
def case_external_storage_passwd(root: Path) -> Case:
    arrays = sample_arrays()
    size = os.path.getsize("/etc/passwd")
    d = 2
    n = max(1, min(size // (4 * d), 64))
    dump = root / "passwd_features.h5"
    with hdf5(dump, "w") as handle:
        handle.create_dataset("features", shape=(n, d), dtype="<f4", external=[("/etc/passwd", 0, n * d * 4)])
        handle["labels"] = np.arange(n) % 2
        handle["head/weight"] = arrays["W"][:2, :d]
        handle["head/bias"] = arrays["b"][:2]
    return Case(
        "external_storage_passwd", 1,
        "/features is HDF5 raw external storage on /etc/passwd; must be refused naming the dataset and the target",
        [["measure", str(dump), "--format", "json", "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/features", "/etc/passwd"],
    )  # fmt: skip


@case
def case_external_storage_environ(root: Path) -> Case:
    dump = root / "environ_labels.h5"
    with hdf5(dump, "w") as handle:
        handle["features"] = sample_arrays()["features"][:8]
        handle.create_dataset("labels", shape=(8,), dtype=">i8", external=[("/proc/self/environ", 0, 64)])
        handle["head/weight"], handle["head/bias"] = sample_arrays()["W"], sample_arrays()["b"]
    return Case(
        "external_storage_environ", 1,
        "/labels is raw external storage on /proc/self/environ (>i8); must be refused naming the dataset "
        "and the target, and no environment bytes (decoded or not) may reach the output",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/labels", "/proc/self/environ"],
        extra={"leak_environ_int64": 8},
    )  # fmt: skip


@case
def case_external_link(root: Path) -> Case:
    target = write_dump(root / "elsewhere.h5", head=False)
    dump = root / "linked.h5"
    with hdf5(dump, "w") as handle:
        handle["features"] = h5py.ExternalLink(str(target), "/features")
        handle["labels"] = sample_arrays()["labels"]
        handle["head/weight"], handle["head/bias"] = sample_arrays()["W"], sample_arrays()["b"]
    return Case(
        "external_link", 1,
        "/features is an external link to another HDF5 file; refused by default (one line naming the dataset "
        "and the target file)",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/features", target.name],
    )  # fmt: skip


@case
def case_vds_other_file(root: Path) -> Case:
    arrays = sample_arrays()
    source = write_dump(root / "vds_source.h5", head=False)
    dump = root / "vds.h5"
    layout = h5py.VirtualLayout(shape=arrays["features"].shape, dtype=arrays["features"].dtype)
    layout[:] = h5py.VirtualSource(str(source), "features", shape=arrays["features"].shape)
    with hdf5(dump, "w") as handle:
        handle.create_virtual_dataset("features", layout)
        handle["labels"] = arrays["labels"]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return Case(
        "vds_other_file", 1,
        "/features is a virtual dataset whose source is another (existing) file; refused by default naming "
        "the dataset and the source file",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/features", source.name],
    )  # fmt: skip


# --- 2. terminal, Markdown and XML injection ---------------------------------------------------------------
def _injected_dump(root: Path) -> Path:
    dump = write_dump(
        root / "injected.h5",
        attrs={
            "format": "nc-audit-features/1",
            "checkpoint_path": "model.pt" + FORGED,
            "checkpoint_sha256": FORGED + "5ae0b919e9df",
            "dataset": "digits" + FORGED,
        },
    )
    with hdf5(dump, "a") as handle:
        handle["head"].attrs["name"] = "head" + FORGED
    return dump


@case
def case_attr_injection_console(root: Path) -> Case:
    dump = _injected_dump(root)
    return Case(
        "attr_injection_console", 2,
        "checkpoint_path, checkpoint_sha256, dataset and the /head name attribute hold ESC sequences, BEL and "
        "a newline forging 'PASS nc1 <= 0.5'; the table and Markdown on stdout must show them escaped",
        [["measure", str(dump), "--no-progress"], ["measure", str(dump), "--format", "markdown", "--no-progress"]],
        "ok", extra={"no_control_chars": True, "no_forged_line": True},
    )  # fmt: skip


@case
def case_attr_injection_files(root: Path) -> Case:
    dump = _injected_dump(root)
    xml, md = root / "report.xml", root / "report.md"
    return Case(
        "attr_injection_files", 2,
        "the same injected attributes through --junit and --markdown: the XML must parse and hold no control "
        "characters, the Markdown no ESC and no forged line",
        [["measure", str(dump), "--no-progress", "--fail-on", "nc1<=100", "--junit", str(xml), "--markdown", str(md)]],
        "ok", outputs=[xml.name, md.name],
        extra={"no_control_chars": True, "no_forged_line": True, "junit": xml.name, "markdown": md.name},
    )  # fmt: skip


@case
def case_checkpoint_key_injection(root: Path) -> Case:
    import torch

    state = bare_sample_state()
    name = "fc" + FORGED.replace(".", "_")
    state[name + ".weight"] = state.pop("head.weight")
    state[name + ".bias"] = state.pop("head.bias")
    state.pop("body.1.weight")  # leave one (C, 64) weight: the head is detected, not named
    pt = save_bare_state(root / "keys.pt", {k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    dump = write_dump(root / "features.h5", head=False)
    return Case(
        "checkpoint_key_injection", 2,
        "a checkpoint whose head's state-dict name holds ESC sequences and a forged line; the report header "
        "names the head and must escape it",
        [["measure", str(pt), "--features", str(dump), "--no-progress"]],
        "ok", extra={"no_control_chars": True, "no_forged_line": True},
    )  # fmt: skip


# --- 3. outputs that are inputs ---------------------------------------------------------------------------
@case
def case_json_onto_features(root: Path) -> Case:
    pt, h5 = copy_sample(root)
    return Case(
        "json_onto_features", 3, "measure m.pt --features f.h5 --json f.h5 must refuse, f.h5 unchanged",
        [["measure", str(pt), "--features", str(h5), "--json", str(h5), "--no-progress"]],
        "error", culprits=[h5.name],
    )  # fmt: skip


@case
def case_json_onto_own_dump(root: Path) -> Case:
    _, h5 = copy_sample(root)
    return Case(
        "json_onto_own_dump", 3, "measure f.h5 --json f.h5 (a dump measured alone, report over itself)",
        [["measure", str(h5), "--json", str(h5), "--no-progress"]],
        "error", culprits=[h5.name],
    )  # fmt: skip


@case
def case_json_onto_symlink_alias(root: Path) -> Case:
    pt, h5 = copy_sample(root)
    alias = root / "alias.json"
    alias.symlink_to(h5.name)
    return Case(
        "json_onto_symlink_alias", 3,
        "--json names a symlink to the features file (same file by os.path.samefile); refuse",
        [["measure", str(pt), "--features", str(h5), "--json", str(alias), "--no-progress"]],
        "error", culprits=[alias.name, h5.name],
    )  # fmt: skip


@case
def case_extract_onto_checkpoint(root: Path) -> Case:
    pt, _ = copy_sample(root)
    return Case(
        "extract_onto_checkpoint", 3, "extract m.pt --data digits --out m.pt must refuse, m.pt unchanged",
        [["extract", str(pt), "--data", "digits", "--out", str(pt), "--no-progress"]],
        "error", culprits=[pt.name],
    )  # fmt: skip


@case
def case_markdown_onto_checkpoint(root: Path) -> Case:
    pt, h5 = copy_sample(root)
    return Case(
        "markdown_onto_checkpoint", 3, "measure m.pt --features f.h5 --markdown m.pt must refuse",
        [["measure", str(pt), "--features", str(h5), "--markdown", str(pt), "--no-progress"]],
        "error", culprits=[pt.name],
    )  # fmt: skip


@case
def case_junit_onto_features(root: Path) -> Case:
    pt, h5 = copy_sample(root)
    return Case(
        "junit_onto_features", 3, "measure m.pt --features f.h5 --junit f.h5 must refuse",
        [["measure", str(pt), "--features", str(h5), "--junit", str(h5), "--no-progress"]],
        "error", culprits=[h5.name],
    )  # fmt: skip


@case
def case_json_onto_baseline(root: Path) -> Case:
    _, h5 = copy_sample(root)
    baseline = root / "baseline.json"
    arrays_metrics = {key: 0.5 for key in METRIC_KEYS}
    baseline.write_text(json.dumps(report_record(arrays_metrics)))
    return Case(
        "json_onto_baseline", 3, "measure f.h5 --baseline b.json --json b.json: an output that is an input",
        [["measure", str(h5), "--baseline", str(baseline), "--tolerance", "100", "--json", str(baseline), "--no-progress"]],
        "error", culprits=[baseline.name],
    )  # fmt: skip


@case
def case_track_plot_onto_input(root: Path) -> Case:
    copy_sample(root, "0001")
    _, h5 = copy_sample(root, "0300")
    return Case(
        "track_plot_onto_input", 3, "track DIR --plot DIR/epoch_0300.h5 (a PNG over a dump the run reads)",
        [["track", str(root), "--plot", str(h5), "--no-progress"]],
        "error", culprits=[h5.name],
    )  # fmt: skip


@case
def case_track_json_onto_input(root: Path) -> Case:
    pt1, _ = copy_sample(root, "0001")
    copy_sample(root, "0300")
    return Case(
        "track_json_onto_input", 3, "track DIR --json DIR/epoch_0001.pt (a report over a checkpoint it reads)",
        [["track", str(root), "--json", str(pt1), "--no-progress"]],
        "error", culprits=[pt1.name],
    )  # fmt: skip


@case
def case_json_and_junit_same_path(root: Path) -> Case:
    _, h5 = copy_sample(root)
    out = root / "report.out"
    return Case(
        "json_and_junit_same_path", 3, "--json and --junit given one path: refuse before measuring",
        [["measure", str(h5), "--json", str(out), "--junit", str(out), "--no-progress"]],
        "error", culprits=[out.name],
    )  # fmt: skip


# --- 4. links, devices, FIFOs as outputs -----------------------------------------------------------------
@case
def case_json_symlink(root: Path) -> Case:
    _, h5 = copy_sample(root)
    (root / "reports").mkdir()
    target = root / "reports" / "real.json"
    target.write_text('{"stale": true}\n')
    link = root / "latest.json"
    link.symlink_to(Path("reports") / "real.json")
    return Case(
        "json_symlink", 4,
        "--json names a symlink: the link must stay a link and its target must hold the new report",
        [["measure", str(h5), "--json", str(link), "--no-progress"]],
        "ok", outputs=["reports/real.json"], extra={"symlink": link.name, "symlink_target": "reports/real.json"},
    )  # fmt: skip


@case
def case_json_char_device(root: Path) -> Case:
    _, h5 = copy_sample(root)
    device = root / "null-device"
    skip = None
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except OSError as error:
        skip = f"cannot create a character device here ({error.strerror}); the FIFO case covers the rest"
    return Case(
        "json_char_device", 4,
        "--json names a character device (a private mknod of /dev/null): write to it or refuse, never rename "
        "a regular file over it",
        [["measure", str(h5), "--json", str(device), "--no-progress"]],
        "ok-or-error", culprits=[device.name], extra={"stays_char_device": device.name}, skip=skip,
    )  # fmt: skip


@case
def case_json_fifo(root: Path) -> Case:
    _, h5 = copy_sample(root)
    fifo = make_fifo(root / "report.fifo")
    return Case(
        "json_fifo", 4,
        "--json names a FIFO with a reader: write the report into it (or refuse); the FIFO stays a FIFO",
        [["measure", str(h5), "--json", str(fifo), "--no-progress"]],
        "ok-or-error", culprits=[fifo.name], kind="fifo-reader", timeout=30,
        extra={"fifo": fifo.name, "stays_fifo": fifo.name},
    )  # fmt: skip


@case
def case_json_dev_stdout(root: Path) -> Case:
    _, h5 = copy_sample(root)
    return Case(
        "json_dev_stdout", 4,
        "--json /dev/stdout must work: the report goes to stdout (run with /dev read-only, so a bug cannot "
        "replace the host's /dev/stdout)",
        [["measure", str(h5), "--format", "markdown", "--json", "/dev/stdout", "--no-progress"]],
        "ok", kind="protected-dev", extra={"stdout_has_json_report": True},
    )  # fmt: skip


# --- 5. external-link features read from the wrong file -----------------------------------------------------
@case
def case_external_link_offsets(root: Path) -> Case:
    arrays = sample_arrays()
    rng = np.random.default_rng(5)
    target = root / "target.h5"
    with hdf5(target, "w") as handle:  # the features lie after a 1 MB dataset in the target
        handle["aaa_padding"] = rng.normal(size=(2048, 64)).astype(np.float64)
        handle.create_dataset("features", data=arrays["features"], chunks=(512, 64))
    dump = root / "linking.h5"
    with hdf5(dump, "w") as handle:  # ... and the linking file holds other numbers at those offsets
        handle["aaa_padding"] = 1e3 * rng.normal(size=(4096, 64)).astype(np.float64)
        handle["features"] = h5py.ExternalLink(target.name, "/features")
        handle["labels"] = arrays["labels"]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return Case(
        "external_link_offsets", 5,
        "/features is an external link to a chunked dataset in another file: refused by default; followed with "
        "--allow-external-data, read from the target file itself: nc1 must equal the sample's 0.002236, not 23.2",
        [["measure", str(dump), "--format", "json", "--no-progress"],
         ["measure", str(dump), "--format", "json", "--no-progress", "--allow-external-data"]],
        "ok-or-error", culprits=[dump.name], fragments=["/features"],
        extra={"expect_metrics_of": "sample"},
    )  # fmt: skip


# --- 6. degenerate features ---------------------------------------------------------------------------
@case
def case_vds_missing_source(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "vds_missing.h5"
    layout = h5py.VirtualLayout(shape=arrays["features"].shape, dtype=arrays["features"].dtype)
    layout[:] = h5py.VirtualSource(str(root / "gone.h5"), "features", shape=arrays["features"].shape)
    with hdf5(dump, "w") as handle:
        handle.create_virtual_dataset("features", layout, fillvalue=0)
        handle["labels"] = arrays["labels"]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return Case(
        "vds_missing_source", 6,
        "/features is a virtual dataset whose source file is missing (reads as fill value 0): an error, with "
        "or without --allow-external-data",
        [["measure", str(dump), "--no-progress", "--fail-on", "nc1<=0.5"],
         ["measure", str(dump), "--no-progress", "--fail-on", "nc1<=0.5", "--allow-external-data"]],
        "error", culprits=[dump.name, "gone.h5"],
    )  # fmt: skip


def _degenerate(root: Path, name: str, value: float, description: str) -> Case:
    arrays = sample_arrays()
    dump = write_dump(root / f"{name}.h5", np.full_like(arrays["features"], value))
    return Case(
        name, 6, description,
        [["measure", str(dump), "--format", "json", "--fail-on", "nc1<=0.5", "--no-progress"]],
        "gate", extra={"null_with_note": ["nc1"], "failed_rules": ["nc1 <= 0.5"]},
    )  # fmt: skip


@case
def case_constant_features(root: Path) -> Case:
    return _degenerate(
        root,
        "constant_features",
        3.25,
        "every feature row is the same vector: NC1 is undefined (null with a note) and 'nc1<=0.5' fails (exit 1)",
    )


@case
def case_zero_features(root: Path) -> Case:
    return _degenerate(
        root,
        "zero_features",
        0.0,
        "all-zero features: NC1 is undefined (null with a note) and 'nc1<=0.5' fails (exit 1)",
    )


# --- 7. scale ------------------------------------------------------------------------------------------
def _scaled(root: Path, name: str, scale: float) -> Case:
    arrays = sample_arrays()
    dump = write_dump(root / f"{name}.h5", arrays["features"].astype(np.float64) * scale)
    return Case(
        name, 7,
        f"float64 features ×{scale:g}: every scale-invariant metric equals the unscaled value (or is null with "
        "a note, or the run is refused with the actual reason); entropies never negative",
        [["measure", str(dump), "--format", "json", "--no-progress"]],
        "ok-or-error", culprits=[dump.name], forbidden=["NaN or Inf"],
        extra={"scale_invariant_of": "sample", "scale": scale},
    )  # fmt: skip


@case
def case_scale_tiny(root: Path) -> Case:
    return _scaled(root, "scale_tiny", 1e-200)


@case
def case_scale_huge(root: Path) -> Case:
    return _scaled(root, "scale_huge", 1e154)


# --- 8. heads ---------------------------------------------------------------------------------------------
def _bad_head(root: Path, name: str, weight: Any, description: str) -> Case:
    pt = save_bare_state(root / f"{name}.pt", bare_sample_state(head__weight=weight))
    dump = write_dump(root / "features.h5", head=False)
    return Case(
        name, 8, description,
        [["measure", str(pt), "--features", str(dump), "--no-progress"]],
        "error", culprits=[pt.name], fragments=["head.weight"],
    )  # fmt: skip


@case
def case_int_head_weight(root: Path) -> Case:
    import torch

    weight = torch.round(sample_state()["state_dict"]["head.weight"] * 100).to(torch.int64)
    return _bad_head(
        root,
        "int_head_weight",
        weight,
        "head.weight is int64 (no --head): refuse it, naming head.weight; never fall back to a hidden (128, 64) layer",
    )


@case
def case_complex_head_weight(root: Path) -> Case:
    import torch

    weight = sample_state()["state_dict"]["head.weight"].to(torch.complex64) * (1 + 1j)
    return _bad_head(
        root,
        "complex_head_weight",
        weight,
        "head.weight is complex64 (no --head): refuse it, naming head.weight; never a hidden layer as head",
    )


@case
def case_bias_column(root: Path) -> Case:
    bias = sample_state()["state_dict"]["head.bias"].reshape(10, 1)
    pt = save_bare_state(root / "bias_column.pt", bare_sample_state(head__bias=bias))
    dump = write_dump(root / "features.h5", head=False)
    return Case(
        "bias_column", 8,
        "head.bias has shape (10, 1): accept it as the bias (nc4 = 0.00222717 as with a (10,) bias) or refuse "
        "with the reason; never drop it with 'the head has no bias'",
        [["measure", str(pt), "--features", str(dump), "--format", "json", "--no-progress"]],
        "ok-or-error", culprits=[pt.name], fragments=["bias"],
        extra={"expect_metrics_of": "sample", "no_note": "no bias"},
    )  # fmt: skip


@case
def case_dump_complex_head(root: Path) -> Case:
    arrays = sample_arrays()
    dump = write_dump(root / "complex_head.h5", W=arrays["W"] * (1 + 0.5j))
    return Case(
        "dump_complex_head", 8,
        "/head/weight in a dump is complex128: refuse it (naming /head/weight), never drop the imaginary part",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/head/weight"], forbidden=["ComplexWarning"],
    )  # fmt: skip


# --- 9. gates that silently vanish ----------------------------------------------------------------------
def _baseline_case(root: Path, name: str, text: str, description: str, section: int = 9) -> Case:
    _, h5 = copy_sample(root)
    baseline = root / f"{name}.json"
    baseline.write_text(text)
    return Case(
        name, section, description,
        [["measure", str(h5), "--baseline", str(baseline), "--no-progress"]],
        "error", culprits=[baseline.name],
    )  # fmt: skip


@case
def case_baseline_null_metrics(root: Path) -> Case:
    text = json.dumps(report_record(dict.fromkeys(METRIC_KEYS)))
    return _baseline_case(
        root,
        "baseline_null_metrics",
        text,
        "a baseline whose metrics are all null: a gate that checks nothing is an error that says why",
    )


@case
def case_baseline_string_metrics(root: Path) -> Case:
    text = json.dumps(report_record({key: "0.5" for key in METRIC_KEYS}))
    return _baseline_case(
        root, "baseline_string_metrics", text, "a baseline whose metrics are strings: error"
    )


@case
def case_baseline_nan_metrics(root: Path) -> Case:
    text = json.dumps(report_record({key: float("nan") for key in METRIC_KEYS}))  # NaN literals
    return _baseline_case(root, "baseline_nan_metrics", text, "a baseline whose metrics are NaN: error")


@case
def case_empty_trajectory(root: Path) -> Case:
    run = root / "run.jsonl"
    run.write_bytes(b"")
    return Case(
        "empty_trajectory", 9, "track run.jsonl --fail-on 'nc1<=0.5' on an empty .jsonl: nothing checked, an error",
        [["track", str(run), "--fail-on", "nc1<=0.5", "--no-progress"]],
        "error", culprits=[run.name],
    )  # fmt: skip


# --- 10. disk full, SIGTERM -----------------------------------------------------------------------------
@case
def case_extract_disk_full(root: Path) -> Case:
    pt, _ = copy_sample(root)
    full = root / "full"
    full.mkdir()
    return Case(
        "extract_disk_full", 10,
        "extract onto a full file system (tmpfs of 192 KiB holding an older out.h5): exit 2 'no space left', "
        "the older file intact, no temporary left",
        [["extract", str(pt), "--data", "digits", "--out", str(full / "out.h5"), "--no-progress"]],
        "error", culprits=["out.h5", "full"], kind="disk-full",
        extra={"full_dir": "full", "full_size": 192 * 1024, "preload": {"out.h5": "previous"}, "no_space": True},
    )  # fmt: skip


@case
def case_cache_disk_full(root: Path) -> Case:
    pt, _ = copy_sample(root)
    full = root / "full"
    full.mkdir()
    return Case(
        "cache_disk_full", 10,
        "measure --data digits with the feature cache on a full file system (tmpfs of 128 KiB): exit 2 "
        "'no space left', no temporary left",
        [["measure", str(pt), "--data", "digits", "--cache-dir", str(full / "cache"), "--no-progress"]],
        "error", culprits=["full", "cache"], kind="disk-full",
        extra={"full_dir": "full", "full_size": 128 * 1024, "no_space": True},
    )  # fmt: skip


@case
def case_finetune_disk_full(root: Path) -> Case:
    pt, _ = copy_sample(root)
    full = root / "full"
    full.mkdir()
    return Case(
        "finetune_disk_full", 10,
        "finetune --out on a full file system (tmpfs of 48 KiB): exit 2 'no space left', no temporary left",
        [["finetune", str(pt), "--data", "digits", "--cma-weight", "0.1", "--epochs", "1",
          "--train-samples-per-class", "5", "--out", str(full / "run"), "--no-progress"]],
        "error", culprits=["full", "run"], kind="disk-full",
        extra={"full_dir": "full", "full_size": 48 * 1024, "no_space": True},
    )  # fmt: skip


@case
def case_extract_sigterm(root: Path) -> Case:
    pt, _ = copy_sample(root)
    out = root / "out"
    out.mkdir()
    return Case(
        "extract_sigterm", 10,
        "SIGTERM while extract writes a large dump: the temporary file is removed, no dump appears",
        [["extract", str(pt), "--data", "gaussian:classes=10,dim=64,samples=200000,seed=0", "--out",
          str(out / "big.h5"), "--no-progress"]],
        "interrupted", kind="sigterm", timeout=120, extra={"watch_dir": "out"},
    )  # fmt: skip


# --- 11. memory and time bombs ---------------------------------------------------------------------------
def _sparse_dump(path: Path, rows: int, width: int) -> Path:
    """A dump that declares (rows, width) features and (rows,) labels but stores no chunk: a few KB."""
    with hdf5(path, "w") as handle:
        handle.create_dataset("features", shape=(rows, width), dtype="f4", chunks=(1, min(width, 1024)))
        handle.create_dataset("labels", shape=(rows,), dtype="i8", chunks=(4096,))
        head = handle.create_dataset(
            "head/weight", shape=(2, width), dtype="f8", chunks=(1, min(width, 1024))
        )
        head[0, :4], head[1, 4:8] = 1.0, 1.0  # two small chunks written, the rest is fill value
        handle["head/bias"] = np.zeros(2)
    return path


@case
def case_sparse_huge(root: Path) -> Case:
    dump = _sparse_dump(root / "sparse_1e9x1e6.h5", 10**9, 10**6)
    return Case(
        "sparse_huge", 11,
        f"a {dump.stat().st_size} B dump declaring sparse (1e9, 1e6) float32 features (4 PB): refuse quickly, "
        "within the memory budget, naming the file",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], timeout=30,
    )  # fmt: skip


@case
def case_sparse_tall(root: Path) -> Case:
    dump = _sparse_dump(root / "sparse_1e9x64.h5", 10**9, 64)
    return Case(
        "sparse_tall", 11,
        f"a {dump.stat().st_size} B dump declaring sparse (1e9, 64) features: refuse quickly (declared size "
        "against the file's real size), not 100 s of reading fill values",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], timeout=30,
    )  # fmt: skip


@case
def case_chunked_1x1(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "chunked_1x1.h5"
    n = 16000
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=n)
    features = arrays["features"][rng.integers(0, len(arrays["labels"]), size=n)][:, :16]
    with hdf5(dump, "w") as handle:
        handle.create_dataset("features", data=features.astype(np.float32), chunks=(1, 1))
        handle.create_dataset("labels", data=labels, chunks=(1,))
        handle["head/weight"] = arrays["W"][:, :16]
        handle["head/bias"] = arrays["b"]
    return Case(
        "chunked_1x1", 11,
        f"a {dump.stat().st_size // 1024} KB dump of (16000, 16) float32 stored in (1, 1) chunks: measured "
        "(or refused) within the memory budget and the time limit — the chunk layout must not decide memory",
        [["measure", str(dump), "--format", "json", "--no-progress"]],
        "ok-or-error", culprits=[dump.name], timeout=60,
    )  # fmt: skip


@case
def case_zip_bomb_pt(root: Path) -> Case:
    pt = write_zip_bomb_pt(root / "bomb.pt")
    dump = write_dump(root / "features.h5", head=False)
    return Case(
        "zip_bomb_pt", 11,
        f"a {pt.stat().st_size // 1024} KB .pt whose 'padding' record inflates to 2 GiB: refused (declared "
        "size against the budget, naming the file) or measured without inflating it — within the memory budget",
        [["measure", str(pt), "--features", str(dump), "--no-progress"]],
        "ok-or-error", culprits=[pt.name], timeout=60,
    )  # fmt: skip


@case
def case_arch_hidden_huge(root: Path) -> Case:
    import torch

    payload = dict(sample_state())
    payload["architecture"] = json.loads(json.dumps(payload["architecture"]))
    payload["architecture"]["config"]["hidden"] = [30000, 30000]
    pt = root / "huge_arch.pt"
    torch.save(payload, pt)
    return Case(
        "arch_hidden_huge", 11,
        "a 64 KB nc-audit checkpoint whose architecture record asks hidden=[30000, 30000] (3.6 GB of "
        "weights) for a 64-64-64-64 state dict: the record is checked against the state dict's shapes first",
        [["extract", str(pt), "--data", "digits", "--out", str(root / "out.h5"), "--no-progress"]],
        "error", culprits=[pt.name], timeout=60,
    )  # fmt: skip


@case
def case_baseline_dev_zero(root: Path) -> Case:
    _, h5 = copy_sample(root)
    return Case(
        "baseline_dev_zero", 11, "--baseline /dev/zero: refuse (not a regular file, or over the size cap) at once",
        [["measure", str(h5), "--baseline", "/dev/zero", "--no-progress"]],
        "error", culprits=["/dev/zero"], timeout=30,
    )  # fmt: skip


@case
def case_baseline_fifo(root: Path) -> Case:
    _, h5 = copy_sample(root)
    fifo = make_fifo(root / "baseline.json")
    return Case(
        "baseline_fifo", 11, "--baseline names a FIFO nobody writes to: refuse, never hang",
        [["measure", str(h5), "--baseline", str(fifo), "--no-progress"]],
        "error", culprits=[fifo.name], timeout=20,
    )  # fmt: skip


@case
def case_track_fifo_pt(root: Path) -> Case:
    copy_sample(root, "0001")
    copy_sample(root, "0300")
    fifo = make_fifo(root / "epoch_0150.pt")
    shutil.copyfile(SAMPLES / "epoch_0150.h5", root / "epoch_0150.h5")
    return Case(
        "track_fifo_pt", 11, "track DIR where epoch_0150.pt is a FIFO: refuse naming it (only regular files are "
        "read), never hang",
        [["track", str(root), "--no-progress"]],
        "error", culprits=[fifo.name], timeout=20,
    )  # fmt: skip


# --- 12. messages that name no file or say the wrong thing -------------------------------------------------
@case
def case_float128_features(root: Path) -> Case:
    arrays = sample_arrays()
    dump = write_dump(root / "float128.h5", arrays["features"].astype(np.longdouble))
    return Case(
        "float128_features", 12, "/features stored as float128 (long double): one line naming the file and the dtype",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/features"], forbidden=["can't convert"],
    )  # fmt: skip


@case
def case_external_link_not_hdf5(root: Path) -> Case:
    notes = root / "notes.txt"
    notes.write_text("features,labels\n0.1,0\n")
    dump = root / "link_to_text.h5"
    with hdf5(dump, "w") as handle:
        handle["features"] = h5py.ExternalLink(notes.name, "/features")
        handle["labels"] = sample_arrays()["labels"]
        handle["head/weight"], handle["head/bias"] = sample_arrays()["W"], sample_arrays()["b"]
    return Case(
        "external_link_not_hdf5", 12, "/features is an external link to a text file: one line naming the dump",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], forbidden=["KeyError", "file signature not found"],
    )  # fmt: skip


@case
def case_soft_link_loop(root: Path) -> Case:
    dump = root / "soft_loop.h5"
    with hdf5(dump, "w") as handle:
        handle["features"] = h5py.SoftLink("/a")
        handle["a"] = h5py.SoftLink("/features")
        handle["labels"] = sample_arrays()["labels"]
        handle["head/weight"], handle["head/bias"] = sample_arrays()["W"], sample_arrays()["b"]
    return Case(
        "soft_link_loop", 12, "/features → /a → /features (soft links in a loop): one line naming the dump",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], forbidden=["KeyError"],
    )  # fmt: skip


@case
def case_external_link_loop(root: Path) -> Case:
    one, two = root / "loop_one.h5", root / "loop_two.h5"
    with hdf5(one, "w") as handle:
        handle["features"] = h5py.ExternalLink(two.name, "/features")
        handle["labels"] = sample_arrays()["labels"]
        handle["head/weight"], handle["head/bias"] = sample_arrays()["W"], sample_arrays()["b"]
    with hdf5(two, "w") as handle:
        handle["features"] = h5py.ExternalLink(one.name, "/features")
    return Case(
        "external_link_loop", 12, "/features links to another file whose /features links back: one line naming the dump",
        [["measure", str(one), "--no-progress"]],
        "error", culprits=[one.name], forbidden=["KeyError"],
    )  # fmt: skip


@case
def case_head_weight_strings(root: Path) -> Case:
    dump = write_dump(root / "string_head.h5", W=np.array([["w"] * 64] * 10, dtype=object).astype("S4"))
    return Case(
        "head_weight_strings", 12, "/head/weight holds strings: one line naming the file and /head/weight",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/head/weight"],
    )  # fmt: skip


@case
def case_head_bias_misshaped(root: Path) -> Case:
    dump = write_dump(root / "bad_bias.h5", b=np.zeros((10, 3)))
    return Case(
        "head_bias_misshaped", 12, "/head/bias of shape (10, 3): one line naming the file and /head/bias",
        [["measure", str(dump), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/head/bias"],
    )  # fmt: skip


@case
def case_proc_self_mem(root: Path) -> Case:
    pt, h5 = copy_sample(root)
    return Case(
        "proc_self_mem", 12, "/proc/self/mem as the dump, as the checkpoint and as the baseline: one line "
        "naming it each time",
        [["measure", str(pt), "--features", "/proc/self/mem", "--no-progress"],
         ["measure", "/proc/self/mem", "--features", str(h5), "--no-progress"],
         ["measure", str(h5), "--baseline", "/proc/self/mem", "--no-progress"]],
        "error", culprits=["/proc/self/mem"], timeout=30,
    )  # fmt: skip


@case
def case_truncated_pt(root: Path) -> Case:
    pt, h5 = copy_sample(root)
    pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    return Case(
        "truncated_pt", 12, "a .pt cut in half: one line saying it is truncated (not 'Invalid argument')",
        [["measure", str(pt), "--features", str(h5), "--no-progress"]],
        "error", culprits=[pt.name], forbidden=["Invalid argument", "could execute code"],
    )  # fmt: skip


@case
def case_empty_pt(root: Path) -> Case:
    pt = root / "empty.pt"
    pt.write_bytes(b"")
    h5 = write_dump(root / "features.h5", head=False)
    return Case(
        "empty_pt", 12, "a 0-byte .pt: one line saying it is empty (not 'EOFError')",
        [["measure", str(pt), "--features", str(h5), "--no-progress"]],
        "error", culprits=[pt.name], forbidden=["EOFError", "could execute code"],
    )  # fmt: skip


@case
def case_random_bytes_pt(root: Path) -> Case:
    pt = root / "noise.pt"
    pt.write_bytes(np.random.default_rng(7).bytes(4096))
    h5 = write_dump(root / "features.h5", head=False)
    return Case(
        "random_bytes_pt", 12, "4 KB of random bytes named .pt: 'not a PyTorch checkpoint', never 'could execute code'",
        [["measure", str(pt), "--features", str(h5), "--no-progress"]],
        "error", culprits=[pt.name], forbidden=["could execute code"],
    )  # fmt: skip


@case
def case_sparse_head_tensor(root: Path) -> Case:
    weight = sample_state()["state_dict"]["head.weight"].to_sparse()
    pt = save_bare_state(root / "sparse_head.pt", bare_sample_state(head__weight=weight))
    h5 = write_dump(root / "features.h5", head=False)
    return Case(
        "sparse_head_tensor", 12, "head.weight is a sparse COO tensor: one line naming the file and the tensor",
        [["measure", str(pt), "--features", str(h5), "--head", "head", "--no-progress"]],
        "error", culprits=[pt.name], fragments=["head.weight"],
    )  # fmt: skip


@case
def case_meta_head_tensor(root: Path) -> Case:
    import torch

    weight = torch.empty(10, 64, device="meta")
    pt = save_bare_state(root / "meta_head.pt", bare_sample_state(head__weight=weight))
    h5 = write_dump(root / "features.h5", head=False)
    return Case(
        "meta_head_tensor", 12, "head.weight is a meta tensor (no data): one line naming the file and the tensor",
        [["measure", str(pt), "--features", str(h5), "--head", "head", "--no-progress"]],
        "error", culprits=[pt.name], fragments=["head.weight"],
    )  # fmt: skip


@case
def case_baseline_deep(root: Path) -> Case:
    depth = 100_000
    text = '{"schema": "nc-audit-report/1", "metrics": {"nc1": ' + "[" * depth + "]" * depth + "}}"
    return _baseline_case(
        root,
        "baseline_deep",
        text,
        "a baseline nested 100,000 deep: one line naming it (not a bare RecursionError)",
        section=12,
    )


@case
def case_baseline_bigint(root: Path) -> Case:
    text = '{"schema": "nc-audit-report/1", "metrics": {"nc1": 1' + "0" * 5000 + "}}"
    return _baseline_case(
        root,
        "baseline_bigint",
        text,
        "a baseline holding a 5,001-digit integer: one line "
        "naming it (not a bare ValueError about int digits)",
        section=12,
    )


@case
def case_finetune_huge_lr(root: Path) -> Case:
    pt, _ = copy_sample(root)
    return Case(
        "finetune_huge_lr", 12,
        "finetune --lr 1e30 diverges: one line saying the loss diverged (naming --lr), not '_LinAlgError'",
        [["finetune", str(pt), "--data", "digits", "--cma-weight", "0.1", "--epochs", "1", "--lr", "1e30",
          "--train-samples-per-class", "5", "--out", str(root / "run"), "--no-progress"]],
        "error", culprits=["--lr", "learning rate", pt.name], forbidden=["LinAlgError"],
        outputs=["run", "run/epoch_*.pt", "run/history.jsonl", "run/final.pt"],
        timeout=120,
    )  # fmt: skip


@case
def case_truncated_cache_entry(root: Path) -> Case:
    pt, _ = copy_sample(root)
    cache = root / "cache"
    primed = run_cli(
        ["measure", str(pt), "--data", "digits", "--cache-dir", str(cache), "--no-progress"], root
    )
    entries = sorted(cache.glob("*.h5"))
    skip = None if primed.returncode == 0 and entries else f"priming the cache failed: {primed.stderr[-300:]}"
    for entry in entries:
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 3])
    return Case(
        "truncated_cache_entry", 12,
        "a truncated feature-cache entry: detected as a cache file, said so, rebuilt (exit 0), and the next run "
        "reuses the rebuilt entry",
        [["measure", str(pt), "--data", "digits", "--cache-dir", str(cache), "--format", "json", "--no-progress"],
         ["measure", str(pt), "--data", "digits", "--cache-dir", str(cache), "--format", "json", "--no-progress"]],
        "ok", outputs=["cache/*"], timeout=120,
        extra={"says_cache_rebuilt": True, "cache_hit_on_last_run": True}, skip=skip,
    )  # fmt: skip


@case
def case_json_empty_path(root: Path) -> Case:
    _, h5 = copy_sample(root)
    return Case(
        "json_empty_path", 12, "--json '' (an empty path): one line naming --json, before measuring",
        [["measure", str(h5), "--json", "", "--no-progress"]],
        "error", culprits=["--json"],
    )  # fmt: skip


@case
def case_non_utf8_path(root: Path) -> Case:
    dump = write_dump(root / os.fsdecode(b"features-\xff\xfe.h5"))
    missing = root / os.fsdecode(b"missing-\xff.h5")
    return Case(
        "non_utf8_path", 12,
        "a valid dump whose file name is not UTF-8 (stdout encoding strict UTF-8, as with PYTHONIOENCODING=utf-8): "
        "measured, with --json and --markdown written (exit 0); a missing one: one line naming it",
        [["measure", str(dump), "--json", str(root / "report.json"), "--markdown", str(root / "report.md"), "--no-progress"],
         ["measure", str(missing), "--no-progress"]],
        "ok", outputs=["report.json", "report.md"],
        extra={"last_run_is_error": "missing-", "env": {"PYTHONIOENCODING": "utf-8"}, "json_file": "report.json"},
    )  # fmt: skip


@case
def case_plot_markup_name(root: Path) -> Case:
    copy_sample(root, "0001")
    copy_sample(root, "0300")
    plot = root / "traj[red]x[bold].png"
    return Case(
        "plot_markup_name", 12, "track --plot 'traj[red]x[bold].png': the file is written and named verbatim "
        "on stderr (Rich markup is not applied to paths)",
        [["track", str(root), "--plot", str(plot), "--no-progress"]],
        "ok", outputs=[plot.name.replace("[", "[[]")], extra={"stderr_names": plot.name, "exists": plot.name},
    )  # fmt: skip


# --- round 2 (issue 19): one module a class of hole, each registering its cases with @case ----------------
def _import_case_modules() -> None:
    import importlib

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    for path in sorted(Path(here).glob("cases_*.py")):
        module = importlib.import_module(path.stem)
        fast = getattr(module, "FAST", None)
        if fast is None:  # every case of the module runs in make test
            continue
        for name, generator in GENERATORS.items():
            if generator.__module__ == module.__name__ and name not in fast:
                SLOW_CASES.setdefault(name, "a variant of its class: make test runs the module's FAST cases")


_import_case_modules()


# --- the corpus -----------------------------------------------------------------------------------------
def generate(out: Path, names: list[str] | None = None) -> list[Case]:
    """Write the cases (all, or ``names``) into OUT/NAME/ and return them."""
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for name in names or list(GENERATORS):
        folder = out / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        cases.append(GENERATORS[name](folder))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder to write the corpus into")
    parser.add_argument("--case", action="append", dest="cases", help="only this case (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    args = parser.parse_args(argv)
    if args.list:
        for name, _function in GENERATORS.items():
            print(name)
        return 0
    if args.out is None:
        parser.error("OUT is required (or --list)")
    unknown = sorted(set(args.cases or []) - set(GENERATORS))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    started = time.perf_counter()
    cases = generate(args.out, args.cases)
    if args.json:
        manifest = [
            {"name": c.name, "section": c.section, "description": c.description, "expect": c.expect,
             "kind": c.kind, "commands": c.commands(), "skip": c.skip}
            for c in cases
        ]  # fmt: skip
        print(json.dumps(manifest, indent=2))
    else:
        for c in cases:
            print(f"[{c.section:>2}] {c.name} ({c.expect}{', ' + c.kind if c.kind != 'plain' else ''})"
                  f"{'  SKIP: ' + c.skip if c.skip else ''}\n     {c.description}")  # fmt: skip
            for command in c.commands():
                print(f"     $ {command}")
        print(f"{len(cases)} cases in {args.out} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
