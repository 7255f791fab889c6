"""The secured servers (ops/secure_services.py), started by the project's own code on
ports of their own with certificates this test makes: authentication, per-principal
authorisation, TLS, the append-only audit log, and the stream job running against them
from settings alone.

One secured Kafka and Cassandra serve the whole module (about a minute to start); the
shared development servers are not touched.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cassandra import Unauthorized
from cassandra.query import BatchStatement, BatchType
from cassandra.util import datetime_from_uuid1, uuid_from_time
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError
from kafka.structs import TopicPartition
from pydantic import SecretStr

from backend import audit
from backend.admission import Admission
from backend.alerting.lifecycle import ESCALATED, Lifecycle
from backend.alerting.manager import AlertManager
from backend.clients import kafka_config
from backend.messages import AlertEvent, DeviceReading, Priority
from backend.notes import add_note
from backend.settings import Settings, TlsSettings
from backend.storage import census
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from backend.users import authenticate, create_user, start_session
from harness.process import StreamJob
from harness.relay import Relay
from harness.spark import fresh_spark_jvm
from harness.waiting import wait_until
from ops import secure_services as secure

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free(*ports: int) -> bool:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _ports() -> tuple[int, int]:
    """A Kafka port (and the next, its controller) and a Cassandra port (and its gossip
    port, 2042 lower) that are all free."""
    for base in range(29092, 29992, 100):
        kafka, cassandra = base, base + 50
        if _free(kafka, kafka + 1, cassandra,
                 cassandra - secure.cassandra_server.CASSANDRA_STORAGE_PORT_OFFSET):
            return kafka, cassandra
    raise RuntimeError("no free ports for the secured servers")


class Secured:
    def __init__(self, base: Settings, layout: secure.Layout, certs: Path) -> None:
        self.base = base
        self.layout = layout
        self.certs = certs

    def settings(self, component: str) -> Settings:
        return secure.component_settings(self.base, self.layout, component)

    def kafka(self, component: str, **options: object) -> dict:
        return kafka_config(self.settings(component).kafka, **options)

    def cql(self, component: str):
        return connect(self.settings(component).cassandra)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secure")
    kafka_port, cassandra_port = _ports()
    layout = secure.Layout(root / "servers", kafka_port, cassandra_port, tls=True)
    base = Settings().model_copy(update={"demo_mode": False,
                                         "allow_insecure_services": False})
    # the servers' certificate, made by this test (not the module's own local CA)
    ca, cert, key = secure.make_certificates(root / "test-ca")
    secure.install_certificates(layout, ca, cert, key)
    try:
        secure.start_secure(base, layout, timeout=240, unsafe_system=True)
        yield Secured(base, layout, root)
    finally:
        secure.stop_secure(base, layout)


def _count(secured: Secured, topic: str) -> int:
    """Records on ``topic``, counted by the stream job's principal (which may read it)."""
    c = KafkaConsumer(**secured.kafka("stream", group_id=None))
    try:
        tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or ()]
        return sum(c.end_offsets(tps).values())
    finally:
        c.close()


def test_a_client_without_credentials_is_refused(secured: Secured) -> None:
    raw = secured.base.kafka.topic_raw
    before = _count(secured, raw)
    tls_only = secured.settings("devices").kafka.model_copy(
        update={"sasl_mechanism": None, "username": None, "password": None})
    wrong_password = secured.settings("devices").kafka.model_copy(
        update={"password": SecretStr("not-the-password")})
    for cfg in (tls_only, wrong_password):
        with pytest.raises(KafkaError):
            p = KafkaProducer(**kafka_config(cfg, max_block_ms=8000, request_timeout_ms=8000,
                                             bootstrap_timeout_ms=8000))
            try:
                p.send(raw, b"forged reading").get(timeout=8)
            finally:
                p.close(timeout=2)
    assert _count(secured, raw) == before
    # Cassandra: no session without a password, nor with someone else's
    anonymous = secured.settings("web").cassandra.model_copy(
        update={"username": None, "password": None})
    for cfg in (anonymous, anonymous.model_copy(update={"username": "icu_web",
                                                        "password": SecretStr("guess")})):
        with pytest.raises(Exception, match=r"(?i)auth"):
            connect(cfg, keyspace=False).cluster.shutdown()


