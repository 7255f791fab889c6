"""Bed tiles and the ward screen's update callback, without a browser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dash import html, no_update

from backend.messages import AlertEvent, Priority, ValidatedReading
from backend.storage.census import Bed
from backend.vitals import Vital
from webapp.live.state import WardState
from webapp.ward import tiles, view
from webapp.ward.tiles import (
    MISSING,
    SENSOR_OFF,
    format_age,
    format_clock,
    grid_shape,
    render_tile,
    sparkline_svg,
)
from webapp.ward.view import AckResult, ward_callbacks, ward_layout

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def walk(component: Any) -> Iterator[Any]:
    yield component
    children = getattr(component, "children", None)
    if children is None:
        return
    for child in children if isinstance(children, (list, tuple)) else [children]:
        yield from walk(child)


def texts(component: Any) -> list[str]:
    return [c for c in walk(component) if isinstance(c, str)]


def classes(component: Any) -> set[str]:
    out: set[str] = set()
    for c in walk(component):
        out.update((getattr(c, "className", None) or "").split())
    return out


def reading(bed: str = "1", t: float = T0, **kw: Any) -> ValidatedReading:
    carried = kw.pop("carried", {Vital.HR: 123.0, Vital.SPO2: 91.0, Vital.RR: 22.0,
                                 Vital.SBP: 141.0, Vital.DBP: 77.0, Vital.MAP: 98.0,
                                 Vital.TEMP: 38.25})
    return ValidatedReading(
        patient_id=f"p{bed}", ward="ICU-A", bed=bed, device_id="d", seq=1, ts=int(t * 1000),
        vitals=dict(carried), carried=carried, processed_ts=int(t * 1000),
        **{"news2": 7, "news2_band": "high", "news2_complete": True, **kw},
    )


def alert(alert_id: str, priority: Priority, bed: str = "1") -> AlertEvent:
    ms = int(T0 * 1000)
    return AlertEvent(alert_id=alert_id, event="raised", patient_id=f"p{bed}", ward="ICU-A",
                      bed=bed, rule="rule", priority=priority, message=f"msg {alert_id}",
                      values={}, onset_ts=ms, reading_ts=ms, detected_ts=ms)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> WardState:
    return WardState(stale_after_seconds=30, clock=clock)


# --------------------------------------------------------------------------- tiles


def test_tile_shows_every_vital_with_its_display_decimals(state: WardState) -> None:
    state.apply_reading(reading())
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    t = texts(tile)
    for expected in ("1", "123", "91", "22", "141/77", "(98)", "38.2", "7", "HIGH"):
        assert expected in t, expected
    assert "partial" not in t
    assert "wt--stale" not in classes(tile)


@pytest.mark.parametrize(("priority", "symbol", "word"), [
    (Priority.HIGH, "▲▲▲", "HIGH"),
    (Priority.MEDIUM, "▲▲", "MED"),
    (Priority.LOW, "▲", "LOW"),
])
def test_alarm_priority_is_told_by_class_symbol_and_word(state: WardState, priority: Priority,
                                                         symbol: str, word: str) -> None:
    state.apply_reading(reading(news2=1, news2_band="low"))
    state.apply_alert(alert("a1", priority))
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    cls = classes(tile)
    assert f"wt--alarm-{priority.value}" in cls and f"alarm--{priority.value}" in cls
    strip = next(c for c in walk(tile) if "wt-alarm" in (getattr(c, "className", "") or ""))
    assert [symbol, word] == texts(strip)[:2]
    buttons = [c for c in walk(tile) if isinstance(c, html.Button)]
    assert [b.id for b in buttons] == [{"type": "ward-ack", "alert": "a1"}]


def test_acknowledged_alarm_has_no_button_and_says_who(state: WardState) -> None:
    state.apply_reading(reading())
    state.apply_alert(alert("a1", Priority.HIGH))
    state.apply_lifecycle("a1", "acknowledged", "n.kim", T0)
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    assert "✓ ACK n.kim" in texts(tile)
    assert "wt--acked" in classes(tile)
    assert not [c for c in walk(tile) if isinstance(c, html.Button)]


def test_stale_signal_alarm_does_not_contradict_the_age_counter(state: WardState,
                                                                 clock: Clock) -> None:
    state.apply_reading(reading())
    ms = int(T0 * 1000)
    state.apply_alert(AlertEvent(alert_id="s", event="raised", patient_id="p1", ward="ICU-A",
                                 bed="1", rule="stale_signal", priority=Priority.MEDIUM,
                                 message="No signal: no reading for 32 s", values={},
                                 onset_ts=ms, reading_ts=ms, detected_ts=ms))
    clock.t = T0 + 95
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    assert "01:35" in texts(tile) and tiles.STALE_TEXT in texts(tile)
    assert not any("32 s" in t for t in texts(tile))


def test_more_alarms_are_counted_on_the_top_one(state: WardState) -> None:
    state.apply_reading(reading())
    state.apply_alert(alert("low", Priority.LOW))
    state.apply_alert(alert("high", Priority.HIGH))
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    assert "+1" in texts(tile) and "msg high" in texts(tile)


def test_stale_tile_shows_no_vital_value_only_no_data_and_age(state: WardState,
                                                               clock: Clock) -> None:
    state.apply_reading(reading())
    clock.t = T0 + 45
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    t = texts(tile)
    assert "NO DATA" in t and "00:45" in t
    for value in ("123", "91", "22", "141/77", "38.2", "7"):
        assert value not in t
    assert "wt--stale" in classes(tile)
    assert not [c for c in walk(tile) if isinstance(c, html.Img)]  # no trend either


def test_a_bed_that_never_sent_data(state: WardState) -> None:
    state.load_ward("ICU-A", beds=[Bed("ICU-A", "4", "p4", "Elm", 1, None)])
    tile = render_tile(state.bed_snapshot("ICU-A", "4"))
    assert {"wt--stale", "wt--nodata"} <= classes(tile)
    assert "NO DATA" in texts(tile) and "Elm" in texts(tile)


def test_sensor_off_and_missing_parameters(state: WardState) -> None:
    state.apply_reading(reading(
        carried={Vital.HR: 80.0, Vital.RR: 14.0},
        sensors_off=[Vital.SPO2, Vital.SBP, Vital.DBP, Vital.MAP],
        news2=2, news2_band="low", news2_complete=False,
    ))
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    t = texts(tile)
    assert t.count(SENSOR_OFF) == 2  # SpO2 and BP
    assert MISSING in t  # temperature
    assert "partial" in t


def cell(tile: Any, vital: str) -> Any:
    return next(c for c in walk(tile)
                if f"wt-cell--{vital}" in (getattr(c, "className", "") or "").split())


def marker(component: Any) -> Any:
    return next((c for c in walk(component)
                 if "wt-abn" in (getattr(c, "className", "") or "").split()), None)


def test_abnormal_values_are_marked_by_the_rules_not_by_colour(state: WardState) -> None:
    state.apply_reading(reading(carried={
        Vital.HR: 145.0,  # NEWS2 pulse 3: the urgent (medium) alarm on its own
        Vital.SPO2: 83.0,  # below the 85 % limit: high
        Vital.RR: 10.0,  # NEWS2 1: outside the normal band, no alarm on its own
        Vital.TEMP: 37.0, Vital.SBP: 122.0, Vital.DBP: 40.0,  # DBP: no rule looks at it
        Vital.MAP: 58.0,  # below the 65 mmHg limit: medium
    }))
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    hr, spo2, rr, temp, bp = (cell(tile, v) for v in ("hr", "spo2", "rr", "temp", "bp"))
    assert {"abn", "abn--medium", "abn-side--high"} <= classes(hr)
    assert {"abn", "abn--high", "abn-side--low"} <= classes(spo2)
    assert {"abn", "abn--news", "abn-side--low"} <= classes(rr)
    assert "abn" not in classes(temp)
    # the marker: a shape that says the direction, with the reason for a screen reader
    assert marker(hr).children == "▲" and marker(spo2).children == "▼"
    assert marker(spo2).title == "SpO2 below normal: below limit 85 % (HIGH alarm)"
    assert marker(rr).title == "Respiratory rate below normal: NEWS2 1"
    assert marker(temp) is None
    # blood pressure: the mean is its own block; the systolic/diastolic number is normal
    bp_num = next(c for c in walk(bp) if "wt-num" in (getattr(c, "className", "") or ""))
    bp_map = next(c for c in walk(bp) if "wt-map" in (getattr(c, "className", "") or ""))
    assert "abn" not in bp_num.className.split()
    assert {"abn", "abn--medium"} <= set(bp_map.className.split())
    assert marker(bp).children == "▼" and "Mean BP" in marker(bp).title
    # the numbers are unchanged text (a screen reads them as before)
    assert {"145", "83", "10", "122/40", "(58)"} <= set(texts(tile))


def test_a_normal_patient_has_no_marks(state: WardState) -> None:
    state.apply_reading(reading(carried={Vital.HR: 75.0, Vital.SPO2: 97.0, Vital.RR: 16.0,
                                         Vital.TEMP: 37.0, Vital.SBP: 125.0, Vital.DBP: 70.0,
                                         Vital.MAP: 88.0}))
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    assert "abn" not in classes(tile) and marker(tile) is None


def test_marks_follow_the_wards_limits_and_the_patients_spo2_scale(clock: Clock) -> None:
    from backend.settings import Settings

    settings = Settings(alerting={"ward_limits": {"ICU-A": {"hr_above": 130}}})
    state = WardState.from_settings(settings, clock=clock)
    state.load_ward("ICU-A", beds=[Bed("ICU-A", "1", "p1", "", 2, None)])
    state.apply_reading(reading(carried={Vital.HR: 135.0, Vital.SPO2: 89.0}))
    tile = render_tile(state.bed_snapshot("ICU-A", "1"))
    assert "abn--high" in classes(cell(tile, "hr"))  # this ward alarms above 130/min
    assert "abn" not in classes(cell(tile, "spo2"))  # 89 % is the target on scale 2


def test_a_stale_bed_marks_nothing(state: WardState, clock: Clock) -> None:
    state.apply_reading(reading(carried={Vital.HR: 160.0}))
    clock.t = T0 + 45
    snap = state.bed_snapshot("ICU-A", "1")
    assert snap.flags == {} and marker(render_tile(snap)) is None


def test_a_once_a_minute_source_is_not_stale_between_its_frames(state: WardState,
                                                                 clock: Clock) -> None:
    for k in range(4):
        clock.t = T0 + 60 * k
        state.apply_reading(reading(t=clock.t))
    clock.t += 59  # a fixed 30 s timeout would show NO DATA now
    assert not state.bed_snapshot("ICU-A", "1").stale
    clock.t += 181 - 59  # three missed frames: stale
    assert state.bed_snapshot("ICU-A", "1").stale


def test_format_age() -> None:
    assert format_age(45.9) == "00:45"
    assert format_age(3725) == "1:02:05"
    assert format_age(None) == "--:--"


def test_grid_shape_fits_32_beds_in_8_by_4() -> None:
    assert grid_shape(32) == (8, 4)
    assert grid_shape(12) == (4, 3)
    assert grid_shape(1) == (1, 1)
    assert grid_shape(40) == (8, 5)


def test_sparkline_breaks_at_gaps_and_needs_two_points(state: WardState) -> None:
    from webapp.live.state import TrendPoint

    pts = [TrendPoint(int(T0 * 1000) + i * 5000, 70.0 + i, None if i == 3 else 95.0)
           for i in range(8)]
    hr = sparkline_svg(pts, Vital.HR)
    spo2 = sparkline_svg(pts, Vital.SPO2)
    assert hr.count("<polyline") == 1 and spo2.count("<polyline") == 2
    assert sparkline_svg(pts[:1], Vital.HR) is None


def test_sparkline_changes_once_a_trend_step_not_every_reading(state: WardState,
                                                                clock: Clock) -> None:
    def spark_src(t: float, hr: float) -> str | None:
        clock.t = t
        state.apply_reading(reading(t=t, carried={Vital.HR: hr, Vital.SPO2: 95.0}))
        s = state.bed_snapshot("ICU-A", "1")
        keys.add(tiles.part_keys(s)["ward-trend"])
        trend = tiles.render_trend(s)
        return next((c.src for c in walk(trend) if isinstance(c, html.Img)), None)

    keys: set[str] = set()

    assert spark_src(T0, 70.0) is None
    for k in range(1, 4):  # four 5 s steps of history
        spark_src(T0 + 5 * k, 70.0 + k)
    first = spark_src(T0 + 20, 90.0)
    assert first is not None
    assert spark_src(T0 + 21, 95.0) == first == spark_src(T0 + 23, 99.0)  # same step
    assert spark_src(T0 + 25, 60.0) != first  # the step ended: one more point
    assert len(keys) == 6  # the part's key changed with the picture, and only then


# --------------------------------------------------------------------------- screen


def _tick(state: WardState, clock: Clock, **kw: Any):
    server, _ = ward_callbacks(state, clock=clock, **kw)
    return {s.name: s for s in server}


def test_layout_has_the_parts_the_callbacks_need() -> None:
    layout = ward_layout(None, ["ICU-B", "ICU-A"], kiosk=True, theme="light")
    ids = {getattr(c, "id", None) for c in walk(layout)}
    assert {"ward-grid", "ward-sent", "ward-interval", "ward-picker", "ward-banner",
            "ward-clock", "ward-toast", "ward-theme", "ward-root"} <= ids
    assert "ward-kiosk" in layout.className and "ward-theme-light" in layout.className
    picker = next(c for c in walk(layout) if getattr(c, "id", None) == "ward-picker")
    assert picker.value == "ICU-A"


class Screen:
    """One browser showing the ward: keeps what the callback sent it, as Dash would."""

    def __init__(self, state: WardState, clock: Clock, monkeypatch, **kw: Any) -> None:
        self.tick = _tick(state, clock, **kw)["ward_tick"].function
        self.monkeypatch = monkeypatch
        self.sent: Any = None
        self.beds: list[tuple[str, str]] = []
        self.options: list = []

    def update(self, ward: str | None = "ICU-A") -> dict[str, Any]:
        present = {p: [{"type": p, "ward": w, "bed": b} for w, b in self.beds]
                   for p in view.PARTS}
        self.monkeypatch.setattr(view, "_present_parts", lambda: present)
        out = self.tick(0, ward, self.sent, self.options)
        names = ["grid", "style", *view.PARTS, "sent", "banner", "banner_class", "clock",
                 "summary", "options", "name"]
        result = dict(zip(names, out, strict=True))
        if result["sent"] is not no_update:
            self.sent = result["sent"]
        if isinstance(result["grid"], list):
            self.beds = [(c.id["ward"], c.id["bed"]) for c in result["grid"]
                         if isinstance(getattr(c, "id", None), dict)]
        return result

    @staticmethod
    def changed(values: list) -> list[int]:
        return [i for i, v in enumerate(values) if v is not no_update]


def test_update_sends_everything_first_then_only_changed_parts(state: WardState, clock: Clock,
                                                                monkeypatch) -> None:
    for bed in ("1", "2", "3"):
        state.apply_reading(reading(bed))
    screen = Screen(state, clock, monkeypatch)
    first = screen.update()
    assert isinstance(first["grid"], list) and len(first["grid"]) == 3
    assert first["style"]["gridTemplateColumns"].startswith("repeat(2,")
    assert "123" in texts(first["grid"][0])
    # Nothing changed: nothing sent.
    same = screen.update()
    assert same["grid"] is no_update and same["sent"] is no_update
    assert all(Screen.changed(same[p]) == [] for p in view.PARTS)
    # One bed's numbers changed: that bed's numbers only; its alarm strip stays.
    clock.t = T0 + 1
    state.apply_reading(reading("2", t=T0 + 1, carried={Vital.HR: 64.0}))
    upd = screen.update()
    assert upd["grid"] is no_update
    assert Screen.changed(upd["ward-vitals"]) == [1]
    assert "64" in texts(html.Div(upd["ward-vitals"][1]))
    assert Screen.changed(upd["ward-alarm"]) == [] and Screen.changed(upd["ward-tile"]) == []
    # An alarm: the strip and the frame of that bed.
    state.apply_alert(alert("a", Priority.HIGH, bed="3"))
    upd = screen.update()
    assert Screen.changed(upd["ward-alarm"]) == [2]
    assert upd["ward-tile"][2] == "wt wt--alarm-high"
    assert "HIGH" in texts(upd["ward-alarm"][2])
    # A new bed changes the grid: everything again.
    state.apply_reading(reading("4", t=T0 + 1))
    again = screen.update()
    assert isinstance(again["grid"], list) and len(again["grid"]) == 4


def test_stale_tiles_are_resent_every_second_for_their_age(state: WardState, clock: Clock,
                                                           monkeypatch) -> None:
    state.apply_reading(reading())
    screen = Screen(state, clock, monkeypatch)
    screen.update()
    clock.t = T0 + 40
    first = screen.update()
    clock.t = T0 + 41
    second = screen.update()
    assert Screen.changed(first["ward-vitals"]) == [0] == Screen.changed(second["ward-vitals"])
    assert "00:41" in texts(html.Div(second["ward-vitals"][0]))
    assert "wt--stale" in first["ward-tile"][0]
    assert second["ward-tile"][0] is no_update  # the frame did not change again


def test_delayed_banner_and_new_wards_in_the_picker(state: WardState, clock: Clock,
                                                    monkeypatch) -> None:
    state.apply_reading(reading())
    state.mark_delayed("kafka", at=T0 - 125)
    screen = Screen(state, clock, monkeypatch)
    screen.options = [{"label": "ICU-Z", "value": "ICU-Z"}]
    out = screen.update()
    assert "is-shown" in out["banner_class"]
    assert any("DATA DELAYED since" in t and "(2 min)" in t
               for t in texts(html.Div(out["banner"])))
    assert [o["value"] for o in out["options"]] == ["ICU-A", "ICU-Z"]
    state.mark_recovered("kafka")
    assert "is-hidden" in screen.update()["banner_class"]


def test_the_banner_says_what_is_behind(state: WardState, clock: Clock) -> None:
    """The stream job behind (monitors sending, nothing processed) reads differently from
    this screen's own link down; with both, the link wins (it hides the stream)."""
    state.mark_delayed("stream", at=T0 - 45)
    children, css = view._banner(state, T0)
    assert css == "ward-banner is-shown"
    icon, text, sub = (texts(c) for c in children)
    assert icon == ["⚠"]  # not by colour alone
    assert text == [f"DATA DELAYED since {format_clock(T0 - 45)}"]
    assert sub == [view.BANNER_STREAM_BEHIND]
    assert "monitors are sending but readings are not being processed" in sub[0]
    state.mark_delayed("kafka", at=T0 - 10)
    children, _ = view._banner(state, T0)
    assert texts(children[1]) == [f"DATA DELAYED since {format_clock(T0 - 45)}"]  # earliest
    assert texts(children[2]) == [view.BANNER_LINK_DOWN]
    state.mark_recovered("stream")
    assert texts(view._banner(state, T0)[0][2]) == [view.BANNER_LINK_DOWN]
    state.mark_recovered("kafka")
    assert view._banner(state, T0) == (None, "ward-banner is-hidden")


