"""Evaluation metrics (classification, multi-label, regression, retrieval), returned as Python floats."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from torch import Tensor

from graphfuse.checks import as_tensor

__all__ = [
    "classification_metrics",
    "multilabel_metrics",
    "ranking_metrics",
    "regression_metrics",
    "retrieval_metrics",
]


def _float_tensor(value: Any, owner: str, name: str, shape: str) -> Tensor:
    """``value`` as a finite floating-point tensor, else an error naming ``owner`` and ``name``."""
    value = as_tensor(value, owner, f"{name} as a float tensor of shape {shape}")
    if not value.is_floating_point():
        raise TypeError(f"{owner} expects {name} as a floating-point tensor of shape {shape}; received dtype "
                        f"{value.dtype}; convert it with `.float()`")
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{owner} received {name} with {bad} NaN/Inf value(s); metrics of non-finite outputs are "
                         f"meaningless, so find where the model diverges (or filter those samples) first")
    return value


def _check_rows(owner: str, first: Tensor, first_name: str, second: Tensor, second_name: str) -> None:
    if first.size(0) != second.size(0):
        raise ValueError(f"{owner} received {first_name} for {first.size(0)} samples but {second_name} for "
                         f"{second.size(0)}; pass one entry per sample in both")
    if first.size(0) == 0:
        raise ValueError(f"{owner} received no samples; metrics of an empty set are undefined")


def classification_metrics(logits: Tensor, target: Tensor) -> dict[str, float]:
    r"""Accuracy and macro-F1 of single-label classification; the prediction is the arg-max class.

    Macro-F1 averages over the classes present in ``target`` or the predictions (scikit-learn's
    convention); a class never predicted scores 0.

    Args:
        logits (torch.Tensor): class scores (logits or probabilities).
        target (torch.Tensor): class indices in :math:`[0, K)`.

    Shapes:
        - **input:** logits :math:`(N, K)`, target :math:`(N,)` long
        - **output:** ``{"accuracy", "macro_f1"}``, both in :math:`[0, 1]`
    """
    owner = "classification_metrics"
    logits = _float_tensor(logits, owner, "logits", "[N, num_classes]")
    target = as_tensor(target, owner, "target as a long tensor of shape [N]")
    if logits.dim() != 2:
        raise ValueError(f"{owner} expects logits of shape [N, num_classes]; received shape {tuple(logits.shape)}; "
                         f"for a single binary score per sample use multilabel_metrics")
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise TypeError(f"{owner} expects target as class indices (torch.long); received dtype {target.dtype}; "
                        f"convert it with `.long()` (one-hot targets: `.argmax(-1)`)")
    if target.dim() != 1:
        raise ValueError(f"{owner} expects target of shape [N] (class indices); received shape "
                         f"{tuple(target.shape)}; one-hot targets convert with `.argmax(-1)`")
    _check_rows(owner, logits, "logits", target, "target")
    num_classes = logits.size(1)
    if int(target.min()) < 0 or int(target.max()) >= num_classes:
        raise ValueError(f"{owner} received target classes in [{int(target.min())}, {int(target.max())}] but logits "
                         f"for {num_classes} classes; targets must lie in [0, {num_classes})")
    y_true = target.detach().cpu().numpy()
    y_pred = logits.detach().argmax(-1).cpu().numpy()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def multilabel_metrics(logits: Tensor, target: Tensor, threshold: float = 0.5) -> dict[str, float]:
    r"""Multi-label scores: a label is predicted where :math:`\sigma(\text{logit}) \geq` ``threshold``.

    ``subset_accuracy`` counts samples with every label right. ``mAP`` is the macro average
    precision over the labels with at least one positive in ``target`` (the others have no
    defined precision); it is :obj:`0.0` when no label has a positive, so the result never holds NaN.

    Args:
        logits (torch.Tensor): per-label logits.
        target (torch.Tensor): 0/1 (or boolean) label indicators.
        threshold (float, optional): probability from which a label is predicted. (default: :obj:`0.5`)

    Shapes:
        - **input:** logits :math:`(N, L)`, target :math:`(N, L)`
        - **output:** ``{"subset_accuracy", "micro_f1", "macro_f1", "mAP"}``, all in :math:`[0, 1]`
    """
    owner = "multilabel_metrics"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"{owner} 'threshold' must be a probability in (0, 1), got {threshold!r}")
    logits = _float_tensor(logits, owner, "logits", "[N, num_labels]")
    target = as_tensor(target, owner, "target as a 0/1 tensor of shape [N, num_labels]")
    if logits.dim() != 2 or target.shape != logits.shape:
        raise ValueError(f"{owner} expects logits and target of one shape [N, num_labels]; received "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    _check_rows(owner, logits, "logits", target, "target")
    if not bool(((target == 0) | (target == 1)).all()):
        raise ValueError(f"{owner} expects target as 0/1 label indicators; received values other than 0 and 1; "
                         f"class indices convert with `torch.nn.functional.one_hot`")
    # float64 keeps large logits apart after the sigmoid; float32 would saturate them into ties at 1.0.
    scores = logits.detach().double().cpu()
    y_score = scores.numpy()
    y_pred = (torch.sigmoid(scores) >= threshold).long().numpy()
    y_true = target.detach().cpu().long().numpy()
    has_positive = y_true.any(0)
    # Average precision is rank-based, so the logits serve as scores as well as the probabilities would.
    mean_ap = (float(average_precision_score(y_true[:, has_positive], y_score[:, has_positive], average="macro"))
               if has_positive.any() else 0.0)
    return {
        "subset_accuracy": float(accuracy_score(y_true, y_pred)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "mAP": mean_ap,
    }


def regression_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    r"""Mean squared error, mean absolute error and :math:`R^2` (averaged uniformly over outputs).

    A single-output ``[N, 1]`` tensor counts as ``[N]``, so either form matches the other.

    Args:
        pred (torch.Tensor): predictions.
        target (torch.Tensor): true values.

    Shapes:
        - **input:** pred :math:`(N,)` or :math:`(N, D)`, target of the same shape
        - **output:** ``{"mse", "mae", "r2"}``
    """
    owner = "regression_metrics"
    pred = _float_tensor(pred, owner, "pred", "[N] or [N, num_outputs]")
    target = _float_tensor(target, owner, "target", "[N] or [N, num_outputs]")
    pred, target = (t.flatten() if t.dim() == 2 and t.size(1) == 1 else t for t in (pred, target))
    if pred.dim() not in (1, 2) or pred.shape != target.shape:
        raise ValueError(f"{owner} expects pred and target of one shape [N] or [N, num_outputs]; received "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.size(0) < 2:
        raise ValueError(f"{owner} received {pred.size(0)} sample(s); R^2 needs at least 2")
    y_pred = pred.detach().double().cpu().numpy()
    y_true = target.detach().double().cpu().numpy()
    return {
        "mse": float(mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def _check_ks(ks: Sequence[int], owner: str) -> tuple[int, ...]:
    if isinstance(ks, int) or not isinstance(ks, Sequence):
        raise TypeError(f"{owner} 'ks' must be a sequence of cut-offs such as (1, 5, 10), got {ks!r}")
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks) or len(set(ks)) != len(ks):
        raise ValueError(f"{owner} 'ks' must hold distinct integers >= 1, such as (1, 5, 10); got {ks!r}")
    return ks


def _check_similarity(similarity: Any, owner: str) -> Tensor:
    similarity = _float_tensor(similarity, owner, "similarity", "[num_queries, num_gallery]")
    if similarity.dim() != 2 or similarity.numel() == 0:
        raise ValueError(f"{owner} expects a similarity of shape [num_queries, num_gallery] with at least one "
                         f"of each; received shape {tuple(similarity.shape)}")
    return similarity


def _check_positives(positives: Any, similarity: Tensor, owner: str) -> Tensor:
    num_queries, num_gallery = similarity.shape
    if positives is None:
        if num_queries != num_gallery:
            raise ValueError(f"{owner} received a non-square similarity of shape ({num_queries}, {num_gallery}) "
                             f"and no positives; the default pairs query i with gallery item i only, so pass "
                             f"`positives`, a bool tensor of shape [{num_queries}, {num_gallery}] marking each "
                             f"query's matches")
        return torch.eye(num_queries, dtype=torch.bool, device=similarity.device)
    positives = as_tensor(positives, owner, "positives as a bool tensor of shape [num_queries, num_gallery]")
    if positives.dtype != torch.bool:
        raise TypeError(f"{owner} expects positives as a bool tensor; received dtype {positives.dtype}; build it "
                        f"from a comparison (e.g. `query_ids[:, None] == gallery_ids[None, :]`) or with `.bool()`")
    if positives.shape != similarity.shape:
        raise ValueError(f"{owner} expects positives of the similarity's shape {tuple(similarity.shape)}; received "
                         f"{tuple(positives.shape)}")
    return positives.to(similarity.device)


def _ranks(similarity: Tensor, positives: Tensor, owner: str, rows: str) -> Tensor:
    """Pessimistic 1-based rank of each row's best positive; ``rows`` names the rows in errors."""
    has_positive = positives.any(-1)
    if not bool(has_positive.all()):
        missing = (~has_positive).nonzero().flatten()
        raise ValueError(f"{owner}: {rows} {missing[:10].tolist()} (0-based; {missing.numel()} in all) have no "
                         f"positive, so they have no rank; mark at least one match per {rows[:-1]} in `positives` "
                         f"or drop them")
    best = similarity.masked_fill(~positives, float("-inf")).amax(-1, keepdim=True)
    # Every non-positive scoring at least the best positive ranks above it, ties included.
    return 1 + ((similarity >= best) & ~positives).sum(-1)


