"""Lazy batches of (video, caption) pairs from a feature store, bucketed by video length.

The paper's objective sums the caption log-likelihood over every (video, caption)
pair of the training split (eq. 3, Section 4.2), so a training item is one pair and
a video with 40 captions appears in 40 items. Evaluation items are videos, one each.

Laziness: a ``CaptionBatches`` dataset is indexed by a *whole batch* (a list of item
indices, as ``BucketBatchSampler`` yields them) and reads from Zarr only the distinct
videos of that batch, each once, when a ``DataLoader`` worker asks for it. Nothing
but the lengths (from the store index, storage_schema.md §6.1) is read up front.

Feature widths: a store holds its backbone's full widths (C3D: pool2 … pool5 have
128 / 256 / 512 / 512 channels, fc7 4096; the video ResNets' layer1 … layer4 64 … 512,
fc7 512). A model configured narrower (``ModelConfig.small``: C3D 8 / 16 / 16 / 32 and
fc7 64) gets the *first* ``layer_channels[l]`` channels of each layer and the first
``fc7_dim`` fc7 values:
the paper-size eq.-4 alignment (a 7³ convolution from 128 to 512 channels on 28×28
maps) is far too slow for a CPU, and the leading channels of C3D are as good a
sample as any. The paper preset reads everything; a model wider than the store is
refused, and so is a store of another backbone (its layers' geometry differs from the
model's). Only the layers the model attends to are read (none for the fc7 baseline).

Caching: a video appears in a batch once per caption (MSVD: ~40 times an epoch), so each
``FeatureReader`` keeps the features it read in memory, least recently used out, up to
``cache_bytes`` per process (``DEFAULT_CACHE_BYTES``): while the training set's features
fit, each video is read from Zarr once per loader worker, not once per caption. A
``FeatureCache`` (``astar.train.data.feature_cache``) instead holds a whole split's features,
decompressed once, in one copy that every worker shares or on the GPU; ``CaptionBatches``
reads from either, since both ``read`` a video as tensors.

Bucketing: videos of one batch have similar top-layer (C3D: pool5) lengths, so little of the padded
(B, T, H, W, C) tensors is padding (see ``padding_fraction``).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from astar.extract import FeatureStore, open_store

from ..model.batch import CaptionBatch, VideoBatch
from ..model.config import ModelConfig, model_layers
from ..model.normalise import ChannelStatistics
from ..options import DEFAULT_LOADER_WORKERS
from ..text import PAD_ID

DEFAULT_CACHE_BYTES = 1 << 30
"""Features one reader keeps in memory per process (module docstring): 1 GiB."""
PREFETCH_BATCHES = 4
"""Batches each loader worker prepares ahead of the trainer."""


class FeatureSource(Protocol):
    """Where ``CaptionBatches`` gets a video's features: a ``FeatureReader`` or a ``FeatureCache``."""

    @property
    def device(self) -> torch.device:
        """Where ``read`` gives its tensors, and so where batches are gathered."""

    def read(self, video_id: str) -> tuple[dict[str, Tensor], Tensor]:
        """Per layer (T_l, H_l, W_l, C_l) and fc7 (fc7_dim,), float16; not to be modified."""

    def top_steps(self, video_id: str) -> int:
        """T_L, the video's top-layer time steps."""


