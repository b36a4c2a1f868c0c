# mediarunner — `make demo` and `make test` are the two commands a new user needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= test,transcribe,s3,sftp
UV     ?= uv
# Locks (requirements/*.lock): pinned with hashes for Linux x86-64, Python 3.11; `make lock` after a dependency change.
LOCK   := $(UV) pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
          --no-header --annotation-style line --quiet

.PHONY: all venv lock system-deps demo test test-rabbitmq test-fast test-soak test-whisperx lint bench bench-smoke clean

all: test

# The locked versions first (dev.lock: the test, transcribe, s3 and sftp extras), then mediarunner itself.
$(BIN)/.installed: pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements/dev.lock
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	touch $@

lock:
	$(LOCK) pyproject.toml --extra s3 --extra sftp --extra transcribe -o requirements/runtime.lock
	$(LOCK) pyproject.toml --extra s3 --extra sftp --extra transcribe --extra whisperx -o requirements/gpu.lock
	$(LOCK) pyproject.toml --extra test --extra s3 --extra sftp --extra transcribe -o requirements/dev.lock
	$(LOCK) requirements/build.in -o requirements/build.lock

venv: $(BIN)/.installed

system-deps:
	@bash scripts/system-deps.sh

demo: venv system-deps
	@bash scripts/demo.sh

test: venv system-deps
	@bash scripts/with-services.sh $(BIN)/python -m pytest -q -ra -m "not soak and not rabbitmq" $(PYTEST_ARGS)
	@bash scripts/with-services.sh $(BIN)/python -m pytest -q -ra -m "rabbitmq and not soak" $(PYTEST_ARGS)

test-rabbitmq: venv system-deps
	@bash scripts/with-services.sh $(BIN)/python -m pytest -q -ra -m "rabbitmq and not soak" $(PYTEST_ARGS)

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
