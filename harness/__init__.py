"""The real system, run from tests and benchmarks: ``icu`` commands as child processes,
settings isolated per run (own topics, keyspace, checkpoints), Kafka in and out, and
waiting. ``tests/`` and ``bench/`` both import from here; the product never does."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
