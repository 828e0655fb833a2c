import math

import pytest
import torch

from graphfuse.nn.unimodal import MultimodalOutput
from graphfuse.train.balance import GradientModulation, modulation_coefficients

TYPES = ["text", "image", "audio"]

pytestmark = pytest.mark.usefixtures("one_thread")


def output_of(unimodal, present, node_types=None):
    node_types = tuple(TYPES[:unimodal.size(1)] if node_types is None else node_types)
    return MultimodalOutput(torch.zeros(unimodal.size(0), unimodal.size(-1)), unimodal, present, node_types)


def random_output(seed=0, B=5, M=3, K=4):
    """Random unimodal logits; sample 1 has no audio, sample 3 no image."""
    generator = torch.Generator().manual_seed(seed)
    unimodal = 2 * torch.randn(B, M, K, generator=generator)
    present = torch.ones(B, M, dtype=torch.bool)
    present[1, 2] = present[3, 1] = False
    target = torch.randint(K, (B,), generator=generator)
    return output_of(unimodal, present), target


def hand_coefficients(output, target, alpha):
    scores = {}
    for m in range(output.unimodal.size(1)):
        rows = [b for b in range(target.numel()) if output.present[b, m]]
        if rows:
            scores[m] = sum(torch.softmax(output.unimodal[b, m], 0)[target[b]].item() for b in rows) / len(rows)
    mean = sum(scores.values()) / len(scores)
    return torch.tensor([1 - math.tanh(alpha * max(scores[m] / mean - 1, 0)) if m in scores else 1.0
                         for m in range(output.unimodal.size(1))])


def leading_output(B=6, K=3):
    """Modality 0 is confident on the target, modalities 1 and 2 are not."""
    target = torch.arange(B) % K
    unimodal = torch.zeros(B, 3, K)
    unimodal[torch.arange(B), 0, target] = 4.0
    unimodal[torch.arange(B), 2, target] = -1.0
    return output_of(unimodal, torch.ones(B, 3, dtype=torch.bool)), target


