"""The ward monitor screen: layout and callbacks.

``ward_layout`` builds the page; ``register_ward_callbacks(app, state, ...)`` wires it
to a ``WardState``. Every ``web.ward_update_ms`` (500 ms) each screen asks for the ward's
beds and receives only the tiles that changed since what it already shows; the renders
are cached per process, so fifty screens cost one render per changed tile, not fifty,
and no screen ever queries Cassandra.

Polling, not push: Dash's WebSocket callbacks (``websocket=True``, server push with
``set_props``) exist only on its FastAPI and Quart servers (``websocket_capability``); on
the Flask server that flask-login needs, Dash 4.4 registers no WebSocket route and sends
every callback over HTTP. The measured reading-to-pixel times of both intervals are in
docs/benchmarks.md.

Component ids all start with ``ward-``; the acknowledge buttons are pattern-matching ids
``{"type": "ward-ack", "alert": alert_id}``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from dash.development.base_component import Component

from backend.alerting.status import AlertStatus
from backend.messages import Priority
from webapp.live.stall import STREAM
from webapp.live.state import BedSnapshot, WardState
from webapp.ward.tiles import (
    PRIORITY_SYMBOL,
    PRIORITY_TEXT,
    alarm_counts,
    format_clock,
    grid_shape,
    part_keys,
    render_alarm,
    render_trend,
    render_vitals,
    tile_classes,
    tile_container,
)

log = logging.getLogger(__name__)

INTERVAL_MS = 500  # the default of ``web.ward_update_ms``
THEMES = ("dark", "light")
# The parts of a tile a screen updates on their own (see tiles.render_tile).
PARTS = ("ward-tile", "ward-vitals", "ward-alarm", "ward-trend")
PART_PROP = {"ward-tile": "className", "ward-vitals": "children", "ward-alarm": "children",
             "ward-trend": "children"}


@dataclass(frozen=True, slots=True)
class AckResult:
    """What ``on_acknowledge`` may return; any object with ``ok`` and ``message``
    attributes does, and so does a plain bool."""

    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """One server-side callback, ready for ``app.callback(*outputs, *inputs, *states,
    **kwargs)(function)`` (or for an authorisation registry that wraps ``function``)."""

    name: str
    # The permission the callback needs in backend.auth_policy ("ward" to watch the
    # ward, "ward.acknowledge" to acknowledge); for the shell's authorisation wrapper.
    permission: str
    outputs: list[Output]
    inputs: list[Input]
    states: list[State]
    function: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClientsideSpec:
    name: str
    code: str
    outputs: list[Output]
    inputs: list[Input]
    states: list[State]


# ----------------------------------------------------------------------------- layout


def ward_layout(ward: str | None, wards: list[str], *, kiosk: bool = False,
                theme: str | None = None, update_ms: int = INTERVAL_MS) -> html.Div:
    """The ward monitor for ``ward`` (the first of ``wards`` if ``None``).

    ``kiosk`` (``?kiosk=1``) covers the whole window and hides the navigation chrome and
    the picker; ``theme`` is "dark" (default, night shift) or "light". Without ``theme``
    the toggle's last choice is remembered in the browser; a ``theme`` given (the URL of
    a wall screen) wins over that memory, and the toggle then lasts until reload.
    ``update_ms``: how often the screen asks for its changed tiles (``web.ward_update_ms``)."""
    wards = sorted(set(wards) | ({ward} if ward else set()))
    ward = ward or (wards[0] if wards else None)
    explicit = theme in THEMES
    theme = theme if explicit else "dark"
    root_class = f"ward-root ward-theme-{theme}" + (" ward-kiosk" if kiosk else "")
    header = html.Div(
        [
            html.Div(
                [
                    html.Span("WARD", className="ward-title-lab"),
                    dcc.Dropdown(
                        id="ward-picker", options=[{"label": w, "value": w} for w in wards],
                        value=ward, clearable=False, searchable=False,
                        className="ward-picker", placeholder="Select a ward",
                    ),
                    html.Span(ward or "", id="ward-name", className="ward-name"),
                ],
                className="ward-title",
            ),
            html.Div(id="ward-summary", className="ward-summary"),
            html.Div(
                [
                    html.Span(id="ward-clock", className="ward-clock"),
                    html.Button("☾ / ☀", id="ward-theme-toggle", n_clicks=0,
                                className="ward-theme-toggle",
                                title="Switch between dark (night) and light theme"),
                ],
                className="ward-tools",
            ),
        ],
        className="ward-header",
    )
    return html.Div(
        [
            dcc.Store(id="ward-sent", storage_type="memory"),
            # A stored value wins over ``data`` in a "local" Store: an explicit theme
            # must not read it.
            dcc.Store(id="ward-theme", storage_type="memory" if explicit else "local",
                      data=theme),
            dcc.Store(id="ward-kiosk", data=kiosk),
            dcc.Interval(id="ward-interval", interval=update_ms, n_intervals=0),
            header,
            html.Div(id="ward-banner", className="ward-banner is-hidden", role="status"),
            html.Div(
                html.Div("Connecting to the live feed…", className="ward-empty"),
                id="ward-grid", className="ward-grid",
            ),
            html.Div(id="ward-toast", className="ward-toast", role="status"),
        ],
        id="ward-root",
        className=root_class,
    )


# ------------------------------------------------------------------------ render cache


def _plain(value: Any) -> Any:
    """``value`` as the JSON-ready tree Dash sends (``to_plotly_json`` all the way down)."""
    if isinstance(value, Component):
        as_json = value.to_plotly_json()
        return {**as_json, "props": {k: _plain(v) for k, v in as_json["props"].items()}}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Prerendered:
    """A rendered component whose JSON is computed once, when it is rendered.

    Dash's JSON encoder calls ``to_plotly_json`` on every component of an answer, one
    Python call per element: for 32 tiles of ~40 elements that cost ~25 ms per screen
    and second, nearly all of a screen's update. A cached part answers with its
    finished tree instead (one call), which the C JSON encoder writes. Attribute reads
    go to the component (tests and callers still see ``children``, ``className``...)."""

    __slots__ = ("_json", "component")

    def __init__(self, component: Component) -> None:
        self.component = component
        self._json = _plain(component)

    def to_plotly_json(self) -> dict:
        return self._json

    def __getattr__(self, name: str) -> Any:
        return getattr(self.component, name)

    def __repr__(self) -> str:
        return f"Prerendered({self.component!r})"


def prerender(value: Any) -> Any:
    """Components (or lists of them) as ``Prerendered``; anything else unchanged."""
    if isinstance(value, Component):
        return Prerendered(value)
    if isinstance(value, list):
        return [prerender(v) for v in value]
    return value


class TileCache:
    """The last rendered parts of each bed's tile, shared by every screen of the process:
    fifty screens cost one render (and one JSON tree) per change, not fifty."""

    _RENDER: ClassVar[dict[str, Callable[[BedSnapshot], Any]]] = {
        "ward-tile": tile_classes, "ward-vitals": render_vitals, "ward-alarm": render_alarm,
        "ward-trend": render_trend,
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[tuple[str, str, str], tuple[str, Any]] = {}

    def part(self, s: BedSnapshot, part: str, key: str) -> Any:
        k = (s.ward, s.bed, part)
        with self._lock:
            hit = self._parts.get(k)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = prerender(self._RENDER[part](s))
        with self._lock:
            self._parts[k] = (key, value)
        return value

    def tile(self, s: BedSnapshot, keys: dict[str, str]) -> html.Div:
        return tile_container(s, *(self.part(s, p, keys[p]) for p in PARTS))


# ------------------------------------------------------------------------- callbacks


def _flask_login_user() -> str | None:
    try:
        from flask_login import current_user
    except ImportError:
        return None
    try:
        if current_user and current_user.is_authenticated:
            return getattr(current_user, "username", None) or current_user.get_id()
    except Exception:
        return None
    return None


# What the banner says is behind. While this process cannot reach Kafka or Cassandra it
# cannot see the stream either, so only a stream-only delay gets the stream's words.
BANNER_LINK_DOWN = "values may be out of date; reconnecting…"
# The web app cannot restart the stream job, so it does not promise to reconnect; it says
# what a nurse must do meanwhile.
BANNER_STREAM_BEHIND = ("monitors are sending but readings are not being processed; "
                        "check patients at the bedside")


def _banner(state: WardState, now: float) -> tuple[Any, str]:
    since = state.delayed_since
    if since is None:
        return None, "ward-banner is-hidden"
    minutes = int(max(0.0, now - since) // 60)
    ago = f" ({minutes} min)" if minutes else ""
    sub = BANNER_STREAM_BEHIND if state.delayed_sources == (STREAM,) else BANNER_LINK_DOWN
    return (
        [html.Span("⚠", className="ward-banner-icon", **{"aria-hidden": "true"}),
         html.Span(f"DATA DELAYED since {format_clock(since)}{ago}",
                   className="ward-banner-text"),
         html.Span(sub, className="ward-banner-sub")],
        "ward-banner is-shown",
    )


def _summary(snapshots: list[BedSnapshot]) -> list:
    counts = alarm_counts(snapshots)
    stale = sum(1 for s in snapshots if s.stale)
    items = [
        html.Span([html.Span(PRIORITY_SYMBOL[p], className="alarm-sym"),
                   f" {counts[p]} {PRIORITY_TEXT[p]}"],
                  className=f"ward-count count--{p.value}" + ("" if counts[p] else " is-zero"))
        for p in Priority
    ]
    items.append(html.Span(f"{stale} NO DATA", className="ward-count count--stale"
                           + ("" if stale else " is-zero")))
    items.append(html.Span(f"{len(snapshots)} beds", className="ward-count count--beds"))
    return items


def ward_callbacks(
    state: WardState,
    *,
    on_acknowledge: Callable[[str, str], Any] | None = None,
    current_user: Callable[[], str | None] = _flask_login_user,
    clock: Callable[[], float] = time.time,
) -> tuple[list[CallbackSpec], list[ClientsideSpec]]:
    """The ward screen's callbacks, unregistered. See ``register_ward_callbacks``."""
    cache = TileCache()
    instance = uuid.uuid4().hex[:8]
    # Every screen of a ward asks within the same second: the snapshots and part keys of
    # (ward, second, ward version) are taken once and shared.
    views: dict[str, tuple[tuple[int, int], list[BedSnapshot], dict]] = {}

    def ward_view(ward: str, now: float) -> tuple[list[BedSnapshot], dict]:
        hit = views.get(ward)
        if hit is not None and hit[0] == (int(now), state.ward_version(ward)):
            return hit[1], hit[2]
        snaps = state.ward_snapshot(ward, now)
        keys = {s.bed: part_keys(s, instance) for s in snaps}
        # the version after the snapshot: going stale is noticed (and counted) by taking it
        views[ward] = ((int(now), state.ward_version(ward)), snaps, keys)
        return snaps, keys

    def tick(_n: int, ward: str | None, sent: dict | None, options: list | None):
        """Every update: the tiles that changed, the banner, the clock, the summary."""
        now = clock()
        present = _present_parts()
        keep_parts = [[no_update] * len(present[p]) for p in PARTS]
        try:
            wards = state.wards()
            if ward is None and wards:
                ward = wards[0]
            known = [o["value"] if isinstance(o, dict) else o for o in options or []]
            new_options = ([{"label": w, "value": w} for w in sorted(set(wards) | set(known))]
                           if set(wards) - set(known) else no_update)
            banner, banner_class = _banner(state, now)
            snaps, keys = ward_view(ward, now) if ward else ([], {})
            order = [s.bed for s in snaps]
            shown = [(i.get("ward"), i.get("bed")) for i in present["ward-vitals"]]
            grid: Any = no_update
            style: Any = no_update
            parts: list[list[Any]] = keep_parts
            if not snaps:
                text = ("No beds in this ward." if ward and state.ward_version(ward)
                        else "Waiting for data…" if ward else "No ward selected.")
                grid = [html.Div(text, className="ward-empty")]
                style = {}
                new_sent: Any = {"ward": ward, "order": [], "keys": {}}
            elif (not sent or sent.get("ward") != ward or sent.get("order") != order
                  or shown != [(ward, b) for b in order] or _triggered_id() == "ward-picker"):
                # The set of beds changed: send the whole grid.
                grid = [cache.tile(s, keys[s.bed]) for s in snaps]
                cols, rows = grid_shape(len(snaps))
                style = {"gridTemplateColumns": f"repeat({cols}, minmax(0, 1fr))",
                         "gridTemplateRows": f"repeat({rows}, minmax(0, 1fr))"}
                new_sent = {"ward": ward, "order": order, "keys": keys}
            else:
                # Same beds: only the parts whose key changed.
                by_bed = {s.bed: s for s in snaps}
                old = sent.get("keys") or {}
                parts = []
                changed = False
                for p in PARTS:
                    values = []
                    for ident in present[p]:
                        bed = ident.get("bed")
                        key = keys[bed][p]
                        if (old.get(bed) or {}).get(p) == key:
                            values.append(no_update)
                        else:
                            values.append(cache.part(by_bed[bed], p, key))
                            changed = True
                    parts.append(values)
                new_sent = {"ward": ward, "order": order, "keys": keys} if changed else no_update
            return (grid, style, *parts, new_sent, banner, banner_class, format_clock(now),
                    _summary(snaps), new_options, ward or "")
        except Exception:
            # Never a traceback on a wall screen: keep what it shows, say so, retry.
            log.exception("ward screen update failed")
            return (no_update, no_update, *keep_parts, None,
                    [html.Span("⚠", className="ward-banner-icon"),
                     html.Span("Display error: retrying", className="ward-banner-text")],
                    "ward-banner is-shown", format_clock(now), no_update, no_update, no_update)

    def acknowledge(n_clicks: list[int | None]):
        trigger = _triggered_id()
        if not isinstance(trigger, dict) or not any(t.get("value") for t in _triggered()):
            return no_update
        alert_id = str(trigger.get("alert"))
        try:
            user = current_user()
            if not user:
                return _toast("Sign in to acknowledge alarms.", ok=False)
            if on_acknowledge is None:
                return _toast("Acknowledging is not available on this screen.", ok=False)
            alarm = state.alarm(alert_id)
            result = on_acknowledge(alert_id, user)
            ok = bool(getattr(result, "ok", result))
            message = getattr(result, "message", "") or ""
            if not ok:
                return _toast(message or "The alarm could not be acknowledged.", ok=False)
            state.apply_lifecycle(alert_id, AlertStatus.ACKNOWLEDGED, user, clock())
            what = (f"Bed {alarm.bed}: {PRIORITY_TEXT[alarm.priority]} alarm acknowledged"
                    if alarm is not None else "Alarm acknowledged")
            return _toast(message or what, ok=True)
        except Exception:
            log.exception("acknowledging %s failed", alert_id)
            return _toast("The alarm could not be acknowledged: please try again.", ok=False)

    server = [
        CallbackSpec(
            name="ward_tick",
            permission="ward",
            outputs=[Output("ward-grid", "children"), Output("ward-grid", "style"),
                     *(Output({"type": p, "ward": ALL, "bed": ALL}, PART_PROP[p])
                       for p in PARTS),
                     Output("ward-sent", "data"), Output("ward-banner", "children"),
                     Output("ward-banner", "className"), Output("ward-clock", "children"),
                     Output("ward-summary", "children"), Output("ward-picker", "options"),
                     Output("ward-name", "children")],
            inputs=[Input("ward-interval", "n_intervals"), Input("ward-picker", "value")],
            states=[State("ward-sent", "data"), State("ward-picker", "options")],
            function=tick,
        ),
        CallbackSpec(
            name="ward_acknowledge",
            permission="ward.acknowledge",
            outputs=[Output("ward-toast", "children")],
            inputs=[Input({"type": "ward-ack", "alert": ALL}, "n_clicks")],
            states=[],
            function=acknowledge,
            kwargs={"prevent_initial_call": True},
        ),
    ]
    client = [
        ClientsideSpec(
            name="ward_theme_toggle",
            code="""function(n, theme) {
                if (!n) { return window.dash_clientside.no_update; }
                return theme === 'light' ? 'dark' : 'light';
            }""",
            outputs=[Output("ward-theme", "data")],
            inputs=[Input("ward-theme-toggle", "n_clicks")],
            states=[State("ward-theme", "data")],
        ),
        ClientsideSpec(
            name="ward_theme_apply",
            code="""function(theme, kiosk) {
                theme = theme === 'light' ? 'light' : 'dark';
                return 'ward-root ward-theme-' + theme + (kiosk ? ' ward-kiosk' : '');
            }""",
            outputs=[Output("ward-root", "className")],
            inputs=[Input("ward-theme", "data")],
            states=[State("ward-kiosk", "data")],
        ),
        ClientsideSpec(
            name="ward_toast_expire",
            code="""function(children) {
                if (children) {
                    clearTimeout(window._wardToastTimer);
                    window._wardToastTimer = setTimeout(function () {
                        window.dash_clientside.set_props('ward-toast', {children: null});
                    }, 6000);
                }
            }""",
            outputs=[],
            inputs=[Input("ward-toast", "children")],
            states=[],
        ),
        ClientsideSpec(
            name="ward_url_sync",
            code="""function(ward) {
                if (ward) {
                    var url = new URL(window.location.href);
                    if (url.searchParams.get('ward') !== ward) {
                        url.searchParams.set('ward', ward);
                        window.history.replaceState(window.history.state, '', url);
                    }
                }
            }""",
            outputs=[],
            inputs=[Input("ward-picker", "value")],
            states=[],
        ),
    ]
    return server, client


