"""Seeing inside the fusion: attention maps, modality contributions, node attributions and their
pictures (:mod:`graphfuse.explain.plots`, needs matplotlib); ``python -m graphfuse.explain`` draws
them for a model trained on an embedded task or a saved pipeline."""
from graphfuse.explain.attention import AttentionRecorder, LayerAttention
from graphfuse.explain.explainer import explain
from graphfuse.explain.explanation import Explanation
from graphfuse.explain.measures import NothingToMeasure, SpanAttention, span_attention

__all__ = ["AttentionRecorder", "Explanation", "LayerAttention", "NothingToMeasure", "SpanAttention", "explain",
           "span_attention"]
