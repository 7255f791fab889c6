"""Sign-in and session hardening against the real web app (``icu web run``) and a real
Cassandra: atomic throttling under concurrency, per-address throttling, known devices
that a lock cannot keep out, unlock on the Admin page, per-role idle and absolute
session limits, the ward display role, security headers, request body limits,
ProxyFix and the refusal to start insecurely."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pydantic import SecretStr

from backend import audit
from backend.auth_policy import Role
from backend.messages import AlertEvent, Priority
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.users import LoginOutcome, authenticate
from harness import audit_trail
from tests.integration import test_web_authz_http as authz
from tests.integration.test_web_authz_http import (
    MAX_FAILED,
    REPO,
    callback_body,
    callbacks,
    dependencies,
    post_callback,
)

web = authz.web  # the module's server fixture, shared

pytestmark = pytest.mark.integration


def _sid(web, name: str) -> str:
    return next(r["session_id"] for r in web.db.execute(
        "SELECT session_id, username FROM web_sessions") if r["username"] == name)


def test_concurrent_guesses_cannot_exceed_the_limit(web) -> None:
    """40 wrong passwords at once on one account: each attempt reserves its slot with a
    lightweight transaction before the password is checked, so exactly the limit of
    them is checked; the others are refused as locked without a check."""
    name = web.add_user("t-race", Role.NURSE)
    start = threading.Barrier(40)

    def guess(i: int) -> LoginOutcome:
        start.wait()
        return authenticate(web.db, web.settings, name, f"wrong password {i}",
                            ip=f"10.9.0.{i}").outcome  # 40 addresses: only the account counts

    with ThreadPoolExecutor(40) as pool:
        outcomes = list(pool.map(guess, range(40)))
    checked = [o for o in outcomes if o is not LoginOutcome.LOCKED or False]
    failures = audit_trail.recent(web.db, actor=name, action=audit.LOGIN_FAILURE)
    assert len(failures) == MAX_FAILED, outcomes  # exactly the limit got a password check
    assert outcomes.count(LoginOutcome.INVALID) == MAX_FAILED - 1
    assert len(checked) <= MAX_FAILED
    # the right password is refused now too (from a browser that is not a known device)
    assert authenticate(web.db, web.settings, name, web.passwords[name],
                        ip="10.9.1.1").outcome is LoginOutcome.LOCKED


def test_many_accounts_from_one_address_are_slowed(web) -> None:
    limit = web.settings.web.max_failed_logins_per_address
    for i in range(limit - 1):  # a different account each time: none reaches its limit
        r = authenticate(web.db, web.settings, f"nobody-{i}", "guess", ip="10.8.0.1")
        assert r.outcome is LoginOutcome.INVALID, (i, r)
    r = authenticate(web.db, web.settings, "nobody-last", "guess", ip="10.8.0.1")
    assert r.outcome is LoginOutcome.LOCKED  # the address's limit
    name = web.add_user("t-spray", Role.NURSE)
    assert authenticate(web.db, web.settings, name, web.passwords[name],
                        ip="10.8.0.1").outcome is LoginOutcome.LOCKED
    assert authenticate(web.db, web.settings, name, web.passwords[name],
                        ip="10.8.0.2").ok  # another address is not affected


def test_a_lock_cannot_keep_the_owner_out_of_a_known_browser_and_admin_unlocks(web) -> None:
    """Somebody types wrong passwords for a named nurse until the account locks. The
    nurse's own browser (it signed in before: signed device cookie) still signs in;
    an unknown browser is locked until an administrator unlocks on the Admin page."""
    name = web.add_user("t-owner", Role.NURSE)
    own = web.login(name)  # the nurse's usual browser: gets the device cookie
    assert own.last_login.status_code == 302 and own.cookies.get("icu_device")
    own.post(web.url("/logout"), data={"csrf_token": own.cookies.get("_csrf_token")},
             timeout=10)
    for _ in range(MAX_FAILED + 2):
        web.login(name, "somebody else guessing")
    assert web.login(name).last_login.status_code == 429  # a fresh browser: locked
    r = own.get(web.url("/login"), timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = own.post(web.url("/login"), data={"csrf_token": token, "username": name,
                                          "password": web.passwords[name]},
                 allow_redirects=False, timeout=30)
    assert r.status_code == 302  # the known device is counted on its own
    # a forged device cookie does not help
    forged = requests.Session()
    forged.cookies.set("icu_device", own.cookies.get("icu_device")[:-4] + "AAAA")
    r = forged.get(web.url("/login"), timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
    r = forged.post(web.url("/login"), data={"csrf_token": token, "username": name,
                                             "password": web.passwords[name]},
                    allow_redirects=False, timeout=30)
    assert r.status_code == 429

    # the administrator unlocks on the Admin page (its callback, as the page sends it)
    admin = web.as_role(Role.ADMIN)
    deps = dependencies(web, admin)
    output = next(k for k in callbacks(web) if k.startswith("..admin-users-table"))
    body = callback_body(deps[output])
    for item in body["inputs"] + body["state"]:
        if item["id"] == "admin-unlock":
            item["value"] = 1
        if item["id"] == "admin-user-select":
            item["value"] = name
    body["changedPropIds"] = ["admin-unlock.n_clicks"]
    r = post_callback(web, admin, body)
    assert r.status_code == 200 and f"Unlocked {name}" in r.text, r.text[:500]
    assert web.login(name).last_login.status_code == 302
    assert audit_trail.recent(web.db, action=audit.USER_UNLOCKED,
                              actor=web.users[Role.ADMIN])


def test_idle_timeout_per_role_and_absolute_lifetime(web) -> None:
    nurse, admin = web.add_user("t-idle-n", Role.NURSE), web.add_user("t-idle-a", Role.ADMIN)
    sn, sa = web.login(nurse), web.login(admin)
    twelve = datetime.now(UTC) - timedelta(minutes=12)  # nurse 15 min, admin 10 min
    for name in (nurse, admin):
        web.db.execute("UPDATE web_sessions SET last_seen_ts = %s WHERE session_id = %s",
                       (twelve, _sid(web, name)))
    assert sn.get(web.url("/_dash-layout"), timeout=10).status_code == 200
    assert sa.get(web.url("/_dash-layout"), timeout=10).status_code == 401
    # absolute: active a moment ago, but signed in 13 hours ago (limit 12 h)
    web.db.execute("UPDATE web_sessions SET created_ts = %s, last_seen_ts = %s"
                   " WHERE session_id = %s", (datetime.now(UTC) - timedelta(hours=13),
                                               datetime.now(UTC), _sid(web, nurse)))
    r = sn.get(web.url("/ward"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    ended = audit_trail.recent(web.db, actor=nurse, action=audit.SESSION_EXPIRED)
    assert ended and ended[0].detail == "session lifetime"


def _alert(db, alert_id: str, ward: str) -> None:
    ms = int(datetime.now(UTC).timestamp() * 1000)
    AlertStore(db).raise_alert(AlertEvent(
        alert_id=alert_id, event="raised", patient_id=f"pt-{alert_id}", ward=ward, bed="1",
        rule="ref_spo2_low", priority=Priority.HIGH, message="SpO2 84 % below 90 %",
        values={"spo2": 84.0}, onset_ts=ms, reading_ts=ms, detected_ts=ms))


def test_ward_display_shows_its_ward_only_and_acknowledges_there(web) -> None:
    name = web.add_user("t-display", Role.WARD_DISPLAY, wards=("ICU-A",))
    s = web.login(name)
    assert s.last_login.status_code == 302 and s.last_login.headers["Location"] == "/ward"
    deps = dependencies(web, s)
    cbs = callbacks(web)
    tick = next(k for k, v in cbs.items() if v == "ward")
    body = callback_body(deps[tick])
    for item in body["inputs"]:
        if item["id"] == "ward-picker":
            item["value"] = "ICU-B"  # asks for another ward
    sid = _sid(web, name)
    old = datetime.now(UTC) - timedelta(minutes=5)
    web.db.execute("UPDATE web_sessions SET last_seen_ts = %s WHERE session_id = %s",
                   (old, sid))
    r = post_callback(web, s, {**body, "changedPropIds": ["ward-interval.n_intervals"]})
    assert r.status_code == 200
    assert r.json()["response"]["ward-name"]["children"] == "ICU-A"  # its own ward only
    seen = web.db.execute("SELECT last_seen_ts FROM web_sessions WHERE session_id = %s",
                          (sid,)).one()["last_seen_ts"].replace(tzinfo=UTC)
    assert seen > old + timedelta(minutes=4)  # the screen showing the ward keeps it alive

    _alert(web.db, "wd-a", "ICU-A")
    _alert(web.db, "wd-b", "ICU-B")
    ack = next(k for k, v in cbs.items() if v == "ward.acknowledge")

    def press(alert_id: str) -> str:
        ident = {"alert": alert_id, "type": "ward-ack"}
        b = {"output": ack, "outputs": {"id": "ward-toast", "property": "children"},
             "inputs": [[{"id": ident, "property": "n_clicks", "value": 1}]], "state": [],
             "changedPropIds": [json.dumps(ident, separators=(",", ":")) + ".n_clicks"]}
        r = post_callback(web, s, b)
        assert r.status_code == 200, r.text[:300]
        return r.text

    assert "not on this screen" in press("wd-b")
    assert AlertStore(web.db).get("wd-b").status == "raised"
    assert "acknowledged" in press("wd-a").lower()
    assert AlertStore(web.db).get("wd-a").status == "acknowledged"
    # nothing else: no patient page, no inbox, no export callbacks
    for path in ("/patient/pt-wd-a", "/alerts", "/admin"):
        assert s.get(web.url(path), allow_redirects=False, timeout=10).status_code == 403


def test_security_headers_and_request_limits(web) -> None:
    s = web.as_role(Role.NURSE)
    for path in ("/login", "/ward", "/assets/base.css"):
        r = s.get(web.url(path), timeout=10)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self' 'sha256-" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
    deps = dependencies(web, s)
    output = next(k for k, v in callbacks(web).items() if v == "ward")
    body = json.dumps(callback_body(deps[output]))
    headers = {"Content-Type": "application/json", "X-CSRFToken": s.cookies.get("_csrf_token")}
    dup = body[:-1] + ', "output": "..admin-users-table.children"}'  # a second "output"
    r = s.post(web.url("/_dash-update-component"), data=dup, headers=headers, timeout=10)
    assert r.status_code == 400 and "duplicate key" in r.text
    big = body[:-1] + ', "pad": "' + "x" * (web.settings.web.max_request_bytes + 1) + '"}'
    r = s.post(web.url("/_dash-update-component"), data=big, headers=headers, timeout=30)
    assert r.status_code == 413
    assert s.get(web.url("/_dash-layout"), timeout=10).status_code == 200  # still serving
    # Dash's renderer asks for its layout and dependencies with a JSON content type and
    # no body: that is not a malformed body
    for path in ("/_dash-layout", "/_dash-dependencies"):
        r = s.get(web.url(path), headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 200, (path, r.text[:200])


def test_proxy_fix_records_the_client_address_and_https_gets_hsts(web) -> None:
    from webapp.app import create_app

    settings = web.settings.model_copy(update={"web": web.settings.web.model_copy(update={
        "trusted_proxies": 1, "public_url": "https://icu.hospital.example",
        "secure_cookies": True, "allow_insecure_http": False})})
    app = create_app(settings, db=web.db, start_live=False)
    client = app.server.test_client()
    name = web.add_user("t-proxied", Role.NURSE)
    page = client.get("/login", base_url="https://icu.hospital.example",
                      headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
    assert "max-age=" in page.headers["Strict-Transport-Security"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", base_url="https://icu.hospital.example",
                    data={"csrf_token": token, "username": name,
                          "password": web.passwords[name]},
                    headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7",
                             "X-Forwarded-Proto": "https",
                             "Referer": "https://icu.hospital.example/login"})
    assert r.status_code == 302, r.text[:300]
    [ok] = audit_trail.recent(web.db, actor=name, action=audit.LOGIN_SUCCESS)
    # one trusted proxy: the address it saw, not what the client claimed before it
    assert ok.detail == "ip=203.0.113.7"


def test_production_settings_refuse_to_start_insecurely(services: Settings) -> None:
    settings = services.model_copy(update={
        "secret_key": SecretStr("k" * 48),
        "web": services.web.model_copy(update={"allow_insecure_http": False})})
    env = {**settings.to_env(), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "ops.cli", "web", "run"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "cookies must be Secure" in r.stderr and "must be https" in r.stderr
    env["ICU_WEB__ALLOW_INSECURE_HTTP"] = "true"
    env["ICU_WEB__HOST"] = "0.0.0.0"  # the development escape hatch is loopback only
    r = subprocess.run([sys.executable, "-m", "ops.cli", "web", "run"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "only for loopback" in r.stderr


def test_notes_for_unknown_patients_and_malformed_payloads(web) -> None:
    from backend.admission import Admission
    from backend.notes import NoteError, add_note
    from backend.storage import census

    census.admit(web.db, Admission(patient_id="pt-note", ward="ICU-A", bed="9",
                                   admitted_ts=0))
    with pytest.raises(NoteError, match="No patient"):
        add_note(web.db, "pt-nobody", "dr.x", "physician", "text")
    with pytest.raises(NoteError, match="invisible formatting"):
        add_note(web.db, "pt-note\u200b", "dr.x", "physician", "text")
    s = web.as_role(Role.PHYSICIAN)
    deps = dependencies(web, s)
    output = next(k for k, v in callbacks(web).items() if v == "patient.write")
    body = callback_body(deps[output])
    values = {"patient-note-save": 1, "patient-id": "pt-note", "patient-note": "ok",
              "patient-notes-version": 0}
    for item in body["inputs"] + body["state"]:
        item["value"] = values.get(item["id"])
    body["changedPropIds"] = ["patient-note-save.n_clicks"]
    r = post_callback(web, s, body)
    assert r.status_code == 200 and "Note saved" in r.text
    for bad in ({"x": 1}, ["list"], 12):  # a hand-made request: never a 500
        for item in body["state"]:
            if item["id"] == "patient-note":
                item["value"] = bad
        assert post_callback(web, s, body).status_code == 400
    for item in body["state"]:
        item["value"] = {"patient-id": "pt-nobody", "patient-note": "x"}.get(
            item["id"], item["value"])
    r = post_callback(web, s, body)
    assert r.status_code == 200 and "No patient pt-nobody" in r.text