def test_update_never_raises(state: WardState, clock: Clock, monkeypatch) -> None:
    state.apply_reading(reading())
    screen = Screen(state, clock, monkeypatch)
    screen.update()

    def boom(*_a, **_k):
        raise RuntimeError("bug")

    monkeypatch.setattr(state, "ward_snapshot", boom)
    clock.t += 1  # the next second: no shared snapshot to reuse
    out = screen.update()
    assert out["grid"] is no_update  # the screen keeps what it shows
    assert out["ward-vitals"] == [no_update]
    assert "is-shown" in out["banner_class"]


def test_empty_ward_is_never_blank(state: WardState, clock: Clock, monkeypatch) -> None:
    grid = Screen(state, clock, monkeypatch).update(ward=None)["grid"]
    assert texts(grid[0]) == ["No ward selected."]


def _click(monkeypatch, alert_id: str) -> None:
    trigger = {"type": "ward-ack", "alert": alert_id}
    monkeypatch.setattr(view, "_triggered_id", lambda: trigger)
    monkeypatch.setattr(view, "_triggered", lambda: [{"prop_id": "x.n_clicks", "value": 1}])


def test_acknowledge_calls_the_workflow_and_updates_the_tile(state: WardState, clock: Clock,
                                                              monkeypatch) -> None:
    state.apply_reading(reading())
    state.apply_alert(alert("a1", Priority.HIGH))
    calls = []
    ack = _tick(state, clock, current_user=lambda: "n.kim",
                on_acknowledge=lambda a, u: calls.append((a, u)) or AckResult(True))[
        "ward_acknowledge"]
    assert ack.permission == "ward.acknowledge"
    _click(monkeypatch, "a1")
    toast = ack.function([1])
    assert calls == [("a1", "n.kim")]
    assert "is-ok" in toast.className and "HIGH" in toast.children
    assert state.alarm("a1").status == "acknowledged"


