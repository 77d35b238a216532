#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the Python packages into .venv and the
# JS clients into tests/js/node_modules and tests/s2/sdk_js/node_modules, then runs lint,
# format and type checks and pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k replay`).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"

if command -v npm >/dev/null 2>&1; then
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
  # The official S2 TypeScript SDK, run against the bundled S2 server (tests/s2/test_official_sdks.py).
  (cd tests/s2/sdk_js && npm ci --no-audit --no-fund --loglevel=error)
  # The React example (examples/react-chat), which the browser tests build and open.
  (cd examples/react-chat && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "npm not found: the JS client tests will be skipped" >&2
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
.venv/bin/pytest "$@"
