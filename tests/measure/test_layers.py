"""Collapse across depth (``--layers``): every selected layer's input measured as the head's input is.

Specifications: on a network built so that its layers' inputs are an exact simplex ETF, those layers
report NC1 = 0 and MIR at its NC value; the head's own row equals ``measure``'s numbers; the probe is the
least-squares fit NumPy computes; bad layer names, a missing --data and an over-budget request are
exit 2 with one line; ``track`` writes the heat map and each record's layers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import mlp_checkpoint
from torch import nn
from typer.testing import CliRunner

import nc_audit
from nc_audit.cli import app
from nc_audit.core.class_stats import ClassStats
from nc_audit.core.errors import InputError
from nc_audit.metrics.probe import least_squares_probe
from nc_audit.report.model import LAYER_METRICS, Report, Trajectory


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "NC_AUDIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)


C, D, PER_CLASS = 4, 6, 5
#: MIR_NC(C) = 1/(C−1) + (C−2)·log(C−2)/((C−1)·log(C−1)) (docs/METRICS.md; 0.753953 for C = 4)
MIR_NC = 1 / (C - 1) + (C - 2) * math.log(C - 2) / ((C - 1) * math.log(C - 1))


def simplex_rows(C: int, d: int, seed: int = 0) -> torch.Tensor:
    """C simplex-ETF vertices in R^d (rows), rotated at random: centred one-hot rows, padded, rotated."""
    M = torch.eye(C, dtype=torch.float64) - 1.0 / C  # (C, C) rows: a simplex ETF of rank C − 1
    Q, _ = torch.linalg.qr(
        torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    )
    return torch.cat([M, torch.zeros(C, d - C, dtype=torch.float64)], 1) @ Q  # (C, d)


class EtfNet(nn.Module):
    """one-hot (C) → ``embed`` (the ETF vertices) → ``mid`` (identity) → ``head`` (rows: the ETF)."""

    def __init__(self) -> None:
        super().__init__()
        V = simplex_rows(C, D)  # (C, d)
        self.embed = nn.Linear(C, D, bias=False).double()
        self.mid = nn.Linear(D, D).double()
        self.head = nn.Linear(D, C).double()
        with torch.no_grad():
            self.embed.weight.copy_(V.T)
            self.mid.weight.copy_(torch.eye(D))
            self.mid.bias.zero_()
            self.head.weight.copy_(V)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mid(self.embed(x)))


class Twice(EtfNet):
    """``mid`` runs twice in one forward: its input is ambiguous."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mid(self.mid(self.embed(x))))


def one_hot_loader(batch: int = 7) -> list[tuple[torch.Tensor, torch.Tensor]]:
    labels = torch.arange(C).repeat(PER_CLASS)  # (N,) balanced
    inputs = torch.eye(C, dtype=torch.float64)[labels]  # (N, C)
    return [(inputs[i : i + batch], labels[i : i + batch]) for i in range(0, len(labels), batch)]


def test_an_etf_network_reports_collapse_at_every_layer_and_mir_at_its_nc_value() -> None:
    report = nc_audit.measure(EtfNet(), one_hot_loader(), layers="all")
    names = [layer.name for layer in report.layers]
    assert names == ["embed", "mid", "head"]  # forward order, the head's input last
    against = {layer.name: layer.against for layer in report.layers}
    assert against == {"embed": "probe", "mid": "head", "head": "head"}  # width 4 ≠ 6: the probe
    for layer in report.layers:
        assert layer.nc1 is not None and abs(layer.nc1) < 1e-10, layer
        assert layer.nc1_cdnv is not None and abs(layer.nc1_cdnv) < 1e-10, layer
        assert layer.nc2_equinorm_means == pytest.approx(0.0, abs=1e-10)
        assert layer.h_means == pytest.approx(math.log(C - 1), abs=1e-10)
        assert layer.mir == pytest.approx(MIR_NC, abs=1e-9), layer
        assert layer.hdr == pytest.approx(0.0, abs=1e-9), layer


