"""Two gloo processes under DistributedDataParallel train the parameters one process trains on the same global batches."""
from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grad_norm_

from astar.train.model_config import C3D_GEOMETRY, ModelConfig
from astar.train.video_batch import VideoBatch, random_batch
from astar.train.distributed import Objective, Processes, word_mean
from astar.train.loader import BucketBatchSampler, pad_tokens
from astar.train.model import ASTAR

CONFIG = ModelConfig.small(20, pad_id=0, eos_id=1, layers=("pool4", "pool5"))
VIDEOS = 6
ITEMS = [(index % VIDEOS, [2 + (index * 7 + k) % 18 for k in range(1 + index % 5)] + [1]) for index in range(20)]
"""(video, caption tokens ending in <eos>) pairs: 20 captions of 6 videos, 2 to 6 words."""
STEPS = 3
TOP_RATIO = {layer.name: C3D_GEOMETRY[-1].time_stride // layer.time_stride for layer in C3D_GEOMETRY}
"""Time steps of each C3D layer per pool5 step."""


def features() -> VideoBatch:
    return random_batch([1, 2, 1, 2, 1, 1], CONFIG.layer_channels, CONFIG.fc7_dim, torch.Generator().manual_seed(1))


def batch_of(items: list[int], videos: VideoBatch) -> tuple[VideoBatch, torch.Tensor, torch.Tensor]:
    """The distinct videos of ``items`` (each once), their captions and each caption's video row."""
    rows = list(dict.fromkeys(ITEMS[item][0] for item in items))
    index = torch.tensor(rows)
    steps = videos.pool5_steps[index]
    longest = int(steps.max())
    chosen = VideoBatch(
        {name: value[index][:, : longest * TOP_RATIO[name]] for name, value in videos.features.items()},
        steps, videos.fc7[index],
    )
    caption_videos = torch.tensor([rows.index(ITEMS[item][0]) for item in items])
    return chosen, pad_tokens([ITEMS[item][1] for item in items]), caption_videos


def train(processes: Processes) -> dict[str, torch.Tensor]:
    """STEPS optimizer steps of this process's shares of the global batches of 8 captions, 2 per video."""
    torch.manual_seed(0)
    model = ASTAR(CONFIG)
    objective = Objective(model)
    if processes.distributed:
        objective = DistributedDataParallel(objective)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    sampler = BucketBatchSampler(
        [int(features().pool5_steps[video]) for video, _ in ITEMS], batch_size=8, seed=3, captions_per_video=2,
        videos=[video for video, _ in ITEMS], rank=processes.rank, world_size=processes.world_size,
    )
    videos = features()
    for items in sampler.batches(0)[:STEPS]:
        batch, tokens, caption_videos = batch_of(items, videos)
        optimizer.zero_grad()
        word_mean(objective(batch, tokens, caption_videos), tokens, CONFIG.pad_id).backward()
        clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def run_rank(rank: int, world_size: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    try:
        torch.save(train(Processes(rank, world_size)), Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_train_the_parameters_of_one_with_the_same_global_batch(tmp_path):
    mp.spawn(run_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    alone = train(Processes())
    torch.manual_seed(0)
    initial = ASTAR(CONFIG).state_dict()
    for rank in (0, 1):
        trained = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in alone.items():
            torch.testing.assert_close(trained[name], value, rtol=1e-4, atol=1e-5, msg=name)  # Adam magnifies float sums
    assert any(not torch.equal(alone[name], initial[name]) for name in alone)  # training moved them
