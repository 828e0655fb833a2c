"""One transformer over the tokens of all modalities of a sample."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from graphfuse.baselines.checks import check_transformer
from graphfuse.baselines.dense import masked_mean
from graphfuse.baselines.encoder import encoder_layer, reset_transformer, run_layers
from graphfuse.checks import check_choice
from graphfuse.nn.readout import check_known_node_types, check_node_dicts, check_node_types, check_num_samples

__all__ = ["TransformerFusion"]

ACTIVATIONS = ("gelu", "relu")


class TransformerFusion(torch.nn.Module):
    r"""One transformer over the tokens of all modalities of a sample, each token tagged with a
    learned embedding of its modality, then masked mean pooling:

    .. math::
        \mathbf{X} = \big\Vert_{t} \left(\mathbf{H}_t + \mathbf{1}\,\mathbf{e}_t^{\top}\right), \qquad
        \mathbf{h} = \mathrm{mean}_{\text{valid } i}\,
        \mathrm{LN}\big(\mathrm{Transformer}^{L}(\mathbf{X}; \mathbf{m})\big)_i

    (concatenation along the token axis). The nodes of each sample are gathered into one padded
    sequence with a single key padding mask, so absent modalities simply contribute no tokens. A
    sample without any token gets zeros.

    The layers are pre-norm with a final :math:`\mathrm{LN}` by default; ``norm_first=False``
    gives the original Transformer's post-norm layers (Vaswani et al., 2017), whose output is
    normalised already, so no final norm is added (the throughput benchmark's dense transformer).

    Args:
        channels (int): features per token, :math:`C`.
        node_types (Sequence[str]): the modalities (node types) it reads; ``h_dict`` may hold a
            subset of them.
        num_layers (int, optional): transformer layers. (default: :obj:`1`)
        heads (int, optional): attention heads (dividing ``channels``). (default: :obj:`4`)
        ffn_ratio (float, optional): feed-forward size over ``channels``. (default: :obj:`2.0`)
        dropout (float, optional): in attention and feed-forward layers. (default: :obj:`0.1`)
        norm_first (bool, optional): pre-norm layers and a final LayerNorm, else post-norm layers.
            (default: :obj:`True`)
        activation (str, optional): of the feed-forward layers, ``"gelu"`` or ``"relu"``.
            (default: :obj:`"gelu"`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** ``h_dict`` :math:`\{t: (|\mathcal{V}_t|, C)\}`, ``batch_dict``
          :math:`\{t: (|\mathcal{V}_t|,)\}`, ``num_samples`` :math:`B`
        - **output:** :math:`(B, C)`
    """

    def __init__(self, channels: int, node_types: Sequence[str], num_layers: int = 1, heads: int = 4,
                 ffn_ratio: float = 2.0, dropout: float = 0.1, norm_first: bool = True, activation: str = "gelu",
                 device=None, dtype=None) -> None:
        super().__init__()
        check_transformer("TransformerFusion", channels, num_layers, heads, ffn_ratio, dropout)
        check_choice(activation, ACTIVATIONS, "TransformerFusion 'activation'")
        self.node_types = check_node_types(node_types, "TransformerFusion")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_layers, self.heads = channels, num_layers, heads
        self.norm_first, self.activation = bool(norm_first), activation
        self.out_channels = channels
        self.type_embedding = torch.nn.Embedding(len(self.node_types), channels, **factory)
        self.layers = torch.nn.ModuleList(encoder_layer(channels, heads, ffn_ratio, dropout, factory, self.norm_first,
                                                        activation) for _ in range(num_layers))
        self.norm = torch.nn.LayerNorm(channels, **factory) if self.norm_first else torch.nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.type_embedding.weight, std=0.02)
        reset_transformer(self)

    def tokens(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor],
               num_samples: int) -> tuple[Tensor, Tensor]:
        r"""The padded tokens of each sample, all modalities together, with their type embeddings:
        :math:`(B, L, C)` and the mask :math:`(B, L)`."""
        check_known_node_types(h_dict, self.node_types, "TransformerFusion")
        check_node_dicts(h_dict, batch_dict, self.channels, "TransformerFusion")
        check_num_samples(num_samples, "TransformerFusion")
        types = [t for t in self.node_types if t in h_dict]
        device = h_dict[types[0]].device
        x = torch.cat([h_dict[t] + self.type_embedding.weight[self.node_types.index(t)].to(h_dict[t].dtype)
                       for t in types])
        batch = torch.cat([batch_dict[t].to(device=device, dtype=torch.long) for t in types])
        order = torch.sort(batch, stable=True).indices
        return to_dense_batch(x[order], batch[order], batch_size=num_samples)

    def forward(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], num_samples: int) -> Tensor:
        x, mask = self.tokens(h_dict, batch_dict, num_samples)
        return masked_mean(run_layers(self.layers, self.norm, x, mask), mask)[0]

    def __repr__(self) -> str:
        options = "" if self.norm_first else ", norm_first=False"
        options += "" if self.activation == "gelu" else f", activation={self.activation!r}"
        return (f"{self.__class__.__name__}({self.channels}, node_types={self.node_types}, "
                f"num_layers={self.num_layers}, heads={self.heads}{options})")
