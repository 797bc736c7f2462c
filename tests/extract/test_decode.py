"""Decoding: 2-fps sampling by timestamps, codecs, sizes, preprocessing geometry, rotation, broken timestamps, bad input."""
import os
from pathlib import Path

import numpy as np
import pytest

from astar.extract import decode_video
from astar.extract.decode import DecodeError
from astar.extract.preprocessing import C3D_CAFFE, PAPER
from tests.videos import (
    write_at_one_time, write_millisecond_vfr, write_with_audio, write_with_cover_art_first,
    level_frames, patch_mp4_timescale, write_audio_only, write_one_timestamp_mjpeg, write_raw_h264, write_video,
)


def sampled_levels(path: Path) -> list[int]:
    video = decode_video(path, PAPER)
    return [int(round(frame.mean())) for frame in video.frames]


def test_constant_rate_gives_ceil_of_twice_the_duration(tmp_path):
    path = write_video(tmp_path / "cfr.mp4", level_frames(list(range(0, 250, 10))[:25]), fps=10)
    video = decode_video(path, PAPER)
    assert video.duration == pytest.approx(2.5)
    assert len(video.frames) == 5  # ⌈2 · 2.5⌉
    assert video.source_fps == pytest.approx(10)


def test_sample_k_is_the_frame_on_screen_at_k_over_2_seconds(tmp_path):
    # Variable frame rate: frames shown at irregular times; sample k must be the
    # latest frame with timestamp ≤ k/2 s.
    times = [0.0, 0.2, 0.45, 1.3, 1.35, 2.7, 2.9, 4.1]
    levels = [20, 50, 80, 110, 140, 170, 200, 230]
    path = write_video(tmp_path / "vfr.mkv", level_frames(levels), fps=10, codec="ffv1", pix_fmt="yuv444p", times=times)
    # duration: last frame at 4.1 s + one nominal frame period (1/10 s) = 4.2 s → 9 samples
    expected = []
    for k in range(9):
        expected.append(levels[max(i for i, t in enumerate(times) if t <= k / 2)])
    assert sampled_levels(path) == pytest.approx(expected, abs=2)


def test_variable_frame_rate_count_follows_duration_not_nominal_rate(tmp_path):
    # 40 frames bunched in the first second, then one frame every 2 s until 9 s:
    # a nominal-rate shortcut would get the count wrong.
    times = [i / 40 for i in range(40)] + [1.0 + 2 * i for i in range(5)]
    path = write_video(tmp_path / "bursty.mkv", level_frames([100] * 45, 32, 32), fps=10, codec="ffv1", pix_fmt="yuv444p", times=times)
    video = decode_video(path, PAPER)
    assert abs(len(video.frames) - 2 * video.duration) <= 1
    assert len(video.frames) == pytest.approx(18, abs=1)


@pytest.mark.parametrize(
    "name, codec, pix_fmt, size",
    [
        ("h264.mp4", "libx264", "yuv420p", (64, 96)),
        ("vp9.webm", "libvpx-vp9", "yuv420p", (48, 64)),
        ("mpeg4.avi", "mpeg4", "yuv420p", (64, 64)),
        ("h264.mov", "libx264", "yuv444p", (61, 97)),  # odd size
        ("portrait.mkv", "libx264", "yuv420p", (160, 90)),
    ],
)
def test_codecs_and_sizes_decode_to_112_square_rgb(tmp_path, name, codec, pix_fmt, size):
    height, width = size
    frames = np.random.default_rng(0).integers(0, 255, (12, height, width, 3), dtype=np.uint8)
    video = decode_video(write_video(tmp_path / name, frames, fps=6, codec=codec, pix_fmt=pix_fmt), PAPER)
    assert video.frames.shape == (4, 112, 112, 3)
    assert video.frames.dtype == np.uint8
    assert (video.width, video.height) == (width, height)


def test_single_frame_video_gives_one_frame(tmp_path):
    video = decode_video(write_video(tmp_path / "one.mp4", level_frames([90]), fps=25), PAPER)
    assert len(video.frames) == 1


def test_c3d_preprocessing_crops_the_centre_of_a_128x171_resize(tmp_path):
    # Left and right thirds differ from the centre; the crop must keep only the centre.
    frames = np.zeros((4, 128, 171, 3), np.uint8)
    frames[:, :, 29:141] = 200
    video = decode_video(write_video(tmp_path / "wide.mkv", frames, fps=2, codec="ffv1", pix_fmt="yuv444p"), C3D_CAFFE)
    assert video.frames.shape == (4, 112, 112, 3)
    assert video.frames[:, :, 4:-4].min() >= 190


