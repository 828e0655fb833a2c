"""The robustness benchmark's reports: per task a table of accuracy under each test condition and its
claims, the CSV (one row per task, method and condition) and the figure."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphfuse.bench.accuracy.reports import save_png
from graphfuse.bench.accuracy.runner import MISSING
from graphfuse.bench.robustness.claims import UNIMODAL_PREFIX, format_claims, task_claims
from graphfuse.io import atomic_write_text

#: How each key of the scores with modalities removed is shown; "only" repeats "without_pair" with three
#: modalities, so tables show it only where it differs (four modalities or more).
CONDITION_LABELS = {"without": "without {}", "without_pair": "without {}", "only": "{} alone"}


def conditions(task_report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``(key, modality or pair)`` test conditions the task's fused rows were scored under, beyond
    every modality: each modality removed, each pair removed, and (with four modalities or more)
    each modality alone."""
    rows = task_report["results"]
    found = {key: list(dict.fromkeys(m for row in rows for m in row.get(key) or {})) for key in MISSING}
    shown = [(key, m) for key in ("without", "without_pair") for m in found[key]]
    if len(found["without"]) > 3:
        shown += [("only", m) for m in found["only"]]
    return shown


def _score(row: Mapping[str, Any], key: str | None, modality: str | None) -> Mapping[str, Any] | None:
    if row["mean"] is None:
        return None
    if key is None:
        return {"mean": row["mean"], "std": row["std"], "seeds": row["seeds"]}
    return (row.get(key) or {}).get(modality)


def _dropout(row: Mapping[str, Any]) -> str:
    return f"{row['modality_dropout']:g}" if row.get("modality_dropout") else "–"


def format_table(name: str, task_report: Mapping[str, Any]) -> str:
    """The markdown table of one task (accuracy, mean ± std over seeds, under each test condition),
    followed by its claims."""
    shown = conditions(task_report)
    header = ["method", "family", "drop-out", "all modalities",
              *(CONDITION_LABELS[key].format(m) for key, m in shown)]
    lines = [f"### {name}: {task_report['description']}".rstrip(": "), "",
             "| " + " | ".join(header) + " |", "|---|---|---:|" + "---:|" * (len(header) - 3)]
    for row in task_report["results"]:
        if "error" in row:
            message = row["error"] if len(row["error"]) <= 80 else row["error"][:77] + "..."
            cells = [f"failed: {message}".replace("|", "\\|"), *([""] * (len(header) - 3))]
        else:
            scores = [_score(row, None, None), *(_score(row, key, m) for key, m in shown)]
            cells = [_dropout(row), *(f"{s['mean']:.1f} ± {s['std']:.1f}" if s else "–" for s in scores)]
        lines.append("| " + " | ".join([row["method"], row["family"], *cells]) + " |")
    claims = task_claims(name, task_report)
    if claims:
        lines += ["", format_claims(claims)]
    return "\n".join(lines)


def write_markdown(path: Path, report: Mapping[str, Any]) -> None:
    config, machine = report["config"], report["machine"]
    lines = ["# Robustness benchmark", "",
             f"`python -m graphfuse.bench robustness` — {config['seeds']} seed(s) per method"
             f"{', quick' if config['quick'] else ''}; data fixed per task (seed {config['data_seed']}). Test "
             f"accuracy in percent, mean ± sample std over seeds, with the best validation epoch's weights; each "
             f"fused method trained without modality drop-out (`–`) and with it (its probability), and scored "
             f"with every modality and with modalities removed from the test samples.", "",
             f"Machine: {machine['platform']}, torch {machine['torch']}, {config['jobs']} run(s) at a time of "
             f"{machine['threads']} thread(s) each, {machine['cpu_count']} CPU(s), device {machine['device']}.", ""]
    if len(report["tasks"]) < len(config["tasks"]):
        lines += [f"Partial: {len(report['tasks'])} of {len(config['tasks'])} tasks done.", ""]
    tables = "\n\n".join(format_table(name, task) for name, task in report["tasks"].items())
    atomic_write_text(path, "\n".join(lines) + "\n" + tables + "\n")


