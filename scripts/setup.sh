#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine (idempotent):
# Chromium + chromedriver for browser tests, a Python venv with the project, and the
# Kafka / Cassandra / Spark-connector artefacts from Maven Central (cached outside the repo).
#
# Python packages come from uv.lock (every version and sha256 pinned, for Python 3.11 and
# 3.12 on every platform): `uv sync --locked` installs exactly that, and fails when
# pyproject.toml changed without `uv lock`. uv itself is installed from PyPI, at the
# pinned version below, into a tools venv outside the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# a JDK, not a JRE: the secured Cassandra compiles its audit query handler (javac)
command -v javac >/dev/null 2>&1 || need_apt+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
UV_VERSION=0.13.9
TOOLS=${ICU_CACHE_DIR:-$HOME/.cache/icu-monitor}/tools/uv-$UV_VERSION
if [ ! -x "$TOOLS/bin/uv" ]; then
  echo "== installing uv $UV_VERSION (tools venv $TOOLS)"
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q "uv==$UV_VERSION"
fi
export UV="$TOOLS/bin/uv"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml uv.lock | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "== installing Python packages (uv.lock)"
  UV_PROJECT_ENVIRONMENT=.venv "$UV" sync --locked --extra test --python .venv/bin/python
  rm -f .venv/.installed-*; touch "$stamp"
fi

echo "== fetching Kafka, Cassandra and Spark connector jars (cached)"
.venv/bin/icu services fetch