def test_a_layer_that_runs_twice_is_left_out_of_all_with_a_note_and_refused_by_name() -> None:
    report = nc_audit.measure(Twice(), one_hot_loader(), layers="all")
    assert [layer.name for layer in report.layers] == ["embed", "head"]
    assert any("'mid' ran 2 times" in note for note in report.notes)
    with pytest.raises(InputError, match="'mid' ran 2 times"):
        nc_audit.measure(Twice(), one_hot_loader(), layers="mid")


def digits_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7), nn.Tanh(), nn.Linear(7, 3)).eval()


def gaussian_loader(seed: int = 1, n: int = 90) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat(n // 3)
    centres = 3.0 * torch.randn(3, 12, generator=generator)
    inputs = centres[labels] + torch.randn(n, 12, generator=generator)
    return [(inputs[i : i + 32], labels[i : i + 32]) for i in range(0, n, 32)]


def test_the_head_row_is_measures_own_numbers_and_other_widths_use_the_probe() -> None:
    report = nc_audit.measure(digits_net(), gaussian_loader(), layers="all")
    assert [layer.name for layer in report.layers] == ["0", "2", "4"]
    assert [layer.width for layer in report.layers] == [12, 9, 7]
    assert [layer.against for layer in report.layers] == ["probe", "probe", "head"]
    head = report.layers[-1]
    for key in LAYER_METRICS:
        value, expected = getattr(head, key), report.metrics[key]
        assert value == pytest.approx(expected, rel=1e-10, abs=1e-13), key
    assert "layers" in report.conventions
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())), "report.json")
    assert again.layers == report.layers  # the JSON "layers" list reads back as typed results


def test_the_probe_is_the_least_squares_fit_numpy_computes() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5)) + rng.normal(size=(4, 5))[np.arange(200) % 4] * 2.0
    y = np.arange(200) % 4
    probe = least_squares_probe(ClassStats.from_batch(torch.from_numpy(X), torch.from_numpy(y), 4))
    Y = np.eye(4)[y]
    solution = np.linalg.lstsq(np.hstack([X, np.ones((200, 1))]), Y, rcond=None)[0]  # (d + 1, C)
    assert probe.ridge is None
    np.testing.assert_allclose(probe.weight.numpy(), solution[:5].T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(probe.bias.numpy(), solution[5], rtol=0, atol=1e-8)


def test_the_probe_row_of_a_layer_is_the_lstsq_probe_measured() -> None:
    """Through the pipeline: the first layer's H(K_W) is the entropy of the lstsq probe rows' Gram."""
    net, batches = digits_net(), gaussian_loader()
    report = nc_audit.measure(net, batches, layers="0")
    X = torch.cat([x for x, _ in batches]).double().numpy()
    y = torch.cat([t for _, t in batches]).numpy()
    solution = np.linalg.lstsq(np.hstack([X, np.ones((len(y), 1))]), np.eye(3)[y], rcond=None)[0]
    W = solution[:-1].T  # (C, d) probe rows
    U = W / np.linalg.norm(W, axis=1, keepdims=True)
    eigenvalues = np.clip(np.linalg.eigvalsh(U @ U.T / 3), 0, None)
    entropy = -sum(value * math.log(value) for value in eigenvalues if value > 0)
    first = report.layers[0]
    assert (first.name, first.against) == ("0", "probe")
    assert first.h_head == pytest.approx(entropy, abs=1e-8)


def test_a_conv_layer_is_pooled_over_positions_not_flattened() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    ).eval()  # fmt: skip
    labels = torch.arange(3).repeat(10)
    images = torch.randn(30, 1, 8, 8) + labels[:, None, None, None].float()
    report = nc_audit.measure(net, [(images, labels)], layers="all")
    assert [(layer.name, layer.width) for layer in report.layers] == [("0", 1), ("2", 5), ("6", 4)]


def test_layers_over_the_memory_budget_are_refused_before_accumulating() -> None:
    with pytest.raises(InputError, match="over the memory budget") as error:
        nc_audit.measure(digits_net(), gaussian_loader(), layers="all", layers_budget_bytes=10_000)
    assert "--layers" in str(error.value) and "0 (12)" in str(error.value)


#: A small dataset for the 64-input sample MLPs (fast to extract).
DATA = "gaussian:classes=10,dim=64,samples=200"


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result.exit_code, result.stdout, result.stderr


