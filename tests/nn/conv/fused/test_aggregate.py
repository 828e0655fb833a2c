"""The CSR structure the fused kernels share: sorting edges by their rows."""
import pytest
import torch

from graphfuse.nn.conv.fused.aggregate import _compressed


@pytest.mark.parametrize("num_rows", [1, 7, 1000])
def test_compressed_is_the_stable_sort_of_the_rows(num_rows):
    """32-bit keys sort the rows exactly as the 64-bit stable sort does: ties keep their input order."""
    rows = torch.randint(0, num_rows, (5000,), generator=torch.Generator().manual_seed(num_rows))
    order, crow = _compressed(rows, num_rows)
    assert order.dtype == crow.dtype == torch.long
    assert torch.equal(order, torch.argsort(rows, stable=True))
    assert torch.equal(crow, torch.cat([torch.zeros(1, dtype=torch.long),
                                        torch.bincount(rows, minlength=num_rows).cumsum(0)]))


def test_compressed_of_no_rows():
    order, crow = _compressed(torch.zeros(0, dtype=torch.long), 3)
    assert order.numel() == 0 and torch.equal(crow, torch.zeros(4, dtype=torch.long))
