"""The charge nurse's view in headless Chromium against the real app and Cassandra:
"Who holds what" lists the unassigned alerts; the charge nurse assigns one to a nurse of
its ward (only such nurses are offered), sees the nurse and how long she has held it,
reassigns it; history and audit say who did what. A nurse sees who holds each alert but
not the board or the assign controls (the server refusing her the assign callbacks is
tested for every role and callback in tests/integration/test_web_authz_http.py).

``ICU_SAVE_SCREENSHOTS=1`` writes docs/screenshots/alerts-charge-nurse.png.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from backend import audit
from backend.admission import Admission
from backend.alerting.lifecycle import Lifecycle
from backend.auth_policy import Role
from backend.messages import AlertEvent, Priority
from backend.storage import census
from backend.storage.alerts import AlertStore
from backend.users import create_user
from harness import audit_trail
from tests.browser.support import (
    click,
    open_dropdown,
    pick_option,
    set_viewport,
    settled,
    wait,
    wait_dropdown_closed,
    wait_text,
    wait_texts,
)

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WARD = "ICU-G"


def event(n: int, priority: Priority, message: str, ago_s: int) -> AlertEvent:
    ms = int(time.time() * 1000) - ago_s * 1000
    return AlertEvent(alert_id=f"g-{n}", event="raised", patient_id=f"pg-{n}", ward=WARD,
                      bed=str(n), rule="ref_spo2_low", priority=priority, message=message,
                      values={"spo2": 84.0}, onset_ts=ms - 10_000, reading_ts=ms,
                      detected_ts=ms)


def sign_in(driver, web, username: str, password: str, path: str) -> None:
    driver.get(web.url("/login"))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, lambda d: "/login" not in d.current_url)
    driver.get(web.url(path))


def offered(driver, dropdown_id: str) -> list[str]:
    """Open a dcc.Dropdown (Dash 4: a popover) and read its options; closes it again."""
    open_dropdown(driver, dropdown_id)
    texts = wait_texts(driver, ".dash-dropdown-option", bool)
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_dropdown_closed(driver, dropdown_id)
    return texts


def choose(driver, dropdown_id: str, text: str) -> None:
    """Pick the option containing ``text`` (typed into the search box, then clicked)."""
    pick_option(driver, dropdown_id, text,
                lambda options: next((o for o in options if text in o.text), None))
    wait(driver, lambda d: text in d.find_element(By.ID, dropdown_id).text)


def board(driver) -> list[str]:
    return wait_texts(driver, "#alerts-board-table tbody tr", lambda rows: bool(rows))


def test_the_charge_nurse_assigns_sees_who_holds_what_and_reassigns(live_web, browser) -> None:
    db = live_web.db
    store = AlertStore(db)
    now_ms = int(time.time() * 1000)
    for n in (1, 2):  # the ward filter offers the wards of the census
        census.admit(db, Admission(patient_id=f"pg-{n}", ward=WARD, bed=str(n), label=f"G{n}",
                                   admitted_ts=now_ms - 3_600_000))
    for name, wards in (("nurse-ann", WARD), ("nurse-bea", f"{WARD},ICU-H"),
                        ("nurse-olga", "ICU-OTHER")):
        create_user(db, name, "correct horse battery staple", Role.NURSE, name.title(),
                    actor="test", via="test", wards=wards)
    store.raise_alert(event(1, Priority.HIGH, "SpO2 84 % below 90 %", 300))
    store.raise_alert(event(2, Priority.MEDIUM, "HR 131/min above 120/min", 200))
    charge, pw = live_web.users[Role.CHARGE_NURSE]

    set_viewport(browser, 1920, 1080)
    sign_in(browser, live_web, charge, pw, f"/alerts?ward={WARD}")
    rows = board(browser)
    assert rows[0].startswith("Unassigned") and len(rows) == 2
    # open the high alert: only nurses of its ward are offered
    click(browser, (By.CSS_SELECTOR, '[id*="g-1"]'))
    wait_text(browser, (By.ID, "alerts-detail-holder"), lambda t: "Held by nobody" in t)
    choose(browser, "alerts-assign-nurse", "nurse-ann")
    click(browser, (By.ID, "alerts-assign"))
    msg = wait_text(browser, (By.ID, "alerts-assign-msg"), lambda t: "Assigned" in t)
    assert msg.startswith(f"Assigned to nurse-ann by {charge} at ")
    rows = wait_texts(browser, "#alerts-board-table tbody tr",
                      lambda r: any(x.startswith("nurse-ann") for x in r))
    ann = next(r for r in rows if r.startswith("nurse-ann"))
    assert "SpO2 84 % below 90 %" in ann and re.search(r"\d+ s", ann)  # held for seconds
    assert any(r.startswith("Unassigned") and "HR 131" in r for r in rows)
    holder = wait_text(browser, (By.ID, "alerts-detail-holder"), lambda t: "nurse-ann" in t)
    assert f"assigned by {charge}" in holder
    # the list shows the holder too
    wait(browser, lambda d: "nurse-ann" in d.find_element(
        By.CSS_SELECTOR, '.alerts-row[data-alert="g-1"] .alerts-holder').text)

    # olga does not cover the ward: not offered
    names = offered(browser, "alerts-assign-nurse")
    assert not any("olga" in o for o in names) and any("nurse-bea" in o for o in names)

    # reassign to bea
    choose(browser, "alerts-assign-nurse", "nurse-bea")
    click(browser, (By.ID, "alerts-assign"))
    wait_text(browser, (By.ID, "alerts-assign-msg"), lambda t: "Assigned to nurse-bea" in t)
    wait_texts(browser, "#alerts-board-table tbody tr",
               lambda r: any(x.startswith("nurse-bea") for x in r)
               and not any(x.startswith("nurse-ann") for x in r))
    history = wait_text(browser, (By.ID, "alerts-history"),
                        lambda t: "was nurse-ann" in t)
    assert "to nurse-ann" in history and charge in history

    lc = Lifecycle(db)
    row = lc.get("g-1")
    assert (row.assigned_to, row.assigned_by, row.status) == ("nurse-bea", charge,
                                                                       "raised")
    events = audit_trail.recent(db, actor=charge, action=audit.ALERT_ASSIGNED)
    assert [e.target_id for e in events] == ["g-1", "g-1"]
    if os.environ.get("ICU_SAVE_SCREENSHOTS"):
        settled(browser)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "alerts-charge-nurse.png"))

    # a nurse: sees who holds each alert, but no board and no assign controls
    browser.delete_all_cookies()
    nurse, npw = live_web.users[Role.NURSE]
    sign_in(browser, live_web, nurse, npw, f"/alerts?ward={WARD}")
    wait(browser, lambda d: "nurse-bea" in d.find_element(
        By.CSS_SELECTOR, '.alerts-row[data-alert="g-1"] .alerts-holder').text)
    assert not browser.find_elements(By.ID, "alerts-board")
    click(browser, (By.CSS_SELECTOR, '[id*="g-1"]'))
    wait_text(browser, (By.ID, "alerts-detail-holder"), lambda t: "nurse-bea" in t)
    assert not browser.find_elements(By.ID, "alerts-assign")

