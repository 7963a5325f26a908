"""Round-2 hostile cases (issue 19, classes 2, 5, 6, 7 and 8): host bytes through HDF5 indirection, cycles,
unmapped and unwritten rows, declared sizes of virtual datasets, inflation and attribute bombs, and shard
indexes of Hugging Face folders. Registered with the corpus by ``generate.py``; documented in README.md.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import h5py
import numpy as np
from generate import TRANSFORMERS_LOCK, Case, case, copy_sample, hdf5, make_fifo, sample_arrays

PASSWD = "/etc/passwd"


# --- building blocks ------------------------------------------------------------------------------------
def _passwd_rows(width: int) -> int:
    return max(1, min(os.path.getsize(PASSWD) // (4 * width), 64))


def _raw_passwd(handle: h5py.File, name: str, width: int) -> tuple[int, int]:
    """``name``: float32 raw external storage on /etc/passwd, (rows, width)."""
    rows = _passwd_rows(width)
    handle.create_dataset(name, shape=(rows, width), dtype="<f4", external=[(PASSWD, 0, rows * width * 4)])
    return rows, width


def _vds(
    handle: h5py.File, name: str, source: str, shape: tuple[int, ...], file: str = ".", **kw: object
) -> None:
    """``name``: a virtual dataset mapping the whole of ``file``:``source`` (shape ``shape``)."""
    layout = h5py.VirtualLayout(shape=shape, dtype="<f4")
    layout[...] = h5py.VirtualSource(file, source, shape=shape, dtype="<f4")
    handle.create_virtual_dataset(name, layout, fillvalue=0, **kw)


def _small_head(handle: h5py.File, width: int) -> None:
    rng = np.random.default_rng(0)
    handle["head/weight"] = rng.normal(size=(2, width))
    handle["head/bias"] = np.zeros(2)


def _measured(name: str, dump: Path, description: str, fragments: list[str], section: int = 2,
              opt_in: bool = False) -> Case:  # fmt: skip
    runs = [["measure", str(dump), "--format", "json", "--no-progress"]]
    if opt_in:
        runs.append([*runs[0], "--allow-external-data"])
    return Case(
        name, section, description, runs, "error", culprits=[dump.name], fragments=fragments, timeout=20
    )


def _data_file(path: Path, build: object) -> Path:
    """A ``--data`` HDF5 file for the sample checkpoint (inputs (n, 64), labels (n,)): ``build(handle)``
    writes /inputs, this writes /labels to match it."""
    with hdf5(path, "w") as handle:
        build(handle)  # type: ignore[operator]
        rows = int(handle["inputs"].shape[0])
        handle["labels"] = (np.arange(rows) % 10).astype(np.int8)
    return path


# --- 2. host bytes through indirection in the same file ----------------------------------------------------
@case
def case_vds_same_file_passwd(root: Path) -> Case:
    dump = root / "vds_same_file.h5"
    with hdf5(dump, "w") as handle:
        shape = _raw_passwd(handle, "raw", 2)
        _vds(handle, "features", "raw", shape)
        handle["labels"] = np.arange(shape[0]) % 2
        _small_head(handle, 2)
    return _measured(
        "vds_same_file_passwd", dump,
        "/features is a virtual dataset whose source, in the same file, is raw external storage on /etc/passwd: "
        "refused naming the chain and /etc/passwd",
        ["/features", "/etc/passwd"],
    )  # fmt: skip


@case
def case_vds_soft_link_passwd(root: Path) -> Case:
    dump = root / "vds_soft.h5"
    with hdf5(dump, "w") as handle:
        shape = _raw_passwd(handle, "hidden/raw", 2)
        handle["alias"] = h5py.SoftLink("/hidden/raw")
        _vds(handle, "features", "alias", shape)
        handle["labels"] = np.arange(shape[0]) % 2
        _small_head(handle, 2)
    return _measured(
        "vds_soft_link_passwd", dump,
        "/features is a virtual dataset whose same-file source is a soft link to raw external storage on "
        "/etc/passwd: refused",
        ["/features", "/etc/passwd"],
    )  # fmt: skip


@case
def case_vds_external_link_passwd(root: Path) -> Case:
    other = root / "other.h5"
    with hdf5(other, "w") as handle:
        shape = _raw_passwd(handle, "raw", 2)
    dump = root / "vds_elink.h5"
    with hdf5(dump, "w") as handle:
        handle["lnk"] = h5py.ExternalLink(other.name, "/raw")
        _vds(handle, "features", "lnk", shape)
        handle["labels"] = np.arange(shape[0]) % 2
        _small_head(handle, 2)
    return _measured(
        "vds_external_link_passwd", dump,
        "/features is a virtual dataset whose same-file source is an external link to other.h5:/raw, raw "
        "external storage on /etc/passwd: refused at the link",
        ["/features", "other.h5"],
    )  # fmt: skip


@case
def case_vds_of_vds_passwd(root: Path) -> Case:
    dump = root / "vds_of_vds.h5"
    with hdf5(dump, "w") as handle:
        shape = _raw_passwd(handle, "raw", 2)
        _vds(handle, "mid", "raw", shape)
        _vds(handle, "features", "mid", shape)
        handle["labels"] = np.arange(shape[0]) % 2
        _small_head(handle, 2)
    return _measured(
        "vds_of_vds_passwd", dump,
        "/features is a virtual dataset of a virtual dataset (/mid) of raw external storage on /etc/passwd: "
        "refused naming the chain",
        ["/features -> mid -> raw", "/etc/passwd"],
    )  # fmt: skip


@case
def case_vds_labels_passwd(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "vds_labels.h5"
    rows = os.path.getsize(PASSWD) // 8
    with hdf5(dump, "w") as handle:
        handle["features"] = arrays["features"][:rows]
        handle.create_dataset("raw", shape=(rows,), dtype="<i8", external=[(PASSWD, 0, rows * 8)])
        layout = h5py.VirtualLayout(shape=(rows,), dtype="<i8")
        layout[:] = h5py.VirtualSource(".", "raw", shape=(rows,), dtype="<i8")
        handle.create_virtual_dataset("labels", layout)
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return _measured(
        "vds_labels_passwd", dump,
        "/labels is a virtual dataset of raw external int64 storage on /etc/passwd (labels decoded from host "
        "bytes): refused",
        ["/labels", "/etc/passwd"],
    )  # fmt: skip


# --- 6. cycles -----------------------------------------------------------------------------------------
@case
def case_vds_self_cycle(root: Path) -> Case:
    dump = root / "vds_self.h5"
    with hdf5(dump, "w") as handle:
        _vds(handle, "features", "features", (100, 2))
        handle["labels"] = np.arange(100) % 2
        _small_head(handle, 2)
    return _measured(
        "vds_self_cycle", dump,
        "/features is a virtual dataset whose source is itself (HDF5 recursed until a segfault, exit 139): "
        "refused as a cycle, with and without --allow-external-data",
        ["/features", "lead back"], section=6, opt_in=True,
    )  # fmt: skip


@case
def case_vds_cycle_ab(root: Path) -> Case:
    dump = root / "vds_ab.h5"
    with hdf5(dump, "w") as handle:
        _vds(handle, "b", "features", (100, 2))
        _vds(handle, "features", "b", (100, 2))
        handle["labels"] = np.arange(100) % 2
        _small_head(handle, 2)
    return _measured(
        "vds_cycle_ab", dump,
        "/features → /b → /features (virtual datasets in a cycle, one file): refused as a cycle",
        ["/features", "lead back"], section=6, opt_in=True,
    )  # fmt: skip


@case
def case_vds_cycle_two_files(root: Path) -> Case:
    first, second = root / "cycle_a.h5", root / "cycle_b.h5"
    with hdf5(second, "w") as handle:
        _vds(handle, "x", "features", (100, 2), file=first.name)
    with hdf5(first, "w") as handle:
        _vds(handle, "features", "x", (100, 2), file=second.name)
        handle["labels"] = np.arange(100) % 2
        _small_head(handle, 2)
    return Case(
        "vds_cycle_two_files", 6,
        "cycle_a.h5:/features reads cycle_b.h5:/x, which reads cycle_a.h5:/features: refused as another "
        "file by default, as a cycle with --allow-external-data",
        [["measure", str(first), "--no-progress"],
         ["measure", str(first), "--no-progress", "--allow-external-data"]],
        "error", culprits=[first.name], fragments=["/features"], timeout=20,
    )  # fmt: skip


@case
def case_vds_unlimited_self(root: Path) -> Case:
    unlimited = h5py.h5s.UNLIMITED
    dump = root / "vds_unlimited.h5"
    with hdf5(dump, "w") as handle:
        spaces = []
        for _ in range(2):
            space = h5py.h5s.create_simple((100, 2), (unlimited, 2))
            space.select_hyperslab((0, 0), (unlimited, 1), (1, 1), (1, 2))
            spaces.append(space)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_virtual(spaces[0], b".", b"features", spaces[1])
        h5py.h5d.create(handle.id, b"features", h5py.h5t.IEEE_F32LE, spaces[0], dcpl=dcpl)
        handle["labels"] = np.arange(100) % 2
        _small_head(handle, 2)
    return _measured(
        "vds_unlimited_self", dump,
        "/features is a virtual dataset with an unlimited mapping of itself (its extent is computed from its "
        "sources, i.e. from itself): refused from its mapping",
        ["/features", "unlimited mapping"], section=6, opt_in=True,
    )  # fmt: skip


# --- 5. rows that were never stored ------------------------------------------------------------------------
@case
def case_vds_unmapped_region(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "vds_half.h5"
    with hdf5(dump, "w") as handle:
        handle["real"] = arrays["features"][:200].astype("<f4")
        layout = h5py.VirtualLayout(shape=(400, 64), dtype="<f4")
        layout[:200] = h5py.VirtualSource(".", "real", shape=(200, 64), dtype="<f4")
        handle.create_virtual_dataset("features", layout, fillvalue=0)
        handle["labels"] = arrays["labels"][:400]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return _measured(
        "vds_unmapped_region", dump,
        "/features is a (400, 64) virtual dataset mapping only its first 200 rows (the rest would read as the "
        "fill value: 200 of 400 rows invented): refused",
        ["/features", "no source maps"], section=5, opt_in=True,
    )  # fmt: skip


@case
def case_chunked_unwritten(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "unwritten.h5"
    with hdf5(dump, "w") as handle:
        features = handle.create_dataset("features", shape=(400, 64), dtype="<f4", chunks=(50, 64))
        features[:200] = arrays["features"][:200]
        handle["labels"] = arrays["labels"][:400]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return _measured(
        "chunked_unwritten", dump,
        "/features (400, 64) in chunks of 50 rows of which only the first 4 were written: refused (never "
        "read as rows of the fill value)",
        ["/features", "4 of its 8 chunks"], section=5,
    )  # fmt: skip


@case
def case_contiguous_unallocated(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "unallocated.h5"
    with hdf5(dump, "w") as handle:
        handle.create_dataset("features", shape=(400, 64), dtype="<f4")  # never written: no storage
        handle["labels"] = arrays["labels"][:400]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return _measured(
        "contiguous_unallocated", dump,
        "/features is a contiguous (400, 64) dataset that was never written (no storage allocated): refused",
        ["/features", "never written"], section=5,
    )  # fmt: skip


# --- 7. a virtual dataset declaring far more than is stored ----------------------------------------------------
@case
def case_vds_tall(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "vds_1e9x64.h5"
    with hdf5(dump, "w") as handle:
        handle["real"] = arrays["features"][:100].astype("<f4")
        layout = h5py.VirtualLayout(shape=(10**9, 64), dtype="<f4")
        layout[:100] = h5py.VirtualSource(".", "real", shape=(100, 64), dtype="<f4")
        handle.create_virtual_dataset("features", layout, fillvalue=0)
        handle.create_dataset("labels", shape=(10**9,), dtype="<i8", chunks=(4096,))
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return _measured(
        "vds_tall", dump,
        f"a {dump.stat().st_size // 1024} KB dump declaring a (1e9, 64) virtual dataset (100 rows mapped; "
        "the sparse-size check skipped virtual datasets and fill values streamed for minutes): refused at once",
        ["/features"], section=7,
    )  # fmt: skip


@case
def case_vds_tall_sparse_source(root: Path) -> Case:
    arrays = sample_arrays()
    dump = root / "vds_sparse_source.h5"
    with hdf5(dump, "w") as handle:
        handle.create_dataset("sparse", shape=(10**9, 64), dtype="<f4", chunks=(4096, 64))
        _vds(handle, "features", "sparse", (10**9, 64))
        handle.create_dataset("labels", shape=(10**9,), dtype="<i8", chunks=(4096,))
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
    return _measured(
        "vds_tall_sparse_source", dump,
        f"a {dump.stat().st_size // 1024} KB dump whose (1e9, 64) virtual dataset maps all of a same-file "
        "chunked source that stores no chunk: refused at the source",
        ["/features -> sparse", "0 of its"], section=7,
    )  # fmt: skip


# --- 8. inflation and attribute bombs --------------------------------------------------------------------
@case
def case_data_gzip_bomb(root: Path) -> Case:
    pt, _ = copy_sample(root)
    data = root / "bomb.h5"
    rows = 1_200_000

    def build(handle: h5py.File) -> None:
        inputs = handle.create_dataset("inputs", shape=(rows, 64), dtype="<f4", chunks=(65536, 64),
                                       compression="gzip", compression_opts=9)  # fmt: skip
        zeros = np.zeros((65536, 64), np.float32)
        for begin in range(0, rows, 65536):
            inputs[begin : begin + 65536] = zeros[: rows - begin]
        handle["pad"] = np.random.default_rng(0).integers(0, 255, 3 << 20, dtype=np.uint8)  # incompressible

    _data_file(data, build)
    return Case(
        "data_gzip_bomb", 8,
        f"--data bomb.h5: a {data.stat().st_size // 1024} KB gzip HDF5 file whose arrays inflate to 297 MiB (under "
        "the 1000x ratio, over the byte cap of what it may inflate beyond itself): refused before inflating",
        [["measure", str(pt), "--data", str(data), "--no-progress"],
         ["extract", str(pt), "--data", str(data), "--out", str(root / "out.h5"), "--no-progress"]],
        "error", culprits=[data.name], fragments=["more than it stores"], outputs=["out.h5"], timeout=30,
    )  # fmt: skip


@case
def case_head_name_100mb(root: Path) -> Case:
    dump = root / "head_name.h5"
    arrays = sample_arrays()
    with hdf5(dump, "w") as handle:
        handle["features"], handle["labels"] = arrays["features"], arrays["labels"]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
        handle["head"].attrs["name"] = "h" * 100_000_000  # a variable-length string: 100 MB in the heap
    return _measured(
        "head_name_100mb", dump,
        "/head's name attribute is a 100 MB variable-length string (2 GB of memory, 105 MB printed): refused "
        "before reading it",
        ["name attribute"], section=8,
    )  # fmt: skip


@case
def case_head_name_fixed_20mb(root: Path) -> Case:
    dump = root / "head_name_fixed.h5"
    arrays = sample_arrays()
    with h5py.File(dump, "w", libver="latest", locking=False) as handle:  # dense attributes: no 64 KB limit
        handle["features"], handle["labels"] = arrays["features"], arrays["labels"]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
        handle["head"].attrs["name"] = np.bytes_(b"h" * 20_000_000)  # fixed length: 20 MB of storage
    return _measured(
        "head_name_fixed_20mb", dump,
        "/head's name attribute is a 20 MB fixed-length string: refused from its stored size, before reading",
        ["name attribute", "20000000 bytes"], section=8,
    )  # fmt: skip


@case
def case_root_attr_50mb(root: Path) -> Case:
    dump = root / "root_attr.h5"
    arrays = sample_arrays()
    with h5py.File(dump, "w", libver="latest", locking=False) as handle:  # dense attributes: no 64 KB limit
        handle["features"], handle["labels"] = arrays["features"], arrays["labels"]
        handle["head/weight"], handle["head/bias"] = arrays["W"], arrays["b"]
        handle.attrs["dataset"] = "d" * 50_000_000
        handle.attrs["notes"] = np.array(["n" * 10] * 100_000, dtype=h5py.string_dtype())
    return Case(
        "root_attr_50mb", 8,
        "a dump whose root 'dataset' attribute is a 50 MB string and 'notes' an array of 100,000 strings: "
        "neither is read (their size is not bounded before reading), the dump is measured",
        [["measure", str(dump), "--format", "json", "--no-progress"]],
        "ok", timeout=30,
    )  # fmt: skip


# --- the same through --data, track and extract ---------------------------------------------------------
@case
def case_data_vds_passwd(root: Path) -> Case:
    pt, _ = copy_sample(root)

    def build(handle: h5py.File) -> None:
        shape = _raw_passwd(handle, "raw", 64)
        _vds(handle, "inputs", "raw", shape)

    data = _data_file(root / "data.h5", build)
    out = root / "out.h5"
    return Case(
        "data_vds_passwd", 2,
        "--data data.h5 whose /inputs is a same-file virtual dataset of raw external storage on /etc/passwd: "
        "refused by measure, extract and finetune",
        [["measure", str(pt), "--data", str(data), "--no-progress"],
         ["extract", str(pt), "--data", str(data), "--out", str(out), "--no-progress"],
         ["finetune", str(pt), "--data", str(data), "--cma-weight", "0.1", "--epochs", "1", "--out",
          str(root / "ft"), "--no-progress"]],
        "error", culprits=[data.name], fragments=["/inputs", "/etc/passwd"], outputs=["out.h5", "ft", "ft/*"],
        timeout=20,
    )  # fmt: skip


@case
def case_data_vds_self_cycle(root: Path) -> Case:
    pt, _ = copy_sample(root)
    data = _data_file(root / "cycle.h5", lambda handle: _vds(handle, "inputs", "inputs", (100, 64)))
    return Case(
        "data_vds_self_cycle", 6,
        "--data cycle.h5 whose /inputs is a virtual dataset of itself: refused as a cycle (measure, extract)",
        [["measure", str(pt), "--data", str(data), "--no-progress"],
         ["extract", str(pt), "--data", str(data), "--out", str(root / "out.h5"), "--no-progress"]],
        "error", culprits=[data.name], fragments=["/inputs", "lead back"], outputs=["out.h5"], timeout=20,
    )  # fmt: skip


@case
def case_data_chunked_unwritten(root: Path) -> Case:
    pt, _ = copy_sample(root)

    def build(handle: h5py.File) -> None:
        inputs = handle.create_dataset("inputs", shape=(400, 64), dtype="<f4", chunks=(50, 64))
        inputs[:200] = sample_arrays()["features"][:200]

    data = _data_file(root / "half.h5", build)
    return Case(
        "data_chunked_unwritten", 5,
        "--data half.h5 whose /inputs stores 4 of its 8 chunks (200 of 400 rows never written): refused",
        [["measure", str(pt), "--data", str(data), "--no-progress"]],
        "error", culprits=[data.name], fragments=["/inputs", "4 of its 8 chunks"], timeout=20,
    )  # fmt: skip


@case
def case_track_vds_passwd(root: Path) -> Case:
    copy_sample(root, "0150")
    _, dump = copy_sample(root)
    dump.unlink()
    with hdf5(dump, "w") as handle:
        shape = _raw_passwd(handle, "raw", 64)
        _vds(handle, "features", "raw", shape)
        handle["labels"] = np.arange(shape[0]) % 10
    return Case(
        "track_vds_passwd", 2,
        "track DIR where epoch_0300.h5 (beside its checkpoint) holds a same-file virtual dataset of raw "
        "external storage on /etc/passwd: refused naming it",
        [["track", str(root), "--no-progress"]],
        "error", culprits=[dump.name], fragments=["/features", "/etc/passwd"], timeout=30,
    )  # fmt: skip


# --- 2. shard indexes of Hugging Face folders ---------------------------------------------------------------
def _tiny_bert() -> tuple[dict[str, object], dict[str, object]]:
    """config.json and the state dict of a tiny BERT classifier (2 classes), built once: cases are
    generated from threads, and neither lru_cache nor transformers' lazy module is safe under them."""
    with TRANSFORMERS_LOCK:
        return _build_tiny_bert()


