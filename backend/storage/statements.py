"""The one way storage prepares statements and builds stores.

A statement is prepared once per session (the server parses it once, every later call
sends only its id and values); a store is built once per session and shared by every
caller of that process, whatever page, job or request asks for it. Both caches live on
the session object itself, so they go away with it (a store holds its session, so a
cache keyed weakly by the session would keep every session alive).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import PreparedStatement

T = TypeVar("T")

SERIAL = ConsistencyLevel.SERIAL
_ATTRIBUTE = "_icu_storage_cache"
_lock = threading.RLock()  # store() builds under it, and building prepares


@dataclass
class _Cache:
    statements: dict[tuple[str, int | None, int | None], PreparedStatement] = field(
        default_factory=dict)
    stores: dict[type, Any] = field(default_factory=dict)


def _cache(session: Session) -> _Cache:
    cache = getattr(session, _ATTRIBUTE, None)
    if cache is None:
        with _lock:
            cache = getattr(session, _ATTRIBUTE, None)
            if cache is None:
                cache = _Cache()
                setattr(session, _ATTRIBUTE, cache)
    return cache


def prepared(session: Session, cql: str, consistency: int | None = None, *,
             fetch_size: int | None = None) -> PreparedStatement:
    """``cql`` prepared on ``session`` (once), run at ``consistency`` and paged by
    ``fetch_size`` rows when given."""
    key = (cql, consistency, fetch_size)
    statements = _cache(session).statements
    stmt = statements.get(key)
    if stmt is not None:
        return stmt
    with _lock:
        stmt = statements.get(key)
        if stmt is None:
            stmt = session.prepare(cql)
            if consistency is not None:
                stmt.consistency_level = consistency
            if fetch_size is not None:
                stmt.fetch_size = fetch_size
            statements[key] = stmt
        return stmt


def store(cls: type[T], session: Session) -> T:
    """The process's one ``cls(session)`` for ``session``."""
    stores = _cache(session).stores
    made = stores.get(cls)
    if made is not None:
        return made
    with _lock:
        made = stores.get(cls)
        if made is None:
            made = stores[cls] = cls(session)  # type: ignore[call-arg]
        return made
