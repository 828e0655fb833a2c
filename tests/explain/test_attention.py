import pytest
import torch

from graphfuse.explain import AttentionRecorder
from graphfuse.nn import FlatGraph
from graphfuse.nn.conv.base import RelationalConv


def test_recording_changes_nothing_the_model_returns(make_model, builder, samples):
    model = make_model("graph-gat", heads=2)
    batch = builder.collate(samples)
    with torch.no_grad():
        plain = model(batch)
        with AttentionRecorder(model) as recorder:
            recorded = model(batch)
    torch.testing.assert_close(recorded, plain)  # the kernels that also return weights may round differently
    assert [layer.name for layer in recorder.layers] == ["backbone.unimodal.blocks.0.conv",
                                                         "backbone.fusion.blocks.0.conv"]
    assert [layer.stage for layer in recorder.layers] == ["unimodal", "fusion"]
    assert all(conv.attention_recorder is None for conv in model.modules() if isinstance(conv, RelationalConv))


@pytest.mark.parametrize("name", ["graph-gat", "graph-hgt"])
def test_recorded_weights_are_what_the_conv_returns_when_asked(make_model, builder, samples, name):
    model = make_model(name, heads=2)
    conv = model.backbone.fusion.blocks[0].conv
    inputs = {}
    conv.register_forward_pre_hook(lambda module, args: inputs.setdefault("args", args))
    with torch.no_grad(), AttentionRecorder(model) as recorder:
        model(builder.collate(samples))
        x, graph = inputs["args"]
        assert isinstance(graph, FlatGraph)
        recorder_layers = list(recorder.layers)
    with torch.no_grad():
        _, expected = conv(x, graph, return_attention_weights=True)
    recorded = recorder_layers[-1].weights
    assert recorded.keys() == expected.keys()
    for edge_type, (edge_index, alpha) in expected.items():
        torch.testing.assert_close(recorded[edge_type][0], edge_index)
        torch.testing.assert_close(recorded[edge_type][1], alpha.float())
        assert alpha.size(1) == 2


def test_models_without_attention_record_nothing(make_model, builder, samples):
    for model in (make_model("graph-gcn"), make_model("early-fusion")):
        with torch.no_grad(), AttentionRecorder(model) as recorder:
            model(builder.collate(samples))
        assert recorder.layers == []


def test_a_retrieval_model_records_each_side_as_its_own_call(make_model, builder, samples):
    model = make_model("graph-gat", task="retrieval", heads=2)
    complete = [s for s in samples if "image" in s and "text" in s]
    with torch.no_grad(), AttentionRecorder(model) as recorder:
        model(builder.collate(complete))
    calls = [(layer.name, layer.call) for layer in recorder.layers]
    assert len(calls) == len(set(calls)) and {call for _, call in calls} == {0, 1}


def test_one_recorder_per_model_at_a_time(make_model):
    model = make_model("graph-gat", heads=2)
    with AttentionRecorder(model), pytest.raises(RuntimeError, match="already being recorded"):
        with AttentionRecorder(model):
            pass
    with pytest.raises(TypeError, match="torch.nn.Module"):
        AttentionRecorder("model")
