"""astar.pipelines: end-to-end flows built only from astar.extract's and astar.train's public APIs."""
from .cluster import extract_on_cluster

__all__ = ["extract_on_cluster"]
