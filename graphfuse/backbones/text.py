"""Hugging Face text encoders (BERT, RoBERTa, CLIP's text tower, ...) as token-node backbones."""
from __future__ import annotations

from torch import Tensor

from graphfuse.backbones.huggingface import HFBackbone
from graphfuse.backbones.registry import register_backbone


@register_backbone("hf-text-encoder", family="wrapper")
class HFTextEncoder(HFBackbone):
    r"""A ``transformers`` text encoder: token ids -> one hidden state per token.

    .. math::
        \mathbf{H} = \mathrm{Encoder}(\mathbf{ids})^{(\ell)} \in \mathbb{R}^{B \times L \times D}

    for the chosen layer :math:`\ell` (the last one, ``last_hidden_state``, by default).

    Args:
        model (torch.nn.Module or str): a ``transformers`` encoder taking ``input_ids`` and
            ``attention_mask``, or a local ``from_pretrained`` folder (nothing is downloaded).
        layer (int, optional): index into ``hidden_states`` (``0`` is the embeddings' output,
            ``-1`` the last layer before any final norm); ``None`` for ``last_hidden_state``.
            (default: :obj:`None`)

    Shapes:
        - **input:** ids :math:`(B, L)` long, attention mask :math:`(B, L)`
        - **output:** :math:`(B, L, D)`
    """

    @property
    def max_positions(self) -> int | None:
        """The longest token sequence the model takes (``max_position_embeddings``), if it says."""
        return getattr(self.config, "max_position_embeddings", None)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.hidden_states(input_ids.size(0), input_ids=input_ids, attention_mask=attention_mask)

    def forward_nodes(self, x: Tensor, mask: Tensor, pos: Tensor | None = None) -> Tensor:
        return self.forward(x, mask.long())
