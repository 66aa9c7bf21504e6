# Two entry points for a fresh machine (Python >= 3.10): `make quickstart` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q
# MediaPipe (for `hap3d demo --detector mediapipe`) pins numpy<2, so its own venv; the tests run it from there.
# HAP3D_SKIP_MEDIAPIPE=1 skips creating it and the tests that need it.
DETECT_VENV ?= .venv-detect
export HAP3D_MEDIAPIPE_PYTHON ?= $(abspath $(DETECT_VENV))/bin/python

.PHONY: quickstart test bench env detect-env

env:
	bash scripts/bootstrap.sh $(VENV)

detect-env: env
	@if [ -z "$$HAP3D_SKIP_MEDIAPIPE" ]; then $(VENV)/bin/hap3d detect --setup --venv $(DETECT_VENV); fi

quickstart: env
	$(VENV)/bin/hap3d quickstart --out runs/quickstart

test: env detect-env
	$(PY) -m pytest $(PYTEST_ARGS)

bench: env
	$(PY) benchmarks/bench_model.py
