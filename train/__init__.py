"""astar.train: feature store + captions → ASTAR model → captions and scores.

Reads features only through ``astar.extract.open_store`` (storage_schema.md). The model
(Section 3, Appendix C) is ``ASTAR`` configured by ``ModelConfig``; ``train`` runs the
paper's recipe (Section 4.2) into a run directory that ``load_run`` reads back.
"""
from .batch import VideoBatch
from .checkpoint import CheckpointError
from .config import ModelConfig
from .datasets import AnnotationError, Caption, load_annotations, match_store
from .figures import WordAttention, attention_figure, caption_words, save_attention_figure
from .loader import BucketBatchSampler, CaptionBatches, FeatureReader, collate_videos, make_loader
from .model import ASTAR, CaptionAttention
from .run import LoadedRun, RunError, load_run
from .scoring import CaptionScores, score_captions, write_scores
from .search import DEFAULT_BEAM_SIZE, SearchResult, beam_search
from .settings import TrainConfig
from .text import Vocabulary, build_vocabulary, normalize, tokenize
from .trainer import TrainingError, TrainResult, resume_config, train, train_resumably
from .word2vec import load_word2vec

__all__ = [
    "ASTAR", "AnnotationError", "BucketBatchSampler", "Caption", "CaptionAttention", "CaptionBatches", "CaptionScores",
    "CheckpointError", "DEFAULT_BEAM_SIZE", "FeatureReader", "LoadedRun", "ModelConfig", "RunError", "SearchResult",
    "TrainConfig", "TrainResult", "TrainingError", "VideoBatch", "Vocabulary", "WordAttention", "attention_figure",
    "beam_search", "build_vocabulary", "caption_words", "collate_videos", "load_annotations", "load_run",
    "load_word2vec", "make_loader", "match_store", "normalize", "resume_config", "save_attention_figure",
    "score_captions", "tokenize", "train", "train_resumably", "write_scores",
]
