"""The stream job's query supervisor: a failed query is started again from its checkpoint,
within a budget per time window; what may not be restarted, or fails too often, stops the
job with the query's own error. The fakes behave as PySpark's StreamingQueryManager and
StreamingQuery do (awaitAnyTermination raises a failed query's error until
resetTerminated)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streaming.query_supervisor import QueryGaveUp, QuerySupervisor


class _Query:
    def __init__(self, streams: _Streams, name: str) -> None:
        self.streams = streams
        self.name = name
        self.isActive = True
        self.error: Exception | None = None
        self.stopped = False

    def fail(self, error: Exception) -> None:
        self.isActive, self.error = False, error
        self.streams.terminated = error

    def exception(self) -> Exception | None:
        return self.error

    def stop(self) -> None:
        self.isActive, self.stopped = False, True


class _Streams:
    def __init__(self) -> None:
        self.terminated: Exception | None = None
        self.resets = 0

    def awaitAnyTermination(self, timeout: float) -> bool:
        if self.terminated is not None:
            raise self.terminated
        return False

    def resetTerminated(self) -> None:
        self.terminated = None
        self.resets += 1


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class _Starter:
    """Starts a new query each call; counts the starts and the closes of each run's sink."""

    def __init__(self, streams: _Streams, name: str) -> None:
        self.streams, self.name = streams, name
        self.started: list[_Query] = []
        self.closed = 0

    def __call__(self):
        self.started.append(_Query(self.streams, self.name))
        return self.started[-1], self.close

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def job() -> SimpleNamespace:
    streams, clock = _Streams(), _Clock()
    sup = QuerySupervisor(streams, budget=2, window_seconds=600, pause_seconds=5,
                          restartable=lambda e: "OffsetOutOfRange" not in str(e),
                          clock=clock, sleep=clock.sleep)
    alarm, persist = _Starter(streams, "alarm"), _Starter(streams, "persist")
    sup.start("alarm", alarm)
    sup.start("persist", persist)
    return SimpleNamespace(sup=sup, streams=streams, clock=clock, alarm=alarm,
                           persist=persist)


def test_nothing_happens_while_the_queries_run(job) -> None:
    job.sup.wait(1)
    assert len(job.alarm.started) == len(job.persist.started) == 1 and job.clock.slept == []


def test_a_failed_query_is_started_again_and_only_it(job) -> None:
    job.alarm.started[0].fail(RuntimeError("Kafka transaction: coordinator moved"))
    job.sup.wait(1)
    assert len(job.alarm.started) == 2 and job.alarm.closed == 1  # the old run's sink closed
    assert len(job.persist.started) == 1 and job.persist.closed == 0
    assert job.clock.slept == [5] and job.streams.resets == 1
    assert job.sup.queries == [job.alarm.started[1], job.persist.started[0]]
    job.sup.wait(1)  # the new run is left alone
    assert len(job.alarm.started) == 2


def test_failures_beyond_the_budget_within_the_window_stop_the_job(job) -> None:
    for n in range(2):
        job.alarm.started[-1].fail(RuntimeError(f"failure {n}"))
        job.sup.wait(1)
    job.alarm.started[-1].fail(RuntimeError("failure 2\nat a Java frame"))
    with pytest.raises(QueryGaveUp, match=r"alarm query failed 3 times within 600 s; "
                                          r"the last time: failure 2$"):
        job.sup.wait(1)
    assert len(job.alarm.started) == 3


def test_failures_spread_beyond_the_window_never_spend_the_budget(job) -> None:
    for n in range(6):
        job.persist.started[-1].fail(RuntimeError(f"failure {n}"))
        job.sup.wait(1)
        job.clock.now += 601
    assert len(job.persist.started) == 7


def test_an_error_that_may_not_be_restarted_stops_the_job_with_its_own_error(job) -> None:
    lost = RuntimeError("org.apache.kafka...OffsetOutOfRangeException")
    job.persist.started[0].fail(lost)
    with pytest.raises(RuntimeError) as caught:
        job.sup.wait(1)
    assert caught.value is lost and len(job.persist.started) == 1


def test_a_query_stopped_by_someone_else_stops_the_job(job) -> None:
    job.persist.started[0].isActive = False
    job.streams.terminated = None
    with pytest.raises(QueryGaveUp, match="persist query stopped"):
        job.sup.restart_ended()


def test_no_budget_means_the_first_failure_stops_the_job() -> None:
    job.streams = _Streams()
    job.sup = QuerySupervisor(job.streams, budget=0, window_seconds=600, sleep=lambda s: None)
    job.alarm = _Starter(job.streams, "alarm")
    job.sup.start("alarm", job.alarm)
    job.alarm.started[0].fail(RuntimeError("boom"))
    with pytest.raises(QueryGaveUp):
        job.sup.wait(1)


def test_stop_stops_every_query_then_closes_their_sinks(job) -> None:
    job.sup.stop()
    assert job.alarm.started[0].stopped and job.persist.started[0].stopped
    assert job.alarm.closed == job.persist.closed == 1
