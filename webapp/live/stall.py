"""Is the stream job behind? Told from what the web process can see of Kafka.

The devices write ``vitals.raw``; the stream job turns it into ``vitals.validated``. When
the job is down or stuck, raw keeps growing and nothing comes out: each tile goes stale
on its own, but the ward must see at once that the whole station is behind.

The stream is *stalled* when both hold:

- the raw topic grew (its summed end offsets rose between two probes) after the last
  validated record arrived, and
- more than ``threshold_seconds`` have passed since that arrival (or since following
  began, when nothing has arrived yet).

A silent ward (raw not growing) is never stalled: the per-bed stale marks say which beds
went quiet. The stall begins at the last arrival, which is when the screens stopped
moving, and ends by itself with the next validated record.

Pure and single-threaded: the follower feeds it (``validated`` once per polled batch,
``raw_probed`` every probe interval) from its one thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

Clock = Callable[[], float]
# The source a stall marks delayed in ``WardState`` (next to "kafka" and "cassandra").
STREAM = "stream"


class Change(Enum):
    """What an observation did to the verdict."""

    NONE = "none"
    BEGAN = "began"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Stall:
    """One stall: since when (epoch seconds, the last arrival) and, once ended, until."""

    since: float
    until: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.until is None else max(0.0, self.until - self.since)


class StallDetector:
    def __init__(self, threshold_seconds: float, *, clock: Clock = time.time) -> None:
        if threshold_seconds <= 0:
            raise ValueError(f"threshold_seconds must be positive, not {threshold_seconds}")
        self.threshold = threshold_seconds
        self.clock = clock
        self._last_flow = clock()
        self._last_raw: int | None = None  # raw end total at the previous probe since then
        self._raw_grew = False
        self._stall: Stall | None = None

    @property
    def stall(self) -> Stall | None:
        """The open stall, or ``None`` while the stream keeps up."""
        return self._stall

    @property
    def last_flow(self) -> float:
        """When the last validated record arrived (or following began)."""
        return self._last_flow

    def validated(self) -> tuple[Change, Stall | None]:
        """Validated records arrived: an open stall ends here, returned with ``until``."""
        now = self.clock()
        self._last_flow = now
        # Growth seen so far was (or may have been) processed into what just arrived:
        # the next probe is the new baseline.
        self._last_raw = None
        self._raw_grew = False
        ended, self._stall = self._stall, None
        if ended is None:
            return Change.NONE, None
        return Change.ENDED, Stall(ended.since, now)

    def rebase(self) -> None:
        """Forget the raw baseline (after a reconnect: what raw did while nobody looked
        may have been processed); growth counts again from the next two probes."""
        self._last_raw = None

    def raw_probed(self, total: int) -> tuple[Change, Stall | None]:
        """The raw topic's end offsets now sum to ``total``: a stall may begin."""
        if self._last_raw is not None and total > self._last_raw:
            self._raw_grew = True
        # A drop (topic recreated, offsets reset) is no growth; growth counts from here.
        self._last_raw = total
        if (self._stall is None and self._raw_grew
                and self.clock() - self._last_flow > self.threshold):
            self._stall = Stall(self._last_flow)
            return Change.BEGAN, self._stall
        return Change.NONE, self._stall
