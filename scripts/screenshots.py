"""Screenshots of every page for every role, from a running system (e.g. ``icu demo``).

    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8050 \
        --login nurse=demo-nurse:PASSWORD --login charge_nurse=demo-charge:PASSWORD \
        --login physician=demo-physician:PASSWORD --login admin=demo-admin:PASSWORD

Signs in with each login in headless Chromium, opens every page the role's navigation
offers (and a patient page for the clinical roles), waits until the page is idle and
painted, and saves ``docs/screenshots/roles/<role>-<page>.png`` at 1920x1080 (the
viewport a ward PC shows) plus ``-full`` captures of pages longer than the screen.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from backend.auth_policy import navigation  # noqa: E402
from tests.browser.support import click, set_viewport, settled, type_into, wait  # noqa: E402

OUT = REPO / "docs" / "screenshots" / "roles"


def driver() -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1920,1080", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(os.environ.get("SE_CHROMEDRIVER",
                                                        "/usr/bin/chromedriver")),
                         options=opts)
    d.set_page_load_timeout(60)
    return d


def sign_in(d: webdriver.Chrome, url: str, user: str, password: str) -> None:
    d.delete_all_cookies()
    d.get(url + "/login")
    type_into(d, (By.ID, "username"), user)
    type_into(d, (By.ID, "password"), password)
    click(d, (By.ID, "login-submit"))
    wait(d, lambda x: "/login" not in x.current_url, 30)


def capture(d: webdriver.Chrome, name: str, settle_s: float, dash: bool = True) -> list[Path]:
    set_viewport(d, 1920, 1080)
    time.sleep(settle_s)  # live pages draw on their clocks (ward 1 s, inbox 5 s)
    if dash:
        settled(d, 60)
    out = [OUT / f"{name}.png"]
    d.save_screenshot(str(out[0]))
    height = d.execute_script("return document.scrollingElement.scrollHeight")
    if height > 1080 + 40:
        set_viewport(d, 1920, min(height, 6000))
        if dash:
            settled(d, 60)
        out.append(OUT / f"{name}-full.png")
        d.save_screenshot(str(out[1]))
        set_viewport(d, 1920, 1080)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--login", action="append", required=True,
                    help="role=username:password (repeat per role)")
    ap.add_argument("--patient", action="append", default=[],
                    help="patient ids whose page the clinical roles capture")
    ap.add_argument("--settle", type=float, default=6.0,
                    help="seconds to let live pages draw before capturing")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    d = driver()
    try:
        d.get(args.url + "/login")  # a server-rendered page, not a Dash one
        for path in capture(d, "login", 0.5, dash=False):
            print(path.relative_to(REPO))
        for item in args.login:
            role, _, cred = item.partition("=")
            user, _, password = cred.partition(":")
            sign_in(d, args.url, user, password)
            pages = [p.page.path for p in navigation(role)]
            if role != "admin":
                pages += [f"/patient/{pid}" for pid in args.patient]
            for path in pages:
                d.get(args.url + path)
                name = f"{role}-{path.strip('/').replace('/', '-')}"
                for shot in capture(d, name, args.settle):
                    print(shot.relative_to(REPO))
    finally:
        d.quit()


if __name__ == "__main__":
    main()
