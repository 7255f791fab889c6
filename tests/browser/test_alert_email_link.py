"""Acknowledging from an alert e-mail, in headless Chromium against the real app
(``icu web run``), real Cassandra and a real SMTP server (aiosmtpd in this process):

the alert manager e-mails the nurses; the test parses the message, follows its link
while signed out (-> sign-in page -> back to the link), confirms as a nurse, and checks
the alert is acknowledged "via e-mail link", in its history and in the audit log. The
same link again is refused (single use); a link signed two hours ago is refused
(expired, injected clock); an admin (wrong role) gets the 403 page. Then the alert inbox:
filters, a silence with bad input (message on screen) and a good one, the history, and
the screenshot docs/screenshots/alerts-inbox.png.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from backend import audit
from backend.admission import Admission
from backend.alerting import email_outbox as mail
from backend.alerting.lifecycle import Lifecycle
from backend.alerting.manager import AlertManager
from backend.auth_policy import Role
from backend.messages import AlertEvent, Priority
from backend.storage import census
from backend.storage.alerts import AlertStore
from harness import audit_trail
from harness.mailbox import Mailbox
from tests.browser.support import click, set_viewport, settled, type_into, wait, wait_text

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WARD = "ICU-E"
INBOX_WARD = "ICU-F"


def event(n: int, priority: Priority = Priority.HIGH, rule: str = "ref_spo2_low",
          message: str = "SpO2 84 % below 90 %", ago_s: int = 60, ward: str = WARD
          ) -> AlertEvent:
    ms = int(time.time() * 1000) - ago_s * 1000
    return AlertEvent(alert_id=f"e-{n}", event="raised", patient_id=f"pt-{n}", ward=ward,
                      bed=str(n), rule=rule, priority=priority, message=message,
                      values={"spo2": 84.0}, onset_ts=ms - 10_000, reading_ts=ms,
                      detected_ts=ms)


def sign_in(driver, username: str, password: str) -> None:
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()


def test_acknowledge_from_the_email_link(live_web, browser) -> None:
    db = live_web.db
    mailbox = Mailbox().start()
    settings = live_web.settings.model_copy(update={
        "smtp": live_web.settings.smtp.model_copy(update={"port": mailbox.port}),
        "web": live_web.settings.web.model_copy(update={"public_url": live_web.base}),
    })
    published = []
    manager = AlertManager(db, settings, published.append)
    store = AlertStore(db)
    try:
        e = event(1)
        store.raise_alert(e)
        manager.on_alert_event(e)
        assert manager.tick().sent == 1
        [msg] = mailbox.snapshot()
    finally:
        mailbox.stop()
    body = msg.get_content()
    assert msg["Subject"] == f"[HIGH] SpO2 84 % below 90 % - {WARD} bed 1"  # words, no code
    assert "pt-1" not in body
    link = re.search(r"(http://\S+/alerts/ack/\S+)", body).group(1)

    # signed out: the sign-in page, then back to the link
    browser.get(link)
    wait(browser, lambda d: d.find_elements(By.ID, "username"))
    assert "/login?next=%2Falerts%2Fack%2F" in browser.current_url
    nurse, pw = live_web.users[Role.NURSE]
    sign_in(browser, nurse, pw)
    wait(browser, lambda d: d.find_elements(By.ID, "ack-link-confirm"))
    assert "/alerts/ack/" in browser.current_url
    assert "Bed" in wait_text(browser, (By.ID, "ack-link-alert"))
    type_into(browser, (By.ID, "ack-link-comment"), "coming")
    click(browser, (By.ID, "ack-link-confirm"))
    result = wait_text(browser, (By.ID, "ack-link-result"))
    assert result.startswith(f"Acknowledged by {nurse} at ") and "e-mail" in result

    lc = Lifecycle(db)
    row = lc.get("e-1")
    assert (row.status, row.status_by) == ("acknowledged", nurse)
    last = lc.history("e-1")[-1]
    assert (last.action, last.actor, last.via, last.comment) == (
        "acknowledge", nurse, "email_link", "coming")
    audited = [ev for ev in audit_trail.recent(db, action=audit.ALERT_ACKNOWLEDGED)
               if ev.target_id == "e-1"]
    assert [(ev.actor, ev.via) for ev in audited] == [(nurse, "email_link")]

    # the same link again: refused, saying by whom it was used
    browser.get(link)
    refused = wait_text(browser, (By.ID, "ack-link-refused"))
    assert f"already used by {nurse}" in refused

    # a link signed two hours ago (max age 60 min): expired
    store.raise_alert(event(2))
    old = mail.AckLinks(settings.secret_key.get_secret_value(),
                        settings.alert_manager.ack_link_max_age_minutes * 60,
                        clock=lambda: time.time() - 7200)
    browser.get(mail.ack_url(settings, old.make("e-2", role="nurse", ward=WARD)))
    refused = wait_text(browser, (By.ID, "ack-link-refused"))
    assert "expired" in refused
    assert lc.get("e-2").status == "raised"
    # a forged link
    browser.get(live_web.url("/alerts/ack/forged.token"))
    assert "not a valid" in wait_text(browser, (By.ID, "ack-link-refused"))


def test_alert_inbox_actions_history_and_screenshot(live_web, browser) -> None:
    db = live_web.db
    store = AlertStore(db)
    lc = Lifecycle(db, live_web.settings.alert_manager)
    now_ms = int(time.time() * 1000)
    for n in range(10, 17):
        census.admit(db, Admission(patient_id=f"pt-{n}", ward=INBOX_WARD, bed=str(n),
                                   label=f"P{n}", admitted_ts=now_ms - 7_200_000))
    specs = [
        (10, Priority.HIGH, "ref_spo2_low", "SpO2 84 % below 90 %", 900),
        (11, Priority.MEDIUM, "news2_medium", "NEWS2 6 (medium band)", 700),
        (12, Priority.HIGH, "news2_high", "NEWS2 8 (high band)", 600),
        (13, Priority.LOW, "sensor_off_spo2", "SpO2 sensor off", 500),
        (14, Priority.MEDIUM, "ref_hr_high", "HR 131 /min above 120", 400),
        (15, Priority.HIGH, "ref_spo2_low", "SpO2 86 % below 90 %", 300),
        (16, Priority.MEDIUM, "qsofa_positive", "qSOFA 2", 200),
    ]
    for n, prio, rule, message, ago in specs:
        store.raise_alert(event(n, prio, rule, message, ago, INBOX_WARD))
    t = datetime.now(UTC)
    assert lc.acknowledge("e-11", "n.kim", "ward_screen", now=t - timedelta(minutes=9)).ok
    assert lc.escalate("e-12", 1, "charge_nurse", now=t - timedelta(minutes=8)).ok
    assert lc.escalate("e-12", 2, "physician", now=t - timedelta(minutes=5)).ok
    assert lc.acknowledge("e-12", "dr.lee", "email_link", "on my way",
                          now=t - timedelta(minutes=4)).ok
    assert lc.resolve("e-12", "dr.lee", "alerts_page", "fluids, NEWS2 down",
                      now=t - timedelta(minutes=2)).ok
    assert lc.silence("e-13", "n.kim", "alerts_page", 20, "probe being replaced",
                      now=t - timedelta(minutes=3)).ok

    nurse, pw = live_web.users[Role.NURSE]
    browser.set_window_size(1920, 1080)
    browser.get(live_web.url(f"/alerts?ward={INBOX_WARD}"))
    sign_in(browser, nurse, pw)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".alerts-row")) >= 5)
    # all statuses in the window
    for n in range(len(browser.find_elements(By.CSS_SELECTOR, "#alerts-status input"))):
        css = f"#alerts-status label:nth-of-type({n + 1}) input"
        if not browser.execute_script("return document.querySelector(arguments[0]).checked",
                                      css):
            click(browser, (By.CSS_SELECTOR, css))
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".alerts-row")) == 7)
    # highest priority first, newest first within a priority
    order = wait(browser, lambda d: [r.get_attribute("data-alert") for r in
                                     d.find_elements(By.CSS_SELECTOR, ".alerts-row")])
    assert order == ["e-15", "e-12", "e-10", "e-16", "e-14", "e-11", "e-13"]
    # open e-10, silence it with bad input, then properly
    click(browser, (By.CSS_SELECTOR, '[id*="e-10"]'))
    wait_text(browser, (By.ID, "alerts-detail"), lambda t: "SpO2 84" in t)
    type_into(browser, (By.ID, "alerts-silence-minutes"), "90")
    type_into(browser, (By.ID, "alerts-silence-reason"), "transport to CT")
    click(browser, (By.ID, "alerts-silence"))
    wait(browser, lambda d: d.find_elements(By.ID, "alerts-action-result"))
    wait_text(browser, (By.ID, "alerts-action-msg"), lambda t: "at most 30 minutes" in t)
    assert lc.get("e-10").status == "raised"
    type_into(browser, (By.ID, "alerts-silence-minutes"), "15")
    click(browser, (By.ID, "alerts-silence"))
    wait_text(browser, (By.ID, "alerts-action-msg"), lambda t: "Silenced by" in t)
    assert lc.get("e-10").status == "silenced"
    # the resolved one, with its full history, for the screenshot; the highlight follows
    # the click at once, not at the next 5 s refresh
    click(browser, (By.CSS_SELECTOR, '[id*="e-12"]'))
    wait(browser, lambda d: [r.get_attribute("data-alert") for r in
                             d.find_elements(By.CSS_SELECTOR, ".alerts-row.selected")]
         == ["e-12"], timeout=3)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#alerts-history tbody tr"))
         == 5)
    history = wait_text(browser, (By.ID, "alerts-history"))
    for part in ("Escalated (level 1: notified charge_nurse)", "e-mail link", "on my way",
                 "Resolved", "fluids, NEWS2 down"):
        assert part in history, part
    views = audit_trail.recent(db, actor=nurse, action=audit.PATIENT_VIEWED)
    assert {"pt-10", "pt-12"} <= {v.target_id for v in views}  # opening an alert is audited
    set_viewport(browser, 1920, 1080)
    settled(browser)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "alerts-inbox.png"))
