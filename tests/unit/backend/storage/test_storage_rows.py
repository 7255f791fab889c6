"""Rows as the Cassandra driver gives them (``dict_factory``: every selected column, naive
UTC datetimes, ``None`` for a column never set) into the storage modules' typed rows."""

from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.alerting.burden import WardAlarm
from backend.messages import Consciousness
from backend.population.surge import SurgeFlag
from backend.risk.live import HourScore
from backend.storage.minutes import minute_part, raw_points
from backend.storage.population import (
    MEASURES,
    RegionAggregate,
    RegionSurge,
    WardAggregate,
    past_stay,
    ward_alarm,
)
from backend.storage.readings import StoredReading
from backend.storage.risk_scores import ModelScore, hour_score
from backend.timeline import PARAMS, RawPoint, merge_parts
from backend.vitals import Vital

T0 = 1_790_000_000_000
ms = st.integers(min_value=T0 - 400 * 86_400_000, max_value=T0 + 400 * 86_400_000)
values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)
maybe = st.none() | values
texts = st.text(min_size=1, max_size=12)


def naive(t: int) -> datetime:
    """What the driver gives for a ``timestamp`` column: a naive datetime in UTC."""
    return datetime.fromtimestamp(t / 1000, tz=UTC).replace(tzinfo=None)


def utc(t: int) -> datetime:
    return datetime.fromtimestamp(t / 1000, tz=UTC)


@st.composite
def reading_rows(draw) -> dict:
    row = {"patient_id": draw(texts), "day": date(2026, 9, 21), "ts": naive(draw(ms)),
           "device_id": draw(st.none() | texts), "seq": draw(st.none() | st.integers(0, 2**40)),
           "sensors_off": draw(st.none() | st.sets(st.sampled_from([v.value for v in Vital]),
                                                   min_size=1)),
           "o2_supplemental": draw(st.none() | st.booleans()),
           "consciousness": draw(st.none() | st.sampled_from([c.value for c in Consciousness])),
           "news2": draw(st.none() | st.integers(0, 20)),
           "news2_band": draw(st.none() | st.sampled_from(["low", "medium", "high"])),
           "news2_complete": draw(st.none() | st.booleans()),
           "qsofa": draw(st.none() | st.integers(0, 3)),
           "processed_ts": draw(st.none() | ms.map(naive))}
    row.update({v.value: draw(maybe) for v in Vital})
    return row


@settings(max_examples=300, deadline=None)
@given(reading_rows())
def test_a_history_row_is_a_stored_reading(row: dict) -> None:
    r = StoredReading.from_row(row)
    assert r.patient_id == row["patient_id"]
    assert utc(r.ts) == row["ts"].replace(tzinfo=UTC)
    assert r.device_id == (row["device_id"] or "") and r.seq == (row["seq"] or 0)
    assert r.vitals == {v: row[v.value] for v in Vital if row[v.value] is not None}
    assert all(type(x) is float for x in r.vitals.values())
    assert {s.value for s in r.sensors_off} == set(row["sensors_off"] or ())
    assert r.consciousness == (None if row["consciousness"] is None
                               else Consciousness(row["consciousness"]))
    assert r.news2_complete is bool(row["news2_complete"])
    assert (r.news2, r.news2_band, r.qsofa, r.o2_supplemental) == (
        row["news2"], row["news2_band"], row["qsofa"], row["o2_supplemental"])
    assert r.processed_ts == (None if row["processed_ts"] is None
                              else round(row["processed_ts"].replace(tzinfo=UTC).timestamp()
                                         * 1000))


RawRow = namedtuple("RawRow", ["ts", *PARAMS])  # as the driver's named_tuple_factory


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ms, *(maybe for _ in PARAMS)), max_size=20))
def test_timeline_rows_are_raw_points(rows: list[tuple]) -> None:
    # the row factory gets the selected columns' names and each row's values in order
    points = raw_points(RawRow._fields, [RawRow(naive(r[0]), *r[1:]) for r in rows])
    assert points == [RawPoint(*r) for r in rows]
    assert [{f.name: getattr(p, f.name) for f in dataclasses.fields(RawPoint)}
            for p in points] == [RawRow(*r)._asdict() for r in rows]
    with pytest.raises(ValueError, match="columns"):
        raw_points(("ts", *reversed(PARAMS)), rows)


