"""Shared test configuration: GPU marker handling, CPU threads, and the path to ../shared/fixtures."""
from pathlib import Path

import pytest
import torch

from astar.extract.devices import use_available_cores

# The suite runs where astar's users run it, in containers with CPU quotas too: torch and
# every child process it starts get the cores the quota gives, as every command does
# (``astar.extract.devices.resolve_device``), not one thread per host core.
use_available_cores()

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """Folder of real fixture files shipped beside the repository (videos, annotations)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES
