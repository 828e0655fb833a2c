"""A trainable backbone as a node encoder: runs a pretrained encoder on a batch's nodes, per sample."""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch

from graphfuse.backbones import Backbone, check_hidden_states


class BackboneNodeEncoder(torch.nn.Module):
    r"""Fine-tunes a pretrained :class:`~graphfuse.backbones.Backbone` on the nodes of a batch.

    The nodes hold the backbone's inputs cut per node (token ids, pixel patches, waveform
    chunks; see :class:`~graphfuse.data.modalities.PretrainedModality`). They are regrouped per
    sample with ``batch`` (:func:`~torch_geometric.utils.to_dense_batch`), the backbone runs on
    the padded inputs, and its hidden states map back one-to-one onto the nodes, then through
    ``head``, which projects them to the model's size and adds position / time encodings:

    .. math::
        \mathbf{h}_v = \mathrm{head}\big(\mathrm{Backbone}(\mathbf{X}_{b(v)})_{i(v)},\
        \mathrm{pos}_v, \mathrm{time}_v\big)

    for node :math:`v`, the :math:`i(v)`-th node of sample :math:`b(v)`.

    Args:
        backbone (Backbone): the encoder; its parameters train with the model.
        head (torch.nn.Module): ``(x, pos, time) -> [N, C]`` over the backbone's
            ``out_channels`` features (e.g. :class:`~graphfuse.nn.PatchEncoder`).

    Shapes:
        - **input:** node inputs :math:`(N, *)`, positions :math:`(N, *)`, times :math:`(N, 2)`,
          batch :math:`(N,)` (sorted, as PyG batches it)
        - **output:** :math:`(N, C)`
    """

    #: :class:`~graphfuse.nn.NodeEncoders` passes the node store's ``batch`` to encoders that set it.
    needs_batch = True

    def __init__(self, backbone: Backbone, head: torch.nn.Module) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(f"'BackboneNodeEncoder' expects a graphfuse Backbone, got {type(backbone).__name__}")
        self.backbone = backbone
        self.head = head

    def reset_parameters(self) -> None:
        """Resets the head; the backbone keeps its pretrained weights."""
        if hasattr(self.head, "reset_parameters"):
            self.head.reset_parameters()

    def forward(self, x: Tensor, pos: Tensor | None = None, time: Tensor | None = None,
                batch: Tensor | None = None) -> Tensor:
        if x.size(0) == 0:
            hidden = x.new_zeros(0, self.backbone.out_channels, dtype=torch.float32)
            return self.head(hidden, pos, time)
        if batch is None:
            batch = x.new_zeros(x.size(0), dtype=torch.long)
        batch = torch.unique_consecutive(batch, return_inverse=True)[1]  # samples without these nodes drop out
        dense_x, mask = to_dense_batch(x, batch)
        dense_pos = None if pos is None else to_dense_batch(pos, batch)[0]
        hidden = check_hidden_states(self.backbone.forward_nodes(dense_x, mask, dense_pos), "BackboneNodeEncoder",
                                     dense_x.size(0))
        if hidden.shape[1:] != (dense_x.size(1), self.backbone.out_channels):
            raise ValueError(f"'BackboneNodeEncoder': {type(self.backbone).__name__} returned hidden states of shape "
                             f"{tuple(hidden.shape)} for {dense_x.size(1)} nodes per sample; expected one state of "
                             f"{self.backbone.out_channels} features per node")
        return self.head(hidden[mask], pos, time)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(backbone={type(self.backbone).__name__}, head={self.head})"
