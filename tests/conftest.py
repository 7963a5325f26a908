"""Shared test data: random unbalanced problems, exact simplex ETFs, and the files nc-audit reads.

Every file is written into pytest's tmp_path the way a user would write it: HDF5 dumps with h5py,
checkpoints with torch.save (a state dict, optionally nested or 'module.'-prefixed) or safetensors.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import safetensors.torch
import torch
from reference import Problem

#: The feature cache's proof key (io/guards/cache_proof.py) of this test session, inherited by every CLI
#: subprocess: tests never create or read the key of the user who runs them (~/.config/nc-audit).
os.environ.setdefault(
    "NC_AUDIT_CACHE_KEY", os.path.join(tempfile.mkdtemp(prefix="nc-audit-test-key-"), "cache.key")
)

#: In-process CLI runs see no terminal, so a report is as wide as in a log (120 columns, report/console.py),
#: whatever width the shell exports or a pytest-xdist worker is given (COLUMNS=80, LINES=24).
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

#: pytest-xdist workers (``make test``) share the cores: each gets its share of torch's intra-op threads
#: rather than all of them (oversubscribed OpenMP threads spin and wait on each other).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

DumpWriter = Callable[..., Path]
CheckpointWriter = Callable[..., Path]


def make_random_problem(
    seed: int = 1, num_classes: int = 7, feature_dim: int = 12, sizes: tuple[int, int] = (20, 250)
) -> Problem:
    """Unbalanced classes (n_c drawn from ``sizes``), features = centre + noise + a global offset,
    head rows = noisy centres, a random bias; rows shuffled so every chunk mixes classes."""
    rng = np.random.default_rng(seed)
    C, d = num_classes, feature_dim
    counts = rng.integers(sizes[0], sizes[1] + 1, size=C)  # (C,)
    labels = rng.permutation(np.repeat(np.arange(C), counts))  # (N,)
    centres = 3.0 * rng.normal(size=(C, d))  # (C, d)
    offset = 4.0 + rng.normal(size=d)  # (d,) the features are not centred
    features = centres[labels] + rng.normal(size=(labels.size, d)) * rng.uniform(0.5, 2.0, size=d) + offset
    W = centres + 0.5 * rng.normal(size=(C, d))  # (C, d)
    b = rng.normal(size=C)  # (C,)
    return Problem(features, labels.astype(np.int64), W, b)


def make_etf_problem(
    num_classes: int,
    feature_dim: int,
    per_class: int = 3,
    scale: float = 2.5,
    head_scale: float = 0.7,
    seed: int = 1,
) -> Problem:
    """An exact simplex ETF at Neural Collapse (needs C ≤ d + 1).

    Balanced classes (so the sample-weighted global mean is the offset), every sample exactly at its
    class mean μ_c = m̄_c + offset with m̄_c the rows of a randomly rotated simplex ETF of norm ``scale``;
    a self-dual head W = head_scale·M̄; the bias b_c = −head_scale·‖μ_c‖²/2 makes the classifier
    argmax_c (w_c·h + b_c) = argmax_c (μ_c·h − ‖μ_c‖²/2) − const, i.e. the nearest class mean.
    """
    C, d = num_classes, feature_dim
    assert C <= d + 1, "a simplex ETF of C vectors needs d >= C - 1"
    rng = np.random.default_rng(seed)
    centring = np.eye(C) - 1.0 / C  # (C, C), rank C-1, rows sum to 0
    eigenvalues, eigenvectors = np.linalg.eigh(centring)
    basis = eigenvectors[:, eigenvalues > 0.5]  # (C, C-1) orthonormal basis of 1^⊥
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))  # (d, d) orthogonal
    M = (centring @ basis) @ rotation[: C - 1] * (scale * math.sqrt(C / (C - 1)))  # (C, d), ‖m̄_c‖ = scale
    offset = 3.0 * rng.normal(size=d)  # (d,)
    means = M + offset  # (C, d)
    labels = np.repeat(np.arange(C), per_class)  # (N,)
    W = head_scale * M  # (C, d)
    b = -0.5 * head_scale * (means * means).sum(axis=1)  # (C,)
    return Problem(means[labels], labels.astype(np.int64), W, b)


class CreatesAFile:
    """A pickle payload: unpickling it calls open(path, 'w'), i.e. runs code with a visible side effect."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def random_problem() -> Problem:
    """C = 7, d = 12, N = 991, class sizes 28..239, biased head (seed 1)."""
    return make_random_problem()


@pytest.fixture
def write_dump(tmp_path: Path) -> DumpWriter:
    """write_dump(problem, name=..., head=True, feature_dtype=..., label_dtype=..., split=None) -> Path.

    Writes the minimal form (/features, /labels) or, with ``split``, a split group; ``head`` adds
    /head/weight and /head/bias so the dump alone can be measured. Keyword ``features``/``labels``
    override the problem's arrays (for bad inputs).
    """

    def write(
        problem: Problem,
        name: str = "features.h5",
        *,
        head: bool = True,
        feature_dtype: np.dtype | type = np.float64,
        label_dtype: np.dtype | type = np.int64,
        split: str | None = None,
        features: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        mode: str = "w",
    ) -> Path:
        path = tmp_path / name
        X = problem.features if features is None else features
        y = problem.labels if labels is None else labels
        prefix = f"{split}/" if split else ""
        with h5py.File(path, mode) as handle:
            handle.create_dataset(f"{prefix}features", data=np.asarray(X).astype(feature_dtype))
            handle.create_dataset(f"{prefix}labels", data=np.asarray(y).astype(label_dtype))
            if head and "head" not in handle:
                handle["head/weight"] = problem.W
                if problem.b is not None:
                    handle["head/bias"] = problem.b
        return path

    return write


