import math

import pytest
import torch
import torch.nn.functional as F

from graphfuse.data import AudioModality, GraphBuilder, ImageModality, PairGraphs
from graphfuse.models import GraphRetrievalModel, create_model
from graphfuse.nn import NodeEncoders, PatchEncoder
from graphfuse.testing import requires_cuda
from graphfuse.train import create_task

SMALL = dict(hidden_channels=8, heads=2, num_layers=1)


def pair_scores(model, builder, query_sets, gallery_sets, pairs):
    """The re-ranker's joint scores of ``pairs`` of (query, gallery) samples."""
    return model.pair_scores(PairGraphs(builder, query_sets, gallery_sets)(pairs, model.query_types,
                                                                           model.gallery_types))


def retrieval(builder, name="graph-gat", seed=0, **kwargs):
    torch.manual_seed(seed)
    return create_model(name, builder=builder, task="retrieval", **{**SMALL, **kwargs})


@pytest.mark.parametrize("name", ["graph-gcn", "graph-gat-knn"])
def test_encode_depends_on_its_side_only(builder, complete_samples, make_batch, edit, name):
    model = retrieval(builder, name).eval()
    batch = make_batch(complete_samples)
    with torch.no_grad():
        query, gallery = model.encode(batch, "query"), model.encode(batch, "gallery")
        assert query.shape == gallery.shape == (4, 8)
        assert torch.allclose(query.norm(dim=-1), torch.ones(4), atol=1e-5)
        assert torch.allclose(gallery.norm(dim=-1), torch.ones(4), atol=1e-5)
        for modality in ("image", "audio"):
            assert torch.equal(model.encode(make_batch(edit(complete_samples, modality)), "query"), query)
        for modality in ("text", "audio"):
            assert torch.equal(model.encode(make_batch(edit(complete_samples, modality)), "gallery"), gallery)
        other_text = model.encode(make_batch(edit(complete_samples, "text")), "query")
        other_image = model.encode(make_batch(edit(complete_samples, "image")), "gallery")
        assert not torch.allclose(other_text, query, atol=1e-4)
        assert not torch.allclose(other_image, gallery, atol=1e-4)
        # a side is encoded on its own subgraph: as if the other modalities were not there
        text_only = make_batch([{"text": s["text"]} for s in complete_samples])
        assert torch.allclose(model.encode(text_only, "query"), query, atol=1e-6)
        # forward gives the same embeddings
        out = model(batch)
        assert set(out) == {"query", "gallery", "logit_scale"}  # no re-ranker loss in evaluation
        assert torch.equal(out["query"], query) and torch.equal(out["gallery"], gallery)
        assert torch.allclose(out["logit_scale"], torch.tensor(1 / 0.07))


def test_encode_no_leakage_and_single_graph(builder, complete_samples, make_batch):
    model = retrieval(builder, gallery=("image", "audio")).eval()
    with torch.no_grad():
        together = model.encode(make_batch(complete_samples), "gallery")
        alone = torch.cat([model.encode(builder.build(s), "gallery") for s in complete_samples])
    assert torch.allclose(together, alone, atol=1e-5)


def test_forward_train_rerank_loss(builder, samples, make_batch):
    model = retrieval(builder, gallery=("image", "audio"), dropout=0.0).train()
    batch = make_batch(samples)  # missing modalities, every sample has text and image or audio
    out = model(batch)
    assert out["query"].shape == out["gallery"].shape == (4, 8)
    assert out["rerank_loss"].dim() == 0 and torch.isfinite(out["rerank_loss"])
    out["rerank_loss"].backward(retain_graph=True)
    for module in (model.pair_readout, model.pair_score):
        for name, p in module.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    # the re-ranker's loss does not train the dual encoder's own readout, projection or temperature
    for module in (model.readout, model.projection, model.temperature):
        assert all(p.grad is None for p in module.parameters())
    model.zero_grad(set_to_none=True)
    loss = create_task(model.task_name, model).loss(out, batch)
    assert torch.isfinite(loss) and loss > out["rerank_loss"]
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert missing == []


