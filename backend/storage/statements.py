"""The one way storage prepares statements and builds stores.

A statement is prepared once per session (the server parses it once, every later call
sends only its id and values); a store is built once per session and shared by every
caller of that process, whatever page, job or request asks for it. Both caches hold
the session weakly, so a test's session and its statements go away together.
"""

from __future__ import annotations

import threading
import weakref
from typing import TypeVar

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import PreparedStatement

T = TypeVar("T")

_Key = tuple[str, int | None, int | None]
_statements: weakref.WeakKeyDictionary[Session, dict[_Key, PreparedStatement]] = (
    weakref.WeakKeyDictionary()
)
_stores: weakref.WeakKeyDictionary[Session, dict[type, object]] = weakref.WeakKeyDictionary()
_lock = threading.RLock()  # store() builds under it, and building prepares

SERIAL = ConsistencyLevel.SERIAL


def prepared(session: Session, cql: str, consistency: int | None = None, *,
             fetch_size: int | None = None) -> PreparedStatement:
    """``cql`` prepared on ``session`` (once), run at ``consistency`` and paged by
    ``fetch_size`` rows when given."""
    key = (cql, consistency, fetch_size)
    cache = _statements.get(session)
    if cache is not None and key in cache:
        return cache[key]
    with _lock:
        cache = _statements.setdefault(session, {})
        stmt = cache.get(key)
        if stmt is None:
            stmt = session.prepare(cql)
            if consistency is not None:
                stmt.consistency_level = consistency
            if fetch_size is not None:
                stmt.fetch_size = fetch_size
            cache[key] = stmt
        return stmt


def store(cls: type[T], session: Session) -> T:
    """The process's one ``cls(session)`` for ``session``."""
    cache = _stores.get(session)
    if cache is not None and cls in cache:
        return cache[cls]  # type: ignore[return-value]
    with _lock:
        cache = _stores.setdefault(session, {})
        made = cache.get(cls)
        if made is None:
            made = cache[cls] = cls(session)  # type: ignore[call-arg]
        return made  # type: ignore[return-value]
