# Everything runs from a local virtual environment in .venv, made on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# CPU torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

## The main job end to end on embedded defaults.
demo: $(STAMP)
	$(VENV)/bin/python -m astar.pipelines.demo

## The whole test suite; the slowest tests are listed at the end, so a slow machine shows where its time went.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q --durations=25

## Every benchmark; the loader's reads the demo's store when `make demo` made one (the feature cache's
## trains at paper widths, so it keeps to its own 8 clips).
bench: $(STAMP)
	$(PY) benchmarks/extract.py
	$(PY) benchmarks/model.py
	$(PY) benchmarks/cluster.py
	$(PY) benchmarks/cider.py
	$(PY) benchmarks/startup.py
	$(PY) benchmarks/store_index.py
	$(PY) benchmarks/codec_choice.py
	$(PY) benchmarks/datapath.py
	$(PY) benchmarks/stream_memory.py
	$(PY) benchmarks/loader.py $$(test -d demo_output/feats.zarr && echo demo_output/feats.zarr || echo --small)
	$(PY) benchmarks/feature_cache.py --small

clean:
	rm -rf $(VENV) demo_output .pytest_cache
