"""The population aggregation: a Spark batch job over the census and the alerts.

``run_aggregation`` computes, for every day that is not yet final (``backend.population
.periods``) and every ISO week containing one, per home region and per ward:

==================== =========================================================================
admissions           stays whose admission time falls in the period
patient_days         sum over stays of the time in bed inside the period / 24 h (exact
                     occupied time, not a midnight census; an open stay runs to "now")
alerts_high/-medium  alerts detected in the period, by IEC priority
/-low
news2_high_episodes  alerts of ``settings.population.news2_high_rules`` (NEWS2 >= 7 held for
                     the persistence time; each alert is one episode)
sepsis_alerts        alerts of ``settings.population.sepsis_rules`` (qSOFA >= 2, risk model)
acknowledged,        alerts detected in the period that somebody acknowledged, and the exact
median_ack_seconds   median of (acknowledged - detected) over them
bed_days, occupancy  beds x days in the period, and patient_days / bed_days. A ward's beds
                     come from ``settings.population.ward_beds`` or, if not configured, the
                     distinct beds it has used; a region's denominator is the whole hospital
==================== =========================================================================

Sources are read from Cassandra by the driver (``backend.storage.population``: the
admissions table and the per-ward-day alert index, concurrently), aggregated by Spark,
and the results (a few hundred rows) written back; then the surge detector runs on the
daily region series. Days, regions and wards are UTC days; alerts belong to the day they
were detected, patients with no home county to region ``unknown``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from backend.alerting.burden import WardAlarm
from backend.population import periods
from backend.population.surge import CusumParams, cusum
from backend.settings import REPO_ROOT, Settings
from backend.storage import population as store
from backend.storage.census import PastStay

log = logging.getLogger(__name__)

SURGE_MEASURES = ("admissions", "news2_high_episodes", "sepsis_alerts")
COUNTS = ("admissions", "alerts_high", "alerts_medium", "alerts_low", "news2_high_episodes",
          "sepsis_alerts")

_STAYS = T.StructType([
    T.StructField("patient_id", T.StringType()), T.StructField("ward", T.StringType()),
    T.StructField("bed", T.StringType()), T.StructField("region", T.StringType()),
    T.StructField("admitted_ts", T.TimestampType()), T.StructField("end_ts", T.TimestampType()),
])
_ALERTS = T.StructType([
    T.StructField("patient_id", T.StringType()), T.StructField("ward", T.StringType()),
    T.StructField("rule", T.StringType()), T.StructField("priority", T.StringType()),
    T.StructField("detected_ts", T.TimestampType()), T.StructField("ack_ts", T.TimestampType()),
])


@dataclass
class RunReport:
    days: list[date] = field(default_factory=list)
    weeks: list[date] = field(default_factory=list)
    stays: int = 0
    alerts: int = 0
    region_rows: int = 0
    ward_rows: int = 0
    surges: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def spark_batch_session(settings: Settings) -> SparkSession:
    """A local batch session: no Kafka jars needed; the repo root on the workers' path."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return (
        SparkSession.builder.appName("icu-population")
        .master(settings.spark.batch_master)
        .config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )


