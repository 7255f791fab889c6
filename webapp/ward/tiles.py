"""One bed tile of the ward monitor, as Dash components (no callbacks here).

A tile is read from across the room: big numbers, one colour per parameter, and the
alarm priority told three ways (IEC 60601-1-8): colour (red / yellow / cyan), symbol
(▲▲▲ / ▲▲ / ▲) and text (HIGH / MED / LOW), with a flashing border for high priority.
A stale bed shows no number at all, only "NO DATA" and the age of its last reading.

An abnormal value (``BedSnapshot.flags``: the alarm rules' own limits and NEWS2 bands,
``backend.alerting.rules.value_flag``) is marked without relying on colour: an arrow
(▲ above, ▼ below normal) after its label, and, when the value alone raises an
alarm, the cell in inverse video with the alarm's priority (a dark red block with white
digits for high, a light yellow one with black digits for medium, told apart in
greyscale too). A value only outside the NEWS2 normal band (it adds 1-2 points) gets the
arrow alone.
All styling is in ``assets/ward.css``; class names are part of the tests' contract.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from dash import dcc, html

from backend import localtime
from backend.alerting.rules import STALE_RULE, ValueFlag
from backend.alerting.status import AlertStatus
from backend.messages import Priority
from backend.vitals import VITALS, Vital
from webapp.live.state import Alarm, BedSnapshot, ParamState, TrendPoint

PRIORITY_SYMBOL = {Priority.HIGH: "▲▲▲", Priority.MEDIUM: "▲▲", Priority.LOW: "▲"}
PRIORITY_TEXT = {Priority.HIGH: "HIGH", Priority.MEDIUM: "MED", Priority.LOW: "LOW"}
SENSOR_OFF = "SENSOR OFF"
STALE_TEXT = "No signal from the monitor"
MISSING = "--"

_STATUS_TEXT = {AlertStatus.ACKNOWLEDGED: "ACK", AlertStatus.ESCALATED: "ESCALATED",
                AlertStatus.SILENCED: "SILENCED"}
# Sparkline colours are fixed (an <img> cannot read CSS variables); chosen to read on
# both the dark and the light theme.
_SPARK_COLOUR = {Vital.HR: "#20b26b", Vital.SPO2: "#2f8fe8"}
_SPARK_MIN_SPAN = {Vital.HR: 20.0, Vital.SPO2: 6.0}


def format_age(seconds: float | None) -> str:
    """``mm:ss`` below an hour, ``h:mm:ss`` above; "--:--" if unknown."""
    if seconds is None or math.isnan(seconds):
        return "--:--"
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_clock(epoch_seconds: float) -> str:
    """The hospital's wall-clock time ``hh:mm:ss`` (``Settings.timezone``)."""
    return localtime.clock(epoch_seconds * 1000, with_zone=False)


def format_value(vital: Vital, value: float) -> str:
    decimals = VITALS[vital].decimals
    return f"{value:.{decimals}f}" if decimals else str(round(value))


def param_text(snapshot: BedSnapshot, vital: Vital) -> tuple[str, str]:
    """(text, kind) for one parameter: kind is value / off / missing / stale."""
    p: ParamState = snapshot.param(vital)
    if p.kind == "value" and p.value is not None:
        return format_value(vital, p.value), "value"
    if p.kind == "off":
        return SENSOR_OFF, "off"
    return MISSING, p.kind


def render_key(snapshot: BedSnapshot, instance: str = "") -> str:
    """Changes whenever the rendered tile would: the bed's version, plus the age text
    of a stale bed (its counter moves every second). ``instance`` tells apart the
    version counters of different processes."""
    age = format_age(snapshot.age_seconds) if snapshot.stale else ""
    return f"{instance}:{snapshot.version}:{age}"


# ---------------------------------------------------------------------------- parts


def _news2_badge(s: BedSnapshot) -> html.Div:
    if s.news2 is None:
        return html.Div(
            [html.Span("NEWS2", className="wt-news-lab"),
             html.Span(MISSING, className="wt-news-num")],
            className="wt-news news--none",
        )
    band = (s.news2_band or "").lower().replace("_", "-").replace(" ", "-")
    cls = {"high": "high", "medium": "medium", "low-medium": "lowmed"}.get(band, "low")
    band_text = {"high": "HIGH", "medium": "MED", "lowmed": "L-MED", "low": "LOW"}[cls]
    children = [
        html.Span("NEWS2", className="wt-news-lab"),
        html.Span(str(s.news2), className="wt-news-num"),
        html.Span(band_text, className="wt-news-band"),
    ]
    if not s.news2_complete:
        children.append(html.Span("partial", className="wt-news-partial",
                                  title="Not every NEWS2 parameter was available"))
    return html.Div(children, className=f"wt-news news--{cls}"
                    + ("" if s.news2_complete else " news--partial"))


