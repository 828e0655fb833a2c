"""The LRU caches keep their budget and their byte count exact when threads share them, and a builder
whose template cache evicts all the time collates the same batches from 8 threads as from one."""
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from graphfuse.data import GraphBuilder, ImageModality
from graphfuse.data.cache import LRUCache, TemplateCache
from graphfuse.data.modalities.feature_cache import FeatureCache
from graphfuse.testing import assert_same_graph

THREADS = 8


def hammer(cache, operations: int = 5000) -> None:
    """Every thread gets and puts keys that collide with the other threads'."""
    start = threading.Barrier(THREADS)

    def work(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        start.wait()
        for _ in range(operations):
            key = int(torch.randint(12, (), generator=generator))
            if cache.get(key) is None:
                cache.put(key, torch.zeros(key + 1, dtype=torch.long))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(work, range(THREADS)))  # re-raises any thread's error


def test_the_template_cache_keeps_its_budget_and_count_under_threads():
    cache = TemplateCache(max_bytes=8 * 30)  # a few templates: evictions all the time
    hammer(cache)
    assert cache.bytes == sum(cache.size(value) for value in cache._entries.values()) <= cache.max_bytes
    cache.put("big", torch.zeros(100, dtype=torch.long))  # over the budget: not kept
    assert cache.get("big") is None


def test_putting_a_key_again_replaces_it_without_counting_it_twice():
    cache = TemplateCache(max_bytes=1 << 20)
    for _ in range(3):
        cache.put("key", torch.zeros(10, dtype=torch.long))
    assert (len(cache), cache.bytes) == (1, 80)
    items = FeatureCache(2)
    for key in "abca":
        items.put(key, torch.zeros(1))
    assert list(items._entries) == ["c", "a"]
    off = FeatureCache(0)
    off.put("a", torch.zeros(1))
    assert len(off) == 0 and off.get("a") is None


def test_a_pickled_cache_arrives_empty_with_its_budget_and_a_lock():
    cache = TemplateCache(max_bytes=1000)
    cache.put("key", torch.zeros(3))
    copy = pickle.loads(pickle.dumps(cache))
    assert (len(copy), copy.max_bytes, copy.bytes) == (0, 1000, 0)
    copy.put("key", torch.zeros(3))
    assert copy.get("key") is not None
    plain = pickle.loads(pickle.dumps(LRUCache(1)))  # one item: the second put evicts the first
    plain.put("a", 1)
    plain.put("b", 2)
    assert (len(plain), plain.get("a"), plain.get("b")) == (1, None, 2)


def test_thread_parallel_collation_equals_serial_with_a_small_cache():
    builder = GraphBuilder({"image": ImageModality(patch_size=2, channels=1, neighbourhood=8),
                            "other": ImageModality(patch_size=2, channels=1)}, cross="full",
                           template_cache_bytes=4096)  # a few templates: most batches evict
    generator = torch.Generator().manual_seed(0)
    sizes = [(4 + 2 * (i % 5), 4 + 2 * (i % 3)) for i in range(40)]
    samples = [{"image": torch.rand(h, w, generator=generator), "other": torch.rand(w, h, generator=generator)}
               for h, w in sizes]
    batches = [samples[i:i + 4] for i in range(0, len(samples), 4)] * 4
    serial = [builder.collate(batch) for batch in batches]
    with ThreadPoolExecutor(THREADS) as pool:
        parallel = list(pool.map(builder.collate, batches))
    for expected, got in zip(serial, parallel, strict=True):
        assert_same_graph(got, expected)
    templates = builder._templates
    assert templates.bytes == sum(templates.size(value) for value in templates._entries.values()) <= 4096
