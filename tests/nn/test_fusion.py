import itertools
import math
import re

import pytest
import torch

import graphfuse.nn.context
from graphfuse.nn import (
    FlatGraph,
    FusionBlock,
    FusionEncoder,
    ModalityContext,
    NodeEncoders,
    create_conv,
    list_convs,
    register_conv,
)
from graphfuse.nn.conv import RelationalGCNConv

CONVS = ["gcn", "gat", "hgt", "gated"]

pytestmark = pytest.mark.usefixtures("one_thread")


def make(metadata, conv, **kwargs):
    torch.manual_seed(0)
    return FusionEncoder(16, metadata, num_layers=2, conv=conv, heads=2, dropout=0.0, **kwargs).eval()


def test_list_convs():
    assert set(CONVS) <= set(list_convs())


@pytest.mark.parametrize("knn", [None, 3])
@pytest.mark.parametrize("conv", CONVS)
def test_encoder(conv, knn, fusion_builder, batch, metadata):
    encoder = make(metadata, conv, knn=knn).train()
    h = NodeEncoders.from_builder(fusion_builder, 16)(batch)
    out = encoder(h, batch)
    assert {t: tuple(v.shape) for t, v in out.items()} == {t: tuple(v.shape) for t, v in h.items()}
    sum(v.sum() for v in out.values()).backward()
    grads = [p.grad for p in encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert isinstance(encoder.blocks[0].conv, type(create_conv(conv, 16, metadata, 2)))


@pytest.mark.parametrize("knn", [None, 2])
@pytest.mark.parametrize("conv", CONVS)
def test_call_styles_agree(conv, knn, batch, metadata, flat_graph, dicts):
    encoder = make(metadata, conv, knn=knn)
    x_dict, edge_index_dict, batch_dict = dicts(16, torch.float32)
    with torch.no_grad():
        from_batch = encoder(x_dict, batch)
        from_dicts = encoder(x_dict, edge_index_dict, batch_dict)
        flat = encoder(flat_graph.flatten(x_dict), flat_graph)
    for t in from_batch:
        torch.testing.assert_close(from_dicts[t], from_batch[t])
        torch.testing.assert_close(flat_graph.unflatten(flat)[t], from_batch[t])


@pytest.mark.parametrize("knn", [None, 2])
@pytest.mark.parametrize("conv", CONVS)
def test_no_cross_sample_leakage(conv, knn, metadata, flat_graph, sparse_graph, assert_no_leakage):
    encoder = make(metadata, conv, knn=knn)
    for graph in (flat_graph, sparse_graph):
        assert_no_leakage(encoder, graph, 16)


@pytest.mark.parametrize("conv", ["gat", "hgt"])
def test_knn_update_forward_shares_the_first_blocks_edges(conv, metadata, flat_graph, features, monkeypatch):
    """``knn_update="forward"`` chooses the k-NN edges once, from the encoder's input, and every block
    runs on that one graph; ``"block"`` chooses them again from each block's input."""
    x = features(flat_graph, 16, torch.float32)
    once, each = make(metadata, conv, knn=2, knn_update="forward"), make(metadata, conv, knn=2)
    shared = once.knn(x, flat_graph)
    expected = x
    with torch.no_grad():
        for block in once.blocks:
            expected = block(expected, shared)
        calls = []
        original = type(once.knn).forward
        monkeypatch.setattr(type(once.knn), "forward", lambda self, *args: calls.append(1) or original(self, *args))
        torch.testing.assert_close(once(x, flat_graph), expected)
        assert len(calls) == 1
        each(x, flat_graph)
        assert len(calls) == 1 + len(each.blocks)
        assert not torch.allclose(each(x, flat_graph), expected)
    assert repr(once) == f"FusionEncoder(16, num_layers=2, conv='{conv}', knn=2, knn_update='forward')"
    with pytest.raises(ValueError, match="knn_update"):
        make(metadata, conv, knn=2, knn_update="layer")


def test_ffn_ratio_zero(metadata, flat_graph, features):
    encoder = make(metadata, "gcn", ffn_ratio=0)
    assert all(block.ffn is None for block in encoder.blocks)
    x = features(flat_graph, 16, torch.float32)
    assert encoder(x, flat_graph).shape == x.shape
    conv_only = FusionBlock(16, metadata, conv="gcn", ffn_ratio=0, dropout=0.0, norm="none")
    torch.testing.assert_close(conv_only(x, flat_graph), x + conv_only.conv(x, flat_graph))


def test_norm_first(metadata, flat_graph, features):
    block = FusionBlock(16, metadata, conv="gat", heads=4, norm_first=True, dropout=0.0)
    x = features(flat_graph, 16, torch.float32)
    assert block(x, flat_graph).shape == x.shape


def test_unknown_conv_name(metadata):
    with pytest.raises(ValueError, match="Unknown fusion conv 'sage'") as info:
        FusionEncoder(16, metadata, conv="sage")
    assert "gcn" in str(info.value)


def test_register_conv(metadata, flat_graph, features):
    name = "test_fusion_plain_gcn"

    def factory(channels, metadata, heads, **kwargs):
        return RelationalGCNConv(channels, channels, metadata, root_weight=False, **kwargs)

    if name not in list_convs():
        assert register_conv(name, factory) is factory
    assert name in list_convs()
    encoder = FusionEncoder(16, metadata, num_layers=1, conv=name)
    assert encoder.blocks[0].conv.root is None
    assert encoder(features(flat_graph, 16, torch.float32), flat_graph).shape == (flat_graph.num_nodes, 16)
    with pytest.raises(ValueError, match="already registered"):
        register_conv(name, factory)
    with pytest.raises(ValueError, match="already registered"):
        register_conv("gcn", factory)


def test_arguments(metadata):
    with pytest.raises(ValueError, match="heads"):
        FusionBlock(16, metadata, conv="gat", heads=3)
    with pytest.raises(ValueError, match="num_layers"):
        FusionEncoder(16, metadata, num_layers=0)
    with pytest.raises(ValueError, match=re.escape("conv='gat' 'heads' must be an integer >= 1, got 0")):
        FusionBlock(16, metadata, conv="gat", heads=0)  # not a ZeroDivisionError
    with pytest.raises(ValueError, match=re.escape("FusionBlock 'dropout' is a probability in [0, 1), got 1.5")):
        FusionBlock(16, metadata, dropout=1.5)
    for ratio in (-1.0, float("nan")):
        with pytest.raises(ValueError, match=re.escape(f"FusionBlock 'ffn_ratio' must be a number >= 0, got {ratio}")):
            FusionBlock(16, metadata, ffn_ratio=ratio)
    for conv, name in (("gat", "RelationalGATConv"), ("hgt", "RelationalHGTConv")):
        with pytest.raises(ValueError, match=re.escape(f"{name} 'dropout' is a probability in [0, 1), got -0.5")):
            FusionBlock(16, metadata, conv=conv, heads=2, conv_kwargs={"dropout": -0.5})
    with pytest.raises(TypeError, match="FusionEncoder needs"):
        FusionEncoder(16, metadata).graph(None)
    h_dict = {node_type: torch.randn(2, 16) for node_type in metadata[0]}
    for graph in (None, "batch"):  # not read as "no edges, one sample"
        with pytest.raises(TypeError, match=rf"FusionEncoder needs a PyG batch, .*, got {type(graph).__name__}"):
            FusionEncoder(16, metadata)(h_dict, graph)


def test_graph_is_built_once(batch, metadata):
    encoder = make(metadata, "gcn")
    graph = encoder.graph(batch)
    assert isinstance(graph, FlatGraph) and encoder.graph(graph) is graph


def test_repr(metadata):
    assert repr(FusionEncoder(16, metadata, conv="gat", heads=4)) == "FusionEncoder(16, num_layers=2, conv='gat')"
    assert repr(FusionEncoder(8, metadata, num_layers=1, conv="hgt", heads=2, knn=4)) == (
        "FusionEncoder(8, num_layers=1, conv='hgt', knn=4)")


@pytest.mark.slow  # compilation takes tens of seconds per layer on CPU
@pytest.mark.parametrize("knn", [None, 3])
@pytest.mark.parametrize("conv", CONVS)
def test_torch_compile_matches_eager(conv, knn, metadata, flat_graph, features):
    eager = make(metadata, conv, knn=knn)
    compiled = make(metadata, conv, knn=knn)
    x = features(flat_graph, 16, torch.float32)
    out_eager = eager(x, flat_graph)
    out_compiled = torch.compile(compiled)(x, flat_graph)
    torch.testing.assert_close(out_compiled, out_eager, rtol=1e-4, atol=1e-5)
    out_eager.square().sum().backward()
    out_compiled.square().sum().backward()
    for (name, p_eager), p_compiled in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(p_compiled.grad, p_eager.grad, rtol=1e-4, atol=1e-4, msg=name)


# ModalityContext -------------------------------------------------------------------------------
def randomised_context(channels, num_node_types, seed=0, dtype=torch.float64):
    """A ModalityContext with every parameter random (its gate and scores start at 0)."""
    torch.manual_seed(seed)
    context = ModalityContext(channels, num_node_types).to(dtype)
    with torch.no_grad():
        for parameter in context.parameters():
            parameter.normal_()
    return context


def context_by_hand(context, x, graph):
    """tanh(gate[t]) * (attention-weighted mean of its own type in its own sample @ weight[t] + bias[t]), with
    the weights a softmax over the group of score[t] . x (weight[t] maps [in, out])."""
    out = torch.zeros_like(x)
    for t, b in itertools.product(range(graph.schema.num_node_types), range(graph.num_samples)):
        group = (graph.node_type == t) & (graph.node_batch == b)
        if not group.any():
            continue
        alpha = torch.softmax(x[group] @ context.score[t], 0)
        mean = alpha @ x[group]
        out[group] = torch.tanh(context.gate[t]) * (mean @ context.weight[t] + context.bias[t])
    return out


def test_modality_context_matches_manual(flat_graph, features):
    assert (flat_graph.counts == 0).any()  # some samples lack a node type
    context = randomised_context(16, flat_graph.schema.num_node_types)
    x = features(flat_graph, 16)
    with torch.no_grad():
        out = context(x, flat_graph)
        expected = context_by_hand(context, x, flat_graph)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)  # scores and sums run in float32
    assert out.abs().min() > 0