ABN_SYMBOL = {"high": "▲", "low": "▼"}
_ABN_WORD = {Priority.HIGH: "HIGH alarm", Priority.MEDIUM: "MEDIUM alarm"}


def abnormal_level(flag: ValueFlag) -> str:
    """"high" / "medium" (the value raises an alarm of that priority on its own) or
    "news" (only outside the NEWS2 normal band)."""
    return flag.priority.value if flag.priority in _ABN_WORD else "news"


def _abn_marker(flag: ValueFlag | None, what: str) -> list:
    if flag is None:
        return []
    word = "above" if flag.side == "high" else "below"
    title = f"{what} {word} normal: {flag.reason}"
    if flag.priority in _ABN_WORD:
        title += f" ({_ABN_WORD[flag.priority]})"
    return [html.Span(ABN_SYMBOL[flag.side], className="wt-abn", title=title,
                      **{"aria-label": title})]


def _abn_classes(flag: ValueFlag | None) -> str:
    if flag is None:
        return ""
    return f" abn abn--{abnormal_level(flag)} abn-side--{flag.side}"


def _cell(snapshot: BedSnapshot, vital: Vital, label: str) -> html.Div:
    text, kind = param_text(snapshot, vital)
    unit = VITALS[vital].display_unit
    flag = snapshot.flags.get(vital) if kind == "value" else None
    return html.Div(
        [
            html.Div([html.Span(label, className="wt-lab"),
                      html.Span(unit, className="wt-unit"),
                      *_abn_marker(flag, VITALS[vital].label)], className="wt-labs"),
            html.Span(text, className=f"wt-num wt-num--{kind}"),
        ],
        className=f"wt-cell wt-cell--{vital.value} is-{kind}{_abn_classes(flag)}",
    )


_FLAG_RANK = {"high": 3, "medium": 2, "news": 1}


def _worst(*flags: ValueFlag | None) -> ValueFlag | None:
    present = [f for f in flags if f is not None]
    return max(present, key=lambda f: _FLAG_RANK[abnormal_level(f)]) if present else None


def _bp(snapshot: BedSnapshot) -> html.Div:
    parts = {v: param_text(snapshot, v) for v in (Vital.SBP, Vital.DBP, Vital.MAP)}
    kinds = {kind for _, kind in parts.values()}

    def labs(*marker: html.Span) -> html.Div:
        return html.Div([html.Span("BP", className="wt-lab"),
                         html.Span("mmHg", className="wt-unit"), *marker],
                        className="wt-labs")

    if kinds == {"off"} or (parts[Vital.SBP][1] == "off" and parts[Vital.DBP][1] == "off"):
        return html.Div([labs(), html.Span(SENSOR_OFF, className="wt-num wt-num--off")],
                        className="wt-cell wt-cell--bp is-off")
    kind = "value" if "value" in kinds else ("off" if "off" in kinds else "missing")

    def part(vital: Vital) -> str:
        text, k = parts[vital]
        return "OFF" if k == "off" else text

    def flag(vital: Vital) -> ValueFlag | None:
        return snapshot.flags.get(vital) if parts[vital][1] == "value" else None

    # The pressure is read as its systolic; the mean has its own block. One marker for
    # the cell, the most severe of the two.
    sbp, mean = _worst(flag(Vital.SBP), flag(Vital.DBP)), flag(Vital.MAP)
    worst = _worst(sbp, mean)
    what = "Systolic BP" if worst is sbp else "Mean BP"
    return html.Div(
        [
            labs(*_abn_marker(worst, what)),
            html.Span(f"{part(Vital.SBP)}/{part(Vital.DBP)}",
                      className=f"wt-num wt-num--{kind}{_abn_classes(sbp)}"),
            html.Span(f"({part(Vital.MAP)})", className=f"wt-map{_abn_classes(mean)}"),
        ],
        className=f"wt-cell wt-cell--bp is-{kind}{' abn' if worst else ''}",
    )


