"""LiveFollower against real Kafka and Cassandra: fill, follow, read_committed, outage.

Fixtures ``services`` (Kafka and Cassandra running) and ``isolated_settings`` (unique
topics, created; a unique keyspace, not yet created) come from tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid

import pytest
from kafka import KafkaProducer

from backend.admission import Admission
from backend.messages import AlertEvent, Priority, ValidatedReading
from backend.settings import Settings
from backend.storage import census
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from backend.storage.readings import ReadingStore
from backend.vitals import Vital
from webapp.live.follower import LiveFollower
from webapp.live.state import WardState

pytestmark = pytest.mark.integration

WARD = "ICU-T"


def wait_for(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def reading(bed: str, hr: float, t: float | None = None) -> ValidatedReading:
    t = time.time() if t is None else t
    carried = {Vital.HR: hr, Vital.SPO2: 96.0, Vital.RR: 15.0}
    return ValidatedReading(
        patient_id=f"pt-{bed}", ward=WARD, bed=bed, device_id=f"mon-{bed}", seq=int(t * 1000),
        ts=int(t * 1000), vitals=dict(carried), carried=carried, news2=1, news2_band="low",
        news2_complete=True, processed_ts=int(time.time() * 1000),
    )


def alert_event(bed: str, event: str, t: float) -> AlertEvent:
    ms = int(t * 1000)
    return AlertEvent(
        alert_id=f"a-{bed}", event=event, patient_id=f"pt-{bed}", ward=WARD, bed=bed,
        rule="hr_high", priority=Priority.HIGH, message="HR 141 > 130", values={"hr": 141.0},
        onset_ts=ms - 10_000, reading_ts=ms, detected_ts=ms,
    )


@pytest.fixture
def db(services, isolated_settings: Settings):
    """A session on the test's own keyspace with the schema and a two-bed census."""
    session = connect(isolated_settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, isolated_settings)
    session.set_keyspace(isolated_settings.cassandra.keyspace)
    now = int(time.time() * 1000)
    for bed, label in (("1", "Alder"), ("2", "Birch")):
        census.admit(session, Admission(patient_id=f"pt-{bed}", ward=WARD, bed=bed,
                                        label=label, admitted_ts=now))
    yield session
    session.cluster.shutdown()


@pytest.fixture
def follower_factory():
    started: list[LiveFollower] = []

    def make(settings: Settings, **kw) -> tuple[WardState, LiveFollower]:
        state = WardState.from_settings(settings)
        opts = {"backoff_initial_seconds": 0.2, "backoff_max_seconds": 1.0,
                "probe_interval_seconds": 0.5, "probe_timeout_ms": 2000,
                "bootstrap_timeout_ms": 2000, **kw}
        follower = LiveFollower(settings, state, **opts)
        started.append(follower)
        return state, follower.start()

    yield make
    for f in started:
        f.stop(timeout=20)


def test_fill_from_cassandra_then_follow_kafka(db, isolated_settings: Settings,
                                               follower_factory) -> None:
    settings = isolated_settings
    t = time.time()
    ReadingStore(db).write_latest([reading("1", 77.0, t - 2)])
    AlertStore(db).raise_alert(alert_event("2", "raised", t - 2))

    state, follower = follower_factory(settings)
    assert follower.synced.wait(60), follower.last_error
    assert follower.filled.is_set()
    beds = {s.bed: s for s in state.ward_snapshot(WARD)}
    assert set(beds) == {"1", "2"}
    assert beds["1"].label == "Alder" and beds["1"].param(Vital.HR).value == 77.0
    assert [a.alert_id for a in beds["2"].alarms] == ["a-2"]
    assert beds["2"].no_data  # in the census, never sent a reading
    assert state.delayed_since is None

    k = settings.kafka
    producer = KafkaProducer(bootstrap_servers=k.bootstrap,
                             transactional_id=f"test-live-{uuid.uuid4().hex[:8]}",
                             enable_idempotence=True, acks="all")
    try:
        producer.init_transactions()
        # An aborted transaction is never seen by a read_committed consumer.
        producer.begin_transaction()
        producer.send(k.topic_validated, key=b"pt-1",
                      value=reading("1", 5.0).model_dump_json().encode())
        producer.abort_transaction()
        # A committed one shows within 2 s.
        producer.begin_transaction()
        producer.send(k.topic_validated, key=b"pt-1",
                      value=reading("1", 111.0).model_dump_json().encode())
        producer.send(k.topic_alerts, key=b"pt-2",
                      value=alert_event("2", "cleared", time.time()).model_dump_json().encode())
        producer.commit_transaction()
        committed = time.monotonic()
        assert wait_for(lambda: state.bed_snapshot(WARD, "1").param(Vital.HR).value == 111.0,
                        timeout=2.0), "reading not shown within 2 s"
        assert time.monotonic() - committed < 2.0
        assert wait_for(lambda: state.alarm("a-2") is None, timeout=2.0)
        assert all(p.hr != 5.0 for p in state.bed_snapshot(WARD, "1").trend)
        # A plain (non-transactional) publish works as well.
        plain = KafkaProducer(bootstrap_servers=k.bootstrap, acks="all")
        plain.send(k.topic_validated, value=reading("2", 88.0).model_dump_json().encode())
        plain.flush()
        plain.close()
        assert wait_for(lambda: state.bed_snapshot(WARD, "2").param(Vital.HR).value == 88.0,
                        timeout=2.0)
    finally:
        producer.close()
    assert follower.counts["bad"] == 0