def test_modality_context_scores_start_uniform(flat_graph, features):
    """At its initial scores (0), the context reads the plain mean of the group."""
    torch.manual_seed(0)
    context = ModalityContext(16, flat_graph.schema.num_node_types).double()
    assert torch.equal(context.gate, torch.zeros(3)) and torch.equal(context.score, torch.zeros(3, 16))
    x = features(flat_graph, 16)
    with torch.no_grad():
        assert torch.equal(context(x, flat_graph), torch.zeros_like(x))  # gate 0: no contribution yet
        context.gate.fill_(1.0)
        out = context(x, flat_graph)
    for t, b in [(0, 0), (1, 3), (2, 2)]:
        group = (flat_graph.node_type == t) & (flat_graph.node_batch == b)
        expected = math.tanh(1.0) * (x[group].mean(0) @ context.weight[t] + context.bias[t])
        torch.testing.assert_close(out[group], expected.expand(int(group.sum()), 16), rtol=1e-5, atol=1e-5)


def test_modality_context_one_sample(metadata):
    graph = FlatGraph.from_dicts(metadata, {"text": 3, "audio": 2}, {})
    context = randomised_context(4, 3)
    x = torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(context(x, graph), context_by_hand(context, x, graph), rtol=1e-5, atol=1e-5)


