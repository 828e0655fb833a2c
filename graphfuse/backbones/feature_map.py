"""Any CNN as a patch-node backbone: each position of its feature map is a node."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from graphfuse.backbones.base import Backbone, grid_of, patches_to_images
from graphfuse.backbones.registry import BACKBONES, register_backbone

_PROBE_SIZE = 64
_STRIDE_PROBE = 256


@register_backbone("feature-map", family="wrapper")
class FeatureMapEncoder(Backbone):
    r"""A convolutional network's feature map as patch nodes: position :math:`(i, j)` of the map
    :math:`\mathbf{F} \in \mathbb{R}^{B \times D \times h \times w}` is the node at grid position
    :math:`(i, j)`, its hidden state :math:`\mathbf{F}_{:, :, i, j}`, row-major.

    The map is ``module.forward_features(images)`` when the module has that method (timm models,
    :class:`~graphfuse.backbones.EfficientNetLite0`), else ``module(images)``.

    Args:
        module (torch.nn.Module or str): the network, or the name of a registered backbone
            (:func:`~graphfuse.backbones.register_backbone`) to create with ``module_kwargs``;
            only a named one can be saved (:meth:`get_config`).
        module_kwargs (Mapping, optional): arguments of the named backbone. (default: :obj:`None`)
        in_channels (int, optional): image channels. (default: :obj:`3`)
        out_channels (int, optional): channels :math:`D` of the map; read off the module's
            ``feature_channels`` or a probe run when not given. (default: :obj:`None`)
        stride (int, optional): pixels per map position, for fine-tuning; read off a probe run
            when not given. (default: :obj:`None`)

    Shapes:
        - **input:** images :math:`(B, C, H, W)`
        - **output:** :math:`(B, h w, D)`
    """

    def __init__(self, module: torch.nn.Module | str, module_kwargs: Mapping[str, Any] | None = None,
                 in_channels: int = 3, out_channels: int | None = None, stride: int | None = None) -> None:
        super().__init__()
        self.module_name = module if isinstance(module, str) else None
        self.module_kwargs = dict(module_kwargs or {})
        if isinstance(module, str):
            module = BACKBONES.get(module)(**self.module_kwargs)
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"'FeatureMapEncoder' expects a torch.nn.Module or a registered backbone name, got "
                            f"{type(module).__name__}")
        self.module = module
        self.in_channels = in_channels
        self.stride = stride
        self._grids: dict[tuple[int, int], tuple[int, int]] = {}
        out_channels = out_channels or getattr(module, "feature_channels", None)
        self.out_channels = int(out_channels) if out_channels else self._probe(_PROBE_SIZE, _PROBE_SIZE).size(1)

    def feature_map(self, images: Tensor) -> Tensor:
        """The module's feature map :math:`[B, D, h, w]`; any other output raises."""
        forward = getattr(self.module, "forward_features", None)
        fmap = forward(images) if callable(forward) else self.module(images)
        if not (isinstance(fmap, Tensor) and fmap.is_floating_point() and fmap.dim() == 4
                and fmap.size(0) == images.size(0)):
            shape = tuple(fmap.shape) if isinstance(fmap, Tensor) else type(fmap).__name__
            raise ValueError(f"'FeatureMapEncoder' expects its module to return a feature map [B, D, h, w] "
                             f"(from forward_features, or forward without it), got {shape}; wrap the module so "
                             f"that it returns its last feature map, or use HFVisionEncoder for a vision transformer")
        return fmap

    def _probe(self, height: int, width: int) -> Tensor:
        parameter = next(self.module.parameters(), None)
        device = None if parameter is None else parameter.device
        training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                return self.feature_map(torch.zeros(1, self.in_channels, height, width, device=device))
        finally:
            self.module.train(training)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns of the feature map of an ``height`` x ``width`` image (a probe run, cached)."""
        if (height, width) not in self._grids:
            self._grids[height, width] = tuple(self._probe(height, width).shape[-2:])
        return self._grids[height, width]

    def stride_for(self, height: int, width: int) -> int:
        """Pixels per map position (``stride``, or read off a probe run on a 256 x 256 image); the map of an
        ``height`` x ``width`` image must tile it exactly."""
        stride = self.stride
        if stride is None:
            rows, cols = self.grid(_STRIDE_PROBE, _STRIDE_PROBE)
            if _STRIDE_PROBE % rows or rows != cols:
                raise ValueError(f"'FeatureMapEncoder' maps a {_STRIDE_PROBE}x{_STRIDE_PROBE} image to a {rows}x{cols} "
                                 f"grid, so its stride is not a whole number of pixels; give it as stride=")
            stride = _STRIDE_PROBE // rows
        if height % stride or width % stride or self.grid(height, width) != (height // stride, width // stride):
            raise ValueError(f"'FeatureMapEncoder' maps a {height}x{width} image to a {self.grid(height, width)} grid, "
                             f"which does not tile it into {stride}x{stride} patches; choose an image_size that is a "
                             f"multiple of the network's stride {stride}")
        return stride

    def forward(self, images: Tensor) -> Tensor:
        return self.feature_map(images).flatten(2).transpose(1, 2)

    def forward_nodes(self, x: Tensor, mask: Tensor, pos: Tensor | None = None) -> Tensor:
        rows, cols = grid_of(pos, x.size(1), "FeatureMapEncoder")
        stride = round((x.size(-1) // self.in_channels) ** 0.5)
        return self.forward(patches_to_images(x, rows, cols, stride))

    def get_config(self) -> dict[str, Any]:
        if self.module_name is None:
            raise ValueError(f"'FeatureMapEncoder' can save only a module given by its registered name, got a "
                             f"{type(self.module).__name__} instance; register its factory with "
                             f"@register_backbone('name') and pass FeatureMapEncoder('name', module_kwargs=...)")
        # The saved weights replace what a factory's `pretrained` argument loads, so a folder loads where
        # that argument's weights are not installed.
        module_kwargs = {key: value for key, value in self.module_kwargs.items() if key != "pretrained"}
        return {"module": self.module_name, "module_kwargs": module_kwargs, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "stride": self.stride}

    def extra_repr(self) -> str:
        return f"module={self.module_name or type(self.module).__name__}, out_channels={self.out_channels}"
