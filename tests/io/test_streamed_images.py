"""--data as an image folder or the user's own module:callable, streamed through a DataLoader."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from streamed_helpers import cnn_checkpoint, image_folder

from nc_audit.core.errors import InputError
from nc_audit.io.data.stream_spec import compose, parse_stream_spec
from nc_audit.measurement.cache import cached_dump
from nc_audit.models.extract import extract
from nc_audit.models.spec import ModelSpec


def _features(dump: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(dump, "r") as handle:
        return handle[f"{split}/features"][()], handle[f"{split}/labels"][()]


def _independent_features(
    root: Path, spec: str, size: int, mean: float, std: float
) -> tuple[np.ndarray, np.ndarray]:
    """The penultimate activations computed here: Pillow decode, NumPy normalisation, the model's body."""
    namespace: dict[str, object] = {}
    source = Path(spec.rpartition(":")[0])
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    model = namespace["small_cnn"]()  # type: ignore[operator]
    model.load_state_dict(torch.load(source.parent / "cnn.pt"))
    rows, labels = [], []
    for label, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(folder.iterdir()):
            image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            rows.append((np.asarray(image, dtype=np.float32) / 255.0 - mean) / std)
            labels.append(label)
    x = torch.from_numpy(np.stack(rows)).permute(0, 3, 1, 2)
    with torch.no_grad():
        return model[:-1](x).numpy(), np.asarray(labels)


@pytest.mark.parametrize("workers", [0, 2])
def test_image_folder_features_match_an_independent_decode(tmp_path: Path, workers: int) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    root = image_folder(tmp_path / "images")
    data = compose(str(root), ["size=8", "mean=0.5", "std=0.25"], workers=workers)
    dump = extract(checkpoint, data, tmp_path / "dump.h5", model=ModelSpec(factory=factory))
    features, labels = _features(dump)
    expected, expected_labels = _independent_features(root, factory, 8, 0.5, 0.25)
    assert np.array_equal(labels, expected_labels)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


def test_train_and_test_folders_are_splits(tmp_path: Path) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    image_folder(tmp_path / "images" / "train")
    image_folder(tmp_path / "images" / "test", per_class=2, seed=1)
    data = compose(str(tmp_path / "images"), ["size=8"])
    dump = extract(checkpoint, data, tmp_path / "dump.h5", model=ModelSpec(factory=factory))
    assert len(_features(dump, "train")[1]) == 18 and len(_features(dump, "test")[1]) == 6


def test_the_cache_key_follows_the_images_content_not_the_workers(tmp_path: Path) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    root = image_folder(tmp_path / "images")
    model = ModelSpec(factory=factory)
    first, hit = cached_dump(
        checkpoint, compose(str(root), ["size=8"]), model=model, cache_dir=tmp_path / "c"
    )
    again, hit_again = cached_dump(
        checkpoint, compose(str(root), ["size=8"], workers=2), model=model, cache_dir=tmp_path / "c"
    )
    assert not hit and hit_again and again == first
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "class_1" / "0003.png")  # one image changed
    from nc_audit.models.stream_sources import open_source

    open_source.cache_clear()
    changed, hit_changed = cached_dump(
        checkpoint, compose(str(root), ["size=8"]), model=model, cache_dir=tmp_path / "c"
    )
    assert not hit_changed and changed != first


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: (root / "class_0" / "notes.txt").write_text("hi"), "notes.txt: not an image file"),
        (
            lambda root: (root / "class_0" / "0009.png").write_bytes(b"not a png"),
            "0009.png: not a readable image",
        ),
        (
            lambda root: os.symlink("/etc/hostname", root / "class_1" / "0009.png"),
            "a link out of the image folder",
        ),
        (lambda root: os.mkfifo(root / "class_2" / "0009.png"), "not a regular file"),
    ],
    ids=["non-image", "corrupt", "symlink-out", "fifo"],
)
def test_hostile_image_folders_are_refused_naming_the_file(
    tmp_path: Path, make: object, message: str
) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    root = image_folder(tmp_path / "images")
    make(root)  # type: ignore[operator]
    with pytest.raises(InputError, match=message):
        extract(
            checkpoint,
            compose(str(root), ["size=8"], workers=1),
            tmp_path / "d.h5",
            model=ModelSpec(factory=factory),
        )
    assert not (tmp_path / "d.h5").exists()


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    from hostile_images import bomb_png

    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    root = image_folder(tmp_path / "images")
    bomb_png(root / "class_0" / "0009.png")
    with pytest.raises(InputError, match=r"0009.png: .*(pixels|decompression bomb)"):
        extract(
            checkpoint, compose(str(root), ["size=8"]), tmp_path / "d.h5", model=ModelSpec(factory=factory)
        )


def test_images_of_different_sizes_without_size_say_so(tmp_path: Path) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    root = image_folder(tmp_path / "images")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "class_0" / "0009.png")
    with pytest.raises(InputError, match="cannot batch the items"):
        extract(checkpoint, str(root), tmp_path / "d.h5", model=ModelSpec(factory=factory))


