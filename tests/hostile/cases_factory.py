"""Round 2, class 1 (issue 19): code run on a checkpoint's word.

A ``factory`` architecture record (in a ``.pt`` or in safetensors metadata) names a callable and its
arguments; a ``huggingface`` folder's config.json can name Python code in the folder (``auto_map``) or
ask for an enormous model. Every case plants a payload that would create the file ``marker`` in the
case folder if it ran (a shell command, a pickle, a module in the working folder, a hub ``hubconf.py``),
and the contract's ``no_marker`` check asserts it never appears; each run must be exit 2 with one line
naming the checkpoint (or its config.json), within the memory budget.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import generate
from generate import Case, case, sample_state

MARKER = "marker"
#: Source of a Python module that creates the marker when imported (a planted ./timm.py and the like).
PLANT = f"open({MARKER!r}, 'w').write('ran')\n"
#: Commands that rebuild a model from a checkpoint: (name, arguments after the checkpoint, outputs).
EVERY_COMMAND = (
    ("measure", ["--data", "digits", "--no-progress"]),
    ("extract", ["--data", "digits", "--out", "out.h5", "--no-progress"]),
    ("finetune", ["--data", "digits", "--cma-weight", "0.1", "--epochs", "1", "--out", "ft"]),
    ("prune", ["--data", "digits", "--out", "pruned"]),
    ("track", ["--data", "digits", "--no-progress"]),
    ("interpolate", []),
)


def _record(callable_: str, args: dict[str, Any], num_classes: int = 10) -> dict[str, Any]:
    return {
        "format": "nc-audit-arch/1",
        "name": "factory",
        "config": {"callable": callable_, "args": args},
        "num_classes": num_classes,
        "head": "head",
    }


def _pt(root: Path, name: str, record: dict[str, Any], state: dict[str, Any] | None = None) -> Path:
    """A .pt holding the sample's state dict (or ``state``) with ``record`` as its architecture."""
    import torch

    payload = dict(sample_state())
    payload["architecture"] = record
    if state is not None:
        payload["state_dict"] = state
    path = root / name
    torch.save(payload, path)
    return path