def test_rerank_loss_is_cross_entropy_over_hardest_negatives(builder, complete_samples, make_batch):
    model = retrieval(builder, dropout=0.0, rerank_negatives=2).train()
    batch = make_batch(complete_samples)
    out = model(batch)
    sets = batch.node_sets
    similarity = (out["query"] @ out["gallery"].T).detach()
    similarity.fill_diagonal_(float("-inf"))
    pairs = []
    for i in range(4):  # each query: its positive, then its 2 most similar other gallery items
        pairs += [[i, i]] + [[i, int(j)] for j in similarity[i].topk(2).indices]
    for j in range(4):  # each gallery item: its positive, then its 2 most similar other queries
        pairs += [[j, j]] + [[int(i), j] for i in similarity[:, j].topk(2).indices]
    pairs = torch.tensor(pairs)
    scores = pair_scores(model, builder, sets, sets, pairs).view(8, 3).detach()  # the joint scores alone
    target = torch.zeros(4, dtype=torch.long)
    expected = (F.cross_entropy(scores[:4], target) + F.cross_entropy(scores[4:], target)) / 2
    assert torch.allclose(out["rerank_loss"], expected, atol=1e-5)


def test_rerank_loss_of_a_batch_of_one(builder, complete_samples, make_batch):
    model = retrieval(builder).train()
    batch = make_batch(complete_samples[:1])
    assert model(batch)["rerank_loss"] is None  # no negatives


def joint_score(model, batch):
    h_dict, batch_dict, num_samples = model.pair_backbone(batch, ["text", "image"])
    return model.pair_score(model.pair_readout(h_dict, batch_dict, num_samples)).squeeze(-1)


def test_pair_scores_score_the_joint_graph(builder, complete_samples, make_batch, edit):
    model = retrieval(builder).eval()
    sets = make_batch(complete_samples).node_sets
    pairs = torch.tensor([[0, 1], [2, 0], [1, 1], [3, 2]])
    with torch.no_grad():
        scores = pair_scores(model, builder, sets, sets, pairs)
        assert scores.shape == (4,)
        for (i, j), score in zip(pairs.tolist(), scores, strict=True):
            direct = builder.collate([{"text": sets[i]["text"], "image": sets[j]["image"]}])
            assert direct["text", "to", "image"].edge_index.size(1) > 0
            assert torch.allclose(joint_score(model, direct), score, atol=1e-5)
            # the cross-modal edges between the two matter: it is not two separate encodings
            for edge_type in [("text", "to", "image"), ("image", "to", "text")]:
                direct[edge_type].edge_index = direct[edge_type].edge_index[:, :0]
            assert not torch.allclose(joint_score(model, direct), score, atol=1e-4)
        # the query sets give the text, the gallery sets the image; audio is on neither side
        other_text = make_batch(edit(complete_samples, "text")).node_sets
        other_image = make_batch(edit(complete_samples, "image")).node_sets
        other_audio = make_batch(edit(complete_samples, "audio")).node_sets
        assert torch.allclose(pair_scores(model, builder, sets, other_text, pairs), scores, atol=1e-6)
        assert torch.allclose(pair_scores(model, builder, other_image, sets, pairs), scores, atol=1e-6)
        assert torch.allclose(pair_scores(model, builder, other_audio, other_audio, pairs), scores, atol=1e-6)
        assert not torch.allclose(pair_scores(model, builder, other_text, sets, pairs), scores, atol=1e-4)
        assert not torch.allclose(pair_scores(model, builder, sets, other_image, pairs), scores, atol=1e-4)


def rerank_scores(model, builder, query_sets, gallery_sets, pairs, dual):
    """What the re-ranker orders a top-k by: the joint score plus the scaled dual-encoder score."""
    return pair_scores(model, builder, query_sets, gallery_sets, pairs) + model.temperature() * dual


def check_reranked(model, builder, similarity, reranked, sets, k, reverse=False):
    rows, cols = similarity.shape
    top = similarity.topk(k, dim=1).indices
    in_top = torch.zeros(rows, cols, dtype=torch.bool)
    in_top[torch.arange(rows).repeat_interleave(k), top.reshape(-1)] = True
    assert reranked.shape == similarity.shape
    assert torch.equal(reranked[~in_top], similarity[~in_top])
    assert reranked[in_top].min() > reranked[~in_top].max()
    for row in range(rows):
        pairs = torch.stack([top[row], torch.full((k,), row)] if reverse else [torch.full((k,), row), top[row]], 1)
        scores = rerank_scores(model, builder, sets, sets, pairs, similarity[row, top[row]])
        assert torch.equal(reranked[row, top[row]].argsort(descending=True), scores.argsort(descending=True))
        # the lift is one constant: differences of joint scores are kept
        assert torch.allclose(reranked[row, top[row]] - reranked[row, top[row]][0], scores - scores[0], atol=1e-4)


