import itertools

import pytest
import torch

from graphfuse import VirtualNodes
from graphfuse.data import (
    AudioModality,
    CrossEdges,
    FullBipartite,
    GraphBuilder,
    ImageModality,
    TextModality,
    Tokenizer,
)
from graphfuse.datasets import WORDS, synthetic_samples
from graphfuse.debug import debug
from graphfuse.nn import FusionEncoder, NodeEncoders, Readout, TypeFusion, TypePooling, VirtualNodeReadout

TYPES = ["text", "image", "audio"]
POOLS = ["mean", "max", "sum", "attention"]
FUSES = ["attention", "gate", "concat"]
ALL_FUSES = [*FUSES, "bilinear"]

pytestmark = pytest.mark.usefixtures("one_thread")


def hand_made(channels=4, seed=0, dtype=torch.float64):
    """Three samples: sample 1 has no audio, sample 2 no image; batch vectors are not sorted."""
    generator = torch.Generator().manual_seed(seed)
    batch_dict = {"text": torch.tensor([0, 2, 1, 0, 1, 2, 2]), "image": torch.tensor([1, 0, 0, 1, 0]),
                  "audio": torch.tensor([2, 0, 0, 2])}
    h_dict = {t: torch.randn(b.numel(), channels, generator=generator, dtype=dtype) for t, b in batch_dict.items()}
    return h_dict, batch_dict, 3