@functools.lru_cache(maxsize=1)
def _build_tiny_bert() -> tuple[dict[str, object], dict[str, object]]:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=8, num_labels=2)  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    state = {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    return config.to_dict(), state


def _sharded_folder(root: Path, shard: str) -> tuple[Path, Path]:
    """An HF folder whose index sends the classifier's tensors to ``shard``, and a text data file."""
    from safetensors.torch import save_file

    config, state = _tiny_bert()
    folder = root / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({**config, "architectures": ["BertForSequenceClassification"]})
    )
    body = {k: v for k, v in state.items() if not k.startswith("classifier")}
    save_file(body, str(folder / "model-00001-of-00002.safetensors"))
    weight_map = {key: "model-00001-of-00002.safetensors" for key in body}
    weight_map.update({key: shard for key in state if key.startswith("classifier")})
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    rng = np.random.default_rng(0)
    data = root / "text.npz"
    np.savez(data, input_ids=rng.integers(5, 50, (16, 8)), labels=np.arange(16) % 2)
    return folder, data


def _shard_case(name: str, root: Path, shard: str, description: str) -> Case:
    folder, data = _sharded_folder(root, shard)
    index = folder / "model.safetensors.index.json"
    return Case(
        name, 2, description,
        [["measure", str(folder), "--data", str(data), "--no-progress"]],
        "error", culprits=[index.name], fragments=["shard"], timeout=60,
    )  # fmt: skip


