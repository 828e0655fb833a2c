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

from graphfuse.data import PairGraphs  # noqa: E402
from graphfuse.io import atomic_write_text  # noqa: E402
from graphfuse.models import create_model  # noqa: E402
from graphfuse.train import Trainer, featurize_dataset, ranking_metrics  # noqa: E402


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="graph-gat")
    parser.add_argument("--rerank-conv", default="hgt", help='a conv name, or "shared" for the dual encoder\'s')
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    builder = example.make_builder()
    train = featurize_dataset(builder, example.make_data(2048, args.seed), progress=False)
    test = featurize_dataset(builder, example.make_data(256, args.seed + 1), progress=False)
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
