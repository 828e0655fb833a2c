r"""Classic (non-graph) multimodal fusion, for comparison with graph fusion on the same inputs.

Every baseline reads what the graph models read: the node features of a PyG batch
(:meth:`GraphBuilder.collate`), embedded by the same :class:`~graphfuse.nn.NodeEncoders`, so that
methods differ only in how they fuse. The modalities of a sample are its node types; a modality
absent from a sample (no nodes of that type) is *masked*, never averaged in as zeros, and where a
fixed-size slot needs a value it holds a learned "absent" vector.

* :func:`dense_modalities` (:mod:`~graphfuse.baselines.dense`): per node type, the padded
  ``[B, L, C]`` tokens and their mask; :func:`masked_mean` pools them.
* :class:`ModalityEncoder` (:mod:`~graphfuse.baselines.encoder`): a transformer over one
  modality's tokens, masked-mean pooled to ``[B, C]``, with a presence mask.
* Fusion of the per-modality vectors ``z [B, M, C]`` (:mod:`~graphfuse.baselines.vectors`):
  :class:`EarlyFusion`, :class:`LateFusion`, :class:`TensorFusion` and
  :class:`LowRankTensorFusion`.
* Token-level fusion of ``h_dict``: :class:`TransformerFusion` (one transformer over the tokens of
  all modalities) and :class:`CrossModalTransformer` (MulT, Tsai et al. 2019).
* Models (:mod:`~graphfuse.baselines.models`): :class:`BaselineFusionModel` and
  :class:`BaselineRetrievalModel`, registered as ``early-fusion``, ``late-fusion``,
  ``tensor-fusion``, ``lowrank-fusion``, ``transformer-fusion``, ``mult`` and ``unimodal``
  (:mod:`~graphfuse.baselines.registry`; ``import graphfuse`` registers them).

The package sits above :mod:`graphfuse.nn`, :mod:`graphfuse.models` and :mod:`graphfuse.train`,
beside the benchmark: nothing below it imports it.
"""
from graphfuse.baselines import registry  # noqa: F401  (registers the baseline models)
from graphfuse.baselines.dense import dense_modalities, masked_mean
from graphfuse.baselines.encoder import ModalityEncoder
from graphfuse.baselines.models import BaselineFusionModel, BaselineRetrievalModel
from graphfuse.baselines.mult import CrossModalTransformer
from graphfuse.baselines.transformer import TransformerFusion
from graphfuse.baselines.vectors import EarlyFusion, LateFusion, LowRankTensorFusion, TensorFusion

__all__ = [
    "BaselineFusionModel",
    "BaselineRetrievalModel",
    "CrossModalTransformer",
    "EarlyFusion",
    "LateFusion",
    "LowRankTensorFusion",
    "ModalityEncoder",
    "TensorFusion",
    "TransformerFusion",
    "dense_modalities",
    "masked_mean",
]
