"""The fault campaign: the whole platform under a steady paced load, one part killed at a
time (SIGKILL, no clean shutdown) and brought back, and afterwards every reading, alert,
e-mail and dead letter counted against what the devices sent.

What runs (each a real process, as in production):

* Kafka and Cassandra: the replicated set (``ops.cluster``: 3 brokers, 3 nodes) whose
  client settings the caller passes (its ``cache_dir`` and ``cluster`` locate the
  members);
* Spark: a standalone master and two workers (``ops.spark_cluster``), the stream job
  (``icu stream run``) submitted to it;
* ``icu alerts manager``, ``icu mail catcher`` (the SMTP server, keeping each message as
  a file), ``icu web run`` with one ward screen polling it over HTTP as a browser does
  (``harness.ward_screen``);
* the load: ``devices.generator`` patients with deterioration scenarios at 1 Hz, about
  1 % of the records made malformed (``devices.faults``), sent by
  ``devices.publisher`` (acks=all, idempotent) paced in real time.

The faults, in order (``FAULTS``): the Kafka broker that is the active KRaft controller,
a Cassandra node (the clients' first contact point), a Spark worker, the stream driver,
the alert manager, the web app, the SMTP server. Each is killed, left down for its
``down`` time (the driver longer than the stale threshold, so the ward screens must show
"data delayed"; SMTP 60 s), started again as an operator (or systemd) would, and the
campaign waits until the platform has recovered (``Fault.recovered``) before the next.

The oracle (``verify``) is independent of the pipeline's own bookkeeping:

* every record sent is on ``vitals.raw`` once and stored once in ``raw_messages``;
* every raw record comes out exactly once: on ``vitals.validated`` (read committed) or as
  a whole-record dead letter, never both, never twice; well-formed records are never
  dead-lettered; every accepted reading is in ``readings_by_patient_day`` once, its
  minute in ``readings_by_patient_minute``, each bed's newest reading in
  ``latest_by_ward``;
* the alerts raised are exactly those the domain's pure evaluation
  (``backend.validation`` + ``backend.alerting.evaluation``) gives for the records sent,
  each raised once on ``alerts.events`` and stored;
* every e-mail due (the raise, per ``email_on_raise``; each escalation) arrived exactly
  once per recipient, and no other;
* the ward screen showed "data delayed" during every outage of the live data longer than
  the stale threshold, and cleared it by itself.

Loss and duplication are attributed to the fault whose window (its kill up to the next
fault's kill) holds the reading's device time.
"""

from __future__ import annotations

import calendar
import json
import os
import secrets
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from itertools import pairwise
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaConsumer
from pydantic import SecretStr

from backend.settings import Settings
from harness.mailbox import free_port
from harness.process import IcuProcess, StreamJob
from harness.topics import consume_all, end_offsets
from harness.ward_screen import WardScreen

FAULTS = ("kafka-broker", "cassandra-node", "spark-worker", "stream-driver",
          "alert-manager", "web-app", "smtp")
SCENARIOS = {"sepsis": 2, "desaturation": 2, "tachycardia": 2, "hypotension": 1,
             "motion_artefact": 1}  # per 24 patients; the rest stable
RECIPIENTS = {"nurse": ["nurses@campaign.test", "ward-desk@campaign.test"],
              "charge_nurse": ["charge@campaign.test"],
              "physician": ["doctors@campaign.test"]}
# what each kind of malformed record (devices.faults) must become: a whole-record dead
# letter with this reason, or (None) an accepted reading with the value dead-lettered
DEAD_LETTER_REASON = {"bad_json": "malformed_json", "missing_field": "schema_violation",
                      "future_ts": "future_timestamp", "duplicate_seq": "duplicate",
                      "impossible_value": None}
FRESH_SECONDS = 5.0  # live data is "flowing again" when the newest reading is this young


@dataclass(frozen=True)
class CampaignPlan:
    patients: int = 24
    fault_fraction: float = 0.01
    faults: tuple[str, ...] = FAULTS
    down_seconds: float = 20.0
    driver_down_seconds: float = 45.0  # above the 30 s stale threshold: banner expected
    smtp_down_seconds: float = 60.0
    settle_seconds: float = 15.0  # steady load after each recovery
    lead_seconds: float = 30.0  # steady load before the first fault
    # deterioration starts this many seconds into the load: alarms during the faults
    onset_range_s: tuple[float, float] = (10.0, 150.0)
    recover_timeout: float = 300.0
    drain_timeout: float = 300.0
    seed: int = 7


