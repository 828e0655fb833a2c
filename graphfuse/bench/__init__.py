"""Benchmarks behind ``python -m graphfuse.bench``: ``build`` (graph construction and batching)."""
