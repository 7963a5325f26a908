"""Opening input files: regular files only, sizes and JSON bounded before anything is allocated.

Every file nc-audit reads may come from an untrusted pull request. A FIFO blocks a reader forever,
``/dev/zero`` never ends, ``/proc/self/mem`` fails in odd ways, and JSON nested 100,000 deep or holding
a 5,000-digit number crashes a plain ``json.loads``. The helpers here refuse such inputs with one line
naming the file, before any byte is read:

- :func:`regular_file` — the path names a regular file (not a FIFO, device, socket or folder, and not a
  ``/proc`` or ``/sys`` pseudo-file); returns its ``stat``;
- :func:`read_capped` — its bytes, at most ``cap`` of them (opened non-blocking, checked again on the
  open descriptor);
- :func:`load_json` — JSON text of at most ``cap`` bytes, nested at most MAX_JSON_DEPTH deep, integers
  of at most MAX_INT_DIGITS digits.

Nothing here imports torch, so the command line can refuse bad inputs before loading it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.core.limits import human_bytes

#: Pseudo-file systems whose "regular files" are not data (/proc/self/mem, /proc/self/environ, ...).
PSEUDO_ROOTS = ("/proc/", "/sys/")
#: Largest JSON or TOML input (a baseline, a trajectory, a config) nc-audit reads.
MAX_JSON_BYTES = 64 * 2**20
#: Deepest nesting of arrays and objects accepted in a JSON input (a report nests 4 levels).
MAX_JSON_DEPTH = 64
#: Most digits of an integer in a JSON input (metrics are floats; counts have a few digits).
MAX_INT_DIGITS = 64


def describe_mode(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, words in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO, a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a regular file"


def is_pseudo_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (or what its links lead to) lies on /proc or /sys."""
    text = os.fspath(path)
    real = os.path.realpath(text)
    return any(candidate.startswith(PSEUDO_ROOTS) for candidate in (os.path.abspath(text), real))


def regular_file(
    path: str | os.PathLike[str], what: str = "file", missing: str | None = None
) -> os.stat_result:
    """The ``stat`` of ``path`` when it is a regular file; else InputError naming it.

    ``what`` names the file in messages ("checkpoint", "baseline", ...); ``missing`` replaces the whole
    message for a path that does not exist (default: ``PATH: no such WHAT``)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(missing or f"{path}: no such {what}") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"{path}: not a regular file ({describe_mode(info.st_mode)}); nc-audit reads a {what} only from a "
            "regular file"
        )
    if is_pseudo_file(path):
        raise InputError(
            f"{path}: not a regular file (a /proc or /sys pseudo-file); nc-audit reads a {what} only from a "
            "regular file"
        )
    return info


def read_capped(
    path: str | os.PathLike[str], cap: int, what: str = "file", missing: str | None = None
) -> bytes:
    """The bytes of the regular file ``path``, refused (InputError) when it holds more than ``cap``."""
    info = regular_file(path, what, missing)
    if info.st_size > cap:
        raise InputError(
            f"{path}: the {what} is {human_bytes(info.st_size)}, more than the {human_bytes(cap)} nc-audit reads"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the stat and the open
            raise InputError(f"{path}: not a regular file; nc-audit reads a {what} only from a regular file")
        chunks, total = [], 0
        while total <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as error:
        raise InputError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    finally:
        os.close(fd)
    if total > cap:
        raise InputError(f"{path}: the {what} holds more than the {human_bytes(cap)} nc-audit reads")
    return b"".join(chunks)


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in JSON text (strings ignored), without parsing it."""
    import numpy as np

    brackets = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    steps = (brackets == ord("[")).astype(np.int64) + (brackets == ord("{"))
    steps -= (brackets == ord("]")).astype(np.int64) + (brackets == ord("}"))
    return int(np.cumsum(steps).max(initial=0))


class JSONSyntaxError(InputError):
    """Text that is not JSON at all (``msg`` says why), as opposed to JSON nc-audit refuses to read."""

    def __init__(self, message: str, msg: str) -> None:
        super().__init__(message)
        self.msg = msg


class _TooManyDigitsError(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("+-"))
    if digits > MAX_INT_DIGITS:
        raise _TooManyDigitsError(digits)
    return int(text)


def parse_json(data: bytes, where: str) -> Any:
    """JSON from bytes, bounded in depth and integer size; errors name ``where`` (a path)."""
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise InputError(f"{where}: JSON nested {depth} levels deep (at most {MAX_JSON_DEPTH} are read)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JSONSyntaxError(f"{where}: not UTF-8 text (byte {error.start})", "not UTF-8 text") from None
    try:
        return json.loads(text, parse_int=_bounded_int)
    except _TooManyDigitsError as error:
        raise InputError(
            f"{where}: holds a {error.digits}-digit integer (at most {MAX_INT_DIGITS} digits are read)"
        ) from None
    except json.JSONDecodeError as error:
        raise JSONSyntaxError(
            f"{where}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})", error.msg
        ) from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise InputError(f"{where}: JSON nested too deeply") from None


def load_json(
    path: str | os.PathLike[str],
    what: str = "JSON file",
    cap: int = MAX_JSON_BYTES,
    missing: str | None = None,
) -> Any:
    """Parse the regular file ``path`` as bounded JSON (see :func:`parse_json`)."""
    return parse_json(read_capped(path, cap, what, missing), str(Path(path)))
