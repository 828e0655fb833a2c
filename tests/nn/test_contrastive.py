import math

import pytest
import torch
import torch.nn.functional as F

from graphfuse.nn.contrastive import LearnableTemperature, info_nce


def unit(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=dtype), dim=-1)


def loop_info_nce(query: torch.Tensor, gallery: torch.Tensor, scale: float) -> float:
    """Sum over i of -log(exp(s q_i.g_i) / sum_j exp(s q_i.g_j)), both directions, averaged over 2B terms."""
    q, g = query.tolist(), gallery.tolist()
    size = len(q)

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    total = 0.0
    for i in range(size):
        total -= math.log(math.exp(scale * dot(q[i], g[i])) / sum(math.exp(scale * dot(q[i], g[j]))
                                                                  for j in range(size)))
        total -= math.log(math.exp(scale * dot(g[i], q[i])) / sum(math.exp(scale * dot(g[i], q[j]))
                                                                  for j in range(size)))
    return total / (2 * size)


@pytest.mark.parametrize("scale", [1.0, 14.3])
def test_matches_loops(scale):
    query, gallery = unit(5, 7, seed=1, dtype=torch.float64), unit(5, 7, seed=2, dtype=torch.float64)
    loss = info_nce(query, gallery, scale)
    assert loss.dtype == torch.float64 and loss.dim() == 0
    assert float(loss) == pytest.approx(loop_info_nce(query, gallery, scale), rel=1e-10)
    from_tensor = info_nce(query, gallery, torch.tensor(scale, dtype=torch.float64))
    assert float(from_tensor) == pytest.approx(float(loss), rel=1e-12)


def test_not_normalised_inside():
    query, gallery = unit(4, 3, seed=3, dtype=torch.float64), unit(4, 3, seed=4, dtype=torch.float64)
    assert float(info_nce(2 * query, gallery, 3.0)) == pytest.approx(loop_info_nce(query, gallery, 6.0), rel=1e-10)


def test_gradients_reach_embeddings_and_temperature():
    query = torch.randn(6, 8, requires_grad=True)
    gallery = torch.randn(6, 8, requires_grad=True)
    temperature = LearnableTemperature()
    info_nce(F.normalize(query, dim=-1), F.normalize(gallery, dim=-1), temperature()).backward()
    for grad in (query.grad, gallery.grad, temperature.log_scale.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_aligned_near_zero_shuffled_not():
    embeddings = torch.eye(4)  # orthonormal: each pair well separated from the rest
    assert float(info_nce(embeddings, embeddings.clone(), 100.0)) < 1e-6
    shuffled = embeddings[torch.tensor([1, 2, 3, 0])]  # no row keeps its partner
    assert float(info_nce(embeddings, shuffled, 100.0)) > 50.0


def test_bf16_autocast_returns_float32():
    query, gallery = unit(8, 16, seed=5).bfloat16(), unit(8, 16, seed=6).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = info_nce(query, gallery, 50.0)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, info_nce(query.float(), gallery.float(), 50.0))


def test_info_nce_errors():
    with pytest.raises(ValueError, match=r"info_nce.*one shape.*\(4, 8\) and \(3, 8\)"):
        info_nce(unit(4, 8), unit(3, 8), 10.0)
    with pytest.raises(ValueError, match=r"info_nce.*one shape"):
        info_nce(unit(4, 8), unit(4, 6), 10.0)
    with pytest.raises(ValueError, match=r"at least 2 pairs"):
        info_nce(unit(1, 8), unit(1, 8), 10.0)
    with pytest.raises(ValueError, match=r"'query' of shape \[batch_size, dim\]"):
        info_nce(unit(8), unit(8), 10.0)
    with pytest.raises(TypeError, match=r"'gallery' as a floating-point tensor"):
        info_nce(unit(4, 8), torch.ones(4, 8, dtype=torch.long), 10.0)
    with pytest.raises(ValueError, match=r"'logit_scale' as a scalar"):
        info_nce(unit(4, 8), unit(4, 8), torch.ones(2))
    with pytest.raises(ValueError, match=r"'logit_scale' as a positive"):
        info_nce(unit(4, 8), unit(4, 8), -1.0)


def test_temperature_init_clamp_and_repr():
    temperature = LearnableTemperature()
    assert float(temperature().detach()) == pytest.approx(1 / 0.07, rel=1e-6)
    assert temperature.temperature == pytest.approx(0.07, rel=1e-6)
    assert repr(temperature) == "LearnableTemperature(temperature=0.0700, max_scale=100.0)"
    capped = LearnableTemperature(0.1, max_scale=20)
    with torch.no_grad():
        capped.log_scale.fill_(math.log(1000.0))
    assert float(capped().detach()) == 20.0
    assert repr(capped) == "LearnableTemperature(temperature=0.0500, max_scale=20.0)"
    capped.reset_parameters()
    assert capped.temperature == pytest.approx(0.1, rel=1e-6)


@pytest.mark.parametrize("kwargs", [{"init_temperature": 0.0}, {"init_temperature": -0.1}, {"max_scale": 0.0},
                                    {"init_temperature": 0.001}, {"init_temperature": 0.1, "max_scale": 5.0}])
def test_temperature_errors(kwargs):
    with pytest.raises(ValueError, match=r"LearnableTemperature"):
        LearnableTemperature(**kwargs)
