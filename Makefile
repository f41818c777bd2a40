# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment first; torch is pinned and installed before the
# project so pip never pulls a multi-GB CUDA build on a CPU machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test test-fast lint docs clean

$(BIN)/cram: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e '.[test,bench,hf,docs]'
	touch $(BIN)/cram

venv: $(BIN)/cram

demo: venv
	$(BIN)/cram demo --out demo-out

test: venv
	$(BIN)/python -m pytest -q

# The inner loop: no training, no other process (tests/conftest.py holds it to that).
test-fast: venv
	$(BIN)/python -m pytest -q -m "not train and not subprocess and not slow and not gpu"

lint: venv
	$(BIN)/ruff check .

# The documentation site (docs/, mkdocs.yml) into site-docs/; --strict fails on a broken link.
docs: venv
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) demo-out site-docs
