"""Which ``--data`` specs name a streamed source, without importing torch: an image folder, a Hugging
Face ``datasets`` folder (``save_to_disk``), a Parquet or JSONL table, or the user's own
``module:callable`` / ``file.py:callable`` returning a ``torch.utils.data.Dataset`` or ``DataLoader``.

A streamed spec is ``SOURCE`` or ``SOURCE?KEY=VALUE&KEY=VALUE...``; the command line builds the query
from ``--data-arg KEY=VALUE``, ``--workers``, ``--text-column`` and ``--label-column``
(:func:`compose`). ``workers`` is how the data is read, not what it is: it is left out of
:attr:`StreamSpec.identity` (the feature-cache key), every other argument is in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nc_audit.core.errors import InputError

#: Table files read row by row (io/data/tables.py).
TABLE_SUFFIXES: tuple[str, ...] = (".parquet", ".jsonl")
#: Files a Hugging Face ``save_to_disk`` folder holds at its top (a Dataset, a DatasetDict).
HF_MARKERS: tuple[str, ...] = ("state.json", "dataset_dict.json")
#: Argument keys that say how to read, not what is read (kept out of the identity).
READ_ONLY_KEYS: frozenset[str] = frozenset({"workers"})
_BUILTINS = ("digits", "gaussian", "modadd")  # nc_audit.io.data.datasets.BUILTIN_DATASETS (torch-free here)
_CALLABLE = re.compile(
    r"(?P<target>.+\.py|[A-Za-z_]\w*(\.[A-Za-z_]\w*)*):(?P<name>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)"
)
_KEY = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class StreamSpec:
    """A streamed source: its family (images, hf, table, callable), where it is, and its arguments."""

    kind: str
    source: str
    args: tuple[tuple[str, str], ...]

    def arg(self, key: str, default: str | None = None) -> str | None:
        """The text of argument ``key``, or ``default``."""
        return dict(self.args).get(key, default)

    @property
    def workers(self) -> int:
        """DataLoader worker processes (``--workers``; 0 reads in this process)."""
        text = self.arg("workers", "0") or "0"
        if not text.isdigit() or int(text) > 64:
            raise InputError(f"--workers {text}: must be an integer from 0 to 64")
        return int(text)

    @property
    def identity(self) -> str:
        """The spec without the arguments that only say how to read (a cache-key part, before content)."""
        kept = [f"{k}={v}" for k, v in self.args if k not in READ_ONLY_KEYS]
        return f"{self.kind}:{self.source}" + ("?" + "&".join(kept) if kept else "")


def _kind(source: str) -> str | None:
    path = Path(source).expanduser()
    if source.lower().endswith(TABLE_SUFFIXES):
        return "table"
    if path.is_dir():
        return "hf" if any((path / name).is_file() for name in HF_MARKERS) else "images"
    match = _CALLABLE.fullmatch(source)
    if match and match["target"] not in _BUILTINS:
        return "callable"
    return None


def parse_args(query: str, spec: str) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE&KEY=VALUE`` as sorted pairs; a malformed or repeated key is an InputError."""
    pairs: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise InputError(f"--data {spec}: argument {item!r} is not KEY=VALUE (KEY an identifier)")
        if key in pairs:
            raise InputError(f"--data {spec}: argument {key!r} given twice")
        pairs[key] = value
    return tuple(sorted(pairs.items()))


def parse_stream_spec(spec: str | None) -> StreamSpec | None:
    """The streamed source ``spec`` names, or None (a built-in, an .npz/.h5 file, or unknown)."""
    if not spec:
        return None
    source, _, query = spec.partition("?")
    source = source.strip()  # a value's own spaces are kept
    kind = _kind(source)
    if kind is None:
        return None
    return StreamSpec(kind, source, parse_args(query, spec))


def compose(
    data: str | None,
    data_args: list[str] | tuple[str, ...] | None = None,
    *,
    workers: int | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> str | None:
    """``data`` with ``--data-arg`` items, ``--workers`` and the column options appended as its query.

    The options are refused for a spec that is not streamed (a built-in or an .npz/.h5 file), so that
    no option is silently ignored."""
    extra = [item for item in data_args or ()]
    extra += [f"workers={workers}"] if workers else []
    extra += [f"label_column={label_column}"] if label_column else []
    parsed = parse_stream_spec(data)
    if parsed is not None and parsed.kind in ("hf", "table") and text_column:
        extra.append(f"text_column={text_column}")  # the option's default ("text") included
    if not extra or data is None:
        if extra:
            raise InputError("--data-arg, --workers and --label-column need --data")
        return data
    if parsed is None:
        raise InputError(
            f"--data {data}: --data-arg, --workers and --label-column apply to an image folder, a datasets "
            "folder, a .parquet/.jsonl table or a module:callable, not to a built-in or an .npz/.h5 file"
        )
    joined = "&".join([f"{k}={v}" for k, v in parsed.args] + extra)
    parse_args(joined, data)  # a key given twice is refused here
    return f"{parsed.source}?{joined}"
