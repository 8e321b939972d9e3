#!/usr/bin/env bash
# Lint, type-check and run the whole test suite (what .ci/run calls after scripts/setup.sh test).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/.venv/bin"
"$bin/ruff" check memos_mcp tests benchmarks
"$bin/mypy" memos_mcp
"$bin/python" -m pytest "$@"