def test_fixture_clip_samples_nine_frames(shared_fixtures):
    video = decode_video(shared_fixtures / "videos" / "carphone_pristine.mp4", PAPER)
    assert len(video.frames) == 9  # 120 frames at 29.97 fps last 4.004 s
    assert (video.width, video.height) == (176, 144)


def make_bad_input(tmp_path: Path, kind: str) -> Path:
    good = write_video(tmp_path / "good.mp4", np.random.default_rng(1).integers(0, 255, (40, 64, 64, 3), dtype=np.uint8), fps=10)
    data = good.read_bytes()
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif kind == "text":
        path.write_text("this is not a video\n")
    elif kind == "audio":
        path = write_audio_only(tmp_path / "audio.m4a")
    elif kind == "missing":
        path = tmp_path / "missing.mp4"
    return path


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("empty", "FFmpeg cannot decode"),
        ("truncated", ""),
        ("text", "FFmpeg cannot decode"),
        ("audio", "no video stream"),
        ("missing", "file not found"),
    ],
)
def test_bad_input_raises_one_line_decode_error(tmp_path, kind, reason):
    with pytest.raises(DecodeError) as raised:
        decode_video(make_bad_input(tmp_path, kind), PAPER)
    message = str(raised.value)
    assert reason in message
    assert "\n" not in message and message


def test_minutes_long_video_gives_two_frames_per_second(tmp_path):
    frames = np.repeat(level_frames([60], 16, 16), 3 * 60 * 5, axis=0)  # 3 minutes at 5 fps
    video = decode_video(write_video(tmp_path / "long.mp4", frames, fps=5), PAPER)
    assert len(video.frames) == 360


def test_1080p_source_is_resized_in_the_scaler(tmp_path):
    frames = np.random.default_rng(2).integers(0, 255, (4, 1080, 1920, 3), dtype=np.uint8)
    video = decode_video(write_video(tmp_path / "hd.mp4", frames, fps=4), PAPER)
    assert video.frames.shape == (2, 112, 112, 3)
    assert (video.width, video.height) == (1920, 1080)


# Display rotation: a rotated clip decodes like the same pictures stored upright.


