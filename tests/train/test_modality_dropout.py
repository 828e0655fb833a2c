import itertools
from collections import Counter

import pytest
import torch

from graphfuse.checks import check_probability
from graphfuse.datasets import synthetic_samples
from graphfuse.testing import assert_same_graph, tri_modal_builder
from graphfuse.train.data import EpochSampler, GraphCollate, IndexedDataset
from graphfuse.train.modality_dropout import ModalityDropout

MODALITIES = ("text", "image", "audio")

pytestmark = pytest.mark.usefixtures("one_thread")


def sample(*modalities, **extra):
    """A stand-in sample: any values do, ModalityDropout only looks at the keys."""
    return {**{m: f"{m}-nodes" for m in modalities}, **extra}


def draws(dropout, item, n, generator=None, keep_one_of=None):
    return [frozenset(dropout(item, generator, keep_one_of)) for _ in range(n)]


def test_zero_probability_returns_the_same_object():
    dropout = ModalityDropout(0.0, MODALITIES)
    item = sample(*MODALITIES)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert all(dropout(item) is item for _ in range(50))
    assert torch.equal(torch.get_rng_state(), state)  # p=0 draws nothing


@pytest.mark.parametrize("item", [sample("text"), sample("image", label=3), sample("text", image=None, audio=None)])
def test_one_modality_is_never_touched(item):
    dropout = ModalityDropout(0.99, MODALITIES)
    torch.manual_seed(0)
    assert all(dropout(item) is item for _ in range(200))


@pytest.mark.parametrize("modalities", [MODALITIES[:2], MODALITIES])
def test_never_drops_every_modality(modalities):
    dropout = ModalityDropout(0.99, MODALITIES)
    item = sample(*modalities)
    torch.manual_seed(0)
    kept = draws(dropout, item, 1000)
    assert all(keys and keys <= set(modalities) for keys in kept)
    assert sum(keys != set(modalities) for keys in kept) > 900  # it does drop
    assert set(item) == set(modalities)  # the input sample is not modified


def test_none_valued_modality_counts_as_absent():
    dropout = ModalityDropout(0.99, MODALITIES)
    item = sample("text", "image", audio=None)
    torch.manual_seed(0)
    for _ in range(200):
        out = dropout(item)
        assert {"text", "image"} & set(out)  # one of the two real modalities always stays


def test_keys_that_are_not_modalities_are_kept():
    dropout = ModalityDropout(0.99, MODALITIES)
    item = sample(*MODALITIES, label=7, meta={"id": 3})
    torch.manual_seed(0)
    for _ in range(300):
        out = dropout(item)
        assert out["label"] == 7 and out["meta"] is item["meta"]
        assert all(out[key] is item[key] for key in out)  # kept values are the same objects


def test_draws_repeat_under_a_fixed_seed():
    dropout = ModalityDropout(0.5, MODALITIES)
    item = sample(*MODALITIES)
    torch.manual_seed(1)
    first = draws(dropout, item, 100)
    torch.manual_seed(1)
    assert draws(dropout, item, 100) == first
    torch.manual_seed(2)
    assert draws(dropout, item, 100) != first
    assert len(set(first)) > 1