def test_modality_context_no_mixing_of_samples_or_types(flat_graph, features, assert_no_leakage):
    context = randomised_context(16, flat_graph.schema.num_node_types, dtype=torch.float32)
    assert_no_leakage(context, flat_graph, 16, sample=1)
    x = features(flat_graph, 16, torch.float32)
    changed = (flat_graph.node_type == 1) & (flat_graph.node_batch == 0)  # the image nodes of sample 0
    y = x.clone()
    y[changed] += 3.0
    with torch.no_grad():
        out, perturbed = context(x, flat_graph), context(y, flat_graph)
    assert torch.equal(out[~changed], perturbed[~changed])
    assert not torch.allclose(out[changed], perturbed[changed])


@pytest.mark.parametrize("node_type", ["text", "image"])
def test_modality_context_permutation_equivariant(node_type, metadata, dicts, permute_sample):
    x_dict, edge_index_dict, batch_dict = dicts(16)
    x_new, edges_new, batch_new, perm = permute_sample(x_dict, edge_index_dict, batch_dict, node_type, sample=0)
    graph = FlatGraph.from_dicts(metadata, {t: x.size(0) for t, x in x_dict.items()}, edge_index_dict, batch_dict)
    graph_new = FlatGraph.from_dicts(metadata, {t: x.size(0) for t, x in x_new.items()}, edges_new, batch_new)
    context = randomised_context(16, 3)
    torch.manual_seed(0)
    block = FusionBlock(16, metadata, conv="gcn", dropout=0.0, modality_context=True).double()
    with torch.no_grad():
        block.context.gate.fill_(1.0)
        block.context.score.normal_()
        for module in (context, block):
            out = graph.unflatten(module(graph.flatten(x_dict), graph))
            out_new = graph_new.unflatten(module(graph_new.flatten(x_new), graph_new))
            for t in out:
                expected = out[t][perm] if t == node_type else out[t]
                torch.testing.assert_close(out_new[t], expected, rtol=1e-5, atol=1e-5)  # float32 scores


