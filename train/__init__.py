"""astar.train: feature store + captions → ASTAR model → captions and scores.

Reads features only through ``astar.extract.open_store`` (storage_schema.md). The public
API is what the README's examples and the pipelines use: ``train`` runs the paper's
recipe (Section 4.2) into a run directory that ``load_run`` reads back, ``evaluate``
scores a run, ``caption_videos`` captions new files, and ``ModelConfig`` / ``ASTAR`` /
``named_models`` describe the models. Everything else stays importable from its module
(``astar.train.data.loader``, ``astar.train.model.search``, …).

Every name is imported from its module on first use (``astar.extract.export_lazily``): the
configurations, presets and choices load without torch; ``train`` or ``ASTAR`` load it.
"""
from astar.extract import export_lazily

__all__ = export_lazily(__name__, {
    "caption": ("VideoCaption", "caption_videos", "prepare_extraction"),
    "data.datasets": ("DATASETS", "SPLITS"),
    "evaluate": ("TABLE_METRICS", "EvalConfig", "EvalResult", "evaluate", "format_scores"),
    "model.astar": ("ASTAR",),
    "model.config": ("ModelConfig",),
    "options": ("DEFAULT_BEAM_SIZE",),
    "recipe_options": ("RECIPE_FIELDS", "RECIPE_HELP", "recipe_options"),
    "rundir": ("LoadedRun", "load_run", "read_run_config", "saved_run_differences"),
    "scoring": ("SCORES_FILE", "ScoresError", "read_scores"),
    "presets": ("PRESETS", "preset_help"),
    "train_config": ("TrainConfig",),
    "trainer": ("TrainResult", "train", "train_resumably"),
    "model.variants": ("NAMED_MODELS", "VARIANTS", "NamedModel", "named_models"),
})
