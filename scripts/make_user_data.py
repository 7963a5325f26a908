"""Small, deterministic user data for the README's "Your own data" blocks (nothing downloaded).

    python scripts/make_user_data.py OUT

writes into OUT: ``images/class_k/*.png`` (an ImageFolder: 3 classes × 40 16×16 RGB images whose colour
depends on the class), ``zoo.py`` (``small_cnn``, a CNN factory, and ``make_data``, a callable returning
a ``torch.utils.data.Dataset`` of (inputs, label) pairs) with ``cnn.pt`` (the CNN trained for 60 steps
on the images), and ``bert/`` (a tiny random BERT classifier saved with save_pretrained, with a
word-level tokenizer) beside the same 48 labelled reviews as ``reviews.jsonl``, ``reviews.parquet`` and
``reviews/`` (a datasets DatasetDict written by save_to_disk, train and test splits).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ZOO = '''
import torch
from torch import nn


def small_cnn(num_classes=3):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, num_classes),
    )


class Blobs(torch.utils.data.Dataset):
    """(3×16×16 image, label) pairs: noise around a colour per class, fixed by the seed."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 3
        centres = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8]])
        self.images = centres[self.labels][:, :, None, None] + 0.2 * torch.randn(n, 3, 16, 16, generator=g)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return (self.images[i] - 0.5) / 0.25, int(self.labels[i])


def make_data(n=300, seed=0, split="train"):
    return Blobs(n, seed if split == "train" else seed + 1)
'''
WORDS = [
    "[PAD]",
    "[UNK]",
    "good",
    "great",
    "fine",
    "bad",
    "awful",
    "dull",
    "movie",
    "plot",
    "the",
    "a",
    "very",
]


def images(out: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    centres = np.array([[200, 50, 50], [50, 200, 50], [50, 50, 200]])
    for c, centre in enumerate(centres):
        folder = out / "images" / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(40):
            pixels = np.clip(centre + rng.normal(0, 50, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")


def cnn(out: Path) -> None:
    """zoo.py and cnn.pt: the factory trained for 60 full-batch steps on the images (as measure reads them)."""
    from PIL import Image

    (out / "zoo.py").write_text(ZOO)
    namespace: dict[str, object] = {}
    exec(compile(ZOO, "zoo.py", "exec"), namespace)  # this script's own source
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the same weights (and sha256) on every machine
    model = namespace["small_cnn"]()  # type: ignore[operator]
    paths = sorted((out / "images").glob("class_*/*.png"))
    x = torch.stack(
        [torch.from_numpy(np.asarray(Image.open(p), np.float32) / 255.0).permute(2, 0, 1) for p in paths]
    )
    x = (x - 0.5) / 0.25
    y = torch.tensor([int(p.parent.name.split("_")[1]) for p in paths])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    torch.save(model.state_dict(), out / "cnn.pt")


def reviews(out: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    rng = np.random.default_rng(0)
    good, bad = ["good", "great", "fine"], ["bad", "awful", "dull"]
    rows = []
    for i in range(48):
        label = i % 2
        words = [str(w) for w in rng.choice(bad if label else good, 2)] + [str(rng.choice(["movie", "plot"]))]
        rows.append({"review": "the " + " ".join(words), "sentiment": label})
    (out / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), out / "reviews.parquet")
    features = datasets.Features(
        {"review": datasets.Value("string"), "sentiment": datasets.ClassLabel(names=["positive", "negative"])}
    )
    table = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict(
        {"train": table.select(range(36)), "test": table.select(range(36, 48))}
    ).save_to_disk(str(out / "reviews"))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    transformers.BertForSequenceClassification(config).save_pretrained(out / "bert")
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]"
    )
    tokenizer.save_pretrained(out / "bert")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    images(out)
    cnn(out)
    reviews(out)
    print(
        f"wrote {out}/images, {out}/zoo.py, {out}/cnn.pt, {out}/bert and {out}/reviews(.jsonl, .parquet, /)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
