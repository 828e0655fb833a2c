import itertools

import pytest
import torch
import torch.nn.functional as F

from graphfuse.nn.heads import ClassificationHead, RegressionHead
from graphfuse.nn.unimodal import MultimodalOutput, UnimodalHeads

TYPES = ["text", "image", "audio"]

pytestmark = pytest.mark.usefixtures("one_thread")


def hand_made(channels=4, seed=0):
    """Three samples: sample 1 has no audio, sample 2 no image; batch vectors are not sorted."""
    generator = torch.Generator().manual_seed(seed)
    batch_dict = {"text": torch.tensor([0, 2, 1, 0, 1, 2, 2]), "image": torch.tensor([1, 0, 0, 1, 0]),
                  "audio": torch.tensor([2, 0, 0, 2])}
    h_dict = {t: torch.randn(b.numel(), channels, generator=generator, dtype=torch.float64)
              for t, b in batch_dict.items()}
    return h_dict, batch_dict, 3


PRESENT = [[True, True, True], [True, True, False], [True, False, True]]


def seeded(*args, **kwargs):
    torch.manual_seed(0)
    return UnimodalHeads(*args, **kwargs).double()


def linear(head):
    (layer,) = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    return layer


def manual_prediction(heads, h_dict, batch_dict, b, m):
    rows = h_dict[heads.node_types[m]][batch_dict[heads.node_types[m]] == b]
    pool = heads.pool
    if pool.reduce == "mean":
        pooled = rows.mean(0)
    else:  # attention: s = w^T tanh(W h + b), softmax over the sample's nodes
        scores = torch.tanh(rows @ pool.att_weight[m].T + pool.att_bias[m]) @ pool.att_vector[m]
        pooled = (scores.softmax(0).unsqueeze(-1) * rows).sum(0)
    layer = linear(heads.heads[m])
    return pooled @ layer.weight.T + layer.bias


def close(actual, expected):
    """Attention weights are computed in float32 (as in TypePooling), the rest in float64."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["attention", "mean"])
def test_shapes_and_predictions_match_manual(pool):
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 5, pool=pool)
    assert heads.pool.reduce == pool
    unimodal, present = heads(h_dict, batch_dict, B)
    assert unimodal.shape == (3, 3, 5) and present.shape == (3, 3) and present.dtype == torch.bool
    assert present.tolist() == PRESENT
    for b, m in itertools.product(range(B), range(3)):
        if present[b, m]:
            close(unimodal[b, m], manual_prediction(heads, h_dict, batch_dict, b, m))


def test_attention_is_the_default_pooling_and_differs_from_the_mean():
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 5)
    assert heads.pool.reduce == "attention"
    mean = seeded(4, TYPES, 5, pool="mean")
    mean.heads.load_state_dict(heads.heads.state_dict())
    assert not torch.allclose(heads(h_dict, batch_dict, B)[0], mean(h_dict, batch_dict, B)[0])


def test_order_follows_node_types_and_extra_types_are_ignored():
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, ["audio", "text"], 2)
    unimodal, present = heads(h_dict, batch_dict, B)
    assert present.tolist() == [[True, True], [False, True], [True, True]]
    close(unimodal[0, 0], manual_prediction(heads, h_dict, batch_dict, 0, 0))
    with_virtual = {**h_dict, "virtual": torch.randn(3, 4, dtype=torch.float64)}
    out, _ = heads(with_virtual, {**batch_dict, "virtual": torch.arange(3)}, B)
    assert torch.equal(out, unimodal)


def test_node_type_missing_from_the_batch():
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 3)
    unimodal, present = heads({t: h_dict[t] for t in ("text", "image")}, batch_dict, B)
    assert present[:, 2].tolist() == [False, False, False]
    assert present[:, :2].tolist() == [row[:2] for row in PRESENT]
    full, _ = heads(h_dict, batch_dict, B)
    torch.testing.assert_close(unimodal[:, :2], full[:, :2])
    assert torch.isfinite(unimodal).all()  # the placeholders of absent pairs are finite


def test_permuting_nodes_does_not_change_predictions():
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 3)
    expected = heads(h_dict, batch_dict, B)[0]
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))
    unimodal = heads({**h_dict, "text": h_dict["text"][perm]}, {**batch_dict, "text": batch_dict["text"][perm]}, B)[0]
    torch.testing.assert_close(unimodal, expected)


def test_classification_loss_sums_present_pairs_over_the_samples():
    """The masked sum of the present pairs' losses over the B samples (absent pairs count as 0, not left out)."""
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 5)
    unimodal, present = heads(h_dict, batch_dict, B)
    assert not present.all()  # 7 of the 9 slots: a mean over present pairs would differ
    target = torch.tensor([4, 0, 2])
    expected = torch.stack([F.cross_entropy(unimodal[b, m].unsqueeze(0), target[b].unsqueeze(0))
                            for b, m in itertools.product(range(B), range(3)) if present[b, m]]).sum() / B
    loss = heads.loss(unimodal, present, target)
    assert loss.dim() == 0
    torch.testing.assert_close(loss.double(), expected)

    garbage = unimodal.detach().clone()
    garbage[~present] = 1e4 * torch.randn(int((~present).sum()), 5, dtype=garbage.dtype)
    assert torch.equal(heads.loss(garbage, present, target), loss.detach())


