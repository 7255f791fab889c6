"""Retrying the persist query's Cassandra writes through a cluster's passing faults.

With replicas, losing one Cassandra node does not lose a write: the other replicas still
make the quorum. But the Spark Cassandra Connector's Java driver can still fail the one
request that was in flight on that node. Its control connection may also be on that node
while it refreshes the schema ("Control channel not available, aborting schema refresh").
Either error fails the micro-batch, and so stops the whole stream job, for a fault the
driver gets over by itself within seconds.

Each table write is an idempotent upsert keyed by the data itself, so writing it again
is always safe. The persist query therefore retries a write that failed with one of these
errors, with backoff, for up to ``SparkSettings.persist_retry_seconds``. Only then does it
fail the batch. The query's checkpoint keeps the batch's offsets, so a restarted job
writes the batch again. Any other error, such as a schema mismatch or a row Cassandra
rejects, fails the batch at once, as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# What the Java driver (com.datastax.oss.driver, under the connector) raises for faults of
# the cluster that pass: no replica reachable right now, a node lost mid-request, a
# coordinator timing out or overloaded, a control connection moving to another node.
# They are matched in the whole text of the Java error, its causes included. The connector
# wraps an executor's failure in Spark's "Job aborted", and the driver's error is kept in
# the causes.
TRANSIENT_CASSANDRA_ERRORS: tuple[str, ...] = (
    "com.datastax.oss.driver.api.core.AllNodesFailedException",
    "com.datastax.oss.driver.api.core.NoNodeAvailableException",
    "com.datastax.oss.driver.api.core.DriverTimeoutException",
    "com.datastax.oss.driver.api.core.connection.ClosedConnectionException",
    "com.datastax.oss.driver.api.core.connection.HeartbeatException",
    "com.datastax.oss.driver.api.core.connection.ConnectionInitException",
    "com.datastax.oss.driver.api.core.connection.BusyConnectionException",
    "com.datastax.oss.driver.api.core.servererrors.WriteTimeoutException",
    "com.datastax.oss.driver.api.core.servererrors.ReadTimeoutException",
    "com.datastax.oss.driver.api.core.servererrors.UnavailableException",
    "com.datastax.oss.driver.api.core.servererrors.OverloadedException",
    "com.datastax.oss.driver.api.core.servererrors.BootstrappingException",
    # The driver's control connection, reconnecting after its node went away, while it
    # refreshes the schema for the connector; or closing under that refresh (the node
    # killed mid-request: a DriverExecutionException caused by netty's closed channel).
    "Control channel not available",
    "com.datastax.oss.driver.shaded.netty.channel.StacklessClosedChannelException",
)

_JAVA_ERROR = re.compile(r"^(?::\s*)?((?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\b.*)$",
                         re.MULTILINE)


def is_transient_cassandra_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the cluster that passes, so retrying a write helps."""
    text = str(exc)
    return any(marker in text for marker in TRANSIENT_CASSANDRA_ERRORS)


def error_summary(exc: BaseException, limit: int = 200) -> str:
    """The Java error's first line, such as ``java.lang.IllegalStateException: Control
    channel not available``. Spark's stack trace and the rest of the text stay out of the
    log. The driver's messages name hosts and statements, never the values written."""
    text = str(exc)
    found = _JAVA_ERROR.search(text)
    line = found.group(1) if found else (text.strip().splitlines() or [type(exc).__name__])[0]
    return line[:limit]


def call_retrying(fn: Callable[[], T], what: str, *, budget_seconds: float,
                  first_wait_seconds: float = 0.5, max_wait_seconds: float = 15.0) -> T:
    """``fn()``, an idempotent write, retried on transient errors (``what`` names it in
    the log).

    Only transient errors are retried, with exponential backoff from
    ``first_wait_seconds`` up to ``max_wait_seconds``. Once ``budget_seconds`` has passed
    since the first attempt, the last error is re-raised as it was.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: attempt %d failed (%s); retrying in %.1f s", what,
                    state.attempt_number, error_summary(exc) if exc else "?",
                    state.upcoming_sleep)

    retrying = Retrying(
        retry=retry_if_exception(is_transient_cassandra_error),
        stop=stop_after_delay(budget_seconds),
        wait=wait_exponential(multiplier=first_wait_seconds, min=first_wait_seconds,
                              max=max_wait_seconds),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
