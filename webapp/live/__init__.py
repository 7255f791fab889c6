"""The live data path of the ward screens: one in-memory ``WardState`` per web process,
fed by one ``LiveFollower`` thread (Cassandra, then Kafka).

Use ``live_state(settings)`` from the app factory or lazily from the ward page: the
first call in a process creates the state and starts the follower; later calls return
the same state. A process forked after the first call (gunicorn without preload keeps
this from happening) gets a fresh state and follower of its own.
"""

from __future__ import annotations

import os
import threading

from backend.settings import Settings, get_settings
from webapp.live.follower import LiveFollower
from webapp.live.state import (
    ACTIVE_STATUSES,
    Alarm,
    BedSnapshot,
    ParamState,
    TrendPoint,
    WardState,
)

__all__ = [
    "ACTIVE_STATUSES",
    "Alarm",
    "BedSnapshot",
    "LiveFollower",
    "ParamState",
    "TrendPoint",
    "WardState",
    "live_follower",
    "live_state",
    "stop_live",
]

_lock = threading.Lock()
_live: tuple[int, WardState, LiveFollower] | None = None


def live_state(settings: Settings | None = None, *, start: bool = True) -> WardState:
    """This process's ``WardState``; its follower is started on first use."""
    global _live
    with _lock:
        if _live is None or _live[0] != os.getpid():
            settings = settings or get_settings()
            state = WardState.from_settings(settings)
            _live = (os.getpid(), state, LiveFollower(settings, state))
        if start:
            _live[2].start()
        return _live[1]


def live_follower() -> LiveFollower | None:
    with _lock:
        return _live[2] if _live is not None and _live[0] == os.getpid() else None


def stop_live(timeout: float = 15.0) -> None:
    """Stop this process's follower (tests, shutdown)."""
    global _live
    with _lock:
        live, _live = _live, None
    if live is not None and live[0] == os.getpid():
        live[2].stop(timeout)
