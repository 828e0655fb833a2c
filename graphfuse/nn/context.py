r"""Modality context: a virtual node per modality and sample, read by attention and sent back to
every node of that modality, so that a modality's view spans all of its nodes after one block
(a chain of frames or a grid of patches otherwise sees a few neighbours per block)."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.utils import softmax

from graphfuse.checks import check_int
from graphfuse.nn.flat import FlatGraph


class ModalityContext(torch.nn.Module):
    r"""Each node receives a summary of the nodes of its own type in its own sample.

    .. math::
        \alpha_j = \underset{j \in \mathcal{V}_{t}(b)}{\mathrm{softmax}}
        \left(\mathbf{s}_{t}^{\top} \mathbf{x}_j\right), \qquad
        \mathbf{m}_i = \tanh(g_{t}) \left(\mathbf{W}_{t}^{\top} \sum_{j \in \mathcal{V}_{t}(b)}
        \alpha_j \mathbf{x}_j + \mathbf{c}_{t}\right)

    for node :math:`i` of type :math:`t` in sample :math:`b`. The gate :math:`g_t` starts at 0
    (ReZero-style, as Flamingo gates its cross-attention), so the context joins the block only as
    far as training finds it useful; the scores :math:`\mathbf{s}_t` start at 0 (a plain mean).

    Args:
        channels (int): features per node, in and out.
        num_node_types (int): node types of the flat graph; each has its own parameters.
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** :math:`(|\mathcal{V}|, C)` with a :class:`~graphfuse.nn.FlatGraph`
        - **output:** :math:`(|\mathcal{V}|, C)`
    """

    def __init__(self, channels: int, num_node_types: int, device=None, dtype=None) -> None:
        super().__init__()
        check_int(channels, "ModalityContext 'channels'")
        check_int(num_node_types, "ModalityContext 'num_node_types'")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_node_types = channels, num_node_types
        self.weight = torch.nn.Parameter(torch.empty(num_node_types, channels, channels, **factory))
        self.bias = torch.nn.Parameter(torch.empty(num_node_types, channels, **factory))
        self.score = torch.nn.Parameter(torch.empty(num_node_types, channels, **factory))
        self.gate = torch.nn.Parameter(torch.empty(num_node_types, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.channels)  # torch.nn.Linear's default range
        torch.nn.init.uniform_(self.weight, -bound, bound)
        for parameter in (self.bias, self.score, self.gate):
            torch.nn.init.zeros_(parameter)

    def forward(self, x: Tensor, graph: FlatGraph) -> Tensor:
        if not isinstance(graph, FlatGraph) or graph.schema.num_node_types != self.num_node_types:
            raise ValueError(f"ModalityContext was built for {self.num_node_types} node types; pass the FlatGraph of "
                             f"the same schema (got {type(graph).__name__})")
        groups, B = graph.counts.numel(), graph.num_samples  # one group per (node type, sample)
        score = (x.float() * self.score[graph.node_type].float()).sum(-1)
        alpha = softmax(score, graph.type_sample, num_nodes=groups)
        summary = x.new_zeros(groups, self.channels, dtype=torch.float32).index_add_(
            0, graph.type_sample, x.float() * alpha.unsqueeze(-1)).to(x.dtype)
        summary = torch.einsum("tbc,tcd->tbd", summary.view(self.num_node_types, B, self.channels),
                               self.weight.to(x.dtype)) + self.bias.to(x.dtype).unsqueeze(1)
        summary = summary * torch.tanh(self.gate).to(x.dtype).view(-1, 1, 1)
        return summary.reshape(groups, self.channels)[graph.type_sample]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, num_node_types={self.num_node_types})"
