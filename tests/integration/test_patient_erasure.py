"""``icu patient erase``: after it, no table of the keyspace holds anything of the
patient - every table enumerated from ``system_schema`` and read whole - while another
patient's data stays, the population aggregates no longer count them, and the audit
log says who erased whom (as a pseudonym), when and why, without patient data.

Also: the pseudonymised research export (``icu patient export --pseudonymise``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from backend import audit
from backend.admission import Admission
from backend.alerting import email_outbox as mail
from backend.alerting.ids import alert_id
from backend.alerting.lifecycle import Lifecycle
from backend.alerting.manager import AlertManager
from backend.messages import AlertEvent, Priority, ValidatedReading
from backend.notes import add_note
from backend.privacy.erase import TABLES, pseudonym, unclassified_tables
from backend.privacy.pseudonymise import Pseudonymiser
from backend.risk.live import HourScore
from backend.settings import Settings
from backend.storage import census
from backend.storage.alerts import AlertStore
from backend.storage.minutes import MinuteStore
from backend.storage.raw import RawMessage, RawStore
from backend.storage.readings import ReadingStore
from backend.storage.risk_scores import RiskScoreStore
from backend.storage.waveforms import WaveformStore
from backend.vitals import Vital
from backend.waveforms import WaveformChunk
from harness import REPO, audit_trail

pytestmark = [pytest.mark.integration, pytest.mark.slow]

P, Q = "P-ERASE-7f3a91", "Q-KEEP-2b8c44"  # distinctive: found anywhere they are
LABEL = "Zelda Quintrell"
WARD = "ICU-Z"


@pytest.fixture
def settings(isolated_settings: Settings) -> Settings:
    return isolated_settings.model_copy(update={"secret_key": SecretStr("k" * 48)})


def icu(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1", "ICU_ACTOR": "dpo.lee"}
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def reading(pid: str, bed: str, ms: int) -> ValidatedReading:
    return ValidatedReading(patient_id=pid, ward=WARD, bed=bed, device_id=f"mon-{pid}",
                            seq=ms, ts=ms, vitals={Vital.HR: 88.0, Vital.SPO2: 95.0},
                            carried={Vital.HR: 88.0}, news2=3, news2_band="low",
                            processed_ts=ms + 5)


def populate(db, settings: Settings, pid: str, bed: str, label: str, t0: datetime) -> None:
    """What the platform holds about one patient, written through its own stores."""
    ms0 = int(t0.timestamp() * 1000)
    census.admit(db, Admission(patient_id=pid, ward=WARD, bed=bed, label=label, age=71,
                               sex="F", home_fips="25025", admitted_ts=ms0 - 3_600_000))
    readings = [reading(pid, bed, ms0 + i * 60_000) for i in range(6)]
    ReadingStore(db).write(readings)
    ReadingStore(db).write_latest(readings[-1:])
    MinuteStore(db).write(readings)
    topic = settings.kafka.topic_raw
    offset0 = 1000 if pid == P else 5000
    raw = [RawMessage(topic, 2, offset0 + i, pid.encode(),
                      json.dumps({"patient_id": pid, "ts": r.ts}).encode(), r.ts)
           for i, r in enumerate(readings)]
    raw.append(RawMessage(topic, 2, offset0 + 50, pid.encode(), b'{"patient_id": "' +
                          pid.encode() + b'", "vitals": {"spo2": 140}', ms0))
    RawStore(db).write_raw(raw)
    # the dead letter as the persist query writes it
    db.execute("INSERT INTO deadletters_by_day (day, received_ts, topic, kafka_partition,"
               " kafka_offset, field, reason, detail, patient_id, rejected_ts)"
               " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
               (t0.date(), ms0, topic, 2, offset0 + 50, "spo2", "implausible_value",
                "spo2 140", pid, ms0 + 3))
    # half the readings name their Kafka position (as the sink will): the indexed path;
    # the others only the fallback scan finds
    for i, r in enumerate(readings[:3]):
        db.execute("UPDATE readings_by_patient_day SET kafka_partition = 2, kafka_offset = %s"
                   " WHERE patient_id = %s AND day = %s AND ts = %s AND device_id = %s"
                   " AND seq = %s", (offset0 + i, pid, t0.date(),
                                     datetime.fromtimestamp(r.ts / 1000, UTC), r.device_id,
                                     r.seq))
    alert = AlertEvent(alert_id=alert_id(pid, "ref_spo2_low", ms0), event="raised",
                       patient_id=pid, ward=WARD, bed=bed, rule="ref_spo2_low",
                       priority=Priority.HIGH,
                       message="SpO2 84 % below 90 %", values={"spo2": 84.0},
                       onset_ts=ms0, reading_ts=ms0, detected_ts=ms0)
    AlertStore(db).raise_alert(alert)
    manager = AlertManager(db, settings, lambda _e: None)
    manager.on_alert_event(alert)  # work list + e-mail outbox (with a bound link)
    links = mail.links_from_settings(settings)
    claim = links.check(links.make(alert.alert_id, role="nurse", ward=WARD))
    mail.use_link(db, claim, "n.kim", t0)
    Lifecycle(db).acknowledge(alert.alert_id, "n.kim", "ward_screen", "on my way")
    add_note(db, pid, "dr.who", "physician", f"Seen. {label} stable.")
    audit.record(db, "dr.who", audit.PATIENT_VIEWED, audit.PATIENT, pid, "", "web")
    WaveformStore(db).write([WaveformChunk(patient_id=pid, channel="II", source="mitdb/100",
                                           start_ts=ms0, fs=250.0, samples=[0.1] * 250)])
    RiskScoreStore(db).write([HourScore(patient_id=pid, hour=3, hour_ts=ms0 - ms0 % 3_600_000,
                                        risk=0.2, threshold=0.5, above=False,
                                        monitor_only=True, model_version="v-test",
                                        n_readings=60, inputs={"hr": 88.0})], ms0)


def holds(value: object, needles: tuple[bytes, ...]) -> bool:
    if value is None:
        return False
    if isinstance(value, (bytes, bytearray)):
        return any(n in bytes(value) for n in needles)
    if isinstance(value, dict):
        return any(holds(k, needles) or holds(v, needles) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(holds(v, needles) for v in value)
    return holds(str(value).encode(), needles)


def traces(db, keyspace: str, needles: tuple[bytes, ...]) -> dict[str, int]:
    """Rows holding any needle, per table: EVERY table of the keyspace, read whole."""
    found: dict[str, int] = {}
    tables = [r["table_name"] for r in db.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))]
    assert len(tables) > 30
    for table in tables:
        n = sum(1 for row in db.execute(f"SELECT * FROM {table}")
                if any(holds(v, needles) for v in row.values()))
        if n:
            found[table] = n
    return found


def ward_admissions(db, day) -> int:
    row = db.execute("SELECT admissions FROM population_by_ward WHERE grain = 'day' AND "
                     "year = %s AND period_start = %s AND ward = %s",
                     (day.year, day, WARD)).one()
    assert row is not None, f"no aggregate row for {WARD} on {day}"
    return row["admissions"]


def test_erase_reaches_every_table_and_recomputes_the_aggregates(
        settings: Settings, db) -> None:
    assert unclassified_tables(db, settings.cassandra.keyspace) == []
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    populate(db, settings, P, "1", LABEL, t0)
    populate(db, settings, Q, "2", "Kept Person", t0)
    ks = settings.cassandra.keyspace
    # P's id, name, and the ids of P's alerts (rows about them need not name P)
    alert_ids = tuple(r["alert_id"].encode() for r in db.execute(
        "SELECT alert_id FROM alerts_by_patient WHERE patient_id = %s", (P,)))
    assert alert_ids
    needles = (P.encode(), LABEL.encode(), *alert_ids)
    before = traces(db, ks, needles)
    # the fixture reaches the tables a patient's data lives in
    for table in ("readings_by_patient_day", "readings_by_patient_minute", "latest_by_ward",
                  "raw_messages", "deadletters_by_day", "alerts", "alert_history",
                  "alerts_by_patient", "alerts_by_ward_day", "active_alerts_by_ward",
                  "notes_by_patient", "waveforms_by_patient_hour", "risk_scores_by_patient",
                  "risk_scores_by_model_day", "admissions", "beds_by_ward",
                  "audit_by_patient_day", "audit_by_day", "email_outbox",
                  "alert_manager_open", "alert_ack_links"):
        assert table in before, table

    # the (UTC) day both stays were admitted on; the erasure may recompute the next day
    # too, when the test spans midnight, so the row is read by its key
    admitted = (t0 - timedelta(hours=1)).date()
    agg = icu(settings, "population", "aggregate", "--since", str(admitted),
              "--until", str(admitted), "--force")
    assert agg.returncode == 0, agg.stderr[-2000:]
    assert ward_admissions(db, admitted) == 2

    refused = icu(settings, "patient", "erase", P, "--reason", f"request about {P}", "--yes")
    assert refused.returncode != 0 and "must not name the patient" in refused.stderr
    done = icu(settings, "patient", "erase", P, "--reason", "DSAR 2026-117", "--yes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "population aggregates recomputed" in done.stderr

    assert traces(db, ks, needles) == {}  # nothing of P, anywhere
    kept = traces(db, ks, (Q.encode(),))
    assert {"readings_by_patient_day", "raw_messages", "alerts", "notes_by_patient"} <= set(kept)
    assert ward_admissions(db, admitted) == 1  # recomputed without P

    [erased] = audit_trail.recent(db, action=audit.PATIENT_ERASED)
    pseudo = pseudonym(P, settings)
    assert (erased.actor, erased.target_type, erased.target_id) == ("dpo.lee", "pseudonym",
                                                                   pseudo)
    assert "DSAR 2026-117" in erased.detail and P not in erased.detail
    # the access history survives under the pseudonym
    views = audit_trail.recent(db, patient_id=pseudo)
    assert {e.action for e in views} >= {audit.PATIENT_VIEWED, audit.NOTE_ADDED}
    assert set(TABLES) >= set(before)


def test_research_export_is_pseudonymised(settings: Settings, db, tmp_path) -> None:
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    populate(db, settings, P, "1", LABEL, t0)
    span = ("--since", "2026-03-02T00:00", "--until", "2026-03-03T00:00")
    out = tmp_path / "p.csv"
    r = icu(settings, "patient", "export", P, *span, "--format", "csv", "--pseudonymise",
            "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    text = out.read_text()
    assert P not in text and f"mon-{P}" not in text and LABEL not in text
    rows = list(csv.DictReader(out.open()))
    pseudo = Pseudonymiser.from_settings(settings)
    shift = pseudo.shift_days(P) * 86_400_000
    assert {row["patient_id"] for row in rows} == {pseudo.patient(P)}
    times = [int(row["ts_utc_ms"]) for row in rows]
    original = [int(t0.timestamp() * 1000) + i * 60_000 for i in range(6)]
    assert times == [t + shift for t in original]  # intervals and order exact, dates not
    fhir = tmp_path / "p.json"
    r = icu(settings, "patient", "export", P, *span, "--format", "fhir", "--pseudonymise",
            "--out", str(fhir))
    assert r.returncode == 0 and P not in fhir.read_text()
    assert json.loads(fhir.read_text())["entry"][0]["resource"]["subject"]["reference"] == (
        f"Patient/{pseudo.patient(P)}")
    assert len(audit_trail.recent(db, action=audit.RESEARCH_EXPORTED)) == 2
