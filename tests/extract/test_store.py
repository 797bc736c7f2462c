"""Store keys and the Zarr layout: ids round-trip, arrays, attributes, manifest, failures, identity."""
import json

import numpy as np
import pytest
import zarr

from astar.extract import StoreError, collect_inputs, extract_videos, get_backbone, open_store
from astar.extract.inputs import InputError
from astar.extract.store.ids import SAFE, video_id_from_key, video_key
from astar.extract.store.schema import SCHEMA_VERSION

LAYERS = get_backbone("c3d").layers

IDS = ["-4wsuPCjDBc_5_15", "nested/clip", "with space", "Ünïcødé 视频", "Clip", "clip", "..", ".", "__init", "a~1", "x" * 300]


@pytest.mark.parametrize("video_id", IDS)
def test_video_key_is_one_safe_segment_and_round_trips(video_id):
    key = video_key(video_id)
    assert set(key) <= SAFE | set("~0123456789abcdef")
    assert not key.startswith("__") and "/" not in key and "." not in key
    assert len(key) <= 200
    if len(video_id) < 60:
        assert video_id_from_key(key) == video_id


def test_video_keys_never_collide_even_ignoring_case():
    keys = [video_key(v) for v in IDS + ["x" * 299 + "y"]]
    assert len({k.lower() for k in keys}) == len(keys)


def test_folder_inputs_give_relative_ids_and_list_files_work(video_folder, tmp_path):
    ids = sorted(v.video_id for v in collect_inputs([str(video_folder)]))
    assert ids == ["a", "c d", "nested/b"]
    listing = tmp_path / "clips.txt"
    listing.write_text("# clips\nvideos/a.mp4\n\nvideos/nested/b.mkv\n")
    assert [v.video_id for v in collect_inputs([str(listing)])] == ["videos/a", "videos/nested/b"]


def test_inputs_that_share_an_id_are_refused(video_folder):
    (video_folder / "a.avi").write_bytes(b"")
    with pytest.raises(InputError, match="'a'"):
        collect_inputs([str(video_folder)])


