# Shared settings for the scripts in this folder. Sourced, not run.
# TEKTRA_DATA holds everything fetched or generated for tests and benches,
# outside git and outside the clone, so a second clone reuses it.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export TEKTRA_DATA="${TEKTRA_DATA:-$HOME/.cache/tektra}"
export TEKTRA_VENV="${TEKTRA_VENV:-$TEKTRA_DATA/venv}"
export TEKTRA_PYTHON="$TEKTRA_VENV/bin/python"
# Benchmarks' own venv (llama-cpp-python), apart so tests never pay for it.
export TEKTRA_BENCH_VENV="${TEKTRA_BENCH_VENV:-$TEKTRA_DATA/venv-bench}"
export TEKTRA_TEST_MODEL="${TEKTRA_TEST_MODEL:-$TEKTRA_DATA/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
# CI keeps the cargo target dir outside the clone so runs can share it,
# without incremental caches: a fresh clone gains little from them and they
# grow by gigabytes (the disk is shared with everything else on the machine).
if [ -n "${CI:-}" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="$TEKTRA_DATA/ci-target"
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# warn_if_disk_low DIR GIB: says so, up front, when the filesystem holding
# DIR has less than GIB GiB free, rather than letting a build or a test
# fail later with "No space left on device".
warn_if_disk_low() {
  local dir="$1" want="$2" free
  mkdir -p "$dir"
  free="$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')"
  if [ "$free" -lt "$want" ]; then
    log "WARNING: ${free} GiB free under $dir; the build and tests need about ${want} GiB there"
  fi
}

# ensure_venv DIR REQUIREMENTS: a venv at DIR with REQUIREMENTS installed,
# redone only when that file changes (a stamp of its sha256 in DIR).
ensure_venv() {
  local dir="$1" req="$2"
  local stamp="$dir/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "preparing Python venv at $dir (from $(basename "$req"))"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet -r "$req"
    echo "$want" > "$stamp"
  fi
}

# llama_cpp_build_env: the build settings for llama-cpp-python in the bench
# venv. ggml's AMX path segfaults at the first evaluation in 0.3.36 on Xeons
# with AMX, so there llama.cpp is built for AVX-512 (and VNNI) without AMX
# instead of for the native CPU; everywhere else, natively. Either way the
# multimodal library and examples are left out and both cores compile.
# Prints which build it chose (the bench output repeats it).
llama_cpp_build_env() {
  local flags
  flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
  local common="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
  if [[ "$flags" == *amx_tile* ]]; then
    local vnni=OFF
    [[ "$flags" == *avx512_vnni* ]] && vnni=ON
    export CMAKE_ARGS="${CMAKE_ARGS:-$common -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=$vnni -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF}"
    log "llama.cpp build: AVX-512 without AMX (this CPU has AMX, whose ggml path crashes)"
  else
    export CMAKE_ARGS="${CMAKE_ARGS:-$common -DGGML_NATIVE=ON}"
    log "llama.cpp build: native for this CPU"
  fi
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
}

# The regression gate's tools: valgrind (Debian's package) and gungraun's
# runner, whose version must equal the gungraun library's in
# benches/check/Cargo.toml.
GUNGRAUN_VERSION=0.20.0
# The Python bindings (bindings/python, PyO3) built with maturin into the
# test venv: the dev profile and target dir the test build uses, so after
# that build only the bindings' own crate compiles.
ensure_bindings() {
  VIRTUAL_ENV="$TEKTRA_VENV" PATH="$TEKTRA_VENV/bin:$PATH" \
    "$TEKTRA_VENV/bin/maturin" develop --quiet --manifest-path "$ROOT/bindings/python/Cargo.toml"
}

# Debian's Chromium and its WebDriver (the daemon page's browser test),
# and curl (the daemon's event streams read by a client we did not write).
ensure_browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1 \
      || ! command -v curl >/dev/null 2>&1; then
    log "installing chromium, chromium-driver and curl (Debian packages)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver curl >/dev/null
  fi
}

ensure_gate_tools() {
  if ! command -v valgrind >/dev/null 2>&1; then
    log "installing valgrind (Debian package)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo apt-get install -y -qq valgrind >/dev/null
  fi
  if [ "$(gungraun-runner --version 2>/dev/null | awk '{print $2}')" != "$GUNGRAUN_VERSION" ]; then
    log "installing gungraun-runner $GUNGRAUN_VERSION"
    cargo install --locked --quiet gungraun-runner --version "$GUNGRAUN_VERSION"
  fi
}