def test_readings_not_yet_in_cassandra_are_replayed_from_kafka(
        db, isolated_settings: Settings, follower_factory) -> None:
    """Cassandra trails Kafka by the persist query's interval: a reading published a few
    seconds before the screen starts, and not yet stored, is shown; one older than the
    replay window is not replayed (Cassandra has it by then)."""
    settings = isolated_settings.model_copy(update={
        "web": isolated_settings.web.model_copy(update={"live_replay_seconds": 5.0})})
    k = settings.kafka
    now = time.time()
    ReadingStore(db).write_latest([reading("1", 70.0, now - 10)])
    producer = KafkaProducer(bootstrap_servers=k.bootstrap, acks="all")
    producer.send(k.topic_validated, timestamp_ms=int((now - 8) * 1000),
                  value=reading("2", 60.0, now - 8).model_dump_json().encode())
    producer.send(k.topic_validated, timestamp_ms=int((now - 1) * 1000),
                  value=reading("1", 99.0, now - 1).model_dump_json().encode())
    producer.flush()
    producer.close()

    state, follower = follower_factory(settings)
    assert follower.synced.wait(60), follower.last_error
    assert wait_for(lambda: state.bed_snapshot(WARD, "1").param(Vital.HR).value == 99.0,
                    timeout=5.0), "the unstored reading was not replayed"
    assert state.bed_snapshot(WARD, "2").no_data  # outside the window, not in Cassandra


def test_nothing_published_during_the_fill_is_missed(db, isolated_settings: Settings,
                                                     follower_factory, monkeypatch) -> None:
    """A reading committed after the end offsets were recorded but before the follower
    seeks (i.e. during the Cassandra fill) is still applied."""
    settings = isolated_settings
    k = settings.kafka
    producer = KafkaProducer(bootstrap_servers=k.bootstrap, acks="all")
    original_fill = LiveFollower._fill

    def slow_fill(self: LiveFollower) -> bool:
        producer.send(k.topic_validated, value=reading("1", 123.0).model_dump_json().encode())
        producer.flush()
        return original_fill(self)

    monkeypatch.setattr(LiveFollower, "_fill", slow_fill)
    state, follower = follower_factory(settings)
    try:
        assert follower.synced.wait(60), follower.last_error
        assert wait_for(lambda: (s := state.bed_snapshot(WARD, "1")) is not None
                        and s.param(Vital.HR).value == 123.0, timeout=5.0)
    finally:
        producer.close()


class TcpProxy:
    """Forwards a local port to a target; started late to simulate a server coming back."""

    def __init__(self, listen_port: int, target: tuple[str, int]) -> None:
        self.listen_port = listen_port
        self.target = target
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.listen_port))
        server.listen(64)
        server.settimeout(0.2)
        self._server = server
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                self._spawn(self._pipe, a, b)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            # The other direction's pipe may have closed this socket already.
            src.settimeout(0.5)
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for t in self._threads:
            t.join(2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_servers_mark_delayed_then_recover(db, isolated_settings: Settings,
                                                       follower_factory) -> None:
    """Kafka and Cassandra on closed ports: the state is marked delayed and the follower
    keeps retrying without dying; once the ports answer it syncs and clears the mark."""
    settings = isolated_settings
    kafka_host, kafka_port = settings.kafka.bootstrap.split(",")[0].rsplit(":", 1)
    cass_host = settings.cassandra.hosts[0]
    kp, cp = free_port(), free_port()
    unreachable = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{kp}"}),
        "cassandra": settings.cassandra.model_copy(update={"hosts": ["127.0.0.1"],
                                                           "port": cp}),
    })
    ReadingStore(db).write_latest([reading("1", 70.0)])
    state, follower = follower_factory(unreachable)
    assert wait_for(lambda: state.delayed_since is not None, timeout=30)
    time.sleep(2)  # a few failed retries
    assert follower.running and not follower.synced.is_set()
    assert state.delayed_since is not None

    proxies = [TcpProxy(kp, (kafka_host, int(kafka_port))),
               TcpProxy(cp, (cass_host, settings.cassandra.port))]
    for p in proxies:
        p.start()
    try:
        assert follower.synced.wait(60), follower.last_error
        assert follower.filled.wait(60), follower.last_error
        assert wait_for(lambda: state.delayed_since is None, timeout=30), state.delayed_sources
        assert state.bed_snapshot(WARD, "1").param(Vital.HR).value == 70.0
    finally:
        follower.stop(timeout=20)
        for p in proxies:
            p.stop()


