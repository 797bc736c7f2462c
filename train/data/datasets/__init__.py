"""Caption annotations of the paper's datasets (Section 4.1) and their match with a feature store.

Every adapter reads the published annotation files as they are distributed and
returns one ``Caption`` per sentence, with the split the paper uses. Caption text
is returned as written; ``astar.train.text`` normalises it. One module per adapter
(``msvd``, ``msrvtt``, ``mvad``, ``csvfile``); ``common`` holds what they share,
``registry`` picks one by name and ``matching`` matches captions with a store.

- ``load_msvd``: YouTube2Text / MSVD, 1,970 clips split 1200 / 100 / 670 by their
  ``vidN`` number (vid1–1200 train, vid1201–1300 val, vid1301–1970 test, as in
  Venugopalan et al. 2015b). Video ids are YouTube clip names
  ``<YouTubeID>_<start>_<end>``, the names of the clip files.
- ``load_msrvtt``: MSR-VTT ``videodatainfo`` JSON, official train/validate/test
  split, or with ``paper_split`` the paper's re-split of the official training set.
- ``load_mvad``: M-VAD in the LSMDC 2016 tab-separated form, split by file name.
- ``load_csv``: custom data, a CSV with header columns ``video_id,caption,split``.

``load_annotations`` picks the adapter by dataset name and, when no path is
given, finds the annotations at the default location: the first existing of

1. ``<folder holding the store>/annotations/<dataset>/`` (local stores only),
   e.g. ``annotations/m-vad/`` beside ``feats.zarr``;
2. ``$ASTAR_DATA/<dataset>/`` when the ``ASTAR_DATA`` environment variable is set.

``match_store`` keeps the captions whose video is in the store and reports, in one
line, the captioned videos the store lacks and the stored videos without captions.

Files may have LF or CRLF line endings, a UTF-8 byte-order mark, and no final
newline. A file that cannot be used raises ``AnnotationError`` naming the file,
and the line or record where one applies (``videodatainfo.json: sentences[17]:
'caption' is null, expected text``), with the reason in one line. Every adapter
refuses annotations with no caption at all and a video captioned in two splits.
"""

from .common import SPLITS, AnnotationError, Caption
from .csvfile import load_csv
from .matching import MatchReport, match_store, references_by_video
from .msrvtt import load_msrvtt
from .msvd import load_msvd, read_msvd_mapping
from .mvad import load_mvad
from .registry import DATASETS, default_annotation_paths, load_annotations

__all__ = [
    "DATASETS", "SPLITS", "AnnotationError", "Caption", "MatchReport", "default_annotation_paths", "load_annotations",
    "load_csv", "load_msrvtt", "load_msvd", "load_mvad", "match_store", "read_msvd_mapping", "references_by_video",
]
