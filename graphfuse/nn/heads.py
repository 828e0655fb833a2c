"""Prediction heads on a sample's fused vector: classification, regression, and the projection into
a shared L2-normalised retrieval space."""
from __future__ import annotations

import torch
from torch import Tensor

from graphfuse.checks import check_int
from graphfuse.deprecation import renamed
from graphfuse.nn.mlp import MLP


class _Head(torch.nn.Module):
    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int | None, dropout: float,
                 factory: dict) -> None:
        super().__init__()
        check_int(in_channels, f"{self.__class__.__name__} 'in_channels'")
        check_int(out_channels, f"{self.__class__.__name__} 'out_channels'")
        if not 0 <= dropout < 1:
            raise ValueError(f"head 'dropout' must be in [0, 1), got {dropout!r}")
        if hidden_channels is not None:
            check_int(hidden_channels, "head 'hidden_channels'")
        self.in_channels, self.out_channels, self.hidden_channels = in_channels, out_channels, hidden_channels
        self.mlp = MLP(in_channels, out_channels, hidden_channels, dropout, input_dropout=True, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"'{self.__class__.__name__}' expected a [num_samples, {self.in_channels}] input, "
                             f"got {tuple(x.shape)}")
        return self.mlp(x)

    def __repr__(self) -> str:
        hidden_channels = "" if self.hidden_channels is None else f", hidden_channels={self.hidden_channels}"
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}{hidden_channels})"


class ClassificationHead(_Head):
    r"""Logits of a multi-class or multi-label classifier, :math:`\mathbf{y} = \mathrm{MLP}(\mathbf{h})`
    (a linear layer, or two with a GELU between when ``hidden_channels`` is set).

    Args:
        in_channels (int): size of the fused sample vector.
        num_classes (int): classes (multi-class) or labels (multi-label).
        hidden_channels (int, optional): hidden size of a two-layer head. (default: :obj:`None`)
        dropout (float, optional): dropout before each linear layer. (default: :obj:`0.0`)
        multilabel (bool, optional): labels are independent (sigmoid / binary cross-entropy)
            instead of exclusive (softmax / cross-entropy); :meth:`loss` and :meth:`predict`
            follow it. (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(B, C_{in})`
        - **output:** :math:`(B, K)` logits
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, in_channels: int, num_classes: int, hidden_channels: int | None = None, dropout: float = 0.0,
                 multilabel: bool = False, device=None, dtype=None) -> None:
        if not multilabel and isinstance(num_classes, int) and num_classes < 2:
            raise ValueError(f"ClassificationHead needs num_classes >= 2 for multi-class, got {num_classes}; "
                             "for a single yes/no label use multilabel=True with num_classes=1")
        self.multilabel = multilabel
        super().__init__(in_channels, num_classes, hidden_channels, dropout, dict(device=device, dtype=dtype))

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy against class indices ``[B]``, or binary cross-entropy against ``{0, 1}``
        labels ``[B, K]`` (multi-label). (The range of class indices is checked where batches are
        made, on the CPU: checking it here would cost a device sync per step.)"""
        if self.multilabel:
            if target.shape != logits.shape:
                raise ValueError(f"multi-label targets must have the logits' shape {tuple(logits.shape)}, got "
                                 f"{tuple(target.shape)}")
            return torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float())
        if target.dim() != 1 or target.size(0) != logits.size(0) or target.is_floating_point():
            raise ValueError(f"multi-class targets must be {logits.size(0)} class indices (an integer tensor of "
                             f"shape [{logits.size(0)}]), got {target.dtype} {tuple(target.shape)}")
        return torch.nn.functional.cross_entropy(logits.float(), target)

    def predict(self, logits: Tensor) -> Tensor:
        """Class indices ``[B]``, or ``{0, 1}`` labels ``[B, K]`` (sigmoid at least 0.5)."""
        return (logits >= 0).long() if self.multilabel else logits.argmax(-1)


class RegressionHead(_Head):
    r"""Real-valued targets, :math:`\mathbf{y} = \mathrm{MLP}(\mathbf{h})`, trained with the mean
    squared error.

    Args:
        in_channels (int): size of the fused sample vector.
        out_channels (int, optional): targets per sample. (default: :obj:`1`)
        hidden_channels (int, optional): hidden size of a two-layer head. (default: :obj:`None`)
        dropout (float, optional): dropout before each linear layer. (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`(B, C_{in})`
        - **output:** :math:`(B, C_{out})`
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, in_channels: int, out_channels: int = 1, hidden_channels: int | None = None,
                 dropout: float = 0.0, device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, hidden_channels, dropout, dict(device=device, dtype=dtype))

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        """Mean squared error; targets ``[B]`` or ``[B, C_out]``."""
        if target.dim() == 1 and self.out_channels == 1:
            target = target.unsqueeze(-1)
        if target.shape != prediction.shape:
            raise ValueError(f"regression targets must have shape {tuple(prediction.shape)} (or [B] for one "
                             f"output), got {tuple(target.shape)}")
        return torch.nn.functional.mse_loss(prediction.float(), target.float())


class ProjectionHead(_Head):
    r"""A projection into a shared retrieval space, L2-normalised:
    :math:`\mathbf{z} = \mathrm{MLP}(\mathbf{h}) / \lVert \mathrm{MLP}(\mathbf{h}) \rVert_2`.

    Args:
        in_channels (int): size of the fused sample vector.
        out_channels (int): size of the shared space.
        hidden_channels (int, optional): hidden size of a two-layer projection. (default: :obj:`None`)
        dropout (float, optional): dropout before each linear layer. (default: :obj:`0.0`)

    Shapes:
        - **input:** :math:`(B, C_{in})`
        - **output:** :math:`(B, C_{out})`, unit rows
    """

    @renamed(hidden="hidden_channels")
    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int | None = None, dropout: float = 0.0,
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, hidden_channels, dropout, dict(device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.normalize(super().forward(x), dim=-1)
