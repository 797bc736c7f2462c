"""astar.train.data: from a store and annotations to the model's batches.

``datasets`` (the dataset adapters and splits), ``captions`` (annotations matched with
the store, as token ids), ``loader`` (padded batches), ``feature_cache`` and
``cache_plan`` (features held on the device or in pinned memory) and ``word2vec``
(initial word embeddings). Builds the records of ``astar.train.model.batch``; never
imports a network.
"""
