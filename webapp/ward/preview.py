"""A standalone preview of the ward monitor with synthetic beds (no login, no servers).

    python -m webapp.ward.preview [--port 8051]

then open http://127.0.0.1:8051/?ward=ICU-A (add ``&theme=light``, ``&kiosk=1``).
Ward ICU-A has 32 beds: alarms at every priority (one acknowledged, one bed with two),
abnormal values at every level, a stale bed, a bed that never sent data, sensors off, a
missing parameter and a partial NEWS2. Scores and alarm texts come from the real rules
(``backend.alerting``). A thread keeps the values moving once a second, as the live feed
would.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time

import dash
from dash import Dash, html

from backend.alerting.evaluation import score_news2, score_qsofa
from backend.alerting.rules import RULES_BY_ID, STALE_RULE, Snapshot, stale_message
from backend.messages import AlertEvent, Consciousness, ValidatedReading
from backend.settings import REPO_ROOT, AlertingSettings
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
        # Scenario values (the alarms they raise: ``_alarms``).
        a = self.base
        a[("ICU-A", "3")][Vital.HR] = 146  # NEWS2 pulse 3: urgent (medium)
        a[("ICU-A", "7")][Vital.SPO2] = 82  # below the 85 % limit: high
        a[("ICU-A", "11")].update({Vital.HR: 136, Vital.RR: 27, Vital.SPO2: 92.6})  # NEWS2 8
        a[("ICU-A", "12")][Vital.RR] = 23  # NEWS2 2: marked, no alarm
        a[("ICU-A", "18")].update({Vital.SBP: 84, Vital.DBP: 47})  # MAP 59: medium
        a[("ICU-A", "21")][Vital.HR] = 124  # NEWS2 2 + 1: marked, no alarm
        a[("ICU-A", "21")][Vital.TEMP] = 38.6
        a[("ICU-A", "25")][Vital.HR] = 36  # below the 40/min limit: high
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
            off = [Vital.SPO2, Vital.PULSE]
        if ward == "ICU-A" and bed == BP_OFF_BED:
            off = [Vital.SBP, Vital.DBP, Vital.MAP]
        carried = {v: x for v, x in vals.items() if v not in off}
        if ward == "ICU-A" and bed == TEMP_MISSING_BED:
            carried.pop(Vital.TEMP, None)
        n = score_news2(rr=carried.get(Vital.RR), spo2=carried.get(Vital.SPO2), spo2_scale=1,
                        o2_supplemental=False, sbp=carried.get(Vital.SBP),
                        pulse=carried.get(Vital.HR), consciousness=Consciousness.ALERT,
                        temp=carried.get(Vital.TEMP))
        score, band = (n.total, n.band.value) if n else (None, None)
        self.seq += 1
        self.state.apply_reading(ValidatedReading(
            patient_id=f"{ward}-p{bed}", ward=ward, bed=bed, device_id=f"mon-{ward}-{bed}",
            seq=self.seq, ts=int(t * 1000), vitals={**carried, **dict.fromkeys(off, 0.0)},
            carried=carried, sensors_off=off, news2=score, news2_band=band,
            news2_complete=not off and not (ward == "ICU-A" and bed in (TEMP_MISSING_BED,
                                                                         PARTIAL_BED)),
            processed_ts=int(t * 1000) + 300,
        ))

    def tick(self, t: float, *, history: bool = False) -> None:
        for ward, bed in self.base:
            if ward == "ICU-A" and bed in (STALE_BED, NODATA_BED):
                continue
            self.reading(ward, bed, t, history=history)

    def _alarms(self, now: float) -> None:
        cfg = AlertingSettings()

        def raise_(bed: str, rules: tuple[str, ...], ago: float, ward: str = "ICU-A") -> None:
            """The rules that hold for the bed's values now, with their real texts."""
            values = self.values(ward, bed, now)
            off = frozenset({Vital.SPO2, Vital.PULSE} if bed == SPO2_OFF_BED else ())
            n = score_news2(rr=values[Vital.RR], spo2=values[Vital.SPO2], spo2_scale=1,
                            o2_supplemental=False, sbp=values[Vital.SBP],
                            pulse=values[Vital.HR], consciousness=Consciousness.ALERT,
                            temp=values[Vital.TEMP])
            snap = Snapshot(0, values, off, False, Consciousness.ALERT, n,
                            score_qsofa(rr=values[Vital.RR], sbp=values[Vital.SBP],
                                        consciousness=Consciousness.ALERT), Vital.HR)
            for rule_id in rules:
                rule = RULES_BY_ID[rule_id]
                ms = int((now - ago) * 1000)
                self.state.apply_alert(AlertEvent(
                    alert_id=f"{ward}-{bed}-{rule_id}", event="raised",
                    patient_id=f"{ward}-p{bed}", ward=ward, bed=bed, rule=rule_id,
                    priority=rule.priority, message=rule.message(snap, cfg), values={},
                    onset_ts=ms - 10_000, reading_ts=ms, detected_ts=ms,
                ))

        raise_("3", ("news2_red_flag",), 40)
        raise_("7", ("limit_spo2_low", "news2_red_flag"), 75)
        raise_("11", ("news2_high",), 20)
        raise_("18", ("limit_map_low", "news2_red_flag"), 300)
        self.state.apply_lifecycle("ICU-A-18-limit_map_low", "acknowledged", "n.kim", now - 200)
        raise_("25", ("limit_hr_low",), 15)
        raise_(SPO2_OFF_BED, ("sensor_off_spo2",), 600)
        ms = int((now - 10) * 1000)
        self.state.apply_alert(AlertEvent(
            alert_id="ICU-A-stale", event="raised", patient_id=f"ICU-A-p{STALE_BED}",
            ward="ICU-A", bed=STALE_BED, rule=STALE_RULE.id, priority=STALE_RULE.priority,
            message=stale_message(32), values={}, onset_ts=ms, reading_ts=ms, detected_ts=ms))

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
