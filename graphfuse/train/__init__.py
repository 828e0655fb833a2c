"""Training: the engine (fit / evaluate with checkpoints, early stopping and DDP), tasks, metrics,
checkpoints, optimisers, callbacks and loggers, and data batching."""
from graphfuse.checkpoint import CheckpointError, UnsafeCheckpointError, load_checkpoint, load_weights, save_checkpoint
from graphfuse.train.balance import GradientModulation, modulation_coefficients
from graphfuse.train.callbacks import Callback
from graphfuse.train.data import GraphCollate, IndexedDataset, featurize_dataset
from graphfuse.train.engine import NonFiniteLossError, Trainer, seed_everything, set_deterministic
from graphfuse.train.loggers import CSVLogger, TensorBoardLogger
from graphfuse.train.metrics import (
    classification_metrics,
    multilabel_metrics,
    ranking_metrics,
    regression_metrics,
    retrieval_metrics,
)
from graphfuse.train.modality_dropout import ModalityDropout
from graphfuse.train.optim import build_optimizer, parameter_groups
from graphfuse.train.tasks import (
    TASKS,
    ClassificationTask,
    RegressionTask,
    RetrievalTask,
    Task,
    create_task,
    register_task,
)

__all__ = [
    "TASKS",
    "CSVLogger",
    "CheckpointError",
    "Callback",
    "ClassificationTask",
    "GradientModulation",
    "GraphCollate",
    "IndexedDataset",
    "ModalityDropout",
    "NonFiniteLossError",
    "RegressionTask",
    "RetrievalTask",
    "Task",
    "TensorBoardLogger",
    "Trainer",
    "UnsafeCheckpointError",
    "build_optimizer",
    "classification_metrics",
    "create_task",
    "featurize_dataset",
    "load_checkpoint",
    "load_weights",
    "modulation_coefficients",
    "multilabel_metrics",
    "parameter_groups",
    "ranking_metrics",
    "register_task",
    "regression_metrics",
    "retrieval_metrics",
    "save_checkpoint",
    "seed_everything",
    "set_deterministic",
]
