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

# pytest exits 5 when it collects nothing: a broken setup, not a pass
run_pytest() {
  local rc=0
  .venv/bin/pytest "$@" || rc=$?
  if [ $rc -eq 5 ]; then
    echo "pytest collected no tests: that is a broken setup, not a pass" >&2
    return 1
  fi
  return $rc
}

if [ $# -gt 0 ]; then  # a selection of one's own
  echo "== pytest $*"
  run_pytest "$@"
  exit $?
fi

rc=0
echo "== pytest (unit, integration, browser)"
run_pytest || rc=$?
# A second session: the replicated set (3 brokers, 3 Cassandra nodes) is started once for
# these and stopped after them, never idling beside the main suite's tests.
echo "== pytest -m replicated (replicated set: node kills, backups, the short fault campaign)"
run_pytest -m replicated || rc=$?
exit $rc
