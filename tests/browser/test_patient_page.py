"""The patient drill-down in the real app, fed by the real pipeline.

A module fixture runs the Spark stream job, the web app and a generated patient with the
``sepsis`` scenario (``devices.generator``): 2.5 h of its 1 Hz readings are sent at once
(device time in the past, as a monitor reconnecting after an outage would), then it keeps
sending in real time. The pipeline stores the readings and the per-minute extremes and
raises the alerts of the deterioration; nothing is written to Cassandra by the test
except the census, the users and one acknowledgement (through ``AlertStore``, as the ward
screen does).

``ICU_SAVE_SCREENSHOTS=1`` writes docs/screenshots/patient-deteriorating.png (1920x1080).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests
from kafka import KafkaProducer
from pydantic import SecretStr
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from backend import audit, localtime
from backend.auth_policy import Role
from backend.notes import NOTE_ADDED
from backend.risk.live import HourScore
from backend.settings import Settings
from backend.storage import census
from backend.storage.alerts import AlertStore
from backend.storage.risk_scores import RiskScoreStore
from devices.generator import GeneratorConfig, generate, plan_patients
from devices.waveform_replay import chunks, load, publish
from harness import audit_trail
from harness.process import StreamJob
from harness.waiting import wait_until
from tests.browser.support import (
    click,
    scrolled_to,
    settled,
    type_into,
    wait,
    wait_text,
    wait_texts,
)
from webapp.patient.figure import ROWS

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
BACKFILL_S = 2.5 * 3600


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Monitor(threading.Thread):
    """Sends the generator's readings: the past at once, then each when its time comes."""

    def __init__(self, settings: Settings, cfg: GeneratorConfig) -> None:
        super().__init__(name="patient-monitor", daemon=True)
        self.settings, self.cfg = settings, cfg
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all",
                                      linger_ms=20)
        self.stop_event = threading.Event()
        self.sent = 0

    def run(self) -> None:
        for pid, reading in generate(self.cfg):
            while reading.ts > time.time() * 1000:
                if self.stop_event.wait(0.2):
                    return
            if self.stop_event.is_set():
                return
            self.producer.send(self.settings.kafka.topic_raw, key=pid.encode(),
                               value=reading.model_dump_json().encode())
            self.sent += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)
        self.producer.close(timeout=5)


