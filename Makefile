# Two entry points for a fresh machine (Python >= 3.10): `make quickstart` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q

.PHONY: quickstart test bench env

env:
	bash scripts/bootstrap.sh $(VENV)

quickstart: env
	$(VENV)/bin/hap3d quickstart --out runs/quickstart

test: env
	$(PY) -m pytest $(PYTEST_ARGS)

bench: env
	$(PY) benchmarks/bench_model.py