def test_draws_come_from_the_generator():
    dropout = ModalityDropout(0.5, MODALITIES)
    item = sample(*MODALITIES)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = draws(dropout, item, 100, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is not drawn from
    assert draws(dropout, item, 100, torch.Generator().manual_seed(1)) == first
    assert draws(dropout, item, 100, torch.Generator().manual_seed(2)) != first
    assert len(set(first)) > 1  # one generator advances from call to call
    torch.manual_seed(1)
    assert draws(dropout, item, 100) == first  # the same stream as the global generator under the same seed


def test_generator_is_left_alone_when_nothing_can_be_dropped():
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    for dropout, item in ((ModalityDropout(0.0, MODALITIES), sample(*MODALITIES)),
                          (ModalityDropout(0.9, MODALITIES), sample("text", label=1))):
        assert dropout(item, generator) is item
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("p", [0.15, 0.5])
@pytest.mark.parametrize("modalities", [MODALITIES[:2], MODALITIES])
def test_each_modality_is_dropped_with_probability_p_never_all(p, modalities):
    dropout = ModalityDropout(p, MODALITIES)
    item = sample(*modalities)
    torch.manual_seed(0)
    kept = draws(dropout, item, 6000)
    n = len(modalities)
    # Independent drops conditioned on one modality staying: P(m dropped) = (p - p^n) / (1 - p^n).
    expected = (p - p ** n) / (1 - p ** n)
    for modality in modalities:
        share = sum(modality not in keys for keys in kept) / len(kept)
        assert abs(share - expected) < 0.03, (modality, share, expected)  # binomial std is below 0.007
    incomplete = sum(keys != set(modalities) for keys in kept) / len(kept)
    assert abs(incomplete - (1 - (1 - p) ** n - p ** n) / (1 - p ** n)) < 0.03


def test_kept_subsets_follow_independent_drops():
    # At p = 0.5 every kept subset, all three included, is equally likely: 1 / 7 each.
    item = sample(*MODALITIES)
    torch.manual_seed(0)
    counts = Counter(draws(ModalityDropout(0.5, MODALITIES), item, 7000))
    subsets = {frozenset(c) for r in (1, 2, 3) for c in itertools.combinations(MODALITIES, r)}
    assert set(counts) == subsets
    assert all(abs(n - 1000) < 150 for n in counts.values()), counts
    # At p = 0.15 losing one modality is (1 - p) / p = 5.7 times as likely as losing two.
    counts = Counter(len(keys) for keys in draws(ModalityDropout(0.15, MODALITIES), item, 8000))
    assert 4.0 < counts[2] / counts[1] < 8.0, counts


def test_keep_one_of_is_never_all_dropped_and_the_others_drop_at_p():
    dropout = ModalityDropout(0.5, MODALITIES)
    item = sample(*MODALITIES)
    torch.manual_seed(0)
    kept = draws(dropout, item, 4000, keep_one_of=("image",))
    assert all("image" in keys for keys in kept)
    for modality in ("text", "audio"):  # independent of the anchor, so exactly p
        assert abs(sum(modality not in keys for keys in kept) / len(kept) - 0.5) < 0.03
    # two anchors: one of them at least stays, each is dropped (p - p^2) / (1 - p^2) of the time
    kept = draws(dropout, item, 4000, keep_one_of=("image", "audio"))
    assert all(keys & {"image", "audio"} for keys in kept)
    assert abs(sum("audio" not in keys for keys in kept) / len(kept) - (0.5 - 0.25) / (1 - 0.25)) < 0.03


def test_keep_one_of_every_modality_is_the_default():
    dropout = ModalityDropout(0.3, MODALITIES)
    torch.manual_seed(0)
    default = draws(dropout, sample(*MODALITIES), 300)
    torch.manual_seed(0)
    assert draws(dropout, sample(*MODALITIES), 300, keep_one_of=MODALITIES) == default


def test_a_sample_with_nothing_to_keep_loses_nothing():
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    item = sample("text", "image")
    for keep_one_of in ((), ("audio",)):
        assert ModalityDropout(0.9, MODALITIES)(item, generator, keep_one_of) is item
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1, 1.5, True, "0.1", None, float("nan")])
def test_bad_probability(p):
    with pytest.raises(ValueError, match=r"ModalityDropout 'p' is a probability in \[0, 1\)"):
        ModalityDropout(p, MODALITIES)


def test_check_probability():
    assert check_probability(0, "x") == 0.0 and isinstance(check_probability(0, "x"), float)
    assert check_probability(0.25, "x") == 0.25
    with pytest.raises(ValueError, match=r"Thing 'q' is a probability.*got 2"):
        check_probability(2, "Thing 'q'")


def test_repr():
    assert repr(ModalityDropout(0.3, {"text": 1, "image": 2})) == (
        "ModalityDropout(p=0.3, modalities=['text', 'image'])")


# GraphCollate ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def builder():
    return tri_modal_builder()


@pytest.fixture(scope="module")
def items(builder):
    """``(index, (node sets, label))`` of six featurised samples; sample 1 has no audio."""
    raw = synthetic_samples(6, tokens=3, grid=2, frames=3)
    raw[1].pop("audio")
    return [(i, (builder.featurize(s), i % 2)) for i, s in enumerate(raw)]


def nodes_per_sample(batch, node_type):
    if node_type not in batch.node_types or batch[node_type].num_nodes == 0:
        return [0] * batch.num_graphs
    return torch.bincount(batch[node_type].batch, minlength=batch.num_graphs).tolist()