def _present_parts() -> dict[str, list[dict]]:
    """The ids of the tile parts the screen has now, per part, in the order of the
    running callback's wildcard outputs (empty outside a callback)."""
    try:
        outputs = ctx.outputs_list
    except Exception:
        outputs = None
    present: dict[str, list[dict]] = {p: [] for p in PARTS}
    for group in outputs or []:
        if isinstance(group, list):
            for spec in group:
                ident = spec.get("id")
                if isinstance(ident, dict) and ident.get("type") in present:
                    present[ident["type"]].append(ident)
    return present


def _triggered_id() -> Any:
    """The id of the input that fired the running callback (``None`` outside one)."""
    try:
        return ctx.triggered_id
    except Exception:
        return None


def _triggered() -> list[dict]:
    try:
        return list(ctx.triggered)
    except Exception:
        return []


def _toast(text: str, *, ok: bool) -> html.Div:
    return html.Div(text, className="ward-toast-msg " + ("is-ok" if ok else "is-error"))


def register_ward_callbacks(
    app: Any,
    state: WardState,
    *,
    on_acknowledge: Callable[[str, str], Any] | None = None,
    current_user: Callable[[], str | None] = _flask_login_user,
    wrap: Callable[[str, Callable[..., Any]], Callable[..., Any]] | None = None,
    clock: Callable[[], float] = time.time,
) -> list[CallbackSpec]:
    """Register the ward screen's callbacks on ``app`` (call once per app).

    ``app`` is a ``Dash`` app or the ``dash`` module itself (anything with ``callback``
    and ``clientside_callback``), so it also works before the app exists (Pages).

    * ``state``: the process's ``WardState`` (``webapp.live.live_state(settings)``).
    * ``on_acknowledge(alert_id, user)``: the real acknowledge workflow; returns an
      ``AckResult``-like object (``ok``, ``message``) or a bool. Without it the button
      explains that acknowledging is not available.
    * ``current_user()``: the signed-in user's name (default: flask-login's
      ``current_user.username`` or ``get_id()``).
    * ``wrap(permission, function)``: applied to each server-side callback before
      registration, e.g. ``lambda key, f: webapp.security.tag(f, key)``; the permissions
      are "ward" (the periodic update) and "ward.acknowledge" (the Acknowledge buttons).
      Who may call them is decided there, by the request hook of ``webapp/security.py``
      from ``backend/auth_policy.py``, not in these callbacks. Clientside callbacks (theme,
      URL, toast timer) never reach the server.
    """
    server, client = ward_callbacks(
        state, on_acknowledge=on_acknowledge, current_user=current_user, clock=clock,
    )
    for spec in server:
        function = wrap(spec.permission, spec.function) if wrap is not None else spec.function
        app.callback(*spec.outputs, *spec.inputs, *spec.states, **spec.kwargs)(function)
    for c in client:
        app.clientside_callback(c.code, *c.outputs, *c.inputs, *c.states)
    return server
