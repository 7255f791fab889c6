"""Ingesting a FHIR R4 Bundle of vital signs through ``vitals.raw``.

FHIR data enters the system like a bedside monitor's: ``backend.fhir`` turns the Bundle's
vital-sign Observations into ``DeviceReading`` messages (device ``fhir-<source>``, ``seq``
= the reading's timestamp in ms), and they are published to ``Settings.kafka.topic_raw``
keyed by patient id. The stream job then validates them (plausibility, census, time),
de-duplicates them (re-ingesting a Bundle yields duplicates, which are dead-lettered, not
stored twice), scores them and stores them, exactly as any other input.

The patient must be admitted: its ward and bed come from the census.

``icu simulate fhir BUNDLE.json [--patient ID] [--source NAME] [--dry-run]`` runs this.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.clients import kafka_security
from backend.fhir import Census, bundle_to_device_readings, parse_bundle
from backend.messages import DeviceReading
from backend.settings import Settings
from devices.wire import Outgoing, encode, encode_key

__all__ = ["dry_run_lines", "ingest", "load_bundle", "outgoing", "read_census"]


def load_bundle(path: str | Path) -> Any:
    """A Bundle JSON file (``-``: standard input), validated as FHIR R4(B)."""
    if str(path) == "-":
        import sys

        return parse_bundle(sys.stdin.read())
    return parse_bundle(Path(path).read_bytes())


def outgoing(readings: list[DeviceReading]) -> Iterator[Outgoing]:
    """The Kafka records of the readings (key = patient id, the device wire format)."""
    for r in readings:
        yield Outgoing(encode_key(r.patient_id), encode(r), r.ts)


def read_census(settings: Settings, *, wait_seconds: float = 30.0) -> dict:
    """The current admissions from Cassandra, by patient id."""
    from backend.storage import census
    from backend.storage.cassandra import connect

    session = connect(settings.cassandra, wait_seconds=wait_seconds)
    try:
        return census.current(session)
    finally:
        session.cluster.shutdown()


def ingest(
    settings: Settings,
    bundle: Any,
    *,
    patient_id: str | None = None,
    source: str | None = None,
    census: Census | None = None,
    topic: str | None = None,
) -> int:
    """Publish the Bundle's readings to ``vitals.raw`` (or ``topic``); returns how many.

    ``bundle``: a Bundle model, a dict, JSON text or bytes, or a ``Path`` to a file.
    ``census`` defaults to the admissions in Cassandra. Raises
    ``backend.fhir.FhirIngestError`` for a Bundle that cannot be ingested (nothing is
    published then) and ``RuntimeError`` when Kafka did not take every record.
    """
    from devices.publisher import ProducerOptions, Publisher

    if isinstance(bundle, Path):
        bundle = load_bundle(bundle)
    readings = bundle_to_device_readings(
        bundle, census=census if census is not None else read_census(settings),
        patient_id=patient_id, source=source)
    options = ProducerOptions(bootstrap=settings.kafka.bootstrap,
                              topic=topic or settings.kafka.topic_raw, client_id="icu-fhir",
                              security=kafka_security(settings.kafka))
    publisher = Publisher(options)
    try:
        stats = publisher.run(outgoing(readings), progress_every=0, out=None)
    finally:
        publisher.close()
    if stats.failed or stats.first_error:
        raise RuntimeError(f"not every reading was delivered: {stats.first_error}")
    return stats.sent


def dry_run_lines(readings: list[DeviceReading]) -> Iterator[str]:
    """The messages as JSON lines, exactly as they would be sent (``--dry-run``)."""
    for r in readings:
        yield encode(r).decode()