def test_each_principal_only_reaches_its_own_topics(secured: Secured) -> None:
    k = secured.base.kafka
    devices = KafkaProducer(**secured.kafka("devices", acks="all", max_block_ms=8000))
    try:
        devices.send(k.topic_raw, key=b"p", value=b"{}").get(timeout=10)
        devices.send(k.topic_waveforms, key=b"p", value=b"{}").get(timeout=10)
        for topic in (k.topic_validated, k.topic_alerts, k.topic_lifecycle):
            with pytest.raises(TopicAuthorizationFailedError):
                devices.send(topic, key=b"p", value=b"forged").get(timeout=10)
    finally:
        devices.close(timeout=5)
    # a device reads nothing: not vitals.validated (which has records; the broker does
    # not even describe it to a device) ...
    stream = KafkaProducer(**secured.kafka("stream", acks="all", max_block_ms=8000))
    try:
        stream.send(k.topic_validated, key=b"p", value=b"{}").get(timeout=10)
    finally:
        stream.close(timeout=5)
    assert _count(secured, k.topic_validated) >= 1
    consumer = KafkaConsumer(**secured.kafka("devices", group_id=None))
    try:
        assert not consumer.partitions_for_topic(k.topic_validated)  # the stream job sees 4
        tp = TopicPartition(k.topic_validated, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            assert not consumer.poll(timeout_ms=500)
    finally:
        consumer.close()
    # ... nor even what it sent: the fetch is refused
    consumer = KafkaConsumer(**secured.kafka("devices", group_id=None))
    try:
        raw = [TopicPartition(k.topic_raw, p) for p in consumer.partitions_for_topic(k.topic_raw)]
        consumer.assign(raw)
        for tp in raw:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + 15
        with pytest.raises(TopicAuthorizationFailedError):
            while time.monotonic() < deadline:
                assert not consumer.poll(timeout_ms=500)
    finally:
        consumer.close()
    # the web app writes acknowledgements, never readings
    web = KafkaProducer(**secured.kafka("web", acks="all", max_block_ms=8000))
    try:
        web.send(k.topic_lifecycle, key=b"a", value=b"{}").get(timeout=10)
        with pytest.raises(TopicAuthorizationFailedError):
            web.send(k.topic_raw, key=b"p", value=b"forged").get(timeout=10)
    finally:
        web.close(timeout=5)


def test_the_web_role_can_add_to_the_audit_log_but_not_change_it(secured: Secured) -> None:
    web = secured.cql("web")
    admin = secured.cql(secure.ADMIN)
    try:
        event_id = audit.record(web, "nurse.jo", audit.PATIENT_VIEWED, audit.PATIENT,
                                "pt-audit", "page /patient", "web")
        day = datetime_from_uuid1(event_id).date()
        [entry] = audit.search(web, day, day, actor="nurse.jo")
        assert entry.event_id == event_id
        ks = secured.base.cassandra.keyspace
        key = ("WHERE day = %s AND event_id = %s", (day, event_id))
        attempts = {
            "UPDATE": (f"UPDATE {ks}.audit_by_day SET detail = 'nothing happened' {key[0]}",
                       key[1]),
            "DELETE": (f"DELETE FROM {ks}.audit_by_day {key[0]}", key[1]),
            "DELETE (partition)": (f"DELETE FROM {ks}.audit_by_day WHERE day = %s",
                                   (day,)),
            "TRUNCATE": (f"TRUNCATE {ks}.audit_by_day", None),
            "INSERT USING TTL": (
                f"INSERT INTO {ks}.audit_by_day (day, event_id, actor, action, detail) "
                "VALUES (%s, %s, 'nurse.jo', 'patient.viewed', 'x') USING TTL 1", key[1]),
            "UPDATE in a batch": (
                f"BEGIN BATCH UPDATE {ks}.audit_by_actor_day SET detail = 'x' "
                "WHERE actor = 'nurse.jo' AND day = %s AND event_id = %s; APPLY BATCH",
                key[1]),
        }
        for what, (statement, params) in attempts.items():
            with pytest.raises(Unauthorized, match="append-only"):
                web.execute(statement, params)
            # the same through a prepared statement
            if params is not None:
                prepared = web.prepare(statement.replace("%s", "?"))
                with pytest.raises(Unauthorized, match="append-only"):
                    web.execute(prepared, params)
            assert what
        # and through a protocol-level batch (the way audit.record writes its INSERTs)
        batch = BatchStatement()
        batch.add(web.prepare(f"INSERT INTO {ks}.audit_by_day (day, event_id, actor, action) "
                              "VALUES (?, ?, 'nurse.jo', 'patient.viewed')"),
                  (day, uuid_from_time(time.time())))
        batch.add(web.prepare(f"DELETE FROM {ks}.audit_by_day WHERE day = ? AND event_id = ?"),
                  key[1])
        with pytest.raises(Unauthorized, match="append-only"):
            web.execute(batch)
        # nor can it give itself more rights or change the schema
        for statement in (f"GRANT ALL ON KEYSPACE {ks} TO icu_web",
                          f"ALTER TABLE {ks}.audit_by_day WITH comment = 'x'",
                          f"DROP TABLE {ks}.audit_by_day"):
            with pytest.raises(Unauthorized):
                web.execute(statement)
        # the stream job's role is held to the same rule
        stream = secured.cql("stream")
        try:
            with pytest.raises(Unauthorized, match="append-only"):
                stream.execute(f"TRUNCATE {ks}.audit_by_patient_day")
        finally:
            stream.cluster.shutdown()
        # every entry is intact, as the administrator reads it
        [kept] = audit.search(admin, day, day, actor="nurse.jo")
        assert kept == entry
        # the administrator (erasure re-keys the log) may change it
        admin.execute(f"UPDATE {ks}.audit_by_day SET detail = 'page /patient' {key[0]}",
                      key[1])
    finally:
        web.cluster.shutdown()
        admin.cluster.shutdown()


def test_an_audit_entry_cannot_be_overwritten(secured: Secured) -> None:
    """Writes are upserts: an INSERT with an existing entry's key would replace its
    cells. The query handler reads the key first and refuses, however the INSERT comes."""
    web = secured.cql("web")
    admin = secured.cql(secure.ADMIN)
    ks = secured.base.cassandra.keyspace
    try:
        event_id = audit.record(web, "nurse.kim", audit.PATIENT_VIEWED, audit.PATIENT,
                                "pt-keep", "page /patient", "web")
        day = datetime_from_uuid1(event_id).date()
        [entry] = audit.search(admin, day, day, actor="nurse.kim")
        insert = (f"INSERT INTO {ks}.audit_by_day (day, event_id, actor, action, detail) "
                  "VALUES (%s, %s, %s, %s, %s)")
        forged = (day, event_id, "nurse.kim", "patient.viewed", "nothing happened")
        by_actor = (f"INSERT INTO {ks}.audit_by_actor_day (actor, day, event_id, action, "
                    "detail) VALUES (?, ?, ?, ?, ?)")

        def protocol_batch(kind: BatchType) -> BatchStatement:
            batch = BatchStatement(batch_type=kind)
            batch.add(web.prepare(insert.replace("%s", "?")), forged)
            batch.add(web.prepare(by_actor),
                      ("nurse.kim", day, event_id, "patient.viewed", "nothing happened"))
            return batch

        attempts = {
            "query string": lambda: web.execute(insert, forged),
            "prepared": lambda: web.execute(web.prepare(insert.replace("%s", "?")), forged),
            "JSON": lambda: web.execute(f"INSERT INTO {ks}.audit_by_day JSON %s", (json.dumps(
                {"day": day.isoformat(), "event_id": str(event_id), "actor": "nurse.kim",
                 "action": "patient.viewed", "detail": "nothing happened"}),)),
            "IF NOT EXISTS": lambda: web.execute(insert + " IF NOT EXISTS", forged),
            "logged batch": lambda: web.execute(protocol_batch(BatchType.LOGGED)),
            "unlogged batch": lambda: web.execute(protocol_batch(BatchType.UNLOGGED)),
            "query-string batch": lambda: web.execute(
                f"BEGIN UNLOGGED BATCH {insert}; APPLY BATCH", forged),
            "other table": lambda: web.execute(web.prepare(by_actor), (
                "nurse.kim", day, event_id, "patient.viewed", "nothing happened")),
        }
        for what, attempt in attempts.items():
            with pytest.raises(Unauthorized, match="existing entry"):
                attempt()
            assert what
        # two INSERTs of one new key in one batch: the second would win
        new_id = uuid_from_time(time.time())
        twice = BatchStatement(batch_type=BatchType.UNLOGGED)
        twice.add(web.prepare(insert.replace("%s", "?")),
                  (day, new_id, "nurse.kim", "patient.viewed", "real"))
        twice.add(web.prepare(insert.replace("%s", "?")),
                  (day, new_id, "nurse.kim", "patient.viewed", "forged"))
        with pytest.raises(Unauthorized, match="same entry twice"):
            web.execute(twice)
        # a client-side timestamp far ahead would outlive the administrator's deletes
        clock = web.cluster.timestamp_generator
        web.cluster.timestamp_generator = lambda: int((time.time() + 86_400) * 1e6)
        try:
            with pytest.raises(Unauthorized, match="client timestamp"):
                web.execute(insert, (day, uuid_from_time(time.time()), "nurse.kim",
                                     "patient.viewed", "from tomorrow"))
        finally:
            web.cluster.timestamp_generator = clock
        # every entry as it was; nothing of the refused batches was written
        assert audit.search(admin, day, day, actor="nurse.kim") == [entry]
        assert admin.execute(f"SELECT * FROM {ks}.audit_by_day WHERE day = %s AND "
                             "event_id = %s", (day, new_id)).one() is None
        # new entries are still appended, the way the application writes them
        second = audit.record(web, "nurse.kim", audit.PATIENT_VIEWED, audit.PATIENT,
                              "pt-keep", "page /patient", "web")
        assert [e.event_id for e in audit.search(admin, day, day, actor="nurse.kim")] == [
            second, event_id]
        # a static column is one value for the partition's earlier entries too: writing
        # one is refused (an append-only table named like the audit's, in a keyspace of
        # the test's own, since the audit tables have none)
        probe = f"icu_static_{uuid.uuid4().hex[:8]}"
        admin.execute(f"CREATE KEYSPACE {probe} WITH replication = "
                      "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        try:
            admin.execute(f"CREATE TABLE {probe}.audit_by_day (day date, event_id timeuuid, "
                          "signed_off text STATIC, detail text, "
                          "PRIMARY KEY (day, event_id))")
            admin.execute(f"GRANT MODIFY ON TABLE {probe}.audit_by_day TO icu_web")
            time.sleep(2.5)  # permissions_validity
            with pytest.raises(Unauthorized, match="static column"):
                web.execute(f"INSERT INTO {probe}.audit_by_day (day, event_id, signed_off) "
                            "VALUES (%s, %s, 'x')", (day, uuid_from_time(time.time())))
            web.execute(f"INSERT INTO {probe}.audit_by_day (day, event_id, detail) "
                        "VALUES (%s, %s, 'x')", (day, uuid_from_time(time.time())))
        finally:
            admin.execute(f"DROP KEYSPACE {probe}")
    finally:
        web.cluster.shutdown()
        admin.cluster.shutdown()


def test_each_role_reaches_only_its_own_tables(secured: Secured) -> None:
    """Per-table grants (``secure.TABLE_ACCESS``): the web role is refused the tables it
    has no business with, and its real paths (account, sign-in, session, note,
    acknowledgement, audit) work; so does the stream role's alert sink."""
    ks = secured.base.cassandra.keyspace
    web, stream, alerts = secured.cql("web"), secured.cql("stream"), secured.cql("alerts")
    admin = secured.cql(secure.ADMIN)
    now = int(time.time() * 1000)
    day = datetime.fromtimestamp(now / 1000, UTC).date()
    try:
        refused = {
            web: (f"SELECT * FROM {ks}.raw_messages LIMIT 1",
                  f"SELECT * FROM {ks}.deadletters_by_day LIMIT 1",
                  f"SELECT * FROM {ks}.email_outbox LIMIT 1",
                  f"SELECT * FROM {ks}.risk_model_versions LIMIT 1",
                  f"SELECT * FROM {ks}.schema_migrations LIMIT 1",
                  f"INSERT INTO {ks}.readings_by_patient_day (patient_id, day, ts, "
                  f"device_id, seq) VALUES ('pt-x', '{day}', {now}, 'mon-x', 1)",
                  f"DELETE FROM {ks}.latest_by_ward WHERE ward = 'ICU-S'",
                  f"INSERT INTO {ks}.admissions (patient_id, ward, bed) "
                  "VALUES ('pt-x', 'ICU-S', '9')",
                  f"INSERT INTO {ks}.population_surges (year, day, region, measure) "
                  f"VALUES (2026, '{day}', 'r', 'm')"),
            stream: (f"SELECT * FROM {ks}.users LIMIT 1",
                     f"SELECT * FROM {ks}.audit_by_day LIMIT 1",
                     f"SELECT * FROM {ks}.web_sessions LIMIT 1",
                     f"INSERT INTO {ks}.notes_by_patient (patient_id, note_id) "
                     "VALUES ('pt-x', now())"),
            alerts: (f"SELECT * FROM {ks}.readings_by_patient_day LIMIT 1",
                     f"SELECT * FROM {ks}.web_sessions LIMIT 1",
                     f"INSERT INTO {ks}.users (username) VALUES ('intruder')"),
        }
        for session, statements in refused.items():
            for statement in statements:
                with pytest.raises(Unauthorized, match=r"(?i)permission"):
                    session.execute(statement)
        # what runs as each role still works
        census.admit(admin, Admission(patient_id="sec-w1", ward="ICU-S", bed="2",
                                      label="2", admitted_ts=now - 3_600_000))
        raised = AlertEvent(alert_id=f"sec-{uuid.uuid4().hex[:8]}", event="raised",
                            patient_id="sec-w1", ward="ICU-S", bed="2", rule="ref_spo2_low",
                            priority=Priority.HIGH, message="SpO2 84 % below 90 %",
                            values={"spo2": 84.0}, onset_ts=now - 10_000, reading_ts=now,
                            detected_ts=now)
        assert AlertStore(stream).raise_alert(raised)  # the stream job's alert sink
        settings = secured.settings("web")
        password = "a long passphrase for the ward"
        create_user(web, "nurse.lee", password, "nurse", actor="admin.ann", via="web")
        result = authenticate(web, settings, "nurse.lee", password, ip="10.0.0.7")
        assert result.ok, result
        start_session(web, "nurse.lee", settings, ip="10.0.0.7", role="nurse")
        add_note(web, "sec-w1", "nurse.lee", "nurse", "turned on the left side")
        ack = Lifecycle(web).acknowledge(raised.alert_id, "nurse.lee", "alerts_page")
        assert ack.ok, ack
        assert not ack.problems, ack.problems
        assert {e.action for e in audit.search(web, day, day, actor="nurse.lee")} >= {
            audit.ALERT_ACKNOWLEDGED}
        # the alert manager's role takes on a raised alert and escalates it when nobody
        # acknowledged it in time (work list, users, lifecycle move, history, audit)
        second = raised.model_copy(update={"alert_id": f"sec-{uuid.uuid4().hex[:8]}"})
        assert AlertStore(stream).raise_alert(second)
        published: list = []
        later = datetime.now(UTC) + timedelta(hours=2)
        manager_settings = secured.settings("alerts").model_copy(
            update={"secret_key": SecretStr(uuid.uuid4().hex)})  # signs e-mail links
        manager = AlertManager(alerts, manager_settings, published.append,
                               clock=lambda: later)
        manager.on_alert_event(second)
        manager.tick()
        assert Lifecycle(web).get(second.alert_id).status == ESCALATED
        assert [e.alert_id for e in published] == [second.alert_id]
    finally:
        for s in (web, stream, alerts, admin):
            s.cluster.shutdown()


def test_tls_with_the_servers_ca_only(secured: Secured) -> None:
    other_ca, _, _ = secure.make_certificates(secured.certs / f"other-{uuid.uuid4().hex}")
    stranger = TlsSettings(ca_file=other_ca)
    # Kafka: a client that trusts another CA, or does not speak TLS, gets nowhere
    devices = secured.settings("devices").kafka
    for cfg in (devices.model_copy(update={"tls": stranger}),
                devices.model_copy(update={"tls": TlsSettings()})):
        with pytest.raises(KafkaError):
            p = KafkaProducer(**kafka_config(cfg, max_block_ms=8000, request_timeout_ms=8000,
                                             bootstrap_timeout_ms=8000))
            try:
                p.send(secured.base.kafka.topic_raw, b"x").get(timeout=8)
            finally:
                p.close(timeout=2)
    # Cassandra: the same
    web = secured.settings("web").cassandra
    for cfg in (web.model_copy(update={"tls": stranger}),
                web.model_copy(update={"tls": TlsSettings()})):
        with pytest.raises(Exception):  # noqa: B017 - the driver wraps the TLS error
            connect(cfg, keyspace=False).cluster.shutdown()
    # with the servers' CA, and the server name checked against the certificate
    assert secured.settings("web").cassandra.tls.check_hostname
    session = connect(web, keyspace=False)
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
        assert row["release_version"].startswith("5.")
    finally:
        session.cluster.shutdown()


def test_the_connector_checks_the_servers_host_name(secured: Secured) -> None:
    """The Spark Cassandra Connector turns the driver's host name check off; the stream
    job's settings put it back on (``HostnameCheckingConnectionFactory``): a server whose
    certificate does not name the host dialled is refused, though its CA is trusted."""
    from streaming.session import spark_session

    stream = secured.settings("stream")
    stream = stream.model_copy(update={"spark": stream.spark.model_copy(
        update={"master": "local[1]"})})
    admin = secured.cql(secure.ADMIN)
    try:
        census.admit(admin, Admission(patient_id="sec-h1", ward="ICU-S", bed="3", label="3",
                                      admitted_ts=int(time.time() * 1000)))
    finally:
        admin.cluster.shutdown()
    relay = Relay(("127.0.0.1", secured.layout.cassandra_port))
    fresh_spark_jvm()
    spark = spark_session(stream, app_name="icu-hostname-check")
    try:
        def count(host: str, port: int, **extra: str) -> int:
            return (spark.read.format("org.apache.spark.sql.cassandra")
                    .options(keyspace=secured.base.cassandra.keyspace, table="admissions",
                             **{"spark.cassandra.connection.host": host,
                                "spark.cassandra.connection.port": str(port)}, **extra)
                    .load().count())

        # the name on the certificate: the stream role reads the census
        assert count("127.0.0.1", secured.layout.cassandra_port) >= 1
        # another name, same server, same trusted CA: refused in the TLS handshake
        with pytest.raises(Exception, match="SSLHandshakeException"):
            count("127.0.0.2", relay.port)
        # the connector's own factory would have taken it (what the check closes)
        assert count("127.0.0.2", relay.port, **{
            "spark.cassandra.connection.factory":
                "com.datastax.spark.connector.cql.DefaultConnectionFactory"}) >= 1
    finally:
        spark.stop()
        relay.close()


def test_the_stream_job_runs_against_the_secured_servers(secured: Secured,
                                                         tmp_path: Path) -> None:
    """The evaluate and persist queries (Spark's Kafka source, the transactional
    publisher, the Spark Cassandra Connector) from the stream role's settings alone,
    with no exception to the production checks."""
    stream = secured.settings("stream")
    stream = stream.model_copy(update={"spark": stream.spark.model_copy(update={
        "checkpoint_dir": tmp_path / "checkpoints", "trigger_seconds": 0.5,
        "persist_trigger_seconds": 1.0})})
    admin = secured.cql(secure.ADMIN)
    now = int(time.time() * 1000)
    census.admit(admin, Admission(patient_id="sec-p1", ward="ICU-S", bed="1", label="1",
                                  admitted_ts=now - 3_600_000))
    job = StreamJob(stream, tmp_path / "stream.log", command=("stream", "run", "--no-risk"))
    try:
        job.start(ready_timeout=240)
        devices = KafkaProducer(**secured.kafka("devices", acks="all"))
        for seq in range(3):
            r = DeviceReading(device_id="mon-sec-p1", seq=seq, patient_id="sec-p1",
                              ward="ICU-S", bed="1", ts=now + seq * 1000,
                              vitals={"hr": 75, "spo2": 97, "rr": 14})
            devices.send(secured.base.kafka.topic_raw, key=b"sec-p1",
                         value=r.model_dump_json().encode())
        devices.flush(10)
        devices.close(timeout=5)
        # the web app's principal reads what the stream job published
        web = KafkaConsumer(secured.base.kafka.topic_validated, **secured.kafka(
            "web", group_id=None, auto_offset_reset="earliest",
            isolation_level="read_committed", consumer_timeout_ms=2000))
        seen: list[dict] = []

        def ours() -> list[int]:
            seen.extend(json.loads(m.value) for m in web)
            return sorted(m["seq"] for m in seen if m.get("patient_id") == "sec-p1")

        try:
            wait_until(lambda: len(ours()) >= 3, timeout=180, interval=0.5,
                       what="validated readings")
        finally:
            web.close()
        assert ours() == [0, 1, 2]
        # and the persist query stored them through the connector (auth + TLS)
        web_db = secured.cql("web")
        try:
            day = datetime.fromtimestamp(now / 1000, UTC).date()
            wait_until(lambda: web_db.execute(
                "SELECT count(*) AS n FROM readings_by_patient_day WHERE patient_id = %s "
                "AND day = %s", ("sec-p1", day)).one()["n"] >= 3,
                timeout=120, what="readings in Cassandra")
        finally:
            web_db.cluster.shutdown()
    except AssertionError:
        print(job.tail(80))
        raise
    finally:
        job.stop()
        admin.cluster.shutdown()
