"""Starting a stream job's queries again after a failure that passes.

Spark does not retry a micro-batch whose driver side failed (a ``foreachBatch`` that
raised, a Kafka offset request that gave up while a broker was away): it stops the query,
and the job stops with it. Each query's checkpoint holds its offsets and state, so starting
it again from the checkpoint is exactly what a restarted job would do - nothing lost,
nothing published twice - only without a new JVM, its executors and warm-up (30 s and
more on a two-core machine, while every ward screen is behind).

The supervisor does that within a budget: a query that fails more than ``budget`` times
within ``window_seconds`` (a fault that does not pass, or a defect) stops the job as
before, for its supervisor (systemd, Docker's restart policy) and for an operator to see.
An error ``restartable`` refuses (e.g. offsets no longer on the broker) stops it at once.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# A started query and what closes the resources it writes through (None: nothing).
Started = tuple[Any, Callable[[], None] | None]


@dataclass
class _Supervised:
    name: str
    start: Callable[[], Started]
    query: Any = None
    close: Callable[[], None] | None = None
    failures: deque[float] = field(default_factory=deque)


class QueryGaveUp(RuntimeError):
    """A query failed once more than its restart budget allows."""


class QuerySupervisor:
    """Each query is handed to ``start`` with a function that starts it from its
    checkpoint and returns it with its closer; that function starts it again."""

    def __init__(self, streams: Any, *, budget: int, window_seconds: float,
                 pause_seconds: float = 5.0,
                 restartable: Callable[[BaseException], bool] = lambda e: True,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.streams = streams
        self.budget = budget
        self.window_seconds = window_seconds
        self.pause_seconds = pause_seconds
        self.restartable = restartable
        self.clock = clock
        self.sleep = sleep
        self._queries: list[_Supervised] = []

    def start(self, name: str, starter: Callable[[], Started]) -> Any:
        """Start a query and supervise it from now on; the query."""
        q = _Supervised(name, starter)
        q.query, q.close = starter()
        self._queries.append(q)
        return q.query

    @property
    def queries(self) -> list[Any]:
        return [q.query for q in self._queries]

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a query to end; start a failed one again
        (within the budget). Raises the query's error when it may not be restarted, and
        ``QueryGaveUp`` when its budget is spent."""
        try:
            ended = self.streams.awaitAnyTermination(timeout)
        except Exception:  # a query failed: its own exception() says which and why
            ended = True
        if ended:
            self.restart_ended()

    def restart_ended(self) -> None:
        self.streams.resetTerminated()
        for q in self._queries:
            if q.query.isActive:
                continue
            error = q.query.exception()
            if error is None:  # stopped by someone else than us: nothing to recover from
                raise QueryGaveUp(f"the {q.name} query stopped")
            if not self.restartable(error):
                raise error
            now = self.clock()
            q.failures.append(now)
            while q.failures and now - q.failures[0] > self.window_seconds:
                q.failures.popleft()
            if len(q.failures) > self.budget:
                raise QueryGaveUp(
                    f"the {q.name} query failed {len(q.failures)} times within "
                    f"{self.window_seconds:.0f} s; the last time: {_first_line(error)}"
                ) from error
            log.warning("the %s query failed (%d of %d restarts within %.0f s): %s; "
                        "starting it again from its checkpoint in %.0f s", q.name,
                        len(q.failures), self.budget, self.window_seconds,
                        _first_line(error), self.pause_seconds)
            close, q.close = q.close, None  # closed once, even if the start below fails
            if close is not None:
                close()
            self.sleep(self.pause_seconds)
            q.query, q.close = q.start()

    def stop(self) -> None:
        """Stop every query, then close what they wrote through."""
        for q in self._queries:
            q.query.stop()
        for q in self._queries:
            if q.close is not None:
                q.close()


def _first_line(error: BaseException, limit: int = 300) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:limit]
