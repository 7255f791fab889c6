#!/usr/bin/env bash
# Rebuilds the demo's shipped risk model (ops/demo_model/*.tar.gz): trains on the full
# PhysioNet/CinC 2019 set A in ../shared/data/physionet2019 (seed 0, default settings),
# evaluates it on its held-out test patients and under the site-robust splits (retrains
# the recipe on each ICU type, sites.json) and packs the version without its Spark
# directory. About 4 minutes on 2 cores. Run it after a change of the features, the
# model format or the evaluation (tests/unit/ops/test_demo_model.py says when).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ICU_CACHE_DIR="$work"
.venv/bin/icu model train --seed 0 --activate --quiet
.venv/bin/icu model evaluate --quiet
.venv/bin/icu model sites --quiet
version=$(.venv/bin/icu model list --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["active"])')
rm -f ops/demo_model/*.tar.gz
.venv/bin/icu model export "$version" "ops/demo_model/sepsis-gbt-$version.tar.gz"
