"""A long run in named stages: one progress bar ticked per stage, and each stage's time.

Training and evaluation both take minutes; the bar says which stage is running (and a
stage may add a postfix, e.g. the Spark fit's job count), and the timings go into the
version's metadata and the evaluation document (``runtime_seconds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from time import monotonic

from tqdm import tqdm


class StageClock:
    """``begin(name)`` when a stage starts, ``end(name)`` when it is done."""

    def __init__(self, names: Sequence[str], desc: str, *, progress: bool = True) -> None:
        self.bar = tqdm(total=len(names), desc=desc, unit="stage", disable=not progress)
        self.timings: dict[str, float] = {}
        self._started = self._stage_started = monotonic()

    def begin(self, name: str) -> None:
        self.bar.set_description(name)
        self.bar.set_postfix_str("")

    def end(self, name: str) -> None:
        now = monotonic()
        self.timings[name] = round(now - self._stage_started, 2)
        self._stage_started = now
        self.bar.update(1)

    def runtime_seconds(self) -> dict[str, float]:
        """Each finished stage's seconds, and the total since the clock started."""
        return {**self.timings, "total": round(monotonic() - self._started, 2)}

    def close(self) -> None:
        self.bar.close()
