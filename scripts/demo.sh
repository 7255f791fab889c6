#!/usr/bin/env bash
# Sets up and runs the whole system locally: Kafka, Cassandra, the Spark job, the
# simulator and the web app. Prints the URL and the demo logins. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/icu demo "$@"
