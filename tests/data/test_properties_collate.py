"""Properties of collation over random builders and samples (hypothesis): a batch equals
``Batch.from_data_list`` of the samples' graphs (bookkeeping included) or both refuse the samples with
the same documented error; and threads sharing one builder under small caches collate exactly what
one thread does."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st
from properties import builders, outcome, samples
from test_collate import assert_same_batch
from torch_geometric.data import Batch

pytestmark = pytest.mark.usefixtures("one_thread")
# What may refuse a list of valid raw samples: one sample with no modality, or a graph over the edge cap.
REFUSALS = ("has none of the modalities", "over max_edges_per_sample")


def refusal(error):
    return next(reason for reason in REFUSALS if reason in str(error))


@given(data=st.data())
def test_collate_equals_from_data_list(data):
    builder = data.draw(builders(), "builder")
    batch_samples = data.draw(st.lists(samples(builder), min_size=1, max_size=5), "samples")
    graphs = [outcome(builder.build, sample) for sample in batch_samples]
    batch, error = outcome(builder.collate, batch_samples)
    refused = [refusal(graph_error) for _, graph_error in graphs if graph_error is not None]
    if error is not None or refused:
        assert error is not None and refusal(error) in refused, (error, refused)
        return
    reference = Batch.from_data_list([graph for graph, _ in graphs])
    assert_same_batch(batch, reference)
    featurized = builder.collate([builder.featurize(sample) for sample in batch_samples])
    assert_same_batch(featurized, reference)
    for edge_type in batch.edge_types:  # no edge joins two samples
        src, _, dst = edge_type
        edge_index = batch[edge_type].edge_index
        assert (batch[src].batch[edge_index[0]] == batch[dst].batch[edge_index[1]]).all(), edge_type


@given(data=st.data(), threads=st.integers(2, 8), skeletons=st.integers(1, 3))
def test_thread_parallel_collation_equals_serial_under_a_small_cache(data, threads, skeletons):
    """A few distinct samples make batches that often share one shape (the cached-skeleton path) and
    as often do not; the template cache holds at most a few templates, the skeleton cache 1 to 3."""
    builder = data.draw(builders(capped=False, cache_bytes=(0, 64, 512, 2048)), "builder")
    builder.collater.cache_size = skeletons
    pool = data.draw(st.lists(samples(builder, empty=False), min_size=1, max_size=3), "pool")
    pool = [builder.featurize(sample) if index % 2 else sample for index, sample in enumerate(pool)]
    batches = data.draw(st.lists(st.lists(st.sampled_from(pool), min_size=1, max_size=4), min_size=2, max_size=8),
                        "batches") * 2
    serial = [builder.collate(batch) for batch in batches]
    for warm in (False, True):  # threads building every template and skeleton anew, then sharing cached ones
        if not warm:
            builder._templates.clear()
            builder.collater.clear()
        with ThreadPoolExecutor(threads) as executor:
            parallel = list(executor.map(builder.collate, batches))
        for expected, got in zip(serial, parallel, strict=True):
            assert_same_batch(got, expected)
    templates = builder._templates
    assert templates.bytes == sum(templates.size(value) for value in templates._entries.values()) <= templates.max_bytes
    assert len(builder.collater) <= skeletons
