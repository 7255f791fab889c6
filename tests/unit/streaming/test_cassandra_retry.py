"""Which Cassandra errors the persist query retries, and how (streaming/cassandra_retry.py).
The real failures are in tests/integration/test_persist_retry.py (a node that refuses
connections, then comes back) and tests/integration/test_replicated_cluster.py (node kills).
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming.cassandra_retry import (
    TRANSIENT_CASSANDRA_ERRORS,
    call_retrying,
    error_summary,
    is_transient_cassandra_error,
)

# The head of the error that stopped the stream job on a node kill (CI, 2026-12-05),
# as py4j renders it.
CONTROL_CHANNEL = """An error occurred while calling o1813.save.
: java.lang.IllegalStateException: Control channel not available, aborting schema refresh
\tat com.datastax.oss.driver.internal.core.metadata.schema.queries.DefaultSchemaQueriesFactory\
.newInstance(DefaultSchemaQueriesFactory.java:47)
\tat com.datastax.oss.driver.internal.core.metadata.MetadataManager$SingleThreaded.lambda$star\
tSchemaRequest$2(MetadataManager.java:442)
"""
# The schema refresh under a write, its control connection's node killed mid-request
# (CI, 2026-12-06: the persist query stopped until the job was restarted).
CLOSED_CONTROL_CHANNEL = """An error occurred while calling o1428.save.
: com.datastax.oss.driver.api.core.DriverExecutionException
\tat com.datastax.oss.driver.internal.core.util.concurrent.CompletableFutures.getUninterruptibl\
y(CompletableFutures.java:154)
\tat com.datastax.oss.driver.api.core.session.Session.refreshSchema(Session.java:142)
\tat com.datastax.spark.connector.cql.Schema$.fromCassandra(Schema.scala:419)
Caused by: com.datastax.oss.driver.shaded.netty.channel.StacklessClosedChannelException
\tat com.datastax.oss.driver.shaded.netty.channel.AbstractChannel$AbstractUnsafe.write(Object, \
ChannelPromise)(Unknown Source)
"""
# An executor's write failure: Spark's job abort, the connector's IOException, the driver's
# error as the cause.
EXECUTOR_TIMEOUT = """An error occurred while calling o977.save.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 41.0 \
failed 1 times, most recent failure: Lost task 0.0 in stage 41.0 (TID 77) (localhost \
executor driver): java.io.IOException: Failed to write statements to icu.readings_by_patient_day.
\tat com.datastax.spark.connector.writer.TableWriter.$anonfun$writeInternal$3(TableWriter.scala:236)
Caused by: com.datastax.oss.driver.api.core.servererrors.WriteTimeoutException: Cassandra \
timeout during SIMPLE write query at consistency QUORUM (2 replica were required but only \
1 acknowledged the write)
"""
NO_NODE = """An error occurred while calling o12.save.
: java.io.IOException: Failed to open native connection to Cassandra at {127.0.0.2:9042} :: \
Could not reach any contact point, make sure you've provided valid addresses
\tat com.datastax.spark.connector.cql.CassandraConnector$.createSession(CassandraConnector.sc\
ala:173)
Caused by: com.datastax.oss.driver.api.core.AllNodesFailedException: Could not reach any \
contact point, make sure you've provided valid addresses (showing first 1 nodes)
"""
# Errors that another attempt cannot mend.
PERMANENT = [
    """An error occurred while calling o88.save.
: java.io.IOException: Couldn't find icu.no_such_table or any similarly named keyspace and \
table pairs
\tat com.datastax.spark.connector.cql.Schema$.tableFromCassandra(Schema.scala:358)
""",
    """An error occurred while calling o90.save.
: com.datastax.oss.driver.api.core.servererrors.InvalidQueryException: Undefined column name spo2x
""",
    """An error occurred while calling o91.save.
: org.apache.spark.sql.AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column or \
function parameter with name `hr` cannot be resolved.
""",
    """An error occurred while calling o92.save.
: com.datastax.oss.driver.api.core.servererrors.UnauthorizedException: User stream has no \
MODIFY permission on <table icu.audit_log> or any of its parents
""",
]


class JavaError(Exception):
    """Stands for py4j's Py4JJavaError, whose ``str`` is the Java error's whole text."""


@pytest.mark.parametrize("text", [CONTROL_CHANNEL, CLOSED_CONTROL_CHANNEL,
                                  EXECUTOR_TIMEOUT, NO_NODE])
def test_the_clusters_passing_faults_are_transient(text: str) -> None:
    assert is_transient_cassandra_error(JavaError(text))


@pytest.mark.parametrize("text", PERMANENT)
def test_errors_another_attempt_cannot_mend_are_not(text: str) -> None:
    assert not is_transient_cassandra_error(JavaError(text))


@given(before=st.text(), marker=st.sampled_from(TRANSIENT_CASSANDRA_ERRORS), after=st.text())
def test_a_transient_error_is_found_anywhere_in_the_text(before: str, marker: str,
                                                         after: str) -> None:
    assert is_transient_cassandra_error(JavaError(before + marker + after))


def test_the_summary_is_the_java_errors_first_line() -> None:
    assert error_summary(JavaError(CONTROL_CHANNEL)) == (
        "java.lang.IllegalStateException: Control channel not available, aborting schema "
        "refresh")
    assert error_summary(JavaError(NO_NODE)).startswith(
        "java.io.IOException: Failed to open native connection to Cassandra")
    assert error_summary(ValueError("plain")) == "plain"
    assert error_summary(ValueError()) == "ValueError"
    assert len(error_summary(JavaError("x.y.BigException: " + "z" * 1000))) == 200


class Flaky:
    """Fails with ``errors`` in turn, then returns how many calls it took."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


FAST = {"first_wait_seconds": 0.001, "max_wait_seconds": 0.002}


def test_transient_failures_are_retried_until_the_write_succeeds(
        caplog: pytest.LogCaptureFixture) -> None:
    write = Flaky(JavaError(CONTROL_CHANNEL), JavaError(NO_NODE), JavaError(EXECUTOR_TIMEOUT))
    with caplog.at_level(logging.WARNING, logger="streaming.cassandra_retry"):
        assert call_retrying(write, "persist t", budget_seconds=30, **FAST) == 4
    retries = [r.getMessage() for r in caplog.records if r.name == "streaming.cassandra_retry"]
    assert len(retries) == 3
    assert retries[0].startswith("persist t: attempt 1 failed (java.lang.IllegalStateException")


def test_a_permanent_error_is_raised_at_once() -> None:
    error = JavaError(PERMANENT[0])
    write = Flaky(JavaError(NO_NODE), error)
    with pytest.raises(JavaError) as raised:
        call_retrying(write, "persist t", budget_seconds=30, **FAST)
    assert raised.value is error and write.calls == 2


def test_the_last_transient_error_is_raised_once_the_budget_is_spent() -> None:
    errors = [JavaError(f"{NO_NODE} #{i}") for i in range(10_000)]
    write = Flaky(*errors)
    with pytest.raises(JavaError) as raised:
        call_retrying(write, "persist t", budget_seconds=0.05, **FAST)
    assert 1 < write.calls < len(errors)
    assert raised.value is errors[write.calls - 1]


def test_a_zero_budget_tries_once() -> None:
    write = Flaky(JavaError(NO_NODE))
    with pytest.raises(JavaError):
        call_retrying(write, "persist t", budget_seconds=0, **FAST)
    assert write.calls == 1
