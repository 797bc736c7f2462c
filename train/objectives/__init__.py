"""astar.train.objectives: what training optimises beyond the model's own losses.

``cider`` (CIDEr-D on token ids, Section 4.3) and ``scst`` (self-critical sequence
training against the greedy baseline). Cross-entropy and VIMCO live with the model
(``astar.train.model.astar``, ``astar.train.model.hard``); the DDP plumbing that runs
them on several processes is ``astar.train.distributed``.
"""
