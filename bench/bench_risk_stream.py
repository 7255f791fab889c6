"""The risk query end to end on real held-out patients: throughput, and live == offline.

    .venv/bin/python bench/bench_risk_stream.py [--patients 300] [--days 7] [--keep-data]
                                                [--screenshot docs/screenshots/models.png]

Takes ``--patients`` test patients of the ACTIVE model version (its ``split.json``: never
seen in training) from the shipped PhysioNet/CinC 2019 set A, admits them to a census in
a fresh keyspace, and publishes each stay's hourly vitals as validated readings (one per
hour, in the middle of the hour) on a fresh ``vitals.validated`` topic, with the stays
placed in the last ``--days`` days; a last reading per patient closes the stay's last
hour. Then it starts the risk query (``icu stream risk``, own process, local Spark) and
measures:

* wall time from the job's start to every hourly score readable in Cassandra, and the
  scores per second; the baseline in the same run is scoring the same hours offline in
  one process (``RiskModel.score_frame``, labs hidden), as evaluation does;
* that every live score equals the offline one (largest absolute difference). The
  offline age is truncated to whole years as the census stores it.

Nothing is left behind unless ``--keep-data``. ``--screenshot`` also starts the web app
on that keyspace and saves the models page (live monitoring included) as a PNG, 1920 px
wide, full height, signed in as a physician created for the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.admission import Admission  # noqa: E402
from backend.messages import ValidatedReading  # noqa: E402
from backend.risk import data as data_mod  # noqa: E402
from backend.risk import registry  # noqa: E402
from backend.risk.features import VITALS, without_labs  # noqa: E402
from backend.risk.live import HOUR_MS  # noqa: E402
from backend.risk.split import Split  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.storage import census  # noqa: E402
from backend.storage.cassandra import connect  # noqa: E402
from backend.storage.migrate import migrate  # noqa: E402
from backend.storage.risk_scores import ModelScore, RiskScoreStore, days_back  # noqa: E402
from bench.support import Sampler, cpu_between  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stays(settings: Settings, version: str, n: int, seed: int) -> pd.DataFrame:
    split = Split.from_dict(registry.read_json_file(
        registry.version_dir(settings, version) / "split.json"))
    frame = data_mod.load(settings).frame
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.array(split.test), size=min(n, len(split.test)), replace=False)
    return frame[frame["patient_id"].isin(set(ids))].reset_index(drop=True)


def plan(frame: pd.DataFrame, days: int, seed: int) -> tuple[list[Admission],
                                                             list[ValidatedReading]]:
    """Admissions and readings; each stay ends at a random time in the last ``days``."""
    rng = np.random.default_rng(seed)
    now_hour = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    admissions, readings = [], []
    for i, (pid, stay) in enumerate(frame.groupby("patient_id", sort=True)):
        n_hours = int(stay["hour"].max())
        latest_end = now_hour - HOUR_MS
        earliest_end = max(now_hour - days * 24 * HOUR_MS + n_hours * HOUR_MS, 0)
        end = int(rng.integers(min(earliest_end, latest_end), latest_end + 1)) // HOUR_MS \
            * HOUR_MS
        admitted = end - n_hours * HOUR_MS
        sex = stay["sex"].iloc[0]
        admissions.append(Admission(
            patient_id=f"bench-{pid}", ward="BENCH-RISK", bed=f"{i:03d}", label=f"{i:03d}",
            age=int(stay["age"].iloc[0]), sex="M" if sex == 1 else "F" if sex == 0 else None,
            admitted_ts=admitted, source="physionet2019 test split"))
        for row in stay.itertuples(index=False):
            vitals = {v: float(getattr(row, v)) for v in VITALS
                      if not np.isnan(getattr(row, v))}
            ts = admitted + (int(row.hour) - 1) * HOUR_MS + HOUR_MS // 2
            readings.append(ValidatedReading(
                patient_id=f"bench-{pid}", ward="BENCH-RISK", bed=f"{i:03d}",
                device_id="bench", seq=int(row.hour), ts=ts, vitals=vitals, processed_ts=ts))
        readings.append(ValidatedReading(  # closes the last hour
            patient_id=f"bench-{pid}", ward="BENCH-RISK", bed=f"{i:03d}", device_id="bench",
            seq=n_hours + 1, ts=admitted + n_hours * HOUR_MS + HOUR_MS // 2, vitals={},
            processed_ts=0))
    return admissions, readings


def offline_scores(model, frame: pd.DataFrame) -> tuple[dict[tuple[str, int], float], float]:
    t0 = time.perf_counter()
    out: dict[tuple[str, int], float] = {}
    for pid, stay in frame.groupby("patient_id", sort=True):
        hist = without_labs(stay.drop(columns=["patient_id", "label"]).reset_index(drop=True))
        hist["age"] = np.floor(hist["age"])  # the census keeps whole years
        for h, r in zip(hist["hour"], model.score_frame(hist), strict=True):
            out[(f"bench-{pid}", int(h))] = float(r)
    return out, time.perf_counter() - t0


def publish(settings: Settings, readings: list[ValidatedReading]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all", linger_ms=20)
    for r in readings:
        p.send(settings.kafka.topic_validated, key=r.patient_id.encode(),
               value=r.model_dump_json().encode())
    p.flush(60)
    p.close()


def screenshot(settings: Settings, db, out: Path) -> None:
    import requests
    from pydantic import SecretStr
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from backend.auth_policy import Role
    from backend.users import create_user

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web_settings = settings.model_copy(update={
        "secret_key": SecretStr(secrets.token_urlsafe(48)),
        "web": settings.web.model_copy(update={"port": port, "allow_insecure_http": True})})
    password = secrets.token_urlsafe(16)
    create_user(db, "dr-bench", password, Role.PHYSICIAN, "Dr Bench", actor="bench",
                via="bench")
    env = {**os.environ, **web_settings.to_env(), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "web", "run"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1920,1080", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = None
    try:
        for _ in range(120):
            try:
                if requests.get(base + "/login", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        driver = webdriver.Chrome(service=Service(os.environ.get(
            "SE_CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
        driver.get(base + "/login")
        driver.find_element(By.ID, "username").send_keys("dr-bench")
        driver.find_element(By.ID, "password").send_keys(password)
        driver.find_element(By.ID, "login-submit").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "shell-role"))
        driver.get(base + "/models")
        WebDriverWait(driver, 120).until(lambda d: d.find_elements(
            By.CSS_SELECTOR, "#models-live-psi .scatterlayer path.js-line"))
        time.sleep(3)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1920, height)
        time.sleep(2)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        log(f"screenshot {out} (1920 x {height})")
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(proc.pid, 15)
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-data", action="store_true")
    ap.add_argument("--screenshot", type=Path, default=None)
    args = ap.parse_args()

    from ops.kafka_server import kafka_admin
    from ops.topics import ensure_topics

    base = Settings()
    version = registry.active_version(base)
    if version is None:
        raise SystemExit("no active model: run `icu model train` first")
    model = registry.load(base, version)
    suffix = uuid.uuid4().hex[:10]
    work = Path(tempfile.mkdtemp(prefix="bench-risk-"))
    topics = {n: f"{getattr(base.kafka, n)}.bench{suffix}"
              for n in type(base.kafka).model_fields if n.startswith("topic_")}
    settings = base.model_copy(update={
        "allow_insecure_services": True,  # the local servers (loopback)
        "kafka": base.kafka.model_copy(update=topics),
        "cassandra": base.cassandra.model_copy(update={"keyspace": f"icu_bench_risk_{suffix}"}),
        "spark": base.spark.model_copy(update={"checkpoint_dir": work / "checkpoint",
                                               "trigger_seconds": 0.5}),
        "risk": base.risk.model_copy(update={"trigger_seconds": 0.5}),
    })
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; python {platform.python_version()}; model {version}")
    ensure_topics(settings)
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)
    job = None
    try:
        frame = stays(settings, version, args.patients, args.seed)
        admissions, readings = plan(frame, args.days, args.seed)
        expected = len(frame)
        log(f"{len(admissions)} test patients, {expected} patient-hours, "
            f"{len(readings)} readings")
        for a in admissions:
            census.admit(db, a)
        offline, offline_s = offline_scores(model, frame)
        log(f"offline scoring (baseline): {expected} hours in {offline_s:.2f} s = "
            f"{expected / offline_s:,.0f} scores/s")
        publish(settings, readings)

        from harness.process import StreamJob

        job = StreamJob(settings, work / "risk.log", command=("stream", "risk"),
                        ready_text="risk stream running")
        t0 = time.monotonic()
        job.start(ready_timeout=300)
        t_ready = time.monotonic() - t0
        sampler = Sampler()
        sampler.watch("job", job.pid)
        cpu_ready = sampler.snapshot()
        store = RiskScoreStore(db)
        # long stays start before the last --days days: count every day of every stay
        first = min(a.admitted_ts for a in admissions)
        days = days_back((int(time.time() * 1000) - first) // (24 * HOUR_MS) + 2)
        rows: list[ModelScore] = []
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            rows = store.for_model(version, days)
            if len(rows) >= expected:
                break
            time.sleep(3.0)
        t_all = time.monotonic() - t0
        by_patient = {}
        for a in admissions:
            for r in store.for_patient(a.patient_id, a.admitted_ts, a.admitted_ts
                                       + 400 * HOUR_MS):
                by_patient[(a.patient_id, r.hour)] = r.risk
        missing = set(offline) - set(by_patient)
        diffs = [abs(by_patient[k] - v) for k, v in offline.items() if k in by_patient]
        print(f"\nlive scores: {len(rows)} of {expected} (missing {len(missing)})")
        print(f"job start to ready: {t_ready:.1f} s; start to every score stored: "
              f"{t_all:.1f} s -> {len(rows) / max(t_all - t_ready, 1e-9):,.1f} scores/s after "
              f"ready ({len(rows) / t_all:,.1f}/s incl. start-up)")
        live_rate = len(rows) / max(t_all - t_ready, 1e-9)
        print(f"offline baseline: {expected / offline_s:,.0f} scores/s; live/offline "
              f"throughput ratio {live_rate / (expected / offline_s):.3f}")
        print(f"largest |live - offline| risk difference: {max(diffs) if diffs else 'n/a'}")
        # The sink stores a batch's scores before its alerts: count once the count holds.
        raised, previous = -1, -2
        while raised != previous and time.monotonic() < deadline:
            previous, raised = raised, sum(1 for a in admissions for r in db.execute(
                "SELECT rule FROM alerts_by_patient WHERE patient_id = %s", (a.patient_id,))
                if r["rule"] == "sepsis_risk")
            if raised != previous:
                time.sleep(3.0)
        print(f"risk alerts raised (2-hour persistence): {raised} in {expected / 24:.0f} "
              f"patient-days = {raised / (expected / 24):.2f} per patient-day")
        used = cpu_between(cpu_ready, sampler.snapshot())
        per_1000 = {g: round(c * used["wall_s"] / len(rows) * 1000, 2)
                    for g, c in used["cores"].items() if len(rows)}
        print(f"job CPU from ready to every score and alert stored, seconds per 1,000 "
              f"scores: {per_1000}")
        job.stop()
        job = None
        if args.screenshot:
            screenshot(settings, db, args.screenshot)
    finally:
        if job is not None:
            job.stop()
        if not args.keep_data:
            db.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}", timeout=120)
            with kafka_admin(settings, 30_000) as admin:
                existing = set(admin.list_topics())
                admin.delete_topics([t for t in topics.values() if t in existing],
                                    timeout_ms=30_000)
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept keyspace {settings.cassandra.keyspace}, topics *.bench{suffix}, {work}")
        db.cluster.shutdown()


if __name__ == "__main__":
    main()
