"""Patient timeline: time from request to rendered figure, 1 h / 24 h / 72 h of 1 Hz data.

    .venv/bin/python bench/bench_patient_timeline.py [--hours 72] [--repeats 5] [--out F]

What runs (its own Cassandra keyspace ``icu_bench_pt_<hex>``, dropped at the end unless
``--keep``):

1. Seeding: one patient, ``--hours`` of 1 Hz readings of 6 parameters (HR, SpO2, RR,
   systolic and diastolic BP, temperature; random walks with 12-second desaturations),
   written with the sink's own stores (``ReadingStore.write`` for the raw rows,
   ``MinuteStore.write`` for the per-minute extremes) in micro-batches of 500 readings,
   as the stream job writes them. The Spark job itself is not part of this benchmark
   (``bench_stream.py`` measures it).
2. For each window (1 h, 24 h, 72 h, ending at the newest reading), ``--repeats`` times:
   * **chosen path**: ``backend.patient_record.load_timeline`` (raw rows for <= 2 h,
     per-minute extremes beyond; min/max to 1,600 points per series) + the plotly figure
     dict (``webapp.patient.figure.timeline_figure``) + its JSON encoding with plotly's
     encoder, as Dash sends it;
   * **baseline** (the naive path): every raw row of the window
     (``load_timeline_naive``), then the same reduction, figure and encoding;
   * **rendered**: the real web app (``icu web run``) and headless Chromium signed in as a
     physician: click the preset, wait until plotly has drawn the new figure (the page's
     range message and the figure's x range both changed) - request, server, transfer
     and browser rendering together.

Prints a Markdown table (median and best of the repeats; ratios baseline / chosen);
``--out`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import requests
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.auth_policy import Role  # noqa: E402
from backend.messages import ValidatedReading  # noqa: E402
from backend.patient_record import load_timeline, load_timeline_naive  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.storage import census  # noqa: E402
from backend.storage.cassandra import connect  # noqa: E402
from backend.storage.migrate import migrate  # noqa: E402
from backend.storage.minutes import MinuteStore  # noqa: E402
from backend.storage.readings import ReadingStore  # noqa: E402
from backend.timeline import HOUR_MS  # noqa: E402
from backend.vitals import Vital  # noqa: E402

WINDOWS_H = (1, 24, 72)
BATCH = 500
PATIENT = "bench-pt-1"


def synth(hours: float, end_ms: int, seed: int = 7) -> list[ValidatedReading]:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600)
    start = end_ms - n * 1000

    def walk(mean, sd, lo, hi, step):
        x = np.empty(n)
        x[0] = mean
        noise = rng.normal(0, step, n)
        for i in range(1, n):  # mean-reverting walk
            x[i] = x[i - 1] + noise[i] + (mean - x[i - 1]) * 0.002
        return np.clip(x + rng.normal(0, sd, n), lo, hi)

    hr = walk(85, 1.5, 30, 200, 0.3).round()
    spo2 = walk(96, 0.6, 70, 100, 0.05).round()
    for s in rng.integers(0, n - 20, max(1, int(hours / 3))):
        spo2[s:s + 12] = rng.integers(78, 86)
    rr = walk(17, 0.8, 5, 45, 0.05).round()
    sbp = walk(120, 2, 60, 200, 0.2).round()
    dbp = (sbp * 0.55 + rng.normal(0, 2, n)).round()
    temp = walk(37.2, 0.02, 35, 41, 0.002).round(1)
    cols = {Vital.HR: hr, Vital.SPO2: spo2, Vital.RR: rr, Vital.SBP: sbp, Vital.DBP: dbp,
            Vital.TEMP: temp}
    return [
        ValidatedReading(patient_id=PATIENT, ward="BENCH", bed="1", device_id="mon-1",
                         seq=i, ts=start + i * 1000,
                         vitals={v: float(a[i]) for v, a in cols.items()},
                         processed_ts=start + i * 1000)
        for i in range(n)
    ]


def seed(db, readings: list[ValidatedReading]) -> float:
    t0 = time.monotonic()
    raw, minutes = ReadingStore(db), MinuteStore(db)
    for i in range(0, len(readings), BATCH):
        batch = readings[i:i + BATCH]
        raw.write(batch)
        minutes.write(batch)
        if i % 20_000 == 0:
            print(f"  seeded {i:,}/{len(readings):,}", flush=True)
    return time.monotonic() - t0


def server_path(db, fn, start: int, end: int) -> tuple[float, int, int]:
    """ms from request to the figure's JSON; source rows; points drawn."""
    import plotly.io.json as pjson

    from backend.patient_record import alerts_between
    from webapp.patient.figure import timeline_figure
    from webapp.patient.parts import alert_marks

    t0 = time.perf_counter()
    tl = fn(db, PATIENT, start, end)
    fig = timeline_figure(tl.series, start, end, alert_marks(alerts_between(db, PATIENT,
                                                                            start, end)),
                          resolution=tl.resolution)
    pjson.to_json_plotly(fig)
    ms = (time.perf_counter() - t0) * 1000
    return ms, tl.source_rows, sum(len(s) for s in tl.series.values())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_render(settings: Settings, db, repeats: int) -> dict[int, list[float]]:
    """Click each preset in headless Chromium; ms until plotly drew the new range."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from backend.users import create_user

    name, pw = "bench-physician", secrets.token_urlsafe(16)
    create_user(db, name, pw, Role.PHYSICIAN, "Bench", actor="bench", via="bench")
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    log = open(Path("/tmp") / f"bench-pt-web-{os.getpid()}.log", "wb")  # noqa: SIM115
    web = subprocess.Popen([sys.executable, "-m", "ops.cli", "web", "run"], cwd=REPO, env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{settings.web.port}"
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1920,1080"):
        opts.add_argument(arg)
    driver = None
    out: dict[int, list[float]] = {h: [] for h in WINDOWS_H}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(base + "/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError("web app did not start")
            time.sleep(0.3)
        driver = webdriver.Chrome(service=Service(os.environ.get(
            "SE_CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
        driver.get(base + "/login")
        driver.find_element(By.ID, "username").send_keys(name)
        driver.find_element(By.ID, "password").send_keys(pw)
        driver.find_element(By.ID, "login-submit").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "shell-role"))
        driver.get(base + f"/patient/{PATIENT}")
        WebDriverWait(driver, 60).until(
            lambda d: "alert" in d.find_element(By.ID, "patient-range-msg").text)
        order = ["8h", *[f"{h}h" for h in WINDOWS_H]]
        for _ in range(repeats):
            for preset in order:
                before = driver.find_element(By.ID, "patient-range-msg").text
                # a promise that resolves when plotly finished drawing the next figure
                driver.execute_script(
                    "window.__drawn = null; const g = document.querySelector("
                    "'#patient-timeline .js-plotly-plot');"
                    "g.once('plotly_afterplot', () => { window.__drawn = performance.now(); });"
                    "window.__t0 = performance.now();")
                driver.find_element(
                    By.CSS_SELECTOR, f'#patient-range-preset input[value="{preset}"]').click()
                WebDriverWait(driver, 60, poll_frequency=0.02).until(
                    lambda d, b=before: d.find_element(By.ID, "patient-range-msg").text != b
                    and d.execute_script("return window.__drawn") is not None)
                ms = driver.execute_script("return window.__drawn - window.__t0")
                if preset != "8h":
                    out[int(preset[:-1])].append(float(ms))
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
        log.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=72)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()

    base = Settings()
    settings = base.model_copy(update={
        "secret_key": SecretStr(secrets.token_urlsafe(48)),
        "allow_insecure_services": True,  # the local servers (loopback)
        "cassandra": base.cassandra.model_copy(
            update={"keyspace": f"icu_bench_pt_{uuid.uuid4().hex[:10]}"}),
        "web": base.web.model_copy(update={"host": "127.0.0.1", "port": _free_port(),
                                           "allow_insecure_http": True}),
    })
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1) or sys.exit(143))
    try:
        migrate(db, settings)
        db.set_keyspace(settings.cassandra.keyspace)
        from backend.admission import Admission

        end = int(time.time() * 1000) // 1000 * 1000
        census.admit(db, Admission(patient_id=PATIENT, ward="BENCH", bed="1", age=67, sex="M",
                                   admitted_ts=end - int(args.hours * HOUR_MS)))
        print(f"synthesising {args.hours:g} h of 1 Hz readings ...", flush=True)
        readings = synth(args.hours, end)
        print(f"seeding {len(readings):,} readings ...", flush=True)
        seed_s = seed(db, readings)
        print(f"seeded in {seed_s:.0f} s", flush=True)

        results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                     "loadavg_start": os.getloadavg()},
                         "command": " ".join(sys.argv), "readings": len(readings),
                         "seed_s": seed_s, "windows": {}}
        for h in WINDOWS_H:
            if h > args.hours:
                continue
            start = end - h * HOUR_MS
            chosen, naive = [], []
            for _ in range(args.repeats):
                chosen.append(server_path(db, load_timeline, start, end))
                naive.append(server_path(db, load_timeline_naive, start, end))
            results["windows"][h] = {
                "chosen_ms": [c[0] for c in chosen], "baseline_ms": [n[0] for n in naive],
                "chosen_rows": chosen[0][1], "baseline_rows": naive[0][1],
                "points_drawn": chosen[0][2],
            }
            print(f"{h} h: chosen median {statistics.median(c[0] for c in chosen):.0f} ms, "
                  f"baseline median {statistics.median(n[0] for n in naive):.0f} ms",
                  flush=True)
        if not args.no_browser:
            rendered = browser_render(settings, db, args.repeats)
            for h, values in rendered.items():
                if h in results["windows"]:
                    results["windows"][h]["rendered_ms"] = values
        results["machine"]["loadavg_end"] = os.getloadavg()

        print("\n| window | source rows read (chosen / naive) | points drawn | chosen: request"
              " to figure JSON, median (best) | naive baseline, median (best) | baseline /"
              " chosen | in the browser: click to drawn, median (best) |")
        print("|---|---|---|---|---|---|---|")
        for h, w in results["windows"].items():
            c, b = statistics.median(w["chosen_ms"]), statistics.median(w["baseline_ms"])
            r = w.get("rendered_ms") or []
            rtext = f"{statistics.median(r):,.0f} ms ({min(r):,.0f})" if r else "-"
            print(f"| {h} h | {w['chosen_rows']:,} / {w['baseline_rows']:,} | "
                  f"{w['points_drawn']:,} | {c:,.0f} ms ({min(w['chosen_ms']):,.0f}) | "
                  f"{b:,.0f} ms ({min(w['baseline_ms']):,.0f}) | {b / c:.1f}x | {rtext} |")
        print(f"\nload average start {results['machine']['loadavg_start']}, end "
              f"{results['machine']['loadavg_end']}")
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            db.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}", timeout=120)
        db.cluster.shutdown()


if __name__ == "__main__":
    main()