class FeatureReader:
    """Reads one video's features from a store, cut to a model's widths (module docstring).

    In ``DataLoader`` workers (forked or spawned) the store is reopened from its URL
    and ``storage_options``: a remote file system's connections do not survive a fork.
    In this process the store given is used as it is.
    """

    def __init__(
        self, store: FeatureStore, config: ModelConfig, storage_options: dict | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.url = store.url
        self.storage_options = dict(storage_options or {})
        if store.layers != config.geometry:
            raise ValueError(
                f"{store.url}: holds {store.backbone} layers {', '.join(store.layer_names)}, but the model reads "
                f"{', '.join(config.layer_names)} of another geometry; use a store of the model's backbone"
            )
        self.layers = model_layers(config)
        self.channels = {name: config.channels(name) for name in self.layers}
        self.fc7_dim = config.fc7_dim
        self.top = config.top
        self.geometry = {layer.name: layer for layer in config.geometry if layer.name in self.layers}
        self.cache_bytes = cache_bytes
        self._store: FeatureStore | None = store
        self._opened_by = os.getpid()
        self._cache: OrderedDict[str, tuple[dict[str, Tensor], Tensor]] = OrderedDict()
        self._cached_bytes = 0

    @property
    def store(self) -> FeatureStore:
        if self._store is None or self._opened_by != os.getpid():
            self._store, self._opened_by = open_store(self.url, self.storage_options), os.getpid()
        return self._store

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None, "_cache": OrderedDict(), "_cached_bytes": 0}

    def check_widths(self, video_id: str) -> None:
        """Raise ``ValueError`` if the model wants more channels than ``video_id``'s arrays hold."""
        wanted = {**self.channels, "fc7": self.fc7_dim}
        for name, width in wanted.items():
            stored = self.store.array(video_id, name).shape[-1]
            if width > stored:
                raise ValueError(
                    f"{self.url}: the model reads {width} {name} channels but the store holds {stored}; "
                    "use a preset no wider than the store"
                )

    def top_steps(self, video_id: str) -> int:
        """T_L, the video's top-layer time steps (C3D: pool5's, padded frames / 16)."""
        return self.top.time_steps(self.store.padded_frames(video_id))

    @property
    def device(self) -> torch.device:
        """Features read from a store arrive on the CPU."""
        return torch.device("cpu")

    def shapes(self, video_id: str) -> dict[str, tuple[int, ...]]:
        """What ``read`` gives for ``video_id``, from the store index alone: per layer (T_l, H_l, W_l, C_l), fc7 (fc7_dim,)."""
        padded = self.store.padded_frames(video_id)
        layers = {name: (layer.time_steps(padded), layer.height, layer.width, self.channels[name])
                  for name, layer in self.geometry.items()}
        return {**layers, "fc7": (self.fc7_dim,)}

    def read(self, video_id: str) -> tuple[dict[str, Tensor], Tensor]:
        """Per layer (T_l, H_l, W_l, C_l) float16 and fc7 (fc7_dim,) float16, narrowed, on the CPU; not to be modified.

        Raises:
            DamagedVideoError: a chunk of the video is corrupt or missing (one line naming video and array).
        """
        if video_id in self._cache:
            self._cache.move_to_end(video_id)
            return self._cache[video_id]
        features = self.decompress(video_id)
        size = sum(array.nbytes for array in features[0].values()) + features[1].nbytes
        if size <= self.cache_bytes:
            self._cache[video_id], self._cached_bytes = features, self._cached_bytes + size
            while self._cached_bytes > self.cache_bytes:
                old_layers, old_fc7 = self._cache.popitem(last=False)[1]
                self._cached_bytes -= sum(array.nbytes for array in old_layers.values()) + old_fc7.nbytes
        return features

    def decompress(self, video_id: str) -> tuple[dict[str, Tensor], Tensor]:
        """What ``read`` gives, read from the store every time; safe to call from several threads at once."""
        layers = {name: torch.from_numpy(self.store.read(video_id, name, (..., slice(self.channels[name]))))
                  for name in self.layers}
        return layers, torch.from_numpy(self.store.read(video_id, "fc7", slice(self.fc7_dim)))


def feature_statistics(features: FeatureSource, video_ids: Sequence[str], limit: int = 64) -> dict[str, ChannelStatistics]:
    """Per-channel statistics of every input ``features`` gives (its layers and ``fc7``) over some videos.

    Uses up to ``limit`` of ``video_ids`` spread evenly over the sorted list, every element
    of each (narrowed, unpadded) array, summed in float64: what ``ASTAR`` normalises its
    inputs by (``ASTAR.set_feature_statistics``, ``astar.train.model.normalise``). The same bytes
    give the same statistics whether they come from the store or a ``FeatureCache``.
    """
    chosen = sorted(set(video_ids))
    chosen = [chosen[index] for index in np.linspace(0, len(chosen) - 1, min(limit, len(chosen))).round().astype(int)]
    sums: dict[str, list] = {}
    for video_id in chosen:
        layers, fc7 = features.read(video_id)
        for name, values in {**layers, "fc7": fc7}.items():
            values = values.cpu().numpy().astype(np.float64).reshape(-1, values.shape[-1])
            total = sums.setdefault(name, [0.0, 0.0, 0])
            total[0] = total[0] + values.sum(0)
            total[1] = total[1] + np.square(values).sum(0)
            total[2] += len(values)
    return {name: ChannelStatistics.from_sums(*total) for name, total in sums.items()}


