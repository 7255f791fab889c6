"""Signing in, navigation per role, the 403 page and the admin page, in headless
Chromium against the real app (``icu web run``) and a real Cassandra keyspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from backend import audit
from backend.auth_policy import Role, navigation
from tests.browser.support import click, pick_option, wait, wait_text

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# Where pages keep their first heading once the router has rendered them.
PAGE_READY = {
    # the ward summary comes from the 1 s update callback: proves a server callback ran
    # (CSRF header), even on an empty ward
    "ward": (By.CSS_SELECTOR, "#ward-summary .ward-count"),
    "patient": (By.CSS_SELECTOR, ".page-patient h1"),
    "alerts": (By.CSS_SELECTOR, "#alerts-list"),
    # the map's label comes from the map callback (hospital or public layer)
    "population": (By.CSS_SELECTOR, "#population-map-label strong"),
    "models": (By.CSS_SELECTOR, "#models-body"),
    "admin": (By.CSS_SELECTOR, "#admin-users"),  # the users table comes from a callback
}


def sign_in(driver, web, username: str, password: str) -> None:
    driver.get(web.url("/login"))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()


def nav_keys(driver) -> list[str]:
    return [a.get_attribute("id").removeprefix("nav-")
            for a in driver.find_elements(By.CSS_SELECTOR, "#nav a")]


def screenshot(driver, name: str) -> None:
    """Saved to docs/screenshots with ICU_SAVE_SCREENSHOTS=1 (else only kept on failure)."""
    if os.environ.get("ICU_SAVE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / name))


def test_each_role_sees_exactly_its_navigation(live_web, browser) -> None:
    for role in Role:
        name, password = live_web.users[role]
        sign_in(browser, live_web, name, password)
        # textContent: the badge is upper-cased by CSS, which .text would reflect
        wait(browser, lambda d, label=role.label: d.find_elements(By.ID, "shell-role") and d.
             find_element(By.ID, "shell-role").get_attribute("textContent") == label)
        expected = [p.key for p in navigation(role)]
        assert nav_keys(browser) == expected, role
        assert browser.current_url.endswith(navigation(role)[0].page.path)
        assert browser.find_element(By.ID, "shell-user").text == f"Browser {role.label}"
        # every offered page opens (client-side navigation through the Pages router)
        for key in expected:
            click(browser, (By.ID, f"nav-{key}"))
            wait(browser, EC.presence_of_element_located(PAGE_READY[key]))
            assert "403" not in wait_text(browser, (By.ID, "content"), lambda t: True)
        click(browser, (By.ID, "logout-button"))
        assert "signed out" in wait_text(browser, (By.ID, "login-info"))


def test_bad_password_shows_an_error_that_does_not_say_which(live_web, browser) -> None:
    name, _ = live_web.users[Role.NURSE]
    browser.get(live_web.url("/login"))
    screenshot(browser, "login.png")
    sign_in(browser, live_web, name, "definitely-not-it")
    wait(browser, EC.visibility_of_element_located((By.ID, "login-error")))
    assert "username or password is incorrect" in wait_text(browser, (By.ID, "login-error"))
    assert browser.find_element(By.ID, "username").get_attribute("value") == name
    screenshot(browser, "login-error.png")
    sign_in(browser, live_web, "no-such-user", "definitely-not-it")
    error = wait(browser, EC.visibility_of_element_located((By.ID, "login-error")))
    assert "username or password is incorrect" in error.text


def test_nurse_cannot_open_admin(live_web, browser) -> None:
    name, password = live_web.users[Role.NURSE]
    sign_in(browser, live_web, name, password)
    wait(browser, EC.presence_of_element_located((By.ID, "shell-role")))
    assert "nav-admin" not in [f"nav-{k}" for k in nav_keys(browser)]
    browser.get(live_web.url("/admin"))
    page = wait(browser, EC.visibility_of_element_located((By.ID, "forbidden")))
    assert "403" in page.text
    assert browser.find_elements(By.ID, "admin-users") == []


def _choose(driver, dropdown_id: str, text: str) -> None:
    """Pick an option of a dcc.Dropdown (Dash 4: a popover with a search box) by typing
    its label; waits until the popover has closed, as it swallows the next click."""
    def match(options):  # the option labelled ``text`` itself before one containing it
        found = [o for o in options if text in o.text]
        return next((o for o in found if o.text.strip() == text), found[0] if found else None)

    pick_option(driver, dropdown_id, text, match)
    assert text in wait_text(driver, (By.ID, dropdown_id))


def test_admin_manages_users_with_on_screen_validation(live_web, browser) -> None:
    name, password = live_web.users[Role.ADMIN]
    sign_in(browser, live_web, name, password)
    click(browser, (By.ID, "nav-admin"))
    table = wait_text(browser, (By.ID, "admin-users"))
    for role in Role:
        assert live_web.users[role][0] in table

    browser.find_element(By.ID, "admin-new-username").send_keys("new.nurse")
    browser.find_element(By.ID, "admin-new-display").send_keys("New Nurse")
    _choose(browser, "admin-new-role", "Nurse")
    browser.find_element(By.ID, "admin-new-password").send_keys("short")
    browser.find_element(By.ID, "admin-new-password2").send_keys("short")
    click(browser, (By.ID, "admin-create"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "admin-create-msg"),
                                                   "at least 12 characters"))
    assert "error" in browser.find_element(By.ID, "admin-create-msg").get_attribute("class")

    good = "a-much-longer-passphrase"
    browser.find_element(By.ID, "admin-new-password").send_keys(good)
    browser.find_element(By.ID, "admin-new-password2").send_keys(good)
    click(browser, (By.ID, "admin-create"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "admin-create-msg"),
                                                   "Created new.nurse"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "admin-users"), "new.nurse"))

    browser.find_element(By.ID, "admin-new-password").send_keys(good)
    browser.find_element(By.ID, "admin-new-password2").send_keys(good)
    click(browser, (By.ID, "admin-create"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "admin-create-msg"),
                                                   "already exists"))

    _choose(browser, "admin-user-select", "new.nurse")
    click(browser, (By.ID, "admin-disable"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "admin-toggle-msg"),
                                                   "Disabled new.nurse"))

    click(browser, (By.ID, "audit-search"))
    results = wait_text(browser, (By.ID, "audit-results"), lambda t: audit.USER_DISABLED in t)
    assert audit.USER_CREATED in results and audit.LOGIN_SUCCESS in results
    browser.set_window_size(1440, 1500)  # users and audit results in one picture
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "admin.png")


def test_dark_theme_toggle(live_web, browser) -> None:
    name, password = live_web.users[Role.PHYSICIAN]
    sign_in(browser, live_web, name, password)
    wait(browser, EC.element_to_be_clickable((By.ID, "theme-toggle")))
    before = browser.execute_script("return document.documentElement.dataset.theme || ''")
    click(browser, (By.ID, "theme-toggle"))
    wait(browser, lambda d: d.execute_script(
        "return document.documentElement.dataset.theme || ''") not in ("", before))
    screenshot(browser, "shell-dark.png" if before != "dark" else "shell-light.png")



def test_idle_session_returns_to_the_sign_in_page(live_web, browser) -> None:
    """The server ends an idle session; the open page notices within one clock tick, or
    at once when a callback (the ward's 1 s update) is refused first."""
    from datetime import UTC, datetime, timedelta

    name, password = live_web.users[Role.CHARGE_NURSE]
    sign_in(browser, live_web, name, password)
    wait(browser, EC.presence_of_element_located(PAGE_READY["ward"]))
    idle = timedelta(minutes=live_web.settings.web.idle_timeout_minutes + 1)
    for row in live_web.db.execute("SELECT session_id, username FROM web_sessions"):
        if row["username"] == name:
            live_web.db.execute(
                "UPDATE web_sessions SET last_seen_ts = %s WHERE session_id = %s",
                (datetime.now(UTC) - idle, row["session_id"]))
    # what the server would have set had the user really been idle that long
    browser.execute_script("document.cookie = 'icu_idle_expires=1; path=/'")
    wait(browser, EC.url_contains("expired=1"), timeout=40)
    info = wait(browser, EC.visibility_of_element_located((By.ID, "login-info")))
    assert "session has ended" in info.text
    assert "next=%2Fward" in browser.current_url


def _retype(driver, input_id: str, text: str) -> None:
    """Replace a dcc.Input's text the way a user does (React sees each key)."""
    box = driver.find_element(By.ID, input_id)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)