def marked_frames(height: int = 32, width: int = 64) -> np.ndarray:
    """Four dark frames with a bright top-left quadrant and a grey top-right one: every turn and mirror differs."""
    frames = np.full((4, height, width, 3), 20, np.uint8)
    frames[:, : height // 2, : width // 2] = 230
    frames[:, : height // 2, width // 2 :] = 120
    return frames


@pytest.mark.parametrize(
    "rotation, hflip, upright",
    [
        (90, False, lambda image: np.rot90(image, 1)),
        (-90, False, lambda image: np.rot90(image, -1)),
        (180, False, lambda image: np.rot90(image, 2)),
        (90, True, lambda image: np.rot90(image, 1)[:, ::-1]),
    ],
)
def test_display_rotation_is_applied_as_players_do(tmp_path, rotation, hflip, upright):
    frames = marked_frames()
    stored = write_video(tmp_path / "phone.mp4", frames, fps=2, codec="libx264", pix_fmt="yuv444p", rotation=rotation, hflip=hflip)
    shown = np.ascontiguousarray(np.stack([upright(image) for image in frames]))
    reference = write_video(tmp_path / "upright.mp4", shown, fps=2, codec="libx264", pix_fmt="yuv444p")
    video, expected = decode_video(stored, C3D_CAFFE), decode_video(reference, C3D_CAFFE)
    assert np.abs(video.frames.astype(int) - expected.frames.astype(int)).mean() < 3
    assert (video.rotation, video.mirrored) == (rotation if rotation != 180 else 180, hflip)
    assert (video.width, video.height) == (64, 32)  # the coded size


def test_an_unrotated_clip_records_no_rotation(tmp_path):
    video = decode_video(write_video(tmp_path / "plain.mp4", marked_frames(), fps=2), PAPER)
    assert (video.rotation, video.mirrored, video.timing) == (0, False, "timestamps")


# Broken timestamps: detected, ignored for the stream's frame count and rate, said in one line.


def test_frames_muxed_at_one_timestamp_are_sampled_by_frame_rate(tmp_path):
    path = write_one_timestamp_mjpeg(tmp_path / "stalled.mkv", level_frames(list(range(0, 200, 10)), 32, 48), fps=10)
    video = decode_video(path, PAPER)
    assert len(video.frames) == 4  # 20 frames at 10 fps last 2 s
    assert video.duration == pytest.approx(2.0)
    assert [int(round(frame.mean())) for frame in video.frames] == pytest.approx([0, 50, 100, 150], abs=3)
    assert video.timing.startswith("timestamps ignored (20 frames share one timestamp")
    assert video.timing.endswith("sampled as 20 frames at 10 fps") and "\n" not in video.timing


def test_a_patched_time_scale_is_caught_by_the_codecs_rate(tmp_path):
    path = write_video(tmp_path / "clip.mp4", level_frames([100] * 50, 32, 48), fps=25)
    video = decode_video(patch_mp4_timescale(path, 512), PAPER)
    assert len(video.frames) == 4 and video.duration == pytest.approx(2.0)
    assert "timestamps ignored" in video.timing and "at 25 fps" in video.timing


def test_a_lying_container_costs_bounded_samples(tmp_path):
    # 600 frames whose time scale says 2 hours; sampling by timestamps would hold 14,400 frames.
    path = write_video(tmp_path / "long.mp4", level_frames([100] * 600, 16, 16), fps=25)
    video = decode_video(patch_mp4_timescale(path, 300), PAPER)
    assert len(video.frames) == 48 and "timestamps ignored (frame" in video.timing


def test_a_raw_stream_without_timestamps_is_sampled_by_frame_rate(tmp_path):
    video = decode_video(write_raw_h264(tmp_path / "raw.h264", level_frames([100] * 50, 32, 48), fps=25), PAPER)
    assert len(video.frames) == 4
    assert video.timing.startswith("timestamps ignored (a frame has no timestamp)")


def test_a_gif_slideshow_keeps_its_uneven_delays(tmp_path):
    from PIL import Image

    images = [Image.fromarray(frame) for frame in level_frames([0, 60, 120, 180], 20, 30)]
    images[0].save(tmp_path / "slides.gif", save_all=True, append_images=images[1:], duration=[50, 4000, 50, 1000])
    video = decode_video(tmp_path / "slides.gif", PAPER)
    assert video.timing == "timestamps" and video.duration == pytest.approx(5.1)
    assert [int(round(frame.mean())) for frame in video.frames][:10] == pytest.approx([0] + [60] * 8 + [180], abs=3)


def test_good_variable_rate_timestamps_are_kept(tmp_path):
    times = [0.0, 0.2, 0.45, 1.3, 1.35, 2.7, 2.9, 4.1]
    path = write_video(tmp_path / "vfr.mp4", level_frames([50] * 8), fps=10, times=times)
    assert decode_video(path, PAPER).timing == "timestamps"


# Files that are not videos are refused at once.


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.mp4")
    with pytest.raises(DecodeError, match="not a regular file"):
        decode_video(tmp_path / "pipe.mp4", PAPER)


def test_a_dangling_symlink_says_so(tmp_path):
    (tmp_path / "link.mp4").symlink_to(tmp_path / "gone.mp4")
    with pytest.raises(DecodeError, match="^dangling symlink$"):
        decode_video(tmp_path / "link.mp4", PAPER)


def test_a_still_image_renamed_mp4_is_not_a_video(tmp_path):
    from PIL import Image

    Image.fromarray(level_frames([90], 20, 30)[0]).save(tmp_path / "photo.png")
    (tmp_path / "photo.png").rename(tmp_path / "photo.mp4")
    with pytest.raises(DecodeError, match=r"a still image \(png\), not a video"):
        decode_video(tmp_path / "photo.mp4", PAPER)


def test_one_decoding_thread_gives_the_frames_of_ffmpegs_own_threading(tmp_path):
    # A DecoderPool child decodes on one thread; its frames must be those every other path decodes.
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (30, 96, 128, 3), dtype=np.uint8)
    path = write_video(tmp_path / "noise.mp4", frames, fps=10)
    threaded, single = decode_video(path, PAPER), decode_video(path, PAPER, threads=1)
    assert len(single.frames) == 6
    np.testing.assert_array_equal(single.frames, threaded.frames)


# A tick rate is never a frame rate; timestamps a demuxer made up are recognised (issue 21, item 5).

VFR_TIMES = [0.0, 0.35, 0.5, 1.2, 1.9, 2.05, 3.3, 4.0, 4.6, 5.75, 6.1, 7.4, 8.0, 9.1, 9.2]
"""Uneven times whose last frame starts at 9.2 s: 19 samples, or 20 when the muxer gives the last frame more
than 0.3 s on screen (mp4 takes sample durations from B-frame decode order: 0.6 s here). Read as 1000 fps: 1."""


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".webm"])
def test_variable_rate_clips_whose_codec_declares_its_1_ms_tick_keep_their_timestamps(tmp_path, suffix):
    # A VFR encode counts in milliseconds, and H.264 then declares 1000 fps: the clock, not a frame rate.
    frames = level_frames([10 * i for i in range(len(VFR_TIMES))])
    path = write_millisecond_vfr(tmp_path / f"vfr{suffix}", frames, VFR_TIMES)
    video = decode_video(path, PAPER)
    assert video.timing == "timestamps" and len(video.frames) in (19, 20)
    assert video.source_fps is None or video.source_fps <= 300