@case
def case_shard_dotdot(root: Path) -> Case:
    from safetensors.torch import save_file

    _, state = _tiny_bert()
    (root / "outside").mkdir()
    save_file({k: v for k, v in state.items() if k.startswith("classifier")}, str(root / "outside" / "x"))
    return _shard_case(
        "shard_dotdot",
        root,
        "../outside/x",
        "an HF folder whose model.safetensors.index.json names the shard ../outside/x (a real safetensors file "
        "outside the folder): refused by nc-audit's own reader",
    )


@case
def case_shard_absolute(root: Path) -> Case:
    return _shard_case(
        "shard_absolute",
        root,
        PASSWD,
        "an HF folder whose shard index names the absolute shard /etc/passwd: refused, no byte of it printed",
    )


@case
def case_shard_symlink(root: Path) -> Case:
    from safetensors.torch import save_file

    _, state = _tiny_bert()
    (root / "outside").mkdir()
    save_file({k: v for k, v in state.items() if k.startswith("classifier")}, str(root / "outside" / "x"))
    made = _shard_case(
        "shard_symlink",
        root,
        "model-00002-of-00002.safetensors",
        "an HF folder whose second shard is a symlink to ../outside/x (leaving the folder): refused",
    )
    os.symlink(root / "outside" / "x", root / "hf" / "model-00002-of-00002.safetensors")
    return made


@case
def case_shard_fifo(root: Path) -> Case:
    made = _shard_case(
        "shard_fifo",
        root,
        "model-00002-of-00002.safetensors",
        "an HF folder whose second shard is a FIFO nobody writes to: refused (not a regular file), never hangs",
    )
    make_fifo(root / "hf" / "model-00002-of-00002.safetensors")
    return made


#: The cases `make test` runs; the other variants of this class are marked slow (`make test-all`, CI).
FAST = (
    "vds_same_file_passwd",
    "vds_self_cycle",
    "vds_unmapped_region",
    "shard_dotdot",
)