def write_csv(path: Path, report: Mapping[str, Any]) -> None:
    columns = ["task", "method", "family", "model", "modality_dropout", "removed", "kept", "accuracy_mean",
               "accuracy_std", "num_seeds", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for name, task in report["tasks"].items():
        for row in task["results"]:
            base = {"task": name, "method": row["method"], "family": row["family"], "model": row["model"],
                    "modality_dropout": row.get("modality_dropout") or 0.0, "error": row.get("error", "")}
            for key, modality in [(None, None), *conditions(task)]:
                score = _score(row, key, modality)
                if score is None and "error" not in row and key is not None:
                    continue
                removed = "" if key is None else modality if key != "only" else ""
                kept = modality if key == "only" else ""
                writer.writerow({**base, "removed": removed, "kept": kept,
                                 "accuracy_mean": None if score is None else score["mean"],
                                 "accuracy_std": None if score is None else score["std"],
                                 "num_seeds": 0 if score is None else len(score["seeds"])})
    atomic_write_text(path, buffer.getvalue())


def plot(path: Path, report: Mapping[str, Any]) -> None:
    """A panel per task: for each test condition, a bar per fused method trained with drop-out (its
    mean, std as error bar), a black marker at the same method trained without, and a dashed line at
    the best unimodal model of the modalities that remain."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(report["tasks"].items())
    figure = Figure(figsize=(11, 3.2 * len(tasks)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(tasks), 1, squeeze=False)[:, 0]
    for axis, (name, task) in zip(axes, tasks, strict=True):
        rows = task["results"]
        dropped = [row for row in rows if row["family"] != "unimodal" and row.get("modality_dropout")]
        plain = {row["model"]: row for row in rows if row["family"] != "unimodal" and not row.get("modality_dropout")}
        unimodal = {row["method"].removeprefix(UNIMODAL_PREFIX): row["mean"] for row in rows
                    if row["family"] == "unimodal" and row["mean"] is not None}
        shown = [(None, None), *conditions(task)]
        width = 0.8 / max(len(dropped), 1)
        palette = [f"C{i}" for i in range(10)]
        for i, row in enumerate(dropped):
            scores = [_score(row, key, m) for key, m in shown]
            x = np.arange(len(shown)) + (i - (len(dropped) - 1) / 2) * width
            axis.bar(x, [s["mean"] if s else 0 for s in scores], width, yerr=[s["std"] if s else 0 for s in scores],
                     color=palette[i % len(palette)], label=row["method"], capsize=2)
            other = plain.get(row["model"])
            if other is not None:
                marks = [_score(other, key, m) for key, m in shown]
                axis.scatter(x, [s["mean"] if s else np.nan for s in marks], marker="_", color="black", s=60,
                             zorder=3, label="without drop-out" if i == 0 else None)
        for j, (key, m) in enumerate(shown):
            removed = set() if key is None else set(m.split("+")) if key != "only" else set(unimodal) - {m}
            remaining = [value for modality, value in unimodal.items() if modality not in removed]
            if remaining:
                axis.hlines(max(remaining), j - 0.45, j + 0.45, colors="gray", linestyles="dashed",
                            label="best unimodal of the rest" if j == 0 else None)
        axis.set_xticks(range(len(shown)), ["all"] + [CONDITION_LABELS[key].format(m) for key, m in shown[1:]],
                        fontsize=8)
        axis.set_ylim(0, 100)
        axis.set_ylabel("accuracy (%)")
        axis.set_title(f"{name}: {task['description']}", fontsize=9)
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=7, ncol=3, loc="lower left")
    save_png(figure, path, dpi=110)


def write_outputs(out: Path, report: Mapping[str, Any], stem: str = "robustness") -> None:
    write_markdown(out / f"{stem}.md", report)
    write_csv(out / f"{stem}.csv", report)
    plot(out / f"{stem}.png", report)
