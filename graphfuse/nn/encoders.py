"""Per-node-type input encoders: raw node features + positions -> one hidden size for all types."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping

import torch
from torch import Tensor

from graphfuse.checks import check_int
from graphfuse.data.nodes import NodeSpec
from graphfuse.data.schema import GraphSchema
from graphfuse.debug import is_debug_enabled
from graphfuse.nn.backbone_encoder import BackboneNodeEncoder

#: Initial standard deviation of learned position embeddings (patch rows and columns).
POSITION_STD = 0.3
#: Initial per-channel weight of the sinusoidal time encoding of audio frames (other timed nodes
#: start at 1). Where a frame lies in a clip says little about what it sounds like, and at weight 1
#: the encoding swamps the frame's content: the audio-only model of ``redundant-digits`` fell from
#: 64.9 to 56.3 %. For timed features in general time is often what matters (``synergy``'s slots:
#: MulT fell from 78.7 to 57.7 % at 0.1), so they keep weight 1.
AUDIO_TIME_WEIGHT = 0.1


def _linear(in_channels: int, out_channels: int, factory: dict) -> torch.nn.Module:
    if in_channels == -1:
        return torch.nn.LazyLinear(out_channels, **factory)
    check_int(in_channels, "encoder 'in_channels' (or -1 for lazy)")
    return torch.nn.Linear(in_channels, out_channels, **factory)


def sinusoidal_encoding(position: Tensor, channels: int) -> Tensor:
    r"""Transformer sinusoids of a (fractional) position: :math:`(|\mathcal{V}|,)` -> :math:`(|\mathcal{V}|, C)`."""
    half = channels // 2
    frequency = torch.exp(torch.arange(half, device=position.device, dtype=torch.float32)
                          * (-math.log(10000.0) / max(half, 1)))
    angle = position.float().unsqueeze(-1) * frequency
    encoding = torch.cat([angle.sin(), angle.cos()], -1)
    return torch.nn.functional.pad(encoding, (0, channels - 2 * half))


#: What a batch made by another builder than the model's shows as, and what to do about it.
_OTHER_BUILDER = "make the batch with the builder the model was created from"


def check_features(x: Tensor, expected: int | None, owner: str) -> None:
    """Raises unless ``x`` is ``[N, expected]`` (``expected`` ``None``: a lazy projection, any width)."""
    if expected is not None and (x.dim() != 2 or x.size(-1) != expected):
        raise ValueError(
            f"{owner} was built for {expected} features per node, got features of shape {tuple(x.shape)}: "
            f"{_OTHER_BUILDER} (the same modality settings: image channels and patch size, n_mels, feature sizes)")


class _Projected(torch.nn.Module):
    """An encoder whose features go through a linear projection ``proj`` first."""

    proj: torch.nn.Module

    @property
    def in_features(self) -> int | None:
        """Features per node the projection takes (``None`` while a lazy one has not seen any)."""
        return None if isinstance(self.proj, torch.nn.LazyLinear) else self.proj.in_features


def _as_input(x: Tensor, projection: torch.nn.Module) -> Tensor:
    """Features in the projection's dtype (a model cast with ``.double()`` takes float32 batches); integer
    features become float32. Under autocast floating features pass as they are: autocast casts them."""
    if not x.is_floating_point():
        return x.float()
    if isinstance(projection, torch.nn.LazyLinear) or torch.is_autocast_enabled(x.device.type):
        return x
    return x.to(projection.weight.dtype)


def _embed(embedding: torch.nn.Embedding, index: Tensor, error) -> Tensor:
    """``embedding(index)``, with an index out of its range reported as ``error(index)`` says (on the CPU, where
    the lookup raises; debug mode checks before the lookup on every device, see :mod:`graphfuse.debug`)."""
    if is_debug_enabled() and index.numel() and (int(index.max()) >= embedding.num_embeddings or int(index.min()) < 0):
        raise error(index)
    try:
        return embedding(index)
    except IndexError:
        raise error(index) from None


def _range(index: Tensor) -> str:
    return f"{int(index.min())} to {int(index.max())}"


class TokenEncoder(torch.nn.Module):
    r"""Text tokens: an embedding of the token id plus a learned embedding of its position.

    Args:
        vocab_size (int): number of token ids (``len(tokenizer)``).
        channels (int): output size.
        max_positions (int, optional): longest text. (default: :obj:`512`)
        padding_idx (int, optional): id whose embedding stays zero. (default: :obj:`0`)

    Shapes:
        - **input:** ids :math:`(N,)` long, positions :math:`(N,)`
        - **output:** :math:`(N, C)`
    """

    def __init__(self, vocab_size: int, channels: int, max_positions: int = 512, padding_idx: int | None = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.max_positions = max_positions
        self.token = torch.nn.Embedding(vocab_size, channels, padding_idx=padding_idx, **factory)
        self.position = torch.nn.Embedding(max_positions, channels, **factory)

    def reset_parameters(self) -> None:
        self.token.reset_parameters()
        self.position.reset_parameters()

    def forward(self, x: Tensor, pos: Tensor | None = None, time: Tensor | None = None) -> Tensor:
        if x.dtype != torch.long or x.dim() != 1:
            raise ValueError(f"'TokenEncoder' expects token ids as a [N] long tensor, got {x.dtype} "
                             f"{tuple(x.shape)}; use PatchEncoder/FeatureEncoder for float features")
        out = _embed(self.token, x, self._token_error)
        if pos is not None:
            out = out + _embed(self.position, pos, self._position_error)
        return out

    def _token_error(self, ids: Tensor) -> ValueError:
        return ValueError(f"'TokenEncoder' got token ids {_range(ids)} but has a vocabulary of "
                          f"{self.token.num_embeddings} (ids 0 to {self.token.num_embeddings - 1}): {_OTHER_BUILDER}, "
                          f"whose tokenizer the model's vocabulary was sized for (vocab_size=len(tokenizer))")

    def _position_error(self, pos: Tensor) -> ValueError:
        return ValueError(f"'TokenEncoder' got token positions {_range(pos)} but holds max_positions="
                          f"{self.max_positions}: cap the texts' length, TextModality(max_length={self.max_positions}, "
                          f"overflow='truncate'), or build the encoder with a larger max_positions")


class PatchEncoder(_Projected):
    r"""Image patches: a linear projection plus learned row and column embeddings.

    Args:
        in_channels (int): features per patch, or ``-1`` to infer on the first call.
        channels (int): output size.
        max_grid (int, optional): largest number of patch rows / columns. (default: :obj:`64`)
        normalize (bool, optional): standardise each patch's features first. (default: :obj:`False`)

    Integer positions index the learned embeddings; floating ones (fractional coordinates) get a
    sinusoidal encoding instead, the row's in the first half of the channels, the column's in the
    second.

    With ``normalize``, each patch's features are first standardised across themselves (a layer
    norm without parameters), as :class:`FrameEncoder` does: :meth:`NodeEncoders.from_schema`
    turns it on for a pretrained encoder's hidden states, which come at that network's scale
    (EfficientNet-Lite0's stage-5 map: a standard deviation near 6, values up to 32) and would
    otherwise swamp the position embeddings and the other modalities' inputs.

    Shapes:
        - **input:** :math:`(N, F)`, positions :math:`(N, 2)` as (row, col)
        - **output:** :math:`(N, C)`
    """

    def __init__(self, in_channels: int, channels: int, max_grid: int = 64, normalize: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.max_grid, self.normalize = max_grid, normalize
        self.proj = _linear(in_channels, channels, factory)
        self.row = torch.nn.Embedding(max_grid, channels, **factory)
        self.col = torch.nn.Embedding(max_grid, channels, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not isinstance(self.proj, torch.nn.LazyLinear):
            self.proj.reset_parameters()
        # Below nn.Embedding's N(0, 1), which swamps the pixels' projection so that a model first
        # learns where a patch is, not what it shows; far smaller (ViT's 0.02) and a model that
        # needs positions learns them slowly. Measured: 0.3 beats both on fashion and on the
        # position-keyed retrieval example, and ties 0.02 on match.
        for embedding in (self.row, self.col):
            torch.nn.init.normal_(embedding.weight, std=POSITION_STD)

    def forward(self, x: Tensor, pos: Tensor | None = None, time: Tensor | None = None) -> Tensor:
        check_features(x, self.in_features, "'PatchEncoder'")
        x = _as_input(x, self.proj)
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        out = self.proj(x)
        if pos is not None:
            if pos.dim() != 2 or pos.size(-1) != 2:
                raise ValueError(f"'PatchEncoder' expects (row, col) positions of shape [N, 2], got {tuple(pos.shape)}")
            if pos.is_floating_point():
                half = out.size(-1) // 2
                encoding = torch.cat([sinusoidal_encoding(pos[:, 0], half),
                                      sinusoidal_encoding(pos[:, 1], out.size(-1) - half)], dim=-1)
                return out + encoding.to(out.dtype)
            out = out + _embed(self.row, pos[:, 0], self._grid_error) + _embed(self.col, pos[:, 1], self._grid_error)
        return out

    def _grid_error(self, index: Tensor) -> ValueError:
        return ValueError(f"'PatchEncoder' got patch rows or columns {_range(index)} but holds "
                          f"max_grid={self.max_grid} of each: at most {self.max_grid} patches a side (an image of at "
                          f"most {self.max_grid} times the patch size in pixels); resize the images, use larger "
                          f"patches, or build the encoder with a larger max_grid")


class FrameEncoder(_Projected):
    r"""Audio frames (or any timed features): a linear projection plus a sinusoidal encoding of
    the frame's start time (in ``time_scale`` units per second), or of its index without times,
    weighted per channel by a learned ``time_weight`` (starting at ``time_weight``;
    :meth:`NodeEncoders.from_builder` starts audio frames at :data:`AUDIO_TIME_WEIGHT`, so that
    the encoding does not swamp their content at the start of training).

    With ``normalize``, each frame's features are first standardised across themselves (a layer
    norm without parameters): log-mel levels shift with loudness, gain and microphone, and
    unnormalised they dominate the projection over the spectral shape that tells sounds apart
    (per-frame normalisation of the kind speech front ends apply; measured on the embedded
    ``redundant-digits`` task it lifts the audio's share of the fused model's accuracy by about
    15 points).

    Args:
        in_channels (int): features per frame, or ``-1`` to infer on the first call.
        channels (int): output size.
        time_scale (float, optional): position units per second. (default: :obj:`100.0`, 10 ms)
        normalize (bool, optional): standardise each frame's features (:meth:`NodeEncoders.from_builder`
            turns it on for :class:`~graphfuse.AudioModality` frames and pretrained hidden states).
            (default: :obj:`False`)
        time_weight (float, optional): initial weight of the time encoding. (default: :obj:`1.0`)

    Shapes:
        - **input:** :math:`(N, F)`, positions :math:`(N,)`, times :math:`(N, 2)`
        - **output:** :math:`(N, C)`
    """

    def __init__(self, in_channels: int, channels: int, time_scale: float = 100.0, normalize: bool = False,
                 time_weight: float = 1.0, device=None, dtype=None) -> None:
        super().__init__()
        self.channels, self.time_scale, self.normalize = channels, time_scale, normalize
        self.initial_time_weight = float(time_weight)
        self.proj = _linear(in_channels, channels, dict(device=device, dtype=dtype))
        self.time_weight = torch.nn.Parameter(torch.empty(channels, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not isinstance(self.proj, torch.nn.LazyLinear):
            self.proj.reset_parameters()
        torch.nn.init.constant_(self.time_weight, self.initial_time_weight)

    def forward(self, x: Tensor, pos: Tensor | None = None, time: Tensor | None = None) -> Tensor:
        check_features(x, self.in_features, "'FrameEncoder'")
        x = _as_input(x, self.proj)
        if self.normalize:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        out = self.proj(x)
        if time is not None:
            if time.dim() != 2 or time.size(-1) != 2:
                raise ValueError(f"'FrameEncoder' expects (start, end) times of shape [N, 2], got {tuple(time.shape)}")
            position = torch.nan_to_num(time[:, 0]) * self.time_scale
        elif pos is not None:
            position = pos
        else:
            return out
        return out + self.time_weight.to(out.dtype) * sinusoidal_encoding(position, self.channels).to(out.dtype)


class FeatureEncoder(_Projected):
    r"""Generic node features: a linear projection.

    Args:
        in_channels (int): input features, or ``-1`` to infer on the first call.
        channels (int): output size.

    Shapes:
        - **input:** :math:`(N, F)` (positions and times are ignored)
        - **output:** :math:`(N, C)`
    """

    def __init__(self, in_channels: int, channels: int, device=None, dtype=None) -> None:
        super().__init__()
        self.proj = _linear(in_channels, channels, dict(device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        if not isinstance(self.proj, torch.nn.LazyLinear):
            self.proj.reset_parameters()

    def forward(self, x: Tensor, pos: Tensor | None = None, time: Tensor | None = None) -> Tensor:
        check_features(x, self.in_features, "'FeatureEncoder'")
        return self.proj(_as_input(x, self.proj))


class NodeEncoders(torch.nn.ModuleDict):
    """One encoder per node type; called on a PyG (batched) ``HeteroData`` it returns ``h_dict``.

    Use :meth:`from_builder` to pick encoders for a :class:`~graphfuse.GraphBuilder`'s modalities
    (text -> :class:`TokenEncoder`, image and grid positions -> :class:`PatchEncoder`, timed or
    index positions -> :class:`FrameEncoder` (normalising each frame for audio), a trainable
    backbone -> :class:`BackboneNodeEncoder`, anything else -> :class:`FeatureEncoder`, every input
    size from the builder's schema). Encoders with ``needs_batch = True`` also receive the node
    store's ``batch`` vector.
    """

    def __init__(self, encoders: Mapping[str, torch.nn.Module]) -> None:
        super().__init__(dict(encoders))

    @classmethod
    def from_schema(cls, schema: GraphSchema, channels: int, device=None, dtype=None) -> NodeEncoders:
        """Encoders for the node types of a :class:`~graphfuse.data.GraphSchema` (or of a
        :class:`~graphfuse.GraphBuilder`, which stands for its schema, as in the models), every input size
        known from it: ids with a vocabulary (text tokens, virtual nodes) -> :class:`TokenEncoder`,
        image patches and other features with grid positions (``(row, col)``) -> :class:`PatchEncoder`,
        timed nodes -> :class:`FrameEncoder` (normalising each frame for audio), other features with
        index positions -> :class:`FrameEncoder` (a sinusoidal encoding of the index), anything
        else -> :class:`FeatureEncoder`. A node type whose spec carries a trainable backbone gets
        a :class:`BackboneNodeEncoder` running it, with the encoder its hidden states would get
        as features as the head."""
        if not isinstance(schema, GraphSchema) and callable(getattr(schema, "schema", None)):
            schema = schema.schema()  # a model factory's `schema` is the builder create_model was given
        encoders = {}
        for node_type, spec in schema.nodes:
            if spec.backbone is not None:
                features = dataclasses.replace(spec, feature_shape=(spec.backbone.out_channels,), integer=False,
                                               num_embeddings=None, backbone=None, pretrained=True)
                encoders[node_type] = BackboneNodeEncoder(spec.backbone, _encoder_for(features, channels, device,
                                                                                      dtype))
            else:
                encoders[node_type] = _encoder_for(spec, channels, device, dtype)
        return cls(encoders)

    @classmethod
    def from_builder(cls, builder, channels: int, device=None, dtype=None) -> NodeEncoders:
        """:meth:`from_schema` of ``builder.schema()``."""
        return cls.from_schema(builder.schema(), channels, device, dtype)

    def forward(self, data, node_types: Collection[str] | None = None) -> dict[str, Tensor]:
        """``h_dict`` of the node types in ``data`` (only those in ``node_types`` when given)."""
        out = {}
        for node_type, encoder in self.items():
            if node_type not in data.node_types or (node_types is not None and node_type not in node_types):
                continue
            store = data[node_type]
            if "x" not in store:
                raise ValueError(f"'NodeEncoders' found no features 'x' for node type {node_type!r}")
            check_features(store.x, getattr(encoder, "in_features", None), f"The encoder of node type {node_type!r}")
            if getattr(encoder, "needs_batch", False):
                out[node_type] = encoder(store.x, store.get("pos"), store.get("time"), batch=store.get("batch"))
            else:
                out[node_type] = encoder(store.x, store.get("pos"), store.get("time"))
        return out


def _encoder_for(spec: NodeSpec, channels: int, device=None, dtype=None) -> torch.nn.Module:
    """The default encoder of nodes described by ``spec`` (see :meth:`NodeEncoders.from_schema`)."""
    factory = dict(device=device, dtype=dtype)
    if spec.kind == "virtual":  # x holds the virtual node's index
        return TokenEncoder(spec.num_embeddings, channels, padding_idx=None, **factory)
    if spec.integer and spec.num_embeddings is not None:
        return TokenEncoder(spec.num_embeddings, channels, max(512, spec.max_positions or 0), **factory)
    if spec.kind == "image" or spec.positions == (2,):
        return PatchEncoder(spec.in_channels, channels, normalize=spec.pretrained, **factory)
    if spec.timed or spec.positions == ():
        audio = spec.kind == "audio"
        return FrameEncoder(spec.in_channels, channels, normalize=audio or spec.pretrained,
                            time_weight=AUDIO_TIME_WEIGHT if audio else 1.0, **factory)
    return FeatureEncoder(spec.in_channels, channels, **factory)
