"""SIGTERM ends a run through its clean-up code (nc_audit/core/signals.py): a temporary file being
written is removed, the exit status is 128 + 15, and a swallowed exception is raised again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nc_audit.core import signals

WRITER = r"""
import sys, time
from nc_audit.core.signals import exceptions_on_signals
from nc_audit.io.guards.atomic import atomic_path
with exceptions_on_signals():
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"partial")
        print("writing", flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_removes_the_temporary_file(tmp_path: Path, number: int) -> None:
    target = tmp_path / "out.h5"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout.readline() == b"writing\n"
    assert next(p.name for p in tmp_path.iterdir()).startswith(".out.h5.")
    started = time.monotonic()
    process.send_signal(number)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == [], "the temporary file stayed"
    if number == signal.SIGTERM:
        assert process.returncode == 128 + signal.SIGTERM and b"Traceback" not in stderr
    else:
        assert process.returncode != 0


def test_a_swallowed_signal_is_raised_again_before_a_write_is_made_final(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signals, "_pending", None)
    try:
        signals._handler(signal.SIGTERM, None)
    except signals.Terminated:
        pass  # as if an extension's deallocator had swallowed it
    with pytest.raises(signals.Terminated) as raised:
        signals.raise_if_terminated()
    assert raised.value.code == 128 + signal.SIGTERM
    signals._handler(signal.SIGTERM, None)  # a second signal during the clean-up: ignored
    monkeypatch.setattr(signals, "_pending", None)
    signals.raise_if_terminated()
