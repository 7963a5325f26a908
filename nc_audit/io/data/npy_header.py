"""An .npy header (a plain .npy file or an .npz member) read and checked before numpy allocates anything:
numpy trusts the header's shape, so a few-byte file claiming terabytes would end in a MemoryError."""

from __future__ import annotations

import math
from typing import IO

import numpy as np

from nc_audit.core.errors import InputError


def check_npy_header(stream: IO[bytes], size: int, where: str) -> None:
    """Refuse (InputError naming ``where``) an .npy stream of ``size`` bytes whose header is unreadable,
    declares Python objects, or claims a shape whose bytes differ from what follows the header."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        header = stream.tell()
    except (ValueError, OSError, EOFError, RuntimeError, SyntaxError) as error:
        raise InputError(f"{where}: not a readable .npy array ({str(error).splitlines()[0][:160]})") from None
    if dtype.hasobject:
        raise InputError(f"{where}: holds Python objects (dtype {dtype}); only numeric arrays are read")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != size - header:
        raise InputError(
            f"{where}: claims shape {tuple(shape)} ({claimed} bytes of {dtype}) but holds {size - header} "
            "bytes; the file is damaged or crafted"
        )