def test_an_unknown_layer_is_exit_2_naming_it_and_valid_ones(tmp_path: Path) -> None:
    checkpoint = mlp_checkpoint(tmp_path / "mlp.pt")
    code, _, err = invoke(
        "measure", checkpoint, "--data", DATA, "--cache-dir", tmp_path / "cache", "--layers", "body.1,bodyy.4"
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1
    assert (
        "'bodyy.4'" in lines[0]
        and "did you mean 'body.4'" in lines[0]
        and "layers: body.1, body.3 " in lines[0]
    )
    code, _, err = invoke("measure", checkpoint, "--data", DATA, "--layers", "\x1b[31m[red]x")
    assert code == 2 and "\x1b" not in err and "\\x1b" in err
    code, _, err = invoke("measure", checkpoint, "--features", tmp_path / "none.h5", "--layers", "all")
    assert code == 2


class Marked(nn.Module):
    """A model whose layer names carry markup and control characters (names are input-derived text)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.add_module("evil[bold]\x1b]0;x|`", nn.Linear(12, 7))
        self.head = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(getattr(self, "evil[bold]\x1b]0;x|`")(x)))


def test_layer_names_are_escaped_in_every_text_output() -> None:
    from nc_audit.report.formats import registry

    report = nc_audit.measure(Marked().eval(), gaussian_loader(), layers="all")
    assert report.layers[0].name == "evil[bold]\x1b]0;x|`"
    for name in ("table", "markdown", "json"):
        text = registry.text_format(name).render(Trajectory.of(report))
        assert "\x1b" not in text, name
    table = registry.text_format("table").render(Trajectory.of(report))
    assert "evil[bold]\\x1b]0;x|`" in table
    markdown = registry.text_format("markdown").render(Trajectory.of(report))
    assert "evil[bold]\x1b]0;x|`" not in markdown


def test_track_writes_the_heat_map_and_each_records_layers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for epoch in (1, 2):
        mlp_checkpoint(run / f"epoch_{epoch}.pt", seed=epoch)
    heat_map, out = tmp_path / "layers.png", tmp_path / "run.json"
    code, _, err = invoke(
        "track", run, "--data", DATA, "--cache-dir", tmp_path / "cache", "--layers", "all",
        "--layers-plot", heat_map, "--json", out,
    )  # fmt: skip
    assert code == 0, err
    assert heat_map.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = json.loads(out.read_text())["records"]
    assert len(records) == 2
    for record in records:
        assert [layer["name"] for layer in record["layers"]] == ["body.1", "body.3", "head"]
        assert record["layers"][-1]["nc1"] == pytest.approx(record["metrics"]["nc1"], rel=1e-9)
    code, _, err = invoke("track", run, "--data", DATA, "--layers-plot", heat_map)
    assert code == 2 and "--layers" in err


class TokenNet(nn.Module):
    """Token ids (N, T) → ``embed`` → ``proj`` on every token (N, T, 6) → mean over tokens → ``head``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.proj(self.embed(ids))).mean(1))


def test_a_sequence_input_is_mean_pooled_and_token_ids_are_left_out_with_a_note() -> None:
    net = TokenNet().eval()
    generator = torch.Generator().manual_seed(2)
    labels = torch.arange(3).repeat(12)
    ids = (labels[:, None] * 3 + torch.randint(0, 4, (36, 5), generator=generator)) % 10  # (N, T)
    report = nc_audit.measure(net, [(ids, labels)], layers="all")
    assert [(layer.name, layer.width) for layer in report.layers] == [("proj", 8), ("head", 6)]
    assert any("'embed' takes torch.int64 input" in note for note in report.notes)
    with torch.no_grad():
        pooled = net.embed(ids).mean(1).double()  # (N, 8): proj's input, mean over the tokens
    head = np.random.default_rng(0).normal(size=(3, 8))  # any head: these metrics read the features alone
    expected = nc_audit.measure_arrays(pooled.numpy(), labels.numpy(), head)
    for key in ("nc1", "nc1_cdnv", "nc2_equinorm_means", "h_means"):
        assert getattr(report.layers[0], key) == pytest.approx(expected.metrics[key], rel=1e-9), key