def test_loss_of_equal_shards_averages_to_the_joint_loss():
    """As DDP averages the processes' losses: the mean of the losses of two equal halves is the loss of the whole
    batch, even when the halves have different numbers of present pairs."""
    generator = torch.Generator().manual_seed(3)
    heads = seeded(4, TYPES, 5)
    unimodal = torch.randn(6, 3, 5, generator=generator, dtype=torch.float64)
    target = torch.randint(5, (6,), generator=generator)
    present = torch.ones(6, 3, dtype=torch.bool)
    present[0, 1] = present[1, 2] = present[2, 0] = present[2, 2] = False  # the first half misses 4 pairs
    halves = [heads.loss(unimodal[rows], present[rows], target[rows]) for rows in (slice(0, 3), slice(3, 6))]
    assert int(present[:3].sum()) != int(present[3:].sum())
    torch.testing.assert_close((halves[0] + halves[1]) / 2, heads.loss(unimodal, present, target))


def test_all_present_loss_is_the_sum_of_the_head_losses():
    generator = torch.Generator().manual_seed(0)
    heads = seeded(4, TYPES, 3)
    unimodal = torch.randn(6, 3, 3, generator=generator, dtype=torch.float64)
    target = torch.randint(3, (6,), generator=generator)
    expected = torch.stack([head.loss(unimodal[:, m], target) for m, head in enumerate(heads.heads)]).sum()
    torch.testing.assert_close(heads.loss(unimodal, torch.ones(6, 3, dtype=torch.bool), target), expected.float())


def test_regression():
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 2, task="regression")
    assert all(isinstance(head, RegressionHead) for head in heads.heads)
    unimodal, present = heads(h_dict, batch_dict, B)
    assert unimodal.shape == (3, 3, 2)
    close(unimodal[1, 0], manual_prediction(heads, h_dict, batch_dict, 1, 0))
    target = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = torch.stack([((unimodal[b, m] - target[b]) ** 2).mean()
                            for b, m in itertools.product(range(B), range(3)) if present[b, m]]).sum() / B
    torch.testing.assert_close(heads.loss(unimodal, present, target).double(), expected)

    single = seeded(4, TYPES, 1, task="regression")
    unimodal, present = single(h_dict, batch_dict, B)
    target = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)  # [B] targets of one output
    expected = torch.stack([((unimodal[b, m, 0] - target[b]) ** 2)
                            for b, m in itertools.product(range(B), range(3)) if present[b, m]]).sum() / B
    torch.testing.assert_close(single.loss(unimodal, present, target).double(), expected)


