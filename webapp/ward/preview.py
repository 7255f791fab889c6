"""A standalone preview of the ward monitor with synthetic beds (no login, no servers).

    python -m webapp.ward.preview [--port 8051]

then open http://127.0.0.1:8051/?ward=ICU-A (add ``&theme=light``, ``&kiosk=1``).
Ward ICU-A has 32 beds: alarms at every priority (one acknowledged, one bed with two),
a stale bed, a bed that never sent data, sensors off, a missing parameter and a partial
NEWS2. A thread keeps the values moving once a second, as the live feed would.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time

import dash
from dash import Dash, html

from backend.messages import AlertEvent, Priority, ValidatedReading
from backend.settings import REPO_ROOT
from backend.vitals import Vital
from webapp.live.state import WardState
from webapp.ward.view import AckResult, register_ward_callbacks, ward_layout

PSEUDONYMS = [
    "Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel", "Ivy", "Juniper",
    "Kapok", "Larch", "Maple", "Nutmeg", "Oak", "Pine", "Quince", "Rowan", "Spruce", "Teak",
    "Umbra", "Vine", "Willow", "Xylo", "Yew", "Zelkova", "Aspen", "Beech", "Cypress", "Damson",
    "Ebony", "Fig",
]

# bed -> scenario
STALE_BED, NODATA_BED = "9", "30"
SPO2_OFF_BED, BP_OFF_BED, TEMP_MISSING_BED, PARTIAL_BED = "14", "26", "5", "22"


def _baseline(i: int, rng: random.Random) -> dict[Vital, float]:
    return {
        Vital.HR: rng.uniform(62, 98), Vital.PULSE: 0, Vital.SPO2: rng.uniform(94, 99),
        Vital.RR: rng.uniform(12, 20), Vital.SBP: rng.uniform(105, 140),
        Vital.DBP: rng.uniform(58, 82), Vital.TEMP: rng.uniform(36.4, 37.6),
    }


class Synthetic:
    """Synthetic wards ICU-A (32 beds) and ICU-B (12 beds) written into a WardState."""

    def __init__(self, state: WardState, seed: int = 7) -> None:
        self.state = state
        self.rng = random.Random(seed)
        self.base: dict[tuple[str, str], dict[Vital, float]] = {}
        self.seq = 0
        for ward, n in (("ICU-A", 32), ("ICU-B", 12)):
            beds = [{"bed": str(i), "patient_id": f"{ward}-p{i}",
                     "label": PSEUDONYMS[(i - 1) % len(PSEUDONYMS)]} for i in range(1, n + 1)]
            state.load_ward(ward, beds=beds, latest=[], alerts=[])
            for i in range(1, n + 1):
                self.base[(ward, str(i))] = _baseline(i, self.rng)
        # Scenario values.
        a = self.base
        a[("ICU-A", "3")][Vital.HR] = 148
        a[("ICU-A", "7")][Vital.SPO2] = 89
        a[("ICU-A", "12")][Vital.RR] = 23
        a[("ICU-A", "18")][Vital.SBP] = 84
        a[("ICU-A", "21")][Vital.HR] = 124
        a[("ICU-A", "21")][Vital.TEMP] = 38.6
        now = time.time()
        # Ten minutes of history, so the sparklines show a trend.
        for k in range(120, 0, -1):
            self.tick(now - k * 5, history=True)
        self.tick(now)
        stale_at = now - 45
        self.reading("ICU-A", STALE_BED, stale_at)
        self._alarms(now)

    def values(self, ward: str, bed: str, t: float) -> dict[Vital, float]:
        base = self.base[(ward, bed)]
        phase = int(bed) % 17 if bed.isdigit() else 0
        out = {}
        for v, b in base.items():
            if v is Vital.PULSE:
                continue
            wobble = {Vital.HR: 3.0, Vital.SPO2: 0.8, Vital.RR: 1.2, Vital.SBP: 4.0,
                      Vital.DBP: 3.0, Vital.TEMP: 0.05}[v]
            x = b + wobble * math.sin(t / 40 + phase) + self.rng.gauss(0, wobble / 3)
            out[v] = min(x, 100.0) if v is Vital.SPO2 else x
        out[Vital.MAP] = (out[Vital.SBP] + 2 * out[Vital.DBP]) / 3
        return out

    def reading(self, ward: str, bed: str, t: float, *, history: bool = False) -> None:
        vals = self.values(ward, bed, t)
        off: list[Vital] = []
        if ward == "ICU-A" and bed == SPO2_OFF_BED:
            off = [Vital.SPO2]
        if ward == "ICU-A" and bed == BP_OFF_BED:
            off = [Vital.SBP, Vital.DBP, Vital.MAP]
        carried = {v: x for v, x in vals.items() if v not in off}
        if ward == "ICU-A" and bed == TEMP_MISSING_BED:
            carried.pop(Vital.TEMP, None)
        score = self._news2(carried)
        band = "high" if score >= 7 else "medium" if score >= 5 else "low"
        self.seq += 1
        self.state.apply_reading(ValidatedReading(
            patient_id=f"{ward}-p{bed}", ward=ward, bed=bed, device_id=f"mon-{ward}-{bed}",
            seq=self.seq, ts=int(t * 1000), vitals={**carried, **dict.fromkeys(off, 0.0)},
            carried=carried, sensors_off=off, news2=score, news2_band=band,
            news2_complete=not off and not (ward == "ICU-A" and bed in (TEMP_MISSING_BED,
                                                                         PARTIAL_BED)),
            processed_ts=int(t * 1000) + 300,
        ))

    @staticmethod
    def _news2(c: dict[Vital, float]) -> int:
        s = 0
        hr, spo2, rr = c.get(Vital.HR), c.get(Vital.SPO2), c.get(Vital.RR)
        sbp, temp = c.get(Vital.SBP), c.get(Vital.TEMP)
        if hr is not None:
            s += 3 if hr > 130 or hr <= 40 else 2 if hr > 110 else 1 if hr > 90 or hr <= 50 else 0
        if spo2 is not None:
            s += 3 if spo2 <= 91 else 2 if spo2 <= 93 else 1 if spo2 <= 95 else 0
        if rr is not None:
            s += 3 if rr >= 25 or rr <= 8 else 2 if rr >= 21 else 1 if rr <= 11 else 0
        if sbp is not None:
            s += 3 if sbp <= 90 or sbp >= 220 else 2 if sbp <= 100 else 1 if sbp <= 110 else 0
        if temp is not None:
            s += 2 if temp >= 39.1 else 1 if temp >= 38.1 or temp <= 36.0 else 0
        return s

    def tick(self, t: float, *, history: bool = False) -> None:
        for ward, bed in self.base:
            if ward == "ICU-A" and bed in (STALE_BED, NODATA_BED):
                continue
            self.reading(ward, bed, t, history=history)

    def _alarms(self, now: float) -> None:
        def raise_(bed: str, rule: str, pri: Priority, msg: str, ago: float, ward="ICU-A"):
            ms = int((now - ago) * 1000)
            self.state.apply_alert(AlertEvent(
                alert_id=f"{ward}-{bed}-{rule}", event="raised", patient_id=f"{ward}-p{bed}",
                ward=ward, bed=bed, rule=rule, priority=pri, message=msg, values={},
                onset_ts=ms - 10_000, reading_ts=ms, detected_ts=ms,
            ))

        raise_("3", "hr_high", Priority.HIGH, "HR 148 > 130", 40)
        raise_("7", "spo2_low", Priority.MEDIUM, "SpO2 89 < 90", 75)
        raise_("12", "rr_high", Priority.LOW, "RR 23 > 21", 120)
        raise_("18", "sbp_low", Priority.HIGH, "SBP 84 < 90", 300)
        self.state.apply_lifecycle("ICU-A-18-sbp_low", "acknowledged", "n.kim", now - 200)
        raise_("21", "hr_high", Priority.MEDIUM, "HR 124 > 120", 90)
        raise_("21", "temp_high", Priority.LOW, "Temp 38.6 > 38.0", 600)
        raise_(STALE_BED, "stale", Priority.MEDIUM, "No data from monitor", 10)
        raise_("4", "news2_high", Priority.HIGH, "NEWS2 7", 20, ward="ICU-B")

    def run(self, stop: threading.Event, period: float = 1.0) -> None:
        while not stop.wait(period):
            self.tick(time.time())


def build_app(state: WardState | None = None, *, live: bool = True) -> tuple[Dash, WardState]:
    state = state or WardState()
    synthetic = Synthetic(state)
    if live:
        threading.Thread(target=synthetic.run, args=(threading.Event(),), daemon=True,
                         name="ward-preview-synthetic").start()
    app = Dash(__name__, use_pages=True, pages_folder="",
               assets_folder=str(REPO_ROOT / "assets"), title="Ward monitor preview",
               suppress_callback_exceptions=True)

    def layout(ward: str | None = None, kiosk: str | None = None, theme: str | None = None,
               **_: object):
        # No navigation bar in the preview: the screen starts at the top of the window.
        return html.Div(
            ward_layout(ward or "ICU-A", state.wards(), kiosk=kiosk in ("1", "true"),
                        theme=theme),
            style={"--ward-top-offset": "0px"},
        )

    dash.register_page("ward", path="/", layout=layout)
    app.layout = dash.page_container
    register_ward_callbacks(
        app, state,
        on_acknowledge=lambda alert_id, user: AckResult(True, f"Acknowledged by {user}"),
        current_user=lambda: "preview",
    )
    return app, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8051)
    parser.add_argument("--delayed", action="store_true",
                        help="show the 'data delayed' banner (as if Kafka were unreachable)")
    args = parser.parse_args()
    app, state = build_app()
    if args.delayed:
        state.mark_delayed("kafka", at=time.time() - 75)
    app.run(host=args.host, port=args.port, debug=False)


if __name__ == "__main__":
    main()
