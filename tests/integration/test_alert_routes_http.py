"""The e-mail acknowledgement route over real HTTP (``icu web run``): signed out -> the
sign-in page with the way back; a role without ``alerts.acknowledge`` -> 403 page (and
audited); a nurse -> the confirmation page, then one acknowledgement; a POST without the
CSRF token is refused. The inbox's callbacks are covered by test_web_authz_http.py, which
enumerates every callback of the app."""

from __future__ import annotations

import re
import time

import pytest
import requests

from backend import audit
from backend.alerting import email_outbox as mail
from backend.alerting.lifecycle import Lifecycle
from backend.auth_policy import Role
from backend.messages import AlertEvent, Priority
from backend.storage.alerts import AlertStore
from harness import audit_trail
from tests.integration.test_web_authz_http import web  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration


def _raise(db, alert_id: str) -> None:
    ms = int(time.time() * 1000)
    AlertStore(db).raise_alert(AlertEvent(
        alert_id=alert_id, event="raised", patient_id="pt-h", ward="ICU-H", bed="1",
        rule="ref_spo2_low", priority=Priority.HIGH, message="SpO2 84 % below 90 %",
        values={"spo2": 84.0}, onset_ts=ms, reading_ts=ms, detected_ts=ms))


def test_email_ack_route_login_role_csrf_and_single_use(web) -> None:  # noqa: F811
    _raise(web.db, "h-1")
    links = mail.links_from_settings(web.settings)
    token = links.make("h-1", user=web.users[Role.CHARGE_NURSE])
    path = "/alerts/ack/" + token
    anon = requests.Session()
    r = anon.get(web.url(path), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=%2Falerts%2Fack")
    assert anon.post(web.url(path), timeout=10).status_code == 401

    for role in (Role.ADMIN,):
        s = web.as_role(role)
        r = s.get(web.url(path), allow_redirects=False, timeout=10)
        assert r.status_code == 403 and 'id="forbidden"' in r.text
    denied = audit_trail.recent(web.db, actor=web.users[Role.ADMIN],
                                action=audit.ACCESS_DENIED)
    assert any(e.target_id == "alerts.acknowledge" for e in denied)
    # the audit trail keeps the route's pattern, never the token (it could be replayed)
    assert all(token not in e.detail for e in denied)
    assert any("/alerts/ack/<token>" in e.detail for e in denied)

    # bound to the charge nurse: a nurse who got the link forwarded is refused
    nurse = web.users[Role.NURSE]
    r = web.as_role(Role.NURSE).get(web.url(path), timeout=10)
    assert r.status_code == 403 and 'id="ack-link-refused"' in r.text
    refused = audit_trail.recent(web.db, actor=nurse, action=audit.ACCESS_DENIED)
    assert any(e.target_id == "h-1" and "bound to user" in e.detail for e in refused)
    assert all(token not in e.detail for e in refused)

    s = web.as_role(Role.CHARGE_NURSE)
    page = s.get(web.url(path), timeout=10)
    assert page.status_code == 200 and 'id="ack-link-confirm"' in page.text
    assert s.post(web.url(path), data={}, timeout=10).status_code == 400  # no CSRF token
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = s.post(web.url(path), data={"csrf_token": token}, timeout=10)
    assert r.status_code == 200 and 'id="ack-link-result"' in r.text
    assert Lifecycle(web.db).get("h-1").status_by == web.users[Role.CHARGE_NURSE]
    r = s.post(web.url(path), data={"csrf_token": token}, timeout=10)
    assert r.status_code == 409 and "already used" in r.text
