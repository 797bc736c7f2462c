"""The lazy loader on a store built by real extraction: laziness, bucketing, narrowing, padding, workers."""
from __future__ import annotations

import re
import uuid

import fsspec

import numpy as np
import pytest
import torch

from astar.extract import open_store
from astar.extract.store.ids import video_key
from astar.train.data.loader import BucketBatchSampler, CaptionBatches, FeatureReader, make_loader, padding_fraction
from astar.train.model.config import C3D_FC7_DIM, C3D_LAYER_CHANNELS, ModelConfig

SMALL = ModelConfig.small(vocab_size=10, pad_id=0, eos_id=2)


def test_reading_one_batch_touches_only_its_videos(logged_store):
    store, log = logged_store
    videos = CaptionBatches(FeatureReader(store, SMALL), store.video_ids)
    chosen = [1, 4]
    log.keys.clear()
    batch = videos[chosen]
    touched = {match.group(1) for key in log.keys if (match := re.match(r"videos/([^/]+)/", key))}
    assert touched == {video_key(store.video_ids[index]) for index in chosen}
    assert any("/c/" in key for key in log.keys)  # chunk data was read, not only metadata
    assert batch.video_ids == [store.video_ids[index] for index in chosen]


def test_a_video_read_again_comes_from_memory_and_the_cache_keeps_to_its_budget(logged_store):
    store, log = logged_store
    reader = FeatureReader(store, SMALL)
    by_length: dict[int, list[str]] = {}
    for video_id in store.video_ids:
        by_length.setdefault(store.info(video_id)["padded_frames"], []).append(video_id)
    first, second, third = next(ids for ids in by_length.values() if len(ids) >= 3)[:3]  # equal sizes
    reader.read(first)
    log.keys.clear()
    layers, fc7 = reader.read(first)
    assert log.keys == [] and fc7.shape == (SMALL.fc7_dim,)
    one_video = sum(array.nbytes for array in layers.values()) + fc7.nbytes
    small = FeatureReader(store, SMALL, cache_bytes=2 * one_video)
    for video_id in (first, second, first, third):  # third pushes out second, the least recently used
        small.read(video_id)
    log.keys.clear()
    small.read(first)
    assert log.keys == []
    small.read(second)
    assert any(f"videos/{video_key(second)}/" in key for key in log.keys)


def test_a_batch_reads_each_of_its_videos_once(logged_store):
    store, log = logged_store
    video_id = store.video_ids[0]
    pairs = CaptionBatches(FeatureReader(store, SMALL), [video_id] * 3, [[5, 2], [6, 7, 2], [2]])
    log.keys.clear()
    batch = pairs[[0, 1, 2]]
    assert batch.videos.batch_size == 1 and batch.caption_videos.tolist() == [0, 0, 0]
    chunk_reads = [key for key in log.keys if key.startswith(f"videos/{video_key(video_id)}/pool5/c/")]
    assert len(chunk_reads) == len(set(chunk_reads)) > 0


def test_a_narrow_model_reads_the_leading_channels_of_each_layer(store):
    video_id = store.video_ids[0]
    layers, fc7 = FeatureReader(store, SMALL).read(video_id)
    for name in SMALL.layers:
        np.testing.assert_array_equal(layers[name], store.read(video_id, name)[..., : SMALL.channels(name)])
    np.testing.assert_array_equal(fc7, store.read(video_id, "fc7")[: SMALL.fc7_dim])


def test_the_paper_model_reads_every_channel(store):
    paper = ModelConfig(vocab_size=10, layers=("pool5",), variant="single")
    layers, fc7 = FeatureReader(store, paper).read(store.video_ids[0])
    assert layers["pool5"].shape[-1] == C3D_LAYER_CHANNELS[-1]
    assert fc7.shape == (C3D_FC7_DIM,)


def test_the_fc7_baseline_reads_no_feature_maps(store):
    layers, _ = FeatureReader(store, ModelConfig.small(10, variant="fc7")).read(store.video_ids[0])
    assert layers == {}


def test_a_model_wider_than_the_store_is_refused(store):
    wide = ModelConfig(vocab_size=10, layer_channels=(256, 256, 512, 512))
    with pytest.raises(ValueError, match="reads 256 pool2 channels but the store holds 128"):
        FeatureReader(store, wide).check_widths(store.video_ids[0])


