"""Weights files and checkpoints that are damaged or hold code: one line naming the file, from one loader."""
import os
import pickle

import pytest
import torch
from click.testing import CliRunner

from astar.extract.c3d import load_weights, random_init
from astar.extract.cli import main as extract_main
from astar.extract.weights import WeightsError
from astar.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def damage(path, how):
    """Damage a saved file as a disk, a copy or a hostile sender does."""
    data = path.read_bytes()
    if how == "truncated to 5000 bytes":  # torch.load: OSError [Errno 22]
        path.write_bytes(data[:5000])
    elif how == "truncated to 100 bytes":  # RuntimeError from the zip reader
        path.write_bytes(data[:100])
    elif how == "empty":  # EOFError
        path.write_bytes(b"")
    elif how == "text":  # KeyError from the legacy unpickler
        path.write_text("hello world " * 20)
    elif how == "pickled code":
        torch.save({"model": os.getcwd}, path)
    elif how == "legacy pickle with code":
        path.write_bytes(pickle.dumps({"model": os.getcwd}))


HOW = ["truncated to 5000 bytes", "truncated to 100 bytes", "empty", "text", "pickled code", "legacy pickle with code"]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "c3d.pickle"
    torch.save(random_init(0)[0].state_dict(), path)
    return path


def expected(path, how, what):
    if how == "pickled code":  # a protocol-2 reference to code is named; protocol 4's cannot be told from garbage
        return f"{path}: refused: it holds pickled code or objects other than tensors and plain data, which astar never loads"
    if how == "legacy pickle with code":
        return f"{path}: not a readable {what}: not a PyTorch file, or it holds pickled code"
    return f"{path}: not a readable {what}, truncated or corrupt ("


@pytest.mark.parametrize("what", ["weights file", "checkpoint"])
@pytest.mark.parametrize("how", HOW)
def test_a_damaged_weights_file_or_checkpoint_is_one_line(weights_file, tmp_path, how, what):
    path = tmp_path / "file.pt"
    if what == "weights file":
        path.write_bytes(weights_file.read_bytes())
    else:
        save_checkpoint({"model": {"w": torch.zeros(300, 300)}, "model_config": {}}, path)
    damage(path, how)
    load, error = (load_weights, WeightsError) if what == "weights file" else (load_checkpoint, CheckpointError)
    with pytest.raises(error) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(expected(path, how, what)) and "\n" not in message
    assert "weights_only" not in message


def test_astar_extract_with_truncated_weights_exits_1_in_one_line(weights_file, tmp_path):
    path = tmp_path / "c3d.pickle"
    path.write_bytes(weights_file.read_bytes()[:5000])
    (tmp_path / "v.mp4").write_bytes(b"")
    result = CliRunner().invoke(extract_main, [str(tmp_path / "v.mp4"), "--out", str(tmp_path / "f.zarr"),
                                               "--weights", str(path), "-q"])
    assert result.exit_code == 1
    assert f"Error: {path}: not a readable weights file, truncated or corrupt" in result.stderr
    assert "Traceback" not in result.output
