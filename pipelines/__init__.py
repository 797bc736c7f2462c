"""astar.pipelines: end-to-end flows built only from astar.extract's and astar.train's public APIs.

``astar.pipelines.demo`` (``make demo``), ``astar.pipelines.ablate`` (``astar-ablate``),
``astar.pipelines.paper_tables`` (the paper's published scores) and
``astar.pipelines.synthetic`` (captioned synthetic clips). Batch extraction on a Dask
cluster is ``astar.extract.extract_videos(..., client=client)``.
"""