class _Payload:
    """Unpickling it runs ``touch marker`` (what a file read with weights_only=False could do)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {MARKER}",))


def _factory_case(
    root: Path, name: str, description: str, callable_: str, args: dict[str, Any],
    commands: tuple[str, ...] = ("measure",), plant: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
) -> Case:  # fmt: skip
    """A .pt recording ``callable_(**args)``, run through ``commands``; files in ``plant`` are written
    into the case folder (the working folder of every run) first."""
    for rel, text in (plant or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    pt = _pt(root, "model.pt", _record(callable_, args))
    wanted = dict(EVERY_COMMAND)
    invocations = [[command, pt.name, *wanted[command], *(extra_args or [])] for command in commands]
    if "interpolate" in commands:  # two checkpoints: the model from the sample's record, then this one
        interpolate = ["interpolate", "sample.pt", pt.name, "--data", "digits", "--steps", "2"]
        invocations[commands.index("interpolate")] = interpolate
        _pt(root, "sample.pt", sample_state()["architecture"])
    # a refused checkpoint leaves nothing behind, prune's study.json included (class 4)
    return Case(
        name, 1, description, invocations, "error", culprits=[pt.name], timeout=60,
        extra={"no_marker": [MARKER]},
    )  # fmt: skip


@case
def case_factory_os_system(root: Path) -> Case:
    return _factory_case(
        root, "factory_os_system",
        "a .pt records the factory transformers.utils.hub:os.system with command='touch marker' (an attribute "
        "chain through a trusted module); measure --data, extract, finetune, prune, track and interpolate must each refuse "
        "it (exit 2, naming model.pt), and no marker may appear",
        "transformers.utils.hub:os.system", {"command": f"touch {MARKER}"},
        commands=tuple(command for command, _ in EVERY_COMMAND),
    )  # fmt: skip


@case
def case_factory_safetensors_metadata(root: Path) -> Case:
    import torch
    from safetensors.torch import save_file

    state = {
        k: v.contiguous() for k, v in sample_state()["state_dict"].items() if isinstance(v, torch.Tensor)
    }
    path = root / "model.safetensors"
    record = _record("transformers.utils.hub:os.system", {"command": f"touch {MARKER}"})
    save_file(state, str(path), metadata={"nc_audit_architecture": json.dumps(record)})
    return Case(
        "factory_safetensors_metadata", 1,
        "the same os.system chain recorded in a .safetensors file's metadata; measure --data and extract refuse",
        [["measure", path.name, "--data", "digits", "--no-progress"],
         ["extract", path.name, "--data", "digits", "--out", "out.h5", "--no-progress"]],
        "error", culprits=[path.name], timeout=60, extra={"no_marker": [MARKER]},
    )  # fmt: skip


@case
def case_factory_torch_load_pickle(root: Path) -> Case:
    (root / "evil.pkl").write_bytes(pickle.dumps(_Payload()))
    return _factory_case(
        root, "factory_torch_load_pickle",
        "torch.nn:functional.torch.load with f='evil.pkl', weights_only=false: would unpickle a payload that "
        "touches the marker; refused (a dotted chain, and a file-naming argument)",
        "torch.nn:functional.torch.load", {"f": "evil.pkl", "weights_only": False},
    )  # fmt: skip


@case
def case_factory_import_module(root: Path) -> Case:
    return _factory_case(
        root, "factory_import_module",
        "torch.nn:functional.importlib.import_module with name='evilmod' and ./evilmod.py planted: refused",
        "torch.nn:functional.importlib.import_module", {"name": "evilmod"}, plant={"evilmod.py": PLANT},
    )  # fmt: skip


@case
def case_factory_get_class_in_module(root: Path) -> Case:
    return _factory_case(
        root, "factory_get_class_in_module",
        "transformers.dynamic_module_utils:get_class_in_module(class_name='X', module_path='evil.py') with "
        "./evil.py planted: refused (not a model constructor), and transformers is not even imported",
        "transformers.dynamic_module_utils:get_class_in_module", {"class_name": "X", "module_path": "evil.py"},
        plant={"evil.py": PLANT},
    )  # fmt: skip


@case
def case_factory_sys_exit_gate(root: Path) -> Case:
    return _factory_case(
        root, "factory_sys_exit_gate",
        "transformers.utils.hub:sys.exit with {} under --fail-on nc1<=0 --json r.json (the gate bypass: exit 0 "
        "and no report): must be exit 2, and r.json must not be written",
        "transformers.utils.hub:sys.exit", {}, extra_args=["--fail-on", "nc1<=0", "--json", "r.json"],
    )  # fmt: skip


@case
def case_factory_cwd_timm(root: Path) -> Case:
    return _factory_case(
        root, "factory_cwd_timm",
        "timm:create_model(model_name='resnet10t') with a pull request's ./timm.py in the working folder: "
        "./timm.py never runs (timm is imported from site-packages only; absent here, it is an error)",
        "timm:create_model", {"model_name": "resnet10t"}, plant={"timm.py": PLANT},
        commands=("measure", "extract"),
    )  # fmt: skip


@case
def case_factory_cwd_torchvision(root: Path) -> Case:
    return _factory_case(
        root, "factory_cwd_torchvision",
        "torchvision.models:resnet18 with ./torchvision/__init__.py and ./torchvision/models.py planted: "
        "the planted package never runs",
        "torchvision.models:resnet18", {}, plant={"torchvision/__init__.py": PLANT, "torchvision/models.py": PLANT},
    )  # fmt: skip


@case
def case_factory_cwd_transformers(root: Path) -> Case:
    record = {
        "format": "nc-audit-arch/1", "name": "huggingface", "num_classes": 10, "head": "classifier",
        "config": {"class": "BertForSequenceClassification",
                   "config": {"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "intermediate_size": 32, "num_labels": 10}},
    }  # fmt: skip
    (root / "transformers.py").write_text(PLANT)
    pt = _pt(root, "model.pt", record)
    return Case(
        "factory_cwd_transformers", 1,
        "a huggingface record (a tiny BERT) beside the sample's MLP weights, with ./transformers.py planted: "
        "transformers comes from site-packages (the planted file never runs) and the weights do not fit",
        [["measure", pt.name, "--data", "digits", "--no-progress"]],
        "error", culprits=[pt.name], timeout=90, extra={"no_marker": [MARKER]},
    )  # fmt: skip


@case
def case_factory_dangerous_callables(root: Path) -> Case:
    """One .pt per callable, all measured: none is a model constructor of torch.nn/torchvision/timm."""
    (root / "evil.pkl").write_bytes(pickle.dumps(_Payload()))
    (root / "hubconf.py").write_text(PLANT + "def evil(**kwargs):\n    return None\n")
    specs = {
        "eval": ("builtins:eval", {"source": f"open({MARKER!r}, 'w')"}),
        "subprocess": ("subprocess:run", {"args": ["touch", MARKER]}),
        "os_system": ("os:system", {"command": f"touch {MARKER}"}),
        "torch_load": ("torch:load", {"f": "evil.pkl", "weights_only": False}),
        "pickle_loads": ("pickle:loads", {"data": "evil"}),
        "hub_chain": ("torch.nn:modules.module.torch.hub.load",
                      {"repo_or_dir": ".", "model": "evil", "source": "local", "trust_repo": True}),
        "private": ("torch.nn:_reduction", {}),
        "file_path": ("./hubconf.py:evil", {}),
    }  # fmt: skip
    invocations = []
    for stem, (spec, args) in specs.items():
        pt = _pt(root, f"{stem}.pt", _record(spec, args))
        invocations.append(["measure", pt.name, "--data", "digits", "--no-progress"])
    return Case(
        "factory_dangerous_callables", 1,
        "records naming builtins:eval, subprocess:run, os:system, torch:load (weights_only false), pickle:loads, "
        "a chain torch.nn:modules.module.torch.hub.load with a local hubconf.py, a private name and a .py path: "
        "each refused naming its file, no marker",
        invocations, "error", culprits=[f"{stem}.pt" for stem in specs], timeout=60,
        extra={"no_marker": [MARKER]},
    )  # fmt: skip


@case
def case_factory_linear_huge(root: Path) -> Case:
    return _factory_case(
        root, "factory_linear_huge",
        "a recorded torch.nn:Linear(20000, 20000) beside the sample's small state dict: built on the meta "
        "device and refused on shapes, never allocating its 1.5 GB",
        "torch.nn:Linear", {"in_features": 20000, "out_features": 20000}, commands=("measure", "extract"),
    )  # fmt: skip


@case
def case_factory_user_model_recorded_args(root: Path) -> Case:
    import torch

    torch.manual_seed(0)
    state = {"weight": torch.randn(10, 64) * 0.1, "bias": torch.zeros(10)}
    args = {"in_features": 64, "out_features": 10, "pretrained": True, "weights": "IMAGENET1K_V1",
            "trust_remote_code": True, "cache_dir": "/tmp/x"}  # fmt: skip
    record = {**_record("torch.nn:Linear", args), "head": ""}  # the model is its own head
    pt = _pt(root, "linear.pt", record, state=state)
    return Case(
        "factory_user_model_recorded_args", 1,
        "--model torch.nn:Linear named by the user, the checkpoint recording it with pretrained, weights, "
        "trust_remote_code and cache_dir beside its sizes: those never reach the callable (a note names them); "
        "measured with exit 0 (tests/models/test_factory_rule.py checks the note)",
        [["measure", pt.name, "--data", "digits", "--model", "torch.nn:Linear", "--format", "json",
          "--no-progress"]],
        "ok", timeout=60, extra={"no_marker": [MARKER], "stdout_has_json_report": True},
    )  # fmt: skip


def _hf_folder(root: Path, config: dict[str, Any], name: str = "hf") -> Path:
    """A save_pretrained-like folder: config.json and a tiny model.safetensors written by hand."""
    folder = root / name
    folder.mkdir()
    header = json.dumps(
        {"classifier.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    ).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


BERT = {"model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": 50,
        "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 12}  # fmt: skip


@case
def case_hf_auto_map(root: Path) -> Case:
    config = {**BERT, "model_type": "evilbert", "architectures": ["EvilModel"],
              "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"}}  # fmt: skip
    folder = _hf_folder(root, config)
    (folder / "evil.py").write_text(f"open({str(root / MARKER)!r}, 'w').write('ran')\n")
    return Case(
        "hf_auto_map", 1,
        "a Hugging Face folder whose config.json has auto_map and an unknown model_type (code in evil.py): "
        "exit 2 at once naming config.json (trust_remote_code=False), no y/N prompt, no 15 s wait, no marker",
        [["measure", folder.name, "--data", "digits", "--no-progress"]],
        "error", culprits=["config.json"], timeout=30, extra={"no_marker": [MARKER]},
    )  # fmt: skip


@case
def case_hf_layers_huge(root: Path) -> Case:
    folder = _hf_folder(root, {**BERT, "num_hidden_layers": 100000})
    return Case(
        "hf_layers_huge", 7,
        "config.json with num_hidden_layers: 100000: refused before transformers builds anything (naming "
        "config.json and the value), not 40 MB/s of growing memory",
        [["measure", folder.name, "--data", "digits", "--no-progress"]],
        "error", culprits=["config.json"], fragments=["num_hidden_layers"], timeout=30,
    )  # fmt: skip


@case
def case_hf_labels_huge(root: Path) -> Case:
    folder = _hf_folder(root, {**BERT, "num_labels": 1e8})
    return Case(
        "hf_labels_huge", 8,
        "config.json with num_labels: 1e8 (a 1e8-entry id2label, a 1e8-row head): refused before transformers "
        "reads it, within the memory budget",
        [["measure", folder.name, "--data", "digits", "--no-progress"]],
        "error", culprits=["config.json"], fragments=["num_labels"], timeout=30,
    )  # fmt: skip


@case
def case_hf_config_60mb(root: Path) -> Case:
    folder = _hf_folder(root, {**BERT, "padding": "x" * (60 * 2**20)})
    return Case(
        "hf_config_60mb", 8,
        "a 60 MB config.json (one long string): refused on its size naming config.json, within the memory budget",
        [["measure", folder.name, "--data", "digits", "--no-progress"]],
        "error", culprits=["config.json"], timeout=30,
    )  # fmt: skip


@case
def case_hf_hidden_huge(root: Path) -> Case:
    folder = _hf_folder(root, {**BERT, "hidden_size": 65536, "intermediate_size": 262144, "num_labels": 2})
    return Case(
        "hf_hidden_huge", 8,
        "config.json asking hidden_size 65536 and intermediate_size 262144 beside a 16-byte weights file: built "
        "on the meta device, its size compared with the weights, refused naming the folder",
        [["measure", folder.name, "--data", "digits", "--no-progress"]],
        "error", culprits=["hf"], timeout=60,
    )  # fmt: skip


# several runs each (one a command or a callable): make test-all runs them; the same rule is covered
# fast by tests/models/test_factory_rule.py and test_properties_factory.py
generate.SLOW_CASES["factory_os_system"] = "6 runs: every command that builds a model"
generate.SLOW_CASES["factory_dangerous_callables"] = "8 runs: one a dangerous callable"


#: The cases `make test` runs; the other variants of this class are marked slow (`make test-all`, CI).
FAST = (
    "factory_import_module",
    "hf_auto_map",
)
