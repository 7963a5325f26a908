"""The splits a streamed ``--data`` source offers (nc_audit.io.data.stream_spec): an image folder's
``train/``, ``test/``... folders, a datasets folder's DatasetDict splits; a source without splits of its
own (a folder of classes, one table, a callable) is whichever split is asked for."""

from __future__ import annotations

from pathlib import Path

from nc_audit.io.data import image_folder, tables
from nc_audit.io.data.stream_spec import StreamSpec


def source_splits(spec: StreamSpec) -> tuple[list[str], bool]:
    """(the splits ``spec`` offers, whether they are its own: False for a source that is any split)."""
    path = Path(spec.source).expanduser()
    if spec.kind == "images":
        found = image_folder.splits_of(path)
        return list(found), found.get("train") != path
    if spec.kind == "hf":
        found = tables.hf_splits(path)
        return list(found), found.get("train") != path
    return ["train"], False