def sparkline_svg(points: Sequence[TrendPoint], vital: Vital, window_ms: int = 600_000,
                  width: int = 120, height: int = 24) -> str | None:
    """An inline SVG polyline of one trend (``None`` if fewer than two values); gaps
    where the parameter was off or missing break the line."""
    attr = "hr" if vital is Vital.HR else "spo2"
    values = [(p.ts, getattr(p, attr)) for p in points]
    present = [v for _, v in values if v is not None]
    if len(present) < 2:
        return None
    end = values[-1][0]
    start = end - window_ms
    lo, hi = min(present), max(present)
    span = max(hi - lo, _SPARK_MIN_SPAN[vital])
    mid = (hi + lo) / 2
    lo, hi = mid - span / 2, mid + span / 2
    segments: list[list[str]] = [[]]
    for ts, v in values:
        if v is None:
            if segments[-1]:
                segments.append([])
            continue
        x = (ts - start) / window_ms * width
        y = height - 2 - (v - lo) / (hi - lo) * (height - 4)
        segments[-1].append(f"{x:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline points="{" ".join(seg)}" fill="none" stroke="{_SPARK_COLOUR[vital]}" '
        'stroke-width="2" stroke-linejoin="round" stroke-linecap="round" '
        'vector-effect="non-scaling-stroke"/>'
        for seg in segments if len(seg) >= 2
    )
    if not lines:
        return None
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'preserveAspectRatio="none">{lines}</svg>')


def _spark(snapshot: BedSnapshot, vital: Vital) -> html.Img | html.Div:
    # Without the newest point: it is replaced by every reading until its trend step
    # ends, so the picture (and the image the browser decodes) changes once a step, not
    # once a second.
    svg = None if snapshot.stale else sparkline_svg(snapshot.trend[:-1], vital)
    if svg is None:
        return html.Div(className="wt-spark wt-spark--empty")
    return html.Img(src="data:image/svg+xml;charset=utf-8," + quote(svg),
                    className="wt-spark", alt="")


def alarm_badge(alarm: Alarm, *, more: int = 0, ack_button: bool = True) -> html.Div:
    """The alarm strip: symbol + priority word + message, and Acknowledge."""
    pri = alarm.priority.value
    # The stale-signal alarm's message freezes the silence at detection ("no reading for
    # 32 s"); the tile counts the real age in big digits, so it must not contradict it.
    text = STALE_TEXT if alarm.rule == STALE_RULE.id else alarm.message or alarm.rule
    message: list = [text]
    if alarm.condition_ended:  # on the message line: the first line has no room for it
        message = [html.Span("ended", className="alarm-ended"), " ", *message]
    children: list = [
        html.Span(PRIORITY_SYMBOL[alarm.priority], className="alarm-sym",
                  **{"aria-hidden": "true"}),
        html.Span(PRIORITY_TEXT[alarm.priority], className="alarm-pri"),
        html.Span(message, className="alarm-msg", title=alarm.message),
    ]
    if more:
        children.append(html.Span(f"+{more}", className="alarm-more",
                                  title=f"{more} more active alarm(s)"))
    if alarm.status in _STATUS_TEXT:
        acked = alarm.status == AlertStatus.ACKNOWLEDGED
        by = f" {alarm.status_by}" if alarm.status_by and acked else ""
        children.append(html.Span(f"✓ {_STATUS_TEXT[alarm.status]}{by}"
                                  if acked
                                  else _STATUS_TEXT[alarm.status], className="alarm-status",
                                  title=f"{alarm.status} by {alarm.status_by}"
                                  if alarm.status_by else alarm.status))
    if ack_button and alarm.needs_action:
        children.append(html.Button(
            "ACK", id={"type": "ward-ack", "alert": alarm.alert_id}, n_clicks=0,
            className="alarm-ack", title="Acknowledge this alarm",
        ))
    state = "acked" if alarm.status == AlertStatus.ACKNOWLEDGED else "active"
    return html.Div(children, className=f"wt-alarm alarm--{pri} alarm--{state}",
                    role="alert" if state == "active" else None)


def _stale_body(s: BedSnapshot) -> html.Div:
    if s.no_data:
        detail = "no reading received"
    else:
        detail = "last " + format_clock(s.last_processed_ts / 1000)
    return html.Div(
        [
            html.Span("NO DATA", className="wt-stale-word"),
            html.Span(format_age(s.age_seconds) if not s.no_data else "--:--",
                      className="wt-stale-age"),
            html.Span(detail, className="wt-stale-detail"),
        ],
        className="wt-stale-body",
    )


# ---------------------------------------------------------------------------- tile


def tile_classes(s: BedSnapshot) -> str:
    classes = ["wt"]
    top = s.top_alarm
    if top is not None:
        acked = not any(a.needs_action for a in s.alarms if a.priority is top.priority)
        classes.append(f"wt--alarm-{top.priority.value}")
        if acked:
            classes.append("wt--acked")
    if s.stale:
        classes.append("wt--stale")
        if s.no_data:
            classes.append("wt--nodata")
    return " ".join(classes)


def tile_id(part: str, s: BedSnapshot) -> dict[str, str]:
    """Pattern-matching id of a tile part: "ward-tile" (the frame), "ward-vitals" (head
    and numbers), "ward-alarm" (the alarm strip with its Acknowledge button) or
    "ward-trend" (the HR and SpO2 sparklines)."""
    return {"type": part, "ward": s.ward, "bed": s.bed}


