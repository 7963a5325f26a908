"""A dump that cannot be written (disk full, file-size limit) ends in one InputError, the temporary file
removed and the older file intact, with no "Exception ignored" and no crash at exit (issue 10, section 10).

The write runs in a child process under RLIMIT_FSIZE (no root needed); HDF5's failed flushes used to
crash the interpreter at exit (SIGSEGV) after printing tracebacks from h5py's deallocators."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WRITER = r"""
import resource, signal, sys
import numpy as np, torch
from nc_audit.core.errors import InputError
from nc_audit.io.dumps.writer import write_dump
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
try:
    with write_dump(sys.argv[1], {"dataset": "test"}) as writer:
        writer.head(torch.ones(10, 64), torch.zeros(10), "head")
        for name in ("train", "test"):
            split = writer.split(name, 20000, 64, 10)
            for start in range(0, 20000, 1000):
                split.append(torch.ones(1000, 64), torch.zeros(1000, dtype=torch.int64), torch.ones(1000, 10))
except InputError as error:
    print(error)
"""


def test_a_full_disk_while_writing_a_dump_is_one_clean_error(tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    out.write_text("previous")
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "out.h5: file too large for the file-size limit (the previous file is intact)" in done.stdout
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert out.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]
