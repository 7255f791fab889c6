#!/usr/bin/env bash
# Checks the locked Python dependencies (uv.lock, exported with their hashes) against the
# vulnerability data PyPI publishes (pip-audit, --vulnerability-service pypi: only PyPI
# needs to be reachable). Fails on any known vulnerability that is not listed in
# scripts/audit-ignore.txt (one "ID  # why" per line, reviewed like code).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP_AUDIT_VERSION=2.9.0
UV=${UV:-${ICU_CACHE_DIR:-$HOME/.cache/icu-monitor}/tools/uv-0.13.9/bin/uv}
TOOLS=${ICU_CACHE_DIR:-$HOME/.cache/icu-monitor}/tools/pip-audit-$PIP_AUDIT_VERSION
if [ ! -x "$TOOLS/bin/pip-audit" ]; then
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q "pip-audit==$PIP_AUDIT_VERSION"
fi
req=$(mktemp)
trap 'rm -f "$req"' EXIT
"$UV" export --frozen --extra test --no-emit-project --format requirements-txt \
  --quiet > "$req"
ignores=()
if [ -f scripts/audit-ignore.txt ]; then
  while read -r id _; do
    [ -n "$id" ] && [ "${id:0:1}" != "#" ] && ignores+=(--ignore-vuln "$id")
  done < scripts/audit-ignore.txt
fi
# pip-audit asks PyPI's JSON API per release. Where that is not reachable (a sandbox
# whose registry proxy serves packages only) it would "pass" having audited nothing:
# --strict fails then; without the API the audit is reported as NOT done, and fails
# only where ICU_REQUIRE_AUDIT=1 says an audit is mandatory.
if ! curl -fsS -m 20 -o /dev/null https://pypi.org/pypi/pip/24.0/json; then
  echo "pip-audit: PyPI's vulnerability data is not reachable from this machine:" \
       "dependency audit NOT done" >&2
  [ "${ICU_REQUIRE_AUDIT:-0}" = "1" ] && exit 1
  exit 0
fi
"$TOOLS/bin/pip-audit" --requirement "$req" --require-hashes --disable-pip --strict \
  --vulnerability-service pypi --progress-spinner off "${ignores[@]}"
