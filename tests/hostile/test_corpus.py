"""Issue 10's hostile and broken inputs, each run through the real CLI in a subprocess.

One test per case of ``generate.py``. Each case is generated into its own folder, then every command line
of the case runs as ``python -m nc_audit ...`` under an address-space cap (RLIMIT_AS, set by a tiny
launcher that then execs the CLI: ``preexec_fn`` is not safe from the worker threads used here) and a
wall-clock limit, with a planted secret first in its environment. The contract (``contract.py``):

- exit 0 with finite, in-range metrics (or null with a note), the right numbers where the issue says
  what they must be; or exit 1 where a gate must fail; or exit 2 with exactly one stderr line naming the
  input at fault;
- never a traceback, a signal, a timeout, peak RSS above the budget, a changed input file (every file in
  the case folder is hashed before and after), a file left behind (temporaries), or host data
  (/etc/passwd, the environment) in the output.

Cases run two at a time in threads (the machine this was written on has 2 cores): the first test
starts every selected case, each test waits for its own. Under pytest-xdist (``make test``) the workers
already share the cores: each test runs its own case when it comes. A few cases that train or extract are marked
``slow``: ``make test-all`` runs them, ``make test`` (CI) does not. A case that fails would be marked
``xfail(strict=True)`` in XFAIL with the observed behaviour, so that its fix fails the run until the mark
is removed; none is left.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fnmatch
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import contract
import generate
import markdown_contract
import numpy as np
import pytest
from generate import PASSWD_MARK, SECRET_NAME, Case

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: reference.py
from reference import reference_metrics

WORKERS = max(1, min(2, os.cpu_count() or 1))

#: Forks the CLI (``python -m nc_audit ARGS``) under the limits, waits for it and writes its wait status
#: and peak RSS to REPORT. The fork is of this small launcher, so the peak RSS is the CLI's own (a child
#: of the test process would inherit the test process's high-water mark through vfork/exec).
LAUNCHER = r"""
import os, resource, signal, sys
report, address_space, file_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pid = os.fork()
if pid == 0:
    if address_space:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    if file_size:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), no kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    os.execv(sys.executable, [sys.executable, "-m", "nc_audit", *sys.argv[4:]])
for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(number, signal.SIG_IGN)  # sent to the whole group: the CLI answers, this reports
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as handle:
    handle.write(f"{status} {usage.ru_maxrss}\n")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
