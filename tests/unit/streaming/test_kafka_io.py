"""The transactional publisher's recovery from a transaction that fails or stalls (a
commit that times out while the transaction coordinator's broker is gone): the batch is
tried again within the same call, since Spark does not run a failed foreachBatch again
but stops the query. A stalled or fatal producer is dropped and a new one takes over; an
abortable failure is aborted and the same producer tries again; the batch is published
once. The fakes raise what librdkafka raises; the real failover is
tests/integration/test_replicated_cluster.py and the fault campaign."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from backend.settings import KafkaSettings
from streaming import kafka_io

TIMED_OUT = KafkaError(KafkaError._TIMED_OUT, "commit timed out", retriable=True)
ABORTABLE = KafkaError(KafkaError._MSG_TIMED_OUT, "a message failed",
                       txn_requires_abort=True)
FENCED = KafkaError(KafkaError._FENCED, "fenced by a newer producer", fatal=True)


class _Producer:
    def __init__(self, fails_with: KafkaError | None = None, full_queue: int = 0, *,
                 failures: int = 1_000_000, abort_fails: bool = False) -> None:
        self.fails_with = fails_with
        self.failures = failures  # commits that fail before one succeeds
        self.abort_fails = abort_fails
        self.full_queue = full_queue  # produce() calls refused before the queue has room
        self.sent: list[tuple] = []
        self.committed = self.aborted = self.purged = self.closed = False
        self.polled = 0
        self.commits = 0

    def init_transactions(self, timeout: float) -> None:
        pass

    def begin_transaction(self) -> None:
        self.sent = []

    def produce(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> None:
        if not isinstance(value, bytes):
            raise TypeError("value: bytes expected")
        if self.full_queue:
            self.full_queue -= 1
            raise BufferError("queue full")
        self.sent.append((topic, key, value))

    def poll(self, timeout: float) -> int:
        self.polled += 1
        return 0

    def send_offsets_to_transaction(self, offsets: list, metadata: object,
                                    timeout: float) -> None:
        assert offsets[0].offset > 0 and metadata == "group metadata"

    def commit_transaction(self, timeout: float) -> None:
        self.commits += 1
        if self.fails_with is not None and self.failures > 0:
            self.failures -= 1
            raise KafkaException(self.fails_with)
        self.committed = True

    def abort_transaction(self, timeout: float) -> None:
        if self.abort_fails:
            raise KafkaException(TIMED_OUT)
        self.aborted = True

    def purge(self) -> None:
        self.purged = True

    def flush(self, timeout: float) -> int:
        return 0

    def close(self) -> None:
        self.closed = True


class _GroupMember:
    def __init__(self, config: dict) -> None:
        assert config["group.id"]

    def consumer_group_metadata(self) -> str:
        return "group metadata"

    def close(self) -> None:
        pass


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> kafka_io.TransactionalPublisher:
    admin = type("Admin", (), {"create_topics": lambda self, topics: None})()
    monkeypatch.setattr(kafka_io, "KafkaAdminClient", lambda **kw: admin)
    monkeypatch.setattr(kafka_io, "Consumer", _GroupMember)
    monkeypatch.setattr(kafka_io.time, "sleep", lambda s: None)
    pub = kafka_io.TransactionalPublisher(KafkaSettings(), "unit")
    pub.published = -1  # type: ignore[attr-defined]
    monkeypatch.setattr(pub, "last_published_batch", lambda: pub.published)  # type: ignore[attr-defined]
    return pub


MESSAGES = [("t", b"k1", b"v1"), ("t", b"k2", b"v2")]


def test_a_stalled_commit_is_handed_to_a_new_producer(publisher, monkeypatch) -> None:
    producers = [_Producer(fails_with=TIMED_OUT), _Producer()]
    monkeypatch.setattr(publisher, "_new_producer", lambda: producers.pop(0))
    first, second = producers
    assert publisher.publish_batch(7, iter(MESSAGES), check=False)
    assert first.purged and not first.committed  # dropped; its transaction is fenced
    assert second.committed and second.sent == MESSAGES  # the whole batch, once


def test_a_batch_the_stalled_transaction_did_commit_is_not_sent_again(publisher,
                                                                      monkeypatch) -> None:
    stalled = _Producer(fails_with=TIMED_OUT)
    made = [stalled]

    def new() -> _Producer:
        if made:
            return made.pop()
        raise AssertionError("no new producer needed")

    monkeypatch.setattr(publisher, "_new_producer", new)
    monkeypatch.setattr(publisher, "last_published_batch",
                        lambda: 7 if stalled.purged else -1)  # it committed after all
    assert publisher.publish_batch(7, MESSAGES, check=False) is False


def test_an_abortable_failure_is_aborted_and_the_same_producer_sends_the_batch(
        publisher, monkeypatch) -> None:
    producer = _Producer(fails_with=ABORTABLE, failures=1)
    made = [producer]
    monkeypatch.setattr(publisher, "_new_producer", lambda: made.pop())
    assert publisher.publish_batch(3, MESSAGES, check=False)
    assert producer.aborted and producer.committed and producer.sent == MESSAGES
    assert publisher._producer is producer and not producer.purged


def test_a_fenced_producer_is_dropped_and_a_new_one_sends_the_batch(
        publisher, monkeypatch) -> None:
    producers = [_Producer(fails_with=FENCED), _Producer()]
    monkeypatch.setattr(publisher, "_new_producer", lambda: producers.pop(0))
    fenced, fresh = producers
    assert publisher.publish_batch(4, MESSAGES, check=False)
    assert fenced.purged and not fenced.committed
    assert fresh.committed and fresh.sent == MESSAGES


def test_an_abort_that_fails_hands_the_batch_to_a_new_producer(publisher,
                                                               monkeypatch) -> None:
    producers = [_Producer(fails_with=ABORTABLE, abort_fails=True), _Producer()]
    monkeypatch.setattr(publisher, "_new_producer", lambda: producers.pop(0))
    stuck, fresh = producers
    assert publisher.publish_batch(6, MESSAGES, check=False)
    assert stuck.purged and not stuck.committed
    assert fresh.committed and fresh.sent == MESSAGES


def test_a_failed_init_transactions_is_tried_again(publisher, monkeypatch) -> None:
    class _Unready(_Producer):
        def init_transactions(self, timeout: float) -> None:
            raise KafkaException(TIMED_OUT)

    producers = [_Unready(), _Producer()]
    monkeypatch.setattr(publisher, "_new_producer", lambda: producers.pop(0))
    unready, fresh = producers
    assert publisher.publish_batch(8, MESSAGES, check=False)
    assert unready.purged and fresh.committed and fresh.sent == MESSAGES


@pytest.mark.parametrize("error", [TIMED_OUT, ABORTABLE, FENCED],
                         ids=["timed out", "abortable", "fenced"])
def test_a_transaction_failing_every_time_fails_the_batch(publisher, monkeypatch,
                                                          error: KafkaError) -> None:
    made: list[_Producer] = []

    def new() -> _Producer:
        made.append(_Producer(fails_with=error))
        return made[-1]

    monkeypatch.setattr(publisher, "_new_producer", new)
    with pytest.raises(kafka_io.TransactionFailed):
        publisher.publish_batch(5, MESSAGES, check=False)
    assert not any(p.committed for p in made)
    assert sum(p.commits for p in made) == kafka_io.TRANSACTION_ATTEMPTS
    # a producer is kept only across abortable failures
    assert len(made) == (1 if error is ABORTABLE else kafka_io.TRANSACTION_ATTEMPTS)


def test_a_dropped_producer_is_freed_on_the_reapers_thread_not_the_batchs(
        publisher, monkeypatch) -> None:
    freed: list[str] = []

    class _Tracked(_Producer):
        def __del__(self) -> None:  # librdkafka's destroy runs where the last ref goes
            freed.append(threading.current_thread().name)

    monkeypatch.setattr(kafka_io, "_REAPER", kafka_io._Reaper(hold_seconds=0.3))
    producers = [_Tracked(fails_with=TIMED_OUT), _Producer()]
    monkeypatch.setattr(publisher, "_new_producer", lambda: producers.pop(0))
    assert publisher.publish_batch(7, MESSAGES, check=False)
    assert freed == []  # held a while: the batch thread never waits for it
    waited = threading.Event()
    for _ in range(100):
        if freed:
            break
        waited.wait(0.05)
    assert freed == ["icu-producer-reaper"]


def test_a_call_that_never_returns_is_left_behind_and_a_new_producer_sends_the_batch(
        publisher, monkeypatch) -> None:
    released = threading.Event()

    class _Hung(_Producer):  # a coordinator request never sent again (librdkafka#5511)
        def send_offsets_to_transaction(self, offsets, metadata, timeout) -> None:
            released.wait(30)

    monkeypatch.setattr(kafka_io, "TRANSACTION_DEADLINE_SECONDS", 0.3)
    producers = [_Hung(), _Producer()]
    monkeypatch.setattr(publisher, "_new_producer", lambda: producers.pop(0))
    hung, fresh = producers
    try:
        assert publisher.publish_batch(9, MESSAGES, check=False)
        assert fresh.committed and fresh.sent == MESSAGES
        assert publisher._producer is fresh and not hung.committed
        assert not hung.purged  # its blocked call still holds it
    finally:
        released.set()


@pytest.mark.parametrize("refusals", [1, 3])
def test_a_full_queue_waits_for_deliveries_and_loses_nothing(publisher, monkeypatch,
                                                             refusals: int) -> None:
    producer = _Producer(full_queue=refusals)
    monkeypatch.setattr(publisher, "_new_producer", lambda: producer)
    assert publisher.publish_batch(1, MESSAGES, check=False)
    assert producer.polled == refusals and producer.sent == MESSAGES and producer.committed


def test_a_failure_of_our_own_aborts_the_transaction(publisher, monkeypatch) -> None:
    producer = _Producer()
    monkeypatch.setattr(publisher, "_new_producer", lambda: producer)
    with pytest.raises(TypeError):
        publisher.publish_batch(2, [("t", b"k", "not bytes")], check=False)
    assert producer.aborted and not producer.committed


@pytest.mark.parametrize("failure", [
    "NotCoordinatorError",  # the old coordinator's broker is back, no longer it
    "CoordinatorNotAvailableError",  # the group is moving
    "NodeNotReadyError",  # the cached coordinator's broker is down
    "KafkaConnectionError",
])
def test_a_coordinator_that_moved_is_looked_up_again(monkeypatch, failure: str) -> None:
    from kafka import errors
    from kafka.structs import OffsetAndMetadata

    class Admin:
        def __init__(self, stale: bool) -> None:
            self.stale = stale

        def create_topics(self, topics) -> None:
            pass

        def close(self) -> None:
            pass

        def list_group_offsets(self, spec: dict) -> dict:
            if self.stale:  # the cached coordinator's broker is no longer it
                raise getattr(errors, failure)("stale coordinator")
            (group, tps), = spec.items()
            return {group: {tps[0]: OffsetAndMetadata(8, "", -1)}}

    admins = [Admin(stale=True), Admin(stale=False)]
    monkeypatch.setattr(kafka_io.time, "sleep", lambda s: None)
    monkeypatch.setattr(kafka_io, "Consumer", _GroupMember)
    pub = kafka_io.TransactionalPublisher(KafkaSettings(), "unit")
    monkeypatch.setattr(pub, "_new_admin", lambda: admins.pop(0))
    monkeypatch.setattr(pub, "_new_producer", lambda: _Producer())
    assert pub.last_published_batch() == 7
    assert admins == []  # the stale client was replaced once
