import importlib
import warnings

import pytest

import graphfuse.data
from graphfuse.deprecation import GraphfuseDeprecationWarning


@pytest.mark.parametrize(("old", "names"), [
    ("graphfuse.graph", ["GraphBuilder", "CrossEdges", "full_bipartite_edges", "to_networkx"]),
    ("graphfuse.modalities", ["TextModality", "NodeSet", "Tokenizer", "register_modality"]),
])
def test_moved_names_warn_and_resolve_to_their_new_home(old, names):
    module = importlib.import_module(old)
    for name in names:
        with pytest.warns(GraphfuseDeprecationWarning, match=rf"{old}.{name} moved to graphfuse.data.{name}"):
            value = getattr(module, name)
        assert value is getattr(graphfuse.data, name)


def test_unknown_names_of_a_moved_package_raise_attribute_error():
    with pytest.raises(AttributeError, match="module 'graphfuse.graph' has no attribute 'Nothing'"):
        _ = importlib.import_module("graphfuse.graph").Nothing


def test_old_argument_names_warn_and_pass_on_under_the_new_ones():
    from graphfuse.nn import ClassificationHead

    with pytest.warns(GraphfuseDeprecationWarning, match=r"ClassificationHead\(hidden=...\) is now "
                                                         r"ClassificationHead\(hidden_channels=...\)"):
        head = ClassificationHead(8, 3, hidden=5)
    assert head.hidden_channels == 5
    with pytest.raises(TypeError, match="got both 'hidden' and its new name 'hidden_channels'"):
        ClassificationHead(8, 3, hidden=5, hidden_channels=5)


def test_create_model_takes_the_old_hidden_with_a_warning():
    from graphfuse.models import create_model
    from graphfuse.testing import tri_modal_builder

    builder = tri_modal_builder()
    with (pytest.warns(GraphfuseDeprecationWarning, match=r"GraphFusionModel\(hidden=...\) is now"),
          pytest.warns(GraphfuseDeprecationWarning, match=r"GraphFusionModel\(head_hidden=...\) is now")):
        model = create_model("graph-gcn", builder=builder, num_classes=3, hidden=8, head_hidden=4)
    assert model.head.in_channels > 0 and model.head.hidden_channels == 4
    assert model.backbone.encoders["text"].token.embedding_dim == 8


def test_the_checkpoint_module_moved_below_the_models():
    import graphfuse.checkpoint
    from graphfuse.train import checkpoint

    with pytest.warns(GraphfuseDeprecationWarning, match="graphfuse.train.checkpoint.load_weights moved to "
                                                         "graphfuse.checkpoint.load_weights"):
        assert checkpoint.load_weights is graphfuse.checkpoint.load_weights


def test_the_fused_kernels_moved_out_of_the_conv_modules():
    from graphfuse.nn.conv import aggregate, base, bipartite
    from graphfuse.nn.conv.fused import aggregate as fused_aggregate
    from graphfuse.nn.conv.fused import bipartite as fused_bipartite

    with pytest.warns(GraphfuseDeprecationWarning, match="graphfuse.nn.conv.aggregate.spmm moved to "
                                                         "graphfuse.nn.conv.fused.aggregate.spmm"):
        assert aggregate.spmm is fused_aggregate.spmm
    with pytest.warns(GraphfuseDeprecationWarning, match="aggregate.NORMALIZATIONS moved to graphfuse.nn.conv.base"):
        assert aggregate.NORMALIZATIONS is base.NORMALIZATIONS
    with pytest.warns(GraphfuseDeprecationWarning, match="graphfuse.nn.conv.bipartite.bipartite_gat moved to "
                                                         "graphfuse.nn.conv.fused.bipartite.bipartite_gat"):
        assert bipartite.bipartite_gat is fused_bipartite.bipartite_gat
    with pytest.raises(AttributeError, match="has no attribute 'SORTED_BLOCK_SIZE'"):
        _ = bipartite.SORTED_BLOCK_SIZE


def test_a_filter_on_deprecation_warnings_selects_graphfuse_deprecations():
    from graphfuse.nn import ClassificationHead

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(GraphfuseDeprecationWarning, match=r"ClassificationHead\(hidden=...\) is now"):
            ClassificationHead(8, 3, hidden=5)