maps = st.none() | st.dictionaries(st.sampled_from(PARAMS), values, min_size=1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 59_999),
                          st.none() | st.integers(1, 60), maps, maps, maps), max_size=12))
def test_minute_rows_are_parts_and_merge(parts: list) -> None:
    minute0 = T0 - T0 % 60_000
    rows = [{"minute": naive(minute0 + m * 60_000), "part_ts": naive(minute0 + m * 60_000),
             "n": n, "last_ts": naive(minute0 + m * 60_000 + last), "mins": lo, "maxs": hi,
             "lasts": la} for m, last, n, lo, hi, la in parts]
    converted = [minute_part("p1", r) for r in rows]
    for part, r in zip(converted, rows, strict=True):
        assert part.patient_id == "p1" and part.n == (r["n"] or 0)
        assert utc(part.minute) == r["minute"].replace(tzinfo=UTC)
        assert utc(part.last_ts) == r["last_ts"].replace(tzinfo=UTC)
        assert (part.mins, part.maxs, part.lasts) == (r["mins"] or {}, r["maxs"] or {},
                                                      r["lasts"] or {})
    merged = merge_parts(converted)
    assert [m.minute for m in merged] == sorted({p.minute for p in converted})
    for m in merged:
        mine = [p for p in converted if p.minute == m.minute]
        assert m.n == sum(p.n for p in mine)
        for name in PARAMS:
            lows = [p.mins[name] for p in mine if name in p.mins]
            assert m.mins.get(name) == (min(lows) if lows else None)


scores = st.builds(
    HourScore, patient_id=texts, hour=st.integers(1, 2000),
    hour_ts=ms.map(lambda t: t - t % 3_600_000), risk=st.floats(0, 1), threshold=st.floats(0, 1),
    above=st.booleans(), monitor_only=st.booleans(), model_version=texts,
    n_readings=st.integers(0, 3600), inputs=st.dictionaries(st.sampled_from(PARAMS),
                                                            st.floats(0, 300)))


@settings(max_examples=200, deadline=None)
@given(scores)
def test_a_patient_score_row_is_the_hour_score_written(s: HourScore) -> None:
    row = {**dataclasses.asdict(s), "hour_ts": naive(s.hour_ts), "scored_ts": naive(T0)}
    assert hour_score(row) == s


def test_unset_score_columns_read_as_gaps_not_values() -> None:
    row = {"patient_id": "p", "hour_ts": naive(T0), "hour": None, "risk": None,
           "threshold": None, "above": None, "monitor_only": None, "model_version": None,
           "n_readings": None, "inputs": None, "scored_ts": None}
    s = hour_score(row)
    assert math.isnan(s.risk) and math.isnan(s.threshold)
    assert (s.hour, s.hour_ts, s.above, s.monitor_only, s.model_version, s.n_readings,
            s.inputs) == (0, T0, False, False, "", 0, {})
    m = ModelScore.from_row({"hour_ts": naive(T0), "patient_id": "p", "risk": None,
                             "above": None, "monitor_only": None})
    assert m.hour_ts == utc(T0) and m.hour_ts.tzinfo is UTC
    assert math.isnan(m.risk) and (m.above, m.monitor_only) == (False, False)


@settings(max_examples=200, deadline=None)
@given(ms, texts, st.none() | st.floats(0, 1), st.none() | st.booleans(),
       st.none() | st.booleans())
