"""The Dask executor of an ``ExtractionPlan``: one task per video, features written by the workers.

The driver (``run_on_dask``) submits one task per video the plan left to do and
collects small ``VideoOutcome`` records; the
scheduler never sees a feature tensor. A task (``extract_video_task``) runs in a
worker process: it builds the ``Extractor`` once per process (cached by settings),
decodes the video, runs C3D and writes the video with the store's crash-safe order
(storage_schema.md §6) through ``store_decoded`` and a writer thread of its own — the same step the in-process
batch uses, so both paths write the same bytes when C3D runs on as many torch threads
(oneDNN splits convolution sums by thread count, which moves the last float16 bit of
some pool4/pool5 values; a task gets ``torch_threads_per_task``).

Faults: a corrupt video is a ``failed`` outcome recorded in the store, as in-process.
A worker process that dies mid-video (OOM, kill -9) leaves that video without its
completion marker; the scheduler reruns the task elsewhere, and after
``distributed.scheduler.allowed-failures`` deaths the video is recorded as failed.

Decoding is isolated in child processes, as in-process: each worker process keeps
one ``DecoderPool`` (``ExtractionConfig.decoders`` children, default its thread count)
that its threads share, one video per task, so a hanging or crashing FFmpeg costs
one video. Daemonic worker processes (the default of ``dask worker``) may not
start children; there the video is decoded in the worker itself, so a crash costs
a worker restart and a hang blocks that worker: start workers with
``DASK_DISTRIBUTED__WORKER__DAEMON=False`` to keep the isolation. The
``LocalCluster`` of ``dask_client`` does this.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import dask
import dask.system
import torch
from distributed import Client, Future, KilledWorker, LocalCluster, as_completed, get_worker

from .console import say
from .decode import DecodedVideo, DecodeError, decode_video
from .errors import AstarError
from .extractor import ExtractionConfig, Extractor
from .outcomes import VideoOutcome, store_decoded
from .plan import ExtractionPlan
from .pool import DecoderPool
from .store.ids import VideoInput, video_key
from .store.reader import MANIFEST, VIDEOS
from .store.writer import StoreWriter
from .writebehind import WriteBehind

RETRIES = 2
"""Reruns of a task that raised (a transient store error); worker deaths are counted by the scheduler."""


class ClusterError(AstarError):
    """A Dask scheduler that cannot be reached; the message names it and says why."""


_lock = threading.Lock()
_cached: tuple[str, Extractor] | None = None
_pool: tuple[tuple, DecoderPool] | None = None


def _settings_key(settings: ExtractionConfig) -> str:
    return repr(sorted(asdict(settings).items()))


def worker_extractor(settings: ExtractionConfig) -> Extractor:
    """The ``Extractor`` for ``settings`` in this process, built on first use (C3D loads once per worker)."""
    global _cached
    key = _settings_key(settings)
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = None  # free the previous model before building the next
            _cached = (key, Extractor.build(settings))
        return _cached[1]


def worker_pool(settings: ExtractionConfig, extractor: Extractor) -> DecoderPool:
    """This worker process's decoder pool, shared by its threads, made on first use and kept for later videos.

    ``settings.decoders`` children, or as many as the worker has threads: each thread
    asks for one video at a time, so more would idle.
    """
    global _pool
    decoders = settings.decoders or get_worker().state.nthreads
    key = (extractor.preprocessing.name, settings.decode_timeout, decoders)
    with _lock:
        if _pool is None or _pool[0] != key:
            if _pool is not None:
                _pool[1].close()
            _pool = (key, DecoderPool(extractor.preprocessing, decoders, settings.decode_timeout))
            atexit.register(_pool[1].close)  # politely ended children exit without an EOF traceback
        return _pool[1]


def decode_in_worker(video: VideoInput, settings: ExtractionConfig, extractor: Extractor) -> DecodedVideo | DecodeError:
    """Decode one video in a child of this worker, or in the worker when it is daemonic (see the module note)."""
    if multiprocessing.current_process().daemon:
        try:
            return decode_video(video.source, extractor.preprocessing)
        except DecodeError as error:
            return error
    return worker_pool(settings, extractor).decode(video)


def extract_video_task(video: VideoInput, out: str, settings: ExtractionConfig, torch_threads: int | None) -> VideoOutcome:
    """Extract one video into the store at ``out`` on a worker; returns only its outcome record.

    The driver submits only videos that were not complete when the run began, so a
    video found complete here was completed during this run: by this run's own first
    attempt whose result died with its worker (Dask then reruns the task), or by a
    concurrent run. Either way it is ``done``, with the stored frame count and time,
    as the in-process batch reports a video another writer completed meanwhile.
    ``torch_threads`` sets this process's intra-op threads (None keeps the worker's).
    """
    started = time.perf_counter()
    if torch_threads and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    extractor = worker_extractor(settings)
    writer = StoreWriter(out, extractor.identity(), settings.storage_options)
    if video_key(video.video_id) in writer.root[MANIFEST]:
        stored = writer.root[VIDEOS][video_key(video.video_id)].attrs
        return VideoOutcome(video.video_id, video.source, "done", frames=stored["frames"], seconds=stored["seconds"])
    with WriteBehind() as queue:
        failed = store_decoded(extractor, writer, queue, video, decode_in_worker(video, settings, extractor), started)
        return failed or queue.drain()[0]


def _cpu_count() -> int:
    return dask.system.CPU_COUNT


def torch_threads_per_task(client: Client) -> int:
    """Intra-op threads per task so that the tasks running at once on a host use its cores once over.

    ``cores of the host // task threads of all workers on that host``, the smallest over hosts, at least 1.
    """
    workers = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(_cpu_count)
    threads_on_host: Counter[str] = Counter()
    cores_on_host: dict[str, int] = {}
    for address, count in cores.items():
        host = workers[address]["host"]
        threads_on_host[host] += workers[address]["nthreads"]
        cores_on_host[host] = count
    return max(1, min(cores_on_host[host] // threads for host, threads in threads_on_host.items()))


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A client of an existing scheduler (``tcp://host:8786`` or a scheduler file), else of a new local cluster.

    The local cluster has ``workers`` processes of one thread each; its workers are
    not daemonic so that each can isolate decoding in a child process. A scheduler
    that does not answer within Dask's ``distributed.comm.timeouts.connect`` (30 s
    unless configured, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s``) is an error.

    Raises:
        ClusterError: the scheduler cannot be reached.
    """
    if scheduler:
        if not Path(scheduler).is_file() and ":" not in scheduler:
            raise ClusterError(f"{scheduler}: neither a scheduler address (tcp://host:8786) nor an existing scheduler file")
        options = {"scheduler_file": scheduler} if Path(scheduler).is_file() else {"address": scheduler}
        try:
            client = Client(**options)
        except (OSError, ValueError) as error:
            raise ClusterError(f"cannot reach the Dask scheduler {scheduler}: {' '.join(str(error).split())}") from None
        with client:
            yield client
        return
    # Read again whenever a nanny restarts a dead worker, so it stays set for the cluster's life.
    with _environ_restored(), dask.config.set({"distributed.worker.daemon": False}), LocalCluster(
        n_workers=workers or 1, threads_per_worker=1, processes=True
    ) as cluster, Client(cluster) as client:
        yield client


