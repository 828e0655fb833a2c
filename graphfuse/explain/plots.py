"""Pictures of an :class:`~graphfuse.explain.Explanation` (matplotlib and networkx; the ``bench``
extra installs matplotlib): a sample's graph with its cross-modal attention, token-to-patch heat
maps over the image, attention over time for audio, and modality contributions.

Each function draws one sample on a new :class:`matplotlib.figure.Figure` (no pyplot state) and
returns it; :func:`save_pictures` writes them all as PNG files.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import networkx as nx
import torch
from torch import Tensor

from graphfuse.data.items import split_item
from graphfuse.explain.explanation import Explanation

#: Node colours by node type, in the batch's node type order.
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("graphfuse.explain.plots draws with matplotlib: pip install matplotlib (or the 'bench' "
                          "extra, pip install 'graphfuse[bench]')") from error
    return Figure(figsize=(width, height), layout="constrained")


def _tokens(explanation: Explanation, sample: int, node_type: str) -> list[str]:
    raw = split_item(explanation.samples[sample])[0].get(node_type) if sample < len(explanation.samples) else None
    tokens = raw.get("tokens") if isinstance(raw, dict) else raw.split() if isinstance(raw, str) else None
    count = explanation.num_nodes(sample, node_type)
    if isinstance(tokens, (list, tuple)) and len(tokens) == count:
        return [str(t) for t in tokens]
    return [f"{node_type}[{i}]" for i in range(count)]


def _is_grid(explanation: Explanation, node_type: str) -> bool:
    pos = explanation.graph[node_type].get("pos")
    return pos is not None and pos.dim() == 2 and pos.size(1) == 2


def _is_timed(explanation: Explanation, node_type: str) -> bool:
    return explanation.graph[node_type].get("time") is not None


def _layout(explanation: Explanation, sample: int) -> dict[tuple[str, int], tuple[float, float]]:
    """Node positions: timed nodes along time (one row per type), grid nodes as their grid, the
    rest in a row by index; rows stacked top to bottom in the batch's node type order."""
    types = [t for t in explanation.node_types if explanation.num_nodes(sample, t)]
    spans = []
    for t in types:
        if _is_timed(explanation, t):
            start, end = explanation.node_range(sample, t)
            spans.append(float(torch.nan_to_num(explanation.graph[t].time[start:end]).max()))
    width = max(spans) if spans else 1.0
    positions, y = {}, 0.0
    for node_type in types:
        start, end = explanation.node_range(sample, node_type)
        count = end - start
        if _is_grid(explanation, node_type):
            pos = explanation.graph[node_type].pos[start:end].float()
            rows, cols = float(pos[:, 0].max()) + 1, float(pos[:, 1].max()) + 1
            cell = min(width / max(cols, 1) * 0.5, 0.6 / max(rows, 1) * width)
            left = width / 2 - cols * cell / 2
            for i in range(count):
                positions[(node_type, i)] = (left + (float(pos[i, 1]) + 0.5) * cell,
                                             y - (float(pos[i, 0]) + 0.5) * cell / width)
            y -= rows * cell / width + 0.4
        else:
            if _is_timed(explanation, node_type):
                times = torch.nan_to_num(explanation.graph[node_type].time[start:end]).mean(-1)
                xs = times.tolist()
            else:
                xs = [(i + 0.5) * width / count for i in range(count)]
            for i, x in enumerate(xs):
                positions[(node_type, i)] = (x, y)
            y -= 0.5
    return positions


