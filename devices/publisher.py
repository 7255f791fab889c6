"""Publishing device records to Kafka at a steady rate.

``Publisher(options).run(records, ...)`` sends ``devices.wire.Outgoing`` records with a
kafka-python ``KafkaProducer`` and returns ``PublishStats``:

* throughput: records are batched per partition (``linger_ms`` 20, ``batch_size``
  256 KiB); the producer's per-record metrics are off (this module reports its own
  rate) and each key's partition is computed once (``KeyPartitioner``: the same murmur2
  choice as Kafka's default partitioner, cached). kafka-python checksums every batch
  with CRC32C, in pure Python unless the ``crc32c`` package is installed; that checksum
  dominates the cost of an uncompressed batch. ``compression="auto"`` therefore picks
  lz4 if the ``lz4`` package is installed, else none if ``crc32c`` is, else gzip (which
  shrinks what the pure-Python CRC has to read: about 2x the rate without ``crc32c``);
* safety: ``acks="all"`` and the idempotent producer by default, so a retried batch is
  neither lost nor duplicated nor reordered; ``acks="1"``/``"0"`` trade that for speed.
  Delivery failures are counted, the first ones logged, and make ``run`` report them;
* pacing by absolute time, so the rate does not drift: ``realtime=True`` sends each
  record when the wall clock reaches its device timestamp ``ts`` (the generators
  re-base their timestamps to now); ``rate=R`` sends record *n* at ``t0 + n/R``. When
  the producer cannot keep up it sends as fast as it can and reports the lag, never
  skipping records. Neither: as fast as possible;
* bounds: ``count`` records, ``max_seconds`` of wall-clock time, or the end of the input;
* a progress line every ``progress_every`` seconds (rate over the last interval and on
  average, delivery errors, lag behind schedule);
* SIGINT/SIGTERM (Ctrl-C, ``icu demo`` stopping) stop sending, flush what was sent and
  close; a second Ctrl-C aborts the flush.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from devices.wire import Outgoing

log = logging.getLogger(__name__)


def fast_crc32c() -> bool:
    """Whether kafka-python checksums batches in C (the ``crc32c`` package)."""
    from kafka.record import util

    return getattr(util, "crc32c_c", None) is not None


def choose_compression(preference: str) -> str | None:
    """``auto`` -> lz4 if installed, else none with a C CRC32C, else gzip (see above);
    ``none`` -> None; a named codec must be installed."""
    from kafka import codec

    pref = preference.lower()
    if pref == "auto":
        if codec.has_lz4():
            return "lz4"
        return None if fast_crc32c() else "gzip"
    if pref in ("none", ""):
        return None
    available = {"gzip": codec.has_gzip, "lz4": codec.has_lz4, "snappy": codec.has_snappy,
                 "zstd": codec.has_zstd}
    if pref not in available:
        raise ValueError(f"unknown compression {preference!r}")
    if not available[pref]():
        raise ValueError(f"compression {pref} needs a Python package that is not installed")
    return pref


def key_partitioner():
    """Kafka's default partitioner (murmur2 of the key), with each key's result cached:
    the pure-Python murmur2 is a visible share of the per-record cost otherwise."""
    from kafka.partitioner.default import DefaultPartitioner

    class KeyPartitioner(DefaultPartitioner):
        def __init__(self) -> None:
            self._cache: dict[tuple[str, bytes, int], int] = {}

        def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
            if serialized_key is None:
                return super().partition(topic, key, serialized_key, value,
                                         serialized_value, cluster)
            partitions = cluster.partitions_for_topic(topic)
            slot = (topic, serialized_key, len(partitions) if partitions else 0)
            hit = self._cache.get(slot)
            if hit is None:
                hit = self._cache[slot] = super().partition(
                    topic, key, serialized_key, value, serialized_value, cluster)
            return hit

    return KeyPartitioner()


@dataclass(frozen=True)
class ProducerOptions:
    bootstrap: str
    topic: str
    acks: str = "all"  # "all", "1" or "0"
    linger_ms: int = 20
    batch_size: int = 256 * 1024
    compression: str = "auto"
    client_id: str = "icu-simulator"
    request_timeout_ms: int = 30_000
    delivery_timeout_ms: int = 120_000
    # Authentication and TLS (backend.clients.kafka_security of the Kafka settings).
    security: dict = field(default_factory=dict, repr=False)

    def producer_config(self) -> dict:
        acks: int | str = "all" if self.acks == "all" else int(self.acks)
        return dict(
            **self.security,
            bootstrap_servers=self.bootstrap.split(","),
            client_id=self.client_id,
            acks=acks,
            enable_idempotence=acks == "all",
            linger_ms=self.linger_ms,
            batch_size=self.batch_size,
            compression_type=choose_compression(self.compression),
            metrics_enabled=False,
            partitioner=key_partitioner(),
            request_timeout_ms=self.request_timeout_ms,
            delivery_timeout_ms=self.delivery_timeout_ms,
        )


@dataclass
class PublishStats:
    sent: int = 0
    failed: int = 0
    faults: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    interrupted: bool = False
    max_lag_s: float = 0.0
    first_error: str | None = None

    @classmethod
    def combine(cls, parts: Iterable[PublishStats]) -> PublishStats:
        """The totals of parallel publishers (elapsed and lag: the longest)."""
        total = cls()
        for p in parts:
            total.sent += p.sent
            total.failed += p.failed
            total.faults.update(p.faults)
            total.elapsed_s = max(total.elapsed_s, p.elapsed_s)
            total.interrupted |= p.interrupted
            total.max_lag_s = max(total.max_lag_s, p.max_lag_s)
            total.first_error = total.first_error or p.first_error
        return total

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (f"sent {self.sent:,} in {self.elapsed_s:.1f}s ({self.rate:,.0f}/s)"
                f"; delivery errors {self.failed:,}"
                + (f"; injected faults: {faults}" if faults else "")
                + ("; interrupted" if self.interrupted else ""))


class _Stopper:
    """SIGINT/SIGTERM -> a flag the send loop checks; a second Ctrl-C (SIGINT) aborts the
    flush. A repeated SIGTERM does not (a parent forwarding it to a process group that
    also got it must not make a worker drop its records)."""

    def __init__(self) -> None:
        self.stop = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> _Stopper:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


class Publisher:
    def __init__(self, options: ProducerOptions, producer: object | None = None) -> None:
        self.options = options
        self._producer = producer
        self.stats = PublishStats()
        self._lock = threading.Lock()

    @property
    def producer(self):
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(**self.options.producer_config())
        return self._producer

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.stats.failed += 1
            if self.stats.first_error is None:
                self.stats.first_error = repr(exc)
            if self.stats.failed <= 5:
                log.error("delivery failed: %r", exc)

    def run(
        self,
        records: Iterable[Outgoing],
        *,
        realtime: bool = False,
        rate: float | None = None,
        count: int | None = None,
        max_seconds: float | None = None,
        progress_every: float = 5.0,
        out: TextIO | None = sys.stderr,
        label: str = "",
        flush_timeout_s: float = 60.0,
    ) -> PublishStats:
        """Send ``records`` (see the module docstring); returns the statistics."""
        if rate is not None and not rate > 0:
            raise ValueError("rate must be > 0")
        producer = self.producer
        send = producer.send
        topic = self.options.topic
        on_error = self._on_error
        self.stats = stats = PublishStats()
        faults = stats.faults
        now = time.time
        t0 = now()
        next_progress = t0 + progress_every if progress_every > 0 else float("inf")
        last_n, last_t = 0, t0
        deadline = t0 + max_seconds if max_seconds is not None else float("inf")
        interval = 1.0 / rate if rate else 0.0
        n = 0
        with _Stopper() as stopper:
            try:
                for rec in records:
                    if stopper.stop or (count is not None and n >= count):
                        break
                    t = now()
                    if realtime or interval:
                        due = rec.ts / 1000.0 if realtime else t0 + n * interval
                        # up to 1 ms early: a sleep per record would cost more than it
                        # sends at 10,000/s; the schedule itself stays absolute
                        while due - t > 0.001 and not stopper.stop:
                            time.sleep(min(due - t, 0.2))
                            t = now()
                        if stopper.stop:
                            break
                        lag = t - due
                        if lag > stats.max_lag_s:
                            stats.max_lag_s = lag
                    if t >= deadline:
                        break
                    send(topic, key=rec.key, value=rec.value).add_errback(on_error)
                    n += 1
                    if rec.fault is not None:
                        faults[rec.fault] += 1
                    if t >= next_progress:
                        stats.sent = n
                        if out is not None:
                            lag_s = (t - rec.ts / 1000.0 if realtime
                                     else t - (t0 + n * interval) if interval else 0.0)
                            print(f"{label}{t - t0:8.1f}s  sent {n:>12,}  "
                                  f"{(n - last_n) / (t - last_t):>9,.0f}/s now  "
                                  f"{n / (t - t0):>9,.0f}/s avg  errors {stats.failed:,}"
                                  f"  lag {max(0.0, lag_s):.2f}s", file=out, flush=True)
                        last_n, last_t = n, t
                        next_progress = t + progress_every
            except KeyboardInterrupt:
                stopper.stop = True
            except Exception as exc:  # send() itself failed (e.g. no broker for max_block_ms)
                log.error("sending failed after %d records: %r", n, exc)
                stats.first_error = stats.first_error or repr(exc)
            stats.sent = n
            stats.interrupted = stopper.stop
            try:
                producer.flush(timeout=flush_timeout_s)
            except KeyboardInterrupt:
                log.warning("flush aborted: records not yet delivered may be lost")
            except Exception as exc:  # a flush timeout: report, do not hide
                log.error("flush failed: %r", exc)
                stats.first_error = stats.first_error or repr(exc)
            stats.elapsed_s = now() - t0
        return stats

    def close(self, timeout_s: float = 30.0) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout_s)
            self._producer = None
