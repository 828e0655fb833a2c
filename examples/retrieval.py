"""Text <-> image retrieval with a graph dual encoder and a joint re-ranker, on data generated here.

Each image is a 5x5 grid of cells (20x20 pixels, one 4x4 patch per cell) in which four cells are
lit; its caption names the lit cells ("b3", "e1", "a2", "c5", in random order, among filler
words). Finding an image from its caption needs the caption's words matched to patch positions:
every image is its own instance (12,650 possible layouts, most test layouts unseen in training),
so classes do not help.

    python examples/retrieval.py
    torchrun --nproc_per_node=2 examples/retrieval.py --ddp

The dual encoder embeds captions and images separately (the gallery is indexed once); the
re-ranker then rescores each query's top 10 candidates on the joint caption + image graph.
The last line printed is one JSON object: Recall@1/5/10 for text->image, and under "i2t" for
image->text, after re-ranking (the dual encoder's own are under "dual").
"""
from __future__ import annotations

import argparse
import json
import logging
import math

import torch
from classification import at_least  # examples/classification.py's argparse type

from graphfuse import GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.data import PairGraphs
from graphfuse.models import create_model, list_models
from graphfuse.train import Trainer, featurize_dataset, ranking_metrics
from graphfuse.train.distributed import setup

ROWS, COLUMNS = "abcde", "12345"
CELLS = [row + column for row in ROWS for column in COLUMNS]
LIT = 4
LAYOUTS = math.comb(len(CELLS), LIT)  # distinct layouts: make_data draws at most this many samples
FILLER = "the a lit cells are at and in picture grid".split()


def make_sample(lit: list[int], generator: torch.Generator) -> dict:
    image = 0.2 * torch.rand(20, 20, generator=generator)
    for cell in lit:
        row, column = divmod(cell, len(COLUMNS))
        image[4 * row:4 * row + 4, 4 * column:4 * column + 4] += 0.8
    words = [CELLS[cell] for cell in lit] + [FILLER[int(i)] for i in torch.randint(len(FILLER), (3,),
                                                                                   generator=generator)]
    order = torch.randperm(len(words), generator=generator).tolist()
    return {"text": " ".join(words[i] for i in order), "image": image}


def make_data(size: int, seed: int) -> list[dict]:
    """``size`` samples with distinct layouts: two images with the same lit cells would differ only
    by noise, and no model could tell which one a caption meant."""
    generator = torch.Generator().manual_seed(seed)
    layouts: dict[frozenset, list[int]] = {}
    while len(layouts) < size:
        lit = torch.randperm(len(CELLS), generator=generator)[:LIT].tolist()
        layouts.setdefault(frozenset(lit), lit)
    return [make_sample(lit, generator) for lit in layouts.values()]


def make_builder() -> GraphBuilder:
    """Caption tokens and image patches, every token joined to every patch."""
    return GraphBuilder({"text": TextModality(Tokenizer(CELLS + FILLER)),
                         "image": ImageModality(patch_size=4, channels=1)}, cross="full")


def recalls(metrics: dict) -> dict:
    return {key: round(metrics[key], 2) for key in ("R@1", "R@5", "R@10")}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    models = list_models(family="graph")  # a dual encoder with a re-ranker
    parser.add_argument("--model", default="graph-gat", choices=models, metavar="NAME",
                        help=f"one of {', '.join(models)} (default: graph-gat)")
    parser.add_argument("--epochs", type=at_least(1), default=10)
    parser.add_argument("--batch-size", type=at_least(1), default=64, help="global batch size, split across processes")
    parser.add_argument("--train-size", type=at_least(1), default=2048, help=f"at most {LAYOUTS} (distinct layouts)")
    parser.add_argument("--test-size", type=at_least(1), default=256, help=f"at most {LAYOUTS} (distinct layouts)")
    parser.add_argument("--rerank-k", type=at_least(1), default=10)
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--ddp", action="store_true", help="train on the processes torchrun started (DDP)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    for option, size in (("--train-size", args.train_size), ("--test-size", args.test_size)):
        if size > LAYOUTS:
            parser.error(f"{option} {size} is more than the {LAYOUTS} distinct layouts ({LIT} lit cells of "
                         f"{len(CELLS)}) it can draw; choose at most {LAYOUTS}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    builder = make_builder()
    train = featurize_dataset(builder, make_data(args.train_size, args.seed), progress=False)
    test = featurize_dataset(builder, make_data(args.test_size, args.seed + 1), progress=False)

    process = setup(distributed=args.ddp)
    if args.batch_size % process.world_size:
        parser.error(f"--batch-size {args.batch_size} does not split over {process.world_size} processes")
    torch.manual_seed(args.seed)
    model = create_model(args.model, builder=builder, task="retrieval", query=("text",), gallery=("image",),
                         hidden_channels=64, dropout=0.0, rerank_negatives=2)
    trainer = Trainer(model, builder, epochs=args.epochs, batch_size=args.batch_size // process.world_size, lr=2e-3,
                      seed=args.seed, distributed=args.ddp, progress=not args.no_progress)
    trainer.fit(train)

    outputs = trainer.predict(test)
    similarity = outputs["query"] @ outputs["gallery"].T
    pairs = PairGraphs(builder, test)
    text_to_image = model.rerank(similarity, pairs, k=args.rerank_k)
    image_to_text = model.rerank(similarity.T, pairs, k=args.rerank_k, reverse=True)
    result = {**recalls(ranking_metrics(text_to_image)), "i2t": recalls(ranking_metrics(image_to_text)),
              "dual": {**recalls(ranking_metrics(similarity)), "i2t": recalls(ranking_metrics(similarity.T))}}
    if process.is_main:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
