"""Handing a decoded video from a decoder process to its parent: the frames through a file, the rest through the pipe.

A message on a ``multiprocessing`` pipe is read into a growing buffer and unpickled into
another array: measured on a 30-minute clip, 129 MB of frames cost the parent 342 MB of
peak memory, in heap blocks, so a long video's extraction grew with its length beyond
its frames. Here the child writes the
frames to a file the parent named (``frames_path``, in the temporary folder) and sends
the rest of the video; the parent maps the file copy-on-write and deletes it at once.
The frames then cost the parent their size once, as file pages the kernel can reclaim,
and go back to the OS with the array. Where the file cannot be written (a full or
read-only temporary folder) the child sends the whole video through the pipe instead.
"""
from __future__ import annotations

import contextlib
import math
import mmap
import os
import tempfile
import uuid
from dataclasses import dataclass, replace

import numpy as np

from .decode import DecodedVideo

FRAMES_PREFIX = "astar-frames-"
"""Name prefix of the frame files in the temporary folder (each lives from a decode to its parent's mapping)."""


@dataclass(frozen=True)
class FramesInFile:
    """A decoded video whose frames wait in ``path``: (``shape``) uint8, C order; ``video.frames`` is empty."""

    video: DecodedVideo
    path: str
    shape: tuple[int, ...]


def frames_path() -> str:
    """A fresh path for one video's frames, in the temporary folder (``TMPDIR``); the parent deletes it."""
    return os.path.join(tempfile.gettempdir(), f"{FRAMES_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.u8")


def pack(video: DecodedVideo, path: str) -> DecodedVideo | FramesInFile:
    """In the child: write ``video``'s frames to ``path`` and return what the pipe carries; the video
    itself when the file cannot be written."""
    frames = np.ascontiguousarray(video.frames)
    try:
        with open(path, "xb") as handle:
            handle.write(frames.data)
    except OSError:
        discard(path)
        return video
    return FramesInFile(replace(video, frames=frames[:0]), path, frames.shape)


def unpack(reply: DecodedVideo | FramesInFile) -> DecodedVideo:
    """In the parent: the video with its frames mapped from their file, which is deleted.

    Raises:
        OSError: the file cannot be read.
    """
    if isinstance(reply, DecodedVideo):
        return reply
    try:
        frames = _mapped(reply.path, reply.shape)
    finally:
        discard(reply.path)
    return replace(reply.video, frames=frames)


def _mapped(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """(shape) uint8 frames mapped copy-on-write from ``path`` (writable; the file is not changed)."""
    nbytes = math.prod(shape)
    if nbytes == 0:
        return np.zeros(shape, np.uint8)
    with open(path, "rb") as handle:
        mapping = mmap.mmap(handle.fileno(), nbytes, access=mmap.ACCESS_COPY)
    return np.frombuffer(mapping, np.uint8, count=nbytes).reshape(shape)


def remove_orphans() -> list[str]:
    """Delete the frame files in the temporary folder whose parent process is gone (killed with
    SIGKILL between a decode and its mapping, it could not delete its file); the removed paths."""
    folder = tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            pid = name[len(FRAMES_PREFIX):].split("-", 1)[0]
            if name.startswith(FRAMES_PREFIX) and pid.isdigit() and not _alive(int(pid)):
                discard(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def discard(path: str) -> None:
    """Delete a frame file if it is there (a video abandoned in flight may have left one)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