def test_a_batch_is_zero_padded_in_time_with_its_lengths(store):
    videos = CaptionBatches(FeatureReader(store, SMALL), store.video_ids)
    short, long = videos.lengths.index(1), videos.lengths.index(2)
    batch = videos[[short, long]].videos
    assert batch.top_steps.tolist() == [1, 2]
    pool4 = batch.features["pool4"]
    assert pool4.shape == (2, 4, 7, 7, SMALL.channels("pool4")) and pool4.dtype == torch.float16
    stored = store.read(store.video_ids[short], "pool4")[..., : SMALL.channels("pool4")]
    np.testing.assert_array_equal(pool4[0, :2].numpy(), stored)
    assert not pool4[0, 2:].any()


def test_captions_are_padded_after_their_eos(store):
    video_id = store.video_ids[0]
    pairs = CaptionBatches(FeatureReader(store, SMALL), [video_id, video_id], [[5, 6, 7, 2], [8, 2]])
    assert pairs[[0, 1]].tokens.tolist() == [[5, 6, 7, 2], [8, 2, 0, 0]]


def test_bucketing_reduces_padding(store):
    videos = CaptionBatches(FeatureReader(store, SMALL), store.video_ids * 5)  # five captions per video
    assert len(set(videos.lengths)) > 1
    bucketed = BucketBatchSampler(videos.lengths, batch_size=8, seed=0)
    shuffled = BucketBatchSampler(videos.lengths, batch_size=8, seed=0, bucketing=False)
    with_buckets = np.mean([padding_fraction(bucketed.batches(epoch), videos.lengths) for epoch in range(5)])
    without = np.mean([padding_fraction(shuffled.batches(epoch), videos.lengths) for epoch in range(5)])
    assert with_buckets < without / 2


def test_each_epoch_is_a_seeded_shuffle_of_every_item():
    sampler = BucketBatchSampler([1, 2, 3] * 10, batch_size=4, seed=7)
    first, again = sampler.batches(0), BucketBatchSampler([1, 2, 3] * 10, batch_size=4, seed=7).batches(0)
    assert first == again
    assert sampler.batches(1) != first
    assert sorted(index for batch in first for index in batch) == list(range(30))


def test_skipping_resumes_an_epoch_at_its_next_batch():
    sampler = BucketBatchSampler(list(range(20)), batch_size=3, seed=1)
    sampler.set_epoch(2, skip=4)
    assert list(sampler) == sampler.batches(2)[4:]
    assert len(sampler) == len(sampler.batches(2)) - 4


def test_loader_workers_give_the_in_process_batches_in_the_same_order(store):
    pairs = CaptionBatches(FeatureReader(store, SMALL), store.video_ids, [[5, 2]] * len(store))
    sampler = BucketBatchSampler(pairs.lengths, batch_size=3, seed=3)
    in_process = list(make_loader(pairs, sampler, workers=0))
    with_workers = list(make_loader(pairs, sampler, workers=2))
    assert [batch.video_ids for batch in with_workers] == [batch.video_ids for batch in in_process]
    for ours, theirs in zip(with_workers, in_process):
        torch.testing.assert_close(ours.videos.features["pool2"], theirs.videos.features["pool2"], rtol=0, atol=0)


def test_an_fsspec_store_is_read_by_loader_workers(synthetic_store, store):
    url = f"memory://{uuid.uuid4().hex}/feats.zarr"
    fsspec.filesystem("memory").put(str(synthetic_store.store), url.removeprefix("memory://"), recursive=True)
    remote = open_store(url)
    videos = CaptionBatches(FeatureReader(remote, SMALL), remote.video_ids)
    sampler = BucketBatchSampler(videos.lengths, batch_size=5, shuffle=False)
    for batch in make_loader(videos, sampler, workers=2):
        for row, video_id in enumerate(batch.video_ids):
            expected = store.read(video_id, "fc7")[: SMALL.fc7_dim]
            np.testing.assert_array_equal(batch.videos.fc7[row].numpy(), expected)


