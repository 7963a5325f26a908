"""--data as a datasets folder, a Parquet or JSONL table (text tokenized with the model folder's own
tokenizer), and an image folder preprocessed by an HF folder's preprocessor_config.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import transformers
from streamed_helpers import image_folder

from nc_audit.core.errors import InputError
from nc_audit.io.data.stream_spec import compose
from nc_audit.models.extract import extract

# importing transformers takes several seconds on 2 cores
pytestmark = pytest.mark.slow
WORDS = ["[PAD]", "[UNK]", "good", "bad", "fine", "awful", "movie", "plot", "the", "a"]
TEXTS = ["good movie", "bad plot", "the fine movie", "a awful plot", "good good", "bad the", "fine", "awful"]
LABELS = [0, 1, 0, 1, 0, 1, 0, 1]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "bert"
    config = transformers.BertConfig(
        vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]"
    ).save_pretrained(folder)
    return folder


def _expected(bert: Path, texts: list[str]) -> np.ndarray:
    """The classifier's input computed here: BERT's pooled output on the folder's own tokenizer."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(bert)
    model = transformers.BertForSequenceClassification.from_pretrained(bert).eval()
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.bert(**encoded).pooler_output.numpy()


def _dump(path: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return handle[f"{split}/features"][()], handle[f"{split}/labels"][()]


def _write(kind: str, folder: Path) -> str:
    rows = [{"review": t, "sentiment": y} for t, y in zip(TEXTS, LABELS, strict=True)]
    if kind == "jsonl":
        path = folder / "reviews.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(path)
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / "reviews.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=3)
        return str(path)
    import datasets

    features = datasets.Features(
        {"review": datasets.Value("string"), "sentiment": datasets.ClassLabel(names=["pos", "neg"])}
    )
    table = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict({"train": table, "test": table.select(range(4))}).save_to_disk(
        str(folder / "reviews")
    )
    return str(folder / "reviews")


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "hf"])
def test_a_table_of_text_is_tokenized_by_the_folders_tokenizer(bert: Path, tmp_path: Path, kind: str) -> None:
    data = compose(_write(kind, tmp_path), workers=0, text_column="review", label_column="sentiment")
    dump = extract(bert, data, tmp_path / "d.h5")
    features, labels = _dump(dump)
    assert list(labels) == LABELS
    np.testing.assert_allclose(features, _expected(bert, TEXTS), rtol=1e-4, atol=1e-5)
    if kind == "hf":
        assert len(_dump(dump, "test")[1]) == 4


def test_two_workers_read_every_row_of_a_table_once(bert: Path, tmp_path: Path) -> None:
    data = compose(_write("parquet", tmp_path), workers=2, text_column="review", label_column="sentiment")
    features, labels = _dump(extract(bert, data, tmp_path / "d.h5"))
    expected = _expected(bert, TEXTS)
    order = [
        next(i for i in range(len(TEXTS)) if np.allclose(row, expected[i], atol=1e-5)) for row in features
    ]
    assert sorted(order) == list(range(len(TEXTS))) and [LABELS[i] for i in order] == list(labels)


def test_a_missing_column_names_the_columns(bert: Path, tmp_path: Path) -> None:
    data = compose(_write("jsonl", tmp_path), text_column="text", label_column="sentiment")
    with pytest.raises(InputError, match="no column 'text'; its columns: review, sentiment"):
        extract(bert, data, tmp_path / "d.h5")


def test_a_datasets_folder_naming_a_file_outside_is_refused(bert: Path, tmp_path: Path) -> None:
    folder = Path(_write("hf", tmp_path))
    state_path = folder / "train" / "state.json"
    state = json.loads(state_path.read_text())
    state["_data_files"][0]["filename"] = "../../outside.arrow"
    state_path.write_text(json.dumps(state))
    data = compose(str(folder), text_column="review", label_column="sentiment")
    with pytest.raises(InputError, match="is a path; only a file of the folder is read"):
        extract(bert, data, tmp_path / "d.h5")


def test_an_hf_image_model_uses_its_preprocessor_config(tmp_path: Path) -> None:
    torch.manual_seed(1)
    config = transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, num_labels=3,
    )  # fmt: skip
    folder = tmp_path / "vit"
    model = transformers.ViTForImageClassification(config).eval()
    model.save_pretrained(folder)
    pre = {"size": {"height": 8, "width": 8}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    root = image_folder(tmp_path / "images", per_class=3)
    features, labels = _dump(extract(folder, str(root), tmp_path / "d.h5"))
    from PIL import Image

    pixels = []
    for path in sorted(root.glob("class_*/*")):
        image = Image.open(path).convert("RGB").resize((8, 8), Image.Resampling.BILINEAR)
        pixels.append((np.asarray(image, dtype=np.float32) / 255.0 - 0.5) / 0.5)
    with torch.no_grad():
        hidden = model.vit(
            pixel_values=torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
        ).last_hidden_state
    np.testing.assert_allclose(features, hidden[:, 0].numpy(), rtol=1e-4, atol=1e-5)
    assert list(labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("name", ["dataset_info.json", "state.json"])
def test_a_datasets_folder_file_linked_outside_is_refused_before_reading(
    bert: Path, tmp_path: Path, name: str
) -> None:
    folder = Path(_write("hf", tmp_path))
    (folder / "train" / name).unlink()
    os.symlink("/etc/passwd", folder / "train" / name)
    data = compose(str(folder), text_column="review", label_column="sentiment")
    with pytest.raises(InputError, match=f"{name}: a link out of the datasets folder"):
        extract(bert, data, tmp_path / "d.h5")


def test_a_parquet_row_group_larger_than_the_budget_is_refused(
    bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nc_audit.io.data import tables

    monkeypatch.setattr(tables, "MAX_ROW_GROUP_BYTES", 64)
    data = compose(_write("parquet", tmp_path), text_column="review", label_column="sentiment")
    with pytest.raises(InputError, match=r"row group 0 declares .* bytes of text and labels uncompressed"):
        extract(bert, data, tmp_path / "d.h5")
