"""The feature cache on a store built by real extraction: the store's bytes, read once, one copy for every worker."""
from __future__ import annotations

import re
import shutil

import pytest
import torch

from astar.extract import open_store
from astar.extract.store.ids import video_key
from astar.extract.store.reader import DamagedVideoError
from astar.train.data.feature_cache import FeatureCache, cache_bytes
from astar.train.data.loader import BucketBatchSampler, CaptionBatches, FeatureReader, make_loader
from astar.train.model.batch import CaptionBatch
from astar.train.model.config import ModelConfig

SMALL = ModelConfig.small(vocab_size=10, pad_id=0, eos_id=2)
CPU = torch.device("cpu")


def assert_same_batches(ours: list[CaptionBatch], theirs: list[CaptionBatch]) -> None:
    assert len(ours) == len(theirs) > 0
    for one, two in zip(ours, theirs):
        assert one.video_ids == two.video_ids
        assert torch.equal(one.caption_videos.cpu(), two.caption_videos.cpu()) and torch.equal(one.tokens, two.tokens)
        assert one.videos.features.keys() == two.videos.features.keys()
        for name in one.videos.features:
            assert torch.equal(one.videos.features[name].cpu(), two.videos.features[name].cpu()), name
        assert torch.equal(one.videos.fc7.cpu(), two.videos.fc7.cpu())
        assert torch.equal(one.videos.top_steps.cpu(), two.videos.top_steps.cpu())


def epochs_of(pairs: CaptionBatches, epochs: int = 2, **loader: object) -> list[CaptionBatch]:
    sampler = BucketBatchSampler(pairs.lengths, batch_size=4, seed=7)
    batches = make_loader(pairs, sampler, persistent=True, **loader)
    seen = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        seen += list(batches)
    return seen


def pairs_of(features, store) -> CaptionBatches:
    ids = [video_id for video_id in store.video_ids for _ in range(3)]
    return CaptionBatches(features, ids, [[5 + index % 4, 2] for index in range(len(ids))])


@pytest.mark.parametrize("config", [SMALL, ModelConfig(vocab_size=10)], ids=["small", "paper"])
def test_the_cache_holds_exactly_what_the_reader_gives_and_its_size_is_known_before_reading(store, config):
    reader = FeatureReader(store, config)
    cache = FeatureCache.build(reader, store.video_ids, CPU)
    assert cache.nbytes == cache_bytes(reader, store.video_ids)
    for video_id in store.video_ids:
        (cached, cached_fc7), (read, read_fc7) = cache.read(video_id), reader.read(video_id)
        assert cached.keys() == read.keys() == set(config.layers)
        assert all(torch.equal(cached[name], read[name]) for name in read) and torch.equal(cached_fc7, read_fc7)
        assert cache.top_steps(video_id) == reader.top_steps(video_id)


def test_filling_reads_each_chunk_once_and_batches_then_read_nothing(logged_store):
    store, log = logged_store
    log.keys.clear()
    cache = FeatureCache.build(FeatureReader(store, SMALL), [*store.video_ids, *store.video_ids], CPU, threads=4)
    chunks = [key for key in log.keys if "/c/" in key]
    assert len(chunks) == len(set(chunks))
    assert {re.match(r"videos/([^/]+)/", key).group(1) for key in chunks} == {video_key(v) for v in store.video_ids}
    log.keys.clear()
    epochs_of(pairs_of(cache, store), workers=0)
    assert log.keys == []


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_from_the_cache_are_the_streamed_batches(store, workers):
    reader = FeatureReader(store, SMALL)
    streamed = epochs_of(pairs_of(reader, store), workers=workers)
    cached = epochs_of(pairs_of(FeatureCache.build(reader, store.video_ids, CPU), store), workers=workers)
    assert_same_batches(cached, streamed)


def test_loader_workers_map_the_one_cache_in_shared_memory_not_copies_of_it(store):
    cache = FeatureCache.build(FeatureReader(store, SMALL), store.video_ids, CPU)
    assert all(values.is_shared() for values in (*cache.layers.values(), cache.fc7))
    pairs = pairs_of(cache, store)
    sampler = BucketBatchSampler(pairs.lengths, batch_size=4, seed=7)
    batches = make_loader(pairs, sampler, workers=2, persistent=True)
    list(batches)  # the workers are running, each with the cache as it was when they started
    marked = store.video_ids[0]
    cache.fc7[cache.rows[marked]] = 1234.0  # written here, after they started
    sampler.set_epoch(1)
    rows = [batch.videos.fc7[list(dict.fromkeys(batch.video_ids)).index(marked)]
            for batch in batches if marked in batch.video_ids]
    assert len(rows) > 0 and all(bool((row == 1234.0).all()) for row in rows)


def test_a_damaged_chunk_stops_the_fill_with_one_line_naming_video_and_array(synthetic_store, tmp_path):
    copy = shutil.copytree(synthetic_store.store, tmp_path / "feats.zarr")
    store = open_store(str(copy))
    video_id = store.video_ids[-1]
    chunk = next(path for path in (copy / "videos" / video_key(video_id) / "pool5" / "c").rglob("*") if path.is_file())
    chunk.unlink()
    with pytest.raises(DamagedVideoError, match=f"{video_id}.*pool5: damaged \\(a chunk is missing\\)") as raised:
        FeatureCache.build(FeatureReader(store, SMALL), store.video_ids, CPU)
    assert "\n" not in str(raised.value)


@pytest.mark.gpu
def test_a_cache_on_the_gpu_gathers_the_host_batches_there_in_this_process(store):
    reader = FeatureReader(store, SMALL)
    cuda = torch.device("cuda")
    on_gpu = CaptionBatches(FeatureCache.build(reader, store.video_ids, cuda), store.video_ids, [[5, 2]] * len(store))
    loader = make_loader(on_gpu, BucketBatchSampler(on_gpu.lengths, batch_size=4, seed=7), workers=2, target=cuda)
    assert loader.num_workers == 0 and not loader.pin_memory
    batches = list(loader)
    assert all(batch.videos.fc7.device.type == "cuda" for batch in batches)
    on_host = CaptionBatches(FeatureCache.build(reader, store.video_ids, CPU), store.video_ids, [[5, 2]] * len(store))
    assert_same_batches(batches, list(make_loader(on_host, BucketBatchSampler(on_host.lengths, batch_size=4, seed=7), 0)))


@pytest.mark.gpu
def test_batches_for_a_cuda_model_arrive_pinned_and_move_without_waiting(store):
    pairs = pairs_of(FeatureCache.build(FeatureReader(store, SMALL), store.video_ids, CPU), store)
    batch = next(iter(make_loader(pairs, BucketBatchSampler(pairs.lengths, batch_size=4), 1, target=torch.device("cuda"))))
    assert batch.videos.fc7.is_pinned() and batch.tokens.is_pinned()
    moved = batch.to("cuda")
    torch.cuda.synchronize()
    assert torch.equal(moved.videos.fc7.cpu(), batch.videos.fc7)
