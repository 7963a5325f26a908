"""Checkpoints written by wrappers: a Lightning ``.ckpt`` from a real ``Trainer.fit`` (weights under
``state_dict``, keys prefixed ``model.``) and a ``torch.compile``d model's state dict (``_orig_mod.``),
measured with a plain factory; a Lightning file that needs unpickling code is refused with the reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner, Result

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.io.checkpoints.load import load_checkpoint
from nc_audit.measurement.api import measure

pl = pytest.importorskip("pytorch_lightning")

NET = """
import torch.nn as nn

class Net(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 6), nn.ReLU())
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.fc(self.body(x))
"""


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    (folder / "wrapped_zoo.py").write_text(NET)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("wrapped_zoo", None)


class Lit(pl.LightningModule):
    def __init__(self, data_dir: Path | None = None) -> None:
        super().__init__()
        from wrapped_zoo import Net

        if data_dir is not None:
            self.save_hyperparameters()  # data_dir, a pathlib.Path, is pickled as an object
        self.model = Net(num_classes=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(60, 8, generator=generator), torch.arange(60) % 3


def fit(folder: Path, data_dir: Path | None = None) -> Path:
    torch.manual_seed(0)
    trainer = pl.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=folder, accelerator="cpu")  # fmt: skip
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data()), batch_size=16)
    module = Lit(data_dir)
    trainer.fit(module, loader)
    path = folder / ("unsafe.ckpt" if data_dir is not None else "model.ckpt")
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def lightning_ckpt(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit(tmp_path_factory.mktemp("lightning"))


@pytest.fixture
def npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NC_AUDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    x, y = data()
    np.savez(tmp_path / "vec.npz", inputs=x.numpy(), labels=y.numpy())
    return tmp_path / "vec.npz"


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args), "--no-progress"])


def test_a_lightning_checkpoint_is_measured_with_a_plain_factory(lightning_ckpt: Path, npz: Path) -> None:
    checkpoint = load_checkpoint(lightning_ckpt)
    assert set(checkpoint.state_dict) == {"body.0.weight", "body.0.bias", "fc.weight", "fc.bias"}
    assert checkpoint.step == 4  # Lightning's global_step
    result = invoke(
        "measure", lightning_ckpt, "--data", npz, "--model", "wrapped_zoo:Net", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["checkpoint"]["head"] == "fc" and report["checkpoint"]["step"] == 4
    assert "stripped the LightningModule attribute prefix 'model.'" in " ".join(report["notes"])
    # the same numbers as the LightningModule's own model
    module = Lit()
    module.load_state_dict(torch.load(lightning_ckpt, weights_only=True)["state_dict"])
    with torch.no_grad():
        logits = module.model(data()[0])
    assert report["details"]["accuracy"] == pytest.approx(
        float((logits.argmax(1) == data()[1]).float().mean())
    )


def test_the_lightning_module_itself_as_factory_gets_its_prefix_back(lightning_ckpt: Path, npz: Path) -> None:
    """A factory that builds the LightningModule: its keys keep 'model.', the head is model.fc."""
    report = measure(lightning_ckpt, data=str(npz), model=f"{__name__}:Lit", device="cpu")
    assert report.checkpoint["head"] == "fc"
    assert report.metrics == pytest.approx(
        measure(lightning_ckpt, data=str(npz), model="wrapped_zoo:Net", device="cpu").metrics, rel=1e-12
    )


def test_a_lightning_checkpoint_that_needs_unsafe_globals_is_refused(
    zoo: Path, tmp_path: Path, npz: Path
) -> None:
    path = fit(tmp_path, tmp_path / "data")
    with pytest.raises(InputError, match=r"Lightning checkpoint holds a Python object \(pathlib\."):
        load_checkpoint(path)
    result = invoke("measure", path, "--data", npz, "--model", "wrapped_zoo:Net")
    assert result.exit_code == 2 and "unpickling it could execute code" in result.stderr


def test_a_compiled_models_state_dict_is_measured(zoo: Path, tmp_path: Path, npz: Path) -> None:
    from wrapped_zoo import Net

    torch.manual_seed(0)
    net = Net(num_classes=3)
    compiled = torch.compile(net)  # never run: only its state dict's keys matter
    state = compiled.state_dict()
    assert all(key.startswith("_orig_mod.") for key in state)
    torch.save(state, tmp_path / "compiled.pt")
    report = measure(tmp_path / "compiled.pt", data=str(npz), model="wrapped_zoo:Net", device="cpu")
    assert "removed torch.compile's '_orig_mod.' from the keys" in report.notes
    torch.save(net.state_dict(), tmp_path / "plain.pt")
    plain = measure(tmp_path / "plain.pt", data=str(npz), model="wrapped_zoo:Net", device="cpu")
    assert report.metrics == plain.metrics
    # DDP around a compiled model: both prefixes
    torch.save({f"module.{key}": value for key, value in state.items()}, tmp_path / "ddp_compiled.pt")
    assert set(load_checkpoint(tmp_path / "ddp_compiled.pt").state_dict) == set(net.state_dict())
