"""Hugging Face vision transformers (ViT, DeiT, DINOv2, CLIP's vision tower, ...) as patch-node backbones."""
from __future__ import annotations

from torch import Tensor

from graphfuse.backbones.base import grid_of, patches_to_images
from graphfuse.backbones.huggingface import HFBackbone
from graphfuse.backbones.registry import register_backbone


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


@register_backbone("hf-vision-encoder", family="wrapper")
class HFVisionEncoder(HFBackbone):
    r"""A ViT-style ``transformers`` vision encoder: an image -> one hidden state per patch.

    The model's output tokens are its CLS / register tokens followed by one token per
    :math:`p \times p` patch, row-major; the patch tokens (the last :math:`(H/p)(W/p)`) are kept,
    the others dropped.

    Args:
        model (torch.nn.Module or str): a ``transformers`` vision encoder taking ``pixel_values``
            whose config has ``patch_size`` and ``image_size``, or a local ``from_pretrained`` folder.
        layer (int, optional): index into ``hidden_states``; ``None`` for ``last_hidden_state``.
            (default: :obj:`None`)

    Shapes:
        - **input:** images :math:`(B, C, H, W)`, sides multiples of :math:`p`
        - **output:** :math:`(B, (H/p)(W/p), D)`
    """

    def __init__(self, model, layer: int | None = None) -> None:
        super().__init__(model, layer)
        if getattr(self.config, "patch_size", None) is None or getattr(self.config, "image_size", None) is None:
            raise TypeError(f"'HFVisionEncoder' expects a ViT-style model whose config has patch_size and image_size, "
                            f"got {type(self.model).__name__}; wrap a CNN with FeatureMapEncoder instead")
        self.stride = _pair(self.config.patch_size)[0]
        self.image_size = _pair(self.config.image_size)
        self.in_channels = int(getattr(self.config, "num_channels", 3))

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch rows and columns of an ``height`` x ``width`` image."""
        return height // self.stride, width // self.stride

    def forward(self, pixel_values: Tensor) -> Tensor:
        rows, cols = self.grid(*pixel_values.shape[-2:])
        hidden = self.hidden_states(pixel_values.size(0), pixel_values=pixel_values)
        if hidden.size(1) < rows * cols:
            raise ValueError(f"'HFVisionEncoder' got {hidden.size(1)} tokens for a {rows}x{cols} patch grid; the model "
                             f"does not return one token per {self.stride}x{self.stride} patch")
        return hidden[:, hidden.size(1) - rows * cols:]

    def forward_nodes(self, x: Tensor, mask: Tensor, pos: Tensor | None = None) -> Tensor:
        rows, cols = grid_of(pos, x.size(1), "HFVisionEncoder")
        return self.forward(patches_to_images(x, rows, cols, self.stride))