#: Environment variables that would change what a run prints or where it writes.
DROPPED_ENV = ("GITHUB_STEP_SUMMARY", "FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
#: C0 controls except tab and newline, DEL and the C1 controls: none may come from an input into the output.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
FORGED_LINE = re.compile(r"^[\s│┃|]*PASS nc1 <= 0\.5", re.MULTILINE)

# --- which cases are marked ---------------------------------------------------------------------------
#: name -> what nc-audit does with the case today, for a case that still fails (none: issue 10 fixed them
#: all). A case listed here is marked xfail(strict=True), so its fix must remove it.
XFAIL: dict[str, str] = {}
#: Cases marked ``slow`` (they train, extract or run several times): ``make test-all`` runs them, ``make
#: test`` (CI) leaves them out with every other slow test.
SLOW: dict[str, str] = {
    "truncated_cache_entry": "primes a cache, then 2 runs",
    "extract_sigterm": "extracts 200,000 samples until SIGTERM",
    "finetune_disk_full": "fine-tunes until the disk is full",
    "finetune_huge_lr": "fine-tunes one epoch",
    "extract_disk_full": "extracts until the disk is full",
    "attr_injection_console": "four runs (table and Markdown, twice)",
    **generate.SLOW_CASES,
    # variants whose class keeps a faster case (or a unit test) in make test: make test-all runs them
    "arch_hidden_huge": "builds nothing but loads torch for two runs (about 3 s); make test-all runs it",
    "chunked_1x1": "reads a 1×1-chunked dump row by row (about 3 s); make test-all runs it",
    "plot_markup_name": "make test keeps the unit tests of every format's escaping (tests/report)",
    "json_symlink": "make test keeps the output-guard unit tests (tests/io/test_outputs.py)",
    "sparse_head_tensor": "a variant of int_head_weight and head_weight_strings (a head that is no dense real matrix)",
    "external_link_offsets": "a variant of external_link (a link out of the file)",
    "external_link_not_hdf5": "a variant of external_link (a link out of the file)",
    "external_storage_environ": "a variant of external_storage_passwd (bytes kept outside the file)",
    "heads_trainer_pickle_named": "a variant of heads_trainer_pickles (a Trainer side file never unpickled)",
    "core_jsonl_checkpoint_string": "a variant of core_baseline_label_list (records parsed into typed reports)",
    "core_jsonl_step_string": "a variant of core_baseline_label_list (records parsed into typed reports)",
    "core_baseline_checks_not_a_list": "a variant of core_baseline_label_list (records parsed into typed reports)",
    "types2_jsonl_unknown_rule": "a variant of types2_jsonl_forged_pass (a run's recorded checks re-checked)",
    "expout_measure_html_mathtext_name": "tests/report/test_experiment_output.py checks every figure's text in make test",
    "render_project_gates_line_forged": "tests/cli/test_project_gates_line.py checks the line in make test",
    # variants of a class whose named case runs in make test; make test-all runs them all
    "json_onto_own_dump": "a variant of json_onto_features",
    "json_onto_symlink_alias": "a variant of json_onto_features",
    "markdown_onto_checkpoint": "a variant of extract_onto_checkpoint",
    "junit_onto_features": "a variant of json_onto_features",
    "track_plot_onto_input": "a variant of track_json_onto_input",
    "json_and_junit_same_path": "a variant of json_onto_baseline",
    "json_char_device": "a variant of json_fifo",
    "json_dev_stdout": "a variant of json_fifo",
    "scale_tiny": "a variant of scale_huge",
    "zero_features": "a variant of constant_features",
    "complex_head_weight": "a variant of int_head_weight",
    "dump_complex_head": "a variant of int_head_weight",
    "baseline_string_metrics": "a variant of baseline_null_metrics",
    "baseline_nan_metrics": "a variant of baseline_null_metrics",
    "cache_disk_full": "a variant of extract_disk_full",
    "sparse_tall": "a variant of sparse_huge",
    "baseline_fifo": "a variant of baseline_dev_zero",
    "track_fifo_pt": "a variant of baseline_dev_zero",
    "external_link_loop": "a variant of soft_link_loop",
    "empty_pt": "a variant of truncated_pt",
    "random_bytes_pt": "a variant of truncated_pt",
    "meta_head_tensor": "a variant of sparse_head_tensor",
    "baseline_bigint": "a variant of baseline_deep",
    "second_pass_classes_3000": "4 s; its class (the second pass's memory independent of C) is "
    "tests/engine/test_second_pass_memory.py in make test",
    "int_head_weight": "a subprocess; its class is tests/io/test_head_checks.py in make test",
    "constant_features": "a subprocess; its class is tests/metrics/test_degenerate.py in make test",
    "json_fifo": "a subprocess; its class is tests/io/test_atomic_targets.py in make test",
    "shard_dotdot": "a subprocess; its class is tests/io/test_shard_index.py in make test",
    "extract_onto_checkpoint": "a subprocess; outputs over inputs keep json_onto_features and prune_json_onto_checkpoint in make test and tests/io/test_outputs.py",
    "json_onto_baseline": "a subprocess; outputs over inputs keep json_onto_features and prune_json_onto_checkpoint in make test and tests/io/test_outputs.py",
    "json_onto_hf_config": "a subprocess; outputs over inputs keep json_onto_features and prune_json_onto_checkpoint in make test and tests/io/test_outputs.py",
    "json_onto_model_source": "a subprocess; outputs over inputs keep json_onto_features and prune_json_onto_checkpoint in make test and tests/io/test_outputs.py",
    "vds_missing_source": "a subprocess; VDS cases keep vds_other_file and vds_self_cycle in make test and tests/io/test_hdf5_graph.py",
    "vds_same_file_passwd": "a subprocess; VDS cases keep vds_other_file and vds_self_cycle in make test and tests/io/test_hdf5_graph.py",
    "vds_unmapped_region": "a subprocess; VDS cases keep vds_other_file and vds_self_cycle in make test and tests/io/test_hdf5_graph.py",
}


# --- running one command line ----------------------------------------------------------------------------
@dataclass
class Run:
    """One finished command line."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    maxrss_bytes: int
    timed_out: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = contract.nonblank_lines(self.stderr)
        first = lines[0] if lines else (contract.nonblank_lines(self.stdout) or [""])[0]
        state = "TIMEOUT" if self.timed_out else f"exit {self.returncode}"
        return f"{state} in {self.wall_s:.1f} s, {self.maxrss_bytes / 2**20:.0f} MB: {first[:300]!r}"


def _drain(stream: Any, sink: bytearray) -> None:
    with contextlib.suppress(OSError, ValueError):
        while chunk := stream.read1(1 << 16):
            sink.extend(chunk)


def run_cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    report: Path,
    *,
    file_size: int = 0,
    wrap: list[str] | None = None,
    on_tick: Callable[[subprocess.Popen[bytes], float], None] | None = None,
) -> Run:
    """Run the CLI under the caps (the launcher writes its status to ``report``); ``on_tick(process,
    elapsed)`` is called about every 20 ms. Signals for the CLI go to the process group."""
    command = [
        sys.executable, "-c", LAUNCHER, str(report), str(contract.ADDRESS_SPACE_CAP_BYTES), str(file_size), *args
    ]  # fmt: skip
    process = subprocess.Popen(
        [*(wrap or []), *command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = bytearray(), bytearray()
    readers = [
        threading.Thread(target=_drain, args=(process.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(process.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    timed_out = False
    while process.poll() is None:
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            break
        if on_tick is not None:
            on_tick(process, elapsed)
        time.sleep(0.02)
    wall = time.monotonic() - started
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # anything it left running
    for reader in readers:
        reader.join(timeout=10)
    process.stdout.close()  # type: ignore[union-attr]
    process.stderr.close()  # type: ignore[union-attr]
    returncode, maxrss = process.returncode, 0
    with contextlib.suppress(OSError, ValueError):
        status, maxrss_kb = report.read_text().split()
        returncode, maxrss = os.waitstatus_to_exitcode(int(status)), int(maxrss_kb) * 1024
    with contextlib.suppress(OSError):
        report.unlink()
    return Run(
        args=args,
        returncode=returncode,
        stdout=bytes(out).decode("utf-8", "replace"),
        stderr=bytes(err).decode("utf-8", "replace"),
        wall_s=wall,
        maxrss_bytes=maxrss,
        timed_out=timed_out,
    )


def child_env(root: Path, secret: str) -> dict[str, str]:
    """The secret first (so /proc/self/environ starts with it), the rest of ours, no CI summary, no colour."""
    env = {SECRET_NAME: secret}
    env.update(
        (key, value)
        for key, value in os.environ.items()
        if key not in DROPPED_ENV and not key.startswith("NC_AUDIT") and key != SECRET_NAME
    )
    env.update(
        NC_AUDIT_CACHE=str(root.parent / f"{root.name}.default-cache"),
        NC_AUDIT_CACHE_KEY=str(root.parent / "cache.key"),  # the proof key: never the user's own
        MPLCONFIGDIR=str(root.parent / "mplconfig"),
        NO_COLOR="1",
        COLUMNS="200",
        OMP_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


# --- what is on disk ----------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (not following links): 'dir', 'link:TARGET', 'fifo', 'chr', 'file:SHA256'."""
    entries: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries[rel] = f"link:{os.readlink(path)}"
            elif stat.S_ISDIR(info.st_mode):
                entries[rel] = "dir"
            elif stat.S_ISFIFO(info.st_mode):
                entries[rel] = "fifo"
            elif stat.S_ISCHR(info.st_mode):
                entries[rel] = "chr"
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                entries[rel] = f"file:{digest.hexdigest()}"
            else:
                entries[rel] = "other"
    return entries


def read_outputs(root: Path, before: dict[str, str], after: dict[str, str]) -> dict[str, bytes]:
    """The bytes of every regular file a run created or changed (small ones)."""
    found = {}
    for rel, kind in after.items():
        path = root / rel
        if kind.startswith("file:") and before.get(rel) != kind and path.stat().st_size < 16 << 20:
            found[rel] = path.read_bytes()
    return found


# --- setting a case up ------------------------------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[bool]:
    """A tmpfs of ``size`` bytes mounted on ``folder`` (True), or nothing when mounting is not allowed (False)."""
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, check=False
    ) if shutil.which("mount") else None  # fmt: skip
    if done is None or done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)