def _pick(driver, dropdown_id: str, text: str) -> None:
    """Like :func:`_choose`, for options labelled ``text`` and more after a space (a
    user's name and role)."""
    pick_option(driver, dropdown_id, text,
                lambda options: next((o for o in options if o.text.startswith(text + " ")),
                                     None))
    assert text in wait_text(driver, (By.ID, dropdown_id))


def _message(driver, msg_id: str, text: str) -> str:
    """Wait for ``text`` in the message ``msg_id``; its class (``ok`` / ``error``)."""
    wait(driver, EC.text_to_be_present_in_element((By.ID, msg_id), text))
    return driver.find_element(By.ID, msg_id).get_attribute("class")


def test_admin_sets_a_users_email_and_wards_with_on_screen_errors(live_web, browser) -> None:
    from backend.users import get_user

    browser.set_window_size(1920, 1080)
    name, password = live_web.users[Role.ADMIN]
    nurse = live_web.users[Role.NURSE][0]
    sign_in(browser, live_web, name, password)
    wait(browser, EC.presence_of_element_located((By.ID, "nav-admin"))).click()
    wait(browser, EC.visibility_of_element_located((By.ID, "admin-users")))

    # a bad address on the create form: refused on screen, nobody created
    browser.find_element(By.ID, "admin-new-username").send_keys("mail.nurse")
    _choose(browser, "admin-new-role", "Nurse")
    good = "a-much-longer-passphrase"
    browser.find_element(By.ID, "admin-new-password").send_keys(good)
    browser.find_element(By.ID, "admin-new-password2").send_keys(good)
    browser.find_element(By.ID, "admin-new-email").send_keys("mail.nurse@@hospital.org")
    browser.find_element(By.ID, "admin-create").click()
    assert "error" in _message(browser, "admin-create-msg", "E-mail: The part after the @-sign")
    assert get_user(live_web.db, "mail.nurse") is None

    # an existing user: choosing them shows their (empty) address and wards
    _choose(browser, "admin-user-select", nurse)
    wait(browser, lambda d: d.find_element(By.ID, "admin-edit-email").get_attribute("value")
         == "")
    _retype(browser, "admin-edit-email", "nurse b@hospital.org")
    _retype(browser, "admin-edit-wards", "ICU-A, ICU-B")
    browser.find_element(By.ID, "admin-contact-save").click()
    cls = _message(browser, "admin-contact-msg", "invalid characters before the @-sign")
    assert "error" in cls
    screenshot(browser, "admin-user-email-error.png")
    user = get_user(live_web.db, nurse)
    assert user.email is None and user.wards == frozenset()  # nothing half-saved

    _retype(browser, "admin-edit-email", "Nurse.B@Hospital.ORG")
    _retype(browser, "admin-edit-wards", "ICU-A, <ICU-B>")
    browser.find_element(By.ID, "admin-contact-save").click()
    assert "error" in _message(browser, "admin-contact-msg", "Ward '<ICU-B>'")

    _retype(browser, "admin-edit-wards", "ICU-A, ICU-B")
    browser.find_element(By.ID, "admin-contact-save").click()
    assert "ok" in _message(browser, "admin-contact-msg",
                            f"Saved {nurse}: e-mail Nurse.B@hospital.org, ICU-A, ICU-B.")
    # this keyspace has no census: both wards are flagged as possible typos, not refused
    assert "Not a ward of the census (yet): ICU-A, ICU-B" in \
        browser.find_element(By.ID, "admin-contact-msg").text
    wait(browser, EC.text_to_be_present_in_element((By.ID, "admin-users"),
                                                   "Nurse.B@hospital.org"))
    user = get_user(live_web.db, nurse)
    assert user.email == "Nurse.B@hospital.org" and user.wards == {"ICU-A", "ICU-B"}
    row = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#admin-users tbody tr")
           if r.text.startswith(nurse + " ")]
    assert row and "ICU-A, ICU-B" in row[0]

    # another user and back: the fields follow the choice
    _pick(browser, "admin-user-select", live_web.users[Role.PHYSICIAN][0])
    wait(browser, lambda d: d.find_element(By.ID, "admin-edit-wards").get_attribute("value")
         == "")
    _pick(browser, "admin-user-select", nurse)
    wait(browser, lambda d: d.find_element(By.ID, "admin-edit-email").get_attribute("value")
         == "Nurse.B@hospital.org")
    assert browser.find_element(By.ID, "admin-edit-wards").get_attribute("value") == \
        "ICU-A, ICU-B"

    # audited, with the admin as actor
    browser.find_element(By.ID, "audit-search").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "audit-results"),
                                                   audit.USER_CONTACT_SET))
    assert "email=Nurse.B@hospital.org wards=ICU-A,ICU-B" in \
        browser.find_element(By.ID, "audit-results").text
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "admin-user-email.png")
