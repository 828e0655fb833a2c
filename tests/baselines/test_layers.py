import pytest
import torch
import torch.nn.functional as F

from graphfuse.baselines import (
    CrossModalTransformer,
    EarlyFusion,
    LateFusion,
    LowRankTensorFusion,
    ModalityEncoder,
    TensorFusion,
    TransformerFusion,
    dense_modalities,
)
from graphfuse.datasets import synthetic_samples

TYPES = ["text", "image", "audio"]
C = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def node_dicts(batch, channels=C, seed=0):
    """Random node features of the batch's node types, with its ``batch_dict``."""
    generator = torch.Generator().manual_seed(seed)
    h_dict = {t: torch.randn(batch[t].num_nodes, channels, generator=generator) for t in batch.node_types}
    return h_dict, {t: batch[t].batch for t in batch.node_types}


def select(h_dict, batch_dict, samples):
    """The nodes of ``samples`` (in that order), renumbered 0..len-1: a sub-batch of the same tokens."""
    h_out, b_out = {}, {}
    for t, h in h_dict.items():
        parts = [(h[batch_dict[t] == s], torch.full((int((batch_dict[t] == s).sum()),), i))
                 for i, s in enumerate(samples)]
        h_out[t] = torch.cat([p[0] for p in parts])
        b_out[t] = torch.cat([p[1] for p in parts]).long()
    return h_out, b_out