def _summarise(ranks: Tensor, ks: tuple[int, ...]) -> dict[str, float]:
    cutoffs = torch.tensor(ks, device=ranks.device)
    recall = (ranks[:, None] <= cutoffs).float().mean(0) * 100
    mrr = ranks.float().reciprocal().mean()
    ordered = ranks.sort().values.float()
    median = (ordered[(ordered.numel() - 1) // 2] + ordered[ordered.numel() // 2]) / 2
    # One transfer to the host for every value, rather than one synchronisation each.
    *recalls, mrr_value, median_value = torch.cat([recall, mrr[None], median[None]]).tolist()
    return {**{f"R@{k}": v for k, v in zip(ks, recalls, strict=True)}, "MRR": mrr_value, "median_rank": median_value}


def ranking_metrics(similarity: Tensor, positives: Tensor | None = None,
                    ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    r"""Recall@k, mean reciprocal rank and median rank of a query-by-gallery similarity.

    Each row ranks the gallery by decreasing similarity. The rank of query :math:`q` is that of
    its best-ranked positive, counting ties pessimistically:

    .. math::
        r_q = 1 + \left|\{\, j \notin P_q : s_{qj} \geq \max_{p \in P_q} s_{qp} \,\}\right|

    where :math:`P_q` is the set of positives of :math:`q`. Tied non-positives therefore rank
    ahead of the positive, so a model cannot profit from ties: a constant similarity ranks every
    query last among its non-positives and scores R@1 = 0, where an optimistic count would give a
    collapsed model 100.

    Args:
        similarity (torch.Tensor): scores, higher meaning more similar.
        positives (torch.Tensor, optional): boolean matches; every row needs at least one.
            (default: the identity, query :math:`i` matching gallery item :math:`i`; the
            similarity must then be square)
        ks (Sequence[int], optional): recall cut-offs; a cut-off beyond the gallery size simply
            counts every query. (default: :obj:`(1, 5, 10)`)

    Shapes:
        - **input:** similarity :math:`(Q, G)`, positives :math:`(Q, G)` bool
        - **output:** ``{"R@k" (percent) for each k, "MRR" (in [0, 1]), "median_rank"}``
    """
    owner = "ranking_metrics"
    ks = _check_ks(ks, owner)
    similarity = _check_similarity(similarity, owner)
    positives = _check_positives(positives, similarity, owner)
    return _summarise(_ranks(similarity.detach(), positives, owner, "query rows"), ks)


def retrieval_metrics(similarity: Tensor, positives: Tensor | None = None,
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    r"""Cross-modal retrieval in both directions, by :func:`ranking_metrics`.

    The queries (rows) retrieve the gallery (``"q2g/..."`` keys) and the gallery items (columns)
    retrieve the queries (``"g2q/..."`` keys, from the transposed similarity and positives).
    ``"rsum"`` adds up every recall of both directions (in percent: at most :math:`200 |ks|`).

    Args:
        similarity (torch.Tensor): scores, higher meaning more similar.
        positives (torch.Tensor, optional): boolean matches; every row and every column needs at
            least one. (default: the identity; the similarity must then be square)
        ks (Sequence[int], optional): recall cut-offs. (default: :obj:`(1, 5, 10)`)

    Shapes:
        - **input:** similarity :math:`(Q, G)`, positives :math:`(Q, G)` bool
        - **output:** ``{"q2g/R@k", "q2g/MRR", "q2g/median_rank", "g2q/...", "rsum"}``
    """
    owner = "retrieval_metrics"
    ks = _check_ks(ks, owner)
    similarity = _check_similarity(similarity, owner).detach()
    positives = _check_positives(positives, similarity, owner)
    forward = _summarise(_ranks(similarity, positives, owner, "query rows"), ks)
    reverse = _summarise(_ranks(similarity.T, positives.T, owner, "gallery columns"), ks)
    result = {**{f"q2g/{key}": v for key, v in forward.items()}, **{f"g2q/{key}": v for key, v in reverse.items()}}
    result["rsum"] = sum(forward[f"R@{k}"] + reverse[f"R@{k}"] for k in ks)
    return result
