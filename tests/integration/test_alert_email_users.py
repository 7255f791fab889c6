"""Alert e-mail reaches the people on duty: real Cassandra, a real SMTP server (aiosmtpd
in this process), the alert manager with an injected clock, and ``icu users`` as a
subprocess.

- An unacknowledged HIGH alert on ward ICU-M goes nurse -> charge nurse -> physician; each
  message's envelope holds exactly the enabled users of that role who cover ICU-M and
  have an address, plus the role's list - not a disabled user, not one of another ward,
  not a demo account outside demo mode, not a user disabled between the raise and the
  escalation (cache interval 0 here), and an address shared with the list only once.
- The CLI refuses a bad address with the reason, sets e-mail and wards, and the change is
  audited.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from backend import audit
from backend.alerting.manager import AlertManager
from backend.auth_policy import Role
from backend.messages import AlertEvent, Priority
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.users import create_user, disable_user, get_user
from harness import REPO, audit_trail
from harness.mailbox import Mailbox
from harness.waiting import Clock, wait_until

pytestmark = pytest.mark.integration
WARD = "ICU-M"
LISTS = {"nurse": ["nurses@localhost"], "charge_nurse": ["charge@localhost"],
         "physician": ["doctors@localhost"]}


def spo2_alert(alert_id: str, patient_id: str, ward: str, bed: str,
               detected: datetime) -> AlertEvent:
    """A HIGH-priority raise detected at ``detected``."""
    ms = int(detected.timestamp() * 1000)
    return AlertEvent(alert_id=alert_id, event="raised", patient_id=patient_id, ward=ward,
                      bed=bed, rule="ref_spo2_low", priority=Priority.HIGH,
                      message="SpO2 84 % below 90 %", values={"spo2": 84.0},
                      onset_ts=ms - 10_000, reading_ts=ms, detected_ts=ms)


def configure(settings: Settings, smtp_port: int, cache_seconds: float = 0) -> Settings:
    from pydantic import SecretStr

    return settings.model_copy(update={
        "secret_key": SecretStr("u" * 48),
        "smtp": settings.smtp.model_copy(update={"port": smtp_port, "timeout_seconds": 3,
                                                 "local_domains": ["localhost"]}),
        "alert_manager": settings.alert_manager.model_copy(update={
            "escalation_minutes": {"high": [2, 5], "medium": [], "low": []},
            "recipients": LISTS, "email_on_raise": ["high"],
            "user_cache_seconds": cache_seconds,
        }),
    })


def staff(db, name: str, role: Role, email: str | None, wards: tuple[str, ...] = (),
          *, demo: bool = False) -> None:
    create_user(db, name, "a-long-enough-passphrase", role, actor="test", via="test",
                email=email, wards=wards, local_domains=["localhost"], is_demo=demo)


def test_escalation_emails_exactly_the_users_on_duty(isolated_settings: Settings, db) -> None:
    mailbox = Mailbox().start()
    settings = configure(isolated_settings, mailbox.port)
    staff(db, "n.ward", Role.NURSE, "n.ward@localhost", (WARD, "ICU-N"))
    staff(db, "n.all", Role.NURSE, "n.all@localhost")  # no wards: every ward
    staff(db, "n.other", Role.NURSE, "n.other@localhost", ("ICU-X",))
    staff(db, "n.off", Role.NURSE, "n.off@localhost", (WARD,))
    disable_user(db, "n.off", actor="test", via="test")
    staff(db, "n.noaddr", Role.NURSE, None, (WARD,))
    staff(db, "n.demo", Role.NURSE, "n.demo@localhost", demo=True)  # not in demo mode
    staff(db, "c.ward", Role.CHARGE_NURSE, "c.ward@localhost", ("icu-m",))  # any case
    staff(db, "c.late", Role.CHARGE_NURSE, "c.late@localhost", (WARD,))
    staff(db, "c.other", Role.CHARGE_NURSE, "c.other@localhost", ("ICU-X",))
    staff(db, "p.ward", Role.PHYSICIAN, "p.ward@localhost", (WARD,))
    staff(db, "p.list", Role.PHYSICIAN, "Doctors@localhost", (WARD,))  # the list itself
    staff(db, "a.admin", Role.ADMIN, "admin@localhost")  # not in the chain

    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    manager = AlertManager(db, settings, lambda _e: None, clock=clock)
    e = spo2_alert("u-1", "pt-1", WARD, "3", t0)
    AlertStore(db).raise_alert(e)
    try:
        manager.on_alert_event(e)
        assert manager.tick().sent == 3  # one message per recipient
        # c.late is disabled after the raise, before the escalation: no mail for them
        disable_user(db, "c.late", actor="admin", via="test")
        clock.t = t0 + timedelta(minutes=2)
        assert manager.tick().sent == 2
        clock.t = t0 + timedelta(minutes=5)
        assert manager.tick().sent == 2
        wait_until(lambda: len(mailbox.snapshot()) == 7, timeout=10, what="7 e-mails")
        by_level: dict[str, list[str]] = {}
        for level, rcpts in zip(mailbox.levels(), mailbox.rcpts, strict=True):
            by_level.setdefault(level, []).extend(rcpts)
        assert {k: sorted(v) for k, v in by_level.items()} == {
            "u-1:L0": ["n.all@localhost", "n.ward@localhost", "nurses@localhost"],
            "u-1:L1": ["c.ward@localhost", "charge@localhost"],
            "u-1:L2": ["Doctors@localhost", "p.ward@localhost"],
        }
        # each message names its one recipient, as the envelope does, and carries a
        # link of its own
        links = set()
        for msg, rcpts in zip(mailbox.snapshot(), mailbox.rcpts, strict=True):
            assert [msg["To"]] == rcpts
            links.add(next(line for line in msg.get_content().splitlines()
                           if "/alerts/ack/" in line))
        assert len(links) == 7
    finally:
        mailbox.stop()


def test_nobody_matching_falls_back_to_the_list(isolated_settings: Settings, db) -> None:
    mailbox = Mailbox().start()
    settings = configure(isolated_settings, mailbox.port, cache_seconds=30)
    staff(db, "n.other", Role.NURSE, "n.other@localhost", ("ICU-X",))
    t0 = datetime.now(UTC).replace(microsecond=0)
    manager = AlertManager(db, settings, lambda _e: None, clock=Clock(t0))
    store = AlertStore(db)
    try:
        for n in range(3):
            e = spo2_alert(f"f-{n}", f"pt-{n}", WARD, str(n), t0)
            store.raise_alert(e)
            manager.on_alert_event(e)
        assert manager.tick().sent == 3
        wait_until(lambda: len(mailbox.snapshot()) == 3, timeout=10, what="3 e-mails")
        assert mailbox.rcpts == [LISTS["nurse"]] * 3
        assert manager.directory.loads == 1  # three alerts, one read of the users
    finally:
        mailbox.stop()


def icu(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ops.cli", "users", *args], cwd=REPO,
                          env=env, input=stdin, capture_output=True, text=True, timeout=120)


def test_cli_sets_email_and_wards_refuses_bad_input_and_audits(
        isolated_settings: Settings, db) -> None:
    from backend.admission import Admission
    from backend.storage import census

    settings = isolated_settings
    census.admit(db, Admission(patient_id="pt-a", ward="ICU-A", bed="1", admitted_ts=0))
    bad = icu(settings, "create", "ann.lee", "--role", "nurse", "--email", "ann.lee@@h.org",
              "--password-stdin", stdin="a-long-enough-passphrase\n")
    assert bad.returncode != 0
    assert "E-mail: The part after the @-sign contains invalid characters" in bad.stderr
    assert get_user(db, "ann.lee") is None  # nothing half-created

    ok = icu(settings, "create", "ann.lee", "--role", "nurse", "--email", "Ann.Lee@Hospital.ORG",
             "--ward", "ICU-A", "--ward", "ICU-B", "--password-stdin",
             stdin="a-long-enough-passphrase\n")
    assert ok.returncode == 0, ok.stderr
    # ICU-B has no beds in the census: said, but not refused (a ward may open later)
    assert "warning: Not a ward of the census (yet): ICU-B - check the spelling" in ok.stderr
    user = get_user(db, "ann.lee")
    assert user.email == "Ann.Lee@hospital.org" and user.wards == {"ICU-A", "ICU-B"}

    refused = icu(settings, "set-contact", "ann.lee", "--email", "not an address")
    assert refused.returncode != 0 and "E-mail:" in refused.stderr
    refused = icu(settings, "set-contact", "ann.lee", "--ward", "<ICU>")
    assert refused.returncode != 0 and "Ward '<ICU>'" in refused.stderr
    assert get_user(db, "ann.lee").email == "Ann.Lee@hospital.org"  # unchanged

    changed = icu(settings, "set-contact", "ann.lee", "--ward", "ICU-C")
    assert changed.returncode == 0, changed.stderr
    assert "(yet): ICU-C - check" in changed.stderr
    assert "email=Ann.Lee@hospital.org wards=ICU-C" in changed.stdout
    changed = icu(settings, "set-contact", "ann.lee", "--no-email", "--all-wards")
    assert changed.returncode == 0, changed.stderr
    user = get_user(db, "ann.lee")
    assert user.email is None and user.wards == frozenset()
    missing = icu(settings, "set-contact", "nobody", "--email", "x@h.org")
    assert missing.returncode != 0 and "No user nobody" in missing.stderr

    listing = icu(settings, "list")
    assert "ann.lee" in listing.stdout and "wards: all" in listing.stdout

    events = audit_trail.recent(db, action=audit.USER_CONTACT_SET)
    assert [ev.detail for ev in sorted(events, key=lambda ev: ev.ts)] == [
        "email=Ann.Lee@hospital.org wards=ICU-C", "email=(none) wards=(all)"]
    assert all(ev.via == "cli" and ev.actor.startswith("os:") for ev in events)
    created = audit_trail.recent(db, action=audit.USER_CREATED)
    assert [ev.detail for ev in created] == [
        "role=nurse email=Ann.Lee@hospital.org wards=ICU-A,ICU-B"]


def test_demo_users_have_localhost_addresses_and_get_mail_in_demo_mode(
        isolated_settings: Settings, db) -> None:
    from backend.users import ensure_demo_users

    mailbox = Mailbox().start()
    settings = configure(isolated_settings, mailbox.port).model_copy(
        update={"demo_mode": True})
    settings = settings.model_copy(update={"smtp": settings.smtp.model_copy(
        update={"local_domains": []})})  # demo addresses do not depend on this setting
    logins = ensure_demo_users(db, settings)
    assert {get_user(db, name).email for name, _, _ in logins} == {
        "demo-nurse@localhost", "demo-nurse-b@localhost", "demo-charge@localhost",
        "demo-physician@localhost", "demo-admin@localhost"}
    ensure_demo_users(db, settings)  # a restart of the demo resets, keeps the address
    assert get_user(db, "demo-charge").email == "demo-charge@localhost"

    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    manager = AlertManager(db, settings, lambda _e: None, clock=clock)
    e = spo2_alert("d-1", "sim-1", "ICU-A", "1", t0)
    AlertStore(db).raise_alert(e)
    try:
        manager.on_alert_event(e)
        clock.t = t0 + timedelta(minutes=2)
        manager.tick()
        manager.tick()
        wait_until(lambda: len(mailbox.snapshot()) == 5, timeout=10, what="5 e-mails")
        assert sorted(mailbox.rcpts) == [["charge@localhost"], ["demo-charge@localhost"],
                                         ["demo-nurse-b@localhost"], ["demo-nurse@localhost"],
                                         ["nurses@localhost"]]
    finally:
        mailbox.stop()