def draw_sample_graph(explanation: Explanation, sample: int, layer: int = -1, figsize=(10, 6)):
    """The sample's graph: nodes coloured by type and sized by gradient x input, laid out by
    modality (tokens in a row, patches as their grid, frames along time); intra-modal edges in
    grey, cross-modal edges drawn darker and wider the more attention they carry in ``layer``
    (heads averaged; the larger of its two directions)."""
    positions = _layout(explanation, sample)
    graph = nx.Graph()
    graph.add_nodes_from(positions)
    figure = _figure(*figsize)
    ax = figure.add_subplot()
    types = [t for t in explanation.node_types if explanation.num_nodes(sample, t)]
    attributions = explanation.sample_attributions(sample)
    scale = max(float(v.abs().max()) for v in attributions.values() if v.numel()) or 1.0
    for k, node_type in enumerate(types):
        nodes = [(node_type, i) for i in range(explanation.num_nodes(sample, node_type))]
        sizes = [40 + 260 * float(attributions[node_type][i].abs()) / scale for i in range(len(nodes))]
        nx.draw_networkx_nodes(graph, positions, nodelist=nodes, node_color=COLORS[k % len(COLORS)], node_size=sizes,
                               ax=ax, label=node_type, alpha=0.9)
        if not _is_grid(explanation, node_type) and len(nodes) <= 40:
            labels = dict(zip(nodes, _tokens(explanation, sample, node_type), strict=True)) \
                if explanation.graph[node_type].x.dtype == torch.long else {}
            nx.draw_networkx_labels(graph, {n: (x, y + 0.12) for n, (x, y) in positions.items() if n in labels},
                                    labels, font_size=8, ax=ax)
    intra, cross = [], {}
    for edge_type in explanation.graph.edge_types:
        src, _, dst = edge_type
        if src not in types or dst not in types:
            continue
        # Each cross-modal pair once, as the attention the upper node type gives the lower one
        # (tokens -> patches, tokens -> frames, patches -> frames).
        if src != dst and types.index(dst) > types.index(src):
            continue
        s_start = explanation.node_range(sample, src)[0]
        d_start, d_end = explanation.node_range(sample, dst)
        edge_index = explanation.graph[edge_type].edge_index
        inside = (edge_index[1] >= d_start) & (edge_index[1] < d_end)
        pairs = [((src, int(a) - s_start), (dst, int(b) - d_start)) for a, b in edge_index[:, inside].t().tolist()]
        if src == dst:
            intra.extend(pairs)
            continue
        weights = _attention_or_none(explanation, sample, dst, src, layer)
        for u, v in pairs:
            cross[(u, v)] = 1.0 if weights is None else float(weights[v[1], u[1]])
    nx.draw_networkx_edges(graph, positions, edgelist=intra, edge_color="#BBBBBB", width=0.6, ax=ax)
    if cross:
        top = max(cross.values()) or 1.0
        ordered = sorted(cross.items(), key=lambda item: item[1])
        nx.draw_networkx_edges(graph, positions, edgelist=[e for e, _ in ordered], ax=ax,
                               width=[0.3 + 3.0 * w / top for _, w in ordered],
                               edge_color=[w / top for _, w in ordered], edge_cmap=_colormap("Reds"),
                               edge_vmin=-0.15, edge_vmax=1.0, alpha=0.8)
    has_attention = bool(explanation.layers)
    ax.set_title(f"sample {sample}: cross-modal edges by the attention the upper node gives the lower one\n"
                 f"(layer {layer}, heads averaged); node size: |gradient x input|" if has_attention
                 else f"sample {sample}: the model has no attention; cross-modal edges drawn alike")
    ax.legend(loc="upper right", fontsize=8, markerscale=0.5)
    ax.set_axis_off()
    return figure


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def _attention_or_none(explanation: Explanation, sample: int, query: str, key: str, layer: int) -> Tensor | None:
    layers = explanation.attention_layers(query, key)
    if not layers:
        return None
    return explanation.attention(sample, query, key, max(-len(layers), min(layer, len(layers) - 1)))


def _raw_image(explanation: Explanation, sample: int, node_type: str) -> Tensor | None:
    if sample >= len(explanation.samples):
        return None
    raw = split_item(explanation.samples[sample])[0].get(node_type)
    if not isinstance(raw, Tensor) or raw.dim() not in (2, 3):
        return None
    image = raw.float()
    if image.dim() == 3:
        image = image.mean(0) if image.size(0) in (1, 3) else image.mean(-1)
    return image


