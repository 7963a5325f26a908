"""An image folder in the ImageFolder layout (``root/CLASS/*.png|jpg``, or ``root/SPLIT/CLASS/...``),
read one image at a time with Pillow; the folder is untrusted.

Classes are the sorted class-folder names (label i = i-th name). Every entry is checked before any image
is opened: a symbolic link that leads out of the root, a FIFO or device, or a file whose suffix is not an
image's is refused with its path; hidden files (``.DS_Store``) are skipped. An image whose declared
width × height exceeds ``MAX_PIXELS`` is refused before it is decoded (Pillow's decompression-bomb
limit, as an error), and one that does not decode is refused with its path. Each image becomes a float32
(C, H, W) tensor: resized to ``size`` (bilinear), scaled to [0, 1], then ``(x - mean) / std``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nc_audit.core.errors import InputError, first_line

#: Suffixes of the image files a class folder may hold.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: Most pixels (width × height) of one image (Pillow's MAX_IMAGE_PIXELS, enforced as an error).
MAX_PIXELS = 64 * 1024 * 1024
#: Most images one folder may list (each is one path in memory).
MAX_IMAGES = 10_000_000


def pillow() -> Any:
    """The ``PIL.Image`` module; InputError naming the extra to install when Pillow is absent."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError(
            "an image folder as --data is read with Pillow: pip install 'nc-audit[data]'"
        ) from None
    return Image


@dataclass(frozen=True)
class Transform:
    """How an image becomes a tensor: (H, W) or None (kept as decoded), channels 1 or 3, mean and std."""

    size: tuple[int, int] | None
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, path: Path) -> Tensor:
        """The (C, H, W) float32 tensor of the image at ``path`` (InputError naming it when unusable)."""
        Image = pillow()
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    width, height = image.size
                    if width * height > MAX_PIXELS:
                        raise InputError(
                            f"{path}: {width}×{height} pixels, more than the {MAX_PIXELS:,} an image may hold"
                        )
                    image = image.convert("L" if self.channels == 1 else "RGB")
                    if self.size is not None and image.size != (self.size[1], self.size[0]):
                        image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
                    array = np.asarray(image, dtype=np.float32) / 255.0  # (H, W) or (H, W, 3)
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise InputError(f"{path}: {first_line(error)}") from None
        except Exception as error:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ...
            raise InputError(
                f"{path}: not a readable image ({type(error).__name__}: {first_line(error)})"
            ) from None
        pixels = torch.from_numpy(array.reshape(*array.shape[:2], -1)).permute(2, 0, 1)  # (C, H, W)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return ((pixels - mean) / std).contiguous()


def declared_size(path: Path) -> tuple[int, int]:
    """(height, width) an image's header declares (nothing decoded); InputError naming it if unreadable."""
    Image = pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the size is checked against MAX_PIXELS when decoded
            with Image.open(path) as image:
                width, height = image.size
    except Exception as error:  # Pillow raises UnidentifiedImageError, OSError, DecompressionBombError, ...
        raise InputError(
            f"{path}: not a readable image ({type(error).__name__}: {first_line(error)})"
        ) from None
    if width * height > MAX_PIXELS:
        raise InputError(f"{path}: {width}×{height} pixels, more than the {MAX_PIXELS:,} an image may hold")
    return height, width


def _entries(folder: Path, root: str) -> list[os.DirEntry[str]]:
    """The visible entries of ``folder``, each inside ``root`` once links are resolved."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as error:
        raise InputError(f"{folder}: cannot list the folder ({error.strerror or error})") from None
    kept = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        real = os.path.realpath(entry.path)
        if os.path.commonpath([root, real]) != root:
            raise InputError(f"{entry.path}: a link out of the image folder {root}; refused")
        kept.append(entry)
    return kept


def class_folders(root: Path) -> list[Path]:
    """The class folders of ``root`` (its sub-folders), sorted; InputError when there are none."""
    real = os.path.realpath(root)
    found = [Path(e.path) for e in _entries(root, real) if e.is_dir()]
    if not found:
        raise InputError(f"{root}: no class folders (expected the ImageFolder layout root/CLASS/*.png)")
    return found


def list_images(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(path, label) of every image under ``root/CLASS/``, in class then name order; anything else in a
    class folder is refused with its path (a hidden file is skipped)."""
    real = os.path.realpath(root)
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise InputError(f"{root}: no class folder {name!r} (the classes are those of the first split)")
        for entry in _entries(folder, real):
            mode = os.stat(entry.path).st_mode
            if not stat.S_ISREG(mode):
                raise InputError(f"{entry.path}: not a regular file; an image folder holds only images")
            if not entry.name.lower().endswith(IMAGE_SUFFIXES):
                raise InputError(
                    f"{entry.path}: not an image file (accepted: {', '.join(IMAGE_SUFFIXES)}); refused"
                )
            items.append((Path(entry.path), label))
            if len(items) > MAX_IMAGES:
                raise InputError(f"{root}: more than {MAX_IMAGES:,} images; refused")
    return items


def splits_of(root: Path) -> dict[str, Path]:
    """``{split: folder}`` when ``root`` holds ``train/`` (and ``test/``, ...) of class folders, else
    ``{"train": root}`` (a folder of classes is whichever split is asked for)."""
    subfolders = class_folders(root)
    names = {p.name for p in subfolders}
    if "train" in names and all(any(c.is_dir() for c in p.iterdir()) for p in subfolders):
        return {p.name: p for p in subfolders}
    return {"train": root}


def content_digest(items: list[tuple[Path, int]], root: Path, classes: list[str]) -> str:
    """sha256 over the classes and each image's relative path, label and content (the cache key part)."""
    digest = hashlib.sha256("\0".join(classes).encode())
    for path, label in items:
        digest.update(f"\n{path.relative_to(root).as_posix()}\0{label}\0".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class ImageFolderDataset(torch.utils.data.Dataset[tuple[Tensor, int]]):
    """The images of one split as (C, H, W) tensors with their labels; nothing is held but the paths."""

    def __init__(self, items: list[tuple[Path, int]], transform: Transform) -> None:
        self.items = items
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.items[index]
        return self.transform(path), label
