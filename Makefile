# The two commands a fresh machine needs: `make serve` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE := $(VENV)/.installed-core

.PHONY: serve test lint typecheck bench-proxy bench-engine soak

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# `make serve` installs agentgate alone; `make test` (and the other targets) add the dev extras.
$(CORE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(CORE)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP) $(CORE)

serve: $(CORE)
	$(BIN)/agentgate serve --config config.yaml

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite starts over a hundred Python processes (routers, engine workers, fake servers): they cache the project's
# bytecode even where the environment turns that off (PYTHONDONTWRITEBYTECODE), ~0.25 s saved on each later start.
# The system tools and agent CLIs (tests/prepare.sh: apt and npm) install while pip installs and ruff and mypy run:
# on a clean machine the two waits overlap instead of adding up. (That line calls $(MAKE), so `make -n test` runs it.)
test:
	@bash tests/prepare.sh & prepare=$$!; \
	$(MAKE) --no-print-directory $(STAMP) && echo "$(BIN)/ruff check ." && $(BIN)/ruff check . \
	  && echo "$(BIN)/mypy" && $(BIN)/mypy; checks=$$?; \
	wait $$prepare; prepared=$$?; [ $$checks = 0 ] || exit $$checks; exit $$prepared
	HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -p no:cacheprovider

bench-proxy: $(STAMP)
	$(BIN)/python bench/proxy/run.py

bench-engine: $(STAMP)
	$(BIN)/python bench/engine/run.py --tiny-size small,medium --agents 16

soak: $(STAMP)
	$(BIN)/python bench/soak/run.py