def render_vitals(s: BedSnapshot) -> list:
    """Head (bed, label, NEWS2) and the numbers, or the stale body."""
    head = html.Div(
        [
            html.Span(s.bed, className="wt-bed"),
            # the patient's label opens the drill-down page
            dcc.Link(s.label or "patient ›", href=f"/patient/{quote(s.patient_id, safe='')}",
                     className="wt-pt wt-pt-link", title=s.label or "")
            if s.patient_id else html.Span(s.label or "", className="wt-pt",
                                           title=s.label or ""),
            _news2_badge(s),
        ],
        className="wt-head",
    )
    if s.stale:
        return [head, _stale_body(s)]
    return [
        head,
        html.Div([_cell(s, Vital.HR, "HR"), _cell(s, Vital.SPO2, "SpO₂")],
                 className="wt-row wt-row--main"),
        html.Div([_cell(s, Vital.RR, "RR"), _cell(s, Vital.TEMP, "T")],
                 className="wt-row wt-row--sec"),
        html.Div([_bp(s)], className="wt-row wt-row--bp"),
    ]


def render_trend(s: BedSnapshot) -> html.Div:
    """The HR and SpO2 sparklines, laid over the bottom of the numbers' row. A part of
    its own: the numbers change every second, the trends once per trend step, and the
    two images are half of a tile's bytes."""
    if s.stale:
        return html.Div(className="wt-trend wt-trend--none")
    return html.Div([_spark(s, Vital.HR), _spark(s, Vital.SPO2)], className="wt-trend")


def trend_key(s: BedSnapshot, instance: str = "") -> str:
    """Changes exactly when ``render_trend`` would (the newest point is never drawn)."""
    if s.stale:
        return f"{instance}:stale"
    drawn = s.trend[:-1]
    if len(drawn) < 2:
        return f"{instance}:{len(drawn)}"
    return f"{instance}:{s.patient_id}:{len(drawn)}:{drawn[0].ts}:{drawn[-1].ts}"


def render_alarm(s: BedSnapshot) -> html.Div:
    top = s.top_alarm
    if top is None:
        return html.Div(className="wt-alarm alarm--none")
    return alarm_badge(top, more=len(s.alarms) - 1)


def render_tile(s: BedSnapshot) -> html.Div:
    """The tile of one bed at the snapshot's time.

    Parts with their own ids, so a screen can update the numbers every second without
    re-creating the alarm strip (a button replaced under a finger loses the click, and
    keyboard focus is lost with it) or re-sending the trends."""
    return tile_container(s, tile_classes(s), render_vitals(s), render_alarm(s),
                          render_trend(s))


def tile_container(s: BedSnapshot, classes: str, vitals: list, alarm: html.Div,
                   trend: html.Div) -> html.Div:
    return html.Div(
        [
            html.Div(vitals, id=tile_id("ward-vitals", s), className="wt-live"),
            html.Div(alarm, id=tile_id("ward-alarm", s), className="wt-alarm-slot"),
            html.Div(trend, id=tile_id("ward-trend", s), className="wt-trend-slot"),
        ],
        id=tile_id("ward-tile", s), className=classes, **{"data-bed": s.bed},
    )


def part_keys(s: BedSnapshot, instance: str = "") -> dict[str, str]:
    """What each part of the tile depends on: a part is re-sent when its key changes."""
    top = s.top_alarm
    alarm = ("-" if top is None else
             f"{top.alert_id}|{top.status}|{top.status_by}|{top.condition_ended}|{len(s.alarms)}")
    return {"ward-vitals": render_key(s, instance), "ward-alarm": alarm,
            "ward-tile": tile_classes(s), "ward-trend": trend_key(s, instance)}


def grid_shape(n: int) -> tuple[int, int]:
    """(columns, rows) for ``n`` tiles on a 16:9 screen; 32 beds are 8 x 4."""
    for limit, shape in ((1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (6, (3, 2)), (8, (4, 2)),
                         (12, (4, 3)), (16, (4, 4)), (20, (5, 4)), (24, (6, 4)),
                         (28, (7, 4)), (32, (8, 4))):
        if n <= limit:
            return shape
    return 8, math.ceil(n / 8)


def alarm_counts(snapshots: Iterable[BedSnapshot]) -> dict[Priority, int]:
    """Beds whose highest active alarm has each priority (unacknowledged ones only)."""
    counts = dict.fromkeys(Priority, 0)
    for s in snapshots:
        pending = [a for a in s.alarms if a.needs_action]
        if pending:
            counts[pending[0].priority] += 1
    return counts
