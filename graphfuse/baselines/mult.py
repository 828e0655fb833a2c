"""The Multimodal Transformer (MulT, Tsai et al., 2019): cross-modal attention between every pair
of modalities."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from graphfuse.baselines.checks import check_transformer
from graphfuse.baselines.dense import dense_modalities, key_padding, masked_mean
from graphfuse.baselines.encoder import encoder_layer, reset_transformer
from graphfuse.nn.mlp import MLP
from graphfuse.nn.readout import check_known_node_types, check_node_dicts, check_node_types

__all__ = ["CrossModalTransformer"]


class _CrossModalLayer(torch.nn.Module):
    """Pre-norm cross-modal attention (queries from the target, keys and values from the source)
    and a feed-forward network, each residual."""

    def __init__(self, channels: int, heads: int, ffn_ratio: float, dropout: float, factory: dict) -> None:
        super().__init__()
        self.norm_query = torch.nn.LayerNorm(channels, **factory)
        self.norm_source = torch.nn.LayerNorm(channels, **factory)
        self.attention = torch.nn.MultiheadAttention(channels, heads, dropout=dropout, batch_first=True, **factory)
        self.norm_ffn = torch.nn.LayerNorm(channels, **factory)
        self.ffn = MLP(channels, channels, max(1, int(ffn_ratio * channels)), dropout, **factory)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: Tensor, source: Tensor, source_mask: Tensor) -> Tensor:
        if source.size(1) > 0:
            has_source = source_mask.any(dim=1)
            keys = self.norm_source(source)
            message = self.attention(self.norm_query(x), keys, keys, key_padding_mask=key_padding(source_mask),
                                     need_weights=False)[0]
            # A query without keys (the source is absent from its sample) receives nothing.
            x = x + self.dropout(message.masked_fill(~has_source.view(-1, 1, 1), 0.0))
        return x + self.dropout(self.ffn(self.norm_ffn(x)))


class CrossModalTransformer(torch.nn.Module):
    r"""The Multimodal Transformer (MulT, Tsai et al., 2019): every modality attends to every other
    one through its own stack of cross-modal layers, then to itself.

    For a target modality :math:`\alpha` and a source :math:`\beta \neq \alpha`, with
    :math:`\mathbf{Y}^{[0]} = \mathbf{H}_\alpha`, each of the ``num_layers`` pre-norm layers is

    .. math::
        \mathbf{Y} &\leftarrow \mathbf{Y} + \mathrm{MHA}\big(\mathrm{LN}(\mathbf{Y}),\,
        \mathrm{LN}(\mathbf{H}_\beta),\, \mathrm{LN}(\mathbf{H}_\beta)\big) \\
        \mathbf{Y} &\leftarrow \mathbf{Y} + \mathrm{FFN}\big(\mathrm{LN}(\mathbf{Y})\big)

    giving :math:`\mathbf{Y}_{\beta \to \alpha}`. The target's outputs over its sources are
    concatenated along channels, projected back to :math:`C`, passed through one self-attention
    layer, normalised and mean pooled over the target's tokens,

    .. math::
        \mathbf{z}_\alpha = \mathrm{mean}\; \mathrm{LN}\Big(\mathrm{SelfAttn}\big(\mathbf{W}_\alpha
        \big[\mathbf{Y}_{\beta_1 \to \alpha} \,\Vert\, \mathbf{Y}_{\beta_2 \to \alpha} \,\Vert\,
        \cdots\big]\big)\Big), \qquad \mathbf{h} = \big\Vert_{\alpha} \mathbf{z}_\alpha

    Missing modalities are masked: a target token whose sample lacks the source receives a zero
    attention message (never NaN), and an absent target's slot of :math:`\mathbf{h}` holds its
    learned vector :math:`\mathbf{e}_\alpha`.

    Args:
        channels (int): features per token, :math:`C`.
        node_types (Sequence[str]): the modalities (at least two); ``h_dict`` may hold a subset.
        num_layers (int, optional): cross-modal layers per (target, source) pair. (default: :obj:`1`)
        heads (int, optional): attention heads (dividing ``channels``). (default: :obj:`4`)
        ffn_ratio (float, optional): feed-forward size over ``channels``. (default: :obj:`2.0`)
        dropout (float, optional): in attention and feed-forward layers. (default: :obj:`0.1`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** ``h_dict`` :math:`\{t: (|\mathcal{V}_t|, C)\}`, ``batch_dict``
          :math:`\{t: (|\mathcal{V}_t|,)\}`, ``num_samples`` :math:`B`
        - **output:** :math:`(B, T \cdot C)` (``out_channels``), :math:`T` = ``len(node_types)``
    """

    def __init__(self, channels: int, node_types: Sequence[str], num_layers: int = 1, heads: int = 4,
                 ffn_ratio: float = 2.0, dropout: float = 0.1, device=None, dtype=None) -> None:
        super().__init__()
        check_transformer("CrossModalTransformer", channels, num_layers, heads, ffn_ratio, dropout)
        self.node_types = check_node_types(node_types, "CrossModalTransformer")
        if len(self.node_types) < 2:
            raise ValueError(f"CrossModalTransformer attends across modalities and needs at least two node types, "
                             f"got {self.node_types}; for one modality use ModalityEncoder or TransformerFusion")
        factory = dict(device=device, dtype=dtype)
        self.channels, self.num_layers, self.heads = channels, num_layers, heads
        num_types = len(self.node_types)
        self.out_channels = num_types * channels
        self.cross = torch.nn.ModuleDict({
            target: torch.nn.ModuleDict({
                source: torch.nn.ModuleList(_CrossModalLayer(channels, heads, ffn_ratio, dropout, factory)
                                            for _ in range(num_layers))
                for source in self.node_types if source != target})
            for target in self.node_types})
        self.proj = torch.nn.ModuleDict({t: torch.nn.Linear((num_types - 1) * channels, channels, **factory)
                                         for t in self.node_types})
        self.self_attention = torch.nn.ModuleDict({t: encoder_layer(channels, heads, ffn_ratio, dropout, factory)
                                                   for t in self.node_types})
        self.norm = torch.nn.ModuleDict({t: torch.nn.LayerNorm(channels, **factory) for t in self.node_types})
        self.absent = torch.nn.Parameter(torch.empty(num_types, channels, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_transformer(self)
        torch.nn.init.normal_(self.absent, std=0.02)

    def forward(self, h_dict: Mapping[str, Tensor], batch_dict: Mapping[str, Tensor], num_samples: int) -> Tensor:
        check_known_node_types(h_dict, self.node_types, "CrossModalTransformer")
        check_node_dicts(h_dict, batch_dict, self.channels, "CrossModalTransformer")
        dense = dense_modalities(h_dict, batch_dict, num_samples)
        first = next(iter(h_dict.values()))
        empty = (first.new_zeros(num_samples, 0, self.channels),
                 torch.zeros(num_samples, 0, dtype=torch.bool, device=first.device))
        dense = {t: dense.get(t, empty) for t in self.node_types}
        pooled = []
        for index, target in enumerate(self.node_types):
            x, mask = dense[target]
            if x.size(1) == 0:  # no sample has the target: every slot is absent
                pooled.append(self.absent[index].to(x.dtype).expand(num_samples, -1))
                continue
            outputs = []
            for source, layers in self.cross[target].items():
                y = x
                for layer in layers:
                    y = layer(y, *dense[source])
                outputs.append(y)
            y = self.proj[target](torch.cat(outputs, dim=-1))
            y = self.norm[target](self.self_attention[target](y, src_key_padding_mask=key_padding(mask)))
            z, present = masked_mean(y, mask)
            pooled.append(torch.where(present.unsqueeze(-1), z, self.absent[index].to(z.dtype)))
        dtype = pooled[0].dtype
        for p in pooled[1:]:
            dtype = torch.promote_types(dtype, p.dtype)
        return torch.cat([p.to(dtype) for p in pooled], dim=-1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, node_types={self.node_types}, "
                f"num_layers={self.num_layers}, heads={self.heads})")
