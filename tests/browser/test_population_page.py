"""The population page in headless Chromium with the outside network blocked.

The app runs on a fresh keyspace holding a seeded 30-day history (``devices.history``:
6 wards x 10 beds, an injected admissions surge in Essex County) aggregated by the real
Spark batch job. Chromium resolves no host name but 127.0.0.1 (``--host-resolver-rules``),
so a map that still fetched its topojson from the CDN would not draw. Physicians and
nurses are refused, in the browser and by plain HTTP on the page's callbacks.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from backend.auth_policy import Role
from tests.browser.support import click, scrolled_to, set_viewport, settled, wait, wait_text

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SE_CHROMEDRIVER", "/usr/bin/chromedriver")
BOSTON = {"25025", "25017", "25021", "25009", "25023"}


@pytest.fixture(scope="module")
def history(live_web):
    from devices.history import HistorySpec, end_of_today, generate, write
    from streaming.population_job import run_aggregation, spark_batch_session

    stays, alerts = generate(HistorySpec(days=30, wards=6, beds_per_ward=10, surge_extra=8),
                             end_of_today())
    write(live_web.db, stays, alerts)
    settings = live_web.settings.model_copy(
        update={"spark": live_web.settings.spark.model_copy(update={"batch_master": "local[1]"})})
    spark = spark_batch_session(settings)
    try:
        report = run_aggregation(spark, live_web.db, settings)
    finally:
        spark.stop()
    assert report.region_rows > 0 and report.surges > 0, report
    return report


@pytest.fixture
def offline_browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1920,1080", "--force-device-scale-factor=1",
                # Every host name but 127.0.0.1 fails to resolve: no CDN, no tile server.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver, web, role: Role) -> None:
    name, password = web.users[role]
    driver.get(web.url("/login"))
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, EC.presence_of_element_located((By.ID, "shell-role")), 60)


_OVERFLOW = """
// The page's horizontal overflow, the outermost elements that reach past the viewport
// (their parent does not), and the elements inside the page that scroll sideways
// themselves (a table in a box with overflow-x: auto): named, to find the culprit.
const name = e => (e.id ? '#' + e.id : e.tagName.toLowerCase() + '.'
                   + String(e.className).split(' ')[0]);
const root = document.scrollingElement, width = root.clientWidth;
const all = Array.from(document.body.querySelectorAll('*'));
const past = all.filter(e => e.getBoundingClientRect().right > width + 0.5);
const outer = past.filter(e => !past.includes(e.parentElement)).slice(0, 8).map(
  e => name(e) + ' right=' + Math.round(e.getBoundingClientRect().right));
const scrollers = all.filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)
                                  && e.scrollWidth > e.clientWidth + 1)
  .map(e => name(e) + ' ' + e.scrollWidth + ' in ' + e.clientWidth);
