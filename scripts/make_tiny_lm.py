"""Build a tiny causal language model folder and its corpus, deterministically, without downloading.

    python scripts/make_tiny_lm.py OUT [--arch gpt2|llama|gptj] [--vocab 512] [--embd 64] [--layers 2]
                                   [--documents 400] [--train-steps 0] [--seed 0]
                                   [--positions 128] [--lexicon 0]

Writes OUT/corpus.txt (generated English-like sentences; documents separated by blank lines) and the
folder OUT/model (config.json, model.safetensors, a byte-level BPE tokenizer trained on the corpus and
wrapped in PreTrainedTokenizerFast), all from ``save_pretrained``. ``--train-steps N`` trains the model
for N AdamW steps on the corpus (windows of 64 tokens), so that its last layer has some structure to
measure; 0 keeps the random initialisation. The tests build their models with :func:`build`.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

import torch

NOUNS = "cat dog bird fox child farmer river tree house garden teacher boat storm king city wolf".split()
ADJECTIVES = "small old quiet bright brave green cold tall happy dark gentle".split()
VERBS = "sees follows finds helps watches carries meets paints hears visits likes".split()
PLACES = "near the river|in the garden|under the tree|by the sea|at night|in the city".split("|")


def sentence(rng: random.Random) -> str:
    subject = f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"
    tail = f" {rng.choice(PLACES)}" if rng.random() < 0.5 else ""
    return f"{subject} {rng.choice(VERBS)} the {rng.choice(NOUNS)}{tail}."


SYLLABLES = "ka lo mi ne su ta ri po ve da fu gi ho ja ke lu ma no pe ra si to ul vi wo ze".split()


def lexicon_sentence(rng: random.Random, words: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(words, weights, k=rng.randint(6, 14))) + "."


def make_corpus(documents: int, seed: int = 0, lexicon: int = 0) -> str:
    """``documents`` paragraphs of 2-6 sentences, one sentence a line, separated by blank lines; with
    ``lexicon`` > 0 the sentences draw from that many made-up words (Zipf frequencies) instead of the
    small English grammar, so that a larger BPE vocabulary fills up."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(lexicon)})
    weights = [1.0 / (rank + 1) for rank in range(len(words))]

    def line() -> str:
        return lexicon_sentence(rng, words, weights) if words else sentence(rng)

    paragraphs = ["\n".join(line() for _ in range(rng.randint(2, 6))) for _ in range(documents)]
    return "\n\n".join(paragraphs) + "\n"


def make_tokenizer(text: str, vocab: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<unk>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.split("\n\n"), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<eos>")


def make_model(arch: str, vocab: int, embd: int, layers: int, positions: int = 128, **extra: object) -> Any:
    if arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=vocab, n_embd=embd, n_layer=layers, n_head=2, n_positions=positions,
            bos_token_id=1, eos_token_id=1, **extra,
        )  # fmt: skip
        return GPT2LMHeadModel(config)
    if arch == "gptj":  # an untied unembedding with a bias
        from transformers import GPTJConfig, GPTJForCausalLM

        config = GPTJConfig(
            vocab_size=vocab, n_embd=embd, n_layer=layers, n_head=2, rotary_dim=8, n_positions=positions,
            bos_token_id=1, eos_token_id=1, **extra,
        )  # fmt: skip
        return GPTJForCausalLM(config)
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab, hidden_size=embd, intermediate_size=2 * embd, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=positions,
        bos_token_id=1, eos_token_id=1, pad_token_id=0, **extra,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def train(model: torch.nn.Module, ids: list[int], steps: int, seed: int, window: int = 64) -> None:
    generator = torch.Generator().manual_seed(seed)
    data = torch.tensor(ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, data.numel() - window - 1, (16,), generator=generator)
        batch = torch.stack([data[s : s + window] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def build(
    out: Path,
    arch: str = "gpt2",
    vocab: int = 512,
    embd: int = 64,
    layers: int = 2,
    documents: int = 400,
    train_steps: int = 0,
    seed: int = 0,
    positions: int = 128,
    lexicon: int = 0,
    **extra: object,
) -> tuple[Path, Path]:
    """Write OUT/corpus.txt and OUT/model; returns (model folder, corpus)."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    text = make_corpus(documents, seed, lexicon)
    corpus = out / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    tokenizer = make_tokenizer(text, vocab)
    model = make_model(arch, len(tokenizer), embd, layers, positions, **extra)
    if train_steps:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        train(model, ids, train_steps, seed)
    folder = out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--arch", choices=("gpt2", "llama", "gptj"), default="gpt2")
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--embd", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--positions", type=int, default=128, help="longest sequence of the model")
    parser.add_argument("--lexicon", type=int, default=0, help="made-up words instead of the grammar")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder, corpus = build(
        args.out, args.arch, args.vocab, args.embd, args.layers, args.documents, args.train_steps, args.seed,
        args.positions, args.lexicon,
    )  # fmt: skip
    print(f"wrote {folder} and {corpus}")


if __name__ == "__main__":
    main()
