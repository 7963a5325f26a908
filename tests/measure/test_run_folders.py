"""`track` on run folders as training libraries write them: a Hugging Face Trainer output folder
(checkpoint-N/ with trainer_state.json; its optimizer, scheduler, RNG and argument pickles never opened),
a Lightning run's checkpoints/, and nc-audit's own run folder (final.pt shown once beside its epoch)."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.measurement.discover import discover
from nc_audit.measurement.run_folders import distinct_labels, trainer_step

CLASSES, LENGTH, VOCAB = 3, 8, 40


class Planted:
    """A pickle that leaves a marker file when it is unpickled (it must never be)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "unpickled"))  # type: ignore[return-value]


def plant(folder: Path, marker: Path) -> None:
    for name in ("rng_state.pth", "optimizer.pt", "scheduler.pt", "training_args.bin"):
        (folder / name).write_bytes(pickle.dumps(Planted(marker)))


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def rows(result: Result) -> list[tuple[str, int | None, list[str]]]:
    assert result.exit_code == 0, result.output
    return [(r["label"], r["step"], r.get("notes", [])) for r in json.loads(result.stdout)["records"]]


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def test_labels_are_the_shortest_distinct_trailing_names() -> None:
    paths = [Path("out/checkpoint-2/model.safetensors"), Path("out/checkpoint-4/model.safetensors")]
    assert list(distinct_labels(paths).values()) == [
        "checkpoint-2/model.safetensors",
        "checkpoint-4/model.safetensors",
    ]
    assert list(distinct_labels([Path("a/e1.pt"), Path("a/e2.pt")]).values()) == ["e1.pt", "e2.pt"]
    assert list(distinct_labels([Path("a/final.pt"), Path("b/final.pt")]).values()) == [
        "a/final.pt",
        "b/final.pt",
    ]


def test_trainer_state_is_bounded_untrusted_json(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint-7"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 7, "epoch": 0.5}))
    assert trainer_step(folder) == 7 and trainer_step(folder / "model.safetensors") == 7
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": "7; rm -rf"}))
    with pytest.raises(InputError, match=r"trainer_state.json: global_step is .7; rm -rf., not a step count"):
        trainer_step(folder)
    (folder / "trainer_state.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(InputError, match=r"trainer_state\.json: JSON nested 5000 levels deep"):
        trainer_step(folder)


def test_a_folder_of_a_trainers_side_files_only_is_refused_without_opening_them(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    plant(tmp_path, marker)
    with pytest.raises(InputError, match="holds no checkpoints"):
        discover([tmp_path])
    result = invoke("track", tmp_path, "--data", "digits")
    assert result.exit_code == 2 and "holds no checkpoints" in result.stderr and not marker.exists()


@pytest.mark.slow
def test_a_transformers_trainer_run_is_tracked_by_its_checkpoint_folders(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=LENGTH, num_labels=CLASSES)  # fmt: skip
    rng = np.random.default_rng(0)
    ids, labels = rng.integers(5, VOCAB, (48, LENGTH)), np.arange(48) % CLASSES
    np.savez(tmp_path / "text.npz", input_ids=ids, attention_mask=np.ones_like(ids), labels=labels)
    rows_ = [{"input_ids": torch.tensor(i), "attention_mask": torch.ones(LENGTH, dtype=torch.long),
              "labels": torch.tensor(y)} for i, y in zip(ids, labels, strict=True)]  # fmt: skip
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, save_steps=2,
                                          per_device_train_batch_size=16, report_to=[], use_cpu=True,
                                          disable_tqdm=True)  # fmt: skip
    trainer = transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args,
                                   train_dataset=rows_)  # fmt: skip
    trainer.train()
    trainer.save_model()  # the final model in the run folder itself: the weights of checkpoint-4
    out, marker = tmp_path / "out", tmp_path / "marker"
    assert (out / "checkpoint-2" / "rng_state.pth").is_file()  # what the Trainer writes beside the model
    for folder in (out / "checkpoint-2", out / "checkpoint-4"):
        plant(folder, marker)
    data = tmp_path / "text.npz"
    whole = rows(invoke("track", out, "--data", data, "--format", "json"))
    assert [r[:2] for r in whole] == [("checkpoint-2", 2), ("checkpoint-4", 4)]
    assert whole[1][2] == [
        next(n for n in whole[1][2] if n.startswith("out holds the same weights as checkpoint-4"))
    ]
    listed = rows(
        invoke("track", out / "checkpoint-4", out / "checkpoint-2", "--data", data, "--format", "json")
    )
    assert [r[:2] for r in listed] == [("checkpoint-2", 2), ("checkpoint-4", 4)]
    files = rows(invoke("track", out / "checkpoint-2" / "model.safetensors", out / "checkpoint-4" / "model.safetensors",
                        "--data", data, "--format", "json"))  # fmt: skip
    assert [r[:2] for r in files] == [
        ("checkpoint-2/model.safetensors", 2),
        ("checkpoint-4/model.safetensors", 4),
    ]
    assert not marker.exists()


ZOO = """
import torch
from torch import nn
import pytorch_lightning as pl

def mlp():
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))

class Module(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = mlp()
    def forward(self, x):
        return self.model(x)
    def training_step(self, batch, index):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)
"""


@pytest.mark.slow
def test_a_lightning_run_and_an_nc_audit_run_folder_are_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    (tmp_path / "lit_zoo.py").write_text(ZOO)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lit_zoo", raising=False)
    import lit_zoo

    torch.manual_seed(0)
    x, y = torch.randn(96, 10), torch.arange(96) % 4
    x += 2.0 * torch.nn.functional.one_hot(y, 10).float()
    np.savez(tmp_path / "vec.npz", inputs=x.numpy(), labels=y.numpy())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    saver = pl.callbacks.ModelCheckpoint(
        dirpath=tmp_path / "run" / "checkpoints", every_n_train_steps=3, save_top_k=-1
    )
    trainer = pl.Trainer(max_steps=6, logger=False, callbacks=[saver], enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path / "run", accelerator="cpu")  # fmt: skip
    trainer.fit(lit_zoo.Module(), loader)
    tracked = rows(
        invoke(
            "track",
            tmp_path / "run",
            "--model",
            "lit_zoo:mlp",
            "--data",
            tmp_path / "vec.npz",
            "--format",
            "json",
        )
    )
    assert [r[:2] for r in tracked] == [("epoch=0-step=3.ckpt", 3), ("epoch=1-step=6.ckpt", 6)]

    last = tmp_path / "run" / "checkpoints" / "epoch=1-step=6.ckpt"
    tuned = invoke("finetune", last, "--model", "lit_zoo:mlp", "--data", tmp_path / "vec.npz", "--epochs", "1",
                   "--cma-weight", "0", "--out", tmp_path / "ft")  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    own = rows(
        invoke(
            "track",
            tmp_path / "ft",
            "--model",
            "lit_zoo:mlp",
            "--data",
            tmp_path / "vec.npz",
            "--format",
            "json",
        )
    )
    assert [r[0] for r in own] == [
        "epoch_000.pt",
        "epoch_001.pt",
    ]  # final.pt: the same weights as epoch_001.pt
    assert own[1][2] == [
        next(note for note in own[1][2] if note.startswith("final.pt holds the same weights as epoch_001.pt"))
    ]
