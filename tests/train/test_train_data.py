import torch

from graphfuse import GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.train import GraphCollate, featurize_dataset


def test_featurize_dataset_and_the_trainers_batches_drop_extra_keys_by_the_builders_rule():
    modalities = {"text": TextModality(Tokenizer(["a", "cat"])), "image": ImageModality(patch_size=4, channels=1)}
    builder = GraphBuilder(modalities, extra_keys=("id",))
    samples = [{"text": "a cat", "image": torch.rand(8, 8), "id": i} for i in range(3)]
    items = [(sample, i % 2) for i, sample in enumerate(samples)]
    featurized = featurize_dataset(builder, items, progress=False)
    assert [nodes.keys() for nodes, _ in featurized] == [{"text", "image"}] * 3
    batch = GraphCollate(builder)(list(enumerate(items)))
    plain = [{k: v for k, v in sample.items() if k != "id"} for sample in samples]
    expected = GraphBuilder(modalities).collate(plain)
    for node_type in ("text", "image"):
        assert torch.equal(batch[node_type].x, expected[node_type].x)
    assert batch.y.tolist() == [0, 1, 0] and batch.sample_index.tolist() == [0, 1, 2]
