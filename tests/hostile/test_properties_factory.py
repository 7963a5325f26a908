"""Property (issue 19, class 1): a random architecture record never executes anything.

Records are drawn from a pool of module and attribute names that includes dangerous ones (``os:system``,
``subprocess:run``, ``builtins:eval``, ``torch:load``, ``pickle:loads``, ``importlib:import_module``,
``transformers.utils.hub``, hub loaders), random dotted chains through them, and random arguments
(commands that create a marker file, a pickle that does, a planted module's name, hub arguments,
numbers, lists). The working folder holds planted ``timm.py``, ``torchvision/``, ``evilmod.py`` and
``hubconf.py`` that create the marker when imported, and is first on ``sys.path`` (as under
``python -m``). For every record, ``factory_from_record`` and building what it returns on the meta
device either give an ``nn.Module`` of an allowed library or raise InputError — never anything else
(no SystemExit, no other exception), and the marker never appears.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from nc_audit.core.errors import InputError
from nc_audit.models.factories import factory_from_record

MODULES = ["os", "subprocess", "builtins", "torch", "torch.nn", "torch.hub", "pickle", "importlib", "timm",
           "torchvision.models", "torchvision", "transformers", "transformers.utils.hub", "shutil", "sys",
           "transformers.dynamic_module_utils", "evilmod", "torch.nn.functional", "numpy", "./hubconf.py",
           "hubconf", "runpy", "code"]  # fmt: skip
NAMES = ["system", "run", "eval", "exec", "load", "loads", "import_module", "functional", "Linear", "Conv2d",
         "hub", "torch", "os", "sys", "exit", "modules", "module", "_reduction", "Module", "Sequential",
         "create_model", "resnet18", "get_class_in_module", "popen", "remove", "rmtree", "init", "Identity",
         "LayerNorm", "Bilinear", "__import__", "__class__", "__subclasses__", "run_path", "interact"]  # fmt: skip
KEYS = ["command", "args", "f", "weights_only", "pretrained", "in_features", "out_features", "name", "source",
        "repo_or_dir", "model", "trust_repo", "model_name", "weights", "trust_remote_code", "normalized_shape",
        "path", "code", "data", "module_path", "class_name", "status", "in1_features", "in2_features",
        "bias", "num_classes", "cache_dir", "device"]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working folder full of planted code, first on sys.path; restored afterwards."""
    root = tmp_path_factory.mktemp("planted")
    marker = root / "marker"
    plant = f"open({str(marker)!r}, 'w').write('ran')\n"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    (root / "evil.pkl").write_bytes(pickle.dumps(Payload()))
    for rel in (
        "timm.py",
        "evilmod.py",
        "torchvision/__init__.py",
        "torchvision/models.py",
        "transformers.py",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(plant + "def create_model(**kw):\n    return None\n")
    (root / "hubconf.py").write_text(plant + "def evil(**kw):\n    return None\n")
    cwd, path, modules = Path.cwd(), list(sys.path), set(sys.modules)
    os.chdir(root)
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if name.partition(".")[0] in ("timm", "torchvision", "evilmod", "hubconf"):
                del sys.modules[name]


def _value(workdir: Path) -> st.SearchStrategy[Any]:
    marker = str(workdir / "marker")
    scalars = st.one_of(
        st.sampled_from(
            [
                f"touch {marker}",
                "evilmod",
                "evil.pkl",
                ".",
                "local",
                "evil",
                "hubconf.py",
                f"open({marker!r}, 'w')",
                "resnet18",
                "hf-hub:org/x",
                "x",
                "",
            ]
        ),
        st.integers(-3, 64),
        st.booleans(),
        st.none(),
    )
    return st.one_of(scalars, st.lists(scalars, max_size=3))


def _records(workdir: Path) -> st.SearchStrategy[dict[str, Any]]:
    chains = st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map(".".join)
    spec = st.one_of(
        st.builds(lambda m, c: f"{m}:{c}", st.sampled_from(MODULES), chains),
        st.sampled_from(["torch.nn:Linear", "torch.nn:Identity", "torch.nn:Bilinear", "timm:create_model"]),
    )
    args = st.dictionaries(st.sampled_from(KEYS), _value(workdir), max_size=4)
    config = st.fixed_dictionaries({"callable": spec, "args": args})
    return st.fixed_dictionaries(
        {
            "format": st.just("nc-audit-arch/1"),
            "name": st.just("factory"),
            "config": config,
            "num_classes": st.one_of(st.none(), st.integers(1, 12)),
            "head": st.just(""),
        }
    )


ALLOWED = ("torch.nn.", "torchvision.models.", "timm.")


@pytest.mark.slow  # a property: make test keeps this class's example cases; make test-all runs it
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_random_architecture_record_never_executes_anything(workdir: Path, data: st.DataObject) -> None:
    record = data.draw(_records(workdir))
    try:
        factory = factory_from_record(record, "random.pt")
        with torch.device("meta"):
            model = factory(record["num_classes"])
    except InputError as error:
        assert str(error).startswith("random.pt: "), error
    else:
        assert isinstance(model, nn.Module) and type(model).__module__.startswith(ALLOWED), type(model)
    assert not (workdir / "marker").exists(), f"code ran on a file's word: {record}"
