"""Round 2 (issue 19), classes 3 and 4: feature-cache entries nc-audit did not write, and outputs over
inputs the output check did not know (model folder files, --model source, HDF5 link targets, prune and
study outputs, GITHUB_STEP_SUMMARY). README: "Cache entries and outputs over inputs".

The planted cache entries are written where an attacker would put them: at the entry name computed
offline (sha256 of the checkpoint's bytes + the dataset spec + the splits), holding a dump at Neural
Collapse, so that a run that trusted it would pass ``--fail-on nc1<=0.01``; the real value (0.187) fails.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

import numpy as np
from generate import SAMPLES, SLOW_CASES, Case, case, copy_sample, hdf5

GATE = "nc1<=0.01"
GATE_RULE = "nc1 <= 0.01"


def _key_env(root: Path) -> dict[str, str]:
    """This run's own cache key, outside the case folder (the harness checks every file inside it)."""
    return {"NC_AUDIT_CACHE_KEY": str(root.parent / f"{root.name}.cache.key")}


def entry_name(checkpoint: Path, spec: str = "digits:layout=flat", splits: str = "test,train") -> str:
    """The cache entry name of (checkpoint bytes, dataset, splits), computed offline as an attacker would."""
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    key = hashlib.sha256("\n".join([sha, spec, splits, "", ""]).encode()).hexdigest()[:20]
    return f"{sha[:12]}-{key}.h5"


