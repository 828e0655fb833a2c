"""Tiny training configs of the benchmark tests, shared by their modules and the ``tiny_tasks`` fixture."""

from graphfuse.bench import accuracy

TINY = accuracy.TrainConfig(epochs=3, batch_size=16, lr=1e-2, hidden=16, heads=2, num_layers=1, dropout=0.0)
TINY_RETRIEVAL = accuracy.TrainConfig(epochs=1, batch_size=8, lr=1e-3, hidden=16, heads=2, num_layers=1,
                                      dropout=0.0)
