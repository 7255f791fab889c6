"""The alert tables' typed rows: ``AlertRow`` / ``WardDayAlert`` / ``PatientAlert`` read
from generated driver rows (naive UTC times, missing and unknown values), and the index
copies ``AlertStore.write_indexes`` makes read back as the alerts row they copy (on an
in-memory session, ``tests/cassandra_fakes.py``; against Cassandra in
tests/integration/test_acknowledge.py and test_alert_lifecycle_db.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.alerting.status import ACTIVE, AlertStatus
from backend.storage.alerts import (
    ActiveAlert,
    AlertRow,
    AlertStore,
    PatientAlert,
    WardDayAlert,
    parse_status,
)
from tests.cassandra_fakes import TableSession

TIMES = ("onset_ts", "reading_ts", "detected_ts", "cleared_ts", "status_ts", "silenced_until",
         "resolved_ts", "acknowledged_ts", "assigned_ts")
TEXTS = ("patient_id", "ward", "bed", "rule", "priority", "message")
PEOPLE = ("status_by", "silence_reason", "acknowledged_by", "assigned_to", "assigned_by")
# columns the lifecycle migrations added: a reader may meet rows without them
LATER = ("escalation_level", "silenced_until", "silence_reason", "resolved_ts",
         "acknowledged_by", "acknowledged_ts", "assigned_to", "assigned_by", "assigned_ts")

IST = timezone(timedelta(hours=5, minutes=30))
text = st.text(max_size=12)
# Cassandra keeps milliseconds; the driver hands back naive UTC
naive = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
instant = st.one_of(naive, naive.map(lambda d: d.replace(tzinfo=UTC)),
                    naive.map(lambda d: d.replace(tzinfo=UTC).astimezone(IST)))
statuses = st.one_of(st.none(), st.sampled_from([s.value for s in AlertStatus]), text)
values = st.dictionaries(st.text(min_size=1, max_size=8),
                         st.floats(allow_nan=False, width=32), max_size=5)


@st.composite
def driver_rows(draw) -> dict:
    """``SELECT * FROM alerts`` as the driver gives it, anything a column may hold."""
    row = {"alert_id": draw(st.text(min_size=1, max_size=16)),
           "status": draw(statuses), "vals": draw(st.none() | values),
           "escalation_level": draw(st.none() | st.integers(0, 9))}
    row |= {c: draw(st.none() | text) for c in TEXTS + PEOPLE}
    row |= {c: draw(st.none() | instant) for c in TIMES}
    for column in draw(st.sets(st.sampled_from(LATER))):
        del row[column]
    return row


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@settings(max_examples=300, deadline=None)
@given(driver_rows())
def test_an_alerts_row_reads_typed(raw: dict) -> None:
    row = AlertRow.from_row(raw)
    assert row.alert_id == raw["alert_id"]
    for column in TIMES:
        got, stored = getattr(row, column), raw.get(column)
        assert (got is None) if stored is None else (got.tzinfo is UTC
                                                     and got == as_utc(stored)), column
    for column in TEXTS:
        assert getattr(row, column) == (raw[column] or ""), column
    for column in PEOPLE:
        assert getattr(row, column) == raw.get(column), column
    status = raw["status"]
    if status in set(AlertStatus):
        assert type(row.status) is AlertStatus and row.status == status
    else:  # unknown (a newer writer's) kept as its text; none stored: not known
        assert row.status == status and not isinstance(row.status, AlertStatus)
    assert dict(row.values) == {k: float(v) for k, v in (raw["vals"] or {}).items()}
    with pytest.raises(TypeError):
        row.values["x"] = 1.0  # type: ignore[index]
    # a null level stays null (the escalation LWT is conditional on it); counted as 0
    assert row.escalation_level == raw.get("escalation_level")
    assert row.level == (raw.get("escalation_level") or 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.status = AlertStatus.RESOLVED  # type: ignore[misc]


def test_statuses_parse_to_the_enum_only_when_known() -> None:
    assert parse_status("acknowledged") is AlertStatus.ACKNOWLEDGED
    assert parse_status("paged") == "paged" and parse_status(None) is None


@st.composite
def raised_rows(draw) -> dict:
    """An alerts row as the stream job and the lifecycle leave it: the raise's columns
    set, any status and holder since."""
    detected = draw(naive)
    row = draw(driver_rows()) | {c: draw(st.text(min_size=1, max_size=12)) for c in TEXTS}
    return row | {"detected_ts": detected, "status": draw(st.sampled_from(list(AlertStatus)))}


@settings(max_examples=150, deadline=None)
@given(raised_rows())
def test_the_indexes_read_back_as_the_row_they_copy(raw: dict) -> None:
    session = TableSession()
    session.put("alerts", raw)
    store = AlertStore(session)
    row = store.get(raw["alert_id"])
    assert row == AlertRow.from_row(raw)
    store.write_indexes(row)
    detected = row.detected_ts

    [day] = store.for_ward_day(row.ward, detected.date(), detected)
    assert day == WardDayAlert(row.ward, detected.date(), detected, row.alert_id,
                               row.patient_id, row.bed, row.rule, row.priority, row.message,
                               row.status, row.assigned_to)
    assert store.for_ward_day(row.ward, detected.date(), detected + timedelta(seconds=1)) == []
    [mine] = store.for_patient(row.patient_id)
    assert mine == PatientAlert(row.patient_id, detected, row.alert_id, row.rule,
                                row.priority, row.message, row.onset_ts, row.cleared_ts)
    active = store.active_for_ward(row.ward)
    if row.status in ACTIVE:
        moved = row.status != AlertStatus.RAISED  # who moved it comes from the alerts row
        assert active == [ActiveAlert(
            row.ward, row.alert_id, row.patient_id, row.bed, row.rule, row.priority,
            row.message, detected, row.status, row.assigned_to, row.assigned_ts,
            row.status_by if moved else None, row.status_ts if moved else None)]
    else:
        assert active == []


def test_a_row_that_holds_only_its_end_is_not_known() -> None:
    """A clear stored before its raise leaves a row with only ``cleared_ts``."""
    row = AlertRow.from_row({"alert_id": "a", "cleared_ts": datetime(2026, 3, 1, 14, 0)})
    assert row.status is None and row.ward == "" and row.cleared_ts.tzinfo is UTC
