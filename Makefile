# Two entry points for a fresh machine (Python >= 3.10): `make quickstart` and `make test`.
# Both install the exact versions of requirements/lock.txt into .venv (see scripts/bootstrap.sh).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q
# MediaPipe (for `hap3d demo --detector mediapipe`) pins numpy<2, so its own venv; the tests run it from there.
# HAP3D_SKIP_MEDIAPIPE=1 skips creating it and the tests that need it.
DETECT_VENV ?= .venv-detect
export HAP3D_MEDIAPIPE_PYTHON ?= $(abspath $(DETECT_VENV))/bin/python

.PHONY: quickstart test test-isa wheel-check lint lock bench env detect-env

env:
	bash scripts/bootstrap.sh $(VENV)

detect-env: env
	@if [ -z "$$HAP3D_SKIP_MEDIAPIPE" ]; then \
	  $(VENV)/bin/hap3d detect --setup --venv $(DETECT_VENV) --constraints requirements/detect-lock.txt; fi

quickstart: env
	$(VENV)/bin/hap3d quickstart --out runs/quickstart

test: env detect-env
	$(PY) -m pytest $(PYTEST_ARGS)

# The numerics-sensitive tests again with other CPUs' kernels (portable / SSE4.1, and AVX2 on AVX-512 machines).
test-isa: env
	bash scripts/test_isa.sh $(PY) $(PYTEST_ARGS)

# Build the wheel, install it into a fresh venv outside the repository and run the installed commands.
wheel-check: env
	bash scripts/wheel_check.sh $(PY)

lint: env
	$(PY) -m ruff check src tests benchmarks

# After a green run: record the environment it ran in as the new lock.
lock: test
	bash scripts/lock.sh $(VENV) $(DETECT_VENV)

bench: env
	$(PY) benchmarks/bench_model.py