def test_multilabel():
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 3, task="multilabel")
    assert all(isinstance(head, ClassificationHead) and head.multilabel for head in heads.heads)
    unimodal, present = heads(h_dict, batch_dict, B)
    target = torch.tensor([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    expected = torch.stack([F.binary_cross_entropy_with_logits(unimodal[b, m], target[b].double())
                            for b, m in itertools.product(range(B), range(3)) if present[b, m]]).sum() / B
    torch.testing.assert_close(heads.loss(unimodal, present, target).double(), expected)
    classification = seeded(4, TYPES, 3)
    assert all(isinstance(head, ClassificationHead) and not head.multilabel for head in classification.heads)


def test_gradients_reach_present_heads_only():
    h_dict, batch_dict, B = hand_made()
    h_dict = {t: h.clone().requires_grad_() for t, h in h_dict.items() if t != "audio"}
    heads = seeded(4, TYPES, 3)
    unimodal, present = heads(h_dict, batch_dict, B)
    heads.loss(unimodal, present, torch.tensor([0, 1, 2])).backward()
    for m, head in enumerate(heads.heads):
        for name, p in head.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()
            assert (p.grad.abs().sum() > 0) == (m < 2), (TYPES[m], name)  # audio is absent everywhere
    for t, h in h_dict.items():
        assert h.grad is not None and (h.grad.abs().sum(1) > 0).all(), t  # every node takes part


def test_dropout_is_passed_to_the_heads():
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 3, dropout=0.5)
    assert all(m.p == 0.5 for head in heads.heads for m in head.modules() if isinstance(m, torch.nn.Dropout))
    heads.eval()
    unimodal, _ = heads(h_dict, batch_dict, B)
    close(unimodal[0, 1], manual_prediction(heads, h_dict, batch_dict, 0, 1))
    heads.train()
    torch.manual_seed(0)
    assert not torch.allclose(heads(h_dict, batch_dict, B)[0], unimodal)


def test_multimodal_output():
    output = MultimodalOutput(torch.zeros(2, 3), torch.zeros(2, 4, 3), torch.ones(2, 4, dtype=torch.bool),
                              ("text", "image", "audio", "video"))
    fused, unimodal, present, node_types = output
    assert fused is output.output and unimodal is output.unimodal and present is output.present
    assert node_types == output.node_types == ("text", "image", "audio", "video")
    assert MultimodalOutput._fields == ("output", "unimodal", "present", "node_types")
    with pytest.raises(TypeError):
        MultimodalOutput(torch.zeros(2, 3), torch.zeros(2, 4, 3), torch.ones(2, 4, dtype=torch.bool))


def test_reset_parameters():
    heads = UnimodalHeads(4, TYPES, 3)  # the attention pooling's parameters are reset too
    before = [p.detach().clone() for p in heads.parameters()]
    heads.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, heads.parameters(), strict=True))


def test_errors():
    with pytest.raises(ValueError, match=r"UnimodalHeads 'out_channels' must be an integer >= 1, got 0"):
        UnimodalHeads(4, TYPES, 0)
    with pytest.raises(ValueError, match="distinct node type names"):
        UnimodalHeads(4, ["text", "text"], 3)
    h_dict, batch_dict, B = hand_made(channels=4)
    with pytest.raises(ValueError, match=r"shape \[num_nodes, 8\]"):
        UnimodalHeads(8, TYPES, 3).double()(h_dict, batch_dict, B)


@pytest.mark.parametrize("task", ["clasification", "binary", "", None, "Regression"])
def test_unknown_task_raises(task):
    with pytest.raises(ValueError, match=r"UnimodalHeads 'task' must be one of \('classification', 'multilabel', "
                                         r"'regression'\), got"):
        UnimodalHeads(4, TYPES, 3, task=task)


def test_repr():
    assert repr(UnimodalHeads(16, TYPES, 3)) == (
        "UnimodalHeads(16, node_types=['text', 'image', 'audio'], out_channels=3, pool='attention')")
    assert repr(UnimodalHeads(16, TYPES, 3, pool="mean")).endswith("pool='mean')")


# ensemble ----------------------------------------------------------------------------------------
def ensemble_inputs(K, seed=0, B=4, dtype=torch.float32):
    """Fused and unimodal predictions; sample 1 has no audio, sample 2 only text, sample 3 no modality at all."""
    generator = torch.Generator().manual_seed(seed)
    output = torch.randn(B, K, generator=generator, dtype=dtype)
    unimodal = 3 * torch.randn(B, 3, K, generator=generator, dtype=dtype)
    present = torch.tensor([[True, True, True], [True, True, False], [True, False, False], [False, False, False]])
    return output, unimodal, present


