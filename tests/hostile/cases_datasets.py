"""Issue 21, deliver 7: streamed ``--data`` sources (image folders, datasets folders, JSONL tables) are
untrusted input: links out of the folder, decompression bombs, non-images, FIFOs, a state.json naming a
file outside, a line that is not an object. Each run is exit 2 with one line naming the file, read
through two DataLoader workers where a worker reads it (the message crosses back as one line)."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from generate import SLOW_CASES, Case, case

CNN = """
from torch import nn


def small_cnn(num_classes=3):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, num_classes))
"""


def _model(root: Path) -> tuple[Path, str]:
    import torch

    (root / "cnn_zoo.py").write_text(CNN)
    namespace: dict[str, object] = {}
    exec(compile(CNN, "cnn_zoo.py", "exec"), namespace)  # the case's own source
    torch.manual_seed(0)
    checkpoint = root / "cnn.pt"
    torch.save(namespace["small_cnn"]().state_dict(), checkpoint)  # type: ignore[operator]
    return checkpoint, f"{root / 'cnn_zoo.py'}:small_cnn"


def _images(root: Path, per_class: int = 3) -> Path:
    from PIL import Image

    folder = root / "images"
    for c in range(3):
        (folder / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((6, 6, 3), 40 * c + i, np.uint8)).save(folder / f"class_{c}" / f"{i}.png")
    return folder


def _measure(root: Path, data: Path, *extra: str) -> list[str]:
    """measure through the CNN factory; an image folder at size 6, both through two DataLoader workers."""
    checkpoint, factory = _model(root)
    size = ["--data-arg", "size=6"] if data.is_dir() and not (data / "state.json").exists() else []
    return ["measure", str(checkpoint), "--model", factory, "--data", str(data), *size,
            "--workers", "2", *extra, "--no-progress", "--cache-dir", str(root / "cache")]  # fmt: skip


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


@case
def case_datasets_image_link_out(root: Path) -> Case:
    folder = _images(root)
    os.symlink("/etc/passwd", folder / "class_1" / "9.png")
    return Case(
        "datasets_image_link_out", 2,
        "an image folder whose class_1/9.png is a symbolic link to /etc/passwd: refused naming the link, "
        "before any byte of the target is read",
        [_measure(root, folder)], "error", culprits=["9.png"], fragments=["a link out of the image folder"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_datasets_image_bomb(root: Path) -> Case:
    folder = _images(root)
    header = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 0, 0, 0, 0)  # 2.5 G grey pixels declared
    bomb = folder / "class_0" / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 50_001))
                     + _chunk(b"IEND", b""))  # fmt: skip
    return Case(
        "datasets_image_bomb", 4,
        "a 100-byte PNG declaring 50,000 × 50,000 pixels (a decompression bomb) in an image folder read by "
        "two workers: refused naming the file before it is decoded, within the memory budget",
        [_measure(root, folder)], "error", culprits=["bomb.png"], fragments=["pixels"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_datasets_image_not_an_image(root: Path) -> Case:
    folder = _images(root)
    (folder / "class_2" / "fake.jpg").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    (root / "other").mkdir()
    text_folder = _images(root / "other")
    (text_folder / "class_0" / "README.txt").write_text("not an image")
    return Case(
        "datasets_image_not_an_image", 3,
        "an image folder holding fake.jpg (HDF5 bytes), another holding README.txt in a class folder: each "
        "refused naming the file",
        [_measure(root, folder), _measure(root, text_folder)], "error", culprits=["fake.jpg", "README.txt"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_datasets_image_fifo(root: Path) -> Case:
    folder = _images(root)
    os.mkfifo(folder / "class_0" / "pipe.png")
    return Case(
        "datasets_image_fifo", 2,
        "a FIFO named pipe.png in a class folder: refused as not a regular file, never opened (it would block)",
        [_measure(root, folder)], "error", culprits=["pipe.png"], fragments=["not a regular file"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_datasets_state_names_outside(root: Path) -> Case:
    folder = root / "reviews"
    folder.mkdir()
    (folder / "dataset_info.json").write_text("{}")
    state = {
        "_data_files": [{"filename": "../../../../../../etc/passwd"}],
        "_fingerprint": "x",
        "_split": None,
    }
    (folder / "state.json").write_text(json.dumps(state))
    return Case(
        "datasets_state_names_outside", 2,
        "a save_to_disk folder whose state.json names ../../../../../../etc/passwd as its Arrow file: refused "
        "naming state.json before datasets opens anything",
        [_measure(root, folder)], "error", culprits=["state.json"], fragments=["only a file of the folder"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_datasets_jsonl_not_object(root: Path) -> Case:
    table = root / "rows.jsonl"
    table.write_text('{"text": "a", "label": 0}\n[1, 2]\n')
    return Case(
        "datasets_jsonl_not_object", 3,
        "a JSONL table whose line 2 is a list: refused naming the file and the line",
        [_measure(root, table)], "error", culprits=["rows.jsonl"], fragments=["line 2 is not a JSON object"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


@case
def case_datasets_info_links_out(root: Path) -> Case:
    folder = root / "reviews"
    folder.mkdir()
    (folder / "data-00000-of-00001.arrow").write_bytes(b"")
    state = {"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_fingerprint": "x", "_split": None}
    (folder / "state.json").write_text(json.dumps(state))
    os.symlink("/etc/passwd", folder / "dataset_info.json")
    return Case(
        "datasets_info_links_out", 2,
        "a save_to_disk folder whose dataset_info.json is a symbolic link to /etc/passwd (datasets would read "
        "it): refused naming it before a byte is read",
        [_measure(root, folder)], "error", culprits=["dataset_info.json"], fragments=["a link out of the datasets folder"],
        outputs=["cache", "cache/*"],
    )  # fmt: skip


# The link, the bomb and the state.json naming a file outside run in `make test`; the variants in make test-all.
for _name, _why in (
    ("datasets_image_not_an_image", "two measure runs through a CNN factory (about 8 s)"),
    ("datasets_image_fifo", "a variant of datasets_image_link_out (a measure run, about 4 s)"),
    ("datasets_jsonl_not_object", "a variant of datasets_state_names_outside (a measure run, about 4 s)"),
    ("datasets_info_links_out", "a variant of datasets_state_names_outside (a measure run, about 4 s)"),
):
    SLOW_CASES[_name] = _why
