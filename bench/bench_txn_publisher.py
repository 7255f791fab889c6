"""One micro-batch's Kafka transaction in the stream job's driver: librdkafka
(confluent-kafka, ``streaming.kafka_io.TransactionalPublisher``) against kafka-python's
transactional producer (what the publisher used before, rebuilt here as the baseline).

Each round publishes the same ``--messages`` validated readings (the alarm query's own
JSON for the bench's devices) in one transaction that also commits the batch's progress
offset, as the sink does. The two clients alternate (A B, then B A), the first round of
each is warm-up, and the median of the rest is reported: wall time, and the process's
CPU time (``time.process_time`` counts every thread: kafka-python's Python sender thread
and librdkafka's native ones alike). The foreachBatch thread holds the next micro-batch
for as long as the transaction takes, so the wall time is added to every batch, and the
CPU to the machine's two cores.

    .venv/bin/python bench/bench_txn_publisher.py --messages 50000 --rounds 7   # ~1 min

Needs the development Kafka (``icu services start``); its topics are made and deleted
here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from backend.settings import Settings
from bench.bench_stream import backlog_records, validated_messages
from streaming.kafka_io import TransactionalPublisher

Publish = Callable[[int, list[tuple[str, bytes | None, bytes]]], None]


def kafka_python_publisher(settings: Settings, progress: str, group: str) -> Publish:
    """The publisher's transaction as it was with kafka-python (before librdkafka)."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap,
                             transactional_id=group, enable_idempotence=True, acks="all",
                             linger_ms=5, batch_size=256 * 1024)
    producer.init_transactions()
    tp = TopicPartition(progress, 0)

    def publish(batch_id: int, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        producer.begin_transaction()
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.send_offsets_to_transaction({tp: OffsetAndMetadata(batch_id + 1, "", -1)},
                                             group)
        producer.commit_transaction()

    return publish


def librdkafka_publisher(settings: Settings, progress: str, name: str) -> Publish:
    """The product's publisher."""
    cfg = settings.kafka.model_copy(update={"topic_sink_progress": progress})
    publisher = TransactionalPublisher(cfg, name)

    def publish(batch_id: int, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        assert publisher.publish_batch(batch_id, messages, check=False)

    return publish


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=50_000,
                   help="readings per transaction (the alarm query's drain batch: 50,000)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)

    settings = Settings()
    tag = uuid.uuid4().hex[:8]
    topic, progress = f"bench-txn-{tag}", f"bench-txn-progress-{tag}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    admin.create_topics([NewTopic(topic, settings.kafka.partitions, 1),
                         NewTopic(progress, 1, 1)])
    try:
        records = backlog_records(1000, args.messages, boot=f"txn-{tag}")
        messages = [(topic, k, v) for k, v in validated_messages(settings, records)]
        size = statistics.mean(len(v) for _, _, v in messages)
        print(f"{len(messages):,} messages of {size:.0f} bytes per transaction", flush=True)
        clients = {"kafka-python": kafka_python_publisher(settings, progress, f"bench-kp-{tag}"),
                   "librdkafka": librdkafka_publisher(settings, progress, f"bench-{tag}")}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for r in range(args.rounds):
            order = list(clients) if r % 2 == 0 else list(reversed(clients))
            for name in order:
                wall, cpu = time.perf_counter(), time.process_time()
                clients[name](r, messages)
                samples[name].append(((time.perf_counter() - wall) * 1000,
                                      (time.process_time() - cpu) * 1000))
        result = {"messages": len(messages), "mean_bytes": round(size),
                  "rounds": args.rounds, "clients": {}}
        for name, xs in samples.items():
            wall = statistics.median(x[0] for x in xs[1:])
            cpu = statistics.median(x[1] for x in xs[1:])
            result["clients"][name] = {"wall_ms": round(wall), "cpu_ms": round(cpu),
                                       "cpu_us_per_message": round(cpu * 1000 / len(messages), 1)}
            print(f"{name:>12}: wall {wall:,.0f} ms, CPU {cpu:,.0f} ms per transaction"
                  f" ({cpu * 1000 / len(messages):.1f} us per message)", flush=True)
        kp, lr = result["clients"]["kafka-python"], result["clients"]["librdkafka"]
        print(f"kafka-python / librdkafka: wall x{kp['wall_ms'] / lr['wall_ms']:.1f},"
              f" CPU x{kp['cpu_ms'] / lr['cpu_ms']:.1f}")
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        admin.delete_topics([topic, progress])
        admin.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
