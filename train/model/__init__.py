"""astar.train.model: the networks of paper Section 3 and what runs them.

``config`` (``ModelConfig``, sizes and presets of the model), ``variants`` (the named
models and the paper's baselines), ``batch`` (the model's input record), ``normalise``
(the input and aligned-map scales), ``align`` (eq. 4), ``attention`` (eqs. 5–8), ``hard``
(joint hard attention and VIMCO, eqs. 9–14), ``astar`` (the ``ASTAR`` module), ``search``
(greedy and beam decoding) and ``health`` (whether the mechanism is alive). Nothing here
reads a store or a dataset; ``astar.train`` exports the names the README documents.
"""