CONTEXT_KEYS = {"context.weight", "context.bias", "context.score", "context.gate"}
BLOCK_OPTIONS = [dict(), dict(norm_first=True), dict(norm="none"), dict(norm="none", norm_first=True)]


def test_modality_context_lives_in_its_own_module():
    assert ModalityContext is graphfuse.nn.context.ModalityContext
    assert ModalityContext.__module__ == "graphfuse.nn.context"


@pytest.mark.parametrize("options", BLOCK_OPTIONS, ids=["post-norm", "pre-norm", "no-norm", "no-norm-first"])
@pytest.mark.parametrize("conv", ["gcn", "gat"])
def test_zero_gate_block_equals_block_without_context(conv, options, metadata, flat_graph, features):
    """With the gate at 0 the context adds exactly nothing, post-norm and pre-norm, whatever the other parameters."""
    x = features(flat_graph, 16, torch.float32)
    torch.manual_seed(0)
    with_context = FusionBlock(16, metadata, conv=conv, heads=2, dropout=0.0, modality_context=True, **options)
    with torch.no_grad():
        for name, parameter in with_context.named_parameters():
            if name != "context.gate":
                parameter.normal_(std=0.5)  # norms' affine parameters too: nothing is at its initial value
    plain = FusionBlock(16, metadata, conv=conv, heads=2, dropout=0.0, **options)
    missing, unexpected = plain.load_state_dict(with_context.state_dict(), strict=False)
    assert not missing and set(unexpected) == CONTEXT_KEYS
    with torch.no_grad():
        expected = plain(x, flat_graph)
        assert torch.equal(with_context(x, flat_graph), expected)
        with_context.context.gate.fill_(0.5)
        assert not torch.allclose(with_context(x, flat_graph), expected)


def test_zero_gate_post_norm_block_at_initialisation(metadata, flat_graph, features):
    """Post-norm with every parameter at its initial value: exactly the plain block."""
    x = features(flat_graph, 16, torch.float32)
    torch.manual_seed(0)
    with_context = FusionBlock(16, metadata, conv="gcn", dropout=0.0, modality_context=True)
    plain = FusionBlock(16, metadata, conv="gcn", dropout=0.0)
    plain.load_state_dict(with_context.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.equal(with_context(x, flat_graph), plain(x, flat_graph))


def test_zero_gate_post_norm_block_with_trained_norms(metadata, flat_graph, features):
    """Post-norm once both norms' affine parameters have moved: a zero gate is still exactly the plain block."""
    x = features(flat_graph, 16, torch.float32)
    torch.manual_seed(0)
    with_context = FusionBlock(16, metadata, conv="gcn", dropout=0.0, modality_context=True)
    with torch.no_grad():
        for norm in (with_context.norm1, with_context.norm2):
            norm.weight.normal_()
            norm.bias.normal_()
    plain = FusionBlock(16, metadata, conv="gcn", dropout=0.0)
    plain.load_state_dict(with_context.state_dict(), strict=False)
    with torch.no_grad():
        assert torch.equal(with_context(x, flat_graph), plain(x, flat_graph))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("conv", ["gcn", "gat"])
def test_block_with_context_matches_formula(conv, norm_first, metadata, flat_graph, features):
    """Post-norm x' = N1(x + Conv(x) + Context(x)), pre-norm x' = x + Conv(N1(x)) + Context(N1(x)), then the FFN
    residual; the context is computed by hand."""
    x = features(flat_graph, 16)
    torch.manual_seed(0)
    block = FusionBlock(16, metadata, conv=conv, heads=2, dropout=0.0, modality_context=True,
                        norm_first=norm_first).double()
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.weight.normal_()
            norm.bias.normal_()
        block.context.gate.normal_()
        block.context.score.normal_()
        block.context.bias.normal_()
        out = block(x, flat_graph)
        if norm_first:
            n = block.norm1(x)
            h = x + block.conv(n, flat_graph) + context_by_hand(block.context, n, flat_graph)
            expected = h + block.ffn(block.norm2(h))
        else:
            h = block.norm1(x + block.conv(x, flat_graph) + context_by_hand(block.context, x, flat_graph))
            expected = block.norm2(h + block.ffn(h))
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)  # the context's scores run in float32
        block.context.gate.zero_()
        assert not torch.allclose(block(x, flat_graph), out, rtol=1e-3, atol=1e-3)


