"""``icu waveforms``: replay a recorded waveform (``devices/waveform_replay.py``) to Kafka."""

from __future__ import annotations

import time

import click
from kafka import KafkaProducer

from backend.clients import kafka_config
from backend.settings import get_settings
from devices.waveform_replay import chunks, load, publish


@click.group()
def cli() -> None:
    """Waveform streams (ECG, pleth) from recorded PhysioNet records."""


@cli.command("replay")
@click.option("--record", required=True, help="record under the data dir, e.g. mitdb/100")
@click.option("--patient", "patient_id", required=True, help="patient id to attach it to")
@click.option("--seconds", type=float, default=None, help="how much (default: all)")
@click.option("--offset", type=float, default=0.0, help="start this many s into the record")
@click.option("--start", "start_ms", type=int, default=None,
              help="time of the first sample, ms since epoch (default: ends now)")
@click.option("--chunk", "chunk_s", type=float, default=1.0, show_default=True)
@click.option("--paced", is_flag=True, help="send each chunk when its time comes")
def replay(record: str, patient_id: str, seconds: float | None, offset: float,
           start_ms: int | None, chunk_s: float, paced: bool) -> None:
    """Publish a recorded waveform to the waveform topic."""
    settings = get_settings()
    rec = load(settings.data_dir, record, seconds, offset)
    duration_ms = round(rec.signals.shape[0] * 1000 / rec.fs)
    if start_ms is None:
        start_ms = int(time.time() * 1000) - (0 if paced else duration_ms)
    producer = KafkaProducer(**kafka_config(settings.kafka, acks="all", linger_ms=20))
    try:
        n = publish(producer, settings.kafka.topic_waveforms,
                    chunks(rec, patient_id, start_ms, chunk_s), paced)
    finally:
        producer.close(timeout=10)
    click.echo(f"{n} chunks of {record} ({len(rec.channels)} channels "
               f"{', '.join(rec.channels)}, {duration_ms / 1000:.0f} s at {rec.fs:g} Hz, "
               f"{len(rec.ann_symbols)} annotations) sent to {settings.kafka.topic_waveforms}")