def test_rerank(builder, complete_samples, make_batch):
    model = retrieval(builder, dropout=0.5).train()
    sets = make_batch(complete_samples).node_sets
    similarity = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    reranked = model.rerank(similarity, PairGraphs(builder, sets, sets), k=2)
    assert model.training  # restored
    assert torch.equal(model.rerank(similarity, PairGraphs(builder, sets, sets), k=2), reranked)  # scored in eval mode
    model.eval()
    with torch.no_grad():
        check_reranked(model, builder, similarity, reranked, sets, k=2)
        # rows are gallery items searching the queries
        reverse = model.rerank(similarity.T, PairGraphs(builder, sets, sets), k=3, reverse=True, pair_batch_size=2)
        check_reranked(model, builder, similarity.T, reverse, sets, k=3, reverse=True)
        # k above the number of candidates re-ranks them all
        everything = model.rerank(similarity, PairGraphs(builder, sets, sets), k=10, pair_batch_size=5)
        assert torch.allclose(everything, model.rerank(similarity, PairGraphs(builder, sets, sets), k=4))


def test_rerank_of_rectangular_similarity(builder, complete_samples, make_batch):
    model = retrieval(builder).eval()
    queries = make_batch(complete_samples[:2]).node_sets
    gallery = make_batch(complete_samples).node_sets
    similarity = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reranked = model.rerank(similarity, PairGraphs(builder, queries, gallery), k=2)
        top = similarity.topk(2, dim=1).indices
        for row in range(2):
            pairs = torch.stack([torch.full((2,), row), top[row]], 1)
            scores = rerank_scores(model, builder, queries, gallery, pairs, similarity[row, top[row]])
            assert torch.equal(reranked[row, top[row]].argsort(), scores.argsort())
        reverse = model.rerank(similarity.T, PairGraphs(builder, queries, gallery), k=1, reverse=True)
    top = similarity.T.topk(1, dim=1).indices.flatten()
    assert torch.equal(reverse.argmax(dim=1), top)
    assert torch.equal(reverse.argsort(dim=1), similarity.T.argsort(dim=1))  # with k=1 the order is kept


def test_without_reranker(builder, complete_samples, make_batch):
    model = retrieval(builder, rerank=False).train()
    assert not model.needs_node_sets
    assert not hasattr(model, "pair_readout")
    batch = builder.collate([builder.featurize(s) for s in complete_samples])  # no node_sets needed
    out = model(batch)
    assert set(out) == {"query", "gallery", "logit_scale"}
    assert torch.isfinite(create_task(model.task_name, model).loss(out, batch))
    with pytest.raises(RuntimeError, match="rerank=False"):
        model.pair_scores(make_batch(complete_samples))
    with pytest.raises(RuntimeError, match="rerank=False"):
        model.rerank(torch.randn(4, 4), PairGraphs(builder, []), k=2)


def test_training_batch_without_node_sets(builder, complete_samples):
    model = retrieval(builder).train()
    assert model.needs_node_sets
    batch = builder.collate([builder.featurize(s) for s in complete_samples])
    with pytest.raises(ValueError, match="carry their pair graphs.*keep_samples=True.*rerank=False"):
        model(batch)
    model.eval()
    assert set(model(batch)) == {"query", "gallery", "logit_scale"}


def test_errors(builder, complete_samples, make_batch):
    with pytest.raises(ValueError, match=r"sides must not share node types, both hold \['text'\]"):
        GraphRetrievalModel(builder, query=("text",), gallery=("image", "text"), **SMALL)
    with pytest.raises(ValueError, match=r"'query' must name node types of the builder \['text', 'image', 'audio'\], "
                                         r"got \['video'\]"):
        GraphRetrievalModel(builder, query=("video",), **SMALL)
    with pytest.raises(ValueError, match=r"'gallery' must name node types of the builder.*got \[\]"):
        GraphRetrievalModel(builder, gallery=(), **SMALL)
    with pytest.raises(ValueError, match="'rerank_negatives' must be >= 1"):
        GraphRetrievalModel(builder, rerank_negatives=0, **SMALL)
    with pytest.raises(TypeError, match=r"is built from the GraphSchema of its data \(builder.schema\(\)\) or the "
                                        r"GraphBuilder itself, got dict"):
        GraphRetrievalModel({"text": None}, **SMALL)
    model = retrieval(builder, query="text", gallery="image")  # one node type may be given as a string
    assert model.query_types == ("text",) and model.gallery_types == ("image",)
    with pytest.raises(ValueError, match=r"side must be one of \('query', 'gallery'\), got 'text'"):
        model.encode(make_batch(complete_samples), "text")
    assert repr(model).startswith("GraphRetrievalModel(query=['text'], gallery=['image'], FusionEncoder(")
    assert repr(model).endswith("rerank=True, rerank_conv='hgt')")
    assert repr(retrieval(builder, rerank_conv=None)).endswith("rerank=True)")


