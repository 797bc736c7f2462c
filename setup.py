"""Which packages the wheel holds: every package folder under the three stage folders.

pyproject.toml holds the metadata; setuptools cannot prefix the packages it finds, and
the folders ``extract/``, ``train/`` and ``pipelines/`` install as ``astar.extract``,
``astar.train`` and ``astar.pipelines``, so the prefixing is done here. A package added
inside a stage (``extract/backbones/``) is found without listing it anywhere.
"""
from setuptools import find_packages, setup

STAGES = ("extract", "train", "pipelines")

found = find_packages(include=[pattern for stage in STAGES for pattern in (stage, f"{stage}.*")])
setup(
    packages=[f"astar.{name}" for name in found],
    package_dir={f"astar.{name}": name.replace(".", "/") for name in found},
)
