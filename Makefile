# mediarunner — `make demo` and `make test` are the two commands a new user needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= test,transcribe,s3,sftp

.PHONY: all venv system-deps demo test test-fast test-soak test-whisperx lint bench bench-smoke clean

all: test

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

venv: $(BIN)/.installed

system-deps:
	@bash scripts/system-deps.sh

demo: venv system-deps
	@bash scripts/demo.sh

test: venv system-deps
	@bash scripts/with-services.sh $(BIN)/python -m pytest -q -ra -m "not soak" $(PYTEST_ARGS)

test-soak: venv system-deps
	@bash scripts/with-services.sh $(BIN)/python -m pytest -q -ra -m soak $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -q -x -m "not slow" $(PYTEST_ARGS)

test-whisperx: system-deps
	@bash scripts/whisperx-tests.sh

lint: venv
	$(BIN)/ruff check mediarunner tests bench
	$(BIN)/mypy mediarunner

bench-smoke: venv system-deps
	@bash scripts/with-services.sh $(BIN)/python -m bench.run_all --smoke

bench: venv system-deps
	@bash scripts/with-services.sh $(BIN)/python -m bench.run_all

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
