"""Feature stores and inputs on S3, through a moto server on 127.0.0.1 started by the tests."""
import numpy as np
import pytest

from astar.extract import ExtractionConfig, StoreError, collect_inputs, extract_videos, open_store

LAYERS_AND_FC7 = ("pool2", "pool3", "pool4", "pool5", "fc7", "fc7_windows")


def test_s3_store_round_trip_matches_a_local_store(video_folder, tmp_path, extractor, bucket):
    name, options = bucket
    inputs = collect_inputs([str(video_folder)])
    url = f"s3://{name}/feats.zarr"
    summary = extract_videos(inputs, url, ExtractionConfig(storage_options=options), extractor=extractor, progress=False)
    assert summary.count("failed") == 0 and summary.store_bytes > 0
    extract_videos(inputs, str(tmp_path / "local.zarr"), extractor=extractor, progress=False)
    local, remote = open_store(str(tmp_path / "local.zarr")), open_store(url, options)
    assert remote.video_ids == local.video_ids == ["a", "c d", "nested/b"]
    for video_id in remote.video_ids:
        for layer in LAYERS_AND_FC7:
            np.testing.assert_array_equal(remote.read(video_id, layer), local.read(video_id, layer))
        assert remote.info(video_id)["frames"] == local.info(video_id)["frames"]


def test_s3_store_resumes_skipping_done_and_retrying_failed(video_folder, extractor, bucket):
    name, options = bucket
    (video_folder / "bad.mp4").write_bytes(b"not a video")
    inputs = collect_inputs([str(video_folder)])
    url, settings = f"s3://{name}/feats.zarr", ExtractionConfig(storage_options=options)
    first = extract_videos(inputs, url, settings, extractor=extractor, progress=False)
    assert (first.count("done"), first.count("failed")) == (3, 1)
    assert list(open_store(url, options).failures.video_id) == ["bad"]
    second = extract_videos(inputs, url, settings, extractor=extractor, progress=False)
    assert (second.count("skipped"), second.count("failed"), second.count("done")) == (3, 1, 0)


def test_inputs_from_s3_are_listed_and_decoded(video_folder, extractor, bucket):
    import s3fs

    name, options = bucket
    s3fs.S3FileSystem(**options).put(str(video_folder), f"{name}/videos", recursive=True)
    inputs = collect_inputs([f"s3://{name}/videos"])
    assert [v.video_id for v in inputs] == ["a", "c d", "nested/b"]
    url = f"s3://{name}/feats.zarr"
    summary = extract_videos(inputs, url, ExtractionConfig(storage_options=options), extractor=extractor, progress=False)
    assert summary.count("done") == 3, summary.table()
    assert open_store(url, options).info("nested/b")["source"] == f"s3://{name}/videos/nested/b.mkv"


def test_opening_a_missing_s3_store_is_a_one_line_error(bucket):
    name, options = bucket
    with pytest.raises(StoreError, match="no feature store here"):
        open_store(f"s3://{name}/nothing.zarr", options)


@pytest.mark.parametrize("command", ["extract", "claim"])
def test_a_typo_in_a_bucket_name_is_refused_and_never_creates_the_bucket(video_folder, bucket, command):
    import s3fs

    from astar.extract.folders import FolderError, claim_folder
    from astar.train.evaluate import EVAL_FOLDER

    name, options = bucket
    typo = f"{name}-typo"
    url = f"s3://{typo}/feats.zarr"
    if command == "extract":
        with pytest.raises(StoreError, match=f"bucket {typo} does not exist; astar never creates buckets"):
            extract_videos(collect_inputs([str(video_folder / "a.mp4")]), url,
                           ExtractionConfig(device="cpu", storage_options=options), progress=False)
    else:  # every kind of folder astar writes follows the one rule
        with pytest.raises(FolderError, match=f"{url}: bucket {typo} does not exist"):
            claim_folder(url, EVAL_FOLDER, storage_options=options)
    assert not s3fs.S3FileSystem(**options).exists(typo)
