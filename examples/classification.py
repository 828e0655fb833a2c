"""Tri-modal classification with graph fusion, on data generated here.

Each sample has a sentence, a 16x16 image and a short tone. The class (one of 8) combines one
bit from each modality: the colour word in the sentence (red / blue, among filler words), the
orientation of the bar in the image (horizontal / vertical, anywhere, in noise) and the pitch
of the tone (low / high, in noise). No modality alone can do better than 2 of 8 classes right
(25 %), chance is 12.5 %: only fusing all three reaches high accuracy.

    python examples/classification.py                       # one process
    torchrun --nproc_per_node=2 examples/classification.py --ddp   # two processes, same result

``--batch-size`` is the global batch: with ``--ddp`` each of N processes takes 1/N of it, so the
runs step alike. The last line printed is one JSON object with the test metrics.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Callable

import torch

from graphfuse import AudioModality, GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.models import create_model, list_models, model_family
from graphfuse.train import Trainer, featurize_dataset
from graphfuse.train.distributed import setup

COLOURS = ("red", "blue")
FILLER = "the a shape here there is on with and of small big image sound picture".split()
SAMPLE_RATE = 8000
PITCHES = (300.0, 1200.0)


def make_sample(label: int, generator: torch.Generator) -> dict:
    colour, orientation, pitch = label >> 2 & 1, label >> 1 & 1, label & 1
    words = [FILLER[int(i)] for i in torch.randint(len(FILLER), (5,), generator=generator)]
    words.insert(int(torch.randint(6, (), generator=generator)), COLOURS[colour])
    image = 0.3 * torch.rand(16, 16, generator=generator)
    line = int(torch.randint(2, 14, (), generator=generator))
    start = int(torch.randint(0, 6, (), generator=generator))
    if orientation:
        image[start:start + 10, line] = 1.0
    else:
        image[line, start:start + 10] = 1.0
    seconds = torch.arange(int(0.15 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.5 * torch.sin(2 * math.pi * PITCHES[pitch] * seconds + float(torch.rand((), generator=generator)) * 6)
    audio = tone + 0.3 * torch.randn(seconds.numel(), generator=generator)
    return {"text": " ".join(words), "image": image, "audio": (audio, SAMPLE_RATE)}


def make_data(size: int, seed: int) -> list[tuple[dict, int]]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(8, (size,), generator=generator).tolist()
    return [(make_sample(label, generator), label) for label in labels]


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""
    def integer(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return integer


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = [name for name in list_models() if model_family(name) != "unimodal"]  # unimodal needs a modality
    parser.add_argument("--model", default="graph-gat", choices=models, metavar="NAME",
                        help=f"one of {', '.join(models)} (default: graph-gat)")
    parser.add_argument("--epochs", type=at_least(1), default=30)
    parser.add_argument("--batch-size", type=at_least(1), default=32, help="global batch size, split across processes")
    parser.add_argument("--train-size", type=at_least(1), default=1024)
    parser.add_argument("--test-size", type=at_least(2), default=256,
                        help="test samples; a validation set half this size is drawn too")
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--ddp", action="store_true", help="train on the processes torchrun started (DDP)")
    parser.add_argument("--checkpoint-dir", default=None, help="keep last.pt / best.pt here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    builder = GraphBuilder({
        "text": TextModality(Tokenizer(list(COLOURS) + FILLER)),
        "image": ImageModality(patch_size=4, channels=1),
        "audio": AudioModality(sample_rate=SAMPLE_RATE, n_mels=16),
    }, cross="full")
    train = featurize_dataset(builder, make_data(args.train_size, args.seed), progress=False)
    val = featurize_dataset(builder, make_data(args.test_size // 2, args.seed + 1), progress=False)
    test = featurize_dataset(builder, make_data(args.test_size, args.seed + 2), progress=False)

    process = setup(distributed=args.ddp)
    if args.batch_size % process.world_size:
        parser.error(f"--batch-size {args.batch_size} does not split over {process.world_size} processes")
    torch.manual_seed(args.seed)
    model = create_model(args.model, builder=builder, task="classification", num_classes=8, hidden_channels=32, heads=4,
                         dropout=0.0)
    trainer = Trainer(model, builder, epochs=args.epochs, batch_size=args.batch_size // process.world_size, lr=3e-3,
                      seed=args.seed, distributed=args.ddp, checkpoint_dir=args.checkpoint_dir,
                      progress=not args.no_progress)
    trainer.fit(train, val)
    metrics = trainer.evaluate(test)
    result = {"accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4)}
    if process.is_main:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
