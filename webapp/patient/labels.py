"""Where the timeline's event labels go, so that no two ever overlap.

Alerts and notes share the events strip above the vital signs. Each event is a marker at
its time with a short label beside it (``H #3``, ``note``). Labels are placed left to
right in a few lanes (rows of the strip): an event takes the first lane where its box
(marker and text to its right) starts after the previous box of that lane ends. An
event that fits in no lane joins the label of the lane that frees first (``M #4 +2``:
two more events there; the hover text lists them all), so a burst of alarms stays
readable at any zoom. Labels may run into the plot's right margin (``RIGHT_MARGIN_PX``),
which is kept wide enough for the longest label.

Widths are estimated from the label's characters (``CHAR_PX``, generous for the chart
font) and the plot's width in pixels as the browser reports it; the browser test
measures the drawn boxes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

LANES = 3
FONT_PX = 12
CHAR_PX = 0.68 * FONT_PX  # wider than the average glyph of the chart font
MARKER_PX = 14
TEXT_GAP_PX = 4  # between the marker and its text
MIN_GAP_PX = 8  # between two boxes of a lane
BASE_CHARS = 7  # an event's own label ("H #123", "note"), cut beyond
MAX_LABEL_CHARS = BASE_CHARS + 5  # with " +999" (a count shown up to 999)
RIGHT_MARGIN_PX = round(MARKER_PX / 2 + TEXT_GAP_PX + MAX_LABEL_CHARS * CHAR_PX) + 4


@dataclass(frozen=True, slots=True)
class Event:
    ts_ms: int
    label: str


@dataclass(slots=True)
class Placed:
    """One drawn marker: the event ``index`` (into the input), its lane (0 = top), its
    text, the indexes of the events its label stands for (itself first) and its box in
    pixels from the plot's left edge."""

    index: int
    ts_ms: int
    lane: int
    text: str
    members: list[int] = field(default_factory=list)
    left_px: float = 0.0
    right_px: float = 0.0


def text_px(text: str) -> float:
    return len(text) * CHAR_PX


def _box(x_px: float, text: str) -> tuple[float, float]:
    half = MARKER_PX / 2
    return x_px - half, x_px + half + TEXT_GAP_PX + text_px(text)


def place(events: Sequence[Event], start_ms: int, end_ms: int, width_px: float,
          lanes: int = LANES) -> list[Placed]:
    """The markers to draw for ``events`` on a plot ``width_px`` wide showing
    ``[start_ms, end_ms]``: no two boxes of one lane overlap or touch. Labels are at
    most :data:`MAX_LABEL_CHARS` long (longer ones are cut)."""
    if end_ms <= start_ms or width_px <= 0 or lanes < 1:
        raise ValueError("a label strip needs a positive time span, width and lane count")
    scale = width_px / (end_ms - start_ms)
    ends = [float("-inf")] * lanes
    last: list[Placed | None] = [None] * lanes
    placed: list[Placed] = []
    order = sorted(range(len(events)), key=lambda i: (events[i].ts_ms, i))
    for i in order:
        e = events[i]
        if len(e.label) > BASE_CHARS:
            e = Event(e.ts_ms, e.label[:BASE_CHARS])
        x = (e.ts_ms - start_ms) * scale
        left, right = _box(x, e.label)
        lane = next((n for n in range(lanes) if left >= ends[n] + MIN_GAP_PX), None)
        if lane is not None:
            p = Placed(i, e.ts_ms, lane, e.label, [i], left, right)
            placed.append(p)
            last[lane] = p
            ends[lane] = right
            continue
        # no room: join the label of the lane that frees first
        lane = min(range(lanes), key=lambda n: ends[n])
        p = last[lane]
        assert p is not None  # every lane was used, else the event would have fitted
        p.members.append(i)
        p.text = f"{events[p.index].label[:BASE_CHARS]} +{min(len(p.members) - 1, 999)}"
        px = (p.ts_ms - start_ms) * scale
        p.left_px, p.right_px = _box(px, p.text)
        ends[lane] = p.right_px
    return placed


def overlaps(placed: Sequence[Placed]) -> list[tuple[Placed, Placed]]:
    """Pairs of boxes in one lane that overlap (empty when the placement is sound)."""
    out = []
    by_lane: dict[int, list[Placed]] = {}
    for p in placed:
        by_lane.setdefault(p.lane, []).append(p)
    for boxes in by_lane.values():
        boxes.sort(key=lambda p: p.left_px)
        for a, b in itertools.pairwise(boxes):
            if b.left_px < a.right_px + MIN_GAP_PX:
                out.append((a, b))
    return out
