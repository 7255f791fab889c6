"""Reading -> pixel on real ward screens in headless Chromium.

    flock /tmp/icu-heavy.lock .venv/bin/python bench/bench_ward_latency.py \
        [--screens 10] [--browsers 2] [--beds 32] [--update-ms 500] [--duration 120]

What runs (own Kafka topics and Cassandra keyspace, removed at the end), as in
``bench/bench_ward_screens.py`` whose set-up, publisher and HTTP screens it reuses:

* one web process (``icu web run``, waitress), its ward screens polling every
  ``--update-ms`` (``web.ward_update_ms``);
* a publisher: ``--beds`` x 1 Hz synthetic ``ValidatedReading``s straight to the bench's
  ``vitals.validated`` (not through Spark: the pipeline's own latency is measured by
  ``bench/bench_stream.py``), each heart rate a per-bed code of the second it was sent
  in, the send time kept per (bed, code);
* ``--screens`` screens signed in as nurses: ``--browsers`` of them are headless
  Chromium windows showing ``/ward?ward=BENCH-A&kiosk=1`` at 1920x1080, the others the
  HTTP screens of bench_ward_screens (the same requests a browser sends; a 32-bed
  Chromium window costs ~0.5 core to draw, so ten of them do not fit on two cores beside
  the server).

Measured in each Chromium window: a ``MutationObserver`` on the ward grid notes every
heart rate that changes in a tile; in the next animation frame (the frame that paints
it) the page records ``performance.timeOrigin + performance.now()``. Latency = that time
- the reading's send time (same machine, same clock). Also: the HTTP screens'
freshness, the update round trips, the web process's CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import bench_ward_screens as bws  # noqa: E402

CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SE_CHROMEDRIVER", "/usr/bin/chromedriver")

OBSERVER = """
if (!window.__latency) {
  window.__latency = [];
  const last = {};
  const scan = () => {
    const changed = [];
    document.querySelectorAll('.wt[data-bed]').forEach((tile) => {
      const num = tile.querySelector('.wt-cell--hr .wt-num');
      if (!num) { return; }
      const bed = tile.getAttribute('data-bed'), text = num.textContent;
      if (last[bed] !== text) { last[bed] = text; changed.push([bed, text]); }
    });
    if (changed.length) {
      requestAnimationFrame(() => {
        const t = performance.timeOrigin + performance.now();
        for (const [bed, text] of changed) { window.__latency.push([bed, text, t]); }
      });
    }
  };
  new MutationObserver(scan).observe(document.getElementById('ward-grid'),
    {subtree: true, childList: true, characterData: true});
  scan();
}
return true;
"""
TAKE = "const out = window.__latency || []; window.__latency = []; return out;"


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", f"--window-size={width},{height}",
                "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    return driver


def sign_in(driver, base: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + "/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 60).until(EC.presence_of_element_located((By.ID, "shell-role")))
    driver.get(base + f"/ward?ward={bws.WARD}&kiosk=1")
    WebDriverWait(driver, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".wt[data-bed] .wt-cell--hr")) > 0)
    driver.execute_script(OBSERVER)


def chromium_pids(driver) -> list[int]:
    try:
        root = psutil.Process(driver.service.process.pid)
        return [p.pid for p in root.children(recursive=True)]
    except psutil.Error:
        return []


def pct(values: list[float], q: float) -> float:
    return bws.pct(values, q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screens", type=int, default=10)
    ap.add_argument("--browsers", type=int, default=2)
    ap.add_argument("--beds", type=int, default=32)
    ap.add_argument("--update-ms", type=int, default=500)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.period = args.update_ms / 1000  # the HTTP screens poll like the browsers
    if not 0 <= args.browsers <= args.screens:
        raise SystemExit("--browsers must be between 0 and --screens")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = bws.setup(args)
    env.settings = env.settings.model_copy(update={"web": env.settings.web.model_copy(
        update={"ward_update_ms": args.update_ms})})
    publisher = None
    drivers: list = []
    try:
        bws.start_web(env, args, Path(os.environ.get("TMPDIR", "/tmp")))
        publisher = bws.Publisher(env, args.beds).start()
        users = list(env.users)
        for name, pw in users[: args.browsers]:
            d = browser(1920, 1080)
            drivers.append(d)
            sign_in(d, env.base, name, pw)
        screens = [bws.Screen(i, env.base, name, pw)
                   for i, (name, pw) in enumerate(users[args.browsers:])]
        for s in screens:
            s.login()
        print(f"{len(drivers)} Chromium screens, {len(screens)} HTTP screens signed in",
              flush=True)
        stop = threading.Event()
        samples: list[bws.Sample] = []
        threading.Thread(target=bws.sample_process, args=(env.web.pid, stop, samples),
                         daemon=True).start()
        threads = [threading.Thread(target=bws.run_screen,
                                    args=(s, stop, publisher.sent_at, args.period),
                                    daemon=True) for s in screens]
        for t in threads:
            t.start()
        chrome = [psutil.Process(p) for d in drivers for p in chromium_pids(d)]
        time.sleep(args.warmup)
        for d in drivers:
            d.execute_script(TAKE)  # forget the warm-up
        for p in chrome:
            with contextlib.suppress(psutil.Error):
                p.cpu_percent(None)
        t0 = time.time()
        latencies: list[float] = []
        unmatched = 0
        while time.time() < t0 + args.duration:
            time.sleep(2)
            for d in drivers:
                for bed, text, t_ms in d.execute_script(TAKE):
                    sent = publisher.sent_at.get((bed, int(text))) if text.isdigit() else None
                    if sent is None or not 0 <= t_ms / 1000 - sent < bws.HR_CODES / 2:
                        unmatched += 1
                        continue
                    latencies.append(t_ms / 1000 - sent)
        t1 = time.time()
        chrome_cpu = 0.0
        for p in chrome:
            with contextlib.suppress(psutil.Error):
                chrome_cpu += p.cpu_percent(None)
        stop.set()
        for t in threads:
            t.join(30)
        window = [x for x in samples if t0 <= x.t <= t1]
        rtt = [lat for s in screens for (t, lat) in s.latencies if t0 <= t <= t1]
        fresh = [x for s in screens for x in s.freshness]
        result = {
            "machine": {"nproc": os.cpu_count(), "cpu": platform.processor() or
                        platform.machine(), "python": platform.python_version(),
                        "load_avg_at_end": os.getloadavg()},
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "seconds": round(t1 - t0, 1),
            "pixel_latency_ms": {k: round(pct(latencies, q) * 1000) for k, q in
                                 (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
            "pixel_samples": len(latencies), "unmatched": unmatched,
            "http_freshness_ms": {k: round(pct(fresh, q) * 1000) for k, q in
                                  (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
            "http_round_trip_ms": {k: round(pct(rtt, q) * 1000) for k, q in
                                   (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
            "web_cpu_pct_mean": round(statistics.fmean(x.cpu for x in window), 1)
            if window else None,
            "chromium_cpu_pct": round(chrome_cpu, 1),
            "errors": sum(len(s.errors) for s in screens),
        }
        print(json.dumps(result, indent=1))
        if args.out:
            args.out.write_text(json.dumps(result, indent=1))
    finally:
        for d in drivers:
            with contextlib.suppress(Exception):
                d.quit()
        if publisher is not None:
            publisher.close()
        bws.teardown(env, args.keep)


if __name__ == "__main__":
    main()
