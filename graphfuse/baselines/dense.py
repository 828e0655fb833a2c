"""Padded token batches: each sample's nodes of a type as one row of a ``[B, L, C]`` tensor with a
mask, the masked mean over its valid positions, and the key padding mask attention needs."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from graphfuse.nn.readout import check_node_dicts, check_num_samples

__all__ = ["dense_modalities", "key_padding", "masked_mean"]


def dense_modalities(h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor],
                     num_samples: int) -> dict[str, tuple[Tensor, Tensor]]:
    r"""The tokens of each node type as a padded batch, with
    :func:`torch_geometric.utils.to_dense_batch`.

    Args:
        h_dict (Mapping[str, Tensor]): node features :math:`(|\mathcal{V}_t|, C)` per node type (a
            type may have no nodes).
        batch_dict (Mapping[str, Tensor]): the sample of each node, sorted, per node type.
        num_samples (int): :math:`B`, the number of samples (``batch.num_graphs``).

    Returns:
        dict: ``{t: (x, mask)}`` with ``x`` :math:`(B, L_t, C)` (zeros at padding) and ``mask``
        :math:`(B, L_t)` bool, :math:`L_t` the most nodes of type :math:`t` in a sample (0 when the
        type has no nodes in the batch).
    """
    check_node_dicts(h_dict, batch_dict, None, "dense_modalities")
    check_num_samples(num_samples, "dense_modalities")
    out = {}
    for node_type, h in h_dict.items():
        batch = batch_dict[node_type].to(device=h.device, dtype=torch.long)
        out[node_type] = to_dense_batch(h, batch, batch_size=num_samples)
    return out


def masked_mean(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over the valid positions ``[B, L, C] -> [B, C]`` (float32 sums, zeros for a row
    without any) and the rows that have one ``[B]``."""
    present = mask.any(dim=1)
    total = x.float().masked_fill(~mask.unsqueeze(-1), 0.0).sum(dim=1)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    return (total / count).to(x.dtype), present


def key_padding(mask: Tensor) -> Tensor:
    """``~mask`` as a key padding mask, with the first key of a row without valid keys unmasked:
    attention over no keys at all is a softmax over nothing (NaN). Callers discard such rows."""
    padding = ~mask
    if padding.size(1) == 0:
        return padding
    return torch.cat([padding[:, :1] & mask.any(dim=1, keepdim=True), padding[:, 1:]], dim=1)
