"""``python -m graphfuse.explain``: explain a model on an embedded task and draw the pictures.

Trains a small graph model (``graph-hgt``) on a classification task's training split (or loads a saved pipeline
with ``--pipeline DIR``), explains its predictions on the first test samples and writes their
pictures (PNG) to ``--out``, listing the files. Where the task's text marks words with time spans
(``digits``: a ``keep`` marker on the spoken digit that is the label), it also measures over the
whole test split, per seed and before training, how much the marker draws on the frames of its
own word (attention rollout through every layer), and writes the numbers to ``explain.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphfuse.bench.checks import UsageError, check_positive, check_writable_folder
from graphfuse.explain.explainer import explain
from graphfuse.explain.explanation import Explanation
from graphfuse.explain.measures import NothingToMeasure, SpanAttention, span_attention
from graphfuse.io import atomic_write_text

#: Samples explained per forward pass while measuring over a split.
BATCH = 64
#: The defaults of the options that train a model; ``--pipeline`` (a trained model) takes none of them.
TRAINING_DEFAULTS = {"model": "graph-hgt", "seeds": 3, "epochs": 10, "hidden": 32}
#: Attention heads of every model trained here: ``--hidden`` splits over them.
HEADS = 4


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m graphfuse.explain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="digits", help="an embedded classification task (default: digits)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the pictures and explain.json")
    parser.add_argument("--pipeline", type=Path, help="explain this saved pipeline instead of training one")
    parser.add_argument("--model",
                        help="the graph model to train (default: graph-hgt, whose dot-product attention depends on "
                             "the attending node; GAT's ranks the sources alike for every node)")
    parser.add_argument("--samples", type=int, default=4, help="test samples to draw (default: 4)")
    parser.add_argument("--seeds", type=int, help="models trained, for the spread (default: 3)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: 10)")
    parser.add_argument("--hidden", type=int, help=f"hidden channels, a multiple of the {HEADS} attention heads "
                                                    f"(default: 32)")
    parser.add_argument("--word", default="keep", help="the timed word whose attention is measured (default: keep)")
    parser.add_argument("--full", action="store_true", help="the task's full splits (default: its quick ones)")
    args = parser.parse_args(argv)
    check_positive(args, ("samples", "seeds", "epochs", "hidden"))
    if args.pipeline is not None:
        given = [f"--{name}" for name in TRAINING_DEFAULTS if getattr(args, name) is not None]
        if given:
            raise UsageError(f"error: {', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect with "
                             f"--pipeline: the pipeline holds its trained model; drop {' and '.join(given)}")
    for name, default in TRAINING_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def check_args(args: argparse.Namespace):
    """The task (and pipeline) the options name, checked before any work starts."""
    import graphfuse.datasets  # noqa: F401  (registers the embedded tasks)
    from graphfuse.checkpoint import CheckpointError
    from graphfuse.datasets.fashion import DatasetNotInstalledError
    from graphfuse.datasets.tasks import list_tasks, load_task
    from graphfuse.models import list_models, model_family

    if args.task not in list_tasks():
        raise UsageError(f"error: unknown --task {args.task!r}; choose from {', '.join(list_tasks())}")
    if args.pipeline is None:
        fused = [name for name in list_models() if model_family(name) != "unimodal"]
        if args.model in list_models() and args.model not in fused:
            raise UsageError(f"error: --model {args.model!r} reads a single modality, which this command does not "
                             f"choose; pick a model that fuses them: {', '.join(fused)}")
        if args.model not in fused:
            raise UsageError(f"error: unknown --model {args.model!r}; choose from {', '.join(fused)}")
        if args.hidden % HEADS:
            raise UsageError(f"error: --hidden {args.hidden} does not split over the {HEADS} attention heads; pass a "
                             f"multiple of {HEADS}, e.g. --hidden {HEADS * max(1, round(args.hidden / HEADS))}")
    check_writable_folder("--out", args.out)
    pipeline = None
    if args.pipeline is not None:
        from graphfuse.pipeline import Pipeline

        if not args.pipeline.is_dir():
            raise UsageError(f"error: --pipeline '{args.pipeline}' is not a folder; pass a folder written by "
                             f"Pipeline.save_pretrained")
        try:
            pipeline = Pipeline.from_pretrained(args.pipeline)
        except (OSError, CheckpointError) as error:
            raise UsageError(f"error: --pipeline cannot be loaded: {error}") from None
    try:
        task = load_task(args.task, quick=not args.full)
    except DatasetNotInstalledError as error:
        raise UsageError(f"error: --task {args.task!r} cannot be loaded: {error}") from None
    if task.kind != "classification":
        raise UsageError(f"error: --task {args.task!r} is a {task.kind} task; python -m graphfuse.explain draws "
                         f"classification tasks (explain() itself takes retrieval models too)")
    if pipeline is not None:
        if pipeline.task != "classification":
            raise UsageError(f"error: --pipeline holds a {pipeline.task} model; this command explains classification")
        check_pipeline_fits(pipeline, task)
    if args.samples > len(task.test):
        raise UsageError(f"error: --samples {args.samples} is more than the {len(task.test)} test samples of --task "
                         f"{args.task!r}{'' if args.full else ' (its quick splits; --full for its full ones)'}; pass "
                         f"at most {len(task.test)}")
    return task, pipeline


def check_pipeline_fits(pipeline, task) -> None:
    """Refuses a pipeline saved for another task than ``task``: one of other node types or another
    number of classes, or whose builder makes other nodes of the task's samples (another vocabulary,
    patch size, timing)."""
    saved, wanted = pipeline.builder.schema(), task.builder.schema()
    classes = pipeline.model.head.out_channels
    if set(saved.node_types) != set(wanted.node_types) or classes != task.num_classes:
        raise UsageError(f"error: --pipeline was saved for node types {saved.node_types} and {classes} classes, but "
                         f"--task {task.name} has {wanted.node_types} and {task.num_classes} classes; pass the --task "
                         f"it was trained on")
    differences = []
    for node_type in wanted.node_types:
        ours, theirs = saved.spec(node_type), wanted.spec(node_type)
        fields = [f"{field.name} {getattr(ours, field.name)!r} against {getattr(theirs, field.name)!r}"
                  for field in dataclasses.fields(ours) if field.compare
                  and getattr(ours, field.name) != getattr(theirs, field.name)]
        if fields:
            differences.append(f"{node_type}: {', '.join(fields)}")
    if differences:
        raise UsageError(f"error: --pipeline reads the samples otherwise than --task {task.name} does "
                         f"({'; '.join(differences)}): it was saved for another task; pass the --task it was trained "
                         f"on")


def _explain_split(model, builder, items) -> list[Explanation]:
    return [explain(model, items[i:i + BATCH], builder=builder) for i in range(0, len(items), BATCH)]


def _measure(explanations: list[Explanation], word: str) -> tuple[SpanAttention | None, str | None]:
    """The own-word measure of ``word``, or ``None`` and why there is nothing to measure."""
    try:
        return span_attention(explanations, word), None
    except NothingToMeasure as error:
        return None, str(error)


def _spread(values: list[float]) -> str:
    """Mean ± standard deviation; every value where one is infinite (no path reached the other words'
    frames: nothing to average)."""
    if not all(math.isfinite(v) for v in values):
        return ", ".join(f"{v:.2f}" for v in values)
    mean = statistics.fmean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


def _json_value(value: Any) -> Any:
    """Infinite ratios as the strings ``"inf"`` (JSON has no infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _train(args: argparse.Namespace, task, seed: int):
    from graphfuse.models import create_model
    from graphfuse.train import Trainer

    model = create_model(args.model, schema=task.builder.schema(), num_classes=task.num_classes,
                         hidden_channels=args.hidden, heads=HEADS, seed=seed)
    before, _ = _measure(_explain_split(model, task.builder, task.test), args.word)
    trainer = Trainer(model, task.builder, epochs=args.epochs, batch_size=32, lr=3e-3, seed=seed, progress=False)
    trainer.fit(task.train, task.val)
    accuracy = trainer.evaluate(task.test)["accuracy"]
    return model, accuracy, before


def run(args: argparse.Namespace, task, pipeline) -> dict[str, Any]:
    runs = []
    first = unmeasured = None
    for seed in range(1 if pipeline is not None else args.seeds):
        if pipeline is not None:
            model, builder, before = pipeline.model, pipeline.builder, None
            accuracy = None
        else:
            model, accuracy, before = _train(args, task, seed)
            builder = task.builder
        explanations = _explain_split(model, builder, task.test)
        after, unmeasured = _measure(explanations, args.word)
        runs.append({"seed": seed, "accuracy": accuracy, "trained": after, "untrained": before})
        parts = [] if accuracy is None else [f"test accuracy {100 * accuracy:.1f} %"]
        if after is not None:
            parts.append(f"{args.word!r} own-word ratio {after.ratio:.1f}, contrast {after.contrast:.2f}"
                         + ("" if before is None else f" (untrained {before.ratio:.1f}, {before.contrast:.2f})"))
        print(" ".join([f"seed {seed}:" if pipeline is None else "pipeline:", "; ".join(parts)]).rstrip(), flush=True)
        if first is None:
            first = (model, builder)
    model, builder = first
    shown = explain(model, task.test[:args.samples], builder=builder)
    written = []
    from graphfuse.explain.plots import save_pictures

    for sample in range(shown.num_samples):
        written += save_pictures(shown, sample, args.out)
    return {"runs": runs, "written": written, "unmeasured": unmeasured}


def _report(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    runs = [r for r in result["runs"] if r["trained"] is not None]
    report: dict[str, Any] = {"task": args.task, "model": str(args.pipeline or args.model), "word": args.word,
                              "seeds": [{"seed": r["seed"], "accuracy": r["accuracy"],
                                         **{f"{when}_{name}": getattr(r[when], name)
                                            for when in ("trained", "untrained") if r[when] is not None
                                            for name in ("ratio", "contrast", "own", "other", "peers_own")}}
                                        for r in result["runs"]],
                              "pictures": [str(p) for p in result["written"]]}
    if not runs:
        print(f"(no own-word measure of {args.word!r}: {result['unmeasured']})")
        report["unmeasured"] = result["unmeasured"]
        return report
    ratios = [r["trained"].ratio for r in runs]
    contrasts = [r["trained"].contrast for r in runs]
    untrained = [r["untrained"] for r in runs if r["untrained"] is not None]
    print(f"\n{args.word!r} own-word ratio (attention rollout through every layer; weight per frame of its own "
          f"word / per frame of the other words), over {len(runs)} seed(s) and {runs[0]['trained'].samples} test "
          f"samples: {_spread(ratios)}" + (f" (untrained: {_spread([u.ratio for u in untrained])})" if untrained
                                            else ""))
    print(f"{args.word!r} contrast (its weight per frame of its own word / the other words' weight per frame of "
          f"theirs): {_spread(contrasts)}" + (f" (untrained: {_spread([u.contrast for u in untrained])})"
                                              if untrained else ""))
    if untrained and statistics.fmean(u.ratio for u in untrained) > 2:
        print("  The task's edges join each word to the frames of its own span only (TemporalAlignment): the other "
              "words' frames reach it only through other nodes, so the ratio is large before any training and "
              "shows the wiring. The contrast is what training changed: how much more of its attention the word "
              "gives its frames than the other words give theirs. It varies with the seed, as a model can also "
              "read the word's frames through the wiring alone, whatever its attention.")
    if len(contrasts) > 1:
        margin, spread = statistics.fmean(contrasts) - 1, statistics.stdev(contrasts)
        print(f"  contrast above 1 by more than its seed spread: {'yes' if margin > spread else 'no'} "
              f"({margin:+.2f} against {spread:.2f})")
    report["summary"] = {"ratio": ratios, "contrast": contrasts,
                         "untrained_ratio": [u.ratio for u in untrained],
                         "untrained_contrast": [u.contrast for u in untrained]}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        task, pipeline = check_args(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return error.code
    result = run(args, task, pipeline)
    report = _report(args, result)
    path = args.out / "explain.json"
    atomic_write_text(path, json.dumps(_json_value(report), indent=2, allow_nan=False) + "\n")
    print("\nwrote:")
    for written in [*result["written"], path]:
        print(f"  {written}")
    return 0