def short_threshold(settings: Settings, seconds: float) -> Settings:
    return settings.model_copy(update={
        "alerting": settings.alerting.model_copy(update={"stale_after_seconds": seconds})})


class Publisher:
    """Publishes to a topic every ``interval`` seconds on its own thread (the devices)."""

    def __init__(self, settings: Settings, topic: str, interval: float = 0.1) -> None:
        self.producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
        self.topic = topic
        self.interval = interval
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Publisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            # The follower never reads these, it only counts them by their offsets.
            self.producer.send(self.topic, value=b'{"device_id": "mon-1"}')
            self.producer.flush()
            self.sent += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.producer.close()


def test_a_stalled_stream_marks_delayed_then_recovers_by_itself(
        db, isolated_settings: Settings, follower_factory, caplog) -> None:
    """Devices keep writing raw, nothing reaches validated (the stream job is down): the
    state is delayed with source "stream" after the stale threshold, and clears by itself
    once validated readings flow again."""
    threshold, probe = 2.0, 0.5
    settings = short_threshold(isolated_settings, threshold)
    k = settings.kafka
    caplog.set_level("INFO", logger="webapp.live.follower")
    state, follower = follower_factory(settings, probe_interval_seconds=probe)
    assert follower.synced.wait(60), follower.last_error
    synced = time.time()
    with Publisher(settings, k.topic_raw) as raw:
        time.sleep(threshold / 2)
        assert state.delayed_since is None  # behind, but not for long enough yet
        # Two probes to see the growth, then the threshold from the sync (no arrival yet).
        assert wait_for(lambda: state.delayed_sources == ("stream",),
                        timeout=threshold + 2 * probe + 2.0), state.delayed_sources
        detected = time.time()
        assert detected - synced <= threshold + 2 * probe + 1.5
        assert raw.sent > 0
        # The stall began when the screens stopped moving: at the start of following.
        assert synced - 1.0 <= state.delayed_since <= synced
        time.sleep(3 * probe)
        assert follower.counts["stalls"] == 1  # once per stall

        # The stream job is back: validated readings flow, the mark clears by itself.
        producer = KafkaProducer(bootstrap_servers=k.bootstrap, acks="all")
        try:
            producer.send(k.topic_validated, value=reading("1", 101.0).model_dump_json().encode())
            producer.flush()
        finally:
            producer.close()
        assert wait_for(lambda: state.delayed_since is None, timeout=3.0), state.delayed_sources
        assert state.bed_snapshot(WARD, "1").param(Vital.HR).value == 101.0
        # Raw keeps growing, validated does not: after the threshold it is behind again.
        assert wait_for(lambda: state.delayed_sources == ("stream",),
                        timeout=threshold + 2 * probe + 2.0)
        assert follower.counts["stalls"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    recoveries = [r.getMessage() for r in caplog.records
                  if r.levelname == "INFO" and "recovered, stream" in r.getMessage()]
    assert len([m for m in warnings if "delayed, stream" in m]) == 2
    assert len(recoveries) == 1 and recoveries[0].endswith(" s")
    assert not any("pt-" in m for m in warnings + recoveries)  # no patient ids


def test_a_silent_ward_is_never_delayed(db, isolated_settings: Settings,
                                        follower_factory) -> None:
    """Neither raw nor validated moves (no device sends), only the job's clock ticks:
    the stream is not behind, whatever the time."""
    threshold, probe = 1.0, 0.5
    settings = short_threshold(isolated_settings, threshold)
    state, follower = follower_factory(settings, probe_interval_seconds=probe)
    assert follower.synced.wait(60), follower.last_error
    with Publisher(settings, settings.kafka.topic_ticks, interval=0.2) as ticks:
        seen = []
        deadline = time.monotonic() + threshold + 8 * probe
        while time.monotonic() < deadline:
            seen.append(state.delayed_since)
            time.sleep(0.05)
    assert ticks.sent > 0
    assert set(seen) == {None} and follower.counts["stalls"] == 0
    assert follower.running and follower.last_error is None
