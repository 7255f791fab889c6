"""The live data path of the ward screens: one in-memory ``WardState`` per web process,
fed by one ``LiveFollower`` thread (Cassandra, then Kafka: ``vitals.validated``,
``alerts.events`` and ``alerts.lifecycle``), and one ``LifecyclePublisher`` that tells
every process when somebody acknowledged an alarm.

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
from webapp.live.lifecycle import LifecyclePublisher, lifecycle_handler
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
    "LifecyclePublisher",
    "LiveFollower",
    "ParamState",
    "TrendPoint",
    "WardState",
    "lifecycle_handler",
    "lifecycle_publisher",
    "live_follower",
    "live_state",
    "stop_live",
]

_lock = threading.Lock()
_live: tuple[int, WardState, LiveFollower] | None = None
_publisher: tuple[int, LifecyclePublisher] | None = None


def live_state(settings: Settings | None = None, *, start: bool = True) -> WardState:
    """This process's ``WardState``; its follower is started on first use."""
    global _live
    with _lock:
        if _live is None or _live[0] != os.getpid():
            settings = settings or get_settings()
            state = WardState.from_settings(settings)
            follower = LiveFollower(settings, state, extra_handlers={
                settings.kafka.topic_lifecycle: lifecycle_handler(state)})
            _live = (os.getpid(), state, follower)
        if start:
            _live[2].start()
        return _live[1]


def live_follower() -> LiveFollower | None:
    with _lock:
        return _live[2] if _live is not None and _live[0] == os.getpid() else None


def lifecycle_publisher(settings: Settings | None = None) -> LifecyclePublisher:
    """This process's publisher of ``alerts.lifecycle`` messages."""
    global _publisher
    with _lock:
        if _publisher is None or _publisher[0] != os.getpid():
            _publisher = (os.getpid(), LifecyclePublisher(settings or get_settings()))
        return _publisher[1]


def stop_live(timeout: float = 15.0) -> None:
    """Stop this process's follower and publisher (tests, shutdown)."""
    global _live, _publisher
    with _lock:
        live, _live = _live, None
        publisher, _publisher = _publisher, None
    if live is not None and live[0] == os.getpid():
        live[2].stop(timeout)
    if publisher is not None and publisher[0] == os.getpid():
        publisher[1].close()
