#!/usr/bin/env bash
# The tests, as CI runs them (.ci/run): lint, the documentation build, then the two pytest tiers.
# unit: tiny random models, seconds each (-m "not slow"); slow: real data and model, several
# processes, the benchmark scripts' smoke runs (-m slow). pytest's summary line is printed last.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
"$BIN/ruff" check .
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 "$BIN/mkdocs" build --strict --quiet --site-dir "$site"
tier() {  # pytest exits 5 when a tier selects no tests: not a failure
  local rc=0
  "$BIN/python" -m pytest -q -p no:cacheprovider "$@" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
}
tier -m "not slow"
tier -m slow
