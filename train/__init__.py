"""astar.train: feature store + captions → ASTAR model → captions and scores.

Reads features only through ``astar.extract.open_store`` (storage_schema.md). The public
API is what the README's examples and the pipelines use: ``train`` runs the paper's
recipe (Section 4.2) into a run directory that ``load_run`` reads back, ``evaluate``
scores a run, ``caption_videos`` captions new files, and ``ModelConfig`` / ``ASTAR`` /
``named_models`` describe the models. Everything else stays importable from its module
(``astar.train.loader``, ``astar.train.search``, …).
"""
from .caption import VideoCaption, caption_videos, prepare_extraction
from .datasets import DATASETS, SPLITS
from .evaluate import TABLE_METRICS, EvalConfig, EvalResult, evaluate, format_scores
from .model import ASTAR
from .model_config import ModelConfig
from .recipe_options import RECIPE_FIELDS, recipe_options
from .rundir import LoadedRun, load_run, read_run_config, saved_run_differences
from .scoring import SCORES_FILE
from .search import DEFAULT_BEAM_SIZE
from .train_config import PRESETS, RECIPES, TrainConfig
from .trainer import TrainResult, train, train_resumably
from .variants import NAMED_MODELS, VARIANTS, NamedModel, named_models

__all__ = [
    "ASTAR", "DATASETS", "DEFAULT_BEAM_SIZE", "EvalConfig", "EvalResult", "LoadedRun", "ModelConfig", "NAMED_MODELS",
    "NamedModel", "PRESETS", "RECIPES", "RECIPE_FIELDS", "SCORES_FILE", "SPLITS", "TABLE_METRICS", "TrainConfig", "TrainResult", "VARIANTS",
    "caption_videos", "evaluate", "format_scores", "load_run", "prepare_extraction", "named_models", "read_run_config", "recipe_options",
    "saved_run_differences", "train", "train_resumably", "VideoCaption",
]
