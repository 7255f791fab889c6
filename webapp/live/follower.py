"""Feeds a ``WardState``: Cassandra first, then Kafka, on one background thread.

One ``LiveFollower`` runs per web process (see ``webapp.live.live_state``); every ward
screen of that process is served from its state, so the number of screens never adds
load on Cassandra or Kafka.

Start-up and every reconnect run the same *sync*:

1. connect a consumer (``isolation_level="read_committed"``, manual assignment, no
   consumer group, no commits) and record where to start: for ``alerts.events`` its end
   offsets, for ``vitals.validated`` the offsets of ``settings.web.live_replay_seconds``
   ago;
2. fill the state from Cassandra: the census, ``latest_by_ward`` and the active alerts;
3. assign the partitions and seek to the offsets recorded in 1.

An alert is in Cassandra before its event is published, so whatever the pipeline
publishes during the fill is at or after the recorded end offsets. Readings reach
Cassandra a few seconds after Kafka (the stream job's persist query runs every
``SparkSettings.persist_trigger_seconds``), so the last ``live_replay_seconds`` of
readings are replayed on top of the fill. Applying a reading or an alert event twice
changes nothing, and a reading older than the one shown is ignored, so the overlap is
harmless and nothing between fill and follow is missed.

Health: when Kafka cannot be reached (no bootstrap, no metadata, a failing poll or an
end-offset probe timing out while no records arrive) or a Cassandra query fails, the
state is marked delayed (``WardState.delayed_since``) and the follower retries with
exponential backoff; it clears the mark itself once it has synced again. It never lets
an exception out of its thread.

Stream stall: every probe interval the follower also reads the end offsets of
``vitals.raw`` (without consuming it). When raw grows but no validated record has arrived
for ``alerting.stale_after_seconds``, the stream job is behind: the state is marked
delayed with source "stream" from the last arrival on, until validated records flow again
(``webapp.live.stall``). Replayed records (before the end offsets of the last sync) are
not a sign of flow.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from backend.messages import AlertEvent, ValidatedReading
from backend.settings import Settings
from webapp.live.stall import STREAM, Change, StallDetector
from webapp.live.state import WardState

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Any]
KAFKA = "kafka"
CASSANDRA = "cassandra"


class LiveFollower:
    def __init__(
        self,
        settings: Settings,
        state: WardState,
        *,
        poll_timeout_ms: int = 500,
        probe_interval_seconds: float = 2.0,
        probe_timeout_ms: int = 3000,
        census_refresh_seconds: float = 30.0,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 10.0,
        cassandra_timeout_seconds: float = 5.0,
        bootstrap_timeout_ms: int = 5000,
        extra_handlers: Mapping[str, Handler] | None = None,
        consumer_factory: Callable[[], Any] | None = None,
        session_factory: Callable[[], Any] | None = None,
    ) -> None:
        """``extra_handlers`` maps more topics (e.g. ``alerts.lifecycle``) to a function
        of the message value. The factories replace the real Kafka consumer / Cassandra
        session (tests)."""
        self.settings = settings
        self.state = state
        k = settings.kafka
        self.handlers: dict[str, Handler] = {
            k.topic_validated: self._on_reading,
            k.topic_alerts: self._on_alert,
            **(extra_handlers or {}),
        }
        self.poll_timeout_ms = poll_timeout_ms
        self.probe_interval = probe_interval_seconds
        self.probe_timeout_ms = probe_timeout_ms
        self.census_refresh = census_refresh_seconds
        self.backoff_initial = backoff_initial_seconds
        self.backoff_max = backoff_max_seconds
        self.cassandra_timeout = cassandra_timeout_seconds
        self.bootstrap_timeout_ms = bootstrap_timeout_ms
        self._consumer_factory = consumer_factory or self._make_consumer
        self._session_factory = session_factory or self._make_session
        self._consumer: Any = None
        self._partitions: list[Any] = []
        self._raw_partitions: list[Any] = []
        # Validated partitions' end offsets at the last sync: below them is replay.
        self._replay_end: dict[Any, int] = {}
        self._stall: StallDetector | None = None  # from the first sync on
        self._session: Any = None
        self._cluster: Any = None
        self._stores: tuple[Any, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fill_pending = False
        self._cassandra_backoff = backoff_initial_seconds
        self._next_cassandra = 0.0
        # Observable progress (tests, a status page).
        self.synced = threading.Event()  # set after the first complete sync
        self.filled = threading.Event()  # set after the first complete Cassandra fill
        self.last_error: str | None = None
        self.counts = {"readings": 0, "alerts": 0, "other": 0, "bad": 0, "syncs": 0,
                       "fills": 0, "stalls": 0}

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> LiveFollower:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="icu-live-follower",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        backoff = self.backoff_initial
        try:
            while not self._stop.is_set():
                try:
                    self._sync()
                    backoff = self.backoff_initial
                    self._follow()
                except Exception as exc:  # the thread must survive anything
                    self._failed(KAFKA, exc)
                    self._close_consumer()
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
        finally:
            self._close_consumer()
            self._close_session()

    # ---------------------------------------------------------------- kafka

    def _make_consumer(self) -> Any:
        from kafka import KafkaConsumer

        from backend.clients import kafka_config

        return KafkaConsumer(**kafka_config(
            self.settings.kafka,
            client_id="icu-web-live",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="latest",
            bootstrap_timeout_ms=self.bootstrap_timeout_ms,
            request_timeout_ms=max(10_000, self.probe_timeout_ms + 1000),
            reconnect_backoff_max_ms=2000,
        ))

    def _topic_partitions(self, consumer: Any) -> list[Any]:
        from kafka.structs import TopicPartition

        tps = []
        for topic in self.handlers:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise RuntimeError(f"no metadata for topic {topic}")
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        return tps

    def _sync(self) -> None:
        if self._consumer is None:
            self._consumer = self._consumer_factory()
        consumer = self._consumer
        tps = self._topic_partitions(consumer)
        starts = consumer.end_offsets(tps, timeout_ms=self.probe_timeout_ms)
        readings = [tp for tp in tps if tp.topic == self.settings.kafka.topic_validated]
        self._replay_end = {tp: starts[tp] for tp in readings}
        if readings:
            since = int(time.time() * 1000 - self.settings.web.live_replay_seconds * 1000)
            found = consumer.offsets_for_times({tp: since for tp in readings},
                                               timeout_ms=self.probe_timeout_ms)
            for tp in readings:
                if found.get(tp) is not None:
                    starts[tp] = found[tp].offset
        if self._fill():
            self._fill_pending = False
        else:
            self._fill_pending = True
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        self._partitions = tps
        self._raw_partitions = self._raw_topic_partitions(consumer)
        if self._stall is None:
            self._stall = StallDetector(self.settings.alerting.stale_after_seconds,
                                        clock=self.state.clock)
        else:
            self._stall.rebase()
        self.counts["syncs"] += 1
        self.state.mark_recovered(KAFKA)
        self.synced.set()
        log.info("live follower synced (%d partitions)", len(tps))

    def _raw_topic_partitions(self, consumer: Any) -> list[Any]:
        """The raw topic's partitions, probed for a stall but never consumed; none (no
        stall detection) if it has no metadata: the live view does not need it."""
        from kafka.structs import TopicPartition

        topic = self.settings.kafka.topic_raw
        try:
            parts = consumer.partitions_for_topic(topic)
        except Exception as exc:
            parts, reason = None, f"{type(exc).__name__}: {exc}"
        else:
            reason = "no metadata"
        if not parts:
            log.warning("no stream stall detection: topic %s: %s", topic, reason)
            return []
        return [TopicPartition(topic, p) for p in sorted(parts)]

    def _follow(self) -> None:
        consumer = self._consumer
        validated = self.settings.kafka.topic_validated
        next_probe = time.monotonic() + self.probe_interval
        next_raw = time.monotonic() + self.probe_interval
        next_census = time.monotonic() + self.census_refresh
        while not self._stop.is_set():
            batch = consumer.poll(timeout_ms=self.poll_timeout_ms)
            received = flowed = False
            for tp, records in batch.items():
                handler = self.handlers.get(tp.topic)
                for record in records:
                    received = True
                    self._handle(handler, record.value)
                # Once per partition and poll, not per record (the hot path).
                if (records and tp.topic == validated
                        and records[-1].offset >= self._replay_end.get(tp, 0)):
                    flowed = True
            if flowed:
                self._stream_flowed()
            now = time.monotonic()
            if received:
                next_probe = now + self.probe_interval
            elif now >= next_probe:
                # Nothing came in: make sure that is because nothing was published.
                consumer.end_offsets(self._partitions, timeout_ms=self.probe_timeout_ms)
                next_probe = time.monotonic() + self.probe_interval
            if now >= next_raw:
                self._probe_raw(consumer)
                next_raw = time.monotonic() + self.probe_interval
            if self._fill_pending and now >= self._next_cassandra:
                self._fill_pending = not self._fill()
            elif now >= next_census:
                self._refresh_census()
                next_census = time.monotonic() + self.census_refresh

    def _handle(self, handler: Handler | None, value: bytes | None) -> None:
        if handler is None or value is None:
            return
        try:
            handler(value)
        except (ValidationError, ValueError, KeyError) as exc:
            self.counts["bad"] += 1
            log.warning("live follower skipped a malformed message: %s", exc)

    def _on_reading(self, value: bytes) -> None:
        self.state.apply_reading(ValidatedReading.model_validate_json(value))
        self.counts["readings"] += 1

    def _on_alert(self, value: bytes) -> None:
        self.state.apply_alert(AlertEvent.model_validate_json(value))
        self.counts["alerts"] += 1

    def _close_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close(autocommit=False, timeout_ms=1000)
            except TypeError:
                consumer.close()
            except Exception as exc:
                log.debug("closing the consumer failed: %s", exc)

    # ---------------------------------------------------------------- cassandra

    def _make_session(self) -> Any:
        from backend.storage.cassandra import make_cluster

        cfg = self.settings.cassandra
        _check_reachable(cfg.hosts, cfg.port, timeout=min(2.0, self.cassandra_timeout))
        # Short timeouts: this thread also follows Kafka and must not stall on a query.
        cluster = make_cluster(cfg, request_timeout=self.cassandra_timeout)
        try:
            session = cluster.connect(cfg.keyspace)
        except Exception:
            cluster.shutdown()
            raise
        self._cluster = cluster
        return session

    def _stores_for_session(self) -> tuple[Any, Any]:
        from backend.storage.alerts import AlertStore
        from backend.storage.readings import ReadingStore
        from backend.storage.statements import store

        if self._session is None:
            self._session = self._session_factory()
            self._stores = None
        if self._stores is None:
            self._stores = (store(ReadingStore, self._session), store(AlertStore, self._session))
        return self._stores

    def _fill(self) -> bool:
        """Fill every ward from Cassandra; ``False`` (state marked delayed) on failure."""
        from backend.storage import census

        try:
            readings, alerts = self._stores_for_session()
            session = self._session
            for ward in sorted(set(census.wards(session)) | set(self.state.wards())):
                self.state.load_ward(
                    ward,
                    beds=census.beds(session, ward),
                    latest=readings.latest_for_ward(ward),
                    alerts=alerts.active_for_ward(ward),
                )
        except Exception as exc:
            self._cassandra_failed(exc)
            return False
        self._cassandra_ok()
        self.counts["fills"] += 1
        self.filled.set()
        return True

    def _refresh_census(self) -> None:
        """Admissions and discharges since the fill (labels, who lies where)."""
        from backend.storage import census

        try:
            self._stores_for_session()
            session = self._session
            for ward in sorted(set(census.wards(session)) | set(self.state.wards())):
                self.state.load_ward(ward, beds=census.beds(session, ward))
        except Exception as exc:
            self._cassandra_failed(exc)
            self._fill_pending = True  # refill everything once it is back
            return
        self._cassandra_ok()

    def _cassandra_failed(self, exc: BaseException) -> None:
        self._failed(CASSANDRA, exc)
        self._close_session()
        self._next_cassandra = time.monotonic() + self._cassandra_backoff
        self._cassandra_backoff = min(self._cassandra_backoff * 2, self.backoff_max)

    def _cassandra_ok(self) -> None:
        self._cassandra_backoff = self.backoff_initial
        self.state.mark_recovered(CASSANDRA)

    def _close_session(self) -> None:
        cluster, self._cluster = self._cluster, None
        self._session = None
        self._stores = None
        if cluster is not None:
            try:
                cluster.shutdown()
            except Exception as exc:
                log.debug("closing the Cassandra cluster failed: %s", exc)

    # ---------------------------------------------------------------- health

    def _probe_raw(self, consumer: Any) -> None:
        """Feed the raw topic's end offsets to the stall detector. A failed probe skips
        one round: the live view does not depend on the raw topic."""
        if self._stall is None or not self._raw_partitions:
            return
        try:
            ends = consumer.end_offsets(self._raw_partitions, timeout_ms=self.probe_timeout_ms)
        except Exception as exc:
            log.debug("raw end-offset probe failed: %s", exc)
            return
        change, stall = self._stall.raw_probed(sum(ends.values()))
        if change is Change.BEGAN and stall is not None:
            self.counts["stalls"] += 1
            self.state.mark_delayed(STREAM, at=stall.since)
            log.warning("live data delayed, stream: %s keeps growing but nothing reached %s "
                        "for %.0f s (stream job down or stalled)",
                        self.settings.kafka.topic_raw, self.settings.kafka.topic_validated,
                        self.state.clock() - stall.since)

    def _stream_flowed(self) -> None:
        if self._stall is None:
            return
        change, stall = self._stall.validated()
        if change is Change.ENDED and stall is not None:
            self.state.mark_recovered(STREAM)
            log.info("live data recovered, stream: %s flows again after %.0f s",
                     self.settings.kafka.topic_validated, stall.seconds or 0.0)

    def _failed(self, source: str, exc: BaseException) -> None:
        self.state.mark_delayed(source)
        message = f"{source}: {type(exc).__name__}: {exc}"
        if message != self.last_error:
            log.warning("live data delayed, %s (retrying)", message)
        self.last_error = message


def _check_reachable(hosts: list[str], port: int, timeout: float) -> None:
    """Fail fast (and quietly) while no Cassandra host accepts connections: building a
    ``Cluster`` against a dead server logs a driver traceback on every retry."""
    errors = []
    for host in hosts:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc}")
    raise ConnectionError("; ".join(errors) or "no Cassandra host configured")
