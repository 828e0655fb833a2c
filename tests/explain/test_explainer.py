import math

import pytest
import torch

from graphfuse import Pipeline
from graphfuse.explain import Explanation, explain


def _probabilities(model, builder, samples):
    with torch.no_grad():
        return model(builder.collate(samples)).softmax(-1)


def test_scores_are_the_predicted_class_probabilities(make_model, builder, samples):
    model = make_model("graph-gat", heads=2)
    explanation = explain(model, samples, builder=builder)
    probabilities = _probabilities(model, builder, samples)
    assert isinstance(explanation, Explanation) and explanation.kind == "classification"
    torch.testing.assert_close(explanation.prediction, probabilities)
    assert explanation.target.tolist() == probabilities.argmax(-1).tolist()
    torch.testing.assert_close(explanation.score, probabilities.max(-1).values)
    assert model.training is False


def test_contributions_are_the_change_when_a_modality_is_left_out(make_model, builder, samples):
    model = make_model("graph-gat", heads=2)
    explanation = explain(model, samples, builder=builder, target=1)
    full = _probabilities(model, builder, samples)[:, 1]
    for modality in ("text", "image", "audio"):
        for i, sample in enumerate(samples):
            value = float(explanation.contributions[modality][i])
            if modality not in sample:
                assert math.isnan(value)
                continue
            reduced = {key: raw for key, raw in sample.items() if key != modality}
            expected = full[i] - _probabilities(model, builder, [reduced])[0, 1]
            assert value == pytest.approx(float(expected), abs=1e-5)


def test_a_sample_with_one_modality_cannot_lose_it(make_model, builder, samples):
    explanation = explain(make_model("graph-gat", heads=2), [{"image": samples[0]["image"]}], builder=builder)
    assert math.isnan(float(explanation.contributions["image"][0]))
    assert explanation.node_attributions["text"].numel() == 0


def test_gradient_x_input_is_the_gradient_of_the_logit_at_the_encoded_inputs(make_model, builder, samples):
    model = make_model("graph-gat", heads=2)
    explanation = explain(model, samples, builder=builder)
    batch = builder.collate(samples)
    states = model.backbone.encoders(batch)
    for state in states.values():
        state.retain_grad()
    encoders = model.backbone.encoders
    handle = encoders.register_forward_hook(lambda module, args, output: states)
    try:
        logits = model(batch)
    finally:
        handle.remove()
    logits.gather(1, explanation.target.view(-1, 1)).sum().backward()
    for node_type, state in states.items():
        expected = (state * state.grad).sum(-1).detach()
        torch.testing.assert_close(explanation.node_attributions[node_type], expected)
    per_modality = explanation.modality_attributions()
    assert float(per_modality["audio"][1]) == 0.0  # sample 1 has no audio
    torch.testing.assert_close(sum(per_modality.values()).sum(),
                               sum(v.sum() for v in explanation.node_attributions.values()))


def test_each_sample_is_explained_as_it_would_be_alone(make_model, builder, samples):
    model = make_model("graph-hgt", heads=2)
    together = explain(model, samples, builder=builder)
    alone = explain(model, samples[2:], builder=builder)
    torch.testing.assert_close(together.score[2:], alone.score, atol=1e-5, rtol=1e-4)
    for query, key in (("text", "image"), ("text", "audio"), ("image", "audio")):
        torch.testing.assert_close(together.attention(2, query, key), alone.attention(0, query, key),
                                   atol=1e-5, rtol=1e-4)
    for node_type, values in alone.sample_attributions(0).items():
        torch.testing.assert_close(together.sample_attributions(2)[node_type], values, atol=1e-5, rtol=1e-3)
    for modality, values in alone.contributions.items():
        torch.testing.assert_close(together.contributions[modality][2:], values, atol=1e-5, rtol=1e-4,
                                   equal_nan=True)


def test_a_pipeline_is_explained_like_its_model(make_model, builder, samples):
    model = make_model("graph-gat", heads=2)
    from_pipeline = explain(Pipeline(builder, model), samples)
    direct = explain(model, samples, builder=builder)
    torch.testing.assert_close(from_pipeline.score, direct.score)
    torch.testing.assert_close(from_pipeline.attention(0, "text", "audio"), direct.attention(0, "text", "audio"))


def test_regression_explains_the_output(make_model, builder, samples):
    model = make_model("graph-gat", task="regression", out_channels=2, heads=2)
    explanation = explain(model, samples, builder=builder, target=[1, 0, 1])
    with torch.no_grad():
        outputs = model(builder.collate(samples))
    torch.testing.assert_close(explanation.score, outputs[torch.arange(3), torch.tensor([1, 0, 1])])


def test_retrieval_explains_the_similarity_of_the_two_sides(make_model, builder, samples):
    model = make_model("graph-gat", task="retrieval", heads=2)
    explanation = explain(model, samples, builder=builder)
    batch = builder.collate(samples)
    with torch.no_grad():
        expected = (model.encode(batch, "query") * model.encode(batch, "gallery")).sum(-1)
    torch.testing.assert_close(explanation.score, expected)
    # Leaving out a side's only modality leaves nothing to compare: not a contribution.
    assert torch.isnan(explanation.contributions["text"]).all()
    assert torch.isnan(explanation.contributions["image"]).all()
    assert not torch.isnan(explanation.contributions["audio"][0])


def test_baselines_are_explained_without_attention(make_model, builder, samples):
    explanation = explain(make_model("mult", heads=2), samples, builder=builder)
    assert explanation.layers == [] and not torch.isnan(explanation.contributions["text"]).any()
    assert any(v.abs().sum() > 0 for v in explanation.node_attributions.values())
    with pytest.raises(ValueError, match="no attention layers"):
        explanation.attention(0, "text", "image")


@pytest.mark.parametrize("call, message", [
    (lambda m, b, s: explain(m, s), "needs the GraphBuilder"),
    (lambda m, b, s: explain(m, [], builder=b), "non-empty list of samples"),
    (lambda m, b, s: explain(m, s[0], builder=b), "non-empty list of samples"),
    (lambda m, b, s: explain(m, s, builder=b, target=7), r"must index the model's 3 outputs"),
    (lambda m, b, s: explain(m, s, builder=b, target=[0, 1]), r"one per sample \(\[3\] integers\)"),
    (lambda m, b, s: explain(m, s, builder=b, target=0.5), "one per sample"),
    (lambda m, b, s: explain("model", s, builder=b), "takes a model"),
    (lambda m, b, s: explain(Pipeline(b, m), s, builder=b), "leave 'builder' out"),
])
def test_bad_calls_are_refused_with_the_fix(make_model, builder, samples, call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(make_model("graph-gat", heads=2), builder, samples)
