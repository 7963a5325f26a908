"""Augmentations for small square grey images (scikit-learn's 8×8 digits): shifts, noise, cut-out.

Inputs are (N, S·S) flat rows or (N, 1, S, S) images with pixel values in [0, 1]; outputs have the same
shape. Every random draw comes from the ``generator`` passed in, one draw per sample, so a seeded
generator gives the same batch every time.

- weak:   a random shift of up to 1 pixel in each direction (zero fill).
- strong: a shift of up to 2 pixels, Gaussian pixel noise (σ = 0.1, then clipped to [0, 1]) and one
  cut-out square of 3×3 pixels set to 0, centred on a random pixel (clipped at the border).
These are the weak / strong views of FixMatch (Sohn et al. 2020) scaled down to 8×8 images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from nc_audit.core.errors import InputError


@dataclass(frozen=True)
class Augmentation:
    """A view: maximum shift (pixels), noise σ, cut-out side (0: none)."""

    max_shift: int
    noise: float = 0.0
    cutout: int = 0

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        images, shape = as_images(x)
        images = shift(images, self.max_shift, generator)
        if self.noise > 0.0:
            noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
            images = (images + self.noise * noise.to(images.device)).clamp(0.0, 1.0)
        if self.cutout > 0:
            images = cutout(images, self.cutout, generator)
        return images.reshape(shape)


WEAK = Augmentation(max_shift=1)
STRONG = Augmentation(max_shift=2, noise=0.1, cutout=3)


def as_images(x: Tensor) -> tuple[Tensor, torch.Size]:
    """(N, S, S) images from (N, S·S) rows or (N, 1, S, S), and the shape to give back."""
    if x.dim() == 4 and x.shape[1] == 1 and x.shape[2] == x.shape[3]:
        return x[:, 0], x.shape
    side = math.isqrt(x.shape[-1]) if x.dim() == 2 else 0
    if x.dim() != 2 or side * side != x.shape[1]:
        raise InputError(
            f"augmentations need square grey images (N, S·S) or (N, 1, S, S), got {tuple(x.shape)}"
        )
    return x.reshape(x.shape[0], side, side), x.shape


def _offsets(n: int, limit: int, generator: torch.Generator) -> Tensor:
    return torch.randint(-limit, limit + 1, (n,), generator=generator)


def shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each image moved by its own integer (dy, dx) ∈ [−max_shift, max_shift]², zero fill. (N, S, S)."""
    if max_shift == 0:
        return images
    n, side = images.shape[0], images.shape[1]
    dy = _offsets(n, max_shift, generator).to(images.device)  # (N,)
    dx = _offsets(n, max_shift, generator).to(images.device)  # (N,)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # (N, S+2m, S+2m)
    grid = torch.arange(side, device=images.device)  # (S,)
    rows = (max_shift - dy)[:, None] + grid  # (N, S): output row r reads padded row r + m − dy
    cols = (max_shift - dx)[:, None] + grid  # (N, S)
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


def cutout(images: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """A size×size square set to 0 in each image, centred on a random pixel (clipped). (N, S, S)."""
    n, side = images.shape[0], images.shape[1]
    centre_y = torch.randint(0, side, (n,), generator=generator).to(images.device)  # (N,)
    centre_x = torch.randint(0, side, (n,), generator=generator).to(images.device)  # (N,)
    grid = torch.arange(side, device=images.device)
    low = (size - 1) // 2
    inside_y = (grid[None, :] >= centre_y[:, None] - low) & (grid[None, :] < centre_y[:, None] - low + size)
    inside_x = (grid[None, :] >= centre_x[:, None] - low) & (grid[None, :] < centre_x[:, None] - low + size)
    hole = inside_y[:, :, None] & inside_x[:, None, :]  # (N, S, S)
    return images.masked_fill(hole, 0.0)
