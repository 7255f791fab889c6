"""The stream job's query supervisor (streaming/query_supervisor.py) on a real Spark driver:
a query whose micro-batch failed on the driver side is started again from its checkpoint,
in the same session, and runs the failed batch again with the same records - none
skipped, none twice. This is what PySpark's query manager must do for the supervisor to
be right (a failed query raises from awaitAnyTermination until resetTerminated, and its
checkpoint restarts it at the failed batch); the stream job's own queries restart through
the same calls (streaming/stream_cli.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backend.settings import Settings
from harness.spark import fresh_spark_jvm
from streaming.query_supervisor import QuerySupervisor
from streaming.session import spark_session

pytestmark = pytest.mark.integration

FAILING_BATCH = 2


def test_a_query_failed_on_the_driver_is_restarted_at_the_failed_batch(
        isolated_settings: Settings, tmp_path: Path) -> None:
    fresh_spark_jvm()
    spark = spark_session(isolated_settings, app_name="icu-query-restart")
    seen: list[tuple[int, list[int]]] = []  # (batch id, the rows' values) once it succeeded
    failures: list[int] = []

    def sink(frame, batch_id: int) -> None:
        values = sorted(r.value for r in frame.collect())
        if batch_id == FAILING_BATCH and not failures:
            failures.append(batch_id)
            raise RuntimeError("a fault that passes")
        seen.append((batch_id, values))

    def start():
        query = (spark.readStream.format("rate").option("rowsPerSecond", 20).load()
                 .writeStream.queryName("restart-test").foreachBatch(sink)
                 .option("checkpointLocation", str(tmp_path / "checkpoint"))
                 .trigger(processingTime="500 milliseconds").start())
        return query, None

    supervisor = QuerySupervisor(spark.streams, budget=1, window_seconds=600,
                                 pause_seconds=0.5)
    try:
        first = supervisor.start("restart-test", start)
        deadline = time.monotonic() + 120
        while len(seen) < FAILING_BATCH + 4 and time.monotonic() < deadline:
            supervisor.wait(1)
        assert failures == [FAILING_BATCH]
        assert supervisor.queries[0] is not first  # a new run of the query
        ids = [b for b, _ in seen]
        assert ids == list(range(ids[0], ids[0] + len(ids))) and FAILING_BATCH in ids
        values = [v for _, rows in seen for v in rows]
        assert values and values == list(range(values[0], values[0] + len(values)))
    finally:
        for q in spark.streams.active:
            q.stop()
        spark.stop()
