"""The one statement-preparation helper and the per-session stores
(``backend.storage.statements``)."""

from __future__ import annotations

import gc
import threading

from backend.storage.statements import SERIAL, prepared, store


class Stmt:
    def __init__(self, cql: str) -> None:
        self.cql = cql
        self.consistency_level = None
        self.fetch_size = None


class CountingSession:
    def __init__(self) -> None:
        self.prepared: list[str] = []

    def prepare(self, cql: str) -> Stmt:
        self.prepared.append(cql)
        return Stmt(cql)


class SomeStore:
    built = 0

    def __init__(self, session: CountingSession) -> None:
        SomeStore.built += 1
        self.session = session
        self.get = prepared(session, "SELECT * FROM t WHERE k = ?")


def test_a_statement_is_prepared_once_per_session_and_option() -> None:
    a, b = CountingSession(), CountingSession()
    first = prepared(a, "SELECT * FROM t WHERE k = ?")
    assert prepared(a, "SELECT * FROM t WHERE k = ?") is first
    assert prepared(b, "SELECT * FROM t WHERE k = ?") is not first  # another session
    serial = prepared(a, "SELECT * FROM t WHERE k = ?", SERIAL)
    paged = prepared(a, "SELECT * FROM t WHERE k = ?", fetch_size=50)
    assert serial is not first and serial.consistency_level == SERIAL
    assert first.consistency_level is None  # the plain one is not changed
    assert paged.fetch_size == 50 and paged is not serial
    assert a.prepared.count("SELECT * FROM t WHERE k = ?") == 3
    assert b.prepared == ["SELECT * FROM t WHERE k = ?"]


def test_a_store_is_built_once_per_session_even_when_threads_race() -> None:
    session = CountingSession()
    SomeStore.built = 0
    got: list[SomeStore] = []
    barrier = threading.Barrier(8)

    def build() -> None:
        barrier.wait()
        got.append(store(SomeStore, session))

    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(got) == 8 and all(s is got[0] for s in got)
    assert SomeStore.built == 1 and session.prepared == ["SELECT * FROM t WHERE k = ?"]
    assert store(SomeStore, CountingSession()) is not got[0]


def test_a_closed_session_takes_its_statements_and_stores_along() -> None:
    import weakref

    session = CountingSession()
    built = store(SomeStore, session)
    gone = weakref.ref(session)
    del session, built
    gc.collect()
    assert gone() is None  # the caches hold sessions weakly
