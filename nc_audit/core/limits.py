"""Memory limits a user may raise: the classifier head read whole into memory.

A vocabulary-sized head (C = 32k–256k rows of d = 768–8192) is the one input nc-audit holds whole; every
other array is streamed. Its float64 copy (C × d × 8 bytes: 0.3 GiB for GPT-2, 4.2 GiB for Llama 3's
128,256 × 4,096) is bounded before it is read by ``NC_AUDIT_MAX_HEAD_MEMORY`` (bytes, or a size such as
``8GiB``), which the command line's ``nc-audit --max-head-memory SIZE`` sets for the whole run.
"""

from __future__ import annotations

import os
import re

from nc_audit.core.errors import InputError

#: The environment variable holding the limit (the root option ``--max-head-memory`` sets it).
HEAD_MEMORY_VARIABLE = "NC_AUDIT_MAX_HEAD_MEMORY"
#: The default: 1 GiB of float64 head, i.e. C × d ≤ 134,217,728 (Llama 2's 32,000 × 4,096 fits).
DEFAULT_HEAD_MEMORY = 2**30

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str, what: str = "a size") -> int:
    """``'8GiB'``, ``'512MiB'``, ``'1.5GB'`` or plain bytes (``'2000000000'``) as bytes; anything else
    is an InputError naming ``what``."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise InputError(f"{what} must be a size such as 4GiB, 512MiB or 2000000000 (bytes); got {text!r}")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise InputError(f"{what} must be positive; got {text!r}")
    return size


def head_memory() -> int:
    """The bytes a head's float64 copy may take: ``NC_AUDIT_MAX_HEAD_MEMORY`` if set, else 1 GiB."""
    text = os.environ.get(HEAD_MEMORY_VARIABLE, "").strip()
    if not text:
        return DEFAULT_HEAD_MEMORY
    return parse_size(text, HEAD_MEMORY_VARIABLE)


def check_head_memory(where: object, name: str, shape: tuple[int, ...]) -> int:
    """The head's float64 bytes, or InputError naming ``where`` and ``name`` when they exceed
    :func:`head_memory` — checked before the head is read or converted."""
    import math

    in_memory = math.prod(int(n) for n in shape) * 8
    budget = head_memory()
    if in_memory > budget:
        raise InputError(
            f"{where}: the head {name} {shape} takes {human_bytes(in_memory)} as float64, more than the "
            f"{human_bytes(budget)} allowed for a head; raise the limit with nc-audit --max-head-memory SIZE "
            f"(or {HEAD_MEMORY_VARIABLE}=SIZE) if this machine has the memory"
        )
    return in_memory


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(count) < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} PiB"  # pragma: no cover
