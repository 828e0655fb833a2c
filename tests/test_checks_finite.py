"""check_finite of graphfuse.checks: a quick sum for the common case, the exact test where the sum is not finite."""
import pytest
import torch

from graphfuse.checks import check_finite


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_large_finite_values_whose_sum_overflows_pass(dtype):
    largest = torch.finfo(dtype).max
    check_finite(torch.tensor([largest, largest, -largest, largest], dtype=dtype), "image", "pixels")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_nan_and_inf_are_refused_with_their_count(bad, dtype):
    values = torch.zeros(5, 3, dtype=dtype)
    values[1, 2] = values[4, 0] = bad
    with pytest.raises(ValueError, match=r"Modality 'audio' received samples with 2 NaN/Inf value\(s\)"):
        check_finite(values, "audio", "samples")


def test_inf_beside_its_negative_is_refused():  # their sum is NaN, not inf: still refused
    with pytest.raises(ValueError, match="2 NaN/Inf"):
        check_finite(torch.tensor([float("inf"), -float("inf"), 1.0]), "audio", "samples")


def test_integer_values_are_always_finite():
    check_finite(torch.tensor([2 ** 62, 2 ** 62, 2 ** 62]), "text", "ids")
