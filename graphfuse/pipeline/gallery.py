"""A gallery embedded once for retrieval, searched by many queries; saved as safetensors."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import Tensor

from graphfuse.checkpoint import CheckpointError, reading_safetensors
from graphfuse.data import NodeSet
from graphfuse.io import atomic_replace

INDEX_FORMAT = "graphfuse-gallery-index"
INDEX_VERSION = 1


class GalleryIndex:
    """The unit embeddings ``[G, D]`` of a retrieval gallery (from :meth:`Pipeline.index`), and,
    for re-ranking, its featurised samples.

    Args:
        embeddings (Tensor): one row per gallery item.
        node_sets (Sequence[Mapping[str, NodeSet]], optional): the featurised gallery samples, which
            the re-ranker joins with each query; an index read back by :meth:`load` has none.
    """

    def __init__(self, embeddings: Tensor, node_sets: Sequence[Mapping[str, NodeSet]] | None = None) -> None:
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 2:
            raise ValueError(f"GalleryIndex 'embeddings' must be a [G, D] tensor, got "
                             f"{type(embeddings).__name__} of shape {tuple(getattr(embeddings, 'shape', ()))}")
        if node_sets is not None and len(node_sets) != embeddings.size(0):
            raise ValueError(f"GalleryIndex has {embeddings.size(0)} embeddings but {len(node_sets)} samples")
        self.embeddings = embeddings
        self.node_sets = None if node_sets is None else list(node_sets)

    def __len__(self) -> int:
        return self.embeddings.size(0)

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the embeddings as a safetensors file (the samples are not saved: a loaded index
        searches, but re-ranking needs the index built again from the samples)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_replace(path) as temporary:
            safetensors.torch.save_file({"embeddings": self.embeddings.detach().cpu().contiguous()}, temporary,
                                        metadata={"format": INDEX_FORMAT, "version": str(INDEX_VERSION)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> GalleryIndex:
        """The index :meth:`save` wrote to ``path``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No gallery index at {path}: the file does not exist")
        with reading_safetensors(path, "the index"), \
                safetensors.safe_open(path, framework="pt", device=str(device)) as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != INDEX_FORMAT or "embeddings" not in handle.keys():
                raise CheckpointError(f"{path} is a safetensors file but not a graphfuse gallery index")
            if not metadata.get("version", "").isdigit() or int(metadata["version"]) > INDEX_VERSION:
                raise CheckpointError(f"{path} is a version {metadata.get('version')} gallery index; this graphfuse "
                                      f"reads up to version {INDEX_VERSION}: upgrade graphfuse to load it")
            embeddings = handle.get_tensor("embeddings")
        try:
            return cls(embeddings)
        except ValueError as error:
            raise CheckpointError(f"{path} is a damaged gallery index: {error}; save the index again") from None

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(items={len(self)}, dim={self.embeddings.size(1)}, "
                f"samples={'kept' if self.node_sets is not None else 'none'})")