def test_collate_without_dropout_equals_builder_collate(builder, items):
    batch = GraphCollate(builder)(items)
    assert_same_graph(batch, builder.collate([nodes for _, (nodes, _) in items]))
    assert batch.sample_index.tolist() == list(range(6)) and batch.y.tolist() == [0, 1, 0, 1, 0, 1]


def kept_modalities(batch):
    """{dataset index: frozenset of the modalities it kept} of a batch collated with keep_samples=True."""
    return {int(i): frozenset(t for t in MODALITIES if t in nodes)
            for i, nodes in zip(batch.sample_index, batch.node_sets, strict=True)}


def test_collate_drops_modalities_of_featurised_samples(builder, items):
    collate = GraphCollate(builder, keep_samples=True, modality_dropout=0.9)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    batch = collate(items)
    assert torch.equal(torch.get_rng_state(), state)  # each sample draws from its own generator
    assert_same_graph(batch, builder.collate(batch.node_sets))  # the graph of the dropped-out node sets
    assert batch.y.tolist() == [0, 1, 0, 1, 0, 1] and batch.sample_index.tolist() == list(range(6))

    counts = {t: nodes_per_sample(batch, t) for t in MODALITIES}
    full = {t: [nodes[t].num_nodes if t in nodes else 0 for _, (nodes, _) in items] for t in MODALITIES}
    lost = 0
    for b, (_, (nodes, _)) in enumerate(items):
        kept = [t for t in MODALITIES if counts[t][b]]
        assert kept  # never every modality
        assert all(counts[t][b] == full[t][b] for t in kept)  # a modality stays whole or goes
        assert set(batch.node_sets[b]) == set(kept)
        assert all(batch.node_sets[b][t] is nodes[t] for t in kept)  # the featurised node sets themselves
        lost += len(kept) < sum(full[t][b] > 0 for t in MODALITIES)
    assert lost > 0
    assert all(set(nodes) == ({"text", "image"} if i == 1 else set(MODALITIES)) for i, (nodes, _) in items)
    assert kept_modalities(collate(items)) == kept_modalities(batch)  # the same drop-out on every call


def test_collate_dropout_depends_on_seed_epoch_and_index_only(builder, items):
    """What a sample loses depends on (seed, epoch, index): not on the batch it is in, its place there, the
    other samples, or how many batches came before."""
    collate = GraphCollate(builder, keep_samples=True, modality_dropout=0.9)
    for epoch in (0, 3):
        keyed = [((i, epoch, None), item) for i, item in items]
        whole = kept_modalities(collate(keyed))
        assert kept_modalities(collate(keyed[::-1])) == whole
        assert kept_modalities(collate([keyed[4], keyed[1]])) == {i: whole[i] for i in (4, 1)}
        for key_item in keyed:
            assert kept_modalities(collate([key_item])) == {key_item[0][0]: whole[key_item[0][0]]}
    plain = kept_modalities(collate(items))
    assert kept_modalities(collate([((i, 0, None), item) for i, item in items])) == plain  # an int key is epoch 0

    # the index, not the sample's content, picks the draw: one sample under many indices
    nodes = items[0][1]
    many = kept_modalities(collate([(i, nodes) for i in range(40)]))
    assert len(set(many.values())) >= 4
    assert many[5] == kept_modalities(collate([(5, items[5][1])]))[5]  # same (seed, epoch, index), other sample


def test_collate_dropout_differs_between_epochs_and_seeds(builder, items):
    def outcome(seed, epoch):
        collate = GraphCollate(builder, keep_samples=True, modality_dropout=0.9, seed=seed)
        return kept_modalities(collate([((i, epoch, None), item) for i, item in items]))

    by_epoch = [outcome(0, epoch) for epoch in range(4)]
    assert all(a != b for a, b in itertools.combinations(by_epoch, 2))
    assert outcome(1, 0) != by_epoch[0] and outcome(1, 0) == outcome(1, 0)


