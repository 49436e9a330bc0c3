# Shared settings for the scripts in this folder. Sourced, not run.
# TEKTRA_DATA holds everything fetched or generated for tests and benches,
# outside git and outside the clone, so a second clone reuses it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TEKTRA_DATA="${TEKTRA_DATA:-$HOME/.cache/tektra}"
export TEKTRA_VENV="${TEKTRA_VENV:-$TEKTRA_DATA/venv}"
export TEKTRA_PYTHON="$TEKTRA_VENV/bin/python"
export TEKTRA_TEST_MODEL="${TEKTRA_TEST_MODEL:-$TEKTRA_DATA/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
# CI keeps the cargo target dir outside the clone so runs can share it.
if [ -n "${CI:-}" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="$TEKTRA_DATA/ci-target"
fi
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
