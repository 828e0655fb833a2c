"""The small perceptron of heads and fusion layers."""
from __future__ import annotations

import torch

from graphfuse.checks import check_int, check_probability

__all__ = ["MLP"]


class MLP(torch.nn.Sequential):
    r"""A linear layer, or two with a GELU between, with dropout before the second (and, with
    ``input_dropout``, before the first):

    .. math::
        \mathrm{MLP}(\mathbf{x}) = \mathbf{W}_2\, \mathrm{Dropout}\big(\mathrm{GELU}(\mathbf{W}_1
        \mathbf{x} + \mathbf{b}_1)\big) + \mathbf{b}_2

    The layers are the children of a :class:`torch.nn.Sequential` (``0``, ``1``, ...), so the
    parameter names are those of the plain sequential it replaces.

    Args:
        in_channels (int): input features.
        out_channels (int): output features.
        hidden_channels (int, optional): hidden size of the two-layer form (default: one linear layer).
        dropout (float, optional): the dropout probability. (default: :obj:`0.0`)
        input_dropout (bool, optional): also drop out the input. (default: :obj:`False`)
        device (torch.device, optional): device of the parameters. (default: :obj:`None`)
        dtype (torch.dtype, optional): dtype of the parameters. (default: :obj:`None`)

    Shapes:
        - **input:** :math:`(*, C_{in})`
        - **output:** :math:`(*, C_{out})`
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int | None = None, dropout: float = 0.0,
                 input_dropout: bool = False, device=None, dtype=None) -> None:
        check_int(in_channels, "MLP 'in_channels'")
        check_int(out_channels, "MLP 'out_channels'")
        check_probability(dropout, "MLP 'dropout'")
        factory = dict(device=device, dtype=dtype)
        layers: list[torch.nn.Module] = [torch.nn.Dropout(dropout)] if input_dropout else []
        if hidden_channels is None:
            layers.append(torch.nn.Linear(in_channels, out_channels, **factory))
        else:
            check_int(hidden_channels, "MLP 'hidden_channels'")
            layers += [torch.nn.Linear(in_channels, hidden_channels, **factory), torch.nn.GELU(),
                       torch.nn.Dropout(dropout), torch.nn.Linear(hidden_channels, out_channels, **factory)]
        super().__init__(*layers)
        self.in_channels, self.out_channels, self.hidden_channels = in_channels, out_channels, hidden_channels
        self.dropout, self.input_dropout = dropout, input_dropout

    def reset_parameters(self) -> None:
        for module in self:
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()

    def __repr__(self) -> str:
        hidden_channels = "" if self.hidden_channels is None else f", hidden_channels={self.hidden_channels}"
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}{hidden_channels}, "
                f"dropout={self.dropout}, input_dropout={self.input_dropout})")
