"""Wire formats of the Kafka topics, as typed models.

Topics (names in ``Settings.kafka``):

* ``vitals.raw``        device -> pipeline. ``DeviceReading`` as UTF-8 JSON, key = patient_id,
                        so one patient's series stays ordered on one partition.
* ``vitals.deadletter`` pipeline -> audit. ``DeadLetter``: every rejected record, with its
                        reason, where the original lives, and a bounded head of it.
* ``vitals.validated``  pipeline -> web. ``ValidatedReading``: accepted readings with NEWS2.
* ``alerts.events``     pipeline -> alert manager / web. ``AlertEvent`` (raised / cleared).
* ``alerts.lifecycle``  alert manager / web -> web. ``AlertLifecycle``: acknowledged,
                        silenced, escalated, resolved, so every ward screen shows it.

Units are fixed by ``backend.vitals.VITALS`` (UCUM, LOINC); a message never carries units.
Timestamps are integer milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.vitals import Vital

SCHEMA_VERSION = 1


class Consciousness(StrEnum):
    """ACVPU as used by NEWS2: Alert, new Confusion, responds to Voice, to Pain, Unresponsive."""

    ALERT = "A"
    CONFUSION = "C"
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"


class DeviceReading(BaseModel):
    """One numerics frame from a bedside monitor (schema version 1).

    ``vitals`` maps a ``Vital`` wire name to its value in the unit of ``VITALS``; a
    parameter the device does not measure is absent or null, and 0 means "sensor off"
    for the parameters whose spec says so.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    device_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)
    patient_id: str = Field(min_length=1, max_length=64)
    ward: str = Field(min_length=1, max_length=32)
    bed: str = Field(min_length=1, max_length=16)
    ts: int = Field(description="device timestamp, ms since epoch (UTC)")
    vitals: dict[Vital, float | None]
    o2_supplemental: bool | None = None
    consciousness: Consciousness | None = None
    source: str | None = Field(default=None, max_length=64)


class DeadLetter(BaseModel):
    """A rejected record: why, where its original lives, and a bounded head of it.

    The full original stays on ``source_topic`` at ``source_partition``/``source_offset``
    until that topic's retention, and in Cassandra's ``raw_messages`` (keyed by the same
    position) for as long as raw data is kept. The letter itself never carries more than
    ``original_head_b64`` (at most ``SparkSettings.deadletter_head_bytes``), so a letter
    about a record of any size can always be published; ``original_length`` and
    ``original_sha256`` identify the whole original.
    """

    reason: str
    detail: str
    field: str | None = None  # the rejected field of an otherwise accepted reading
    # The Kafka key as text, if it decodes (sender-controlled: shown, never trusted).
    patient_key: str | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    received_ts: int
    rejected_ts: int
    original_length: int
    original_sha256: str
    original_head_b64: str
    original_truncated: bool

    @classmethod
    def about(
        cls, original: bytes | None, *, reason: str, detail: str, topic: str,
        partition: int, offset: int, received_ts: int, rejected_ts: int, head_bytes: int,
        key: bytes | None = None, field: str | None = None,
        length: int | None = None, sha256: str | None = None,
    ) -> DeadLetter:
        """The letter about ``original``. When only a head of the original is at hand
        (the stream job never hands an oversized record to Python), ``length`` and
        ``sha256`` describe the whole record."""
        data = original or b""
        head = data[:head_bytes]
        return cls(
            reason=reason, detail=detail, field=field, patient_key=key_text(key),
            source_topic=topic, source_partition=partition, source_offset=offset,
            received_ts=received_ts, rejected_ts=rejected_ts,
            original_length=len(data) if length is None else length,
            original_sha256=sha256 or hashlib.sha256(data).hexdigest(),
            original_head_b64=base64.b64encode(head).decode("ascii"),
            original_truncated=(len(data) if length is None else length) > len(head),
        )


_KEY_TEXT_MAX = 64


def key_text(key: bytes | None) -> str | None:
    """A Kafka key as printable text for people to read, or None. Keys are
    sender-controlled: undecodable bytes and control or formatting characters are
    replaced, and the text is cut at 64 characters."""
    if not key:
        return None
    text = key[: _KEY_TEXT_MAX * 4].decode("utf-8", errors="replace")[:_KEY_TEXT_MAX]
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


class Priority(StrEnum):
    """Alarm priority in the IEC 60601-1-8 sense."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ValidatedReading(BaseModel):
    patient_id: str
    ward: str
    bed: str
    device_id: str
    seq: int
    ts: int
    vitals: dict[Vital, float | None]
    # The values the scores used: the newest of each parameter still within its validity
    # window. A bed tile shows these; a parameter that is off or expired is absent.
    carried: dict[Vital, float] = {}
    sensors_off: list[Vital] = []
    news2: int | None = None
    news2_band: str | None = None
    news2_complete: bool = False
    qsofa: int | None = None
    o2_supplemental: bool | None = None
    consciousness: Consciousness | None = None
    processed_ts: int
    # Where the reading came from: its record on vitals.raw (the stored reading names it,
    # so what is derived from a reading can name its raw message, and erasure finds it).
    source_partition: int | None = None
    source_offset: int | None = None


class AlertEvent(BaseModel):
    """An alarm condition starting (``raised``) or ending (``cleared``).

    ``alert_id`` is deterministic (patient, rule, onset time), so re-processing the same
    readings after a restart yields the same id and consumers de-duplicate on it.
    """

    alert_id: str
    event: Literal["raised", "cleared"]
    patient_id: str
    ward: str
    bed: str
    rule: str
    priority: Priority
    message: str
    values: dict[str, float | None]
    onset_ts: int
    reading_ts: int
    detected_ts: int


class AlertLifecycle(BaseModel):
    """A person (or the alert manager) changed an alert's status (``alerts.lifecycle``).

    The ``alerts`` row in Cassandra has already changed when this is published; the
    message tells every screen to show the new status. Key = alert_id, so the steps of
    one alert stay ordered.
    """

    alert_id: str
    status: str  # acknowledged, escalated, silenced, resolved, ...
    by: str
    at: int = Field(description="when, ms since epoch (UTC)")
    via: str = Field(description="the channel, e.g. ward_screen, alert_inbox, pager")
    patient_id: str | None = None
    ward: str | None = None
    bed: str | None = None