def with_huge_placeholders(unimodal, present, scale):
    garbage = unimodal.clone()
    generator = torch.Generator().manual_seed(7)
    garbage[~present] = scale * torch.randn(int((~present).sum()), unimodal.size(-1), generator=generator,
                                            dtype=unimodal.dtype)
    return garbage


def test_ensemble_classification_is_a_product_of_experts():
    output, unimodal, present = ensemble_inputs(5)
    heads = UnimodalHeads(4, TYPES, 5)
    out = heads.ensemble(output, unimodal, present)
    assert out.shape == (4, 5) and out.dtype == output.dtype
    for b in range(4):
        expected = output[b].clone()
        for m in range(3):
            if present[b, m]:
                logits = unimodal[b, m]
                expected = expected + logits - torch.log(torch.exp(logits).sum())  # log softmax by hand
        torch.testing.assert_close(out[b], expected)
    assert torch.equal(out[3], output[3])  # no modality present: the fused logits alone
    # its softmax is the normalised product of the fused and the present modalities' distributions
    product = output[0].softmax(0) * unimodal[0].softmax(-1).prod(0)
    torch.testing.assert_close(out[0].softmax(0), product / product.sum())
    product = output[1].softmax(0) * unimodal[1, :2].softmax(-1).prod(0)
    torch.testing.assert_close(out[1].softmax(0), product / product.sum())


def test_ensemble_multilabel_adds_the_log_odds():
    output, unimodal, present = ensemble_inputs(3, seed=1)
    heads = UnimodalHeads(4, TYPES, 3, task="multilabel")
    out = heads.ensemble(output, unimodal, present)
    expected = torch.stack([output[0] + unimodal[0, 0] + unimodal[0, 1] + unimodal[0, 2],
                            output[1] + unimodal[1, 0] + unimodal[1, 1],
                            output[2] + unimodal[2, 0],
                            output[3]])
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, UnimodalHeads(4, TYPES, 3).ensemble(output, unimodal, present))  # raw logits


@pytest.mark.parametrize("K", [1, 2])
def test_ensemble_regression_is_the_mean_of_present_predictions(K):
    output, unimodal, present = ensemble_inputs(K, seed=2)
    heads = UnimodalHeads(4, TYPES, K, task="regression")
    out = heads.ensemble(output, unimodal, present)
    assert out.shape == (4, K)
    expected = torch.stack([(output[0] + unimodal[0, 0] + unimodal[0, 1] + unimodal[0, 2]) / 4,
                            (output[1] + unimodal[1, 0] + unimodal[1, 1]) / 3,
                            (output[2] + unimodal[2, 0]) / 2,
                            output[3]])
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_ensemble_never_reads_absent_pairs(task, scale):
    output, unimodal, present = ensemble_inputs(3, seed=3)
    heads = UnimodalHeads(4, TYPES, 3, task=task)
    expected = heads.ensemble(output, unimodal, present)
    assert torch.equal(heads.ensemble(output, with_huge_placeholders(unimodal, present, scale), present), expected)
    flipped = present.clone()
    flipped[1, 2] = True  # a pair that does count changes the result
    assert not torch.allclose(heads.ensemble(output, unimodal, flipped), expected)


