"""What the pretrained-encoder modalities share: node inputs from raw data, then a backbone, frozen
(run once at featurisation, batched and cached) or fine-tuned (run inside the model)."""
from __future__ import annotations

import dataclasses
import pathlib
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from graphfuse.backbones import Backbone, backbone_from_config, backbone_to_config, check_hidden_states
from graphfuse.checks import check_bool, check_int
from graphfuse.config import asset_path, file_stem
from graphfuse.data.modalities.base import Modality
from graphfuse.data.modalities.feature_cache import FeatureCache
from graphfuse.data.nodes import NodeSet, NodeSpec

WEIGHTS_FILE = "backbone.safetensors"


class PretrainedModality(Modality):
    r"""Nodes from a pretrained :class:`~graphfuse.backbones.Backbone`, frozen or fine-tuned.

    A subclass cuts a raw input into node inputs (:meth:`node_inputs`: token ids, pixel patches
    at the backbone's stride, waveform chunks of its hop), one per output of the backbone, with
    their positions, times and intra-modal edges. Then:

    - **frozen** (``trainable=False``): featurisation runs the backbone on them under
      ``torch.no_grad`` in eval mode on ``device``, and the nodes carry its hidden states
      :math:`[N, D]` (``float32``, on the CPU). :meth:`featurize_many` runs it once per batch of
      ``batch_size`` inputs, and the features of the last ``cache_size`` distinct inputs are
      kept (keyed by a hash of the node inputs), so featurising a sample again runs nothing.
    - **fine-tuned** (``trainable=True``): the nodes carry the node inputs themselves, and
      :meth:`node_spec` hands the backbone to the model
      (:class:`~graphfuse.nn.BackboneNodeEncoder` runs it on each batch, so gradients reach it).
      The node layout depends on the input's shape alone, so the builder's structure cache applies.

    Args:
        backbone (Backbone): the encoder.
        trainable (bool): fine-tune the backbone inside the model instead of freezing it.
        device (str or torch.device, optional): where a frozen backbone runs. (default: CUDA when
            available, else the CPU)
        batch_size (int): inputs per backbone call in :meth:`featurize_many`.
        cache_size (int): distinct inputs whose features are kept (``0``: none).
    """

    #: Whether inputs with different node counts may share a batch (padded, with a mask); a
    #: backbone that mishandles padding (wav2vec2 with group norm) batches equal lengths only.
    pad_batches = True

    def __init__(self, backbone: Backbone, trainable: bool = False, device: str | torch.device | None = None,
                 batch_size: int = 32, cache_size: int = 4096) -> None:
        if not isinstance(backbone, Backbone):
            raise TypeError(f"{type(self).__name__} expects a graphfuse Backbone, got {type(backbone).__name__}")
        check_int(batch_size, f"{type(self).__name__} 'batch_size'")
        check_bool(trainable, f"{type(self).__name__} 'trainable'")
        if device is not None:
            try:
                torch.device(device)
            except (RuntimeError, TypeError):
                raise ValueError(f"{type(self).__name__} 'device' must be None, a torch.device or a device name such "
                                 f"as 'cpu' or 'cuda:0', got {device!r}") from None
        self.backbone = backbone
        self.trainable = trainable
        self.device = device
        self.batch_size = batch_size
        self.cache = FeatureCache(cache_size)

    @abstractmethod
    def node_inputs(self, raw: Any) -> NodeSet:
        """Raw input -> the backbone's inputs cut per node, with positions, times and edges."""

    @abstractmethod
    def empty_inputs(self) -> NodeSet:
        """The zero-node set of node inputs."""

    def featurize(self, raw: Any) -> NodeSet:
        return self.featurize_many([raw])[0]

    def node_inputs_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        """:meth:`node_inputs` of each raw input; a subclass that cuts many inputs together overrides it."""
        return [self.node_inputs(raw) for raw in raws]

    def featurize_many(self, raws: Sequence[Any]) -> list[NodeSet]:
        inputs = self.node_inputs_many(raws)
        if self.trainable:
            return inputs
        keys = [FeatureCache.key(nodes.x) for nodes in inputs]
        features: dict[str, Tensor | None] = {key: self.cache.get(key) for key in keys}
        todo = list({key: nodes for key, nodes in zip(keys, inputs, strict=True) if features[key] is None}.items())
        for group in self._groups(todo):
            for (key, _), hidden in zip(group, self.encode([nodes for _, nodes in group]), strict=True):
                features[key] = hidden
                self.cache.put(key, hidden)
        # New features: the builder validates them (validated=False), whatever was checked of the inputs.
        return [dataclasses.replace(nodes, x=features[key], validated=False)
                for key, nodes in zip(keys, inputs, strict=True)]

    def _groups(self, items: list[tuple[str, NodeSet]]) -> list[list[tuple[str, NodeSet]]]:
        items = sorted(items, key=lambda item: item[1].num_nodes)
        groups: list[list[tuple[str, NodeSet]]] = []
        for item in items:
            last = groups[-1] if groups else None
            if (last is None or len(last) == self.batch_size
                    or (not self.pad_batches and last[0][1].num_nodes != item[1].num_nodes)):
                groups.append([item])
            else:
                last.append(item)
        return groups

    def run_device(self) -> torch.device:
        """Where the frozen backbone runs: ``device``, or CUDA when available, else the CPU."""
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def encode(self, node_sets: Sequence[NodeSet]) -> list[Tensor]:
        """The frozen backbone's hidden states :math:`[N_i, D]` of node inputs, one backbone call."""
        device = self.run_device()
        self.backbone.to(device).eval()
        lengths = [nodes.num_nodes for nodes in node_sets]
        pad = torch.nn.utils.rnn.pad_sequence
        x = pad([nodes.x for nodes in node_sets], batch_first=True).to(device)
        mask = (torch.arange(max(lengths)) < torch.tensor(lengths)[:, None]).to(device)
        pos = None if node_sets[0].pos is None else pad([nodes.pos for nodes in node_sets], batch_first=True).to(device)
        with torch.no_grad():
            hidden = self.backbone.forward_nodes(x, mask, pos)
        hidden = check_hidden_states(hidden, type(self.backbone).__name__, len(node_sets))
        if hidden.shape[1:] != (max(lengths), self.backbone.out_channels):
            raise ValueError(f"Modality '{self.name}': {type(self.backbone).__name__} returned hidden states of shape "
                             f"{tuple(hidden.shape)} for {max(lengths)} nodes; expected one state of "
                             f"{self.backbone.out_channels} features per node")
        return [hidden[i, :length].float().cpu().clone() for i, length in enumerate(lengths)]  # own storage

    def empty(self) -> NodeSet:
        inputs = self.empty_inputs()
        if self.trainable:
            return inputs
        return NodeSet.empty(feature_shape=(self.backbone.out_channels,),
                             pos_shape=None if inputs.pos is None else tuple(inputs.pos.shape[1:]),
                             timed=inputs.time is not None)

    def node_spec(self) -> NodeSpec:
        if not self.trainable:
            return dataclasses.replace(Modality.node_spec(self), pretrained=True)
        return dataclasses.replace(super().node_spec(), backbone=self.backbone)

    def backbone_config(self) -> dict[str, Any]:
        """The settings every pretrained modality saves (the backbone by registered name and config)."""
        return {"backbone": backbone_to_config(self.backbone), "trainable": self.trainable,
                "weights": None if self.trainable else f"{file_stem(self.name)}.{WEIGHTS_FILE}",
                "device": None if self.device is None else str(self.device), "batch_size": self.batch_size,
                "cache_size": self.cache.max_items}

    def save_assets(self, folder: pathlib.Path) -> None:
        """A frozen backbone's weights, as safetensors (a fine-tuned one's are the model's)."""
        if not self.trainable:
            pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
            self.backbone.save_weights(pathlib.Path(folder) / self.backbone_config()["weights"])

    @classmethod
    def from_config(cls, config: dict, folder: pathlib.Path | None = None) -> PretrainedModality:
        """The modality rebuilt from :meth:`get_config`, with a frozen backbone's weights from ``folder``
        (without a folder, the backbone keeps random weights)."""
        config = dict(config)
        backbone = cls.load_backbone(config, folder)
        return cls(backbone, **config)

    @staticmethod
    def load_backbone(config: dict[str, Any], folder: pathlib.Path | None) -> Backbone:
        """The saved backbone, taking its entries (``"backbone"``, ``"weights"``) out of ``config``, with a
        frozen one's weights from ``folder`` (without a folder, the backbone keeps random weights)."""
        backbone = backbone_from_config(config.pop("backbone"))
        weights = config.pop("weights", None)
        if config.get("trainable", False) is True and weights is not None:
            raise ValueError(f"The pretrained modality's config names the weights file {weights!r} for a fine-tuned "
                             f"backbone, whose weights are the model's (expected null)")
        if not config.get("trainable", False) and folder is not None:
            path = asset_path(folder, weights, "The pretrained modality's config 'weights'")
            if not path.is_file():
                raise FileNotFoundError(f"The frozen backbone's weights {path} are missing; save the modality again "
                                        f"(save_assets) or restore the file")
            backbone.load_weights(path)
        return backbone

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers start with an empty cache
        state = self.__dict__.copy()
        state["cache"] = FeatureCache(self.cache.max_items)
        return state