@pytest.fixture
def random_dump(write_dump: DumpWriter, random_problem: Problem) -> Path:
    """The random problem as a float64 dump that also holds the head."""
    return write_dump(random_problem)


def backbone_state(problem: Problem, seed: int = 2) -> dict[str, torch.Tensor]:
    """A small model's state dict, in module order: an encoder (d, 5), a square neck (d, d) that also
    fits the features, and the head 'fc' (C, d) last."""
    generator = torch.Generator().manual_seed(seed)
    d = problem.feature_dim
    return {
        "encoder.weight": torch.randn(d, 5, generator=generator, dtype=torch.float64),
        "encoder.bias": torch.randn(d, generator=generator, dtype=torch.float64),
        "neck.weight": torch.randn(d, d, generator=generator, dtype=torch.float64),
        "neck.bias": torch.randn(d, generator=generator, dtype=torch.float64),
        "fc.weight": torch.from_numpy(problem.W.copy()),
        "fc.bias": torch.from_numpy(problem.b.copy()),
    }


@pytest.fixture
def write_checkpoint(tmp_path: Path) -> CheckpointWriter:
    """write_checkpoint(state, name="model.pt", nest=None, prefix="") -> Path.

    ``.safetensors`` names go through safetensors; others through torch.save of a plain dict, nested
    under ``nest`` when given, every key prefixed with ``prefix`` (e.g. 'module.' from DataParallel).
    """

    def write(
        state: dict[str, torch.Tensor], name: str = "model.pt", *, nest: str | None = None, prefix: str = ""
    ) -> Path:
        path = tmp_path / name
        state = {prefix + key: value.contiguous() for key, value in state.items()}
        if path.suffix == ".safetensors":
            safetensors.torch.save_file(state, str(path))
        else:
            torch.save({nest: state, "epoch": 3} if nest else state, path)
        return path

    return write


@pytest.fixture
def random_checkpoint(write_checkpoint: CheckpointWriter, random_problem: Problem) -> Path:
    """The random problem's head as 'fc' in a .pt state dict behind an encoder and a fitting neck."""
    return write_checkpoint(backbone_state(random_problem))


#: Hidden widths of the small digits MLP the fine-tuning tests start from.
MLP_HIDDEN = [24, 16]


def mlp_checkpoint(path: Path, hidden: list[int] = MLP_HIDDEN, seed: int = 0) -> Path:
    """A freshly initialised digits MLP (64 → hidden → 10), saved the way nc-audit saves checkpoints."""
    from nc_audit.io.checkpoints.save import save_checkpoint
    from nc_audit.models.registry import architecture_record, build_model

    torch.manual_seed(seed)
    record = architecture_record("mlp", {"input_dim": 64, "hidden": hidden}, 10)
    save_checkpoint(path, build_model(record).state_dict(), record)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a torch.distributed rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``).
    Tiny models train faster that way and do not suffer from oversubscribed CI cores, and their floats
    match those of subprocesses run with OMP_NUM_THREADS=1 bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def isolated_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path with no project pyproject.toml above it, and never append to a real step summary."""
    from nc_audit.gating.config import find_pyproject

    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "NC_AUDIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    assert find_pyproject(tmp_path) is None, "a pyproject.toml above tmp_path would leak its defaults"


#: The device the ``cuda`` tests run on. Setting it to ``cpu`` runs them without a GPU, to check their own
#: logic (CUDA-only probes such as the sync debug mode are then left out); ``make gpu-check`` leaves it unset.
TEST_CUDA_DEVICE = os.environ.get("NC_AUDIT_TEST_CUDA_DEVICE", "cuda")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped where no CUDA device is available (``make gpu-check`` runs them)."""
    if torch.cuda.is_available() or not TEST_CUDA_DEVICE.startswith("cuda"):
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run by make gpu-check on a GPU machine)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def cuda_device() -> torch.device:
    """The device of the ``cuda`` tests: the GPU (or what NC_AUDIT_TEST_CUDA_DEVICE names)."""
    return torch.device(TEST_CUDA_DEVICE)


def pytest_report_header(config: pytest.Config) -> str:
    """The header says which hypothesis profile tests/hostile/test_properties.py runs, and how it draws."""
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    seed = config.getoption("hypothesis_seed", default=None)
    drawn = f"seed {seed}" if seed is not None else ("derandomized" if profile == "ci" else "random seeds")
    return f"tests/hostile: hypothesis profile {profile!r} ({drawn}); see test_properties.py for the counts"