def vectors(batch_size=4, num_modalities=3, channels=C, seed=0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(batch_size, num_modalities, channels, generator=generator)
    present = torch.ones(batch_size, num_modalities, dtype=torch.bool)
    present[1, 2] = False  # sample 1 lacks the third modality
    present[2, 0] = False
    return z, present


# dense_modalities, ModalityEncoder ------------------------------------------------------------------
def test_dense_modalities(samples, make_batch):
    batch = make_batch(samples)
    h_dict, batch_dict = node_dicts(batch)
    h_dict["audio"], batch_dict["audio"] = h_dict["audio"][:0], batch_dict["audio"][:0]
    dense = dense_modalities(h_dict, batch_dict, batch.num_graphs)
    assert set(dense) == set(TYPES)
    for t in ("text", "image"):
        x, mask = dense[t]
        counts = torch.bincount(batch[t].batch, minlength=4)
        assert x.shape == (4, int(counts.max()), C)
        assert torch.equal(mask.sum(1), counts)
        assert torch.equal(x[mask], h_dict[t])  # tokens in order, padding after them
        assert bool((x[~mask] == 0).all())
    assert dense["audio"][0].shape == (4, 0, C) and dense["audio"][1].shape == (4, 0)


def test_modality_encoder_masks_padding_and_empty_rows():
    torch.manual_seed(0)
    encoder = perturbed(ModalityEncoder(C, num_layers=2, heads=2)).eval()
    x = torch.randn(3, 5, C)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    garbage = torch.where(mask.unsqueeze(-1), x, 100 * torch.randn(3, 5, C))
    # no NaN anywhere, not even in rows that pooling discards (NaN there turns into NaN gradients)
    # (a hook on the final norm: hooks on the layers would switch off their fast path, which is where NaN appears)
    hidden = []
    encoder.norm.register_forward_hook(lambda module, args, output: hidden.append(args[0]))
    with torch.no_grad():
        z, present = encoder(x, mask)
        z_garbage, _ = encoder(garbage, mask)
        alone, _ = encoder(x[:1, :3], mask[:1, :3])
    assert z.shape == (3, C) and present.tolist() == [True, True, False]
    assert torch.allclose(z, z_garbage, atol=1e-5)       # padding is never attended to or pooled
    assert torch.allclose(z[:1], alone, atol=1e-5)      # nor does the amount of padding matter
    assert torch.equal(z[2], torch.zeros(C))           # a fully padded row: zeros, not NaN
    assert hidden and all(bool(torch.isfinite(h).all()) for h in hidden)
    encoder.train()
    x.requires_grad_(True)
    z, _ = encoder(x, mask)
    z.sum().backward()
    assert bool(torch.isfinite(x.grad).all()) and torch.equal(x.grad[2], torch.zeros(5, C))
    # no tokens at all in the batch
    z, present = encoder(torch.zeros(2, 0, C), torch.zeros(2, 0, dtype=torch.bool))
    assert torch.equal(z, torch.zeros(2, C)) and not present.any()


# Fusion of modality vectors -------------------------------------------------------------------------
def test_early_fusion_uses_absent_vectors():
    torch.manual_seed(0)
    fusion = EarlyFusion(C, 3, out_channels=5, hidden_channels=6).eval()
    z, present = vectors()
    out = fusion(z, present)
    assert out.shape == (4, 5)
    expected = fusion.mlp(torch.cat([z[1, 0], z[1, 1], fusion.absent[2]]).unsqueeze(0))
    assert torch.allclose(out[1:2], expected, atol=1e-6)
    changed = z.clone()
    changed[1, 2] += 5.0   # an absent slot's content is ignored
    changed[2, 0] += 5.0
    assert torch.equal(fusion(changed, present), out)


def test_late_fusion_is_the_mean_of_present_log_probs():
    torch.manual_seed(0)
    fusion = LateFusion(C, 3, 4).eval()
    z, present = vectors()
    out = fusion(z, present)
    assert out.shape == (4, 4) and out.dtype == torch.float32
    log_probs = [F.log_softmax(head(z[1:2, m]), -1) for m, head in enumerate(fusion.heads)]
    assert torch.allclose(out[1:2], (log_probs[0] + log_probs[1]) / 2, atol=1e-6)  # sample 1 lacks modality 2
    full = [F.log_softmax(head(z[0:1, m]), -1) for m, head in enumerate(fusion.heads)]
    assert torch.allclose(out[0:1], sum(full) / 3, atol=1e-6)
    # the loss is the cross-entropy of the renormalised average; argmax is unchanged by it
    target = torch.tensor([0, 1, 2, 3])
    assert torch.allclose(fusion.loss(out, target), F.nll_loss(F.log_softmax(out, -1), target))
    assert torch.equal(fusion.predict(out), out.argmax(-1))
    with pytest.raises(ValueError, match=r"LateFusion received samples \[0\] with none of its 3 modalities"):
        fusion(z, present & torch.tensor([False, True, True, True]).unsqueeze(1))


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_late_fusion_means_outputs(task):
    torch.manual_seed(0)
    fusion = LateFusion(C, 3, 2, task=task).eval()
    z, present = vectors()
    out = fusion(z, present)
    per = [head(z[2:3, m]) for m, head in enumerate(fusion.heads)]
    assert torch.allclose(out[2:3], (per[1] + per[2]) / 2, atol=1e-6)  # sample 2 lacks modality 0
    target = torch.randint(0, 2, (4, 2)).float()
    expected = (F.binary_cross_entropy_with_logits(out, target) if task == "multilabel"
                else F.mse_loss(out, target))
    assert torch.allclose(fusion.loss(out, target), expected)


def test_tensor_fusion_is_the_outer_product():
    torch.manual_seed(0)
    fusion = TensorFusion(C, 3, tensor_dim=2, out_channels=3, hidden_channels=5).eval()
    assert fusion.tensor_channels == 27
    z, present = vectors()
    u = [torch.cat([proj(z[0, m]), torch.ones(1)]) for m, proj in enumerate(fusion.proj)]
    outer = torch.einsum("i,j,k->ijk", *u).flatten()
    assert torch.allclose(fusion.tensor(z, present)[0], outer, atol=1e-6)
    assert torch.allclose(fusion(z, present)[0], fusion.mlp(outer), atol=1e-6)
    # sample 1 lacks modality 2: its factor is the learned absent vector
    u = [torch.cat([fusion.proj[0](z[1, 0]), torch.ones(1)]), torch.cat([fusion.proj[1](z[1, 1]), torch.ones(1)]),
         torch.cat([fusion.absent[2], torch.ones(1)])]
    assert torch.allclose(fusion.tensor(z, present)[1], torch.einsum("i,j,k->ijk", *u).flatten(), atol=1e-6)
    assert fusion(z, present).shape == (4, 3)
    with pytest.raises(ValueError, match="lower 'tensor_dim' or use LowRankTensorFusion"):
        TensorFusion(C, 7, tensor_dim=16)


def test_lowrank_fusion_equals_the_full_tensor_contraction():
    torch.manual_seed(0)
    channels, out_channels = 3, 2
    fusion = LowRankTensorFusion(channels, 3, rank=2, out_channels=out_channels)
    with torch.no_grad():
        fusion.bias.normal_()
    z, present = vectors(channels=channels)
    w1, w2, w3 = fusion.weight  # [rank, C + 1, out] each
    weight = torch.einsum("rao,rbo,rco->abco", w1, w2, w3)  # W = sum_i W_1^(i) (x) W_2^(i) (x) W_3^(i)
    assert weight.shape == (4, 4, 4, out_channels)
    out = fusion(z, present)
    for sample in range(4):
        u = [torch.cat([z[sample, m] if present[sample, m] else fusion.absent[m], torch.ones(1)]) for m in range(3)]
        expected = torch.einsum("a,b,c,abco->o", *u, weight) + fusion.bias
        assert torch.allclose(out[sample], expected, atol=1e-5)


# Token-level fusion ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed(make_batch):
    """Samples of different lengths: sample 0 short and without audio, 1 long, 2 without image, 3 short."""
    short, long_ = synthetic_samples(2, tokens=2, grid=2, frames=2), synthetic_samples(2, tokens=6, grid=3, frames=7)
    samples = [short[0], long_[0], long_[1], short[1]]
    samples[0].pop("audio")
    samples[2].pop("image")
    return make_batch(samples)


def perturbed(module, seed=0):
    """``module`` with noise on every parameter: zero-initialised biases and norm shifts would hide a padded or
    absent position leaking into the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    return module


def token_fusions():
    torch.manual_seed(0)
    return [perturbed(TransformerFusion(C, TYPES, num_layers=2, heads=2)).eval(),
            perturbed(CrossModalTransformer(C, TYPES, num_layers=2, heads=2)).eval()]


@pytest.mark.parametrize("index", [0, 1], ids=["transformer", "mult"])
def test_token_fusion_padding_and_permutation(mixed, index):
    fusion = token_fusions()[index]
    h_dict, batch_dict = node_dicts(mixed)
    with torch.no_grad():
        out = fusion(h_dict, batch_dict, 4)
        assert out.shape == (4, fusion.out_channels) and bool(torch.isfinite(out).all())
        for sample in range(4):  # alone: padded to its own length only
            alone = fusion(*select(h_dict, batch_dict, [sample]), 1)
            assert torch.allclose(alone, out[sample:sample + 1], atol=1e-5)
        perm = [2, 0, 3, 1]
        assert torch.allclose(fusion(*select(h_dict, batch_dict, perm), 4), out[perm], atol=1e-5)


@pytest.mark.parametrize("index", [0, 1], ids=["transformer", "mult"])
def test_token_fusion_batch_without_a_modality(mixed, index):
    fusion = token_fusions()[index]
    h_dict, batch_dict = node_dicts(mixed)
    h_dict, batch_dict = select(h_dict, batch_dict, [0])  # sample 0 has no audio: 0 audio nodes
    with torch.no_grad():
        out = fusion(h_dict, batch_dict, 1)
        dropped = fusion({t: h_dict[t] for t in ("text", "image")}, {t: batch_dict[t] for t in ("text", "image")}, 1)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out, dropped, atol=1e-6)  # absent node type == node type without nodes


def test_mult_absent_source_and_target(mixed):
    torch.manual_seed(0)
    fusion = perturbed(CrossModalTransformer(C, TYPES, num_layers=1, heads=2)).train()
    h_dict, batch_dict = node_dicts(mixed)
    for h in h_dict.values():
        h.requires_grad_(True)
    out = fusion(h_dict, batch_dict, 4)
    assert out.shape == (4, 3 * C) and bool(torch.isfinite(out).all())
    out.sum().backward()
    assert all(bool(torch.isfinite(h.grad).all()) for h in h_dict.values())
    assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in fusion.parameters())
    # sample 0 lacks audio (absent target slot: its learned vector), sample 2 lacks image
    assert torch.equal(out[0, 2 * C:], fusion.absent[2].detach())
    assert torch.equal(out[2, C:2 * C], fusion.absent[1].detach())
    assert not torch.equal(out[1, 2 * C:], fusion.absent[2].detach())


def test_transformer_fusion_post_norm_is_the_plain_layer_stack(mixed):
    torch.manual_seed(0)
    fusion = TransformerFusion(C, TYPES, num_layers=2, heads=2, ffn_ratio=4.0, dropout=0.0, norm_first=False,
                               activation="relu").eval()
    assert isinstance(fusion.norm, torch.nn.Identity)
    assert all(not layer.norm_first and layer.activation_relu_or_gelu == 1 for layer in fusion.layers)
    h_dict, batch_dict = node_dicts(mixed)
    with torch.no_grad():
        x, mask = fusion.tokens(h_dict, batch_dict, 4)
        expected = []
        for sample in range(4):  # each sample alone, unpadded: no mask needed
            y = x[sample, mask[sample]].unsqueeze(0)
            for layer in fusion.layers:
                y = layer(y)
            expected.append(y[0].mean(0))
        torch.testing.assert_close(fusion(h_dict, batch_dict, 4), torch.stack(expected), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="TransformerFusion 'activation' must be one of"):
        TransformerFusion(C, TYPES, heads=2, activation="tanh")


def test_transformer_fusion_type_embedding_matters(mixed):
    fusion = token_fusions()[0]
    h_dict, batch_dict = node_dicts(mixed)
    with torch.no_grad():
        out = fusion(h_dict, batch_dict, 4)
        # image tokens tagged differently (not by a constant over channels, which the layer norms remove)
        fusion.type_embedding.weight[1] += torch.randn(C, generator=torch.Generator().manual_seed(1))
        changed = fusion(h_dict, batch_dict, 4)
    assert not torch.allclose(out[[0, 1, 3]], changed[[0, 1, 3]], atol=1e-4)
    assert torch.allclose(out[2], changed[2], atol=1e-6)  # sample 2 has no image


@pytest.mark.parametrize("make", [
    lambda: ModalityEncoder(C, heads=2), lambda: EarlyFusion(C, 3), lambda: LateFusion(C, 3, 4),
    lambda: TensorFusion(C, 3, tensor_dim=2), lambda: LowRankTensorFusion(C, 3),
    lambda: TransformerFusion(C, TYPES, heads=2), lambda: CrossModalTransformer(C, TYPES, heads=2)],
    ids=["modality", "early", "late", "tensor", "lowrank", "transformer", "mult"])
def test_bf16_autocast_and_reset(mixed, make):
    torch.manual_seed(0)
    module = make()
    h_dict, batch_dict = node_dicts(mixed)
    z, present = vectors()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if isinstance(module, ModalityEncoder):
            out = module(*dense_modalities(h_dict, batch_dict, 4)["image"])[0]
        elif isinstance(module, (TransformerFusion, CrossModalTransformer)):
            out = module(h_dict, batch_dict, 4)
        else:
            out = module(z, present)
    assert bool(torch.isfinite(out.float()).all())
    before = [p.detach().clone() for p in module.parameters()]
    torch.manual_seed(1)
    module.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_repr():
    assert repr(ModalityEncoder(C, num_layers=2, heads=2)) == "ModalityEncoder(8, num_layers=2, heads=2)"
    assert repr(EarlyFusion(C, 3, out_channels=4)) == "EarlyFusion(8, num_modalities=3, out_channels=4)"
    assert repr(LateFusion(C, 2, 5, task="multilabel")) == ("LateFusion(8, num_modalities=2, out_channels=5, "
                                                            "task='multilabel')")
    assert repr(TensorFusion(C, 3)) == "TensorFusion(8, num_modalities=3, tensor_dim=8, out_channels=8)"
    assert repr(LowRankTensorFusion(C, 3, rank=2)) == "LowRankTensorFusion(8, num_modalities=3, rank=2, out_channels=8)"
    assert repr(TransformerFusion(C, ["text", "image"], heads=2)) == (
        "TransformerFusion(8, node_types=['text', 'image'], num_layers=1, heads=2)")
    assert repr(TransformerFusion(C, ["text"], heads=2, norm_first=False, activation="relu")) == (
        "TransformerFusion(8, node_types=['text'], num_layers=1, heads=2, norm_first=False, activation='relu')")
    assert repr(CrossModalTransformer(C, TYPES, heads=2)) == (
        "CrossModalTransformer(8, node_types=['text', 'image', 'audio'], num_layers=1, heads=2)")


def test_errors(mixed):
    with pytest.raises(ValueError, match="ModalityEncoder splits 8 channels over heads=3"):
        ModalityEncoder(C, heads=3)
    with pytest.raises(ValueError, match=r"ModalityEncoder expects tokens \[B, L, 8\] and a bool mask"):
        ModalityEncoder(C, heads=2)(torch.zeros(2, 3, C), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"EarlyFusion expects modality vectors z \[B, 3, 8\]"):
        EarlyFusion(C, 3)(torch.zeros(4, 2, C), torch.ones(4, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="CrossModalTransformer attends across modalities and needs at least two"):
        CrossModalTransformer(C, ["text"], heads=2)
    with pytest.raises(ValueError, match="LateFusion 'task' must be one of"):
        LateFusion(C, 3, 2, task="retrieval")
    h_dict, batch_dict = node_dicts(mixed)
    with pytest.raises(ValueError, match=r"TransformerFusion received unknown node types \['audio'\]"):
        TransformerFusion(C, ["text", "image"], heads=2)(h_dict, batch_dict, 4)
    with pytest.raises(ValueError, match="CrossModalTransformer received an empty 'h_dict'"):
        CrossModalTransformer(C, TYPES, heads=2)({}, {}, 4)
