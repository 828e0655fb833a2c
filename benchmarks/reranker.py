"""What the re-ranker adds on the retrieval example's data: side by side, in one run, the dual
encoder's ranking, the re-ranker's joint score alone over the dual encoder's top k (chance: 1/k
at R@1), and the two combined (what ``model.rerank`` gives).

    .venv/bin/python benchmarks/reranker.py                       # graph-gat, re-ranker conv "hgt"
    .venv/bin/python benchmarks/reranker.py --rerank-conv shared  # the dual encoder's GAT blocks

Prints one JSON object (text -> image metrics) and writes it to ``--json`` when given.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import retrieval as example  # noqa: E402  (the example's data generator)

from graphfuse.bench.checks import UsageError, check_writable_file  # noqa: E402
from graphfuse.data import PairGraphs  # noqa: E402
from graphfuse.io import atomic_write_text  # noqa: E402
from graphfuse.models import create_model, list_models  # noqa: E402
from graphfuse.nn import list_convs  # noqa: E402
from graphfuse.train import Trainer, featurize_dataset, ranking_metrics  # noqa: E402

TRAIN_SIZE, TEST_SIZE = 2048, 256  # the test set is the gallery the top k is taken from


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="graph-gat", choices=list_models(family="graph"),
                        help="a graph model (default: graph-gat)")
    parser.add_argument("--rerank-conv", default="hgt", choices=[*list_convs(), "shared"],
                        help='a conv name, or "shared" for the dual encoder\'s (default: hgt)')
    parser.add_argument("--epochs", type=example.at_least(1), default=10)
    parser.add_argument("--k", type=example.at_least(1), default=10, help=f"at most {TEST_SIZE}, the gallery size")
    parser.add_argument("--seed", type=example.at_least(0), default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.k > TEST_SIZE:
        parser.error(f"--k {args.k} is more than the {TEST_SIZE} gallery images it ranks; choose at most {TEST_SIZE}")
    if args.json is not None:
        try:
            check_writable_file("--json", args.json)  # before training, as python -m graphfuse.bench does
        except UsageError as error:
            parser.error(str(error).removeprefix("error: "))

    builder = example.make_builder()
    train = featurize_dataset(builder, example.make_data(TRAIN_SIZE, args.seed), progress=False)
    test = featurize_dataset(builder, example.make_data(TEST_SIZE, args.seed + 1), progress=False)
    torch.manual_seed(args.seed)
    model = create_model(args.model, builder=builder, task="retrieval", hidden_channels=64, dropout=0.0,
                         rerank_negatives=2, rerank_conv=None if args.rerank_conv == "shared" else args.rerank_conv)
    trainer = Trainer(model, builder, epochs=args.epochs, batch_size=64, lr=2e-3, seed=args.seed, progress=False)
    trainer.fit(train)

    outputs = trainer.predict(test)
    similarity = outputs["query"] @ outputs["gallery"].T
    top = similarity.topk(args.k, dim=1).indices
    rows = torch.arange(similarity.size(0)).repeat_interleave(args.k)
    model.eval()
    with torch.no_grad():
        pairs = torch.stack([rows, top.reshape(-1)], 1)
        joint = model.pair_scores(PairGraphs(builder, test)(pairs, model.query_types, model.gallery_types))
    joint_only = torch.full_like(similarity, float("-inf"))
    joint_only[rows, top.reshape(-1)] = joint
    # Queries whose positive is outside the top k rank last under the joint score alone.
    joint_only = torch.where(torch.isinf(joint_only), joint.min() - similarity.new_ones(()), joint_only)
    report = {"model": args.model, "rerank_conv": args.rerank_conv, "epochs": args.epochs, "k": args.k,
              "dual": ranking_metrics(similarity), "joint_only_top_k": ranking_metrics(joint_only),
              "combined": ranking_metrics(model.rerank(similarity, PairGraphs(builder, test), k=args.k))}
    print(json.dumps(report))
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