def test_acknowledge_failures_are_explained_not_raised(state: WardState, clock: Clock,
                                                       monkeypatch) -> None:
    state.apply_alert(alert("a1", Priority.LOW))

    def broken(alert_id: str, user: str):
        raise RuntimeError("db down")

    _click(monkeypatch, "a1")
    cbs = _tick(state, clock, current_user=lambda: "u", on_acknowledge=broken)
    assert "is-error" in cbs["ward_acknowledge"].function([1]).className
    cbs = _tick(state, clock, current_user=lambda: None, on_acknowledge=broken)
    assert "Sign in" in cbs["ward_acknowledge"].function([1]).children
    cbs = _tick(state, clock, current_user=lambda: "u",
                on_acknowledge=lambda a, u: AckResult(False, "already resolved"))
    assert cbs["ward_acknowledge"].function([1]).children == "already resolved"
    assert state.alarm("a1").status == "raised"
    # A re-rendered button (n_clicks 0) does not acknowledge anything.
    monkeypatch.setattr(view, "_triggered", lambda: [{"prop_id": "x.n_clicks", "value": 0}])
    assert cbs["ward_acknowledge"].function([0]) is no_update


def test_register_wraps_each_callback_with_its_permission(state: WardState) -> None:
    registered: list = []

    class FakeApp:
        def callback(self, *args, **kwargs):
            return lambda f: registered.append((args, kwargs, f)) or f

        def clientside_callback(self, code, *args):
            registered.append(("client", args))

    seen = []
    view.register_ward_callbacks(FakeApp(), state,
                                 wrap=lambda key, f: seen.append(key) or f)
    assert seen == ["ward", "ward.acknowledge"]
    assert sum(1 for r in registered if r[0] == "client") == 4


