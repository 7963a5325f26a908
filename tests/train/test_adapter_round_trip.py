"""The adapter of ``finetune --features`` end to end: ``measure final.pt --data BACKBONE_DUMP`` equals
measuring ``final_features.h5``; the backbone dump given as ``--features`` is run through the adapter
(never measured as if the adapter were not there); any other dump, or data that are not backbone
features, is refused with a message naming final_features.h5."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.models.extract import extract

SAMPLES = Path(__file__).resolve().parents[2] / "sample_checkpoints" / "digits-mlp"
pytestmark = pytest.mark.usefixtures("one_thread")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def metrics(*args: str | Path) -> dict:
    result = invoke("measure", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(backbone dump, adapter run folder, another checkpoint's dump) in one module-wide folder."""
    folder = tmp_path_factory.mktemp("adapter")
    backbone = extract(SAMPLES / "epoch_0300.pt", "digits", folder / "backbone.h5")
    other = extract(SAMPLES / "epoch_0001.pt", "digits", folder / "other.h5")
    result = invoke("finetune", "--features", backbone, "--cma-weight", "0.2", "--epochs", "2", "--lr", "0.01",
                    "--out", folder / "ft")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "final_features.h5" in result.stdout  # the output names the dump to measure
    return backbone, folder / "ft", other


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def test_measure_final_with_the_backbone_dump_as_data_equals_the_adapted_dump(
    run: tuple[Path, Path, Path],
) -> None:
    backbone, ft, _ = run
    through = metrics(ft / "final.pt", "--data", backbone)
    adapted = metrics(ft / "final_features.h5")
    for key, value in adapted["metrics"].items():
        assert through["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    pre_adapter = metrics(backbone)["metrics"]["nc1"]
    assert through["metrics"]["nc1"] != pytest.approx(pre_adapter, rel=1e-3)  # the adapter changed them


def test_the_backbone_dump_as_features_is_run_through_the_adapter(run: tuple[Path, Path, Path]) -> None:
    backbone, ft, _ = run
    report = metrics(ft / "final.pt", "--features", backbone)
    adapted = metrics(ft / "final_features.h5")
    assert report["metrics"]["nc1"] == pytest.approx(adapted["metrics"]["nc1"], rel=1e-6)
    assert any("run through the adapter" in note for note in report["notes"])
    own = metrics(ft / "final.pt", "--features", ft / "final_features.h5")  # its own features: as they are
    assert own["metrics"]["nc1"] == pytest.approx(adapted["metrics"]["nc1"], rel=1e-12)


def test_another_dump_or_non_feature_data_is_refused_naming_final_features(
    run: tuple[Path, Path, Path],
) -> None:
    _, ft, other = run
    for args in (("--features", other), ("--data", "digits")):
        result = invoke("measure", ft / "final.pt", *args)
        assert result.exit_code == 2, result.output
        assert "final_features.h5" in result.stderr and "adapter" in result.stderr
    extracted = invoke("extract", ft / "final.pt", "--data", "digits", "--out", ft.parent / "x.h5")
    assert extracted.exit_code == 2 and "final_features.h5" in extracted.stderr