return [root.scrollWidth, width, outer, scrollers];
"""


def horizontal_overflow(driver) -> tuple[int, int, list[str], list[str]]:
    """(page scrollWidth, clientWidth, the outermost elements past the right edge, the
    elements with a horizontal scrollbar of their own)."""
    return tuple(driver.execute_script(_OVERFLOW))


def drawn(driver, css: str) -> list[str]:
    paths = driver.find_elements(By.CSS_SELECTOR, css)
    return [d for d in (p.get_attribute("d") for p in paths) if d and d not in ("M0,0Z", "")]


def test_admin_sees_the_map_drawn_offline(live_web, history, offline_browser) -> None:
    b = offline_browser
    sign_in(b, live_web, Role.ADMIN)
    # The network block works: the CDN plotly.js would use is unreachable.
    outcome = b.execute_async_script(
        "const done = arguments[0];"
        "fetch('https://cdn.plot.ly/un/north-america_110m.json', {mode: 'no-cors'})"
        ".then(() => done('reached'), () => done('blocked'));")
    assert outcome == "blocked"
    b.get(live_web.url("/population"))
    counties = wait(b, lambda d: len(drawn(d, "#population-map .choroplethlocation")) >= 5
                    and drawn(d, "#population-map .choroplethlocation"), 60)
    assert len(counties) >= len(BOSTON)
    # the base map (from the shipped topojson) drew too
    assert wait(b, lambda d: drawn(d, "#population-map .layer.land path")
                or drawn(d, "#population-map .layer path"), 60)
    fetched = b.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(u.endswith("/assets/topojson/north-america_110m.json") for u in fetched), fetched
    assert all(u.startswith(live_web.base) for u in fetched), \
        [u for u in fetched if not u.startswith(live_web.base)]
    # trends with the surge flag, the ward table, the status line
    wait(b, lambda d: drawn(d, "#population-trend .scatterlayer path.js-line"), 60)
    wait_text(b, (By.ID, "population-surge-list"), lambda t: "SURGE" in t, 60)
    ward_cells = "#population-wards td[data-dash-column='ward']"
    rows = wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, ward_cells), 60)
    assert len(rows) >= 6
    assert "computed" in wait_text(b, (By.ID, "population-status"))
    assert "Hospital data" in wait_text(b, (By.ID, "population-map-label"))
    # the alarm burden, read from the alert tables: every ward of the seeded history
    wards = {f"icu-{w:02d}" for w in range(1, 7)}

    def burden_rows(d) -> dict[str, dict]:
        rows = d.execute_script(
            "return Array.from(document.querySelectorAll('#population-burden tbody tr'),"
            " tr => Object.fromEntries(Array.from(tr.querySelectorAll("
            "'td[data-dash-column]'), td => [td.getAttribute('data-dash-column'),"
            " td.textContent])))")
        # the table's header row and an empty table while it loads are not the data
        return {r["ward"]: r for r in rows if r.get("ward")}

    burden = wait(b, lambda d: wards <= set(r := burden_rows(d)) and r, 60)
    assert wards <= set(burden), burden
    for ward in wards:  # 10 beds x 7 days x 6 alarms a day: no small counts
        r = burden[ward]
        assert re.fullmatch(r"[\d.,]+ \([\d,]+ / [\d.,]+\)", r["per_bed_day"]), r
        assert 70 <= int(r["acknowledged"].split(" %")[0]) <= 100, r  # 85 % in the seed
        assert r["median_ack"].endswith((" s", " min")), r
    assert "alarms over" in wait_text(b, (By.ID, "population-burden-note"))
    # everything drawn: at 1920 wide the page does not scroll sideways
    set_viewport(b, 1920, 1080)
    settled(b)
    scroll_width, client_width, culprits, scrollers = horizontal_overflow(b)
    assert scroll_width <= client_width, (scroll_width, client_width, culprits)
    assert not scrollers, scrollers  # nor does any part of it (the ward table)
    if os.environ.get("ICU_SAVE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        settled(b)
        b.save_screenshot(str(SCREENSHOTS / "population.png"))
        wards_top = b.execute_script(
            "return Math.round(document.getElementById('population-wards')"
            ".getBoundingClientRect().top + window.scrollY);")
        scrolled_to(b, wards_top)
        settled(b)
        b.save_screenshot(str(SCREENSHOTS / "population-wards.png"))
        burden_top = b.execute_script(
            "return Math.round(document.getElementById('population-burden-card')"
            ".getBoundingClientRect().top + window.scrollY - 70);")
        scrolled_to(b, burden_top)
        settled(b)
        b.save_screenshot(str(SCREENSHOTS / "population-alarm-burden.png"))
        scrolled_to(b, 0)  # the sticky top bar would cover the radio
    # the public layer is labelled as such and still draws offline
    click(b, (By.CSS_SELECTOR, "#population-layer input[value='cdc']"))
    wait_text(b, (By.ID, "population-map-label"), lambda t: "PUBLIC DATA" in t, 60)
    assert wait(b, lambda d: drawn(d, "#population-map .choroplethlocation"), 60)


@pytest.mark.parametrize("role", [Role.PHYSICIAN, Role.NURSE])
def test_clinicians_cannot_open_the_page(live_web, browser, role: Role) -> None:
    sign_in(browser, live_web, role)
    browser.get(live_web.url("/population"))
    wait(browser, EC.presence_of_element_located((By.ID, "forbidden")), 60)
    assert not browser.find_elements(By.ID, "population-map")


@pytest.mark.parametrize("output", ["population-wards", "population-burden"])
@pytest.mark.parametrize("role", [Role.PHYSICIAN, Role.NURSE])
def test_clinicians_are_refused_the_callbacks_over_http(live_web, role: Role,
                                                        output: str) -> None:
    name, password = live_web.users[role]
    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      s.get(live_web.url("/login"), timeout=10).text).group(1)
    s.post(live_web.url("/login"), data={"csrf_token": token, "username": name,
                                         "password": password}, timeout=30)
    assert s.get(live_web.url("/population"), allow_redirects=False, timeout=10).status_code \
        == 403
    period = "population-period" if output == "population-wards" else \
        "population-burden-period"
    body = {"output": f"{output}.data", "outputs": {"id": output, "property": "data"},
            "inputs": [{"id": period, "property": "value", "value": "30"}],
            "changedPropIds": []}
    if output == "population-burden":
        body["output"] = "..population-burden.data...population-burden-note.children.."
        body["outputs"] = [{"id": output, "property": "data"},
                           {"id": "population-burden-note", "property": "children"}]
    r = s.post(live_web.url("/_dash-update-component"), data=json.dumps(body),
               headers={"Content-Type": "application/json",
                        "X-CSRFToken": s.cookies.get("_csrf_token", "")}, timeout=30)
    assert r.status_code == 403, r.status_code
    assert "response" not in r.text  # no callback output leaked


def test_admin_gets_the_same_callback_over_http(live_web, history) -> None:
    """The positive control of the refusal above: same request, admin, 200 with rows."""
    name, password = live_web.users[Role.ADMIN]
    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      s.get(live_web.url("/login"), timeout=10).text).group(1)
    s.post(live_web.url("/login"), data={"csrf_token": token, "username": name,
                                         "password": password}, timeout=30)
    body = {"output": "population-wards.data",
            "outputs": {"id": "population-wards", "property": "data"},
            "inputs": [{"id": "population-period", "property": "value", "value": "30"}],
            "changedPropIds": []}
    r = s.post(live_web.url("/_dash-update-component"), data=json.dumps(body),
               headers={"Content-Type": "application/json",
                        "X-CSRFToken": s.cookies.get("_csrf_token", "")}, timeout=30)
    assert r.status_code == 200, r.text[:500]
    rows = r.json()["response"]["population-wards"]["data"]
    assert {row["ward"] for row in rows} >= {"icu-01", "icu-06"}
