"""Data generated on the machine: no downloads. Benchmark tasks by name in :mod:`graphfuse.datasets.tasks`."""
from graphfuse.datasets.fashion import DatasetNotInstalledError
from graphfuse.datasets.interactions import INTERACTIONS, interaction_builder, interaction_dataset
from graphfuse.datasets.synthetic import WORDS, frames_to_samples, synthetic_samples
from graphfuse.datasets.tasks import TaskData, list_tasks, load_task, register_task

__all__ = [
    "DatasetNotInstalledError",
    "INTERACTIONS",
    "TaskData",
    "WORDS",
    "frames_to_samples",
    "interaction_builder",
    "interaction_dataset",
    "list_tasks",
    "load_task",
    "register_task",
    "synthetic_samples",
]