def test_a_model_score_row(t: int, patient: str, risk, above, monitor_only) -> None:
    m = ModelScore.from_row({"hour_ts": naive(t), "patient_id": patient, "risk": risk,
                             "above": above, "monitor_only": monitor_only})
    assert m.hour_ts == utc(t) and m.patient_id == patient
    assert (math.isnan(m.risk) if risk is None else m.risk == risk)
    assert (m.above, m.monitor_only) == (bool(above), bool(monitor_only))


@settings(max_examples=200, deadline=None)
@given(texts, texts, texts, st.none() | texts, ms, st.none() | ms)
def test_an_admission_row_is_a_stay(patient, ward, bed, fips, admitted, discharged) -> None:
    s = past_stay({"patient_id": patient, "ward": ward, "bed": bed, "home_fips": fips,
                   "admitted_ts": naive(admitted),
                   "discharged_ts": None if discharged is None else naive(discharged)})
    assert (s.patient_id, s.ward, s.bed, s.home_fips) == (patient, ward, bed, fips)
    assert s.admitted_ts == utc(admitted) and s.admitted_ts.tzinfo is UTC
    assert s.discharged_ts == (None if discharged is None else utc(discharged))


@settings(max_examples=200, deadline=None)
@given(texts, st.none() | texts, texts, st.none() | texts, st.none() | texts, ms,
       st.none() | texts, st.none() | ms)
def test_a_ward_day_alert_row_is_a_ward_alarm(alert_id, patient, ward, rule, priority,
                                              detected, status, acked) -> None:
    row = {"alert_id": alert_id, "patient_id": patient, "ward": ward, "rule": rule,
           "priority": priority, "detected_ts": naive(detected), "status": status}
    ack = None if acked is None else utc(acked)
    assert ward_alarm(row, ack) == WardAlarm(alert_id, patient, ward, rule, priority,
                                             utc(detected), status, ack)


counts = st.none() | st.integers(0, 10_000)
reals = st.none() | st.floats(0, 1e6)


@st.composite
def aggregate_rows(draw) -> dict:
    row = {"grain": draw(st.sampled_from(["day", "week"])), "year": 2026,
           "period_start": date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364))),
           "computed_ts": draw(st.none() | ms.map(naive))}
    row.update({m: draw(reals if m in ("patient_days", "median_ack_seconds", "bed_days",
                                       "occupancy") else counts) for m in MEASURES})
    return row


@settings(max_examples=200, deadline=None)
@given(aggregate_rows(), texts, counts)
def test_aggregate_rows(row: dict, key: str, beds) -> None:
    region = RegionAggregate.from_row({**row, "region": key})
    ward = WardAggregate.from_row({**row, "ward": key, "beds": beds})
    assert (region.region, ward.ward, ward.beds) == (key, key, beds)
    for a in (region, ward):
        assert (a.grain, a.period_start) == (row["grain"], row["period_start"])
        assert a.computed_ts == (None if row["computed_ts"] is None
                                 else row["computed_ts"].replace(tzinfo=UTC))
        for m in MEASURES:
            if m in ("median_ack_seconds", "occupancy"):  # None says "no value"
                assert getattr(a, m) == row[m]
            else:  # a count or sum never written reads 0, as the page adds them
                assert getattr(a, m) == (row[m] or 0)


@settings(max_examples=200, deadline=None)
@given(st.dates(date(2020, 1, 1), date(2030, 1, 1)), texts, st.sampled_from(MEASURES),
       values, values, st.floats(0, 1e3), values)
def test_a_surge_row_is_the_flag_written(day, region, measure, observed, expected, sd,
                                         cusum) -> None:
    flag = SurgeFlag(day, observed, expected, sd, cusum)
    row = {"year": day.year, "day": day, "region": region, "measure": measure,
           "observed": observed, "expected": expected, "baseline_sd": sd, "cusum": cusum,
           "magnitude": flag.magnitude, "computed_ts": naive(T0)}
    assert RegionSurge.from_row(row) == RegionSurge(region, measure, flag)
    unset = RegionSurge.from_row({**row, "observed": None, "cusum": None})
    assert math.isnan(unset.flag.observed) and math.isnan(unset.flag.cusum)
