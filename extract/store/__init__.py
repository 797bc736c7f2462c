"""astar.extract.store: the Zarr layout of storage_schema.md, and nothing else.

``schema`` (layer geometry, fps, padding, dtypes), ``ids`` (video ids and keys, URLs),
``root_attributes`` (the root's §3/§3.1 attributes), ``index`` and ``zarrnodes`` (the
one-object index and node listing), ``reader`` (``open_store``, ``FeatureStore``), ``writer``
(``StoreWriter``) and ``verify`` (``verify_store``). No torch, no click: a notebook, a
DataLoader worker or a Dask worker opens a store in milliseconds. Import from the
modules; ``astar.extract`` exports the names the README documents.
"""
