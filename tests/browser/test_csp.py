"""Every page renders under the Content-Security-Policy, with no violation in the
browser console: Dash's renderer and clientside callbacks (hashed inline scripts), the
Plotly charts, and the population page's offline map (shapes from this origin)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from backend.auth_policy import Role, navigation
from tests.browser.conftest import CHROMEDRIVER, CHROMIUM
from tests.browser.support import wait

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHOTS = {(Role.WARD_DISPLAY, "ward"): "ward-display.png", (Role.ADMIN, "admin"): "admin.png"}


@pytest.fixture
def logging_browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _sign_in(driver, web, role: Role) -> None:
    name, pw = web.users[role]
    driver.get(web.url("/login"))
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(pw)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, lambda d: d.find_elements(By.ID, "shell-user"))


@pytest.mark.parametrize("role", [Role.PHYSICIAN, Role.ADMIN, Role.WARD_DISPLAY])
def test_pages_render_with_no_csp_violation(live_web, logging_browser, role: Role) -> None:
    driver = logging_browser
    _sign_in(driver, live_web, role)
    for page in navigation(role):
        driver.get(live_web.url(page.page.path))
        wait(driver, lambda d: d.find_elements(By.ID, "content")
             and not d.find_elements(By.CSS_SELECTOR, "._dash-loading"))
        if page.key == "population":  # the offline map draws from /assets/topojson
            wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".main-svg"), timeout=30)
        shot = SHOTS.get((role, page.key))
        if shot and os.environ.get("ICU_SAVE_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SCREENSHOTS / shot))
    logs = driver.get_log("browser")
    violations = [e["message"] for e in logs
                  if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    assert violations == [], violations