@pytest.mark.parametrize("spread", [False, True], ids=["one-timestamp", "one-tick-apart"])
@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".webm"])
def test_frames_muxed_at_one_time_are_sampled_by_the_declared_rate(tmp_path, suffix, spread):
    # 20 frames at 10 fps last 2 s, whether their timestamps are all equal or made up one tick apart.
    frames = level_frames(list(range(0, 200, 10)), 32, 48)
    video = decode_video(write_at_one_time(tmp_path / f"stalled{suffix}", frames, fps=10, spread=spread), PAPER)
    assert len(video.frames) == 4 and video.duration == pytest.approx(2.0)
    assert [int(round(frame.mean())) for frame in video.frames] == pytest.approx([0, 50, 100, 150], abs=4)
    assert video.timing.startswith("timestamps ignored") and video.timing.endswith("sampled as 20 frames at 10 fps")


def test_frames_one_tick_apart_at_a_frame_rate_tick_are_real(tmp_path):
    # avi and y4m count in frame periods: one tick apart is exactly the frame rate.
    path = write_video(tmp_path / "clip.avi", level_frames([100] * 25, 32, 48), fps=25, codec="mpeg4")
    video = decode_video(path, PAPER)
    assert (video.timing, len(video.frames)) == ("timestamps", 2)


# The video is the best real video stream, never cover art (item 6).


def test_cover_art_listed_first_is_not_the_video(tmp_path):
    frames = level_frames([8 * i for i in range(30)], 48, 64)
    video = decode_video(write_with_cover_art_first(tmp_path / "cover.mp4", frames, fps=10), PAPER)
    assert (video.timing, len(video.frames), video.width) == ("timestamps", 6, 64)
    assert [int(round(frame.mean())) for frame in video.frames] == pytest.approx([0, 40, 80, 120, 160, 200], abs=4)


# Truncation is judged by the video stream alone (item 12).


@pytest.mark.parametrize("suffix", [".mkv", ".webm", ".mp4"])
@pytest.mark.parametrize("case", ["audio-outlasts-video", "video-starts-late", "second-video-longer"])
def test_a_file_that_plays_is_never_called_truncated(tmp_path, suffix, case):
    frames = level_frames([100] * 50, 32, 48)  # 5 s at 10 fps
    options = {
        "audio-outlasts-video": {"audio_seconds": 12.6},
        "video-starts-late": {"audio_seconds": 7.0, "video_start": 2.0},
        "second-video-longer": {"audio_seconds": 0, "second_video": level_frames([50] * 120, 32, 48)},
    }[case]
    video = decode_video(write_with_audio(tmp_path / f"clip{suffix}", frames, fps=10, **options), PAPER)
    assert len(video.frames) == 10 and video.duration == pytest.approx(5.0)


@pytest.mark.parametrize("codec", ["mjpeg", "libx264"])
def test_a_one_frame_track_beside_audio_is_one_frame(tmp_path, codec):
    path = write_with_audio(tmp_path / "still.mkv", level_frames([100], 32, 48), fps=10, audio_seconds=5, codec=codec)
    assert len(decode_video(path, PAPER).frames) == 1


def test_a_matroska_video_cut_in_half_is_still_truncated(tmp_path):
    # Its tags are lost with the end of the file; the segment's duration in the header still says 10 s.
    rng = np.random.default_rng(0)
    path = write_video(tmp_path / "clip.mkv", rng.integers(0, 255, (100, 32, 48, 3), dtype=np.uint8), fps=10)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DecodeError, match="truncated"):
        decode_video(path, PAPER)
