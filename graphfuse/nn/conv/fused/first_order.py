"""The attention kernels' hand-written backwards write their gradients into place, which autograd
cannot differentiate again: asked for second derivatives, they say so and name the way out."""
from __future__ import annotations

import torch


def require_first_order(kernel: str) -> None:
    """Raises an error naming the conv's reference path when ``kernel``'s backward is asked for second
    derivatives (``create_graph=True``, e.g. a gradient penalty), where autograd would fail deep inside
    torch on the first in-place product."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"graphfuse's fused {kernel} kernel is differentiable once, and this backward asks for second "
            f"derivatives (create_graph=True). Create the conv with path='reference' (in a FusionEncoder: "
            f"conv_kwargs={{'path': 'reference'}}), which autograd differentiates twice")
