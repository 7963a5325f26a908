"""Issue 21: heads and inputs named by their cause, before any forward pass; run folders' pickles.

Every case is a user's mistake or a hostile file that once surfaced as a library's exception after the
forward pass, or as a wrong number with exit 0: arrays named otherwise than the model's forward takes
them, images given to a text model, labels beyond the head, a head guessed among layers that are not
certain to be it, a decoder classifier without a padding id, and a run folder whose trainer pickles
(``rng_state.pth``, ``optimizer.pt``, ``training_args.bin``) would run code if unpickled.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from generate import SAMPLES, SLOW_CASES, Case, case

MARKER = "marker"
VOCAB, LENGTH, CLASSES = 40, 8, 3
#: A GPT-2 sequence classifier folder, random init from a local config (no download).
_GPT2 = (
    "import sys, transformers, torch; torch.manual_seed(0); "
    "pad = None if sys.argv[2] == 'none' else int(sys.argv[2]); "
    f"c = transformers.GPT2Config(vocab_size={VOCAB}, n_positions={LENGTH}, n_embd=16, n_layer=1, n_head=2, "
    f"num_labels={CLASSES}, pad_token_id=pad, bos_token_id=1, eos_token_id=2); "
    "transformers.GPT2ForSequenceClassification(c).save_pretrained(sys.argv[1])"
)
ZOO = """
import torch
from torch import nn
from torch.nn import functional as F

class Cosine(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 8))
        self.W = nn.Parameter(torch.randn(num_classes, 8))
    def forward(self, x):
        return 10.0 * F.linear(F.normalize(self.body(x)), F.normalize(self.W))

class Net(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU())
        self.fc = nn.Linear(24, num_classes)
    def forward(self, x):
        return self.fc(self.body(x))
"""


class _Payload:
    """Unpickling it runs ``touch marker``."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {MARKER}",))


def _gpt2(root: Path, pad: str = "0") -> Path | str:
    """The folder, or the reason it could not be built (transformers missing)."""
    folder = root / "gpt2"
    done = subprocess.run([sys.executable, "-c", _GPT2, str(folder), pad], capture_output=True, text=True,
                          timeout=180, check=False)  # fmt: skip
    return folder if done.returncode == 0 else done.stderr[-300:]


def _measure(checkpoint: Path, data: Path, root: Path, *extra: str) -> list[str]:
    return ["measure", str(checkpoint), "--data", str(data), *extra, "--no-progress", "--cache-dir",
            str(root / "cache")]  # fmt: skip


def _text_case(root: Path, name: str, description: str, arrays: dict[str, np.ndarray],
               fragments: list[str], pad: str = "0") -> Case:  # fmt: skip
    folder = _gpt2(root, pad)
    if isinstance(folder, str):
        return Case(name, 12, description, [], "error", skip=folder)
    data = root / "data.npz"
    np.savez(data, **arrays, labels=np.arange(20) % CLASSES)
    return Case(
        name, 12, description,
        [_measure(folder, data, root), ["extract", str(folder), "--data", str(data), "--out", str(root / "o.h5"),
                                        "--no-progress"]],
        "error", culprits=[data.name], fragments=fragments, outputs=["cache", "cache/*", "o.h5"],
    )  # fmt: skip


@case
def case_heads_wrong_input_keys(root: Path) -> Case:
    rng = np.random.default_rng(0)
    return _text_case(
        root, "heads_wrong_input_keys",
        "a GPT-2 classifier given token ids named `tokens` ('You must specify exactly one of input_ids or "
        "inputs_embeds' after the forward pass before): one line naming the file's arrays and the forward's "
        "arguments, before any forward pass",
        {"tokens": rng.integers(3, VOCAB, (20, LENGTH))},
        ["tokens (20, 8) int64", "GPT2ForSequenceClassification.forward takes input_ids", "attention_mask"],
    )  # fmt: skip


@case
def case_heads_wrong_modality(root: Path) -> Case:
    rng = np.random.default_rng(0)
    return _text_case(
        root, "heads_wrong_modality",
        "a GPT-2 classifier given images (`pixel_values`, and float `input_ids`): one line naming the "
        "file's arrays and the model's main input, before any forward pass",
        {"pixel_values": rng.normal(size=(20, 3, 8, 8)).astype(np.float32)},
        ["pixel_values (20, 3, 8, 8) float32", "main input: input_ids"],
    )  # fmt: skip


@case
def case_heads_decoder_without_pad_token(root: Path) -> Case:
    rng = np.random.default_rng(0)
    ids = rng.integers(3, VOCAB, (20, LENGTH))
    return _text_case(
        root, "heads_decoder_without_pad_token",
        "a GPT-2 classifier whose config.json has no pad_token_id, on padded text (transformers raises "
        "'Cannot handle batch sizes > 1' in the forward pass): one line naming the file and the setting",
        {"input_ids": ids, "attention_mask": np.ones_like(ids)},
        ["pad_token_id", "config.json"], pad="none",
    )  # fmt: skip


