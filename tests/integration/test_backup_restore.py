"""`icu db backup` / `icu db restore` (ops/backup.py) against real nodes: readings,
alerts (with their history and acknowledgement) and audit entries are written through
the platform's own stores on the replicated set, the keyspace is backed up, more is
written afterwards, and the backup is restored (1) into a fresh keyspace of the same
three-node set and (2) into a fresh keyspace of another cluster, the single-node server
with replication factor 1. Each restore holds every row of every table exactly as it
was at the backup, and nothing written after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cassandra.cluster import Session

from backend import audit
from backend.alerting.ids import alert_id
from backend.alerting.lifecycle import Lifecycle
from backend.messages import AlertEvent, Priority, ValidatedReading
from backend.settings import Settings
from backend.storage import census
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from backend.storage.readings import ReadingStore
from devices.generator import GeneratorConfig, generate, plan_patients
from harness import REPO
from harness.isolation import Scratch
from ops import backup

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.replicated]


def _write(session: Session, start_ms: int, seconds: int, seed: int) -> dict[str, int]:
    """Readings of 6 generated patients (some with alarm scenarios), an alert per
    patient, one acknowledged, and an audit entry per view: what a ward shift writes."""
    cfg = GeneratorConfig(start_ms=start_ms, patients=6, rate_hz=1.0, duration_s=seconds,
                          seed=seed, id_prefix=f"bk{seed}",
                          scenario_mix={"sepsis": 1, "desaturation": 1})
    plans = plan_patients(cfg)
    for plan in plans:
        census.admit(session, plan.admission(start_ms - 3_600_000))
    readings = [ValidatedReading(**r.model_dump(exclude={"schema_version", "source"}),
                                 processed_ts=r.ts + 40)
                for _, r in generate(cfg, plans)]
    store = ReadingStore(session)
    store.write(readings)
    store.write_latest(readings)
    alerts = AlertStore(session)
    for n, plan in enumerate(plans):
        onset = start_ms + 10_000 * (n + 1)
        alerts.raise_alert(AlertEvent(
            alert_id=alert_id(plan.patient_id, "ref_spo2_low", onset), event="raised",
            patient_id=plan.patient_id, ward=plan.ward, bed=plan.bed, rule="ref_spo2_low",
            priority=Priority.HIGH, message="SpO2 84 % below 85 %", values={"spo2": 84.0},
            onset_ts=onset, reading_ts=onset + 10_000, detected_ts=onset + 10_100))
        audit.record(session, f"nurse{seed}", audit.PATIENT_VIEWED, audit.PATIENT,
                     plan.patient_id, via="web")
    first = alert_id(plans[0].patient_id, "ref_spo2_low", start_ms + 10_000)
    assert Lifecycle(session, store=alerts).acknowledge(first, f"nurse{seed}", "alerts_page",
                                                        comment="seen").ok
    return {"readings": len(readings), "alerts": len(plans), "audit": len(plans)}


def _dump(session: Session, keyspace: str) -> dict[str, list[str]]:
    """Every row of every table of ``keyspace``, as sorted reprs. The tables are read
    from ``system_schema``, not the driver's metadata: a keyspace created by another
    client (the restore) reaches that metadata by debounced schema events, which can
    lag on a loaded host."""
    tables = sorted(r["table_name"] for r in session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)))
    return {t: sorted(repr(sorted(r.items())) for r in
                      session.execute(f"SELECT * FROM {keyspace}.{t}", timeout=60))
            for t in tables}


def _differences(got: dict[str, list[str]], want: dict[str, list[str]]) -> str:
    """Per table, the rows one dump has and the other lacks (empty: the same), so a
    failure names the table and the rows rather than printing both whole keyspaces."""
    out = []
    for table in sorted(set(got) | set(want)):
        if table not in got or table not in want:
            out.append(f"{table}: only in the {'restore' if table in got else 'source'}")
            continue
        extra = sorted(set(got[table]) - set(want[table]))
        missing = sorted(set(want[table]) - set(got[table]))
        if extra or missing or len(got[table]) != len(want[table]):
            out.append(f"{table}: {len(got[table])} rows restored, {len(want[table])} at the "
                       f"backup; {len(missing)} missing, {len(extra)} not in the source")
            out += [f"  missing {row}" for row in missing[:5]]
            out += [f"  extra   {row}" for row in extra[:5]]
    return "\n".join(out)


def _icu(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def test_backup_restores_every_row_into_a_fresh_keyspace_and_another_cluster(
        replicated: Settings, services: Settings, _created: Scratch, tmp_path: Path) -> None:
    settings = Scratch().isolate(replicated, tmp_path / "source")
    session = connect(settings.cassandra, keyspace=False, wait_seconds=30)
    try:
        migrate(session, settings)
        session.set_keyspace(settings.cassandra.keyspace)
        start_ms = int(time.time() * 1000) - 600_000
        written = _write(session, start_ms, 120, seed=1)
        before = _dump(session, settings.cassandra.keyspace)
        assert len(before["readings_by_patient_day"]) == written["readings"] > 600
        assert len(before["alerts"]) == written["alerts"]
        assert len(before["audit_by_day"]) >= written["audit"]
        assert any("acknowledged" in row for row in before["alerts"])

        out = tmp_path / "backup"
        t0 = time.monotonic()
        done = _icu(settings, "db", "backup", str(out))
        backup_seconds = time.monotonic() - t0
        assert done.returncode == 0, done.stdout + done.stderr
        manifest = json.loads((out / backup.MANIFEST).read_text())
        assert set(manifest["nodes"]) == {"cassandra-1", "cassandra-2", "cassandra-3"}
        for node in manifest["nodes"].values():  # replication factor 3: all on each
            assert {"readings_by_patient_day", "alerts", "audit_by_day"} <= set(node["tables"])
        # the snapshots' hard links are gone from the nodes' data directories
        snaps = list((settings.cache_dir / "var" / "cluster").glob(
            f"cassandra-*/data/{settings.cassandra.keyspace}/*/snapshots/{manifest['tag']}"))
        assert not snaps

        # written after the backup: in no restore
        _write(session, start_ms + 200_000, 30, seed=2)

        # (1) a fresh keyspace of the same three-node set
        same = f"icu_r_{uuid.uuid4().hex[:10]}"
        t0 = time.monotonic()
        target, loaded = backup.restore(settings, out, keyspace=same)
        restore_seconds = time.monotonic() - t0
        assert target == same and loaded
        assert not (diff := _differences(_dump(session, same), before)), diff
        session.execute(f"DROP KEYSPACE {same}", timeout=120)
    finally:
        session.cluster.shutdown()

    # (2) another cluster: the single-node server, replication factor 1, by the command
    other = services
    done = _icu(other, "db", "restore", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"into keyspace {settings.cassandra.keyspace}" in done.stdout
    single = connect(other.cassandra, keyspace=False, wait_seconds=30)
    try:
        ks = settings.cassandra.keyspace  # the backup's own name, on the other cluster
        _created.keyspaces.append(ks)
        restored = single.cluster.metadata.keyspaces[ks]
        assert restored.replication_strategy.replication_factor == 1
        assert not (diff := _differences(_dump(single, ks), before)), diff
        # a second restore into the same keyspace is refused, nothing overwritten
        again = _icu(other, "db", "restore", str(out))
        assert again.returncode != 0 and "exists on the target" in again.stderr
    finally:
        single.cluster.shutdown()
    print(f"backup {backup_seconds:.1f}s, restore into the set {restore_seconds:.1f}s, "
          f"{sum(written.values())} rows written")
