"""The metrics and losses on CUDA equal the CPU's (float64, ≤ 1e-9 relative), with the results on the
device they were asked for. Marked ``cuda``: skipped without a GPU, run by ``make gpu-check``
(``NC_AUDIT_TEST_CUDA_DEVICE=cpu`` runs them on the CPU to check their logic)."""

from __future__ import annotations

import pytest
import torch
from reference import relative_difference

from nc_audit.engine.sample_stats import SampleLevelStats
from nc_audit.metrics import eigen_backend
from nc_audit.metrics.eigen_backend import BACKENDS, ENV_VAR, backend_choices, batched_eigvalsh
from nc_audit.metrics.information import class_level_information
from nc_audit.metrics.sample_level import sample_level_metrics
from nc_audit.train.losses import cma_loss, mir_hdr_regulariser

pytestmark = pytest.mark.cuda
RTOL = 1e-9


def assert_same(actual: dict, expected: dict, where: str) -> None:
    assert set(actual) == set(expected), where
    for key, value in expected.items():
        assert relative_difference(actual[key], value) <= RTOL, f"{where} {key}: {actual[key]!r} vs {value!r}"


def stacks(B: int, C: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(B, C, d, generator=generator, dtype=torch.float64)
    M = torch.randn(B, C, d, generator=generator, dtype=torch.float64)
    return W, M - M.mean(1, keepdim=True)


@pytest.fixture
def fresh_selector() -> None:
    """Forget the backend choices of earlier tests (each test measures again)."""
    eigen_backend._SELECTOR.reset()
    yield
    eigen_backend._SELECTOR.reset()


@pytest.mark.parametrize("n", [16, 33, 100])
def test_cuda_batched_eigvalsh_equals_the_cpu(
    cuda_device: torch.device, n: int, fresh_selector: None
) -> None:
    """Below, at and above cuSOLVER's batched limit (32): eigenvalues on the device, equal to LAPACK's."""
    generator = torch.Generator().manual_seed(n)
    A = torch.randn(40, n, n, generator=generator, dtype=torch.float64)
    K = A @ A.transpose(-1, -2)  # (40, n, n) PSD
    on_device = batched_eigvalsh(K.to(cuda_device))
    assert on_device.device.type == cuda_device.type and on_device.dtype == torch.float64
    torch.testing.assert_close(on_device.cpu(), torch.linalg.eigvalsh(K), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", [*BACKENDS, "auto"])
def test_cuda_class_level_information_with_each_backend_equals_the_cpu(
    cuda_device: torch.device, monkeypatch: pytest.MonkeyPatch, backend: str, fresh_selector: None
) -> None:
    """A 50-checkpoint trajectory at C = 100 with cuSOLVER, MAGMA and the measured choice: the same
    h_head, h_means, mi, mir, hdr as on the CPU. On CUDA "auto" records a measured choice with both times."""
    monkeypatch.setenv(ENV_VAR, backend)
    W, M = stacks(50, 100, 64)
    expected = class_level_information(W, M)
    try:
        actual = class_level_information(W.to(cuda_device), M.to(cuda_device))
    except RuntimeError as error:
        if backend == "magma" and "magma" in str(error).lower():
            pytest.skip(f"this PyTorch has no MAGMA: {error}")
        raise
    for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_same(a, e, f"checkpoint {index}")
    if cuda_device.type == "cuda" and backend == "auto":
        (choice,) = [c for c in backend_choices() if c["matrix_size"] == 100]
        assert choice["source"] == "measured" and choice["choice"] in BACKENDS
        assert set(choice["seconds"]) == set(BACKENDS)


@pytest.mark.parametrize("per_class", [True, False])
def test_cuda_sample_level_metrics_equal_the_cpu(cuda_device: torch.device, per_class: bool) -> None:
    """The exact routes (dual Gram; Khatri–Rao and class blocks from the scatters, or the dense and
    row-block routes re-reading the rows) on the device equal the CPU's, streamed in 4 chunks."""
    generator = torch.Generator().manual_seed(5)
    N, d, C = 1200, 24, 6
    y = torch.randint(C, (N,), generator=generator)
    H = 2.0 * torch.randn(C, d, generator=generator, dtype=torch.float64)[y] + torch.randn(
        N, d, generator=generator, dtype=torch.float64
    )
    W = torch.randn(C, d, generator=generator, dtype=torch.float64)
    results = []
    for device in (torch.device("cpu"), cuda_device):
        stats = SampleLevelStats(H.mean(0), C, per_class=per_class, device=device)
        for part in torch.tensor_split(torch.arange(N), 4):
            stats.update(H[part].to(device), y[part].to(device))
        assert stats.gram.device.type == device.type and stats.gram.dtype == torch.float64

        def chunks(device: torch.device = device) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [(H[p].to(device), y[p].to(device)) for p in torch.tensor_split(torch.arange(N), 4)]

        results.append(sample_level_metrics(stats.sums(), W.to(device), estimator="exact", chunks=chunks))
    cpu, dev = results
    assert dev.route == cpu.route
    assert_same(dev.metrics, cpu.metrics, f"routes {cpu.route}")


def test_cuda_sample_level_slq_runs_on_the_device(cuda_device: torch.device) -> None:
    """SLQ (float32 Lanczos vectors on the device) lands within its own 95% interval of the exact value."""
    generator = torch.Generator().manual_seed(6)
    N, d, C = 600, 16, 4
    y = torch.randint(C, (N,), generator=generator)
    H = (
        torch.randn(N, d, generator=generator, dtype=torch.float64)
        + torch.randn(C, d, generator=generator)[y]
    )
    W = torch.randn(C, d, generator=generator, dtype=torch.float64)
    stats = SampleLevelStats(H.mean(0), C, device=cuda_device)
    stats.update(H.to(cuda_device), y.to(cuda_device))
    exact = sample_level_metrics(stats.sums(), W.to(cuda_device), estimator="exact")
    slq = sample_level_metrics(
        stats.sums(),
        W.to(cuda_device),
        estimator="slq",
        chunks=lambda: [(H.to(cuda_device), y.to(cuda_device))],
        slq_tol=1e-2,
    )
    for key, half_width in slq.interval.items():
        if key in ("mi_samples", "mi_samples_onehot"):
            assert abs(slq.metrics[key] - exact.metrics[key]) <= 3 * half_width + 1e-6, key


def test_cuda_losses_forward_and_backward_equal_the_cpu(cuda_device: torch.device) -> None:
    """cma_loss and the MIR/HDR regulariser (float64): values and gradients as on the CPU, on the device."""
    generator = torch.Generator().manual_seed(7)
    B, C, d = 64, 10, 32
    features = torch.randn(B, d, generator=generator, dtype=torch.float64)
    labels = torch.randint(C, (B,), generator=generator)
    anchors = torch.randn(C, d, generator=generator, dtype=torch.float64)
    outputs = []
    for device in (torch.device("cpu"), cuda_device):
        f = features.to(device).requires_grad_()
        a = anchors.to(device).requires_grad_()
        y = labels.to(device)
        loss = cma_loss(f, y, a) + mir_hdr_regulariser(f, y, a, 0.1, 0.05)
        loss.backward()
        assert loss.device.type == device.type and f.grad.device.type == device.type
        outputs.append((loss.detach().cpu(), f.grad.cpu(), a.grad.cpu()))
    for cpu, dev in zip(*outputs, strict=True):
        torch.testing.assert_close(dev, cpu, rtol=RTOL, atol=1e-12)
