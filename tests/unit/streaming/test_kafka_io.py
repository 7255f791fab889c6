"""The transactional publisher's recovery from a stuck transaction (a producer whose
commit never returns, as kafka-python's did when its transaction coordinator's broker
was killed): a new producer takes over and the batch is published once. The real
failover is tests/integration/test_replicated_cluster.py."""

from __future__ import annotations

import threading

import pytest

from backend.settings import KafkaSettings
from streaming import kafka_io


class _Producer:
    def __init__(self, stuck: bool = False, fails: bool = False) -> None:
        self.stuck, self.fails = stuck, fails
        self.sent: list[tuple] = []
        self.committed = self.aborted = self.closed = False
        self.forever = threading.Event()

    def init_transactions(self) -> None:
        pass

    def begin_transaction(self) -> None:
        pass

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> None:
        self.sent.append((topic, key, value))

    def send_offsets_to_transaction(self, offsets: dict, group: str) -> None:
        if self.fails:
            raise RuntimeError("broker said no")

    def commit_transaction(self) -> None:
        if self.stuck:
            self.forever.wait()  # the coordinator never answers
            raise RuntimeError("producer closed")
        self.committed = True

    def abort_transaction(self) -> None:
        self.aborted = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True
        self.forever.set()


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> kafka_io.TransactionalPublisher:
    monkeypatch.setattr(kafka_io, "STALL_SECONDS", 0.2)
    admin = type("Admin", (), {"create_topics": lambda self, topics: None})()
    monkeypatch.setattr(kafka_io, "KafkaAdminClient", lambda **kw: admin)
    pub = kafka_io.TransactionalPublisher(KafkaSettings(), "unit")
    pub.published = -1  # type: ignore[attr-defined]
    monkeypatch.setattr(pub, "last_published_batch", lambda: pub.published)  # type: ignore[attr-defined]
    return pub


MESSAGES = [("t", b"k1", b"v1"), ("t", b"k2", b"v2")]


def test_a_stuck_commit_is_handed_to_a_new_producer(publisher, monkeypatch) -> None:
    producers = [_Producer(stuck=True), _Producer()]
    monkeypatch.setattr(publisher, "_new_producer", lambda: producers.pop(0))
    first, second = producers
    assert publisher.publish_batch(7, iter(MESSAGES), check=False)
    assert first.closed and not first.committed  # dropped; its transaction is fenced
    assert second.committed and second.sent == MESSAGES  # the whole batch, once


def test_a_batch_the_stuck_transaction_did_commit_is_not_sent_again(publisher,
                                                                     monkeypatch) -> None:
    stuck = _Producer(stuck=True)
    made = [stuck]

    def new() -> _Producer:
        if made:
            return made.pop()
        raise AssertionError("no new producer needed")

    monkeypatch.setattr(publisher, "_new_producer", new)
    monkeypatch.setattr(publisher, "last_published_batch",
                        lambda: 7 if stuck.closed else -1)  # it committed after all
    assert publisher.publish_batch(7, MESSAGES, check=False) is False


def test_a_commit_that_fails_is_aborted_and_raised(publisher, monkeypatch) -> None:
    producer = _Producer(fails=True)
    monkeypatch.setattr(publisher, "_new_producer", lambda: producer)
    with pytest.raises(RuntimeError, match="broker said no"):
        publisher.publish_batch(3, MESSAGES, check=False)
    assert producer.aborted and not producer.committed


def test_a_transaction_stuck_every_time_fails_the_batch(publisher, monkeypatch) -> None:
    made: list[_Producer] = []

    def new() -> _Producer:
        made.append(_Producer(stuck=True))
        return made[-1]

    monkeypatch.setattr(publisher, "_new_producer", new)
    with pytest.raises(kafka_io.TransactionStalled):
        publisher.publish_batch(5, MESSAGES, check=False)
    assert len(made) == kafka_io.STALL_ATTEMPTS
    for p in made:
        p.forever.set()


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
    pub = kafka_io.TransactionalPublisher(KafkaSettings(), "unit")
    monkeypatch.setattr(pub, "_new_admin", lambda: admins.pop(0))
    monkeypatch.setattr(pub, "_new_producer", lambda: _Producer())
    assert pub.last_published_batch() == 7
    assert admins == []  # the stale client was replaced once