@pytest.mark.parametrize("callable_name", ["make_data", "make_loader"])
def test_a_user_callable_dataset_or_loader_is_measured(tmp_path: Path, callable_name: str) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    source = factory.rpartition(":")[0]
    data = compose(f"{source}:{callable_name}", ["n=20"], workers=0)
    features, labels = _features(
        extract(checkpoint, data, tmp_path / "d.h5", model=ModelSpec(factory=factory))
    )
    assert features.shape == (20, 16) and list(labels[:4]) == [0, 1, 2, 0]


def test_dict_items_and_a_failing_item_in_a_worker(tmp_path: Path) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    source = factory.rpartition(":")[0]
    model = ModelSpec(factory=factory)
    as_dict = compose(f"{source}:make_data", ["n=12", "as_dict=true"])
    assert _features(extract(checkpoint, as_dict, tmp_path / "d.h5", model=model))[0].shape == (12, 16)
    broken = compose(f"{source}:make_data", ["n=12", "fail_at=5"], workers=2)
    with pytest.raises(InputError, match=r"item 5: ValueError: sample 5 is broken$"):
        extract(checkpoint, broken, tmp_path / "e.h5", model=model)


def test_labels_beyond_the_head_are_named(tmp_path: Path) -> None:
    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    root = image_folder(tmp_path / "images", classes=4)
    with pytest.raises(InputError, match="labels go up to 3 but the model's head '6' has 3 classes"):
        extract(
            checkpoint, compose(str(root), ["size=8"]), tmp_path / "d.h5", model=ModelSpec(factory=factory)
        )


def test_data_args_apply_only_to_streamed_sources() -> None:
    with pytest.raises(InputError, match="not to a built-in"):
        compose("digits", ["size=8"])
    with pytest.raises(InputError, match="given twice"):
        parse_stream_spec("pkg.mod:make?n=1&n=2")
    assert parse_stream_spec("digits:layout=image") is None and parse_stream_spec("gaussian:classes") is None
    spec = parse_stream_spec("pkg.mod:make?workers=3&b=1&a=2")
    assert spec is not None and spec.identity == "callable:pkg.mod:make?a=2&b=1" and spec.workers == 3


def test_the_batch_fits_the_memory_budget_before_anything_is_read(tmp_path: Path) -> None:
    from nc_audit.models.extract_stream import BATCH_BUDGET_BYTES, batch_size_for
    from nc_audit.models.stream_sources import open_source

    root = image_folder(tmp_path / "images", per_class=1)
    spec = parse_stream_spec(compose(str(root), ["size=4096"]))
    assert spec is not None
    opened = open_source(spec, "train", None)
    assert opened.item_bytes == 3 * 4096 * 4096 * 4
    for workers in (0, 2):
        rows = batch_size_for(opened, workers)
        assert rows * opened.item_bytes * (1 + 2 * workers) <= BATCH_BUDGET_BYTES and rows >= 1
    small = open_source(parse_stream_spec(str(root)), "train", None)  # type: ignore[arg-type]
    assert small.item_bytes == 3 * 12 * 12 * 4 and batch_size_for(small, 2) == 64


def test_the_cache_key_of_a_callable_follows_its_source_file(tmp_path: Path) -> None:
    from nc_audit.models.stream_sources import data_identity, open_source

    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    source = Path(factory.rpartition(":")[0])
    data = compose(f"{source}:make_data", ["n=9"])
    assert data is not None
    first = data_identity(data, ["train"], checkpoint)
    assert "callable:" in first and "n=9" in first and "sha256=" in first
    source.write_text(source.read_text() + "\n# changed\n")
    open_source.cache_clear()
    import sys

    for name in [n for n in sys.modules if n.startswith("nc_audit_user_")]:
        del sys.modules[name]
    assert data_identity(data, ["train"], checkpoint) != first


def test_commands_that_hold_data_in_memory_refuse_a_streamed_source_without_running_it(
    tmp_path: Path,
) -> None:
    from nc_audit.io.data.datasets import load_dataset

    plant = tmp_path / "plant.py"
    plant.write_text(f"def make():\n    open({str(tmp_path / 'marker')!r}, 'w').write('ran')\n")
    for data in (f"{plant}:make", str(image_folder(tmp_path / "images"))):
        with pytest.raises(InputError, match="streamed by measure, extract and track only"):
            load_dataset(data, "train")
    assert not (tmp_path / "marker").exists()


def test_track_takes_the_same_streamed_data_options_as_measure(tmp_path: Path) -> None:
    """`track --data FOLDER --data-arg ... --workers N` equals `measure` of each checkpoint on it."""
    import json

    from typer.testing import CliRunner

    from nc_audit.cli import app

    checkpoint, factory = cnn_checkpoint(tmp_path / "model")
    root = image_folder(tmp_path / "images")
    common = ["--data", str(root), "--data-arg", "size=8", "--workers", "2", "--model", factory,
              "--cache-dir", str(tmp_path / "cache"), "--format", "json"]  # fmt: skip
    runner = CliRunner()
    tracked = runner.invoke(app, ["track", str(checkpoint), *common])
    measured = runner.invoke(app, ["measure", str(checkpoint), *common])
    assert tracked.exit_code == 0 and measured.exit_code == 0, tracked.output + measured.output
    (record,) = json.loads(tracked.stdout)["records"]
    assert record["metrics"] == json.loads(measured.stdout)["metrics"]
    refused = runner.invoke(app, ["track", str(checkpoint), "--data", "digits", "--workers", "2"])
    assert refused.exit_code == 2
