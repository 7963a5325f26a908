"""The corpus is tokenized once under ``torchrun`` (nc_audit.models.corpus_stream): rank 0 tokenizes, the
other ranks memory-map its stream; a corpus rank 0 refuses fails every rank at once (none waits forever),
with the one-line message, and no token folder is left beside the output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port
from gloo_ranks import CHILD_ENV
from tiny_lm import build, write_tokens

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
               "--master_addr=127.0.0.1", "-m", "nc_audit", *args, "--no-progress"]  # fmt: skip
    launch = subprocess.Popen(command, cwd=cwd, env=os.environ | CHILD_ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = launch.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.communicate()
        pytest.fail(f"{' '.join(args)} did not finish within 240 s (a rank waited forever?)")
    return subprocess.CompletedProcess(command, launch.returncode, stdout, stderr)


def test_a_corpus_rank_0_refuses_fails_every_rank(tmp_path: Path) -> None:
    folder, _ = build(tmp_path / "lm", "gpt2", documents=10)
    tokens = write_tokens(
        tmp_path / "tokens.npy", [[1, 2, 3, 4], [5, 6, 10**6]]
    )  # 10**6: beyond the vocabulary
    out = tmp_path / "out"
    out.mkdir()
    done = torchrun(["extract", str(folder), "-d", str(tokens), "--task", "next-token", "-o", "x.h5"], out)
    assert done.returncode != 0
    assert "outside the model's vocabulary" in done.stderr + done.stdout  # rank 0's own message
    output = done.stderr + done.stdout
    # torchrun's launcher prints its own traceback for a failed child; none comes from nc-audit
    assert not [
        line for line in output.splitlines() if line.lstrip().startswith("File") and "nc_audit" in line
    ]
    assert output.count("nc-audit: error:") == 2  # one line per rank
    assert list(out.iterdir()) == []  # no dump, no part, no token folder