def test_one_caption_per_video_gives_the_batches_of_single_items():
    lengths, videos = [1, 2, 3, 2, 1, 3] * 5, [index // 3 for index in range(30)]
    plain = BucketBatchSampler(lengths, batch_size=4, seed=5)
    grouped = BucketBatchSampler(lengths, batch_size=4, seed=5, captions_per_video=1, videos=videos)
    assert [grouped.batches(epoch) for epoch in range(3)] == [plain.batches(epoch) for epoch in range(3)]


def test_batches_hold_whole_groups_of_captions_of_one_video_and_every_item_once():
    videos = [f"v{index % 7}" for index in range(60)]  # 7 videos of 8 or 9 captions
    lengths = [index % 7 % 3 + 1 for index in range(60)]
    sampler = BucketBatchSampler(lengths, batch_size=8, seed=2, captions_per_video=4, videos=videos)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        assert sorted(index for batch in batches for index in batch) == list(range(60))
        assert len(batches) == len(sampler) == -(-sum(-(-videos.count(v) // 4) for v in set(videos)) // 2)
        for batch in batches:
            assert len(set(videos[index] for index in batch)) <= 2 and len(batch) <= 8
    assert sampler.batches(0) != sampler.batches(1)
    sampler.set_epoch(1, skip=2)
    assert list(sampler) == sampler.batches(1)[2:]


def test_captions_per_video_needs_the_items_videos_and_fits_in_a_batch():
    with pytest.raises(ValueError, match="video of every item"):
        BucketBatchSampler([1, 2], batch_size=4, captions_per_video=2)
    with pytest.raises(ValueError, match="between 1 and the batch size 4"):
        BucketBatchSampler([1, 2], batch_size=4, captions_per_video=5, videos=["a", "b"])


def test_processes_share_each_global_batch_and_together_see_one_process_batches():
    videos = [f"v{index % 9}" for index in range(50)]
    lengths = [index % 9 % 3 + 1 for index in range(50)]
    settings = dict(batch_size=8, seed=4, captions_per_video=2, videos=videos)
    alone = BucketBatchSampler(lengths, **settings).batches(3)
    shards = [BucketBatchSampler(lengths, **settings, rank=rank, world_size=2).batches(3) for rank in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(BucketBatchSampler(lengths, **settings, world_size=2))
    assert len(shards[0]) in (len(alone), len(alone) - 1)  # the last one, when it holds a single group
    for batch, first, second in zip(alone, *shards):
        assert sorted(first + second) == sorted(batch)


def test_a_last_batch_too_small_to_share_is_left_out():
    sampler = BucketBatchSampler([1] * 9, batch_size=4, seed=0, rank=1, world_size=2)
    batches = sampler.batches(0)
    assert len(batches) == len(sampler) == 2 and all(len(batch) == 2 for batch in batches)
    with pytest.raises(ValueError, match="cannot be shared by 3 processes"):
        BucketBatchSampler([1] * 9, batch_size=4, captions_per_video=2, videos=list(range(9)), world_size=3)


def test_evaluation_shares_every_item_among_the_processes_even_a_last_batch_of_one():
    lengths = [index % 4 + 1 for index in range(9)]  # batches of 4: the last holds one item
    shards = [BucketBatchSampler(lengths, batch_size=4, shuffle=False, rank=rank, world_size=2) for rank in (0, 1)]
    batches = [shard.batches(0) for shard in shards]
    assert [len(shard) for shard in shards] == [len(rank_batches) for rank_batches in batches] == [3, 2]
    assert sorted(item for rank_batches in batches for batch in rank_batches for item in batch) == list(range(9))


@pytest.mark.parametrize("workers", [0, 1])
def test_a_damaged_chunk_stops_the_loader_with_one_line_naming_video_and_array(synthetic_store, tmp_path, workers):
    import shutil

    from astar.extract.store.reader import DamagedVideoError

    copy = shutil.copytree(synthetic_store.store, tmp_path / "feats.zarr")
    store = open_store(str(copy))
    video_id = store.video_ids[0]
    chunk = next(path for path in (copy / "videos" / video_key(video_id) / "pool4" / "c").rglob("*") if path.is_file())
    chunk.write_bytes(chunk.read_bytes()[:-7])
    videos = CaptionBatches(FeatureReader(store, SMALL), [video_id])
    loader = make_loader(videos, BucketBatchSampler(videos.lengths, batch_size=1, seed=0), workers)
    with pytest.raises(DamagedVideoError) as raised:
        list(loader)
    assert str(raised.value).startswith(f"{copy}: video {video_id!r}, pool4: damaged (a chunk is corrupt")
    assert "\n" not in str(raised.value)
