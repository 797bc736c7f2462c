"""Batch extraction on a Dask cluster from a notebook: a client, inputs and a store URL in, a table out.

    from distributed import Client
    from astar.pipelines.cluster import extract_on_cluster

    client = Client("tcp://scheduler:8786")
    table = extract_on_cluster(client, ["s3://bucket/videos/"], "s3://bucket/feats.zarr",
                               storage_options={"endpoint_url": "http://minio:9000"})
    table[table.status == "failed"]

A local cluster as ``astar-extract --workers 4`` starts it (one thread per worker, workers
allowed to isolate decoding in a child process): ``with astar.extract.dask_client(workers=4) as client: …``.

Built only on ``astar.extract``'s public API; the work itself is ``extract_on_dask``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
from distributed import Client

from astar.extract import ExtractionSettings, collect_inputs, extract_on_dask


def extract_on_cluster(
    client: Client,
    inputs: Sequence[str],
    store_url: str,
    settings: ExtractionSettings | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Extract every input not yet in the store on ``client``'s cluster; one row per video.

    Args:
        inputs: video files, folders, list files or fsspec URLs, as ``astar-extract`` takes them.
        store_url: local path or fsspec URL of the feature store (created if needed, resumed if not).
        settings: weights, preprocessing, precision, …; defaults to ``ExtractionSettings()``.
        storage_options: fsspec options of the store (endpoint, credentials); replace ``settings``'.

    Returns:
        Columns ``video_id``, ``source``, ``status`` (``done``, ``skipped``, ``failed``),
        ``error``, ``frames`` (at 2 fps) and ``seconds``; ``attrs`` holds the run's
        ``seconds`` and ``store_bytes``. Failed videos are also in the store's failures table.
    """
    settings = settings or ExtractionSettings()
    if storage_options is not None:
        settings = replace(settings, storage_options=storage_options)
    summary = extract_on_dask(client, collect_inputs(list(inputs)), store_url, settings, progress=False)
    table = summary.table()
    table.attrs.update(seconds=summary.seconds, store_bytes=summary.store_bytes)
    return table