def test_builder_without_text(complete_samples):
    builder = GraphBuilder({"image": ImageModality(patch_size=4, channels=3), "audio": AudioModality()}, cross="full")
    with pytest.raises(ValueError, match=r"'query' must name node types of the builder \['image', 'audio'\]"):
        GraphRetrievalModel(builder, **SMALL)
    torch.manual_seed(0)
    model = create_model("graph-hgt", builder=builder, task="retrieval", query=("audio",), gallery=("image",),
                         **SMALL).train()
    samples = [{"image": s["image"], "audio": s["audio"]} for s in complete_samples]
    node_sets = [builder.featurize(s) for s in samples]
    batch = builder.collate(node_sets)
    batch.node_sets, batch.pair_graphs = node_sets, PairGraphs(builder, node_sets)
    out = model(batch)
    assert out["query"].shape == out["gallery"].shape == (4, 8)
    loss = create_task(model.task_name, model).loss(out, batch)
    assert torch.isfinite(out["rerank_loss"]) and torch.isfinite(loss)
    loss.backward()
    model.eval()
    with torch.no_grad():
        similarity = model.encode(batch, "query") @ model.encode(batch, "gallery").T
        reranked = model.rerank(similarity, PairGraphs(builder, node_sets, node_sets), k=2)
        assert torch.equal(reranked.topk(2, dim=1).indices.sort(1).values,
                           similarity.topk(2, dim=1).indices.sort(1).values)
        # the audio of pair (i, j) is sample i's, the image sample j's
        score = pair_scores(model, builder, node_sets, node_sets, torch.tensor([[1, 3]]))
        h_dict, batch_dict, num_samples = model.pair_backbone(
            builder.collate([{"audio": node_sets[1]["audio"], "image": node_sets[3]["image"]}]), ["audio", "image"])
        assert torch.allclose(score, model.pair_score(model.pair_readout(h_dict, batch_dict, num_samples)).squeeze(-1),
                              atol=1e-5)


def test_reranker_shares_the_input_encoders_but_fuses_with_its_own_conv(builder):
    model = retrieval(builder)  # conv="gat" for the dual encoder
    assert model.pair_backbone.encoders["text"] is model.backbone.encoders["text"]
    assert model.pair_backbone.fusion.blocks[0].conv_name == "hgt"
    assert model.pair_backbone.fusion.blocks[0].conv is not model.backbone.fusion.blocks[0].conv
    shared = retrieval(builder, rerank_conv=None)
    assert shared.pair_backbone is None


def test_input_encoders_swapped_through_create_model_serve_both_towers_and_the_reranker(builder):
    encoders = NodeEncoders.from_schema(builder.schema(), SMALL["hidden_channels"])
    encoders["image"] = PatchEncoder(encoders["image"].proj.in_features, SMALL["hidden_channels"])  # a new one
    model = retrieval(builder, encoders=encoders)
    assert model.backbone.encoders["image"] is encoders["image"] is model.pair_backbone.encoders["image"]


def test_a_sample_without_one_side_is_named(builder, complete_samples, make_batch):
    model = retrieval(builder).eval()
    samples = [dict(s) for s in complete_samples]
    samples[2].pop("image")
    with pytest.raises(ValueError, match=r"Samples \[2\] have no nodes of the gallery side \['image'\]"):
        model.encode(make_batch(samples), "gallery")
    assert model.encode(make_batch(samples), "query").shape == (4, 8)


def test_options_of_the_wrong_task_are_refused(builder):
    with pytest.raises(ValueError, match=r"\['temperature'\] only apply to task='retrieval'"):
        create_model("graph-gat", builder=builder, task="classification", num_classes=2, temperature=0.1)
    with pytest.raises(ValueError, match="no virtual nodes"):
        retrieval(builder, fuse="virtual")


def test_retrieval_trains_and_evaluates_with_a_last_batch_of_one(builder, complete_samples):
    from graphfuse.train import Trainer

    data = [builder.featurize(s) for s in complete_samples + complete_samples[:1]]  # 5 samples, batches of 4
    trainer = Trainer(retrieval(builder, rerank=False), builder, epochs=1, batch_size=4, progress=False)
    assert len(trainer.fit(data)) == 1
    assert math.isfinite(trainer.evaluate(data)["loss"])


@requires_cuda
def test_rerank_on_cuda_takes_cpu_similarities(builder, complete_samples, make_batch):
    model = retrieval(builder).to("cuda").eval()
    sets = make_batch(complete_samples).node_sets
    similarity = torch.rand(4, 4)
    assert model.rerank(similarity, PairGraphs(builder, sets, sets), k=2).device == similarity.device