@dataclass
class PatientSystem:
    base: str
    settings: Settings
    db: object
    patient_id: str
    ward: str
    start_ms: int = 0  # the first reading's time
    users: dict[Role, tuple[str, str]] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base + path

    def http_login(self, role: Role) -> requests.Session:
        name, password = self.users[role]
        s = requests.Session()
        r = s.get(self.url("/login"), timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
        r = s.post(self.url("/login"), data={"csrf_token": token, "username": name,
                                             "password": password},
                   allow_redirects=False, timeout=30)
        assert r.status_code == 302, r.text[:300]
        return s


@pytest.fixture(scope="module")
def system(services: Settings, _created, tmp_path_factory) -> Iterator[PatientSystem]:
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from backend.users import create_user

    tmp = tmp_path_factory.mktemp("patient-system")
    settings = _created.isolate(
        services, tmp / "checkpoints",
        secret_key=SecretStr(secrets.token_urlsafe(48)),
        spark={"trigger_seconds": 0.5},
        web={"host": "127.0.0.1", "port": _free_port()},
        # its own model registry, with the demo's shipped model active, so the live risk
        # query scores whatever the machine's own registry holds (or lacks)
        cache_dir=tmp / "cache",
    )
    from backend.risk import registry
    from ops.demo_cli import _demo_model

    _demo_model(settings)
    assert registry.active_version(settings) is not None
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)

    start_ms = int(time.time() * 1000) - int(BACKFILL_S * 1000)
    cfg = GeneratorConfig(start_ms=start_ms, patients=1, scenario_mix={"sepsis": 1},
                          seed=5, onset_range_s=(3600.0, 3700.0), ward_prefix="ICU-P",
                          id_prefix="pt5")
    plan = plan_patients(cfg)[0]
    census.admit(db, plan.admission(start_ms))
    system = PatientSystem(f"http://127.0.0.1:{settings.web.port}", settings, db,
                           plan.patient_id, plan.ward, start_ms)
    for role in (Role.NURSE, Role.PHYSICIAN):
        name, pw = f"p-{role.value}", secrets.token_urlsafe(16)
        create_user(db, name, pw, role, f"Patient {role.label}", actor="test", via="test")
        system.users[role] = (name, pw)

    job = StreamJob(settings, tmp / "stream.log")
    monitor = Monitor(settings, cfg)
    # the waveform sink (``icu stream waveforms``) and two recordings for the patient
    wave_log = tmp / "waveforms.log"
    with open(wave_log, "wb") as log:
        wave_sink = subprocess.Popen([sys.executable, "-m", "ops.cli", "stream", "waveforms"],
                                     cwd=REPO, env={**os.environ, **settings.to_env()},
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
    web_log = tmp / "web.log"
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    with open(web_log, "wb") as log:
        web = subprocess.Popen([sys.executable, "-m", "ops.cli", "web", "run"], cwd=REPO,
                               env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        job.start(ready_timeout=180)
        monitor.start()
        # the backfill is through when the newest stored reading is within a minute of now
        store_newest = db.prepare(
            "SELECT ts FROM readings_by_patient_day WHERE patient_id = ? AND day = ?"
            " ORDER BY ts DESC LIMIT 1")

        def caught_up() -> bool:
            from datetime import UTC, datetime
            row = db.execute(store_newest, (plan.patient_id,
                                            datetime.now(UTC).date())).one()
            return bool(row) and time.time() - row["ts"].replace(
                tzinfo=UTC).timestamp() < 60

        wait_until(caught_up, timeout=400, interval=2, what="the backfill to be stored")
        wait_until(lambda: AlertStore(db).for_patient(plan.patient_id), timeout=60,
                   what="an alert of the deterioration")
        # the live sepsis-risk query (started with the stream job) scores the closed hours
        # of the backfill; the page's header shows the newest score when it opens
        wait_until(lambda: RiskScoreStore(db).for_patient(
            plan.patient_id, start_ms, int(time.time() * 1000)), timeout=180,
            what="a live sepsis-risk score")
        wait_until(lambda: requests.get(system.url("/login"), timeout=2).status_code == 200,
                   timeout=90, what="the web app")
        producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
        now = int(time.time() * 1000)
        sent = 0
        for record, seconds in (("alarms2015/a103l", None), ("mitdb/100", 60)):
            rec = load(settings.data_dir, record, seconds)
            sent += publish(producer, settings.kafka.topic_waveforms,
                            chunks(rec, plan.patient_id, now - 400_000))
        producer.close()
        wait_until(lambda: db.execute(
            "SELECT count(*) AS n FROM waveforms_by_patient_hour WHERE patient_id = %s"
            " ALLOW FILTERING", (plan.patient_id,)).one()["n"] >= sent, timeout=120,
            what="the waveform chunks to be stored")
        yield system
    finally:
        os.killpg(wave_sink.pid, 15)
        wave_sink.wait(20)
        monitor.stop()
        job.stop()
        os.killpg(web.pid, 15)
        try:
            web.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, 9)
        if os.environ.get("ICU_KEEP_TEST_DATA", "") in ("1", "true", "yes"):
            print(f"web log: {web_log}\nstream log: {job.log_path}")
        db.cluster.shutdown()


def full_hd(driver) -> None:
    """A 1920x1080 viewport (a window of that size leaves less for the page)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})


def sign_in(driver, system: PatientSystem, role: Role) -> None:
    name, password = system.users[role]
    driver.get(system.url("/login"))
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, EC.presence_of_element_located((By.ID, "shell-role")))


def wait_range_message(driver, part: str, timeout: float = 30) -> str:
    """The range message once it contains ``part`` (as read by the wait itself)."""
    return wait_text(driver, (By.ID, "patient-range-msg"), lambda t: part in t, timeout)


def window_of(message: str, system: PatientSystem) -> tuple[int, int]:
    """The two ends of the range message (local time with the zone), in ms."""
    ends = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z][A-Za-z]*|"
                      r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d+", message)
    assert len(ends) == 2, message
    return tuple(localtime.parse_ms(e, system.settings.timezone) for e in ends)


_BOXES = """
const gd = document.querySelector('#patient-timeline .js-plotly-plot');
const g = gd.getBoundingClientRect(), fl = gd._fullLayout;
const box = e => { const r = e.getBoundingClientRect();
                   return [r.left, r.top, r.right, r.bottom]; };
const labels = [...gd.querySelectorAll('g.textpoint text')].filter(t => t.textContent)
  .map(t => ({text: t.textContent, box: box(t)}));
const markers = [...gd.querySelectorAll('.scatterlayer .trace path.point')].map(box);
const rows = Object.keys(fl).filter(k => /^yaxis\\d*$/.test(k)).map(k => ({name: k,
  top: g.top + fl[k]._offset, bottom: g.top + fl[k]._offset + fl[k]._length}));
const titles = [...gd.querySelectorAll('[class^="g-y"][class$="title"] text, '
  + '.annotation-text')].map(t => ({text: t.textContent, box: box(t)}));
const xtitle = gd.querySelector('.g-xtitle text');
return {labels, markers, rows, titles, xtitle: xtitle ? xtitle.textContent : null};
"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_layout_is_legible(driver, system: PatientSystem) -> None:
    """Measured in the browser: no two event labels overlap, no label covers an event's
    marker, every row title (and "Events") stays beside its own row, and the time axis
    names the hospital's zone."""
    def read(d):
        got = d.execute_script(_BOXES)
        return got if got["labels"] and got["rows"] else None

    got = wait(driver, read)
    labels = got["labels"]
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert not _overlap(a["box"], b["box"]), ("labels overlap", a, b)
        for m in got["markers"]:  # (its own marker is left of the text, outside it)
            cx, cy = (m[0] + m[2]) / 2, (m[1] + m[3]) / 2
            assert not (a["box"][0] < cx < a["box"][2] and a["box"][1] < cy < a["box"][3]), (
                "a label covers a marker", a, m)
    row_titles = {title for title, _, _ in ROWS} | {"Events"}
    titles = [t for t in got["titles"] if t["text"] in row_titles]
    assert len(titles) == len(row_titles), titles
    for t in titles:
        top, bottom = t["box"][1], t["box"][3]
        assert any(r["top"] - 3 <= top and bottom <= r["bottom"] + 3 for r in got["rows"]), (
            "a row title spills over its row", t, got["rows"])
    assert got["xtitle"] and system.settings.timezone in got["xtitle"]


def alert_marker_labels(driver) -> list[str]:
    """The text labels of the alert markers plotly drew (``H #1`` ...), once there are
    some; all read in one attempt, as the 15 s refresh redraws the timeline."""
    return [t for t in wait_texts(driver, "#patient-timeline g.textpoint text",
                                  lambda ts: any("#" in t for t in ts)) if "#" in t]


def preset(driver, value: str) -> None:
    click(driver, (By.CSS_SELECTOR, f'#patient-range-preset input[value="{value}"]'))


def apply_custom_range(driver, first: str, last: str) -> None:
    """Type both ends and press Apply. Until the range is custom, the page's 15 s refresh
    slides the preset window and rewrites both fields, so they are typed (again) until
    they hold the values, just before the click."""
    def attempt(d) -> bool:
        type_into(d, (By.ID, "patient-from"), first)
        type_into(d, (By.ID, "patient-to"), last)
        if (d.find_element(By.ID, "patient-from").get_attribute("value"),
                d.find_element(By.ID, "patient-to").get_attribute("value")) != (first, last):
            return False
        d.find_element(By.ID, "patient-range-apply").click()
        return True

    wait(driver, attempt, 60)


def test_physician_opens_patient_from_ward_switches_ranges_sees_alerts_and_adds_a_note(
        system: PatientSystem, browser) -> None:
    full_hd(browser)
    sign_in(browser, system, Role.PHYSICIAN)
    browser.get(system.url(f"/ward?ward={system.ward}"))
    click(browser, (By.CSS_SELECTOR, f'a.wt-pt-link[href="/patient/{system.patient_id}"]'),
          60)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "patient-title"),
                                                   system.patient_id))
    # default: fit to the data (2.5 h of backfill, so per-minute extremes); the window
    # starts just before the first reading instead of squashing it against the right edge
    message = wait_range_message(browser, "per-minute extremes", 60)
    assert browser.find_element(
        By.CSS_SELECTOR, '#patient-range-preset input[value="fit"]').is_selected()
    start, end = window_of(message, system)
    assert start <= system.start_ms + 60_000 and system.start_ms - start < 10 * 60_000
    labels = alert_marker_labels(browser)
    assert all(re.fullmatch(r"[HML] #\d+( \+\d+)?", t) for t in labels), labels
    assert_layout_is_legible(browser, system)
    rows = wait_texts(browser, "#patient-alerts-table tbody tr")
    assert len(rows) >= 2  # header row + at least one alert, numbered like the markers
    assert "#1" in rows[1]

    # 1 h: raw readings; 24 h: per-minute again. The range shown follows the preset.
    for value, resolution, hours in (("1h", "raw readings", 1), ("24h",
                                                                 "per-minute extremes", 24)):
        preset(browser, value)
        message = wait_range_message(browser, resolution)
        start, end = window_of(message, system)
        assert end - start == hours * 3_600_000

    # zooming in (as a drag on the chart does) re-fetches at the finer resolution
    browser.execute_script(
        "const gd = document.querySelector('#patient-timeline .js-plotly-plot');"
        "const end = new Date(Date.now() - 5 * 60000), start = new Date(end - 30 * 60000);"
        "const f = d => d.toISOString().replace('T', ' ').slice(0, 19);"
        "Plotly.relayout(gd, {'xaxis.range[0]': f(start), 'xaxis.range[1]': f(end)});")
    wait_range_message(browser, "raw readings")
    assert browser.find_element(
        By.CSS_SELECTOR, '#patient-range-preset input[value="custom"]').is_selected()
    preset(browser, "24h")
    wait_range_message(browser, "per-minute extremes")

    # a note, with markup in it: stored, listed as text, drawn on the timeline, audited
    note = f"Sepsis suspected <b>start</b> fluids {uuid.uuid4().hex[:6]}"
    type_into(browser, (By.ID, "patient-note"), note)
    click(browser, (By.ID, "patient-note-save"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "patient-note-msg"), "Note saved"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "patient-notes"), note))
    assert not browser.find_elements(By.CSS_SELECTOR, "#patient-notes b")
    wait_texts(browser, "#patient-timeline g.textpoint text", lambda ts: "note" in ts)
    events = audit_trail.recent(system.db, patient_id=system.patient_id)
    actions = {e.action for e in events}
    assert {audit.PATIENT_VIEWED, NOTE_ADDED} <= actions

    # a custom range: the whole stay so far, for the screenshot of the deterioration
    tz = system.settings.timezone
    first = localtime.to_local(time.time() * 1000 - BACKFILL_S * 1000 - 60_000, tz)
    last = localtime.to_local(time.time() * 1000 + 120_000, tz)
    first_text, last_text = first.strftime("%Y-%m-%d %H:%M"), last.strftime("%Y-%m-%d %H:%M")
    apply_custom_range(browser, first_text, last_text)
    wait_range_message(browser, first_text)
    alert_marker_labels(browser)
    assert_layout_is_legible(browser, system)
    # a bad custom range is refused with a message, the timeline stays as it was
    type_into(browser, (By.ID, "patient-to"), "tomorrow")
    click(browser, (By.ID, "patient-range-apply"))
    wait_range_message(browser, "is not a date")
    type_into(browser, (By.ID, "patient-to"), last_text)
    click(browser, (By.ID, "patient-range-apply"))
    wait_range_message(browser, first_text)
    # the sepsis-risk row (the last y axis) draws the hourly scores; the header says the
    # newest score against its threshold, in numbers and words
    risk_row = f"#patient-timeline .subplot.xy{len(ROWS) + 1} .scatterlayer path.js-line"
    wait(browser, lambda d: [p for p in d.find_elements(By.CSS_SELECTOR, risk_row)
                             if (p.get_attribute("d") or "M0,0Z") != "M0,0Z"])
    assert re.search(r"Sepsis risk\s+\d\.\d\d \((ABOVE|below) threshold",
                     wait_text(browser, (By.ID, "patient-facts"))), "no risk in the header"
    scrolled_to(browser, 0)
    settled(browser)
    if os.environ.get("ICU_SAVE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "patient-deteriorating.png"))
    # (after the screenshot) the header's risk follows new scores without reopening
    # the page (its 15 s refresh)
    now_ms = int(time.time() * 1000)
    hour = now_ms - now_ms % 3_600_000
    RiskScoreStore(system.db).write([HourScore(
        patient_id=system.patient_id, hour=999, hour_ts=hour, risk=0.9876, threshold=0.03,
        above=True, monitor_only=True, model_version="header-test", n_readings=60,
        inputs={"hr": 80.0})], now_ms)
    wait_text(browser, (By.ID, "patient-risk"), lambda t: t.startswith("0.99 (ABOVE"), 40)


def test_nurse_reads_notes_but_cannot_add_one(system: PatientSystem, browser) -> None:
    sign_in(browser, system, Role.NURSE)
    browser.get(system.url(f"/patient/{system.patient_id}"))
    wait(browser, EC.presence_of_element_located((By.ID, "patient-notes-readonly")))
    assert not browser.find_elements(By.ID, "patient-note")
    assert not browser.find_elements(By.ID, "patient-note-save")

    # the server refuses the note callback itself, whatever the page showed
    s = system.http_login(Role.NURSE)
    s.get(system.url(f"/patient/{system.patient_id}"), timeout=10)
    deps = {d["output"]: d for d in s.get(system.url("/_dash-dependencies"),
                                          timeout=10).json()}
    output = next(k for k in deps if "patient-note-msg.children" in k)
    dep = deps[output]
    values = {"patient-note-save": 1, "patient-id": system.patient_id,
              "patient-note": "nurse note", "patient-notes-version": 0}

    def items(specs):
        return [{"id": i["id"], "property": i["property"], "value": values.get(i["id"])}
                for i in specs]

    from dash._utils import split_callback_id
    body = {"output": output, "outputs": split_callback_id(output),
            "inputs": items(dep["inputs"]), "state": items(dep.get("state", [])),
            "changedPropIds": ["patient-note-save.n_clicks"]}
    r = s.post(system.url("/_dash-update-component"), data=json.dumps(body),
               headers={"Content-Type": "application/json",
                        "X-CSRFToken": s.cookies.get("_csrf_token") or ""}, timeout=30)
    assert r.status_code == 403, (r.status_code, r.text[:300])
    rows = system.db.execute("SELECT body FROM notes_by_patient WHERE patient_id = %s",
                             (system.patient_id,))
    assert "nurse note" not in {r["body"] for r in rows}

    # the physician's same request goes through (the refusal is the role, not the body)
    p = system.http_login(Role.PHYSICIAN)
    p.get(system.url(f"/patient/{system.patient_id}"), timeout=10)
    values["patient-note"] = "physician note over http"
    body["inputs"], body["state"] = items(dep["inputs"]), items(dep.get("state", []))
    r = p.post(system.url("/_dash-update-component"), data=json.dumps(body),
               headers={"Content-Type": "application/json",
                        "X-CSRFToken": p.cookies.get("_csrf_token") or ""}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert "Note saved" in r.text


def test_physician_sees_why_the_asystole_alarm_was_false(system: PatientSystem,
                                                         browser) -> None:
    """a103l on ECG paper: at the bedside alarm the ECG is flat, the pleth keeps pulsing."""
    full_hd(browser)
    sign_in(browser, system, Role.PHYSICIAN)
    browser.get(system.url(f"/patient/{system.patient_id}"))
    source = wait_text(browser, (By.ID, "patient-ecg-source"))
    assert "alarms2015/a103l (II, PLETH, V)" in source
    click(browser, (By.ID, "patient-ecg-alarm"))
    wait_texts(browser, "#patient-ecg .annotation-text",
               lambda ts: any("bedside alarm: Asystole (False alarm)" in t for t in ts))
    titles = wait_texts(browser, "#patient-ecg .ytitle, #patient-ecg .y2title, "
                                 "#patient-ecg .y3title")
    assert titles == ["II (mV)", "V (mV)", "PLETH (NU)"]
    # the strip's card at the top of the screen, below the sticky navigation bar
    card_top = browser.execute_script(
        "const card = document.getElementById('patient-ecg-source').closest('section');"
        "return Math.round(card.getBoundingClientRect().top + window.scrollY - 50);")
    scrolled_to(browser, card_top)
    settled(browser)
    if os.environ.get("ICU_SAVE_SCREENSHOTS"):
        browser.save_screenshot(str(SCREENSHOTS / "patient-ecg-a103l.png"))
    # MIT-BIH 100 with its beat annotations (N, A) on the strip
    click(browser, (By.CSS_SELECTOR, "#patient-ecg-source"), scroll=True)
    click(browser, (By.XPATH, "//*[@role='option'][contains(., 'mitdb/100')]"))
    wait_texts(browser, "#patient-ecg .annotation-text",
               lambda ts: sum(t == "N" for t in ts) >= 8)


def test_fhir_download_validates_round_trips_and_is_audited(system: PatientSystem) -> None:
    """The page's "Download FHIR Bundle" answer for the last 10 minutes: a valid R4
    Bundle (fhir.resources), whose Observations convert back to exactly the stored
    readings; and the export is in the audit log."""
    from dash._utils import split_callback_id

    from backend.fhir import bundle_to_device_readings, parse_bundle
    from backend.storage.readings import ReadingStore

    s = system.http_login(Role.PHYSICIAN)
    s.get(system.url(f"/patient/{system.patient_id}"), timeout=10)
    deps = {d["output"]: d for d in s.get(system.url("/_dash-dependencies"),
                                          timeout=10).json()}
    output = next(k for k in deps if "patient-fhir-download.data" in k)
    end = int(time.time() * 1000) - 30_000
    start = end - 600_000
    values = {"patient-fhir": 1, "patient-id": system.patient_id,
              "patient-range": {"start": start, "end": end}}
    dep = deps[output]
    body = {"output": output, "outputs": split_callback_id(output),
            "inputs": [{"id": i["id"], "property": i["property"],
                        "value": values.get(i["id"])} for i in dep["inputs"]],
            "state": [{"id": i["id"], "property": i["property"],
                       "value": values.get(i["id"])} for i in dep.get("state", [])],
            "changedPropIds": ["patient-fhir.n_clicks"]}
    r = s.post(system.url("/_dash-update-component"), data=json.dumps(body),
               headers={"Content-Type": "application/json",
                        "X-CSRFToken": s.cookies.get("_csrf_token") or ""}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    download = r.json()["response"]["patient-fhir-download"]["data"]
    assert download["filename"].endswith(".fhir.json")
    bundle = parse_bundle(download["content"])  # validates against FHIR R4(B)
    stored = ReadingStore(system.db).between(system.patient_id, start, end)
    # the columns are float32: the export writes the shortest decimal of that float32,
    # so the values are compared as float32 (what storing them again would give)
    expected = {(row.ts, v.value): np.float32(x) for row in stored
                for v, x in row.vitals.items()}
    assert len(bundle.entry) >= len(expected) > 500
    adm = census.get(system.db, system.patient_id)
    back = bundle_to_device_readings(download["content"], census={adm.patient_id: adm})
    got = {(d.ts, k.value if hasattr(k, "value") else k): np.float32(v)
           for d in back for k, v in d.vitals.items() if v not in (None, 0)}
    assert got == expected
    exports = audit_trail.recent(system.db, patient_id=system.patient_id,
                                 action=audit.PATIENT_EXPORTED)
    assert exports and exports[0].actor == system.users[Role.PHYSICIAN][0]