def from_batch(batch, channels=8, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    h_dict = {t: torch.randn(batch[t].num_nodes, channels, generator=generator, dtype=dtype) for t in TYPES}
    batch_dict = {t: batch[t].batch.clone() for t in TYPES}
    return h_dict, batch_dict, batch.num_graphs


def seeded(cls, *args, **kwargs):
    torch.manual_seed(0)
    return cls(*args, **kwargs).double()


@pytest.mark.parametrize("reduce", ["mean", "max", "sum"])
def test_pooling_matches_loop(reduce):
    h_dict, batch_dict, num_samples = hand_made()
    pooled, present = TypePooling(4, TYPES, reduce)(h_dict, batch_dict, num_samples)
    assert pooled.shape == (3, 3, 4) and present.dtype == torch.bool
    for b, (t, node_type) in itertools.product(range(num_samples), enumerate(TYPES)):
        rows = h_dict[node_type][batch_dict[node_type] == b]
        assert bool(present[b, t]) == (rows.size(0) > 0)
        if rows.size(0):
            expected = {"mean": rows.mean(0), "max": rows.max(0).values, "sum": rows.sum(0)}[reduce]
            torch.testing.assert_close(pooled[b, t], expected)
        else:
            assert torch.equal(pooled[b, t], torch.zeros(4, dtype=pooled.dtype))
    assert present.tolist() == [[True, True, True], [True, True, False], [True, False, True]]


def test_attention_pooling_matches_manual_softmax():
    h_dict, batch_dict, num_samples = hand_made()
    pool = seeded(TypePooling, 4, TYPES, "attention")
    pooled, present = pool(h_dict, batch_dict, num_samples)
    for b, (t, node_type) in itertools.product(range(num_samples), enumerate(TYPES)):
        rows = h_dict[node_type][batch_dict[node_type] == b]
        if not rows.size(0):
            assert not present[b, t]
            continue
        scores = torch.tanh(rows @ pool.att_weight[t].T + pool.att_bias[t]) @ pool.att_vector[t]
        weights = torch.softmax(scores, 0)
        torch.testing.assert_close(weights.sum(), torch.tensor(1.0, dtype=weights.dtype))
        torch.testing.assert_close(pool.attention_scores(rows, t).double(), scores, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pooled[b, t], (weights.unsqueeze(-1) * rows).sum(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduce", POOLS)
def test_pooling_permutation_invariant(reduce, batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    pool = TypePooling(8, TYPES, reduce)
    with torch.no_grad():
        expected = pool(h_dict, batch_dict, num_samples)
        for seed, node_type in enumerate(TYPES):
            perm = torch.randperm(h_dict[node_type].size(0), generator=torch.Generator().manual_seed(seed))
            h_dict = {**h_dict, node_type: h_dict[node_type][perm]}
            batch_dict = {**batch_dict, node_type: batch_dict[node_type][perm]}
        pooled, present = pool(h_dict, batch_dict, num_samples)
    torch.testing.assert_close(pooled, expected[0])
    assert torch.equal(present, expected[1])


def test_present_from_batch_with_missing_modalities(batch):
    _, present = TypePooling(8, TYPES)(*from_batch(batch))
    assert present.tolist() == [[True, True, True], [True, True, False], [True, False, True], [True, True, True]]


@pytest.mark.parametrize("fuse", FUSES)
def test_only_present_types_reach_output(fuse, batch):
    """Sample 1 has no audio: its output is fused over text and image by hand, and other samples' audio
    (or the placeholder rows) cannot change it."""
    h_dict, batch_dict, num_samples = from_batch(batch, dtype=torch.float64)
    readout = seeded(Readout, 8, TYPES, pool="mean", fuse=fuse)
    with torch.no_grad():
        out = readout(h_dict, batch_dict, num_samples)
        z = torch.stack([h_dict[t][batch_dict[t] == 1].mean(0) for t in TYPES[:2]])  # [2, C], present types
        fusion = readout.fuse
        if fuse == "attention":
            logits = fusion.score(torch.tanh(fusion.lin(z))).squeeze(-1)
            expected = (torch.softmax(logits, 0).unsqueeze(-1) * z).sum(0)
        elif fuse == "gate":
            gates = torch.softmax(fusion.lin(z) + fusion.type_bias[:2], 0)
            expected = (gates * z).sum(0)
        else:
            expected = torch.cat([z[0], z[1], fusion.absent[2]])
        torch.testing.assert_close(out[1], expected)

        other = {**h_dict, "audio": h_dict["audio"] + 5.0 * torch.randn_like(h_dict["audio"])}
        changed = readout(other, batch_dict, num_samples)
        assert torch.equal(changed[1], out[1])
        assert not torch.allclose(changed[0], out[0])

        pooled, present = readout.pool(h_dict, batch_dict, num_samples)
        garbage = pooled.masked_fill(~present.unsqueeze(-1), float("nan"))  # absent rows are masked, not used
        torch.testing.assert_close(fusion(garbage, present), out)


def test_attention_weight_of_absent_type_is_zero(batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    readout = Readout(8, TYPES, pool="attention", fuse="attention")
    alpha = readout.type_weights(h_dict, batch_dict, num_samples)
    assert alpha.shape == (4, 3)
    assert alpha[1, 2].item() == 0.0 and alpha[2, 1].item() == 0.0
    assert (alpha[0] > 0).all() and (alpha[3] > 0).all()
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))
    out = readout(h_dict, batch_dict, num_samples)
    pooled, _ = readout.pool(h_dict, batch_dict, num_samples)
    torch.testing.assert_close(out, (alpha.unsqueeze(-1) * pooled).sum(1))


def test_concat_absent_slot_is_learned_embedding(batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    readout = Readout(8, TYPES, pool="mean", fuse="concat")
    assert readout.out_channels == 24
    out = readout(h_dict, batch_dict, num_samples).view(4, 3, 8)
    absent = readout.fuse.absent
    assert torch.equal(out[1, 2], absent[2]) and torch.equal(out[2, 1], absent[1])
    assert not torch.equal(out[1, 2], torch.zeros(8))
    out.sum().backward()
    assert absent.grad is not None
    assert torch.equal(absent.grad[1], torch.ones(8)) and torch.equal(absent.grad[2], torch.ones(8))
    assert torch.equal(absent.grad[0], torch.zeros(8))  # text is present everywhere


def test_single_node_type_marks_others_absent(batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    pooled, present = TypePooling(8, TYPES)({"text": h_dict["text"]}, batch_dict, num_samples)
    assert present.tolist() == [[True, False, False]] * 4
    assert torch.equal(pooled[:, 1:], torch.zeros(4, 2, 8))
    for fuse in ["attention", "gate"]:
        readout = Readout(8, TYPES, fuse=fuse)
        out = readout({"text": h_dict["text"]}, {"text": batch_dict["text"]}, num_samples)
        text = readout.pool({"text": h_dict["text"]}, batch_dict, num_samples)[0][:, 0]
        torch.testing.assert_close(out, text)  # one present type: it gets all the weight


def test_virtual_readout_matches_mean():
    generator = torch.Generator().manual_seed(0)
    batch_dict = {"virtual": torch.tensor([0, 0, 1, 2, 2, 2]), "text": torch.tensor([0, 1, 2])}
    h_dict = {"virtual": torch.randn(6, 4, generator=generator), "text": torch.randn(3, 4, generator=generator)}
    out = VirtualNodeReadout()(h_dict, batch_dict, 3)
    expected = torch.stack([h_dict["virtual"][batch_dict["virtual"] == b].mean(0) for b in range(3)])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(Readout(4, TYPES, fuse="virtual")(h_dict, batch_dict, 3), expected)
    with pytest.raises(ValueError, match=r"graphfuse.VirtualNodes"):
        VirtualNodeReadout()({"text": h_dict["text"]}, batch_dict, 3)
    with debug(), pytest.raises(ValueError, match=r"samples \[3\]"):
        VirtualNodeReadout()(h_dict, batch_dict, 4)


def test_builder_with_virtual_nodes_end_to_end():
    modalities = {"text": TextModality(Tokenizer.from_corpus([WORDS])), "image": ImageModality(patch_size=4),
                  "audio": AudioModality()}
    builder = GraphBuilder(modalities, cross=[CrossEdges("text", "image", FullBipartite()), VirtualNodes(2)])
    samples = synthetic_samples(3, tokens=4, grid=4, frames=4)
    samples[1].pop("audio")
    batch = builder.collate([builder.featurize(s) for s in samples])
    torch.manual_seed(0)
    encoders = NodeEncoders.from_builder(builder, 8)
    encoder = FusionEncoder(8, builder.metadata(), num_layers=1, conv="gcn", dropout=0.0)
    h_dict = encoder(encoders(batch), batch)
    virtual = Readout(8, TYPES, fuse="virtual")(h_dict, batch.batch_dict, batch.num_graphs)
    expected = torch.stack([h_dict["virtual"][batch["virtual"].batch == b].mean(0) for b in range(3)])
    torch.testing.assert_close(virtual, expected)
    readout = Readout(8, TYPES, pool="attention", fuse="gate")  # the virtual node type is left out
    out = readout(h_dict, batch.batch_dict, batch.num_graphs)
    (out.sum() + virtual.sum()).backward()
    assert out.shape == (3, 8) and torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in readout.parameters())


@pytest.mark.parametrize("pool,fuse", [*itertools.product(POOLS, ALL_FUSES), ("mean", "virtual")])
def test_gradients_flow(pool, fuse, batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    if fuse == "virtual":
        h_dict["virtual"], batch_dict["virtual"] = torch.randn(4, 8), torch.arange(4)
    h_dict = {t: h.requires_grad_() for t, h in h_dict.items()}
    readout = Readout(8, TYPES, pool=pool, fuse=fuse)
    out = readout(h_dict, batch_dict, num_samples)
    assert out.shape == (4, readout.out_channels)
    (out ** 2).sum().backward()
    for node_type, h in h_dict.items():
        if fuse == "virtual" and node_type != "virtual":
            continue  # the virtual readout reads the virtual nodes only
        assert h.grad is not None and torch.isfinite(h.grad).all()
    for name, parameter in readout.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("pool,fuse", list(itertools.product(POOLS, ALL_FUSES)))
def test_bf16_autocast(pool, fuse, batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    readout = Readout(8, TYPES, pool=pool, fuse=fuse)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = readout(h_dict, batch_dict, num_samples)
        out.float().sum().backward()
    assert out.shape == (4, readout.out_channels) and torch.isfinite(out).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = readout({t: h.bfloat16() for t, h in h_dict.items()}, batch_dict, num_samples)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_torch_compile(batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    readout = Readout(8, TYPES, pool="attention", fuse="attention")
    expected = readout(h_dict, batch_dict, num_samples)
    compiled = torch.compile(readout)
    torch.testing.assert_close(compiled(h_dict, batch_dict, num_samples), expected)


def test_sample_without_present_type_raises():
    h_dict, batch_dict, _ = hand_made()
    for fuse in ALL_FUSES:
        with debug(), pytest.raises(ValueError, match=r"samples \[3, 4\].*at least one node"):
            Readout(4, TYPES, fuse=fuse).double()(h_dict, batch_dict, 5)
    with debug(), pytest.raises(ValueError, match=r"samples \[1\]"):
        TypeFusion(4, 2)(torch.zeros(2, 2, 4), torch.tensor([[True, False], [False, False]]))


def test_errors():
    h_dict, batch_dict, num_samples = hand_made(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"TypePooling received unknown node types \['video'\].*'text', 'image'"):
        TypePooling(4, TYPES)({**h_dict, "video": torch.zeros(1, 4)}, {**batch_dict, "video": torch.zeros(1)}, 3)
    with pytest.raises(ValueError, match=r"without a sample index in 'batch_dict'"):
        TypePooling(4, TYPES)(h_dict, {"text": batch_dict["text"]}, num_samples)
    with pytest.raises(ValueError, match=r"different lengths.*'audio': \(4, 3\)"):
        TypePooling(4, TYPES)(h_dict, {**batch_dict, "audio": torch.zeros(3, dtype=torch.long)}, num_samples)
    with pytest.raises(ValueError, match=r"shape \[num_nodes, 8\]"):
        TypePooling(8, TYPES)(h_dict, batch_dict, num_samples)
    with pytest.raises(ValueError, match=r"empty 'h_dict'"):
        TypePooling(4, TYPES)({}, batch_dict, num_samples)
    with pytest.raises(ValueError, match=r"TypePooling 'reduce' must be one of .*'median'"):
        TypePooling(4, TYPES, "median")
    with pytest.raises(ValueError, match=r"TypeFusion 'mode' must be one of .*'virtual'"):
        TypeFusion(4, 3, "virtual")
    with pytest.raises(ValueError, match=r"Readout 'pool' must be one of"):
        Readout(4, TYPES, pool="min")
    with pytest.raises(ValueError, match=r"Readout 'fuse' must be one of .*'mean'"):
        Readout(4, TYPES, fuse="mean")
    with pytest.raises(TypeError, match=r"Readout 'node_types' must be a sequence"):
        Readout(4, "text")
    with pytest.raises(ValueError, match=r"distinct node type names"):
        Readout(4, ["text", "text"])
    with pytest.raises(ValueError, match=r"TypeFusion expects pooled \[B, 3, 4\]"):
        TypeFusion(4, 3)(torch.zeros(2, 2, 4), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"type_weights needs fuse='attention', got fuse='gate'"):
        Readout(4, TYPES, fuse="gate").type_weights(h_dict, batch_dict, num_samples)


def test_out_channels_and_reset():
    assert Readout(16, TYPES, fuse="attention").out_channels == 16
    assert Readout(16, TYPES, fuse="gate").out_channels == 16
    assert Readout(16, TYPES, fuse="concat").out_channels == 48
    assert Readout(16, TYPES, fuse="bilinear").out_channels == (3 + 3) * 16
    assert Readout(16, TYPES, fuse="virtual").out_channels == 16
    readout = Readout(16, TYPES, pool="attention", fuse="concat")
    before = [p.detach().clone() for p in readout.parameters()]
    readout.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, readout.parameters(), strict=True))
    weight = TypePooling(4, TYPES, "attention", dtype=torch.float64).att_weight
    assert weight.dtype == torch.float64 and weight.shape == (3, 4, 4)


def test_repr():
    assert repr(Readout(64, TYPES)) == (
        "Readout(64, node_types=['text', 'image', 'audio'], pool='mean', fuse='attention')")
    assert repr(Readout(8, ["text"], pool="attention", fuse="concat")) == (
        "Readout(8, node_types=['text'], pool='attention', fuse='concat')")
    assert repr(Readout(8, TYPES, fuse="virtual")) == (
        "Readout(8, node_types=['text', 'image', 'audio'], fuse='virtual', virtual_node_type='virtual')")
    assert repr(TypePooling(8, ["text", "image"], "max")) == (
        "TypePooling(8, node_types=['text', 'image'], reduce='max')")
    assert repr(TypeFusion(8, 3, "gate")) == "TypeFusion(8, num_types=3, mode='gate')"
    assert repr(TypeFusion(8, 3, "bilinear")) == "TypeFusion(8, num_types=3, mode='bilinear')"
    assert repr(VirtualNodeReadout("hub")) == "VirtualNodeReadout(node_type='hub')"


# fuse="bilinear" -------------------------------------------------------------------------------
def bilinear_by_hand(fusion, pooled, present):
    """[slots of every type (the learned absent vector for absent ones), then for each pair i < j the product
    of the slots projected by pair_weight[i] and pair_weight[j]], one sample at a time."""
    rows = []
    for b in range(pooled.size(0)):
        slots = [pooled[b, t] if present[b, t] else fusion.absent[t] for t in range(fusion.num_types)]
        products = [(slots[i] @ fusion.pair_weight[i]) * (slots[j] @ fusion.pair_weight[j])
                    for i, j in itertools.combinations(range(fusion.num_types), 2)]
        rows.append(torch.cat(slots + products))
    return torch.stack(rows)


@pytest.mark.parametrize("num_types,expected", [(1, 1), (2, 3), (3, 6), (4, 10)])
def test_bilinear_out_channels(num_types, expected):
    fusion = TypeFusion(8, num_types, "bilinear")
    assert fusion.out_channels == expected * 8
    pooled, present = torch.randn(2, num_types, 8), torch.ones(2, num_types, dtype=torch.bool)
    assert fusion(pooled, present).shape == (2, expected * 8)
    if num_types > 1:
        assert fusion.pair_weight.shape == (num_types, 8, 8)


def test_bilinear_matches_manual():
    h_dict, batch_dict, num_samples = hand_made()
    readout = seeded(Readout, 4, TYPES, pool="mean", fuse="bilinear")
    with torch.no_grad():
        readout.fuse.absent.normal_()  # not the tiny initial values: absent slots must visibly count
        out = readout(h_dict, batch_dict, num_samples)
        pooled, present = readout.pool(h_dict, batch_dict, num_samples)
        assert not present.all()
        expected = bilinear_by_hand(readout.fuse, pooled, present)
    assert out.shape == (3, readout.out_channels) == (3, 24)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out[1, 8:12], readout.fuse.absent[2])  # sample 1 has no audio


def test_bilinear_slots_equal_concat():
    h_dict, batch_dict, num_samples = hand_made()
    bilinear = seeded(Readout, 4, TYPES, pool="mean", fuse="bilinear")
    concat = seeded(Readout, 4, TYPES, pool="mean", fuse="concat")
    with torch.no_grad():
        concat.fuse.absent.copy_(bilinear.fuse.absent)
        torch.testing.assert_close(bilinear(h_dict, batch_dict, num_samples)[:, :12],
                                   concat(h_dict, batch_dict, num_samples))


def test_bilinear_one_node_type_is_concat():
    h_dict, batch_dict, num_samples = hand_made()
    bilinear = seeded(Readout, 4, ["text"], fuse="bilinear")
    assert bilinear.out_channels == 4 and bilinear.fuse.pairs == []
    expected = torch.stack([h_dict["text"][batch_dict["text"] == b].mean(0) for b in range(num_samples)])
    torch.testing.assert_close(bilinear({"text": h_dict["text"]}, batch_dict, num_samples), expected)
    fusion = TypeFusion(4, 1, "bilinear")
    pooled, present = torch.randn(3, 1, 4), torch.tensor([[True], [True], [True]])
    assert torch.equal(fusion(pooled, present), pooled.flatten(1))


def test_bilinear_never_reads_absent_rows(batch):
    h_dict, batch_dict, num_samples = from_batch(batch, dtype=torch.float64)
    readout = seeded(Readout, 8, TYPES, pool="attention", fuse="bilinear")
    with torch.no_grad():
        out = readout(h_dict, batch_dict, num_samples)
        pooled, present = readout.pool(h_dict, batch_dict, num_samples)
        torch.testing.assert_close(out, bilinear_by_hand(readout.fuse, pooled, present))
        for fill in (float("nan"), 1e6):
            garbage = pooled.masked_fill(~present.unsqueeze(-1), fill)
            assert torch.equal(readout.fuse(garbage, present), out)
        # an absent type's nodes in other samples do not reach a sample without it
        other = {**h_dict, "audio": h_dict["audio"] + 5.0 * torch.randn_like(h_dict["audio"])}
        changed = readout(other, batch_dict, num_samples)
        assert torch.equal(changed[1], out[1]) and not torch.allclose(changed[0], out[0])


def test_bilinear_gradients_and_reset(batch):
    h_dict, batch_dict, num_samples = from_batch(batch)
    readout = Readout(8, TYPES, fuse="bilinear")
    readout(h_dict, batch_dict, num_samples).square().sum().backward()
    grad = readout.fuse.pair_weight.grad
    assert grad is not None and all(grad[t].abs().sum() > 0 for t in range(3))
    absent = readout.fuse.absent.grad
    assert torch.equal(absent[0], torch.zeros(8)) and absent[1].abs().sum() > 0 and absent[2].abs().sum() > 0
    before = [p.detach().clone() for p in readout.fuse.parameters()]
    readout.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, readout.fuse.parameters(), strict=True))