def test_ensemble_of_heads_forward():
    """On the heads' own predictions, where the absent pairs hold placeholders."""
    h_dict, batch_dict, B = hand_made()
    heads = seeded(4, TYPES, 5)
    unimodal, present = heads(h_dict, batch_dict, B)
    output = torch.randn(B, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out = heads.ensemble(output, unimodal, present)
    for b in range(B):
        expected = output[b] + sum(unimodal[b, m].log_softmax(0) for m in range(3) if present[b, m])
        torch.testing.assert_close(out[b], expected, rtol=1e-5, atol=1e-5)  # the log softmax runs in float32


# Vote gating ---------------------------------------------------------------------------------------
def test_heads_whose_votes_are_off_count_as_absent():
    output, unimodal, present = ensemble_inputs(5)
    for task in ("classification", "multilabel", "regression"):
        heads = UnimodalHeads(4, TYPES, 5, task=task)
        heads.votes.copy_(torch.tensor([True, False, True]))
        without_image = present.clone()
        without_image[:, 1] = False
        torch.testing.assert_close(heads.ensemble(output, unimodal, present),
                                   UnimodalHeads(4, TYPES, 5, task=task).ensemble(output, unimodal, without_image))


def test_votes_are_state_and_reset_with_the_parameters():
    heads = UnimodalHeads(4, TYPES, 3, gated=True)
    assert heads.gated and heads.votes.dtype == torch.bool and heads.votes.tolist() == [True] * 3
    heads.votes[2] = False
    assert heads.state_dict()["votes"].tolist() == [True, True, False]
    other = UnimodalHeads(4, TYPES, 3)
    other.load_state_dict(heads.state_dict())
    assert other.votes.tolist() == [True, True, False] and not other.gated
    heads.reset_parameters()
    assert heads.votes.all()
    assert repr(heads).endswith("pool='attention', gated=True)") and "gated" not in repr(other)


def gating_inputs(task, n=200, seed=0):
    """Validation predictions of three heads: text knows the target, image is noise, audio is present in one
    sample only."""
    generator = torch.Generator().manual_seed(seed)
    if task == "classification":
        target = torch.randint(3, (n,), generator=generator)
        knows = 4.0 * F.one_hot(target, 3).double()
    elif task == "multilabel":
        target = torch.randint(2, (n, 3), generator=generator).double()
        knows = 8.0 * target - 4.0
    else:
        target = torch.randn(n, generator=generator, dtype=torch.float64)
        knows = target.unsqueeze(-1) + 0.1 * torch.randn(n, 1, generator=generator, dtype=torch.float64)
    noise = torch.randn(knows.shape, generator=generator, dtype=torch.float64)
    unimodal = torch.stack([knows, noise, noise], dim=1)
    present = torch.ones(n, 3, dtype=torch.bool)
    present[1:, 2] = False
    return unimodal, present, target


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_gate_keeps_the_heads_that_beat_a_constant(task):
    unimodal, present, target = gating_inputs(task)
    heads = UnimodalHeads(4, TYPES, unimodal.size(-1), task=task, gated=True)
    heads.votes[2] = False  # a head with too few samples to judge keeps its vote, whatever it is
    votes = heads.gate_votes(unimodal, present, target)
    assert votes.tolist() == [True, False, False] and torch.equal(votes, heads.votes)
    # the noise head loses even to a constant of the right mean
    heads.votes.fill_(True)
    assert heads.gate_votes(unimodal, present, target).tolist() == [True, False, True]


def test_constant_of_the_gate_is_the_class_frequencies():
    """A head predicting the validation class frequencies is the constant itself: no gap, no vote."""
    target = torch.tensor([0, 0, 0, 1, 1, 2, 0, 1])
    frequency = torch.bincount(target, minlength=3).double() / target.numel()
    unimodal = frequency.log().expand(8, 1, 3).clone()
    heads = UnimodalHeads(4, ["text"], 3)
    assert not heads.gate_votes(unimodal, torch.ones(8, 1, dtype=torch.bool), target, margin=0.0).item()
    # a shade better than the constant on every sample: it votes, with or without a margin
    unimodal[torch.arange(8), 0, target] += 0.05
    assert heads.gate_votes(unimodal, torch.ones(8, 1, dtype=torch.bool), target, margin=0.0).item()
    assert heads.gate_votes(unimodal, torch.ones(8, 1, dtype=torch.bool), target).item()  # a sure gain
    unimodal[torch.arange(4), 0, target[:4]] -= 0.09  # half the samples worse: a small gain, and not a sure one
    assert heads.gate_votes(unimodal, torch.ones(8, 1, dtype=torch.bool), target, margin=0.0).item()
    assert not heads.gate_votes(unimodal, torch.ones(8, 1, dtype=torch.bool), target).item()


def test_gate_reads_present_pairs_only():
    unimodal, present, target = gating_inputs("classification", seed=1)
    present[::2, 0] = False
    heads = UnimodalHeads(4, TYPES, 3)
    expected = heads.gate_votes(unimodal, present, target)
    unimodal[::2, 0] = 1e6 * torch.randn(unimodal[::2, 0].shape, dtype=unimodal.dtype)  # absent placeholders
    assert torch.equal(heads.gate_votes(unimodal, present, target), expected)
    assert expected[0]
