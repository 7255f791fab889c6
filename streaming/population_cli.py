"""``icu population``: the population aggregation (Spark batch job) and its schedule.

Run once (incremental: only days that are not final are computed)::

    icu population aggregate
    icu population aggregate --since 2026-11-01 --until 2026-11-30 --force

On a schedule, either keep one process looping (``--every 60`` minutes) or use cron::

    15 * * * *  cd /opt/icu-monitor && .venv/bin/icu population aggregate \
                >> /var/log/icu-population.log 2>&1
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import date, datetime

import click

from backend.settings import get_settings


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.group()
def cli() -> None:
    """Population analytics (aggregates per home region and ward, surge flags)."""


@cli.command("aggregate")
@click.option("--since", callback=_date, help="first day (default: first admission)")
@click.option("--until", callback=_date, help="last day (default: today, UTC)")
@click.option("--force", is_flag=True, help="recompute final days too")
@click.option("--every", type=click.FloatRange(min=0.1), default=None,
              help="repeat every N minutes until interrupted (scheduled runs)")
@click.option("--master", default=None, help="Spark master URL (default: settings)")
def aggregate(since: date | None, until: date | None, force: bool, every: float | None,
              master: str | None) -> None:
    """Aggregate the census and alerts per day and week (Spark batch job)."""
    from backend.storage.cassandra import connect
    from streaming.population_job import run_aggregation, spark_batch_session

    if since and until and since > until:
        raise click.BadParameter("--since is after --until")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    if master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": master})})
    stop = {"now": False}

    def on_term(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    session = connect(settings.cassandra, wait_seconds=60)
    spark = spark_batch_session(settings)
    spark.sparkContext.setLogLevel("WARN")
    try:
        while True:
            report = run_aggregation(spark, session, settings, since=since, until=until,
                                     force=force)
            span = (f"{report.days[0]} .. {report.days[-1]}" if report.days else "nothing new")
            click.echo(f"{datetime.now():%H:%M:%S} computed {len(report.days)} day(s) "
                       f"({span}), {len(report.weeks)} week(s) from {report.stays} stays and "
                       f"{report.alerts} alerts: {report.region_rows} region rows, "
                       f"{report.ward_rows} ward rows, {report.surges} surge flag(s) in "
                       f"{report.seconds.get('total', 0):.1f} s")
            if every is None or stop["now"]:
                break
            force = False
            deadline = time.monotonic() + every * 60
            while time.monotonic() < deadline and not stop["now"]:
                time.sleep(1.0)
            if stop["now"]:
                break
    finally:
        spark.stop()
        session.cluster.shutdown()


@cli.command("seed-history")
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True)
@click.option("--wards", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--beds-per-ward", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--catchment", default=None, help="home counties 'FIPS=weight,...' "
              "(default: settings.population.catchment, else Boston)")
@click.option("--surge-county", default="25009", show_default=True,
              help="county with an injected admissions surge ('' for none)")
def seed_history(days: int, wards: int, beds_per_ward: int, seed: int, catchment: str | None,
                 surge_county: str) -> None:
    """Write a seeded simulated history (admissions, alerts) for demos and benchmarks."""
    from backend.population.catchment import Catchment
    from backend.storage.cassandra import connect
    from devices.history import HistorySpec, end_of_today, generate, write

    settings = get_settings()
    try:
        area = Catchment.parse(catchment or settings.population.catchment)
        area.check_known(settings.data_dir)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--catchment") from exc
    spec = HistorySpec(days=days, wards=wards, beds_per_ward=beds_per_ward, seed=seed,
                       surge_county=surge_county or None)
    stays, alerts = generate(spec, end_of_today(), area)
    session = connect(settings.cassandra, wait_seconds=60)
    try:
        write(session, stays, alerts)
    finally:
        session.cluster.shutdown()
    click.echo(f"wrote {len(stays)} stays and {len(alerts)} alerts over {days} days "
               f"({wards} wards x {beds_per_ward} beds)")
