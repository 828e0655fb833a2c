"""What the robustness benchmark claims, checked on each task's results: with drop-out and a modality
removed at test time, graph fusion does at least as well as the best unimodal model of what
remains, loses less than early fusion and stays above it; drop-out costs graph fusion little with
nothing removed.

A claim "holds" on the means over seeds; one that does not, but by less than the larger of the two
standard deviations compared, is said to be within the seed spread. A claim about a modality whose
removal leaves only modalities that predict the label no better than chance alone (the best
unimodal model of the rest within its std of the task's ``chance``, its commonest test class) is
marked ``at_chance``: there every method can only guess."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Points of accuracy (with every modality) that drop-out may cost a graph method.
DROPOUT_COST_LIMIT = 2.0
#: The fusion whose loss graph fusion's is compared with.
REFERENCE_FUSION = "early-fusion"
UNIMODAL_PREFIX = "unimodal-"


def _trained(rows: list[Mapping[str, Any]], family: str, dropout: bool) -> list[Mapping[str, Any]]:
    """The rows of ``family`` that trained (with drop-out or without)."""
    return [row for row in rows if row["family"] == family and row["mean"] is not None
            and bool(row.get("modality_dropout")) == dropout]


def _without(row: Mapping[str, Any], modality: str) -> float:
    return row["without"][modality]["mean"]


def task_claims(task: str, task_report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The claims of one task (see the module), each ``{"task", "claim", "removed", "holds", ...}``
    with the values compared; none where the rows they compare did not run."""
    rows = task_report["results"]
    graphs = _trained(rows, "graph", dropout=True)
    claims: list[dict[str, Any]] = []
    modalities = list(dict.fromkeys(m for row in graphs for m in row.get("without") or {}))
    unimodal = {row["method"].removeprefix(UNIMODAL_PREFIX): row for row in rows
                if row["family"] == "unimodal" and row["mean"] is not None}
    reference = next((row for row in _trained(rows, "baseline", dropout=True)
                      if row["model"] == REFERENCE_FUSION), None)
    chance = task_report.get("chance")
    for modality in modalities:
        best = max(graphs, key=lambda row: _without(row, modality))
        rest = [row for name, row in unimodal.items() if name != modality]
        if rest:
            alone = max(rest, key=lambda row: row["mean"])
            # What remains says nothing of the label: every model is at chance, and the claims compare noise.
            at_chance = chance is not None and alone["mean"] - alone["std"] <= chance
            claims.append({"task": task, "claim": "graph >= best unimodal of the rest", "removed": modality,
                           "graph": best["method"], "graph_accuracy": _without(best, modality),
                           "graph_std": best["without"][modality]["std"],
                           "unimodal": alone["method"], "unimodal_accuracy": alone["mean"],
                           "unimodal_std": alone["std"], "holds": _without(best, modality) >= alone["mean"],
                           "within_spread": alone["mean"] - _without(best, modality) <= max(
                               best["without"][modality]["std"], alone["std"]), "at_chance": at_chance})
        else:
            at_chance = False
        if reference is not None:
            graph_loss = best["mean"] - _without(best, modality)
            reference_loss = reference["mean"] - _without(reference, modality)
            claims.append({"task": task, "claim": f"graph loses less than {REFERENCE_FUSION}", "removed": modality,
                           "graph": best["method"], "graph_loss": graph_loss,
                           "graph_accuracy": _without(best, modality), "reference": reference["method"],
                           "reference_loss": reference_loss, "reference_accuracy": _without(reference, modality),
                           "holds": graph_loss < reference_loss, "at_chance": at_chance})
            claims.append({"task": task, "claim": f"graph above {REFERENCE_FUSION}", "removed": modality,
                           "graph": best["method"], "graph_accuracy": _without(best, modality),
                           "reference": reference["method"], "reference_accuracy": _without(reference, modality),
                           "holds": _without(best, modality) > _without(reference, modality),
                           "at_chance": at_chance})
    without_dropout = {row["model"]: row for row in _trained(rows, "graph", dropout=False)}
    for row in graphs:
        plain = without_dropout.get(row["model"])
        if plain is not None:
            cost = plain["mean"] - row["mean"]
            claims.append({"task": task, "claim": f"drop-out costs <= {DROPOUT_COST_LIMIT:g} points", "removed": None,
                           "graph": row["method"], "accuracy": row["mean"], "without_dropout": plain["mean"],
                           "cost": cost, "holds": cost <= DROPOUT_COST_LIMIT})
    return claims


def format_claims(claims: list[Mapping[str, Any]]) -> str:
    """The claims of a task as a markdown list, each with its values and whether it holds."""
    lines = []
    for claim in claims:
        verdict = "holds" if claim["holds"] else "within the seed spread, not on the means" if claim.get(
            "within_spread") else "**does not hold**"
        if claim.get("at_chance"):
            verdict += " (what remains predicts no better than chance alone)"
        if "unimodal" in claim:
            detail = (f"without {claim['removed']}: {claim['graph']} {claim['graph_accuracy']:.1f} ± "
                      f"{claim['graph_std']:.1f} against {claim['unimodal']} {claim['unimodal_accuracy']:.1f} ± "
                      f"{claim['unimodal_std']:.1f}")
        elif "reference_loss" in claim:
            detail = (f"without {claim['removed']}: {claim['graph']} loses {claim['graph_loss']:.1f} points (to "
                      f"{claim['graph_accuracy']:.1f}), {claim['reference']} {claim['reference_loss']:.1f} (to "
                      f"{claim['reference_accuracy']:.1f})")
        elif "reference" in claim:
            detail = (f"without {claim['removed']}: {claim['graph']} {claim['graph_accuracy']:.1f}, "
                      f"{claim['reference']} {claim['reference_accuracy']:.1f}")
        else:
            detail = (f"{claim['graph']} {claim['accuracy']:.1f} against {claim['without_dropout']:.1f} without "
                      f"drop-out (costs {claim['cost']:.1f})")
        lines.append(f"- {claim['claim']}: {detail}: {verdict}")
    return "\n".join(lines)