def test_screens_of_one_ward_share_its_snapshot_within_a_second(state: WardState,
                                                                 clock: Clock,
                                                                 monkeypatch) -> None:
    state.apply_reading(reading())
    calls = []
    original = state.ward_snapshot
    monkeypatch.setattr(state, "ward_snapshot",
                        lambda *a, **k: calls.append(a) or original(*a, **k))
    tick = _tick(state, clock)["ward_tick"].function
    monkeypatch.setattr(view, "_present_parts", lambda: {p: [] for p in view.PARTS})
    for _ in range(5):  # five screens in the same second
        tick(0, "ICU-A", None, [])
    assert len(calls) == 1
    clock.t += 1
    tick(0, "ICU-A", None, [])
    state.apply_reading(reading(t=T0 + 1, carried={Vital.HR: 99.0}))  # a change: at once
    tick(0, "ICU-A", None, [])
    assert len(calls) == 3


def test_tile_render_cache_reuses_unchanged_parts(state: WardState) -> None:
    state.apply_reading(reading())
    cache = view.TileCache()
    s = state.bed_snapshot("ICU-A", "1")
    keys = tiles.part_keys(s, "x")
    assert cache.part(s, "ward-vitals", keys["ward-vitals"]) is cache.part(
        s, "ward-vitals", keys["ward-vitals"])
    tile = cache.tile(s, keys)
    assert tile.id == {"type": "ward-tile", "ward": "ICU-A", "bed": "1"}
