"""astar.train.objectives: what training optimises beyond the model's own losses.

``cider`` (CIDEr-D on token ids, Section 4.3), ``scst`` (self-critical sequence
training against the greedy baseline) and ``modules`` (the losses as the modules DDP
wraps). Cross-entropy and VIMCO live with the model (``astar.train.model.astar``,
``astar.train.model.hard``); the process plumbing is ``astar.train.distributed``.
"""
