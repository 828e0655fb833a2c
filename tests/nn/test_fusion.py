import pytest
import torch

from graphfuse.nn import FlatGraph, FusionBlock, FusionEncoder, NodeEncoders, create_conv, list_convs, register_conv
from graphfuse.nn.conv import RelationalGCNConv

CONVS = ["gcn", "gat", "hgt", "gated"]


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
    with pytest.raises(ValueError, match="ffn_ratio"):
        FusionBlock(16, metadata, ffn_ratio=-1)
    with pytest.raises(ValueError, match="heads"):
        FusionBlock(16, metadata, conv="gat", heads=3)
    with pytest.raises(ValueError, match="num_layers"):
        FusionEncoder(16, metadata, num_layers=0)
    with pytest.raises(TypeError, match="FusionEncoder needs"):
        FusionEncoder(16, metadata).graph(None)


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