def _facts(spark: SparkSession, stays: list[PastStay], alerts: list[WardAlarm],
           window: tuple[date, date],
           now: datetime, settings: Settings) -> DataFrame:
    """One row per (stay, day) and per alert, with the additive measures and the period
    columns of both grains."""
    cfg = settings.population
    w_start = datetime.combine(window[0], datetime.min.time(), tzinfo=UTC)
    w_end = datetime.combine(window[1] + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    region_of = {s.patient_id: s.home_fips or store.UNKNOWN_REGION for s in stays}
    stay_rows = []
    for s in stays:
        begin = s.admitted_ts
        end = min(s.discharged_ts or now, now)
        if end <= w_start or begin >= w_end or end <= begin:
            continue
        stay_rows.append((s.patient_id, s.ward, s.bed, s.home_fips or store.UNKNOWN_REGION,
                          max(begin, w_start), min(end, w_end)))
    stays_df = spark.createDataFrame(stay_rows, _STAYS)
    admitted = {s.patient_id: s.admitted_ts for s in stays}
    # An admission counts on its day even when it lies in the window but the stay was
    # clipped; the clipped admitted_ts equals the real one inside the window.
    stay_days = (
        stays_df
        .withColumn("day", F.explode(F.sequence(
            F.to_date("admitted_ts"),
            F.to_date(F.col("end_ts") - F.expr("INTERVAL 1 MICROSECOND")))))
        .withColumn("d0", F.to_timestamp(F.col("day")))
        .withColumn("d1", F.to_timestamp(F.date_add("day", 1)))
        .withColumn("seconds", F.unix_micros(F.least("end_ts", "d1"))
                    - F.unix_micros(F.greatest("admitted_ts", "d0")))
        .where(F.col("seconds") > 0)
        .select("day", "ward", "region", "patient_id",
                (F.col("seconds") / F.lit(86_400e6)).alias("patient_days"))
    )
    admitted_in = [(pid, ts) for pid, ts in admitted.items()
                   if ts is not None and w_start <= ts < w_end]
    adm_df = spark.createDataFrame(admitted_in, "patient_id string, admitted_ts timestamp")
    stay_facts = (
        stay_days.join(adm_df.withColumn("adm_day", F.to_date("admitted_ts")),
                       on="patient_id", how="left")
        .select("day", "ward", "region", "patient_days",
                F.when(F.col("adm_day") == F.col("day"), 1).otherwise(0).alias("admissions"))
    )
    alert_rows = [(a.patient_id, a.ward, a.rule, a.priority, a.detected_ts, a.ack_ts)
                  for a in alerts]
    alerts_df = spark.createDataFrame(alert_rows, _ALERTS)
    regions_df = spark.createDataFrame(list(region_of.items()),
                                       "patient_id string, region string")
    alert_facts = (
        alerts_df.join(regions_df, on="patient_id", how="left")
        .select(
            F.to_date("detected_ts").alias("day"), "ward",
            F.coalesce("region", F.lit(store.UNKNOWN_REGION)).alias("region"),
            *(F.when(F.col("priority") == p, 1).otherwise(0).alias(f"alerts_{p}")
              for p in ("high", "medium", "low")),
            F.col("rule").isin(list(cfg.news2_high_rules)).cast("int")
            .alias("news2_high_episodes"),
            F.col("rule").isin(list(cfg.sepsis_rules)).cast("int").alias("sepsis_alerts"),
            ((F.unix_micros("ack_ts") - F.unix_micros("detected_ts")) / F.lit(1e6))
            .alias("ack_seconds"),
        )
    )
    facts = stay_facts.unionByName(alert_facts, allowMissingColumns=True).fillna(
        0, subset=[*COUNTS, "patient_days"])
    daily = facts.withColumn("grain", F.lit("day")).withColumn("period_start", F.col("day"))
    weekly = (facts.withColumn("grain", F.lit("week"))
              .withColumn("period_start", F.to_date(F.date_trunc("week", "day"))))
    return daily.unionByName(weekly)


def _aggregate(facts: DataFrame, key: str) -> DataFrame:
    return facts.groupBy("grain", "period_start", key).agg(
        *(F.sum(c).cast("int").alias(c) for c in COUNTS),
        F.sum("patient_days").alias("patient_days"),
        F.count("ack_seconds").cast("int").alias("acknowledged"),
        F.percentile("ack_seconds", 0.5).alias("median_ack_seconds"),
    )


def ward_beds(stays: list[PastStay], settings: Settings) -> dict[str, int]:
    """Beds per ward: configured, else the distinct beds the ward has used."""
    used: dict[str, set[str]] = defaultdict(set)
    for s in stays:
        used[s.ward].add(s.bed)
    beds = {w: len(b) for w, b in used.items()}
    beds.update(settings.population.ward_beds)
    return beds


def _with_occupancy(rows: list[dict], beds_of: Callable[[dict], int]) -> list[dict]:
    for r in rows:
        n_days = 7 if r["grain"] == "week" else 1
        beds = beds_of(r)
        r["bed_days"] = float(beds * n_days)
        r["occupancy"] = r["patient_days"] / r["bed_days"] if r["bed_days"] else None
    return rows


def detect_surges(session, settings: Settings, until: date) -> list[store.RegionSurge]:
    """CUSUM flags on every region's daily series, from the first computed day."""
    params = CusumParams.from_settings(settings.population)
    first = min((d for d in store.final_days(session, range(until.year - 1, until.year + 1))),
                default=None)
    if first is None:
        return []
    rows = store.region_rows(session, "day", first, until)
    days = periods.day_range(first, until)
    series: dict[tuple[str, str], dict[date, float]] = defaultdict(dict)
    for r in rows:
        for m in SURGE_MEASURES:
            series[(r.region, m)][r.period_start] = float(getattr(r, m))
    flags = []
    for (region, measure), values in series.items():
        if region == store.UNKNOWN_REGION:
            continue
        for f in cusum(days, [values.get(d, 0.0) for d in days], params):
            flags.append(store.RegionSurge(region, measure, f))
    store.replace_surges(session, days, flags, datetime.now(UTC))
    return flags


def run_aggregation(spark: SparkSession, session, settings: Settings, *,
                    since: date | None = None, until: date | None = None, force: bool = False,
                    now: datetime | None = None) -> RunReport:
    """Compute the days of ``[since, until]`` that are not final (all with ``force``)."""
    report = RunReport()
    now = now or datetime.now(UTC)
    t0 = time.perf_counter()
    stays = store.load_stays(session)
    report.stays = len(stays)
    if since is None:
        first = min((s.admitted_ts for s in stays), default=None)
        if first is None:
            return report
        since = first.date()
    until = until or now.date()
    known = store.final_days(session, range(since.year, until.year + 1))
    days = periods.days_to_compute(since, until, periods.record_final(known), force=force)
    report.days = days
    if not days:
        return report
    window = periods.load_window(days)
    report.weeks = periods.weeks_of(days)
    alerts = store.load_alerts(session, {s.ward for s in stays},
                               periods.day_range(*window))
    report.alerts = len(alerts)
    report.seconds["read"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    facts = _facts(spark, stays, alerts, window, now, settings).cache()
    wanted = {("day", d) for d in days} | {("week", w) for w in report.weeks}
    by_region = [r.asDict() for r in _aggregate(facts, "region").collect()]
    by_ward = [r.asDict() for r in _aggregate(facts, "ward").collect()]
    facts.unpersist()
    by_region = [r for r in by_region if (r["grain"], r["period_start"]) in wanted]
    by_ward = [r for r in by_ward if (r["grain"], r["period_start"]) in wanted]
    beds = ward_beds(stays, settings)
    total_beds = sum(beds.values())
    _with_occupancy(by_ward, lambda r: beds.get(r["ward"], 0))
    _with_occupancy(by_region, lambda r: total_beds)
    for r in by_ward:
        r["beds"] = beds.get(r["ward"], 0)
    report.seconds["spark"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    grains = {"day": days, "week": report.weeks}
    store.write_aggregates(session, "population_by_region", "region", by_region, grains, now)
    store.write_aggregates(session, "population_by_ward", "ward", by_ward, grains, now)
    n_alerts = defaultdict(int)
    for a in alerts:
        n_alerts[a.detected_ts.date()] += 1
    n_stays = defaultdict(int)
    for r in by_ward:
        if r["grain"] == "day":
            n_stays[r["period_start"]] += r["admissions"]
    store.record_days(session, [
        (d, periods.is_final(d, now, settings.population.final_after_hours),
         n_stays[d], n_alerts[d]) for d in days], now)
    report.region_rows, report.ward_rows = len(by_region), len(by_ward)
    report.seconds["write"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    report.surges = len(detect_surges(session, settings, until))
    report.seconds["surge"] = time.perf_counter() - t3
    report.seconds["total"] = time.perf_counter() - t0
    return report