def test_collate_drops_each_modality_with_probability_p(builder, items):
    """The (seed, epoch, index) generators drop each modality as often as p says, over indices and epochs."""
    collate = GraphCollate(builder, keep_samples=True, modality_dropout=0.4)
    nodes = items[0][1]
    batches = [collate([((i, epoch, None), nodes) for i in range(100)]) for epoch in range(3)]
    kept = [k for batch in batches for k in kept_modalities(batch).values()]
    expected = (0.4 - 0.4 ** 3) / (1 - 0.4 ** 3)  # independent drops, one modality at least kept
    for modality in MODALITIES:
        assert abs(sum(modality not in k for k in kept) / 300 - expected) < 0.1  # binomial std is below 0.03


def test_collate_keeps_one_of_the_modalities_its_key_names(builder, items):
    collate = GraphCollate(builder, keep_samples=True, modality_dropout=0.9)
    nodes = items[0][1]
    kept = kept_modalities(collate([((i, 0, ("image",)), nodes) for i in range(60)])).values()
    assert all("image" in k for k in kept) and any(k == {"image"} for k in kept)
    untouched = kept_modalities(collate([((i, 0, ()), nodes) for i in range(20)])).values()
    assert all(k == set(MODALITIES) for k in untouched)


def test_collate_without_dropout_ignores_the_epoch(builder, items):
    batch = GraphCollate(builder, modality_dropout=0.0)([((i, 7, None), item) for i, item in items])
    assert_same_graph(batch, builder.collate([nodes for _, (nodes, _) in items]))
    assert batch.sample_index.tolist() == list(range(6))


# IndexedDataset and EpochSampler -----------------------------------------------------------------
def test_indexed_dataset_returns_the_key_and_the_item():
    data = [{"text": f"sample {i}"} for i in range(5)]
    dataset = IndexedDataset(data)
    assert len(dataset) == 5
    key, item = dataset[3]
    assert key == 3 and item is data[3]
    key, item = dataset[(2, 7, ("text",))]
    assert key == (2, 7, ("text",)) and item is data[2]
    assert dataset[(4, 0, None)][1] is data[4] and dataset[-1][1] is data[4]
    with pytest.raises(TypeError, match="The validation data must be a sequence"):
        IndexedDataset(iter(data), role="validation")
    with pytest.raises(ValueError, match="The training data is empty"):
        IndexedDataset([])


def test_epoch_sampler_tags_indices_with_the_epoch_and_the_modalities_to_keep():
    sampler = EpochSampler(torch.utils.data.SequentialSampler(range(4)))
    assert len(sampler) == 4
    assert list(sampler) == [(0, 0, None), (1, 0, None), (2, 0, None), (3, 0, None)]
    sampler.set_epoch(2)  # SequentialSampler has no set_epoch: only the tag changes
    sampler.keep_one_of = ("image",)
    assert list(sampler) == [(i, 2, ("image",)) for i in range(4)]


def test_epoch_sampler_passes_set_epoch_to_a_distributed_sampler():
    def distributed():
        return torch.utils.data.DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=True, seed=0)

    sampler = EpochSampler(distributed())
    assert len(sampler) == 5
    orders = []
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch)
        assert sampler.sampler.epoch == epoch
        reference = distributed()
        reference.set_epoch(epoch)
        pairs = list(sampler)
        assert pairs == [(index, epoch, None) for index in reference]
        orders.append([index for index, _, _ in pairs])
    assert all(a != b for a, b in itertools.combinations(orders, 2))  # the shuffle follows the epoch


def test_dataloader_dropout_does_not_depend_on_the_batch_size(builder, items):
    """Through a DataLoader with an EpochSampler: the same samples lose the same modalities in batches of 2
    and of 4, and other ones in the next epoch."""
    dataset = IndexedDataset([item for _, item in items])
    collate = GraphCollate(builder, keep_samples=True, modality_dropout=0.9)

    def epoch_outcome(batch_size, epoch):
        sampler = EpochSampler(torch.utils.data.RandomSampler(dataset, generator=torch.Generator().manual_seed(
            batch_size)))
        sampler.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
        outcome = {}
        for batch in loader:
            outcome.update(kept_modalities(batch))
        assert sorted(outcome) == list(range(6))
        return outcome

    first = epoch_outcome(2, 0)
    assert epoch_outcome(4, 0) == first
    assert epoch_outcome(2, 1) == epoch_outcome(4, 1) != first


def test_collate_bad_probability(builder):
    with pytest.raises(ValueError, match="ModalityDropout 'p'"):
        GraphCollate(builder, modality_dropout=1.0)