def collate_videos(videos: Sequence[tuple[dict[str, Tensor], Tensor]], steps: Sequence[int]) -> VideoBatch:
    """Zero-pad ``FeatureSource.read`` results in time into a float16 ``VideoBatch`` on their device.

    Args:
        videos: one (layers, fc7) per video.
        steps: (B,) top-layer steps T_L per video; layer l, stored with r_l·T_L steps, is padded
            to max(T_L)·r_l.
    """
    longest = max(steps)
    device = videos[0][1].device
    features = {}
    for name in videos[0][0]:
        first = videos[0][0][name]
        ratio = len(first) // steps[0]
        padded = torch.zeros((len(videos), longest * ratio, *first.shape[1:]), dtype=first.dtype, device=device)
        for row, (layers, _) in enumerate(videos):
            padded[row, : len(layers[name])] = layers[name]
        features[name] = padded
    fc7 = torch.stack([fc7 for _, fc7 in videos])
    return VideoBatch(features, torch.tensor(list(steps), dtype=torch.long, device=device), fc7)


def pad_tokens(captions: Sequence[Sequence[int]]) -> Tensor:
    """(B, T) long: each caption (y_1 … y_n, <eos>) followed by <pad> up to the longest."""
    tokens = torch.full((len(captions), max(map(len, captions))), PAD_ID, dtype=torch.long)
    for row, caption in enumerate(captions):
        tokens[row, : len(caption)] = torch.tensor(caption, dtype=torch.long)
    return tokens