@pytest.mark.parametrize("alpha", [0.1, 0.5, 3.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coefficients_match_hand_computation(alpha, seed):
    output, target = random_output(seed)
    k = modulation_coefficients(output, target, alpha)
    assert k.shape == (3,) and k.dtype == torch.float32
    torch.testing.assert_close(k, hand_coefficients(output, target, alpha))
    assert ((k > 0) & (k <= 1)).all() and (k < 1).any()


def test_absent_pairs_do_not_count():
    output, target = random_output()
    k = modulation_coefficients(output, target, 0.5)
    garbage = output.unimodal.clone()
    garbage[~output.present] = 1e4 * torch.randn(int((~output.present).sum()), garbage.size(-1))
    assert torch.equal(modulation_coefficients(output._replace(unimodal=garbage), target, 0.5), k)


def test_leading_modality_is_slowed_down_only():
    output, target = leading_output()
    k = modulation_coefficients(output, target, 0.5)
    assert k[0] < 1
    assert k[1].item() == 1.0 and k[2].item() == 1.0
    stronger = modulation_coefficients(output, target, 2.0)
    assert stronger[0] < k[0]  # a larger alpha slows it down more


def test_equal_scores_give_ones():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 5, generator=generator).expand(4, 3, 5)
    output = output_of(logits, torch.ones(4, 3, dtype=torch.bool))
    torch.testing.assert_close(modulation_coefficients(output, torch.tensor([0, 1, 2, 3]), 1.0), torch.ones(3))


def test_modality_absent_from_the_batch_gets_one_and_is_left_out_of_the_mean():
    output, target = random_output()
    present = output.present.clone()
    present[:, 1] = False
    unimodal = output.unimodal.clone()
    unimodal[:, 1] = 100 * torch.arange(unimodal.size(-1)).float()  # would lead by far if it counted
    k = modulation_coefficients(output_of(unimodal, present), target, 0.5)
    assert k[1].item() == 1.0
    two = output_of(unimodal[:, [0, 2]], present[:, [0, 2]])
    torch.testing.assert_close(k[[0, 2]], modulation_coefficients(two, target, 0.5))
    torch.testing.assert_close(k, hand_coefficients(output_of(unimodal, present), target, 0.5))


# GradientModulation ------------------------------------------------------------------------------
def parameters_with_grads(seed=0):
    """Parameters per modality (audio has none) plus one unlisted and one without a gradient."""
    generator = torch.Generator().manual_seed(seed)
    params = {name: torch.nn.Parameter(torch.randn(*shape, generator=generator))
              for name, shape in (("text_w", (40, 30)), ("text_b", (30,)), ("image_w", (50, 20)), ("scalar", (1,)),
                                  ("other", (8,)), ("unused", (4,)))}
    for name, p in params.items():
        if name != "unused":
            p.grad = torch.randn(p.shape, generator=generator)
    grouped = {"text": [params["text_w"], params["text_b"], params["unused"]],
               "image": [params["image_w"], params["scalar"]]}
    return params, grouped


def test_ogm_scales_each_modality_by_its_coefficient():
    output, target = leading_output()
    params, grouped = parameters_with_grads()
    before = {name: None if p.grad is None else p.grad.clone() for name, p in params.items()}
    k = GradientModulation("ogm", alpha=0.5)(output, target, grouped)
    assert torch.equal(k, modulation_coefficients(output, target, 0.5))
    assert k[0] < 1
    for name in ("text_w", "text_b"):
        assert torch.equal(params[name].grad, before[name] * k[0])
    for name in ("image_w", "scalar"):
        assert torch.equal(params[name].grad, before[name] * k[1])
    assert torch.equal(params["other"].grad, before["other"])  # not listed: untouched
    assert params["unused"].grad is None  # no gradient: skipped


def test_ogm_ge_adds_noise_of_the_gradients_scale():
    output, target = leading_output()
    params, grouped = parameters_with_grads()
    before = {name: p.grad.clone() for name, p in params.items() if p.grad is not None}
    torch.manual_seed(0)
    k = GradientModulation("ogm-ge", alpha=0.5)(output, target, grouped)
    for name, m in (("text_w", 0), ("image_w", 1)):
        noise = params[name].grad - before[name] * k[m]
        assert 0.8 < (noise.std() / before[name].std()).item() < 1.25, name
        assert abs(noise.mean().item()) < 0.2 * before[name].std().item()
    assert not torch.equal(params["text_b"].grad, before["text_b"] * k[0])
    assert torch.equal(params["scalar"].grad, before["scalar"] * k[1])  # one value has no std: no noise
    assert torch.equal(params["other"].grad, before["other"])

    params_again, grouped_again = parameters_with_grads()
    torch.manual_seed(0)
    GradientModulation("ogm-ge", alpha=0.5)(output, target, grouped_again)
    assert all(torch.equal(params[n].grad, params_again[n].grad) for n in before)  # seeded noise repeats


def test_real_model_parameters():
    """Modulation of a module's gradients after backward, with two modality sub-modules."""
    torch.manual_seed(0)
    heads = torch.nn.ModuleDict({"text": torch.nn.Linear(6, 3), "image": torch.nn.Linear(6, 3)})
    x = torch.randn(4, 6)
    unimodal = torch.stack([heads["text"](x), heads["image"](x)], 1)
    output = output_of(unimodal, torch.ones(4, 2, dtype=torch.bool))
    target = torch.tensor([0, 1, 2, 0])
    torch.nn.functional.cross_entropy(unimodal.flatten(0, 1), target.repeat_interleave(2)).backward()
    grads = {name: p.grad.clone() for name, p in heads.named_parameters()}
    assert output.node_types == ("text", "image")
    k = GradientModulation("ogm")(output, target, {t: list(m.parameters()) for t, m in heads.items()})
    assert (k < 1).sum() == 1  # of two modalities, exactly one leads
    for name, p in heads.named_parameters():
        assert torch.equal(p.grad, grads[name] * k[0 if name.startswith("text") else 1])


def test_parameters_follow_the_node_types_of_the_output():
    """The coefficient of modality m goes to the parameters of output.node_types[m], whatever the order."""
    output, target = leading_output()
    swapped = output._replace(node_types=("image", "text", "audio"))  # modality 0 (the leading one) is image now
    params, grouped = parameters_with_grads()
    before = {name: p.grad.clone() for name, p in params.items() if p.grad is not None}
    k = GradientModulation("ogm", alpha=0.5)(swapped, target, grouped)
    assert k[0] < 1 and k[1].item() == 1.0
    for name in ("image_w", "scalar"):
        assert torch.equal(params[name].grad, before[name] * k[0])
    for name in ("text_w", "text_b"):
        assert torch.equal(params[name].grad, before[name])  # k[1] = 1

    params, grouped = parameters_with_grads()
    only_audio = output._replace(node_types=("audio", "video", "speech"))  # none of them has parameters listed
    GradientModulation("ogm", alpha=0.5)(only_audio, target, grouped)
    assert all(torch.equal(p.grad, before[name]) for name, p in params.items() if p.grad is not None)


@pytest.mark.parametrize("M", [2, 3])
def test_mode_none_returns_ones_and_touches_nothing(M):
    output, target = leading_output()
    output = output_of(output.unimodal[:, :M], output.present[:, :M])
    params, grouped = parameters_with_grads()
    grads = {name: p.grad for name, p in params.items()}
    values = {name: None if g is None else g.clone() for name, g in grads.items()}
    torch.manual_seed(0)
    state = torch.get_rng_state()
    k = GradientModulation("none")(output, target, grouped)
    assert torch.equal(k, torch.ones(M)) and k.dtype == torch.float32
    assert torch.equal(torch.get_rng_state(), state)  # no noise drawn
    for name, p in params.items():
        assert p.grad is grads[name], name  # the same gradient tensors, not replaced
        assert (p.grad is None) == (values[name] is None) and (p.grad is None or torch.equal(p.grad, values[name]))
    assert modulation_coefficients(output, target, 0.5)[0] < 1  # "ogm" would have scaled text


def test_active():
    assert all(GradientModulation("ogm").active(epoch) for epoch in (0, 1, 1000))
    limited = GradientModulation("ogm-ge", epochs=3)
    assert [limited.active(epoch) for epoch in range(5)] == [True, True, True, False, False]
    assert not any(GradientModulation("none", epochs=e).active(epoch) for e in (None, 5) for epoch in (0, 1, 10))


@pytest.mark.parametrize("mode", ["OGM", "ogm_ge", "", None])
def test_bad_mode(mode):
    with pytest.raises(ValueError, match=r"gradient modulation must be one of \('none', 'ogm', 'ogm-ge'\)"):
        GradientModulation(mode)


@pytest.mark.parametrize("alpha", [0, -0.5, True, "0.5", None, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"gradient modulation 'alpha' must be a positive number, got"):
        GradientModulation("ogm", alpha=alpha)


@pytest.mark.parametrize("epochs", [0, -1, True, 2.5, "3"])
def test_bad_epochs(epochs):
    with pytest.raises(ValueError, match=r"gradient modulation 'epochs' \(or None for every epoch\) must be an "
                                         r"integer >= 1, got"):
        GradientModulation("ogm", epochs=epochs)


@pytest.mark.parametrize("epochs", [None, 1, 100])
def test_good_epochs(epochs):
    assert GradientModulation("ogm", epochs=epochs).epochs == epochs


def test_repr():
    assert repr(GradientModulation()) == "GradientModulation(mode='ogm-ge', alpha=0.5, epochs=None)"
    assert repr(GradientModulation("ogm", 1, epochs=10)) == "GradientModulation(mode='ogm', alpha=1.0, epochs=10)"
