"""`nc-audit study lmc` (issue 22, item 3): the barrier and dip definitions on constructed curves, the quick
study end to end, a resume that trains nothing finished again, and the refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.experiments.studies.barriers import barrier, check_curve, dip, excess, value_at
from nc_audit.experiments.studies.lmc import LmcStudy, curve
from nc_audit.experiments.studies.lmc_pairs import child_order_seeds, independent_seeds
from nc_audit.report.lmc_study import lmc_table
from nc_audit.report.tables_markdown import table_text

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_cli")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = [i / 4 for i in range(5)]


def on_grid(values: list[float | None]) -> list[tuple[float, float | None]]:
    return list(zip(GRID, values, strict=True))


def test_barrier_is_the_largest_excess_over_the_line_between_the_endpoints() -> None:
    # endpoints 1.0 and 0.2: the line is 1.0, 0.8, 0.6, 0.4, 0.2; the path peaks 0.3 above it at α = 0.5
    path = on_grid([1.0, 0.9, 0.9, 0.4, 0.2])
    assert excess(path) == pytest.approx([0.0, 0.1, 0.3, 0.0, 0.0])
    assert barrier(path) == pytest.approx(0.3)
    # Frankle et al.'s height, max f − mean of the endpoints, is 1.0 − 0.6 = 0.4 here: it counts the worse
    # endpoint itself; the two differ by at most half the endpoints' difference (0.4)
    frankle = max(value for _, value in path if value is not None) - (1.0 + 0.2) / 2
    assert frankle == pytest.approx(0.4) and abs(frankle - 0.3) <= abs(1.0 - 0.2) / 2
    assert dip(path) == 0.0


def test_a_convex_path_has_no_barrier_and_a_dip() -> None:
    path = on_grid([0.95, 0.90, 0.85, 0.90, 0.95])  # MIR falling in the middle
    assert barrier(path) == 0.0 and not math.copysign(1.0, barrier(path) or 0.0) < 0  # 0, never −0
    assert dip(path) == pytest.approx(0.10)
    assert value_at(path, 0.5) == 0.85
    assert barrier(on_grid([0.3, 0.3, 0.3, 0.3, 0.3])) == 0.0 == dip(on_grid([0.3] * 5))


def test_an_undefined_value_gives_no_barrier_and_a_bad_grid_is_refused() -> None:
    assert barrier(on_grid([1.0, None, 0.5, 0.5, 0.2])) is None
    assert value_at(on_grid([1.0] * 5), 0.3) is None
    with pytest.raises(InputError, match="α from 0 to 1"):
        check_curve([(0.0, 1.0), (0.5, 1.0)], "path")
    with pytest.raises(InputError, match="must increase"):
        check_curve([(0.0, 1.0), (0.5, 1.0), (0.5, 1.0), (1.0, 1.0)], "path")


def test_seeds_of_children_and_independent_runs_never_meet_a_parents() -> None:
    study = LmcStudy()
    parents = set(study.seeds)
    others = [s for seed in study.seeds for s in (*child_order_seeds(seed), independent_seeds(seed)[1])]
    assert len(set(others)) == len(others) and not parents & set(others)
    assert study.settings_of_pairs() == [0, 1, 2, 5, 10, 20, 50, 100, None]


def test_quick_study_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "lmc"
    result = CliRunner().invoke(app, ["study", "lmc", "--quick", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("[")]
    assert lines == ["[1/3] k=0 seed 0", "[2/3] k=2 seed 0", "[3/3] k=independent seed 0"]
    document = json.loads((out / "results.json").read_text())
    rows = {row["setting"]: row for row in document["summary"]}
    assert list(rows) == ["0", "2", "independent"]
    # two inits are far apart in the loss landscape, two children of one parent are not (quick: 4 epochs)
    assert rows["independent"]["loss_barrier_train"]["mean"] > 10 * rows["2"]["loss_barrier_train"]["mean"]
    for record in document["records"]:
        for split in ("train", "test"):
            points = curve(record, split, "loss")
            assert [alpha for alpha, _ in points] == GRID
    assert (out / "lmc.png").read_bytes().startswith(PNG_MAGIC)
    page = (out / "RESULTS.md").read_text()
    assert "| independent (two inits) | 1 |" in page and "Wall time of the study" in page
    assert "| spawn epoch k | pairs | loss barrier (train) |" in result.stdout
    names = sorted(path.name for path in (out / "runs").iterdir())
    assert names == ["child-seed_0-k_0-order_10000.pt", "child-seed_0-k_0-order_10001.pt",
                     "child-seed_0-k_2-order_10000.pt", "child-seed_0-k_2-order_10001.pt",
                     "independent-seed_0-init_0.pt", "independent-seed_0-init_20000.pt",
                     "parent-seed_0-epoch_0.pt", "parent-seed_0-epoch_2.pt"]  # fmt: skip


@pytest.mark.slow
def test_a_resumed_study_trains_nothing_finished_again(tmp_path: Path) -> None:
    out = tmp_path / "lmc"
    runner = CliRunner()
    first = runner.invoke(app, ["study", "lmc", "--quick", "--out", str(out), "--no-progress"])
    assert first.exit_code == 0, first.output
    document = json.loads((out / "results.json").read_text())
    # A kill after the children of k=2 were saved but before its record: the pair is measured again from the
    # saved children (same floats), nothing trained — the files are not rewritten.
    records = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(records[:1]) + "\n")
    stamps = {path.name: path.stat().st_mtime_ns for path in (out / "runs").iterdir()}
    again = runner.invoke(app, ["study", "lmc", "--quick", "--out", str(out), "--no-progress", "--resume"])
    assert again.exit_code == 0, again.output
    assert stamps == {path.name: path.stat().st_mtime_ns for path in (out / "runs").iterdir()}
    resumed = json.loads((out / "results.json").read_text())
    for before, after in zip(document["records"], resumed["records"], strict=True):
        assert {k: v for k, v in before.items() if k not in ("seconds", "load_average")} == {
            k: v for k, v in after.items() if k not in ("seconds", "load_average")
        }

    # A lost child: trained again from the parent's saved state, and it ends with the same floats.
    lost = out / "runs" / "child-seed_0-k_2-order_10001.pt"
    lost.unlink()
    (out / "runs.jsonl").write_text("\n".join(records[:1]) + "\n")
    third = runner.invoke(app, ["study", "lmc", "--quick", "--out", str(out), "--no-progress", "--resume"])
    assert third.exit_code == 0, third.output
    assert lost.exists()
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["records"][1]["train"] == document["records"][1]["train"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--spawn-epochs", "0,4"], "each must lie in 0..3"),
        (["--spawn-epochs", "2,0"], "in increasing order"),
        (["--steps", "4"], "an odd number"),
        (["--spawn-epochs", "a"], "comma-separated integers"),
        (["--plot", "lmc/runs/child-seed_0-k_0-order_10000.pt"], "the same file as --out"),  # a kept network
        (["--markdown", "lmc/lmc.png"], "the same file as --markdown"),
    ],
)
def test_bad_options_are_one_line_and_create_nothing(
    tmp_path: Path, options: list[str], message: str
) -> None:
    out = tmp_path / "lmc"
    result = CliRunner().invoke(app, ["study", "lmc", "--quick", "--out", str(out), *options])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_tampered_curve_is_refused_naming_the_run() -> None:
    record = {"key": "seed=0,k=5", "train": {"curve": [{"alpha": 0.0, "loss": 1.0}, {"alpha": 2.0}]}}
    with pytest.raises(InputError, match=r"lmc run 'seed=0,k=5', train path: a path needs α from 0 to 1"):
        curve(record, "train", "loss")
    with pytest.raises(InputError, match="no curve"):
        curve({"key": "x"}, "test", "loss")


def test_table_escapes_settings_read_back() -> None:
    stat = {"mean": 0.5, "std": 0.1, "n": 3}
    rows = [
        {"setting": "5|x", "runs": 3, "hdr_rise": stat, "mir_dip": stat},
        {"setting": "independent", "runs": 3},
    ]
    table = table_text(lmc_table(rows))
    assert "5\\|x" in table and "0.5000 ± 0.1000" in table and "independent (two inits)" in table
    assert "0.50000 ± 0.10000" in table  # MIR dip: 5 decimals


def test_a_new_study_never_takes_networks_it_did_not_train(tmp_path: Path) -> None:
    """DIR/runs/child-….pt left by someone else (no study.json to resume): refused before anything is
    written, not measured as the study's own child, not replaced."""
    out = tmp_path / "lmc"
    (out / "runs").mkdir(parents=True)
    planted = out / "runs" / "child-seed_0-k_2-order_10001.pt"
    planted.write_bytes(b"not ours")
    result = CliRunner().invoke(app, ["study", "lmc", "--quick", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "child-seed_0-k_2-order_10001.pt already exists" in result.output
    assert planted.read_bytes() == b"not ours" and not (out / "study.json").exists()


def _fake_curve() -> dict[str, object]:
    points = [{"alpha": a, "accuracy": 1.0, "loss": 0.1, "metrics": {"nc1": 0.1, "mir": 0.9, "hdr": 0.01}}
              for a in GRID]  # fmt: skip
    return {"curve": points}


def test_a_record_read_back_must_be_the_run_of_its_key(tmp_path: Path) -> None:
    """runs.jsonl whose record under key seed=0,k=0 says setting 2 (a swapped or edited line): refused
    before the table, so no pair is counted under another k."""
    from nc_audit.experiments.studies.lmc import KIND, run_lmc
    from nc_audit.experiments.studies.records import StudyRecords

    study = LmcStudy.quick()
    records = StudyRecords.open(tmp_path / "lmc", KIND, study.settings(), resume=False)
    for key, setting in (("seed=0,k=0", "2"), ("seed=0,k=2", "2"), ("seed=0,k=independent", "independent")):
        records.add({"key": key, "seed": 0, "setting": setting, "spawn_epoch": None, "checkpoints": [],
                     "train": _fake_curve(), "test": _fake_curve()})  # fmt: skip
    with pytest.raises(InputError, match=r"run 'seed=0,k=0' holds the record of seed 0, setting '2'"):
        run_lmc(tmp_path / "lmc", study, resume=True)


def test_a_non_number_on_a_path_is_refused() -> None:
    record = {"key": "seed=0,k=5", "train": _fake_curve()}
    record["train"]["curve"][2]["loss"] = "0.5"  # type: ignore[index]  # the fake curve's points are dicts
    with pytest.raises(InputError, match="loss must be a number or null"):
        curve(record, "train", "loss")


def test_a_kept_network_of_another_study_is_refused_before_training(tmp_path: Path) -> None:
    """DIR/runs/child-….pt written with another recipe (a resumed folder with a file copied in): refused by
    name, not measured and not replaced."""
    import torch

    from nc_audit.core.progress import SilentTracker
    from nc_audit.experiments.studies.lmc_pairs import PairTrainer
    from nc_audit.io.checkpoints.save import save_checkpoint
    from nc_audit.io.data.datasets import load_dataset
    from nc_audit.models.registry import architecture_record, build_model

    study = LmcStudy.quick()
    record = architecture_record("mlp", {"input_dim": 64, "hidden": [16, 16], "batch_norm": True}, 10)
    trainer = PairTrainer(tmp_path, study, load_dataset("digits", "train"), record)
    (tmp_path / "runs").mkdir()
    torch.manual_seed(0)
    meta = {"dataset": trainer.train.spec, "recipe": {**study.recipe.to_dict(), "epochs": 5},
            "lmc": {"seed": 0, "role": "child", "spawn_epoch": 0, "order_seed": 10000}}  # fmt: skip
    planted = tmp_path / "runs" / "child-seed_0-k_0-order_10000.pt"
    save_checkpoint(planted, build_model(record).state_dict(), record, meta)
    before = planted.read_bytes()
    with pytest.raises(
        InputError, match=r"child-seed_0-k_0-order_10000\.pt: not written by this study \(its recipe"
    ):
        trainer.children(0, 0, SilentTracker())
    assert planted.read_bytes() == before
    assert not (tmp_path / "runs" / "parent-seed_0-epoch_0.pt").exists()  # nothing trained