def plant_collapsed(path: Path, checkpoint: Path, *, attrs: bool) -> Path:
    """A dump at Neural Collapse for the sample epoch 1: every feature 3·w_y (+1e-6 noise), its head."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with hdf5(SAMPLES / "epoch_0001.h5", "r") as source, hdf5(path, "w") as dump:
        W = source["head/weight"][...]
        dump["head/weight"], dump["head/bias"] = W, source["head/bias"][...]
        for split in ("train", "test"):
            labels = source[f"{split}/labels"][...]
            features = 3.0 * W[labels] + 1e-6 * rng.normal(size=(labels.size, W.shape[1]))
            dump[f"{split}/features"] = features.astype(np.float32)
            dump[f"{split}/labels"] = labels
        if attrs:  # every attribute nc-audit writes, claiming this checkpoint and dataset
            dump.attrs["format"] = "nc-audit-features/1"
            dump.attrs["checkpoint_sha256"] = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
            dump.attrs["checkpoint_path"] = checkpoint.name
            dump.attrs["dataset"] = "digits:layout=flat"
            dump.attrs["head"] = "head"
            dump.attrs["created_by"] = "nc-audit 0.1.0"
    return path


def _cache_case(name: str, description: str, root: Path, invocation: list[str]) -> Case:
    return Case(
        name, 3, description, [invocation], "gate", outputs=[], timeout=120,
        extra={"failed_rules": [GATE_RULE], "env": _key_env(root)},
    )  # fmt: skip


@case
def case_cache_planted_pyproject(root: Path) -> Case:
    pt, _ = copy_sample(root, "0001", name="untrained")
    (root / "pyproject.toml").write_text('[tool.nc-audit]\ncache-dir = "ci-cache"\n')
    plant_collapsed(root / "ci-cache" / entry_name(pt), pt, attrs=False)
    return _cache_case(
        "cache_planted_pyproject",
        "a pull request's pyproject.toml sets cache-dir to a folder it ships, holding a collapsed dump (no "
        "attributes) at the entry name computed offline: ignored and left as it is, the real nc1 (0.187) "
        "measured, the gate nc1<=0.01 fails (exit 1)",
        root,
        ["measure", str(pt), "--data", "digits", "--fail-on", GATE, "--format", "json", "--no-progress"],
    )


@case
def case_cache_forged_attributes(root: Path) -> Case:
    pt, _ = copy_sample(root, "0001", name="untrained")
    cache = root / "cache"
    plant_collapsed(cache / entry_name(pt), pt, attrs=True)
    return _cache_case(
        "cache_forged_attributes",
        "--cache-dir holding a collapsed dump whose attributes claim the right checkpoint sha256 and dataset, "
        "without a proof: ignored, the real nc1 measured, gate fails (exit 1)",
        root, ["measure", str(pt), "--data", "digits", "--cache-dir", str(cache), "--fail-on", GATE,
               "--format", "json", "--no-progress"],
    )  # fmt: skip


@case
def case_cache_other_users_proof(root: Path) -> Case:
    pt, _ = copy_sample(root, "0001", name="untrained")
    cache = root / "cache"
    entry = plant_collapsed(cache / entry_name(pt), pt, attrs=True)
    other_key = os.urandom(32)  # "another user's" key: the proof is well formed, the HMAC is not this user's
    fields = {"entry": entry.name, "checkpoint_sha256": hashlib.sha256(pt.read_bytes()).hexdigest(),
              "dataset": "digits:layout=flat", "splits": "test,train", "model": "", "head": "", "model_args": ""}  # fmt: skip
    digest, size = hashlib.sha256(entry.read_bytes()).hexdigest(), entry.stat().st_size
    message = json.dumps({"v": 1, "fields": dict(sorted(fields.items())), "sha256": digest, "size": size},
                         sort_keys=True, separators=(",", ":"))  # fmt: skip
    mac = hmac.new(other_key, message.encode(), hashlib.sha256).hexdigest()
    proof = {"v": 1, "fields": fields, "sha256": digest, "size": size, "hmac": mac}
    (cache / f"{entry.name}.proof").write_text(json.dumps(proof))
    return _cache_case(
        "cache_other_users_proof",
        "a collapsed entry with a well-formed proof signed by another user's key (copied from another "
        "machine): ignored and left as it is, the real nc1 measured, gate fails (exit 1)",
        root, ["measure", str(pt), "--data", "digits", "--cache-dir", str(cache), "--fail-on", GATE,
               "--format", "json", "--no-progress"],
    )  # fmt: skip


for _name in ("cache_planted_pyproject", "cache_forged_attributes", "cache_other_users_proof"):
    SLOW_CASES[_name] = "extracts the digits features (a forward pass) because the planted entry is refused"


# --- outputs over inputs ------------------------------------------------------------------------------------
def _hf_folder(root: Path) -> Path:
    folder = root / "hf"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert", "num_labels": 10}\n')
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return folder


def _zoo(root: Path) -> Path:
    path = root / "zoo.py"
    path.write_text("import torch\n\n\ndef build(**kwargs):\n    return torch.nn.Linear(64, 10)\n")
    return path


def _refused(name: str, description: str, invocations: list[list[str]], output: str, source: str,
             env: dict[str, str] | None = None) -> Case:  # fmt: skip
    """exit 2, one line naming the output and the input it would overwrite; every input unchanged."""
    return Case(
        name, 4, description, invocations, "error", culprits=[output], fragments=[output, source],
        extra={"env": env} if env else {},
    )  # fmt: skip


@case
def case_json_onto_hf_config(root: Path) -> Case:
    hf = _hf_folder(root)
    return _refused(
        "json_onto_hf_config", "measure HF --data digits --json HF/config.json: a file of the model folder",
        [["measure", str(hf), "--data", "digits", "--json", str(hf / "config.json"), "--no-progress"]],
        "config.json", "input folder",
    )  # fmt: skip


@case
def case_markdown_onto_hf_weights(root: Path) -> Case:
    hf = _hf_folder(root)
    return _refused(
        "markdown_onto_hf_weights", "measure HF --markdown HF/model.safetensors: the model folder's weights",
        [["measure", str(hf), "--data", "digits", "--markdown", str(hf / "model.safetensors"), "--no-progress"]],
        "model.safetensors", "input folder",
    )  # fmt: skip


@case
def case_html_onto_hf_through_symlinked_folder(root: Path) -> Case:
    hf = _hf_folder(root)
    (root / "alias").symlink_to(hf.name)
    return _refused(
        "html_onto_hf_through_symlinked_folder",
        "measure HF --html alias/config.json, alias a symlink to HF: the same file through the folder link",
        [["measure", str(hf), "--data", "digits", "--html", str(root / "alias" / "config.json"), "--no-progress"]],
        "config.json", "input",
    )  # fmt: skip


@case
def case_json_onto_model_source(root: Path) -> Case:
    pt, _ = copy_sample(root)
    zoo = _zoo(root)
    return _refused(
        "json_onto_model_source", "measure m.pt --model zoo.py:build --json zoo.py: the --model source file",
        [["measure", str(pt), "--data", "digits", "--model", "zoo.py:build", "--json", str(zoo), "--no-progress"]],
        "zoo.py", "--model source",
    )  # fmt: skip


@case
def case_extract_onto_model_source(root: Path) -> Case:
    pt, _ = copy_sample(root)
    zoo = _zoo(root)
    return _refused(
        "extract_onto_model_source", "extract m.pt --model zoo.py:build --out zoo.py",
        [["extract", str(pt), "--data", "digits", "--model", "zoo.py:build", "--out", str(zoo), "--no-progress"]],
        "zoo.py", "--model source",
    )  # fmt: skip


@case
def case_finetune_html_onto_model_source(root: Path) -> Case:
    pt, _ = copy_sample(root)
    zoo = _zoo(root)
    return _refused(
        "finetune_html_onto_model_source",
        "finetune m.pt --model zoo.py:build --html zoo.py: refused before the --out folder is created",
        [["finetune", str(pt), "--data", "digits", "--cma-weight", "0.1", "--model", "zoo.py:build",
          "--html", str(zoo), "--out", str(root / "run"), "--no-progress"]],
        "zoo.py", "--model source",
    )  # fmt: skip


@case
def case_interpolate_json_onto_module_source(root: Path) -> Case:
    pt, _ = copy_sample(root)
    (root / "zoo").mkdir()
    module = root / "zoo" / "nets.py"
    module.write_text("import torch\n\n\ndef build(**kwargs):\n    return torch.nn.Linear(64, 10)\n")
    return _refused(
        "interpolate_json_onto_module_source",
        "interpolate a b --model zoo.nets:build --json zoo/nets.py: a module spec's source file (cwd)",
        [["interpolate", str(pt), str(pt), "--data", "digits", "--model", "zoo.nets:build", "--json",
          "zoo/nets.py", "--no-progress"]],
        "nets.py", "--model source",
    )  # fmt: skip


def _linked_dump(root: Path, how: str) -> tuple[Path, Path]:
    """A dump whose train features live in ``target.h5`` (external link or virtual dataset), or in raw
    external storage ``raw.bin``."""
    import h5py

    arrays = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    labels = np.arange(40) % 4
    dump = root / "dump.h5"
    if how == "raw":
        target = root / "raw.bin"
        target.write_bytes(arrays.tobytes())
    else:
        target = root / "target.h5"
        with hdf5(target, "w") as handle:
            handle["features"] = arrays
    with hdf5(dump, "w") as handle:
        if how == "link":
            handle["features"] = h5py.ExternalLink(target.name, "/features")
        elif how == "vds":
            layout = h5py.VirtualLayout(shape=arrays.shape, dtype=arrays.dtype)
            layout[:] = h5py.VirtualSource(target.name, "features", shape=arrays.shape)
            handle.create_virtual_dataset("features", layout)
        else:
            handle.create_dataset("features", shape=arrays.shape, dtype=arrays.dtype,
                                  external=[(target.name, 0, arrays.nbytes)])  # fmt: skip
        handle["labels"] = labels
        handle["head/weight"] = np.eye(4, dtype=np.float32)
        handle["head/bias"] = np.zeros(4, dtype=np.float32)
    return dump, target


@case
def case_json_onto_external_link_target(root: Path) -> Case:
    dump, target = _linked_dump(root, "link")
    return _refused(
        "json_onto_external_link_target",
        "measure dump.h5 --allow-external-data --json target.h5, dump.h5's features an external link into target.h5",
        [["measure", str(dump), "--allow-external-data", "--json", str(target), "--no-progress"]],
        "target.h5", "HDF5 links of",
    )  # fmt: skip


@case
def case_junit_onto_vds_source(root: Path) -> Case:
    dump, target = _linked_dump(root, "vds")
    return _refused(
        "junit_onto_vds_source",
        "measure dump.h5 --allow-external-data --junit target.h5, target.h5 the source of a virtual dataset",
        [["measure", str(dump), "--allow-external-data", "--junit", str(target), "--no-progress"]],
        "target.h5", "HDF5 links of",
    )  # fmt: skip


@case
def case_markdown_onto_external_storage_hardlink(root: Path) -> Case:
    dump, target = _linked_dump(root, "raw")
    os.link(target, root / "copy.bin")
    return _refused(
        "markdown_onto_external_storage_hardlink",
        "measure dump.h5 --allow-external-data --markdown copy.bin, copy.bin a hard link of the raw external storage",
        [["measure", str(dump), "--allow-external-data", "--markdown", str(root / "copy.bin"), "--no-progress"]],
        "copy.bin", "raw.bin",
    )  # fmt: skip


def _data_npz(root: Path) -> Path:
    rng = np.random.default_rng(0)
    path = root / "data.npz"
    with open(path, "wb") as handle:
        np.savez(handle, inputs=rng.normal(size=(60, 64)).astype(np.float32), labels=np.arange(60) % 10)
    return path


@case
def case_prune_json_onto_checkpoint(root: Path) -> Case:
    pt, _ = copy_sample(root)
    return _refused(
        "prune_json_onto_checkpoint", "prune m.pt --json m.pt: refused before the --out folder is created",
        [["prune", str(pt), "--data", "digits", "--json", str(pt), "--out", str(root / "run"), "--no-progress"]],
        "--json", pt.name,
    )  # fmt: skip


@case
def case_prune_markdown_onto_data(root: Path) -> Case:
    pt, _ = copy_sample(root)
    data = _data_npz(root)
    return _refused(
        "prune_markdown_onto_data", "prune m.pt --data data.npz --markdown data.npz",
        [["prune", str(pt), "--data", str(data), "--markdown", str(data), "--out", str(root / "run"), "--no-progress"]],
        "--markdown", data.name,
    )  # fmt: skip


@case
def case_prune_plot_and_json_same_path(root: Path) -> Case:
    pt, _ = copy_sample(root)
    out = root / "X"
    return _refused(
        "prune_plot_and_json_same_path", "prune --plot X --json X: one file written twice",
        [["prune", str(pt), "--data", "digits", "--plot", str(out), "--json", str(out), "--out", str(root / "run"),
          "--no-progress"]],
        "--json", "--plot",
    )  # fmt: skip


@case
def case_prune_bad_checkpoint_twice(root: Path) -> Case:
    bad = root / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    args = ["prune", str(bad), "--data", "digits", "--out", str(root / "run"), "--no-progress"]
    return Case(
        "prune_bad_checkpoint_twice", 4,
        "prune bad.pt twice: each run exits 2 naming bad.pt and leaves nothing (no folder, no study.json), "
        "so the rerun is not refused as 'already holds a study'",
        [args, args], "error", culprits=["bad.pt"], forbidden=["already holds a study"],
    )  # fmt: skip


@case
def case_study_markdown_onto_data(root: Path) -> Case:
    data = _data_npz(root)
    return _refused(
        "study_markdown_onto_data", "study label-smoothing --data data.npz --markdown data.npz",
        [["study", "label-smoothing", "--data", str(data), "--markdown", str(data), "--out", str(root / "st"),
          "--quick", "--no-progress"]],
        "--markdown", data.name,
    )  # fmt: skip


@case
def case_step_summary_onto_checkpoint(root: Path) -> Case:
    pt, h5 = copy_sample(root)
    return _refused(
        "step_summary_onto_checkpoint", "GITHUB_STEP_SUMMARY=m.pt measure m.pt --features f.h5: the summary "
        "would be appended to the checkpoint",
        [["measure", str(pt), "--features", str(h5), "--no-progress"]],
        "GITHUB_STEP_SUMMARY", pt.name, env={"GITHUB_STEP_SUMMARY": str(pt)},
    )  # fmt: skip


@case
def case_markdown_onto_hardlinked_data(root: Path) -> Case:
    pt, _ = copy_sample(root)
    data = _data_npz(root)
    os.link(data, root / "alias.npz")
    return _refused(
        "markdown_onto_hardlinked_data", "measure m.pt --data data.npz --markdown alias.npz, a hard link of data.npz",
        [["measure", str(pt), "--data", str(data), "--markdown", str(root / "alias.npz"), "--no-progress"]],
        "alias.npz", data.name,
    )  # fmt: skip


#: The cases `make test` runs; the other variants of this class are marked slow (`make test-all`, CI).
FAST = (
    "json_onto_hf_config",
    "json_onto_model_source",
    "prune_json_onto_checkpoint",
)
