#!/usr/bin/env bash
# Run the whisperx tests (marker `whisperx`) in the separate, cached whisperx virtualenv.
# Builds/refreshes it first with scripts/whisperx-venv.sh (a no-op when it is up to date).
# Extra arguments go to pytest.  Used by `make test-whisperx`.
# --confcutdir keeps pytest from loading tests/conftest.py, whose service fixtures import
# psycopg/redis/celery that the whisperx venv does not have.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(bash scripts/whisperx-venv.sh | tail -n1)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYANNOTE_METRICS_ENABLED=0
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -m pytest -q -ra -m whisperx \
  --confcutdir=tests/transcribe tests/transcribe "$@"
