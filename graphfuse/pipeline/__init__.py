"""Pipelines: a builder, a model and its task, saved and loaded as one folder (JSON + safetensors) and
served from raw samples (predictions, gallery indexing and search)."""
from graphfuse.pipeline.gallery import GalleryIndex
from graphfuse.pipeline.pipeline import Pipeline

__all__ = ["GalleryIndex", "Pipeline"]
