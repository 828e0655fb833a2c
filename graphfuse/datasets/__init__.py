"""Data generated on the machine: no downloads."""
from graphfuse.datasets.synthetic import WORDS, frames_to_samples, synthetic_samples

__all__ = ["WORDS", "frames_to_samples", "synthetic_samples"]