def test_store_layout_follows_the_schema(video_folder, tmp_path, extractor):
    out = tmp_path / "feats.zarr"
    extract_videos(collect_inputs([str(video_folder)]), str(out), extractor=extractor, progress=False)
    store = open_store(str(out))
    assert store.video_ids == ["a", "c d", "nested/b"]
    info = store.info("c d")
    assert (info["frames"], info["padded_frames"], info["duration"]) == (8, 16, pytest.approx(4.0))
    assert info["source"].endswith("c d.webm") and info["status"] == "complete"
    for spec in LAYERS:
        array = store.array("nested/b", spec.name)
        assert array.shape == (16 // spec.time_stride, *spec.step_shape)
        assert array.dtype == np.float16
        dimensions = [f"{spec.name}_time", f"{spec.name}_y", f"{spec.name}_x", f"{spec.name}_channel"]
        assert list(array.metadata.dimension_names) == dimensions
        assert array.attrs["_ARRAY_DIMENSIONS"] == dimensions
    assert store.read("a", "fc7").shape == (4096,)
    assert store.read("a", "fc7_windows").shape == (1, 4096)
    assert store.attrs["astar_schema_version"] == store.schema_version == SCHEMA_VERSION
    assert store.backbone == "c3d" and store.layers == LAYERS and store.top_channels == 4096
    assert store.attrs["model"]["weights"] == "random-init" and store.random_init
    assert store.dask("a", "pool2").shape == store.read("a", "pool2").shape
    root_meta = json.loads((out / "zarr.json").read_text())
    assert root_meta["zarr_format"] == 3


def test_unknown_video_and_layer_are_clear_errors(video_folder, tmp_path, extractor):
    out = str(tmp_path / "feats.zarr")
    extract_videos(collect_inputs([str(video_folder / "a.mp4")]), out, extractor=extractor, progress=False)
    store = open_store(out)
    with pytest.raises(KeyError, match="'zzz'"):
        store.read("zzz", "pool2")
    with pytest.raises(KeyError, match="pool9"):
        store.read("a", "pool9")


def test_open_store_refuses_missing_foreign_and_future_stores(tmp_path):
    with pytest.raises(StoreError, match="no feature store"):
        open_store(str(tmp_path / "absent.zarr"))
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    with pytest.raises(StoreError, match="not an astar feature store"):
        open_store(str(tmp_path / "foreign.zarr"))
    foreign.attrs["astar_schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        open_store(str(tmp_path / "foreign.zarr"))


def test_adding_with_different_settings_is_refused(video_folder, tmp_path, extractor):
    from astar.extract import ExtractionConfig

    out = str(tmp_path / "feats.zarr")
    extract_videos(collect_inputs([str(video_folder / "a.mp4")]), out, extractor=extractor, progress=False)
    with pytest.raises(StoreError, match="preprocessing"):
        extract_videos(collect_inputs([str(video_folder)]), out, ExtractionConfig(device="cpu", preprocess="c3d"), progress=False)


def test_store_holds_even_pure_noise_features_in_under_40_percent_of_float32(video_folder, tmp_path, extractor):
    # Per-pixel noise videos through random-init C3D are the worst case: 37-38 % at zstd level 1
    # (35 % at level 5). The 35 % target is measured by benchmarks/extract.py on moving-texture clips.
    out = tmp_path / "feats.zarr"
    summary = extract_videos(collect_inputs([str(video_folder)]), str(out), extractor=extractor, progress=False)
    store = open_store(str(out))
    float32_bytes = sum(store.read(v, n).size * 4 for v in store.video_ids for n in (*store.layer_names, "fc7", "fc7_windows"))
    assert summary.store_bytes < 0.40 * float32_bytes


def test_one_video_opens_as_one_xarray_dataset(video_folder, tmp_path, extractor):
    xarray = pytest.importorskip("xarray")
    out = tmp_path / "feats.zarr"
    extract_videos(collect_inputs([str(video_folder / "a.mp4")]), str(out), extractor=extractor, progress=False)
    dataset = xarray.open_zarr(out, group=f"videos/{video_key('a')}", consolidated=False)
    assert sorted(dataset.data_vars) == sorted([*(layer.name for layer in LAYERS), "fc7", "fc7_windows"])
    assert dataset["pool2"].dims == ("pool2_time", "pool2_y", "pool2_x", "pool2_channel")
    assert dict(dataset.sizes)["pool5_time"] == 1 and dict(dataset.sizes)["pool2_time"] == 8
    np.testing.assert_array_equal(dataset["pool3"].values, open_store(str(out)).read("a", "pool3"))


def downgrade_to_version_1(store_path) -> None:
    """Rewrite a store's root attributes as schema version 1 wrote them (C3D implied, no geometry)."""
    root = zarr.open_group(str(store_path), mode="a")
    attrs = dict(root.attrs)
    for key in ("backbone", "layers"):
        del attrs[key]
    attrs["astar_schema_version"] = 1
    attrs["fc7"] = {"window_frames": 16, "window_stride": 8, "reduction": "mean", "activation": "relu"}
    attrs["preprocessing"] = {k: v for k, v in attrs["preprocessing"].items() if k != "std"}
    root.attrs.clear()
    root.attrs.update(attrs)


def test_a_version_1_store_reads_as_c3d_and_takes_no_new_videos(video_folder, tmp_path, extractor):
    out = tmp_path / "feats.zarr"
    extract_videos(collect_inputs([str(video_folder / "a.mp4")]), str(out), extractor=extractor, progress=False)
    written = open_store(str(out)).attrs
    downgrade_to_version_1(out)
    store = open_store(str(out))
    assert store.schema_version == 1 and store.backbone == "c3d" and store.layers == LAYERS
    assert store.attrs == written  # the upgraded view is what version 2 writes for the same extraction
    assert store.read("a", "pool4").shape == (2, 7, 7, 512)
    with pytest.raises(StoreError, match="schema version 1, but this astar adds videos to version 2"):
        extract_videos(collect_inputs([str(video_folder)]), str(out), extractor=extractor, progress=False)


@pytest.mark.parametrize("path", ["", "  "])
def test_an_empty_store_path_is_refused_not_taken_for_the_current_folder(path, tmp_path, monkeypatch):
    from astar.extract import open_store
    from astar.extract.store.reader import StoreError
    from astar.extract.store.writer import StoreWriter

    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="empty store path"):
        open_store(path)
    with pytest.raises(StoreError, match="empty store path"):
        StoreWriter(path, {})
    assert list(tmp_path.iterdir()) == []
