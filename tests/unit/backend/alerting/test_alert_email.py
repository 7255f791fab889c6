"""Alert e-mail without servers: the signed link (tampering, expiry on an injected
clock), the message content (minimal patient information), the retry backoff and the
inbox filter's input checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend.alerting import email_outbox as mail
from backend.alerting.inbox import InboxFilter, days_between
from backend.settings import AlertManagerSettings
from backend.storage.alerts import AlertRow, WardDayAlert

T = datetime(2026, 3, 1, 14, 0, 5, tzinfo=UTC)
# as the driver gives the alerts row (naive UTC times)
RAW = {"alert_id": "a-1", "patient_id": "p-77", "ward": "ICU-A", "bed": "7",
       "rule": "ref_spo2_low", "priority": "high", "message": "SpO2 84 % below 90 %",
       "vals": {"spo2": 84.0, "hr": 121.0}, "detected_ts": T.replace(tzinfo=None)}
ALERT = AlertRow.from_row(RAW)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_link_round_trips_and_each_link_is_distinct() -> None:
    links = mail.AckLinks("k" * 40, 3600)
    a, b = links.make("a-1", user="ann"), links.make("a-1", user="ann")
    assert a != b
    ca, cb = links.check(a), links.check(b)
    assert ca.alert_id == cb.alert_id == "a-1" and ca.link_id != cb.link_id


def test_a_link_expires_on_the_injected_clock() -> None:
    clock = Clock(1_700_000_000)
    links = mail.AckLinks("k" * 40, 600, clock)
    token = links.make("a-1", user="ann")
    clock.t += 600
    assert links.check(token).alert_id == "a-1"
    clock.t += 1
    with pytest.raises(mail.LinkExpired):
        links.check(token)


def test_a_link_is_bound_to_its_recipient() -> None:
    links = mail.AckLinks("k" * 40, 600)
    mine = links.check(links.make("a-1", user="ann"))
    assert mine.allows("ann", "nurse", lambda w: True)
    assert not mine.allows("bob", "nurse", lambda w: True)  # forwarded to a colleague
    listed = links.check(links.make("a-1", role="nurse", ward="ICU-A"))
    assert listed.allows("bob", "nurse", lambda w: w == "ICU-A")
    assert not listed.allows("bob", "nurse", lambda w: w == "ICU-B")  # another ward
    assert not listed.allows("carl", "physician", lambda w: True)  # another role
    with pytest.raises(ValueError):
        links.make("a-1")  # bound to nobody: not made


def test_links_are_signed_with_hmac_sha256() -> None:
    """The signature is HMAC-SHA-256 of the payload, checked independently here."""
    import base64
    import hashlib
    import hmac

    secret = "k" * 40
    token = mail.AckLinks(secret, 600).make("a-1", user="ann")
    value, sig = token.rsplit(".", 1)
    key = hmac.new(secret.encode(), b"icu-alert-ack-link", hashlib.sha256).digest()
    expected = hmac.new(key, value.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)) == expected
    assert len(expected) == 32


def test_tampered_or_foreign_links_are_invalid() -> None:
    links = mail.AckLinks("k" * 40, 600)
    token = links.make("a-1", user="ann")
    with pytest.raises(mail.LinkInvalid):
        links.check(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(mail.LinkInvalid):
        mail.AckLinks("x" * 40, 600).check(token)
    with pytest.raises(mail.LinkInvalid):
        links.check("not-a-token")
    with pytest.raises(ValueError):
        mail.AckLinks("", 600)


def test_the_message_has_minimal_patient_information() -> None:
    policy = AlertManagerSettings(ack_link_max_age_minutes=60)
    subject, body = mail.compose(ALERT, 0, "nurse", "http://x/alerts/ack/T", policy, "Jane Roe",
                                 "Europe/Berlin")
    # what happened in words and where, no rule code
    assert subject == "[HIGH] SpO2 84 % below 90 % - ICU-A bed 7"
    for part in ("Ward:   ICU-A", "Bed:    7", "Alert:  SpO2 84 % below 90 %\n",
                 "hr 121, spo2 84", "Raised: 2026-03-01 15:00:05 CET",  # local, with zone
                 "http://x/alerts/ack/T", "expires in 60 minutes"):
        assert part in body, part
    assert "Jane" not in body and "p-77" not in body  # no name, no identifier
    named = AlertManagerSettings(email_include_name=True)
    _, body = mail.compose(ALERT, 2, "physician", "L", named, "Jane Roe")
    assert "Patient: Jane Roe" in body and "escalated to the physician" in body
    subject, _ = mail.compose(ALERT, 2, "physician", "L", named)
    assert subject == "[HIGH] Escalated to physician: SpO2 84 % below 90 % - ICU-A bed 7"


def test_subjects_say_what_happened_in_words_and_keep_the_bed_visible() -> None:
    for message in ("NEWS2 7, high clinical risk: Emergency response " * 5, "", None):
        alert = AlertRow.from_row({**RAW, "message": message})
        subject = mail.subject_line(alert, 1, "charge_nurse")
        assert subject.endswith(" - ICU-A bed 7") and "\n" not in subject
        assert len(subject) <= mail.SUBJECT_MAX + len("[HIGH] Escalated to charge nurse: ") \
            + len(" - ICU-A bed 7")
        assert "ref_spo2_low" not in subject or not message  # the code only when no text
    assert mail.subject_line(AlertRow.from_row({**RAW, "message": "HR 151/min\nabove  150/min"}),
                             0, "nurse") == "[HIGH] HR 151/min above 150/min - ICU-A bed 7"


def test_the_date_header_and_raised_time_cross_a_change_of_clocks() -> None:
    """Raised 30 min either side of the autumn change in Berlin: the same wall time twice,
    told apart by the zone."""
    policy = AlertManagerSettings()
    before = AlertRow.from_row({**RAW, "detected_ts": datetime(2026, 10, 25, 0, 30)})  # naive UTC
    after = AlertRow.from_row({**RAW, "detected_ts": datetime(2026, 10, 25, 1, 30)})
    assert "Raised: 2026-10-25 02:30:00 CEST" in mail.compose(before, 0, "nurse", "L", policy,
                                                             None, "Europe/Berlin")[1]
    assert "Raised: 2026-10-25 02:30:00 CET" in mail.compose(after, 0, "nurse", "L", policy,
                                                            None, "Europe/Berlin")[1]


def test_backoff_doubles_and_is_capped() -> None:
    p = AlertManagerSettings(email_retry_base_seconds=5, email_retry_max_seconds=60)
    assert [mail.backoff_seconds(n, p) for n in range(7)] == [0, 5, 10, 20, 40, 60, 60]


def test_inbox_filter_input() -> None:
    f = InboxFilter.parse(None, ["raised"], ["high"], "24", ["ICU-A", "ICU-B"])
    assert f.wards == ("ICU-A", "ICU-B") and f.hours == 24
    def row(status: str, priority: str) -> WardDayAlert:
        return WardDayAlert.from_row({"ward": "ICU-A", "day": T.date(), "detected_ts": T,
                                      "alert_id": "a-1", "status": status,
                                      "priority": priority})

    assert f.keeps(row("raised", "high"))
    assert not f.keeps(row("resolved", "high"))
    assert not f.keeps(row("raised", "low"))
    assert InboxFilter.parse("ICU-B", [], [], 8, ["ICU-A", "ICU-B"]).wards == ("ICU-B",)
    with pytest.raises(ValueError, match="Unknown ward"):
        InboxFilter.parse(["ICU-Z"], [], [], "24", ["ICU-A"])
    with pytest.raises(ValueError, match="time window"):
        InboxFilter.parse([], [], [], "5", ["ICU-A"])


def test_days_between_crosses_midnight() -> None:
    start = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    end = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert [d.day for d in days_between(start, end)] == [3, 2, 1]
