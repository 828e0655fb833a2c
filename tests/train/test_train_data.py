import numpy
import pytest
import torch
from torch.utils.data import DataLoader

from graphfuse import GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.train import Callback, GraphCollate, IndexedDataset, Trainer, featurize_dataset


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


def load_in_worker(path):
    """numpy.load, refusing to run outside a DataLoader worker."""
    import numpy

    if torch.utils.data.get_worker_info() is None:
        raise AssertionError(f"{path} was loaded in the main process")
    return numpy.load(path)


def test_raw_files_featurise_in_the_trainers_workers_and_train_as_featurised_data(make_model, colour_builder,
                                                                                  tmp_path):
    import numpy

    from graphfuse.data import RawDataset
    from graphfuse.train import Trainer

    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(3, (16,), generator=generator).tolist()
    samples = [{"text": f"the {('red', 'blue', 'green')[label]} shape", "image": torch.rand(8, 8, generator=generator)}
               for label in labels]
    items = []
    for index, sample in enumerate(samples):
        numpy.save(tmp_path / f"{index}.npy", sample["image"].numpy())
        items.append(({"text": sample["text"], "image": tmp_path / f"{index}.npy"}, labels[index]))
    raw = RawDataset(items, colour_builder, load=load_in_worker)
    options = dict(epochs=1, batch_size=8, lr=1e-2, progress=False)
    # Without dropout: a loader with workers draws from torch's generator at other times than one without.
    history = Trainer(make_model(seed=0, dropout=0.0), colour_builder, num_workers=2, **options).fit(raw, raw)
    in_memory = list(zip(samples, labels, strict=True))
    expected = Trainer(make_model(seed=0, dropout=0.0), colour_builder, **options).fit(in_memory, in_memory)
    assert history[0]["train_loss"] == pytest.approx(expected[0]["train_loss"], rel=1e-6)
    assert history[0]["val_accuracy"] == expected[0]["val_accuracy"]


def test_the_trainers_collate_featurises_a_batch_of_raw_samples_together():
    """GraphCollate, the collate_fn of the Trainer's DataLoader (run in its workers), featurises a batch's
    raw samples in one GraphBuilder.featurize_many call (each modality's inputs together)."""
    modalities = {"text": TextModality(Tokenizer(["a", "cat"])), "image": ImageModality(patch_size=4, channels=1)}
    builder = GraphBuilder(modalities)
    calls = []
    featurize_many = builder.featurize_many
    builder.featurize_many = lambda samples: calls.append(len(samples)) or featurize_many(samples)
    samples = [{"text": " ".join(["a cat"] * (i + 1)), "image": torch.rand(8, 4 * (i + 1))} for i in range(4)]
    samples[2].pop("image")
    batch = GraphCollate(builder)([(i, (sample, 0)) for i, sample in enumerate(samples)])
    assert calls == [4]
    expected = GraphBuilder(modalities).collate([builder.featurize(sample) for sample in samples])
    for node_type in ("text", "image"):
        assert torch.equal(batch[node_type].x, expected[node_type].x)


def test_graph_collate_as_a_plain_collate_fn_says_to_wrap_the_dataset():
    modalities = {"text": TextModality(Tokenizer(["a", "cat"])), "image": ImageModality(patch_size=4, channels=1)}
    builder = GraphBuilder(modalities)
    samples = [{"text": "a cat", "image": torch.rand(8, 8)} for _ in range(4)]
    pairs = [(sample, i % 2) for i, sample in enumerate(samples)]
    for data, received in ((pairs, r"a \(sample, target\) pair"),
                           (samples, r"a sample \(a mapping from modality to input\)"),
                           ([1, 2], "an item of type int")):
        loader = DataLoader(data, batch_size=2, collate_fn=GraphCollate(builder))
        with pytest.raises(TypeError, match=rf"GraphCollate takes the \(index, item\) pairs of "
                                            rf"graphfuse.train.IndexedDataset, got {received}; wrap the dataset, "
                                            rf"DataLoader\(IndexedDataset\(data\), .*collate_fn=builder.collate"):
            next(iter(loader))

    # What the message suggests works: the wrapped dataset, and builder.collate for samples alone.
    batch = next(iter(DataLoader(IndexedDataset(pairs), batch_size=2, collate_fn=GraphCollate(builder))))
    assert batch.y.tolist() == [0, 1] and batch.sample_index.tolist() == [0, 1]
    plain = next(iter(DataLoader(samples, batch_size=2, collate_fn=builder.collate)))
    assert torch.equal(plain["text"].x, batch["text"].x)
    # Indices from a sampler of numpy or tensor integers are keys too.
    keyed = GraphCollate(builder)([(numpy.int64(0), pairs[0]), (torch.tensor(1), pairs[1])])
    assert keyed.sample_index.tolist() == [0, 1]


class CountBatches(Callback):
    def __init__(self):
        self.batches = 0

    def on_batch_end(self, trainer, step, loss):
        self.batches += 1


def test_fit_refuses_a_dict_of_items_before_training(make_model, colour_builder, small):
    train, val = small
    counter = CountBatches()
    trainer = Trainer(make_model(), colour_builder, epochs=1, batch_size=8, progress=False, callbacks=[counter])
    with pytest.raises(TypeError, match=r"The training data must be a sequence \(a list or a torch Dataset\) of "
                                        r"samples or \(sample, target\) pairs, got a dict; pass a list of its items"):
        trainer.fit({"a": train[0]})
    with pytest.raises(TypeError, match="The validation data must be a sequence .* got a dict"):
        trainer.fit(train, {f"sample {i}": item for i, item in enumerate(val)})
    assert counter.batches == 0  # refused before the first epoch, not at its end
    assert len(trainer.fit(train, val)) == 1 and counter.batches == 3
    assert len(trainer.fit(dict(enumerate(train)), val)) == 1  # a mapping read by position, as a Dataset is