@contextmanager
def _environ_restored() -> Iterator[None]:
    """Give this process back the environment variables that the local cluster's nannies set.

    Nannies put ``OMP_NUM_THREADS=1`` and the like (``distributed.nanny.pre-spawn-environ``,
    and ``PYTHONHASHSEED``) into the *parent's* environment before spawning each worker
    and leave them there, so every process started afterwards would run single-threaded.
    """
    keys = [*dask.config.get("distributed.nanny.pre-spawn-environ"), "PYTHONHASHSEED"]
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _task_keys(videos: list[VideoInput]) -> list[str]:
    """Readable, run-unique task keys: the dashboard shows which video a task is."""
    run = uuid.uuid4().hex[:8]
    return [f"extract-{video_key(v.video_id)}-{run}" for v in videos]


def _collect(future: Future, video: VideoInput, writer: StoreWriter) -> VideoOutcome:
    """The task's outcome; a video whose workers kept dying is recorded as failed, like a corrupt one."""
    try:
        return future.result()
    except KilledWorker:
        error = "worker processes died while extracting it (out of memory or killed); lower --max-frames-per-pass"
        writer.record_failure(video.video_id, video.source, error)
        return VideoOutcome(video.video_id, video.source, "failed", error=error)


def run_on_dask(plan: ExtractionPlan, client: Client, torch_threads: int | None = None) -> Iterator[VideoOutcome]:
    """The Dask executor of ``plan``: one task per video of ``plan.todo``, outcomes yielded as tasks finish.

    Args:
        client: a connected ``distributed.Client``; workers must see the inputs,
            the weights file and the store at the same paths or URLs.
        torch_threads: intra-op threads per task; None gives ``torch_threads_per_task``.

    Raises:
        StoreError: the store cannot be written (also when raised on a worker).
    """
    todo = plan.todo
    threads = torch_threads or torch_threads_per_task(client)
    warn_if_daemonic(client)
    futures = client.map(
        extract_video_task, todo, out=plan.out, settings=plan.settings, torch_threads=threads, key=_task_keys(todo),
        retries=RETRIES,
    )
    videos = {future.key: video for future, video in zip(futures, todo)}
    try:
        for future in as_completed(futures):
            yield _collect(future, videos[future.key], plan.writer)
    finally:
        client.cancel(futures)  # after Ctrl-C or a store error nothing keeps running for this run


def warn_if_daemonic(client: Client) -> None:
    """Say when workers cannot isolate decoding (see the module note)."""
    if any(client.run(lambda: multiprocessing.current_process().daemon).values()):
        say(
            "note: Dask workers run as daemon processes, so videos are decoded inside them (a crashing decoder "
            "restarts a worker); start workers with DASK_DISTRIBUTED__WORKER__DAEMON=False to isolate decoding"
        )
