"""Waiting for the system under test without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")


class Clock:
    """A settable clock for the code under test that takes a ``clock`` callable."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def wait_until(probe: Callable[[], T], *, timeout: float, interval: float = 0.5,
               what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
        last = probe()
    return last
