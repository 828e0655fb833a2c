"""Test decorators for optional dependencies and devices (needs pytest)."""
from collections.abc import Callable

import pytest
import torch

from graphfuse.typing import _dgl_importable


def requires_dgl(test: Callable) -> Callable:
    """Marks a test as needing DGL: ``-m dgl`` selects it; it is skipped where DGL is not importable."""
    skip = pytest.mark.skipif(not _dgl_importable(), reason="dgl is not importable (install graphfuse[dgl])")
    return pytest.mark.dgl(skip(test))


def requires_cuda(test: Callable) -> Callable:
    """Marks a test as needing a CUDA device: ``-m gpu`` selects it; it is skipped on CPU-only machines."""
    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.gpu(skip(test))
