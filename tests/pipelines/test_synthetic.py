"""Synthetic captioned videos: determinism, the captions CSV, decodable clips, visible attributes."""
from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from astar.extract import decode_video
from astar.extract.preprocessing import PAPER
from astar.extract.store.schema import FPS
from astar.pipelines.synthetic import (
    CAPTIONS_FILE, CAPTION_COLUMNS, COLOURS, SyntheticClip, clip_captions, generate_dataset, render_clip, write_video,
)

SHORT_S = (2.0, 3.0)
"""Shortest clips that still give four or more 2-fps samples."""



@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SyntheticClip]]:
    """Ten short clips: every direction, count, size and colour appears at least twice."""
    out_dir = tmp_path_factory.mktemp("synthetic")
    return out_dir, generate_dataset(out_dir, n_videos=10, seed=7, duration_range_s=SHORT_S)


def decoded_frames(path: Path) -> np.ndarray:
    """Every frame of ``path``: (T, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def runs(present: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where the 1-D boolean ``present`` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], present.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_same_seed_gives_identical_captions_csv_and_decoded_frames(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", n_videos=3, seed=11, duration_range_s=SHORT_S)
    second = generate_dataset(tmp_path / "b", n_videos=3, seed=11, duration_range_s=SHORT_S)
    assert first == second
    assert (tmp_path / "a" / CAPTIONS_FILE).read_bytes() == (tmp_path / "b" / CAPTIONS_FILE).read_bytes()
    for clip in first:
        np.testing.assert_array_equal(decoded_frames(tmp_path / "a" / clip.filename), decoded_frames(tmp_path / "b" / clip.filename))


def test_the_same_frames_encode_to_the_same_bytes_whatever_the_process_freed_before(tmp_path: Path) -> None:
    # With x264's assembly on, this clip gave 4-6 different files in 16 encodes (uninitialised reads).
    clip = SyntheticClip("x", "x.mp4", [], "train", "triangle", "green", "large", "left", 2, "plain", 12, 78, 176, 144)
    frames = render_clip(clip, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    encodings = set()
    for index in range(8):
        garbage = [rng.integers(0, 255, 2**20 * (index % 4 + 1), dtype=np.uint8) for _ in range(3)]
        encodings.add(write_video(tmp_path / f"{index}.mp4", frames, clip.fps).read_bytes())
        del garbage
    assert len(encodings) == 1
    assert b" threads=1 lookahead_threads=1 " in encodings.pop()  # x264 records its settings in the stream


def test_different_seeds_give_different_clips(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", n_videos=3, seed=1, duration_range_s=SHORT_S)
    second = generate_dataset(tmp_path / "b", n_videos=3, seed=2, duration_range_s=SHORT_S)
    assert first != second


def test_captions_csv_lists_every_caption_of_every_clip_with_its_split(dataset: tuple[Path, list[SyntheticClip]]) -> None:
    out_dir, clips = dataset
    with open(out_dir / CAPTIONS_FILE, newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == list(CAPTION_COLUMNS)
    rows = read_rows(out_dir / CAPTIONS_FILE)
    expected = [{"video_id": c.video_id, "caption": caption, "split": c.split} for c in clips for caption in c.captions]
    assert rows == expected
    assert all(len(clip.captions) >= 3 and len(set(clip.captions)) == len(clip.captions) for clip in clips)


def test_splits_are_seventy_fifteen_fifteen_percent(tmp_path: Path) -> None:
    clips = generate_dataset(tmp_path, n_videos=20, seed=3, duration_range_s=(0.2, 0.3))
    splits = [clip.split for clip in clips]
    assert {name: splits.count(name) for name in ("train", "val", "test")} == {"train": 14, "val": 3, "test": 3}
    assert splits != sorted(splits, key=["train", "val", "test"].index)  # shuffled, not in blocks


def test_clips_vary_frame_rate_size_and_duration(tmp_path: Path) -> None:
    clips = generate_dataset(tmp_path, n_videos=8, seed=5, duration_range_s=(0.2, 0.6))
    assert len({clip.fps for clip in clips}) >= 4
    assert {(clip.width, clip.height) for clip in clips} == {(160, 120), (176, 144), (128, 128), (96, 160)}
    assert len({clip.n_frames for clip in clips}) > 1


def test_decoded_video_has_the_clips_frame_count_size_and_rate(dataset: tuple[Path, list[SyntheticClip]]) -> None:
    out_dir, clips = dataset
    for clip in clips:
        with av.open(str(out_dir / clip.filename)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
            assert stream.average_rate == clip.fps
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert len(frames) == clip.n_frames
        assert frames[0].shape == (clip.height, clip.width, 3)
        assert SHORT_S[0] <= clip.duration_s <= SHORT_S[1] + 1 / clip.fps


def test_captions_name_count_size_colour_shape_and_direction() -> None:
    assert clip_captions("circle", "red", "small", "left", 1)[:2] == [
        "a small red circle moves to the left",
        "a red circle is moving left",
    ]
    assert clip_captions("triangle", "white", "large", "up", 2)[0] == "two large white triangles move up"


def test_every_clip_caption_matches_its_parameters(dataset: tuple[Path, list[SyntheticClip]]) -> None:
    _, clips = dataset
    for clip in clips:
        noun = clip.shape if clip.count == 1 else f"{clip.shape}s"
        for caption in clip.captions:
            words = caption.split()
            assert clip.colour in words and noun in words and ("two" in words) == (clip.count == 2)
            assert any(word.startswith(clip.direction) for word in words), caption
            assert not set(words) & (set(COLOURS) - {clip.colour})


def test_every_caption_attribute_is_visible_in_2fps_112px_frames(dataset: tuple[Path, list[SyntheticClip]]) -> None:
    # What the extraction stage sees (2 fps, plain 112×112 resize) must show everything captions say:
    # colour (nearest palette colour), count (separate blobs across the motion), size (largest extent:
    # 0.24 or 0.42 of 112 px), shape (bounding-box fill: triangle 1/2, circle π/4, square 1, which
    # resizing keeps), and direction (the centroid crosses most of the frame).
    out_dir, clips = dataset
    palette = np.array(list(COLOURS.values()), float)
    fills = {"triangle": 0.5, "circle": np.pi / 4, "square": 1.0}
    for clip in clips:
        frames = decode_video(out_dir / clip.filename, PAPER, fps=FPS).frames.astype(int)  # (N, 112, 112, 3)
        assert len(frames) >= 4
        background = np.median(frames, axis=(1, 2), keepdims=True)  # (N, 1, 1, 3)
        # A pixel at least half-way from the background to the shape's colour is (mostly) shape.
        contrast = np.abs(np.array(COLOURS[clip.colour]) - background).max(-1)  # (N, 1, 1)
        foreground = np.abs(frames - background).max(-1) > contrast / 2  # (N, 112, 112)
        horizontal = clip.direction in ("left", "right")
        along_axis, across_axis = (1, 0) if horizontal else (0, 1)  # axes of a (112, 112) mask

        middle = foreground[len(frames) // 2]
        blobs = runs(middle.any(axis=along_axis))
        assert len(blobs) == clip.count, clip
        along_extent = np.ptp(np.flatnonzero(middle.any(axis=across_axis))) + 1
        extent = max(along_extent, *(stop - start for start, stop in blobs))
        assert ("small" if extent < (0.24 + 0.42) / 2 * 112 else "large") == clip.size, (clip, extent)
        fill = middle.sum() / (along_extent * sum(stop - start for start, stop in blobs))
        assert min(fills, key=lambda shape: abs(fills[shape] - fill)) == clip.shape, (clip, fill)

        colour = np.median(frames[len(frames) // 2][middle], axis=0)
        assert list(COLOURS)[np.argmin(((palette - colour) ** 2).sum(1))] == clip.colour, (clip, colour)

        centroids = np.array([np.argwhere(mask).mean(0) for mask in foreground[[0, -1]]])  # (2, [y, x])
        moved = centroids[1] - centroids[0]
        sign = 1 if clip.direction in ("right", "down") else -1
        assert sign * moved[1 if horizontal else 0] > 0.4 * 112, (clip, moved)


def test_write_video_keeps_a_fractional_frame_rate(tmp_path: Path) -> None:
    rate = Fraction(30000, 1001)
    frames = np.random.default_rng(0).integers(0, 256, size=(7, 32, 48, 3), dtype=np.uint8)
    path = write_video(tmp_path / "ntsc.mp4", frames, rate)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == rate
        assert sum(1 for _ in container.decode(stream)) == 7


def test_write_video_rejects_frames_that_are_not_rgb_uint8(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "bad.mp4", np.zeros((3, 32, 32), np.uint8), 10)
