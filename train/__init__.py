"""astar.train: feature store + captions → ASTAR model → captions and scores.

Reads features only through ``astar.extract.open_store`` (storage_schema.md). The model
(Section 3, Appendix C) is ``ASTAR`` configured by ``ModelConfig``; ``train`` runs the
paper's recipe (Section 4.2) into a run directory that ``load_run`` reads back.
"""
from .batch import VideoBatch
from .caption import CaptionError, VideoCaption, caption_videos, prepare_extraction
from .checkpoint import CheckpointError
from .config import ModelConfig
from .datasets import DATASETS, AnnotationError, Caption, load_annotations, match_store
from .evaluate import SPLITS, TABLE_METRICS, EvalError, EvalOptions, EvalResult, evaluate, format_scores, weights_line
from .figures import WordAttention, attention_figure, caption_words, save_attention_figure
from .loader import BucketBatchSampler, CaptionBatches, FeatureReader, collate_videos, make_loader
from .model import ASTAR, CaptionAttention
from .run import LoadedRun, RunError, load_run, read_run_config
from .scoring import SCORES_FILE, CaptionScores, score_captions, write_scores
from .search import DEFAULT_BEAM_SIZE, SearchResult, beam_search
from .settings import DEVICES, PRESETS, TrainConfig
from .text import Vocabulary, build_vocabulary, normalize, tokenize
from .trainer import TrainingError, TrainResult, resume_config, saved_run_differences, train, train_resumably
from .word2vec import load_word2vec

__all__ = [
    "ASTAR", "AnnotationError", "BucketBatchSampler", "Caption", "CaptionAttention", "CaptionBatches", "CaptionError",
    "CaptionScores", "CheckpointError", "DATASETS", "DEFAULT_BEAM_SIZE", "DEVICES", "EvalError", "EvalOptions",
    "EvalResult", "FeatureReader", "LoadedRun", "ModelConfig", "PRESETS", "RunError", "SCORES_FILE", "SPLITS",
    "SearchResult", "TABLE_METRICS", "TrainConfig", "TrainResult", "TrainingError", "VideoBatch", "VideoCaption",
    "Vocabulary", "WordAttention", "attention_figure", "beam_search", "build_vocabulary", "caption_videos",
    "caption_words", "collate_videos", "evaluate", "format_scores", "load_annotations", "load_run", "load_word2vec",
    "make_loader", "match_store", "normalize", "prepare_extraction", "read_run_config", "resume_config",
    "save_attention_figure", "saved_run_differences", "score_captions", "tokenize", "train", "train_resumably",
    "weights_line", "write_scores",
]
