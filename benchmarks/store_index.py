"""Opening a store and learning every complete video's id and length: the store index against the markers.

For stores of each ``--sizes`` videos, generated here with the writer's own node function
(a ``videos/<key>`` group with its §4 attributes and a ``manifest/<key>`` marker per video,
no arrays) and indexed by the writer's ``RunIndex`` as a run would, it times

1. index: ``open_store(…)`` then ``video_ids`` and ``padded_frames`` of every video, from
   the closed index alone (storage_schema.md §6.1), as a store every run finished gives;
2. markers (the same-run baseline): ``open_store(…, use_index=False)``, which reads every
   marker, then each video's attributes for its length, as the trainer did before the index;

and prints the objects each opened (counted by a ``counting://`` local file system) and
their ratios. Both must report the same ids and lengths. Then, for ``--s3-sizes``, the same
stores uploaded to a moto S3 server on 127.0.0.1: the HTTP requests each way sends
(counted by a botocore hook on the session); listing ``manifest/`` (1000 keys a page), which
readers do while the index is open, is left to the markers' way.

    .venv/bin/python benchmarks/store_index.py                 # 1k, 10k and 100k videos
    .venv/bin/python benchmarks/store_index.py --sizes 1000    # smoke run
"""
from __future__ import annotations

import functools
import logging
import tempfile
import time
from pathlib import Path

import click
import fsspec
from fsspec.implementations.local import LocalFileSystem

from astar.extract import ExtractionConfig, Extractor, open_store
from astar.extract.store.ids import video_key
from astar.extract.store.index import INDEX, RunIndex
from astar.extract.store.reader import MANIFEST, VIDEOS
from astar.extract.store.schema import padded_frame_count
from astar.extract.store.writer import StoreWriter, group_once

MARKER_ARRAYS = ("pool2", "pool3", "pool4", "pool5", "fc7", "fc7_windows")


class CountingFileSystem(LocalFileSystem):
    """The local file system as ``counting://``, counting the files it opens for reading."""

    protocol = ("counting",)
    opened = 0

    def _open(self, path, mode="rb", **kwargs):
        if "r" in mode:
            CountingFileSystem.opened += 1
        return super()._open(path, mode, **kwargs)


fsspec.register_implementation("counting", CountingFileSystem, clobber=True)


@functools.cache
def identity() -> dict:
    """The root attributes of a random-init C3D extraction, as a run writes them."""
    return Extractor.build(ExtractionConfig(device="cpu")).identity()


def synthetic_store(path: Path, videos: int) -> None:
    """A store of ``videos`` complete videos (N = 1 … 300 frames), markers and index written as a run writes them."""
    root = StoreWriter(str(path), identity()).root  # a root every reader accepts (storage_schema.md §3)
    run = RunIndex(root[INDEX])
    for number in range(videos):
        video_id, frames = f"clip{number:07d}", 1 + number % 300
        key = video_key(video_id)
        attributes = {"video_id": video_id, "frames": frames, "padded_frames": padded_frame_count(frames), "status": "complete"}
        group_once(root[VIDEOS], key, attributes)
        group_once(root[MANIFEST], key, {"video_id": video_id, "arrays": dict.fromkeys(MARKER_ARRAYS, [1])})
        run.add(key, video_id, frames)
    run.close()


def lengths(url: str, use_index: bool) -> tuple[dict[str, int], float, int]:
    """Every complete video's N′, the seconds it took to open the store and learn them, and the files opened."""
    CountingFileSystem.opened = 0
    started = time.perf_counter()
    store = open_store(url, use_index=use_index)
    if use_index:
        found = {video_id: store.padded_frames(video_id) for video_id in store.video_ids}
    else:
        found = {video_id: int(store.info(video_id)["padded_frames"]) for video_id in store.video_ids}
    return found, time.perf_counter() - started, CountingFileSystem.opened


S3_MARKER_LIMIT = 1000
"""Largest store read marker by marker on moto S3 too: 6 requests a video, about 0.13 s each there."""


def s3_requests(path: Path, videos: int) -> None:
    """Upload the store at ``path`` to a moto S3 server and print the requests each way of opening it sends."""
    import s3fs
    from aiobotocore.session import AioSession
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        credentials = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        uploader = s3fs.S3FileSystem(**credentials)
        bucket = f"bench{videos}"  # moto's buckets outlive its server: one per size
        uploader.mkdir(bucket)
        uploader.put(str(path), f"{bucket}/feats.zarr", recursive=True)
        requests = {False: (float("nan"), float("nan"))}
        for use_index in (True, False) if videos <= S3_MARKER_LIMIT else (True,):
            session, sent = AioSession(), []
            session.register("before-send.s3", lambda **_: sent.append(1))
            options = {**credentials, "session": session, "skip_instance_cache": True}
            started = time.perf_counter()
            store = open_store(f"s3://{bucket}/feats.zarr", options, use_index=use_index)
            found = {video_id: store.padded_frames(video_id) if use_index else int(store.info(video_id)["padded_frames"])
                     for video_id in store.video_ids}
            assert len(found) == videos, "a video is missing"
            requests[use_index] = (len(sent), time.perf_counter() - started)
        (index_n, index_s), (markers_n, markers_s) = requests[True], requests[False]
        click.echo(f"{videos:>8} {index_s:>9.2f} {markers_s:>10.2f} {index_n:>15} {markers_n:>16.0f} {markers_n / index_n:>7.0f}x")
    finally:
        server.stop()


@click.command()
@click.option("--sizes", default="1000,10000,100000", show_default=True, help="Store sizes in videos, comma-separated.")
@click.option("--s3-sizes", default="1000,10000", show_default=True, help="Sizes also measured on moto S3 ('' for none).")
def main(sizes: str, s3_sizes: str) -> None:
    click.echo(f"{'videos':>8} {'index s':>9} {'markers s':>10} {'speed-up':>9} {'index objects':>14} {'marker objects':>15} {'ratio':>8}")
    for videos in (int(size) for size in sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "feats.zarr"
            synthetic_store(path, videos)
            url = f"counting://{path}"
            indexed, index_s, index_objects = lengths(url, use_index=True)
            listed, markers_s, marker_objects = lengths(url, use_index=False)
            assert indexed == listed and len(indexed) == videos, "the index and the markers disagree"
            click.echo(f"{videos:>8} {index_s:>9.3f} {markers_s:>10.3f} {markers_s / index_s:>8.1f}x "
                       f"{index_objects:>14} {marker_objects:>15} {marker_objects / index_objects:>7.0f}x")
    if s3_sizes:
        click.echo(f"\non moto S3:\n{'videos':>8} {'index s':>9} {'markers s':>10} {'index requests':>15} {'marker requests':>16} {'ratio':>8}")
    for videos in (int(size) for size in s3_sizes.split(",") if size):
        with tempfile.TemporaryDirectory() as folder:
            synthetic_store(Path(folder) / "feats.zarr", videos)
            s3_requests(Path(folder) / "feats.zarr", videos)


if __name__ == "__main__":
    main()
