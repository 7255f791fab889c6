"""The alert manager on real Kafka, Cassandra and SMTP (aiosmtpd in this process).

- Escalation with an injected clock: an unacknowledged HIGH alert goes nurse -> charge
  nurse -> physician, each step an ``escalated`` lifecycle event on Kafka (within 2 s of
  the tick that made it) and an e-mail to that role; an acknowledged one stops.
- Fault: SMTP is down while alerts are raised; the outbox keeps every message and
  retries with backoff; the manager is restarted; SMTP comes back; every e-mail arrives
  exactly once, and later ticks / another restart send nothing again.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer

from backend.alerting.manager import AlertManager, msg_key
from backend.messages import AlertEvent, AlertLifecycle, Priority
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from harness.mailbox import Mailbox, free_port
from harness.waiting import Clock, wait_until
from streaming.alert_manager import LifecycleProducer, run

pytestmark = pytest.mark.integration
WARD = "ICU-M"
RECIPIENTS = {"nurse": ["nurses@icu.test"], "charge_nurse": ["charge@icu.test"],
              "physician": ["doctors@icu.test"]}


def event(n: int, detected: datetime, priority: Priority = Priority.HIGH) -> AlertEvent:
    ms = int(detected.timestamp() * 1000)
    return AlertEvent(alert_id=f"m-{n}", event="raised", patient_id=f"pt-{n}", ward=WARD,
                      bed=str(n), rule="ref_spo2_low", priority=priority,
                      message="SpO2 84 % below 90 %", values={"spo2": 84.0},
                      onset_ts=ms - 10_000, reading_ts=ms, detected_ts=ms)


def configure(settings: Settings, smtp_port: int) -> Settings:
    from pydantic import SecretStr

    return settings.model_copy(update={
        "secret_key": SecretStr("s" * 48),
        "smtp": settings.smtp.model_copy(update={"port": smtp_port, "timeout_seconds": 3}),
        "alert_manager": settings.alert_manager.model_copy(update={
            "escalation_minutes": {"high": [2, 5], "medium": [], "low": []},
            "recipients": RECIPIENTS, "email_on_raise": ["high"], "tick_seconds": 0.2,
            "email_retry_base_seconds": 5, "email_retry_max_seconds": 60,
            "consumer_group": f"icu-alert-manager-{settings.cassandra.keyspace}",
        }),
    })


def test_escalation_chain_in_app_and_by_email(isolated_settings: Settings, db) -> None:
    mailbox = Mailbox().start()
    settings = configure(isolated_settings, mailbox.port)
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    lifecycle = KafkaConsumer(settings.kafka.topic_lifecycle,
                              bootstrap_servers=settings.kafka.bootstrap,
                              auto_offset_reset="earliest", consumer_timeout_ms=200)
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    publish = LifecycleProducer(settings)
    manager = AlertManager(db, settings, publish, clock=clock)
    stop = threading.Event()
    loop = threading.Thread(target=run, args=(settings, stop), kwargs={"manager": manager},
                            daemon=True)
    seen: list[AlertLifecycle] = []

    def lifecycle_events() -> list[AlertLifecycle]:
        for m in lifecycle:
            seen.append(AlertLifecycle.model_validate_json(m.value))
        return seen

    try:
        loop.start()
        store = AlertStore(db)
        for n in (1, 2):  # what the stream job's sink does: Cassandra, then Kafka
            e = event(n, t0)
            store.raise_alert(e)
            producer.send(settings.kafka.topic_alerts, key=e.alert_id.encode(),
                          value=e.model_dump_json().encode()).get(10)
        # level 0: the nurses are e-mailed on the raise
        wait_until(lambda: len(mailbox.snapshot()) == 2, timeout=30, what="raise e-mails")
        assert sorted(mailbox.levels()) == ["m-1:L0", "m-2:L0"]
        assert all(r == RECIPIENTS["nurse"] for r in mailbox.rcpts)
        # m-2 is acknowledged by a nurse: it never escalates
        from backend.alerting.lifecycle import Lifecycle

        assert Lifecycle(db).acknowledge("m-2", "n.kim", "ward_screen").ok

        clock.t = t0 + timedelta(minutes=1, seconds=59)
        time.sleep(1.0)
        assert len(mailbox.snapshot()) == 2 and not lifecycle_events()
        clock.t = t0 + timedelta(minutes=2)
        moved = time.monotonic()
        wait_until(lambda: any(e.status == "escalated" for e in lifecycle_events()),
                   timeout=10, interval=0.05, what="escalated event")
        latency = time.monotonic() - moved
        assert latency < 2.0, latency  # screens learn within 2 s
        wait_until(lambda: len(mailbox.snapshot()) == 3, timeout=20, what="level-1 e-mail")
        clock.t = t0 + timedelta(minutes=5)
        wait_until(lambda: len(mailbox.snapshot()) == 4, timeout=20, what="level-2 e-mail")
        clock.t = t0 + timedelta(hours=3)  # end of the chain: nothing more
        time.sleep(1.5)
        msgs = mailbox.snapshot()
        assert [m["X-ICU-Message-Key"].rsplit(":", 1)[0] for m in msgs[2:]] == [
            "m-1:L1", "m-1:L2"]
        assert mailbox.rcpts[2:] == [RECIPIENTS["charge_nurse"], RECIPIENTS["physician"]]
        assert msgs[3]["Subject"].startswith("[HIGH] Escalated to physician: ")
        body = msgs[3].get_content()
        assert "Bed:    1" in body and "/alerts/ack/" in body and "pt-1" not in body
        events = [(e.alert_id, e.status, e.by) for e in lifecycle_events()]
        assert events == [("m-1", "escalated", "system")] * 2
        steps = Lifecycle(db).history("m-1")
        assert [(s.action, s.to_status, s.detail) for s in steps] == [
            ("raise", "raised", "high ref_spo2_low"),
            ("escalate", "escalated", "level 1: notified charge_nurse"),
            ("escalate", "escalated", "level 2: notified physician"),
        ]
        assert [s.ts for s in steps[1:]] == [t0 + timedelta(minutes=2),
                                             t0 + timedelta(minutes=5)]
        assert [(s.action, s.actor) for s in Lifecycle(db).history("m-2")] == [
            ("raise", "system"), ("acknowledge", "n.kim")]
    finally:
        stop.set()
        loop.join(15)
        producer.close()
        publish.close()
        lifecycle.close()
        mailbox.stop()


def test_smtp_outage_every_email_delivered_exactly_once_across_a_restart(
        isolated_settings: Settings, db) -> None:
    port = free_port()
    settings = configure(isolated_settings, port)  # nothing listens there yet
    t0 = datetime.now(UTC).replace(microsecond=0)
    clock = Clock(t0)
    published: list[AlertLifecycle] = []
    manager = AlertManager(db, settings, published.append, clock=clock)
    store = AlertStore(db)
    for n in range(6):
        e = event(n, t0)
        store.raise_alert(e)
        manager.on_alert_event(e)
        manager.on_alert_event(e)  # a replayed Kafka message changes nothing
    stats = manager.tick()
    assert (stats.sent, stats.failed) == (0, 6)
    row = manager.outbox.get(msg_key("m-0", 0, "nurses@icu.test"))
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_ts == t0 + timedelta(seconds=5)
    clock.t = t0 + timedelta(seconds=4)  # backoff: not yet
    assert manager.tick().waiting == 6
    clock.t = t0 + timedelta(seconds=5)
    assert manager.tick().failed == 6  # second attempt fails: next in 10 s
    assert manager.outbox.get(msg_key("m-0", 0, "nurses@icu.test")).attempts == 2

    # the manager restarts (a new process: new outbox owner, nothing in memory)
    manager = AlertManager(db, settings, published.append, clock=clock)
    for n in range(6):
        manager.on_alert_event(event(n, t0))  # Kafka re-delivers what was not committed
    mailbox = Mailbox(port).start()
    try:
        clock.t = t0 + timedelta(seconds=15)
        stats = manager.tick()
        assert stats.sent == 6, stats
        wait_until(lambda: len(mailbox.snapshot()) >= 6, timeout=10, what="6 e-mails")
        # more ticks, another restart, more replays: nothing is sent again
        manager.tick()
        again = AlertManager(db, settings, published.append, clock=clock)
        for n in range(6):
            again.on_alert_event(event(n, t0))
        clock.t = t0 + timedelta(seconds=100)
        assert again.tick().sent == 0
        time.sleep(0.5)
        keys = mailbox.keys()
        assert sorted(mailbox.levels()) == [f"m-{n}:L0" for n in range(6)]  # exactly once
        assert manager.outbox.pending_ids() == []
        assert {manager.outbox.get(k).status for k in keys} == {"sent"}
    finally:
        mailbox.stop()
