"""astar.train: feature store + captions → ASTAR model → captions and scores.

Reads features only through ``astar.extract.open_store`` (storage_schema.md). The public
API is what the README's examples and the pipelines use: ``train`` runs the paper's
recipe (Section 4.2) into a run directory that ``load_run`` reads back, ``evaluate``
scores a run, ``caption_videos`` captions new files, and ``ModelConfig`` / ``ASTAR`` /
``named_models`` describe the models. Everything else stays importable from its module
(``astar.train.data.loader``, ``astar.train.model.search``, …).

Every name is imported from its module on first use (``astar.extract.lazy``): the
configurations, presets and choices load without torch; ``train`` or ``ASTAR`` load it.
"""
from astar.extract.lazy import export_lazily

__all__ = export_lazily(__name__, {
    "caption": ("VideoCaption", "caption_videos"),
    "data.datasets": ("DATASETS",),
    "evaluate": ("EvalConfig", "EvalResult", "evaluate"),
    "model.astar": ("ASTAR",),
    "model.config": ("ModelConfig",),
    "model.variants": ("named_models",),
    "presets": ("PRESETS",),
    "loaded_run": ("LoadedRun", "load_run"),
    "train_config": ("TrainConfig",),
    "trainer": ("train", "train_resumably"),
})
