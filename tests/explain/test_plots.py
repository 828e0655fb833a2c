import pytest
import torch

from graphfuse.explain import explain

plots = pytest.importorskip("graphfuse.explain.plots", exc_type=ImportError)
pytest.importorskip("matplotlib")


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_picture_of_an_attention_model(make_model, builder, samples, tmp_path):
    explanation = explain(make_model("graph-gat", heads=2), samples, builder=builder)
    written = plots.save_pictures(explanation, 0, tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(["sample0-graph.png", "sample0-contributions.png", "sample0-text-image-heatmap.png",
                            "sample0-text-audio-time.png"])
    assert all(_is_png(p) and p.stat().st_size > 5000 for p in written)


def test_a_sample_lacking_a_modality_draws_what_it_has(make_model, builder, samples, tmp_path):
    explanation = explain(make_model("graph-gat", heads=2), samples, builder=builder)
    written = plots.save_pictures(explanation, 1, tmp_path, prefix="x-")  # sample 1 has no audio
    assert sorted(p.name for p in written) == ["x-sample1-contributions.png", "x-sample1-graph.png",
                                               "x-sample1-text-image-heatmap.png"]


def test_models_without_attention_get_the_graph_and_the_contributions(make_model, builder, samples, tmp_path):
    explanation = explain(make_model("graph-gcn"), samples, builder=builder)
    written = plots.save_pictures(explanation, 0, tmp_path)
    assert sorted(p.name for p in written) == ["sample0-contributions.png", "sample0-graph.png"]
    title = plots.draw_sample_graph(explanation, 0).axes[0].get_title()
    assert "no attention" in title


def test_the_heat_map_puts_each_patchs_weight_at_its_grid_cell(make_model, builder, samples):
    explanation = explain(make_model("graph-gat", heads=2), samples, builder=builder)
    figure = plots.plot_token_patch_heatmap(explanation, 0)
    weights = explanation.attention(0, "text", "image")
    start, end = explanation.node_range(0, "image")
    pos = explanation.graph["image"].pos[start:end]
    panels = [ax for ax in figure.axes if ax.get_images()]
    assert len(panels) == weights.size(0)
    for token, ax in enumerate(panels):
        shown = torch.as_tensor(ax.get_images()[-1].get_array())
        torch.testing.assert_close(shown[pos[:, 0], pos[:, 1]].float(), weights[token])


def test_the_time_strip_draws_each_words_weights_over_the_frames(make_model, builder, samples):
    explanation = explain(make_model("graph-gat", heads=2), samples, builder=builder)
    figure = plots.plot_attention_over_time(explanation, 0)
    weights = explanation.attention(0, "text", "audio")
    strips = figure.axes[1:]
    assert len(strips) == weights.size(0)
    for word, ax in enumerate(strips):
        heights = torch.as_tensor(ax.patches[0].get_data().values).float()
        torch.testing.assert_close(heights, weights[word])


def test_pictures_that_need_grid_or_time_say_so(make_model, builder, samples):
    explanation = explain(make_model("graph-gat", heads=2), samples, builder=builder)
    with pytest.raises(ValueError, match="grid positions"):
        plots.plot_token_patch_heatmap(explanation, 0, key="audio")
    with pytest.raises(ValueError, match="timed 'image' nodes"):
        plots.plot_attention_over_time(explanation, 0, key="image")
