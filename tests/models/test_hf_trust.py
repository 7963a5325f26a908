"""Hugging Face folders never run their own code and never ask (issue 19, class 1): a config.json with
``auto_map`` and an unknown ``model_type`` is exit 2 at once, with stdin open or closed, and a config
asking for a model far larger than its weights is refused after a meta-device build."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nc_audit.core.errors import InputError
from nc_audit.models.loading import load_model

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow  # importing transformers takes seconds on 2 cores


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=12, num_labels=4)  # fmt: skip
    folder = tmp_path_factory.mktemp("hf") / "bert"
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def _edited(bert: Path, tmp_path: Path, **changes: object) -> Path:
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((bert / "model.safetensors").read_bytes())
    config = json.loads((bert / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("stdin", ["open", "closed"])
def test_auto_map_is_refused_at_once_without_a_prompt(bert: Path, tmp_path: Path, stdin: str) -> None:
    folder = _edited(bert, tmp_path, model_type="evilbert", architectures=["EvilModel"],
                     auto_map={"AutoConfig": "evil.EvilConfig",
                               "AutoModelForSequenceClassification": "evil.EvilModel"})  # fmt: skip
    (folder / "evil.py").write_text(f"open({str(tmp_path / 'marker')!r}, 'w').write('ran')\n")
    command = [sys.executable, "-m", "nc_audit", "measure", str(folder), "--data", "digits", "--no-progress"]
    started = time.monotonic()
    if stdin == "open":  # a pipe nobody writes to, then 'y': a prompt would block, then run evil.py
        process = subprocess.Popen(command, cwd=tmp_path, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            out, err = process.communicate(timeout=60)  # stdin stays open (never written) until it ends
        finally:
            process.kill()
        code = process.returncode
    else:
        done = subprocess.run(command, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        code, out, err = done.returncode, done.stdout, done.stderr
    elapsed = time.monotonic() - started
    assert code == 2 and out == "", err
    assert err.count("\n") == 1 and "hf/config.json: its auto_map names Python code" in err
    assert "[y/N]" not in err + out  # no question asked (it would wait 15 s, then read stdin)
    assert elapsed < 60
    assert not (tmp_path / "marker").exists()


def test_a_config_far_larger_than_its_weights_is_refused_on_the_meta_device(
    bert: Path, tmp_path: Path
) -> None:
    folder = _edited(bert, tmp_path, hidden_size=8192, intermediate_size=32768, num_attention_heads=2)
    with pytest.raises(
        InputError, match=r"hf: config.json describes a model of [\d,]+ MiB, but the checkpoint"
    ):
        load_model(folder)


def test_a_huggingface_record_is_bounded_and_probed(bert: Path, tmp_path: Path) -> None:
    """The same for a ``huggingface`` record in a .pt (finetune writes one): config bounded, then meta."""
    model = transformers.BertForSequenceClassification.from_pretrained(bert)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    values = model.config.to_dict()
    record = {"format": "nc-audit-arch/1", "name": "huggingface", "num_classes": 4, "head": "classifier",
              "config": {"class": "BertForSequenceClassification", "config": values}}  # fmt: skip
    torch.save({"state_dict": state, "architecture": record}, tmp_path / "ok.pt")
    assert load_model(tmp_path / "ok.pt").num_classes == 4
    for changes, message in (({"num_hidden_layers": 100000}, "num_hidden_layers is 100000"),
                             ({"vocab_size": 10_000_000}, "describes a model of")):  # fmt: skip
        record["config"]["config"] = {**values, **changes}
        torch.save({"state_dict": state, "architecture": record}, tmp_path / "bad.pt")
        with pytest.raises(InputError, match=f"bad.pt: .*({message}|vs model \\(10000000, 16\\))"):
            load_model(tmp_path / "bad.pt")
    record["config"]["class"] = "utils.hub.os.system"
    torch.save({"state_dict": state, "architecture": record}, tmp_path / "chain.pt")
    with pytest.raises(
        InputError, match=r"chain.pt: the huggingface record names 'utils\.hub\.os\.system', not a"
    ):
        load_model(tmp_path / "chain.pt")