class CaptionBatches(Dataset):
    """Items that are (video, caption) pairs or bare videos, fetched a whole batch at a time.

    ``dataset[[i, j, …]]`` reads the distinct videos among items i, j, … (each once)
    and returns their ``CaptionBatch``. ``lengths`` (per item, pool5 steps) feed
    ``BucketBatchSampler``.

    Args:
        features: where videos' features come from (a ``FeatureReader`` or a ``FeatureCache``).
        video_ids: video of each item.
        captions: token ids of each item's caption (ending in <eos>), or None for videos only.
    """

    def __init__(
        self, features: FeatureSource, video_ids: Sequence[str], captions: Sequence[Sequence[int]] | None = None
    ) -> None:
        if captions is not None and len(captions) != len(video_ids):
            raise ValueError(f"{len(video_ids)} items but {len(captions)} captions")
        self.features = features
        self.video_ids = list(video_ids)
        self.captions = None if captions is None else [tuple(caption) for caption in captions]
        steps = {video_id: features.top_steps(video_id) for video_id in dict.fromkeys(self.video_ids)}
        self.lengths = [steps[video_id] for video_id in self.video_ids]

    def __len__(self) -> int:
        return len(self.video_ids)

    def __getitem__(self, indices: Sequence[int]) -> CaptionBatch:
        ids = [self.video_ids[index] for index in indices]
        rows = {video_id: row for row, video_id in enumerate(dict.fromkeys(ids))}
        lengths = {self.video_ids[index]: self.lengths[index] for index in indices}
        videos = collate_videos([self.features.read(video_id) for video_id in rows], [lengths[video_id] for video_id in rows])
        tokens = None if self.captions is None else pad_tokens([self.captions[index] for index in indices])
        return CaptionBatch(ids, videos, torch.tensor([rows[video_id] for video_id in ids]), tokens)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of item indices grouped by video length; shuffled and seeded per epoch.

    With ``shuffle``: items are sorted by (length, a random key), cut into batches of
    ``batch_size``, and the batches put in random order, so batch contents and order
    change every epoch while each batch holds videos of nearly equal length. Without
    ``bucketing`` the items are only shuffled before cutting. Without ``shuffle``
    (evaluation) items are sorted by length, stably, and batches kept in that order.
    The randomness of epoch e comes from ``numpy.random.default_rng([seed, e])`` only,
    so an epoch's batches do not depend on anything else.

    Captions per video C > 1 (``videos`` names each item's video): each video's items
    are shuffled and cut into groups of C, and the groups take the items' place above,
    ``batch_size // C`` groups a batch. A batch of ``batch_size`` captions then holds
    ``batch_size // C`` videos, each aligned once (``ASTAR.loss``'s ``caption_videos``);
    a video's last group, and so a few batches, may hold fewer captions. Every item is
    still visited once an epoch. C = 1 gives exactly the batches of one item per group.

    Distributed training (``world_size`` processes, this one ``rank``): every process
    draws the same global batches and takes groups ``rank``, ``rank + world_size``, … of
    each, so the processes together see what one process would, a video's captions stay
    on one process, and ``batch_size`` stays the global batch. In training a last batch
    with fewer groups than processes is left out (every process must take part in every
    step); in evaluation (no ``shuffle``) every item is kept, and a process with no share
    of the last batch skips it.

    ``set_epoch(e, skip=k)`` selects epoch e and skips its first k batches (resuming).
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True, bucketing: bool = True,
        captions_per_video: int = 1, videos: Sequence[object] | None = None, rank: int = 0, world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 1 <= captions_per_video <= batch_size:
            raise ValueError(f"captions per video must be between 1 and the batch size {batch_size}, got {captions_per_video}")
        if captions_per_video > 1 and (videos is None or len(videos) != len(lengths)):
            raise ValueError("captions per video above 1 need the video of every item")
        if batch_size // captions_per_video < world_size:
            raise ValueError(f"a batch of {batch_size // captions_per_video} videos cannot be shared by {world_size} processes")
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.bucketing = bucketing
        self.captions_per_video = captions_per_video
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.skip = 0
        items_of: dict[object, list[int]] = {}
        for index, video in enumerate(videos if captions_per_video > 1 else ()):
            items_of.setdefault(video, []).append(index)
        self._video_items = [np.asarray(items) for items in items_of.values()]
        groups = sum(-(-len(items) // captions_per_video) for items in self._video_items)
        self._group_count = groups if captions_per_video > 1 else len(self.lengths)

    @property
    def groups_per_batch(self) -> int:
        """Videos a batch holds (items when C = 1): ``batch_size // captions_per_video``."""
        return self.batch_size // self.captions_per_video

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _groups(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Items in groups of up to C captions of one video (their captions shuffled); each item alone when C = 1."""
        if self.captions_per_video == 1:
            return list(np.arange(len(self.lengths))[:, None])
        size = self.captions_per_video
        groups = []
        for items in self._video_items:
            items = rng.permutation(items) if self.shuffle else items
            groups += [items[start : start + size] for start in range(0, len(items), size)]
        return groups

    def batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch``, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        groups = self._groups(rng)
        lengths = self.lengths[[group[0] for group in groups]]
        if not self.shuffle:
            order = np.argsort(lengths, kind="stable")
        elif self.bucketing:
            order = np.lexsort((rng.random(len(groups)), lengths))
        else:
            order = rng.permutation(len(groups))
        per = self.groups_per_batch
        batches = [order[start : start + per] for start in range(0, len(order), per)]
        if self.shuffle:
            batches = [batches[index] for index in rng.permutation(len(batches))]
        # Every process draws the same batches, then keeps its share of those it takes part in.
        return [np.concatenate([groups[index] for index in batch[self.rank :: self.world_size]]).tolist()
                for batch in batches if len(batch) >= self._least_share]

    def __iter__(self):
        return iter(self.batches(self.epoch)[self.skip :])

    @property
    def _least_share(self) -> int:
        """Groups a batch needs for this process to take it: one each for every process in training, a share in evaluation."""
        return self.world_size if self.shuffle else self.rank + 1

    def __len__(self) -> int:
        last = self._group_count % self.groups_per_batch  # groups in the short last batch
        return self._group_count // self.groups_per_batch + (last >= self._least_share) - self.skip


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the padded time steps in ``batches`` that are padding (0 = none)."""
    padded = sum(max(lengths[index] for index in batch) * len(batch) for batch in batches)
    return 1.0 - sum(lengths[index] for batch in batches for index in batch) / padded


def _whole(batch: CaptionBatch) -> CaptionBatch:
    """The dataset already returns whole batches; nothing to collate."""
    return batch


def make_loader(
    dataset: CaptionBatches, sampler: BucketBatchSampler, workers: int = DEFAULT_LOADER_WORKERS, persistent: bool = False,
    target: torch.device = torch.device("cpu"),
) -> DataLoader:
    """A ``DataLoader`` of ``CaptionBatch`` in ``sampler``'s order, read by ``workers`` processes, for a model on ``target``.

    The order is the sampler's whatever the number of workers (0 reads in this process).
    Batches for a CUDA model come in pinned memory, so ``CaptionBatch.to`` copies them
    without waiting; batches gathered on the GPU already (a ``FeatureCache`` there) are
    made in this process, as CUDA tensors cannot be made in forked workers.
    """
    on_device = dataset.features.device.type != "cpu"
    workers = 0 if on_device else workers
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        collate_fn=_whole,
        num_workers=workers,
        persistent_workers=persistent and workers > 0,
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
        pin_memory=target.type == "cuda" and not on_device,
        # A private generator: creating worker iterators must not draw from torch's global RNG.
        generator=torch.Generator().manual_seed(sampler.seed),
    )
