"""Property (hypothesis): random HDF5 graphs of soft links, external links, virtual datasets (same-file
and other-file sources, partial mappings, cycles) and raw external storage never read outside the dump.

Each example writes a dump (``dump.h5``) and a second file (``other.h5``) whose objects are random nodes
pointing at one another, plus a planted secret file (the only target of raw external storage). Without
``--allow-external-data`` every reader of the dump (``resolve_split`` and ``iter_chunks``, the ``--data``
loader, the CLI) must either refuse it (InputError; exit 2 with one line naming the dump) or return
exactly the rows stored in the dump (every in-file dataset holds ROWS): never a secret value, never a
fill value, never a crash (a cycle that reached HDF5 would segfault the test process).

Examples: INDIRECTION_EXAMPLES (about 10 s on 2 cores); ``HYPOTHESIS_PROFILE=long`` runs 10 times more.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nc_audit.cli import app
from nc_audit.core.errors import InputError
from nc_audit.io.data.user_files import _file_keys
from nc_audit.io.dumps.reader import iter_chunks, resolve_split

INDIRECTION_EXAMPLES = 30 * (10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1)
ROWS = (np.arange(24 * 2, dtype=np.float64) % 7).reshape(24, 2)  # what every in-file dataset holds
SECRET = 7777.0  # the planted file holds only this value: it must never be read
KINDS = ("real", "raw", "soft", "elink", "vds_same", "vds_other", "vds_half")
NODES = 4

node = st.tuples(st.sampled_from(KINDS), st.integers(0, NODES - 1))
graph = st.fixed_dictionaries(
    {"dump": st.lists(node, min_size=NODES, max_size=NODES), "other": st.lists(node, min_size=NODES, max_size=NODES),
     "features": st.integers(0, NODES - 1)}
)  # fmt: skip


def _vds(handle: h5py.File, name: str, file: str, source: str, half: bool) -> None:
    layout = h5py.VirtualLayout(shape=ROWS.shape, dtype="<f8")
    rows = slice(0, ROWS.shape[0] // 2) if half else slice(None)
    layout[rows] = h5py.VirtualSource(file, source, shape=ROWS.shape)[rows]
    handle.create_virtual_dataset(name, layout, fillvalue=-1.0)


def _write(path: Path, nodes: list[tuple[str, int]], other: str, secret: Path) -> None:
    """Nodes /n0../nK of one file: each a dataset or link of ``kind`` pointing at node ``target``."""
    with h5py.File(path, "w", locking=False) as handle:
        for index, (kind, target) in enumerate(nodes):
            name, to = f"n{index}", f"n{target}"
            if kind == "real":
                handle[name] = ROWS
            elif kind == "raw":
                handle.create_dataset(
                    name, shape=ROWS.shape, dtype="<f8", external=[(str(secret), 0, ROWS.nbytes)]
                )
            elif kind == "soft":
                handle[name] = h5py.SoftLink(f"/{to}")
            elif kind == "elink":
                handle[name] = h5py.ExternalLink(other, f"/{to}")
            else:
                file = other if kind == "vds_other" else "."
                _vds(handle, name, file, to, kind == "vds_half")


def _build(folder: Path, drawn: dict) -> Path:
    secret = folder / "secret.bin"
    secret.write_bytes(np.full(ROWS.shape, SECRET).tobytes())
    dump, other = folder / "dump.h5", folder / "other.h5"
    _write(other, drawn["other"], dump.name, secret)
    _write(dump, drawn["dump"], other.name, secret)
    with h5py.File(dump, "a", locking=False) as handle:
        handle["features"] = h5py.SoftLink(f"/n{drawn['features']}")
        handle["labels"] = np.arange(ROWS.shape[0]) % 2
        handle["head/weight"] = np.eye(2)
        handle["head/bias"] = np.zeros(2)
    return dump


def _dump_rows(dump: Path) -> np.ndarray | None:
    try:
        info = resolve_split(dump, None)
        return np.concatenate([f.numpy() for f, _ in iter_chunks(info, chunk_rows=5)])
    except InputError as error:
        assert str(error).startswith(f"{dump}: ") and "\n" not in str(error), str(error)
        return None


@pytest.mark.slow  # a property: make test keeps this class's example cases; make test-all runs it
@settings(
    max_examples=INDIRECTION_EXAMPLES,
    derandomize=os.environ.get("HYPOTHESIS_PROFILE") != "long",
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(graph)
def test_random_indirection_graphs_never_read_outside_the_dump(drawn: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dump = _build(folder, drawn)
        note(repr(drawn))
        rows = _dump_rows(dump)
        if rows is not None:  # measured: exactly the dump's own rows, nothing from elsewhere
            np.testing.assert_array_equal(rows, ROWS)
        try:  # the --data loader reads every dataset of the file
            arrays, _ = _file_keys(dump)
        except InputError as error:
            assert str(error).startswith(f"{dump}: ") and "\n" not in str(error), str(error)
        else:
            for key, array in arrays.items():
                if key.startswith("n") or key == "features":
                    np.testing.assert_array_equal(array, ROWS, err_msg=key)
        result = CliRunner().invoke(app, ["measure", str(dump), "--format", "json", "--no-progress"])
        assert result.exit_code in (0, 2), result.output
        assert result.exit_code == (0 if rows is not None else 2), result.output
        assert str(SECRET) not in result.output and "7777" not in result.output
