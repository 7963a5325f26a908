"""The second pass's memory is bounded independently of C (issue 19, class 8: C = 3,000, d = 8 took 4 GB in
the products buffer, rows × 3C float64 per worker). Checked for real, not by mocking: a child process runs
the pass under an address-space limit (RLIMIT_AS) of its current size + 1 GiB, so any allocation of the
old size fails there, and reports its peak RSS growth, which must stay within 200 MB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

CHILD = r"""
import json, resource, sys
import torch
from nc_audit.core.progress import SilentTracker
from nc_audit.engine.accumulators import WithinProjection
from nc_audit.engine.passes import accumulate_stats, count_decisions
from nc_audit.io.dumps.reader import read_head, resolve_split
from nc_audit.metrics.collapse import centred_means

def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))

cpu, results = torch.device("cpu"), []
prepared = []
for path in sys.argv[1:]:
    info, head = resolve_split(path, None), read_head(path)
    stats = accumulate_stats(info, head.num_classes, cpu, SilentTracker(), with_scatter=False)
    prepared.append((info, head, stats))
limit = status("VmSize:") + 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
before = status("VmHWM:")
for info, head, stats in prepared:
    projection = WithinProjection(stats.class_means, centred_means(stats.subset(stats.present)))
    second = count_decisions(info, stats, head, cpu, SilentTracker(), projection=projection)
    results.append({"C": head.num_classes, "samples": second.counter.samples, "nc4": second.counter.nc4})
print(json.dumps({"growth": status("VmHWM:") - before, "results": results}))
"""


def vocabulary_dump(path: Path, C: int, d: int, N: int, seed: int) -> Path:
    """float32 features around C random centres, labels over all C classes, a (C, d) head."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((C, d))
    labels = rng.integers(0, C, N)
    with h5py.File(path, "w") as handle:
        handle["features"] = (centres[labels] + rng.standard_normal((N, d))).astype(np.float32)
        handle["labels"] = labels
        handle["head/weight"] = centres + 0.3 * rng.standard_normal((C, d))
        handle["head/bias"] = rng.standard_normal(C)
    return path


def test_second_pass_memory_does_not_grow_with_the_class_count(tmp_path: Path) -> None:
    dumps = [
        vocabulary_dump(tmp_path / "c3000.h5", 3_000, 8, 3_000, 0),  # the 627 KB bomb, in kind
        vocabulary_dump(tmp_path / "c50000.h5", 50_000, 8, 1_000, 1),
    ]
    child = subprocess.run(
        [sys.executable, "-c", CHILD, *map(str, dumps)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert [r["C"] for r in report["results"]] == [3_000, 50_000]
    assert [r["samples"] for r in report["results"]] == [3_000, 1_000]
    assert report["growth"] <= 200 * 2**20, report
