#!/usr/bin/env bash
# Sets up and runs the whole test suite: lint, unit, integration (real Kafka, Cassandra,
# Spark, SMTP) and browser tests (headless Chromium). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export DASH_TEST_CHROMEPATH=/usr/bin/chromium SE_CHROMEDRIVER=/usr/bin/chromedriver SE_OFFLINE=true

echo "== ruff"
.venv/bin/ruff check .

echo "== import-linter (layering: pyproject.toml [tool.importlinter])"
.venv/bin/lint-imports

echo "== pip-audit (known vulnerabilities in the locked dependencies)"
bash scripts/audit_deps.sh

echo "== pytest"
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: that is a broken setup, not a pass" >&2
  exit 1
fi
exit $rc