def plot_token_patch_heatmap(explanation: Explanation, sample: int, query: str = "text", key: str = "image",
                             layer: int = -1):
    """One panel per ``query`` node (token): its attention over the ``key`` patches, laid over
    the sample's image (from the raw sample when it holds one, else the patch grid alone)."""
    if not _is_grid(explanation, key):
        raise ValueError(f"a heat map needs {key!r} nodes with grid positions (pos [N, 2], as image patches have)")
    weights = explanation.attention(sample, query, key, layer)
    start, end = explanation.node_range(sample, key)
    pos = explanation.graph[key].pos[start:end].long()
    rows, cols = int(pos[:, 0].max()) + 1, int(pos[:, 1].max()) + 1
    image = _raw_image(explanation, sample, key)
    names = _tokens(explanation, sample, query)
    count = weights.size(0)
    per_row = min(count, 4)
    figure = _figure(3 * per_row, 3 * math.ceil(count / per_row))
    for i in range(count):
        grid = torch.zeros(rows, cols)
        grid[pos[:, 0], pos[:, 1]] = weights[i]
        ax = figure.add_subplot(math.ceil(count / per_row), per_row, i + 1)
        extent = (0, cols, rows, 0)
        if image is not None:
            ax.imshow(image.numpy(), cmap="gray", extent=extent)
        shown = ax.imshow(grid.numpy(), cmap="magma", alpha=0.55 if image is not None else 1.0, extent=extent,
                          vmin=0.0, vmax=max(float(weights.max()), 1e-12))
        ax.set_title(f"{names[i]} -> {key}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(shown, ax=figure.axes, shrink=0.7, label="attention")
    figure.suptitle(f"sample {sample}: {query} -> {key} attention (layer {layer}, heads averaged)", fontsize=10)
    return figure


def plot_attention_over_time(explanation: Explanation, sample: int, query: str = "text", key: str = "audio",
                             layer: int = -1):
    """A strip per ``query`` node (word): its attention over the ``key`` frames along time, under
    the frames' features (e.g. log-mel) with each timed word's span marked."""
    if not _is_timed(explanation, key):
        raise ValueError(f"an attention-over-time strip needs timed {key!r} nodes (time [N, 2])")
    weights = explanation.attention(sample, query, key, layer)
    start, end = explanation.node_range(sample, key)
    times = torch.nan_to_num(explanation.graph[key].time[start:end])
    features = explanation.graph[key].x[start:end].float()
    names = _tokens(explanation, sample, query)
    spans = None
    if _is_timed(explanation, query):
        q_start, q_end = explanation.node_range(sample, query)
        spans = torch.nan_to_num(explanation.graph[query].time[q_start:q_end])
    figure = _figure(10, 1.6 + 1.1 * weights.size(0))
    axes = figure.subplots(weights.size(0) + 1, 1, sharex=True,
                           gridspec_kw={"height_ratios": [2.0] + [1.0] * weights.size(0)})
    edges = torch.cat([times[:, 0], times[-1:, 1]]).tolist()
    if features.dim() == 2 and features.size(1) > 1:
        axes[0].pcolormesh(edges, range(features.size(1) + 1), features.t().numpy(), cmap="viridis", shading="flat")
        axes[0].set_ylabel(f"{key}\nfeatures")
    else:
        axes[0].plot(times.mean(-1).numpy(), features.reshape(features.size(0), -1).mean(-1).numpy())
    for i in range(weights.size(0)):
        ax = axes[i + 1]
        ax.stairs(weights[i].numpy(), edges, fill=True, color=COLORS[i % len(COLORS)], alpha=0.8)
        ax.set_ylabel(names[i], rotation=0, ha="right", va="center")
        ax.set_ylim(0, max(float(weights.max()), 1e-12) * 1.1)
        if spans is not None:
            for ax_span in (ax, axes[0]):
                ax_span.axvspan(float(spans[i, 0]), float(spans[i, 1]), color=COLORS[i % len(COLORS)], alpha=0.15)
    axes[-1].set_xlabel("time (s)")
    figure.suptitle(f"sample {sample}: {query} -> {key} attention over time (layer {layer}, heads averaged; "
                    f"shaded: each word's span)", fontsize=10)
    return figure


def plot_modality_contributions(explanation: Explanation, sample: int):
    """Bars per modality: the change in the explained score when the modality is left out, and
    gradient x input summed over its nodes."""
    sample = explanation.check_sample(sample)
    types = [t for t in explanation.node_types if explanation.num_nodes(sample, t)]
    left_out = [float(explanation.contributions.get(t, torch.tensor([math.nan] * explanation.num_samples))[sample])
                for t in types]
    attributions = explanation.modality_attributions()
    gradient = [float(attributions[t][sample]) for t in types]
    what = {"classification": "probability of class", "multilabel": "probability of label",
            "regression": "output", "retrieval": "query-gallery similarity"}[explanation.kind]
    target = "" if explanation.kind == "retrieval" else f" {int(explanation.target[sample])}"
    figure = _figure(2.0 + 2.4 * len(types), 3.6)
    left, right = figure.subplots(1, 2)
    left.bar(types, [0.0 if math.isnan(v) else v for v in left_out], color="#4C72B0")
    left.set_title("left out: score - score without it", fontsize=9)
    right.bar(types, gradient, color="#DD8452")
    right.set_title("gradient x input, summed per modality" + ("" if explanation.kind in ("regression", "retrieval")
                                                                else " (of the logit)"), fontsize=9)
    for ax in (left, right):
        ax.axhline(0.0, color="black", linewidth=0.6)
    for i, value in enumerate(left_out):
        if math.isnan(value):
            left.annotate("n/a", (i, 0.0), ha="center", va="bottom", fontsize=8)
    figure.suptitle(f"sample {sample}: {what}{target} = {float(explanation.score[sample]):.3f}", fontsize=10)
    return figure


def save_pictures(explanation: Explanation, sample: int, folder: str | os.PathLike, prefix: str = "") -> list[Path]:
    """Writes every picture that fits the sample and the model as PNG files in ``folder``
    (``graph``, ``contributions``, and where the model has the attention for them a heat map per
    pair of token and grid node types and a strip per pair of token and timed node types);
    returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}sample{sample}"
    figures = {"graph": draw_sample_graph(explanation, sample),
               "contributions": plot_modality_contributions(explanation, sample)}
    present = [t for t in explanation.node_types if explanation.num_nodes(sample, t)]
    words = [t for t in present if explanation.graph[t].x.dtype == torch.long]
    for query in words:
        for key in present:
            if key == query or not explanation.attention_layers(query, key):
                continue
            if _is_grid(explanation, key):
                figures[f"{query}-{key}-heatmap"] = plot_token_patch_heatmap(explanation, sample, query, key)
            elif _is_timed(explanation, key):
                figures[f"{query}-{key}-time"] = plot_attention_over_time(explanation, sample, query, key)
    paths = []
    for name, figure in figures.items():
        path = folder / f"{stem}-{name}.png"
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths
