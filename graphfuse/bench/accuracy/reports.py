"""The accuracy benchmark's reports: results in table order, the markdown tables, the CSV and the
figure."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphfuse.bench.accuracy.protocol import FAMILIES, RECALL_KS
from graphfuse.io import atomic_replace, atomic_write_text

LABELS = {"accuracy": "accuracy (%)", "macro_f1": "macro-F1 (%)", **{f"R@{k}": f"R@{k} (%)" for k in RECALL_KS}}
COLOURS = {"graph": "tab:blue", "baseline": "tab:orange", "unimodal": "tab:gray"}


def sort_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Graph methods, then baselines, then unimodal models; each by mean, best first, failed last."""
    def key(row):
        failed = row["mean"] is None
        return FAMILIES.index(row["family"]), failed, 0.0 if failed else -row["mean"]

    return sorted(results, key=key)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(name: str, task_report: Mapping[str, Any]) -> str:
    """The markdown table of one task (with the accuracy without each modality, where measured)."""
    metrics = task_report["metrics"]
    removed = list(dict.fromkeys(m for row in task_report["results"] for m in row.get("without") or {}))
    header = ["method", "family", *(LABELS.get(m, m) for m in metrics), *(f"without {m}" for m in removed),
              "params", "train s", "infer samples/s"]
    lines = [f"### {name} ({task_report['kind']}): {task_report['description']}".rstrip(": "), "",
             "| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for row in task_report["results"]:
        if "error" in row:
            message = row["error"] if len(row["error"]) <= 80 else row["error"][:77] + "..."
            cells = [f"failed: {_cell(message)}", *([""] * (len(header) - 3))]
        else:
            cells = [f"{row['metrics'][m]['mean']:.1f} ± {row['metrics'][m]['std']:.1f}" for m in metrics]
            without = row.get("without") or {}
            cells += [f"{without[m]['mean']:.1f} ± {without[m]['std']:.1f}" if m in without else "–" for m in removed]
            cells += [f"{row['params']:,}", f"{row['train_seconds']:.1f}", f"{row['samples_per_second']:,.0f}"]
        lines.append("| " + " | ".join([row["method"], row["family"], *cells]) + " |")
    return "\n".join(lines)


def format_report(report: Mapping[str, Any]) -> str:
    return "\n\n".join(format_table(name, task) for name, task in report["tasks"].items())


def write_markdown(path: Path, report: Mapping[str, Any]) -> None:
    config, machine = report["config"], report["machine"]
    done = len(report["tasks"])
    lines = ["# Accuracy benchmark", "",
             f"`python -m graphfuse.bench accuracy` — {config['seeds']} seed(s) per method"
             f"{', quick' if config['quick'] else ''}; data fixed per task (seed {config['data_seed']}), seeds "
             f"change initialisation and data order. Metrics in percent, mean ± sample std over seeds, on the "
             f"test split with the best validation epoch's weights. `train s`: Trainer.fit wall time per seed; "
             f"`infer samples/s`: test samples per second of scoring.", "",
             f"Machine: {machine['platform']}, torch {machine['torch']}, {config['jobs']} run(s) at a time of "
             f"{machine['threads']} thread(s) each, {machine['cpu_count']} CPU(s), device {machine['device']}.", "",
             ""]
    if done < len(config["tasks"]):
        lines += [f"Partial: {done} of {len(config['tasks'])} tasks done.", ""]
    atomic_write_text(path, "\n".join(lines) + format_report(report) + "\n")


def write_csv(path: Path, report: Mapping[str, Any]) -> None:
    names = list(dict.fromkeys(m for task in report["tasks"].values() for m in task["metrics"]))
    columns = ["task", "kind", "method", "family", "model", "metric", "num_seeds",
               *(f"{m}_{stat}" for m in names for stat in ("mean", "std")),
               "params", "params_std", "train_seconds", "train_seconds_std", "samples_per_second",
               "samples_per_second_std", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for name, task in report["tasks"].items():
        for row in task["results"]:
            line = {"task": name, "kind": task["kind"], "metric": task["metric"], "num_seeds": len(row["seeds"]),
                    "error": row.get("error", ""),
                    **{key: row[key] for key in ("method", "family", "model", "params", "params_std",
                                                 "train_seconds", "train_seconds_std", "samples_per_second",
                                                 "samples_per_second_std")}}
            for metric, values in row["metrics"].items():
                line[f"{metric}_mean"], line[f"{metric}_std"] = values["mean"], values["std"]
            writer.writerow(line)
    atomic_write_text(path, buffer.getvalue())


def plot(path: Path, report: Mapping[str, Any]) -> None:
    """One panel per task: horizontal bars of the primary metric's mean with the std as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    tasks = list(report["tasks"].items())
    heights = [max(1, len(task["results"])) for _, task in tasks]
    figure = Figure(figsize=(8, 1.2 * len(tasks) + 0.35 * sum(heights)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(tasks), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for axis, (name, task) in zip(axes, tasks, strict=True):
        rows = task["results"]
        means = [row["mean"] or 0.0 for row in rows]
        errors = [row["std"] or 0.0 for row in rows]
        axis.barh(range(len(rows)), means, xerr=errors, color=[COLOURS[row["family"]] for row in rows],
                  capsize=3)
        for y, row in enumerate(rows):
            if "error" in row:
                axis.text(1, y, "failed", va="center", fontsize=8, color="tab:red")
        axis.set_yticks(range(len(rows)), [row["method"] for row in rows])
        axis.invert_yaxis()
        axis.set_xlim(0, 100)
        axis.set_xlabel(LABELS.get(task["metric"], task["metric"]))
        axis.set_title(f"{name} ({task['kind']})", fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    families = [f for f in FAMILIES if any(row["family"] == f for _, task in tasks for row in task["results"])]
    axes[0].legend(handles=[Patch(color=COLOURS[f], label=f) for f in families], loc="lower right", fontsize=8)
    save_png(figure, path)


def save_png(figure, path: Path, dpi: int = 120) -> None:
    """Writes a matplotlib ``figure`` to ``path`` as PNG, atomically."""
    with atomic_replace(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)


def write_outputs(out: Path, report: Mapping[str, Any], stem: str = "accuracy") -> None:
    write_markdown(out / f"{stem}.md", report)
    write_csv(out / f"{stem}.csv", report)
    plot(out / f"{stem}.png", report)