def test_block_context_shares_the_dropout_of_the_messages(metadata, flat_graph, features):
    """Dropout(Conv(x) + Context(x)): one mask over the sum, so each entry of the update is 0 or the whole sum
    scaled by 1 / (1 - p), never one of the two branches alone."""
    x = features(flat_graph, 16)
    torch.manual_seed(0)
    block = FusionBlock(16, metadata, conv="gcn", dropout=0.5, norm="none", ffn_ratio=0,
                        modality_context=True).double().train()
    with torch.no_grad():
        block.context.gate.fill_(1.0)
        block.context.score.normal_()
        conv, context = block.conv(x, flat_graph), block.context(x, flat_graph)
        informative = (conv.abs() > 1e-2) & (context.abs() > 1e-2) & ((conv + context).abs() > 1e-2)
        assert informative.double().mean() > 0.9  # entries where a branch dropped alone would show
        update = block(x, flat_graph) - x
    dropped = update == 0
    kept = torch.isclose(update, 2 * (conv + context))
    assert (dropped | kept).all()
    assert 0.3 < dropped.double().mean().item() < 0.7


@pytest.mark.parametrize("norm_first", [False, True])
def test_block_with_context_gradients(norm_first, fusion_builder, batch, metadata):
    torch.manual_seed(0)
    encoder = FusionEncoder(16, metadata, num_layers=2, conv="gcn", dropout=0.0, modality_context=True,
                            norm_first=norm_first)
    assert all(isinstance(block.context, ModalityContext) for block in encoder.blocks)
    h = NodeEncoders.from_builder(fusion_builder, 16)(batch)
    out = encoder(h, batch)
    assert {t: v.shape for t, v in out.items()} == {t: v.shape for t, v in h.items()}
    sum(v.square().sum() for v in out.values()).backward()
    for block in encoder.blocks:
        context = block.context
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in context.parameters())
        assert (context.gate.grad != 0).all()  # a zero gate still learns
        assert torch.equal(context.weight.grad, torch.zeros_like(context.weight))  # tanh(0) = 0 blocks the rest


def test_block_with_context_no_cross_sample_leakage(metadata, flat_graph, sparse_graph, assert_no_leakage):
    torch.manual_seed(0)
    block = FusionBlock(16, metadata, conv="gat", heads=2, dropout=0.0, modality_context=True).eval()
    with torch.no_grad():
        block.context.gate.fill_(1.0)
        block.context.score.normal_()
    for graph in (flat_graph, sparse_graph):
        assert_no_leakage(block, graph, 16)


def test_block_without_context_has_none(metadata):
    block = FusionBlock(16, metadata, conv="gcn")
    assert block.context is None and not hasattr(block, "norm_context")
    assert not any(name.startswith("context.") for name in block.state_dict())
    for options in (dict(), dict(norm="none"), dict(norm_first=True)):
        block = FusionBlock(16, metadata, conv="gcn", modality_context=True, **options)
        assert isinstance(block.context, ModalityContext) and block.context.weight.shape == (3, 16, 16)
        assert not hasattr(block, "norm_context")
        plain = FusionBlock(16, metadata, conv="gcn", **options)
        assert set(block.state_dict()) - set(plain.state_dict()) == CONTEXT_KEYS  # the context's parameters only


def test_modality_context_reset_parameters():
    context = randomised_context(4, 2)
    weight = context.weight.detach().clone()
    context.reset_parameters()
    assert torch.equal(context.gate, torch.zeros(2)) and torch.equal(context.score, torch.zeros(2, 4))
    assert torch.equal(context.bias, torch.zeros(2, 4))
    bound = 1 / math.sqrt(4)
    assert not torch.equal(context.weight, weight) and (context.weight.abs() <= bound).all()
    assert context.weight.std() > 0.1 * bound  # drawn, not zeroed


def test_block_reset_parameters_resets_the_context(metadata):
    torch.manual_seed(0)
    block = FusionBlock(16, metadata, conv="gcn", modality_context=True)
    with torch.no_grad():
        for parameter in block.context.parameters():
            parameter.normal_()
    block.reset_parameters()
    assert torch.equal(block.context.gate, torch.zeros(3)) and torch.equal(block.context.score, torch.zeros(3, 16))
    assert torch.equal(block.context.bias, torch.zeros(3, 16)) and (block.context.weight.abs() <= 0.25).all()