@case
def case_heads_labels_beyond_head(root: Path) -> Case:
    checkpoint = root / "model.pt"
    shutil.copyfile(SAMPLES / "epoch_0030.pt", checkpoint)
    (root / "lab_zoo.py").write_text(ZOO)
    data = root / "eleven.npz"
    np.savez(data, inputs=np.random.default_rng(0).normal(size=(33, 64)).astype(np.float32),
             labels=np.arange(33) % 11)  # fmt: skip
    import torch

    torch.manual_seed(0)
    bare = root / "bare.pt"
    state = {"body.0.weight": torch.randn(24, 10), "body.0.bias": torch.randn(24), "body.2.weight": torch.randn(24, 24),
             "body.2.bias": torch.randn(24), "fc.weight": torch.randn(10, 24), "fc.bias": torch.randn(10)}  # fmt: skip
    torch.save(state, bare)
    narrow = root / "eleven10.npz"
    np.savez(narrow, inputs=np.ones((33, 10), np.float32), labels=np.arange(33) % 11)
    return Case(
        "heads_labels_beyond_head", 12,
        "labels 0..10 for a 10-class head, from a recorded checkpoint and through --model with the class count "
        "inferred ('4 shape mismatch(es) (fc.weight: file (10, 24) vs model (24, 24)…)' before): one line "
        "saying the labels go up to 10 but the head has 10 classes",
        [_measure(checkpoint, data, root), _measure(bare, narrow, root, "--model", f"{root / 'lab_zoo.py'}:Net")],
        "error", culprits=[data.name, narrow.name], fragments=["labels go up to 10", "has 10 classes"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_heads_uncertain_head(root: Path) -> Case:
    import torch

    (root / "cos_zoo.py").write_text(ZOO)
    torch.manual_seed(0)
    checkpoint = root / "cos.pt"
    torch.save({"body.0.weight": torch.randn(16, 10), "body.0.bias": torch.randn(16), "body.2.weight": torch.randn(8, 16),
                "body.2.bias": torch.randn(8), "W": torch.randn(4, 8)}, checkpoint)  # fmt: skip
    data = root / "vec.npz"
    np.savez(
        data,
        inputs=np.random.default_rng(0).normal(size=(40, 10)).astype(np.float32),
        labels=np.arange(40) % 4,
    )
    factory = f"{root / 'cos_zoo.py'}:Cosine"
    return Case(
        "heads_uncertain_head", 8,
        "a cosine classifier (a bare Parameter W used with F.linear) without --head (with num_classes given, "
        "`body.0` was taken as the head and raw inputs measured, exit 0, before): refused listing the "
        "candidates with their shapes",
        [_measure(checkpoint, data, root, "--model", factory),
         _measure(checkpoint, data, root, "--model", factory, "--model-arg", "num_classes=4")],
        "error", culprits=[checkpoint.name], fragments=["cannot be identified with certainty", "W (4, 8) (parameter)",
                                                        "--head NAME"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_heads_trainer_pickles(root: Path) -> Case:
    run = root / "out"
    for name in ("checkpoint-2", "checkpoint-4"):
        folder = run / name
        folder.mkdir(parents=True)
        for side in ("rng_state.pth", "optimizer.pt", "scheduler.pt", "training_args.bin"):
            (folder / side).write_bytes(pickle.dumps(_Payload()))
        (folder / "trainer_state.json").write_text('{"global_step": 2}')
    return Case(
        "heads_trainer_pickles", 2,
        "a Trainer output folder whose checkpoint-N folders hold only pickles that run `touch marker` "
        "(rng_state.pth, optimizer.pt, scheduler.pt, training_args.bin) and no model: refused naming the "
        "folder; nothing unpickled",
        [["track", str(run), "--data", "digits", "--no-progress"],
         ["track", str(run / "checkpoint-2"), "--data", "digits", "--no-progress"]],
        "error", culprits=[run.name, "checkpoint-2"], fragments=["holds no checkpoints"],
        extra={"no_marker": [MARKER]},
    )  # fmt: skip


@case
def case_heads_trainer_pickle_named(root: Path) -> Case:
    folder = root / "checkpoint-2"
    folder.mkdir()
    for side in ("rng_state.pth", "optimizer.pt", "scheduler.pt", "training_args.bin"):
        (folder / side).write_bytes(pickle.dumps(_Payload()))
    (folder / "trainer_state.json").write_text('{"global_step": 2}')
    return Case(
        "heads_trainer_pickle_named", 2,
        "a Trainer checkpoint folder's planted pickles given by name to measure, extract and track: each refused "
        "by name as a trainer's state, before any byte is read; nothing unpickled",
        [["measure", str(folder / "rng_state.pth"), "--data", "digits", "--no-progress"],
         ["extract", str(folder / "training_args.bin"), "--data", "digits", "--out", str(root / "o.h5"),
          "--no-progress"],
         ["track", str(folder / "optimizer.pt"), str(folder / "scheduler.pt"), "--data", "digits", "--no-progress"]],
        "error", culprits=["rng_state.pth", "training_args.bin", "optimizer.pt"],
        fragments=["state beside trainer_state.json, not a model"], outputs=["o.h5"],
        extra={"no_marker": [MARKER]},
    )  # fmt: skip


for _name in ("heads_wrong_input_keys", "heads_wrong_modality", "heads_decoder_without_pad_token"):
    SLOW_CASES[_name] = "builds a GPT-2 folder with transformers (about 8 s)"
SLOW_CASES["heads_labels_beyond_head"] = "loads torch for two measure runs (about 5 s)"
SLOW_CASES["heads_uncertain_head"] = "loads torch for two measure runs (about 5 s)"