@dataclass
class FaultRecord:
    """What happened to one fault; times in seconds from the kill."""

    fault: str
    member: str
    killed_at: float  # epoch seconds
    down_s: float = 0.0
    restart_s: float = 0.0  # start command until it answered
    recovered_s: float | None = None  # kill until the platform recovered (see ``_recovered``)
    max_reading_delay_s: float = 0.0  # worst device -> read from vitals.validated
    # after the kill, the last reading that arrived FRESH_SECONDS or more after it was
    # measured (0: none was late): how long the screens were behind
    late_until_s: float = 0.0
    live_gap_s: float = 0.0  # longest stretch with no reading reaching the topic
    banner_seen: bool = False
    banner_cleared: bool | None = None
    notes: list[str] = field(default_factory=list)


class LiveProbe(threading.Thread):
    """Follows ``vitals.validated`` (read committed) for the whole campaign: when each
    reading arrived, so recovery and the longest live gap can be measured."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="campaign-probe", daemon=True)
        self.settings = settings
        self.stop = threading.Event()
        self.arrivals: list[tuple[float, int, int]] = []  # (arrival, device ts, processed)
        self.newest_ts = 0

    def run(self) -> None:
        consumer = KafkaConsumer(
            self.settings.kafka.topic_validated, bootstrap_servers=self.settings.kafka.bootstrap,
            auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
            isolation_level="read_committed", consumer_timeout_ms=500)
        try:
            while not self.stop.is_set():
                for m in consumer:
                    d = json.loads(m.value)
                    now = time.time()
                    self.arrivals.append((now, d["ts"], d.get("processed_ts") or 0))
                    self.newest_ts = max(self.newest_ts, d["ts"])
                    if self.stop.is_set():
                        break
        finally:
            consumer.close()

    def fresh(self) -> bool:
        return time.time() - self.newest_ts / 1000 < FRESH_SECONDS


class ScreenWatch(threading.Thread):
    """One ward screen polled every second; each poll's outcome kept. It signs in again
    only when the app says the session is gone, as a person at the screen would have to."""

    def __init__(self, base: str, username: str, password: str, ward: str) -> None:
        super().__init__(name="campaign-screen", daemon=True)
        self.args = (base, username, password, ward)
        self.stop = threading.Event()
        self.samples: list[tuple[float, bool, bool, str]] = []  # (t, ok, delayed, text)
        self.sign_ins = 0
        self.screen: WardScreen | None = None

    def run(self) -> None:
        while not self.stop.wait(1.0):
            now = time.time()
            try:
                if self.screen is None:
                    self.screen = WardScreen(*self.args)
                    self.screen.login(timeout=10)
                    self.sign_ins += 1
                r = self.screen.tick(timeout=10)
                ok = r.status_code in (200, 204)
                if r.status_code in (401, 403):
                    self.screen = None
                self.samples.append((now, ok, ok and self.screen is not None
                                     and self.screen.delayed,
                                     self.screen.banner_text if self.screen else ""))
            except Exception as exc:  # the web app is down: what a browser would see
                if not isinstance(exc, requests.ConnectionError):
                    self.screen = None
                self.samples.append((now, False, False, type(exc).__name__))

    def ok_since(self, t: float) -> bool:
        return any(s[0] > t and s[1] for s in self.samples[-3:])


class Campaign:
    def __init__(self, settings: Settings, plan: CampaignPlan, work: Path,
                 log: Callable[[str], None] = print) -> None:
        """``settings``: the replicated set's client settings, isolated (topics and a
        keyspace of the run's own); this adds Spark, SMTP, web and alert-manager
        settings of its own."""
        self.plan = plan
        self.work = work
        self.log = log
        self.mail_dir = work / "mail"
        self.settings = platform_settings(settings)
        self.sent: list[Any] = []  # devices.wire.Outgoing, in send order
        self.faults: list[FaultRecord] = []
        self.started_at = 0.0
        self.load_ended_at = 0.0
        self._stop_load = threading.Event()
        self.procs: dict[str, IcuProcess] = {}
        self.screen_user = ("campaign-screen", secrets.token_urlsafe(16))
        self.plans: list[Any] = []
        self.publish_stats: Any = None
        self._expected: dict[str, dict] | None = None

    # ------------------------------------------------------------------ set-up

    def _t(self) -> str:
        return f"{time.time() - self.started_at:6.1f}s" if self.started_at else "  set-up"

    def say(self, text: str) -> None:
        self.log(f"[{self._t()}] {text}")

    def setup(self) -> None:
        from backend.auth_policy import Role
        from backend.storage import census
        from backend.storage.cassandra import connect
        from backend.storage.migrate import migrate
        from backend.users import create_user
        from devices.generator import GeneratorConfig, plan_patients
        from ops.spark_cluster import start_spark

        s = self.settings
        self.db = connect(s.cassandra, keyspace=False, wait_seconds=60)
        migrate(self.db, s)
        self.db.set_keyspace(s.cassandra.keyspace)
        self.start_ms = int(time.time() * 1000) + 3_600_000  # set when the load starts
        scale = max(1, self.plan.patients // 24)
        self.gen_cfg = GeneratorConfig(
            start_ms=0, patients=self.plan.patients, wards=1, rate_hz=1.0,
            seed=self.plan.seed, id_prefix="fc", onset_range_s=self.plan.onset_range_s,
            scenario_mix={k: v * scale for k, v in SCENARIOS.items()})
        self.plans = plan_patients(self.gen_cfg)
        admitted = int(time.time() * 1000) - 3_600_000
        for p in self.plans:
            census.admit(self.db, p.admission(admitted))
        self.census = {p.patient_id: p.admission(admitted) for p in self.plans}
        self.ward = self.plans[0].ward
        create_user(self.db, self.screen_user[0], self.screen_user[1], Role.NURSE,
                    "Campaign ward screen", actor="campaign", via="campaign")
        t = time.monotonic()
        start_spark(s, timeout=180)
        self.say(f"Spark master and workers up in {time.monotonic() - t:.1f} s")
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.procs = {
            "smtp": IcuProcess(s, ["mail", "catcher", "--dir", str(self.mail_dir)],
                               self.work / "smtp.log", "mail catcher on"),
            "alert-manager": IcuProcess(s, ["alerts", "manager"], self.work / "manager.log",
                                        "alert manager running"),
            "stream-driver": StreamJob(s, self.work / "stream.log"),
            "web-app": IcuProcess(s, ["web", "run"], self.work / "web.log",
                                  "web app listening"),
        }
        for name, proc in self.procs.items():
            took = proc.start(300)
            self.say(f"{name} ready in {took:.1f} s")
        self._wait_http(60)
        self.probe = LiveProbe(s)
        self.probe.start()
        self.screen = ScreenWatch(f"http://127.0.0.1:{s.web.port}", *self.screen_user,
                                  self.ward)
        self.screen.start()

    def _wait_http(self, timeout: float) -> float:
        t0 = time.monotonic()
        url = f"http://127.0.0.1:{self.settings.web.port}/login"
        while time.monotonic() - t0 < timeout:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the web app does not answer on {url}")

    # ------------------------------------------------------------------ load

    def _records(self) -> Iterator[Any]:
        from dataclasses import replace

        from devices.faults import inject
        from devices.generator import generate

        cfg = replace(self.gen_cfg, start_ms=self.start_ms)
        for rec in inject(generate(cfg, self.plans), self.plan.fault_fraction,
                          seed=self.plan.seed):
            if self._stop_load.is_set():
                return
            self.sent.append(rec)
            yield rec

    def _load(self) -> None:
        self.publish_stats = publish_paced(self.settings, self._records())

    # ------------------------------------------------------------------ faults

    def run(self) -> list[FaultRecord]:
        self.start_ms = int(time.time() * 1000) + 2000
        self.started_at = self.start_ms / 1000
        loader = threading.Thread(target=self._load, name="campaign-load", daemon=True)
        loader.start()
        # faults start on a warm pipeline: the first micro-batches of a new Spark
        # application (executors' Python workers, the connector's sessions) are slow
        t = time.monotonic()
        while not self.probe.fresh() and time.monotonic() - t < self.plan.recover_timeout:
            time.sleep(0.5)
        self.say(f"live data fresh {time.monotonic() - t:.1f} s after the load started")
        time.sleep(self.plan.lead_seconds)
        for name in self.plan.faults:
            record = self._inject(name)
            self.faults.append(record)
            self.say(f"{name}: recovered after {record.recovered_s} s; "
                     f"{'; '.join(record.notes)}")
            time.sleep(self.plan.settle_seconds)
        self._stop_load.set()
        loader.join(self.plan.drain_timeout)
        self.load_ended_at = time.time()
        self.say(f"load stopped: {len(self.sent)} records sent, {self.publish_stats}")
        return self.faults

    def _inject(self, name: str) -> FaultRecord:
        from ops import cluster, spark_cluster

        s = self.settings
        down = {"stream-driver": self.plan.driver_down_seconds,
                "smtp": self.plan.smtp_down_seconds}.get(name, self.plan.down_seconds)
        if name == "kafka-broker":
            member = f"kafka-{cluster.quorum_leader(s)}"
            pid = cluster.member_pid(s, member)
            start: Callable[[], Any] = lambda: cluster.start_member(s, member, timeout=240)  # noqa: E731
        elif name == "cassandra-node":
            member = "cassandra-1"
            pid = cluster.member_pid(s, member)
            start = lambda: cluster.start_member(s, member, timeout=240)  # noqa: E731
        elif name == "spark-worker":
            member = "spark-worker-1"
            pid = spark_cluster.worker_pids(s)[0]
            start = lambda: spark_cluster.start_spark(s, timeout=180)  # noqa: E731
        else:
            member = name
            proc = self.procs[name]
            pid = proc.pid
            start = lambda: proc.start(300)  # noqa: E731
        if pid is None:
            raise AssertionError(f"{member} is not running before its fault")
        record = FaultRecord(name, member, killed_at=time.time())
        self.say(f"SIGKILL {member} (pid {pid})")
        if name in self.procs:
            self.procs[name].kill()  # the whole process group, Spark's Python workers too
        else:
            os.kill(pid, signal.SIGKILL)
        time.sleep(down)
        record.down_s = round(time.time() - record.killed_at, 1)
        t = time.monotonic()
        start()
        if name == "web-app":
            self._wait_http(60)
        record.restart_s = round(time.monotonic() - t, 1)
        self.say(f"{member} started again, answering after {record.restart_s} s")
        restarted = time.time()
        deadline = time.monotonic() + self.plan.recover_timeout
        while time.monotonic() < deadline:
            if self._recovered(name, restarted):
                record.recovered_s = round(time.time() - record.killed_at, 1)
                break
            time.sleep(0.5)
        else:
            record.notes.append(f"not recovered within {self.plan.recover_timeout:.0f} s")
            self._diagnose(record)
        return record

    def _diagnose(self, record: FaultRecord) -> None:
        """What the parts were doing when the platform did not recover: which had
        exited, the stream job's last words and where its threads wait."""
        for name, proc in self.procs.items():
            if not proc.alive():
                record.notes.append(f"{name} had exited ({proc.proc.returncode})")
        job = self.procs["stream-driver"]
        last = [line for line in job.text().splitlines()[-400:] if "py4j" not in line]
        self.say("the stream job's log, last lines:\n" + "\n".join(last[-25:]))
        if isinstance(job, StreamJob) and job.alive():
            self.say("the stream job's threads:\n" + job.stacks())

    def _recovered(self, name: str, restarted: float) -> bool:
        """The platform is whole again after fault ``name``: the live data is fresh, and
        for the mail path every e-mail due so far has arrived; for the web app the screen
        is served again."""
        if not self.probe.fresh():
            return False
        if name == "web-app":
            return self.screen.ok_since(restarted)
        if name in ("smtp", "alert-manager"):
            due = self.expected_mail()
            return due <= set(self.mail_keys())
        return True

    # ------------------------------------------------------------------ counting

    def mail_keys(self) -> list[str]:
        """The idempotency key of every message the SMTP server received (one file each)."""
        out = []
        for p in sorted(self.mail_dir.glob("*.eml")):
            m = message_from_bytes(p.read_bytes(), policy=policy.default)
            out.append(str(m["X-ICU-Message-Key"]))
        return out

    def alert_events(self) -> list[dict]:
        return consume_all(self.settings, self.settings.kafka.topic_alerts)

    def expected_mail(self, events: list[dict] | None = None,
                      lifecycle: list[dict] | None = None) -> set[str]:
        """The e-mails due for the alerts raised and escalated so far: per recipient, the
        raise (if its priority is e-mailed) and every escalation step."""
        from backend.alerting.email_outbox import message_key

        am = self.settings.alert_manager
        events = self.alert_events() if events is None else events
        if lifecycle is None:
            lifecycle = consume_all(self.settings, self.settings.kafka.topic_lifecycle)
        due = set()
        for e in events:
            if e["event"] == "raised" and e["priority"] in am.email_on_raise:
                for address in am.recipients[am.chain[0]]:
                    due.add(message_key(e["alert_id"], 0, address))
        steps = Counter(x["alert_id"] for x in lifecycle if x["status"] == "escalated")
        for alert_id, n in steps.items():
            for level in range(1, n + 1):
                for address in am.recipients[am.chain[min(level, len(am.chain) - 1)]]:
                    due.add(message_key(alert_id, level, address))
        return due

    def expected_alerts(self) -> dict[str, dict]:
        """alert id -> (patient, rule, reading ts) of every alert the domain's pure
        evaluation raises for the records sent, in the order the stream sees them (one
        partition per patient, so per patient in send order). Computed once the load
        has stopped (the records sent are final then), and kept."""
        if self._expected is None or not self._stop_load.is_set():
            self._expected = self._evaluate_sent()
        return self._expected

    def _evaluate_sent(self) -> dict[str, dict]:
        from backend.alerting.evaluation import AlertChange, PatientState, on_timeout, process
        from backend.validation import Accepted, validate

        cfg = self.settings.alerting
        by_patient: dict[str, list] = defaultdict(list)
        for rec in self.sent:
            out = validate(rec.value, received_ts=rec.ts, census=self.census, cfg=cfg)
            if isinstance(out, Accepted):
                by_patient[out.reading.patient_id].append(out.reading)
        raised: dict[str, dict] = {}
        for pid, readings in by_patient.items():
            state = PatientState.new(pid)
            for r in readings:  # one reading at a time, at its own time, as it streamed
                state, results = process(state, [r], admission=self.census[pid],
                                         now_ms=r.ts, cfg=cfg)
                for c in results:
                    if isinstance(c, AlertChange) and c.event == "raised":
                        raised[c.alert_id] = {"patient_id": pid, "rule": c.rule,
                                              "reading_ts": c.reading_ts}
            # the load ends and every monitor falls silent: each bed goes stale (the
            # stream's clock keeps running through the drain, which waits for these)
            silent = readings[-1].ts + int(cfg.stale_max_seconds * 1000) + 1
            _, changes = on_timeout(state, admission=self.census[pid], now_ms=silent, cfg=cfg)
            for c in changes:
                if c.event == "raised":
                    raised[c.alert_id] = {"patient_id": pid, "rule": c.rule,
                                          "reading_ts": c.reading_ts}
        return raised

    def drain(self) -> None:
        """Wait until every record sent is accounted for on the output topics and every
        e-mail due has arrived (or the drain timeout passes; ``verify`` then reports)."""
        from harness.waiting import wait_until

        n = len(self.sent)
        t = self.settings.kafka

        def accounted() -> bool:
            validated = consume_all(self.settings, t.topic_validated)
            letters = consume_all(self.settings, t.topic_deadletter)
            return len(validated) + sum(1 for d in letters if not d["field"]) >= n

        try:
            wait_until(accounted, timeout=self.plan.drain_timeout, interval=5,
                       what="every record accounted for")
            expected = set(self.expected_alerts())
            wait_until(lambda: expected <= {e["alert_id"] for e in self.alert_events()
                                            if e["event"] == "raised"},
                       timeout=self.plan.drain_timeout, interval=5,
                       what="every expected alert raised (the beds' stale alerts last)")
            self._wait_last_escalation()
            wait_until(lambda: self.expected_mail() <= set(self.mail_keys()),
                       timeout=self.plan.drain_timeout, interval=5, what="every e-mail due")
        except AssertionError as exc:
            self.say(f"drain incomplete: {exc}")
        time.sleep(10)  # let the persist query's last batch and any late duplicate land

    def _wait_last_escalation(self) -> None:
        """Nobody acknowledges the campaign's alerts, so each escalates along its whole
        chain; the e-mails are counted only once the last alert raised has had time for
        its last step (escalation minutes after its detection, plus the manager's tick
        and a send), or ``verify`` races the late ones and calls them "not due"."""
        am = self.settings.alert_manager
        last_step_s = 60 * max((m for steps in am.escalation_minutes.values() for m in steps),
                               default=0.0)
        detected = [e["detected_ts"] for e in self.alert_events() if e["event"] == "raised"]
        if not detected or not last_step_s:
            return
        until = max(detected) / 1000 + last_step_s + am.tick_seconds + 15
        if until > time.time():
            self.say(f"waiting {until - time.time():.0f} s for the last escalations")
            time.sleep(until - time.time())

    def stop(self) -> None:
        self._stop_load.set()
        for part in ("screen", "probe"):
            if hasattr(self, part):
                getattr(self, part).stop.set()
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        from ops.spark_cluster import stop_spark

        stop_spark(self.settings)
        if hasattr(self, "db"):
            self.db.cluster.shutdown()

    # ------------------------------------------------------------------ the oracle

    def verify(self) -> dict:
        """Count everything against what was sent (module docstring); the report."""
        s = self.settings
        t = s.kafka
        sent = self.sent
        validated = consume_all(s, t.topic_validated)
        letters = consume_all(s, t.topic_deadletter)
        whole = [d for d in letters if not d["field"]]
        # the mailbox before the alert topics: the manager publishes an escalation in
        # the tick before it delivers the e-mail, so an e-mail read here has its event
        got = Counter(self.mail_keys())
        events = self.alert_events()
        lifecycle = consume_all(s, t.topic_lifecycle)
        windows = self._windows()

        def window(ts_ms: int) -> str:
            name = "before faults"
            for start, label in windows:
                if ts_ms / 1000 >= start:
                    name = label
            return name

        report: dict[str, Any] = {"records_sent": len(sent),
                                  "publish": _stats(self.publish_stats)}
        per: dict[str, Counter] = defaultdict(Counter)

        # raw: each record once on the topic (offsets 0..n-1 over the partitions)
        raw_n = sum(end_offsets(s, t.topic_raw).values())
        report["raw_on_topic"] = raw_n
        report["raw_messages_rows"] = self._raw_rows(raw_n)

        # out of the stream: each raw record exactly once, as a reading or a dead letter
        out = Counter((v["source_partition"], v["source_offset"]) for v in validated)
        out.update((d["source_partition"], d["source_offset"]) for d in whole)
        report["outputs_per_raw_record"] = dict(Counter(out.values()))
        report["raw_records_without_output"] = raw_n - len(out)

        identity = Counter((v["patient_id"], v["device_id"], v["seq"]) for v in validated)
        good = [r for r in sent if r.fault is None]
        good_ids = Counter(_identity(r.value) for r in good)
        for r in good:
            k = _identity(r.value)
            w = window(r.ts)
            per[w]["readings_sent"] += 1
            if identity.get(k, 0) == 0:
                per[w]["readings_lost"] += 1
            elif identity[k] > good_ids[k]:
                per[w]["readings_duplicated"] += 1
        stored = self._stored_readings()
        for r in good:
            k = _identity(r.value)
            n = stored.get(k, 0)
            if n == 0:
                per[window(r.ts)]["stored_lost"] += 1
            elif n > 1:
                per[window(r.ts)]["stored_duplicated"] += 1
        report["minute_counts_wrong"] = self._minute_mismatches(validated)
        report["latest_by_ward_wrong"] = self._latest_wrong(validated)
        report["dead_letters"] = {
            "whole": len(whole), "field_level": len(letters) - len(whole),
            "faulty_records_sent": Counter(r.fault for r in sent if r.fault),
            "reasons": Counter(d["reason"] for d in whole)}

        # alerts
        expected = self.expected_alerts()
        raised = Counter(e["alert_id"] for e in events if e["event"] == "raised")
        stored_alerts = self._stored_alert_ids(set(raised) | set(expected))
        for alert_id, info in expected.items():
            w = window(info["reading_ts"])
            per[w]["alerts_expected"] += 1
            if raised.get(alert_id, 0) == 0:
                per[w]["alerts_lost"] += 1
            elif raised[alert_id] > 1:
                per[w]["alerts_duplicated"] += 1
            if alert_id not in stored_alerts:
                per[w]["alerts_not_stored"] += 1
        unexpected = [e for e in events if e["event"] == "raised"
                      and e["alert_id"] not in expected]
        for e in unexpected:
            per[window(e["reading_ts"])]["alerts_unexpected"] += 1
        report["alerts_unexpected"] = [
            {k: e[k] for k in ("alert_id", "rule", "reading_ts", "detected_ts")}
            for e in unexpected][:20]

        # e-mails
        due = self.expected_mail(events, lifecycle)
        reading_ts = {e["alert_id"]: e["reading_ts"] for e in events if e["event"] == "raised"}
        for key in due:
            w = window(reading_ts.get(key.split(":L")[0], 0))
            per[w]["emails_due"] += 1
            if got.get(key, 0) == 0:
                per[w]["emails_lost"] += 1
            elif got[key] > 1:
                per[w]["emails_duplicated"] += 1
        report["emails_not_due"] = sorted(set(got) - due)[:20]
        report["emails_received"] = sum(got.values())

        # ward screen
        for f in self.faults:
            self._judge_screen(f)
        report["screen_sign_ins"] = self.screen.sign_ins
        report["windows"] = {k: dict(v) for k, v in per.items()}
        report["faults"] = [asdict(f) for f in self.faults]
        return report

    def _windows(self) -> list[tuple[float, str]]:
        return [(f.killed_at, f.fault) for f in self.faults]

    def _judge_screen(self, f: FaultRecord) -> None:
        nxt = [g.killed_at for g in self.faults if g.killed_at > f.killed_at]
        end = nxt[0] if nxt else self.load_ended_at
        arrivals = sorted(a for a, _, _ in self.probe.arrivals if f.killed_at - 5 <= a <= end)
        gaps = [b - a for a, b in pairwise(arrivals)]
        f.live_gap_s = round(max(gaps, default=0.0), 1)
        window = [(a, a - ts / 1000) for a, ts, _ in self.probe.arrivals
                  if f.killed_at <= a <= end]
        f.max_reading_delay_s = round(max((d for _, d in window), default=0.0), 1)
        late = [a for a, d in window if d >= FRESH_SECONDS]
        f.late_until_s = round(max(late) - f.killed_at, 1) if late else 0.0
        samples = [x for x in self.screen.samples if f.killed_at <= x[0] <= end]
        f.banner_seen = any(x[2] for x in samples)
        ok = [x for x in samples if x[1]]
        f.banner_cleared = (not ok[-1][2]) if ok else None

    def _raw_rows(self, raw_n: int) -> int:
        """Rows of ``raw_messages`` for the raw topic: one per record and offset."""
        from backend.storage.raw import OFFSET_BUCKET

        s = self.settings
        return sum(self.db.execute(
            "SELECT count(*) AS n FROM raw_messages WHERE topic = %s AND kafka_partition = %s"
            " AND offset_bucket = %s", (s.kafka.topic_raw, p, b), timeout=60).one()["n"]
            for p in range(s.kafka.partitions) for b in range(raw_n // OFFSET_BUCKET + 1))

    def _stored_readings(self) -> Counter:
        days = {datetime.fromtimestamp(r.ts / 1000, UTC).date() for r in self.sent}
        out: Counter = Counter()
        for p in self.plans:
            for d in days:
                for row in self.db.execute(
                        "SELECT patient_id, device_id, seq FROM readings_by_patient_day "
                        "WHERE patient_id = %s AND day = %s", (p.patient_id, d)):
                    out[(row["patient_id"], row["device_id"], row["seq"])] += 1
        return out

    def _minute_mismatches(self, validated: list[dict]) -> int:
        """Patient-minutes whose stored reading count (the sum of ``n`` over the minute's
        parts) differs from the readings published for it: a missing part or a part
        counted twice after a replay."""
        want = Counter((v["patient_id"], v["ts"] // 60_000) for v in validated)
        have: Counter = Counter()
        days = defaultdict(set)
        for pid, minute in want:
            days[pid].add(datetime.fromtimestamp(minute * 60, UTC).date())
        for pid, ds in days.items():
            for d in ds:
                for row in self.db.execute(
                        "SELECT minute, n FROM readings_by_patient_minute WHERE patient_id = %s"
                        " AND day = %s", (pid, d)):
                    have[(pid, _ms(row["minute"]) // 60_000)] += row["n"]
        return sum(1 for k in set(want) | set(have) if want[k] != have[k])

    def _latest_wrong(self, validated: list[dict]) -> int:
        """Beds whose ``latest_by_ward`` row is not their newest reading."""
        newest: dict[str, int] = {}
        for v in validated:
            newest[v["bed"]] = max(newest.get(v["bed"], 0), v["ts"])
        shown = {r["bed"]: _ms(r["ts"]) for r in self.db.execute(
            "SELECT bed, ts FROM latest_by_ward WHERE ward = %s", (self.ward,))}
        return sum(1 for bed, ts in newest.items() if shown.get(bed) != ts)

    def _stored_alert_ids(self, ids: set[str]) -> set[str]:
        from backend.storage.alerts import AlertStore

        store = AlertStore(self.db)
        return {a for a in ids if store.get(a) is not None}


def platform_settings(base: Settings, *, spark_cluster: bool = True) -> Settings:
    """The settings of a whole-platform run (the campaign, the soak): the mail catcher,
    the web app and the alert manager configured for the run: e-mail on every raise (so
    every alert's path through SMTP is counted), escalation after 1 and 3 minutes (so
    escalations happen during the faults), retries capped at 20 s (so a 60 s SMTP outage
    is over well within the run); with ``spark_cluster`` the stream job submitted to a
    standalone master on a port of its own, else Spark as in ``base`` (local mode)."""
    smtp_port, web_port = free_port(), free_port()
    spark_port = 27077 + (os.getpid() % 500) * 4
    am = base.alert_manager
    spark = base.spark.model_copy(update={
        "cluster_port": spark_port, "master": f"spark://127.0.0.1:{spark_port}"}) \
        if spark_cluster else base.spark
    return base.model_copy(update={
        "secret_key": SecretStr(secrets.token_urlsafe(48)),
        "spark": spark,
        "smtp": base.smtp.model_copy(update={"host": "127.0.0.1", "port": smtp_port,
                                             "timeout_seconds": 5}),
        "alert_manager": am.model_copy(update={
            "recipients": RECIPIENTS, "email_on_raise": ["high", "medium", "low"],
            "escalation_minutes": {"high": [1.0, 3.0], "medium": [3.0], "low": []},
            "email_retry_base_seconds": 2.0, "email_retry_max_seconds": 20.0,
            "consumer_group": f"icu-alert-manager-{base.cassandra.keyspace}"}),
        "web": base.web.model_copy(update={"host": "127.0.0.1", "port": web_port,
                                           "idle_timeout_minutes": 120,
                                           "allow_insecure_http": True,
                                           "public_url": f"http://127.0.0.1:{web_port}"}),
    })


def publish_paced(settings: Settings, records: Iterator[Any]) -> Any:
    """Send ``records`` (``devices.wire.Outgoing``) to the raw topic as the devices do
    (acks=all, idempotent), each at its own device time; the publisher's stats."""
    from devices.publisher import ProducerOptions, Publisher

    publisher = Publisher(ProducerOptions(bootstrap=settings.kafka.bootstrap,
                                          topic=settings.kafka.topic_raw, acks="all",
                                          linger_ms=5))
    try:
        return publisher.run(records, realtime=True, out=None, flush_timeout_s=300)
    finally:
        publisher.close()


def _identity(value: bytes) -> tuple[str, str, int]:
    d = json.loads(value)
    return d["patient_id"], d["device_id"], d["seq"]


def _ms(value: Any) -> int:
    """A timestamp column (naive UTC datetime from the driver) as epoch milliseconds."""
    if isinstance(value, datetime):
        return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000
    return int(value)


def _stats(stats: Any) -> dict:
    if stats is None:
        return {}
    return {"sent": stats.sent, "failed": stats.failed, "elapsed_s": round(stats.elapsed_s, 1)}


def markdown(report: dict) -> str:
    """The results table of docs/reliability.md."""
    rows = ["| fault | member | down | restart | recovered after | readings late until "
            "| worst reading delay | live gap | readings lost / dup | stored lost / dup "
            "| alerts lost / dup | e-mails lost / dup | banner shown / cleared |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    w = report["windows"]
    for f in report["faults"]:
        c = w.get(f["fault"], {})
        banner = ("yes" if f["banner_seen"] else "no") + " / " + (
            {True: "yes", False: "NO", None: "n/a"}[f["banner_cleared"]])
        rows.append(
            f"| {f['fault']} | {f['member']} | {f['down_s']} s | {f['restart_s']} s "
            f"| {f['recovered_s']} s | {f['late_until_s']} s | {f['max_reading_delay_s']} s "
            f"| {f['live_gap_s']} s "
            f"| {c.get('readings_lost', 0)} / {c.get('readings_duplicated', 0)} of "
            f"{c.get('readings_sent', 0)} "
            f"| {c.get('stored_lost', 0)} / {c.get('stored_duplicated', 0)} "
            f"| {c.get('alerts_lost', 0)} / {c.get('alerts_duplicated', 0)} of "
            f"{c.get('alerts_expected', 0)} "
            f"| {c.get('emails_lost', 0)} / {c.get('emails_duplicated', 0)} of "
            f"{c.get('emails_due', 0)} | {banner} |")
    return "\n".join(rows)


def problems(report: dict, plan: CampaignPlan, stale_after: float) -> list[str]:
    """Everything in ``report`` that breaks a guarantee (empty: the campaign passed)."""
    out = []
    if report["publish"].get("failed"):
        out.append(f"the producer failed to send {report['publish']['failed']} records")
    if report["raw_on_topic"] != report["records_sent"]:
        out.append(f"{report['records_sent']} sent, {report['raw_on_topic']} on vitals.raw")
    if report["raw_messages_rows"] != report["raw_on_topic"]:
        out.append(f"raw_messages has {report['raw_messages_rows']} rows for "
                   f"{report['raw_on_topic']} records")
    if {int(k) for k in report["outputs_per_raw_record"]} - {1} \
            or report["raw_records_without_output"]:
        out.append(f"raw records with other than one output: "
                   f"{report['outputs_per_raw_record']}, "
                   f"{report['raw_records_without_output']} without any")
    for name, c in report["windows"].items():
        bad = {k: v for k, v in c.items()
               if v and k.endswith(("_lost", "_duplicated", "_unexpected", "_not_stored"))}
        if bad:
            out.append(f"{name}: {bad}")
    if report["minute_counts_wrong"]:
        out.append(f"{report['minute_counts_wrong']} patient-minutes with a wrong count")
    if report["latest_by_ward_wrong"]:
        out.append(f"{report['latest_by_ward_wrong']} beds with a wrong newest reading")
    dl = report["dead_letters"]
    want = Counter()
    for kind, n in dl["faulty_records_sent"].items():
        if DEAD_LETTER_REASON[kind]:
            want[DEAD_LETTER_REASON[kind]] += n
    if Counter(dl["reasons"]) != want:
        out.append(f"whole-record dead letters {dict(dl['reasons'])}, the malformed records "
                   f"sent call for {dict(want)}")
    if report["emails_not_due"]:
        out.append(f"e-mails nobody was due: {report['emails_not_due'][:3]}")
    for f in report["faults"]:
        if f["recovered_s"] is None:
            out.append(f"{f['fault']}: not recovered")
        if f["live_gap_s"] > stale_after and not f["banner_seen"]:
            out.append(f"{f['fault']}: live data stopped {f['live_gap_s']} s, no banner")
        if f["banner_cleared"] is False:
            out.append(f"{f['fault']}: the banner stayed after recovery")
    return out