_READ_ONLY_DEV = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount --bind /dev /dev && mount -o remount,bind,ro /dev && exec "$@"', "sh"]  # fmt: skip


@pytest.fixture(scope="session")
def dev_guard() -> list[str] | None:
    """A command prefix that runs with /dev read-only, [] when /dev is not writable anyway, None when
    neither holds (the run could replace a real device: it is skipped)."""
    if not os.access("/dev", os.W_OK):
        return []
    if shutil.which("unshare"):
        probe = subprocess.run([*_READ_ONLY_DEV, "sh", "-c", "! test -w /dev"], capture_output=True,
                               check=False)  # fmt: skip
        if probe.returncode == 0:
            return list(_READ_ONLY_DEV)
    return None


class FifoReader:
    """Drains a FIFO (opened non-blocking, so no writer is needed to open it) until stopped."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    chunk = os.read(self.fd, 1 << 16)
                    if chunk:
                        self.data.extend(chunk)
                        continue
                time.sleep(0.02)  # EOF: no writer right now
            if self.stopping.is_set():
                return

    def stop(self) -> bytes:
        self.stopping.set()
        self.thread.join(timeout=5)
        os.close(self.fd)
        return bytes(self.data)


@dataclass
class CaseResult:
    case: Case
    root: Path
    runs: list[Run] = field(default_factory=list)
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)
    env_head: bytes = b""
    secret: str = ""
    mechanism: str = ""
    skip: str | None = None

    def summary(self) -> str:
        return "; ".join(run.summary() for run in self.runs)


def run_case(name: str, root: Path, dev_prefix: list[str] | None) -> CaseResult:
    """Generate one case into ``root`` and run its command lines."""
    root.mkdir(parents=True)
    case = generate.GENERATORS[name](root)
    result = CaseResult(case, root, secret="nc-hostile-" + secrets.token_hex(12))
    if case.skip:
        result.skip = case.skip
        return result
    env = {**child_env(root, result.secret), **case.extra.get("env", {})}
    result.env_head = b"".join(f"{key}={value}\0".encode() for key, value in env.items())[:64]
    with contextlib.ExitStack() as stack:
        file_size = 0
        if case.kind == "disk-full":
            full = root / case.extra["full_dir"]
            if stack.enter_context(tmpfs(full, case.extra["full_size"])):
                result.mechanism = "tmpfs"
            else:
                result.mechanism = "RLIMIT_FSIZE"
                file_size = case.extra["full_size"]
            for rel, text in case.extra.get("preload", {}).items():
                (full / rel).write_text(text)
        wrap = None
        if case.kind == "protected-dev":
            if dev_prefix is None:
                result.skip = "/dev is writable and cannot be made read-only here (no unshare): not run"
                return result
            wrap = dev_prefix
        result.before = snapshot(root)
        for args in case.invocations:
            fifo = FifoReader(root / case.extra["fifo"]) if case.kind == "fifo-reader" else None
            on_tick = (
                _sigterm_when_a_file_appears(root / case.extra["watch_dir"])
                if case.kind == "sigterm"
                else None
            )
            status_file = root.parent / f"{root.name}.status"
            run = run_cli(
                args, root, env, case.timeout, status_file, file_size=file_size, wrap=wrap, on_tick=on_tick
            )
            if fifo is not None:
                run.extra["fifo_data"] = fifo.stop()
            if on_tick is not None:
                run.extra["signalled_at"] = getattr(on_tick, "signalled_at", None)
            result.runs.append(run)
        result.after = snapshot(root)
        result.outputs = read_outputs(root, result.before, result.after)
    return result


def _sigterm_when_a_file_appears(folder: Path) -> Callable[[subprocess.Popen[bytes], float], None]:
    """SIGTERM the process group 0.2 s after the first entry appears in ``folder`` (its temporary file)."""

    def tick(process: subprocess.Popen[bytes], elapsed: float) -> None:
        if getattr(tick, "signalled_at", None) is not None:
            return
        if getattr(tick, "seen_at", None) is None:
            if any(folder.iterdir()):
                tick.seen_at = elapsed  # type: ignore[attr-defined]
            return
        if elapsed - tick.seen_at >= 0.2:  # type: ignore[attr-defined]
            os.killpg(process.pid, signal.SIGTERM)
            tick.signalled_at = elapsed  # type: ignore[attr-defined]

    return tick


# --- the contract -----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sample_reference() -> dict[str, float | None]:
    arrays = generate.sample_arrays()
    return reference_metrics(
        arrays["features"].astype(np.float64), arrays["labels"], arrays["W"], arrays["b"]
    )


def _json_document(text: str) -> dict[str, Any] | None:
    with contextlib.suppress(ValueError):
        document = json.loads(text)
        if isinstance(document, dict):
            return document
    return None


def _check_leaks(result: CaseResult, run: Run) -> None:
    texts = [run.stdout, run.stderr, *(data.decode("utf-8", "replace") for data in result.outputs.values())]
    fifo_data = run.extra.get("fifo_data")
    if fifo_data:
        texts.append(fifo_data.decode("utf-8", "replace"))
    with contextlib.suppress(OSError):
        first = Path("/etc/passwd").read_bytes()[:16].decode("utf-8", "replace")
        assert all(first not in text for text in texts), "bytes of /etc/passwd reached the output"
    joined = "\n".join(texts)
    assert PASSWD_MARK not in joined, "bytes of /etc/passwd reached the output"
    assert result.secret not in joined, "an environment value reached the output"
    if result.case.extra.get("leak_environ_int64"):
        head = result.env_head.ljust(64, b"\0")
        for order in ("<i8", ">i8"):
            for value in np.frombuffer(head, dtype=order):
                if abs(int(value)) >= 10**6:
                    assert str(int(value)) not in joined, (
                        f"environment bytes decoded as {order} reached the output"
                    )


def _check_error(case: Case, run: Run, culprits: list[str] | None = None) -> str:
    assert run.returncode == 2, f"expected exit 2, got {run.summary()}"
    line = contract.assert_one_error_line(
        run.stderr, culprits if culprits is not None else case.culprits, case.fragments, case.forbidden
    )
    assert run.stdout.strip() == "", f"stdout of a bad-input run: {run.stdout[:500]!r}"
    return line


def _check_ok(case: Case, run: Run, reference: dict[str, float | None]) -> None:
    assert run.returncode == 0, f"expected exit 0, got {run.summary()}"
    for bad in case.forbidden:
        assert bad not in run.stdout + run.stderr, f"says {bad!r}"
    document = _json_document(run.stdout)
    if document is None:
        return
    contract.assert_metrics_in_range(document)
    metrics, notes = document.get("metrics") or {}, [str(n) for n in document.get("notes") or []]
    if case.extra.get("expect_metrics_of") == "sample":
        contract.assert_matches(metrics, reference, reference.keys(), notes)
    if case.extra.get("scale_invariant_of") == "sample":
        contract.assert_matches(metrics, reference, contract.SCALE_INVARIANT, notes)
    if case.extra.get("no_note"):
        assert all(case.extra["no_note"] not in note for note in notes), (
            f"a note says {case.extra['no_note']!r}"
        )


def check_case(result: CaseResult, reference: dict[str, float | None]) -> None:
    case = result.case
    assert result.runs, "nothing ran"
    for index, run in enumerate(result.runs):
        where = f"run {index + 1} ({' '.join(run.args[:1])}): "
        assert not run.timed_out, where + f"no answer within {case.timeout:.0f} s ({run.summary()})"
        if case.expect != "interrupted":
            assert run.returncode >= 0, where + f"killed by signal {-run.returncode} ({run.summary()})"
            assert run.returncode in (0, 1, 2), where + run.summary()
        contract.assert_no_crash(run.stdout, run.stderr)
        assert run.maxrss_bytes <= contract.MEMORY_BUDGET_BYTES, (
            where + f"peak RSS over the budget: {run.summary()}"
        )
        _check_leaks(result, run)
        last = index == len(result.runs) - 1
        if case.expect == "error" or (last and case.extra.get("last_run_is_error")):
            culprits = [case.extra["last_run_is_error"]] if case.expect != "error" else None
            line = _check_error(case, run, culprits)
            if case.extra.get("no_space"):
                wanted = ("no space left",) if result.mechanism == "tmpfs" else ("no space left", "too large")
                assert any(w in line.lower() for w in wanted), f"does not say the disk is full: {line!r}"
        elif case.expect == "ok":
            _check_ok(case, run, reference)
        elif case.expect == "gate":
            assert run.returncode == 1, where + f"expected exit 1 (a failed check), got {run.summary()}"
            document = _json_document(run.stdout)
            assert document is not None, "no JSON report on stdout"
            contract.assert_metrics_in_range(document)
            for key in case.extra.get("null_with_note", []):
                assert document["metrics"][key] is None, (
                    f"{key} = {document['metrics'][key]!r}, expected null"
                )
            failed = {  # a report's checks, or those of every record of a trajectory
                check["rule"]
                for record in contract.records_of(document)
                for check in record["checks"]
                if not check["passed"]
            }
            assert set(case.extra.get("failed_rules", [])) <= failed, f"failed checks: {failed}"
        elif case.expect == "ok-or-error":
            assert run.returncode in (0, 2), where + run.summary()
            if run.returncode == 0:
                _check_ok(case, run, reference)
            else:
                _check_error(case, run)
        elif case.expect == "interrupted":
            assert run.extra.get("signalled_at") is not None, (
                "the run ended before its temporary file appeared"
            )
            assert run.returncode != 0, "a SIGTERM'd extract exited 0"
    _check_files(result)
    _check_extras(result)


def _allowed(case: Case, rel: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in case.outputs)


def _check_files(result: CaseResult) -> None:
    case = result.case
    changed = [
        rel
        for rel, kind in result.before.items()
        if result.after.get(rel) != kind and not _allowed(case, rel)
    ]
    described = [
        f"{rel} ({result.before[rel][:5]} -> {result.after.get(rel, 'gone')[:5]})" for rel in changed
    ]
    assert not changed, f"inputs changed or removed: {', '.join(described)}"
    new = [rel for rel in result.after if rel not in result.before and not _allowed(case, rel)]
    assert not new, f"files left behind: {', '.join(new)}"


def _check_extras(result: CaseResult) -> None:
    case, extra, root = result.case, result.case.extra, result.root
    outputs_text = {rel: data.decode("utf-8", "replace") for rel, data in result.outputs.items()}
    if extra.get("no_control_chars"):
        for run in result.runs:
            for label, text in (("stdout", run.stdout), ("stderr", run.stderr), *outputs_text.items()):
                found = CONTROL.search(text)
                assert found is None, f"{label} holds a raw control character {found.group()!r}"
    if extra.get("no_forged_line"):
        for run in result.runs:
            for label, text in (("stdout", run.stdout), ("stderr", run.stderr), *outputs_text.items()):
                assert FORGED_LINE.search(text) is None, f"{label} holds a forged 'PASS nc1 <= 0.5' line"
    if extra.get("junit"):
        data = result.outputs.get(extra["junit"])
        assert data is not None, "no JUnit file written"
        try:
            ElementTree.fromstring(data)
        except ElementTree.ParseError as error:
            pytest.fail(f"the JUnit XML does not parse: {error}")
    if extra.get("symlink"):
        link = root / extra["symlink"]
        assert link.is_symlink(), f"{link.name} is no longer a symlink"
        target = _json_document((root / extra["symlink_target"]).read_text())
        assert target is not None and target.get("schema") == "nc-audit-report/1", (
            "the link's target is stale"
        )
    if extra.get("markdown_clean"):  # cases_expout.py: names that would open Markdown blocks
        markdown_contract.check_outputs(result, extra["markdown_clean"], extra.get("stdout_markdown", False))
    if extra.get("stays_char_device"):
        assert stat.S_ISCHR((root / extra["stays_char_device"]).lstat().st_mode), "the device was replaced"
    if extra.get("stays_fifo"):
        assert stat.S_ISFIFO((root / extra["stays_fifo"]).lstat().st_mode), "the FIFO was replaced by a file"
        run = result.runs[0]
        if run.returncode == 0:
            document = _json_document(run.extra.get("fifo_data", b"").decode("utf-8", "replace"))
            assert document and document.get("schema") == "nc-audit-report/1", (
                "no report came out of the FIFO"
            )
    if extra.get("json_file"):
        document = _json_document(result.outputs.get(extra["json_file"], b"").decode("utf-8", "replace"))
        assert document is not None and document.get("schema") == "nc-audit-report/1", (
            "no JSON report written"
        )
        contract.assert_metrics_in_range(document)
    if extra.get("stdout_has_json_report"):
        assert '"schema": "nc-audit-report/1"' in result.runs[0].stdout, (
            "the JSON report did not reach stdout"
        )
    if extra.get("says_cache_rebuilt"):
        first = result.runs[0]
        document = _json_document(first.stdout) or {}
        said = (first.stderr + " ".join(map(str, document.get("notes") or []))).lower()
        assert "cache" in said, "the rebuilt cache entry is not mentioned"
    if extra.get("cache_hit_on_last_run"):
        document = _json_document(result.runs[-1].stdout) or {}
        cache = (document.get("details") or {}).get("feature_cache") or {}
        assert cache.get("hit") is True, f"the last run did not reuse the cache: {cache}"
    if extra.get("stderr_names"):
        assert extra["stderr_names"] in result.runs[0].stderr, (
            f"stderr does not name {extra['stderr_names']!r}"
        )
    if extra.get("exists"):
        assert (root / extra["exists"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "no PNG written"
    for marker in extra.get("no_marker", ()):  # a payload's proof that it ran (cases_factory.py)
        assert not os.path.lexists(root / marker), f"code ran on a file's word: {marker} appeared"
    if case.kind == "sigterm":
        left = sorted(p.name for p in (root / extra["watch_dir"]).iterdir())
        assert not left, f"left behind after SIGTERM: {left}"


# --- the tests ------------------------------------------------------------------------------------------
def _params() -> list[Any]:
    params = []
    for name in generate.GENERATORS:
        marks: list[Any] = []
        if name in XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[name]))
        if name in SLOW:
            marks.append(pytest.mark.slow)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(scope="session")
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, dev_guard: list[str] | None
) -> Iterator[Callable[[str], CaseResult]]:
    """The result of a case by name. In one process the first call starts every selected case (WORKERS at
    a time) and each test waits for its own; in a pytest-xdist worker, whose tests are dealt out one by
    one, each call runs its own case."""
    base = tmp_path_factory.mktemp("hostile")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        yield lambda name: run_case(name, base / name, dev_guard)
        return
    selected = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is not sys.modules[__name__] or callspec is None or "name" not in callspec.params:
            continue
        selected.append(callspec.params["name"])
    with concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="hostile") as pool:
        futures = {name: pool.submit(run_case, name, base / name, dev_guard) for name in selected}
        yield lambda name: futures[name].result()
        for future in futures.values():
            future.cancel()


@pytest.mark.parametrize("name", _params())
def test_hostile_input(
    name: str, corpus: Callable[[str], CaseResult], sample_reference: dict[str, float | None]
) -> None:
    result = corpus(name)
    if result.skip:
        pytest.skip(result.skip)
    check_case(result, sample_reference)


def test_every_case_is_documented() -> None:
    """The README lists every case (and nothing else)."""
    readme = (Path(__file__).with_name("README.md")).read_text()
    listed = set(re.findall(r"^\| `([a-z0-9_]+)` \|", readme, re.MULTILINE))
    assert listed == set(generate.GENERATORS), (
        set(generate.GENERATORS) - listed,
        listed - set(generate.GENERATORS),
    )
