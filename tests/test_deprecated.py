import importlib

import pytest

import graphfuse.data


@pytest.mark.parametrize(("old", "names"), [
    ("graphfuse.graph", ["GraphBuilder", "CrossEdges", "full_bipartite_edges", "to_networkx"]),
    ("graphfuse.modalities", ["TextModality", "NodeSet", "Tokenizer", "register_modality"]),
])
def test_moved_names_warn_and_resolve_to_their_new_home(old, names):
    module = importlib.import_module(old)
    for name in names:
        with pytest.warns(DeprecationWarning, match=rf"{old}.{name} moved to graphfuse.data.{name}"):
            value = getattr(module, name)
        assert value is getattr(graphfuse.data, name)


def test_unknown_names_of_a_moved_package_raise_attribute_error():
    with pytest.raises(AttributeError, match="module 'graphfuse.graph' has no attribute 'Nothing'"):
        _ = importlib.import_module("graphfuse.graph").Nothing
