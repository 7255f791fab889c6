"""``icu patient``: erase a patient; export a patient's readings (optionally
pseudonymised for research).

It lives in ops/, beside the other entry points, because erasure recomputes the population
aggregates with the Spark batch job (streaming/), which the domain (backend/) must not import.
"""

from __future__ import annotations

import csv
import getpass
import json
import os
import sys
from datetime import UTC, date, datetime

import click

from backend.settings import get_settings


@click.group()
def cli() -> None:
    """A patient's data: erasure and export."""


def _actor() -> str:
    return os.environ.get("ICU_ACTOR") or f"cli:{getpass.getuser()}"


def _recompute_with_spark(settings, session):
    def recompute(days: set[date]) -> None:
        from streaming.population_job import run_aggregation, spark_batch_session

        spark = spark_batch_session(settings)
        spark.sparkContext.setLogLevel("WARN")
        try:
            report = run_aggregation(spark, session, settings, since=min(days),
                                     until=max(days), force=True)
        finally:
            spark.stop()
        click.echo(f"population aggregates recomputed for {len(report.days)} day(s) "
                   f"({min(days)} .. {max(days)})", err=True)

    return recompute


@cli.command("erase")
@click.argument("patient_id")
@click.option("--reason", required=True,
              help="why (e.g. the request's reference); must not name the patient")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--no-recompute", is_flag=True,
              help="skip recomputing the population aggregates (prints the command)")
def erase_cmd(patient_id: str, reason: str, yes: bool, no_recompute: bool) -> None:
    """Remove PATIENT_ID's data from every table (see backend/privacy/erase.py)."""
    from backend.privacy.erase import ErasureError, erase_patient
    from backend.storage.cassandra import connect

    settings = get_settings()
    if not yes and sys.stdin.isatty():
        click.confirm(f"Erase every record of {patient_id}? This cannot be undone",
                      abort=True)
    session = connect(settings.cassandra, wait_seconds=30)
    try:
        recompute = None if no_recompute else _recompute_with_spark(settings, session)
        try:
            report = erase_patient(session, settings, patient_id, reason=reason,
                                   actor=_actor(), recompute=recompute)
        except ErasureError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        session.cluster.shutdown()
    click.echo(f"erased: {report.summary()}; audit rows re-keyed: {report.audit_rewritten}; "
               f"audit pseudonym {report.pseudonym}")
    if report.raw_scanned:
        click.echo("note: raw_messages was scanned (readings without a Kafka position)",
                   err=True)
    if no_recompute and report.days:
        click.echo(f"run: icu population aggregate --since {min(report.days)} --until "
                   f"{max(report.days)} --force", err=True)
    click.echo(f"Kafka keeps the raw records until its retention "
               f"({settings.kafka.retention_hours:g} h) expires.", err=True)


def _ms(text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date/time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


@cli.command("export")
@click.argument("patient_id")
@click.option("--since", "since", required=True, help="start, ISO date/time (UTC)")
@click.option("--until", "until", required=True, help="end (exclusive), ISO date/time")
@click.option("--format", "fmt", type=click.Choice(["fhir", "csv"]), default="fhir",
              show_default=True)
@click.option("--pseudonymise", is_flag=True,
              help="keyed-hash ids, per-patient date shift (see docs/security.md)")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True)
def export_cmd(patient_id: str, since: str, until: str, fmt: str, pseudonymise: bool,
               out: str) -> None:
    """Export PATIENT_ID's readings as a FHIR Bundle or CSV; audited."""
    from backend import audit
    from backend.privacy.export import export_rows
    from backend.storage.cassandra import connect

    settings = get_settings()
    start, end = _ms(since), _ms(until)
    if end <= start:
        raise click.BadParameter("--until must be after --since")
    session = connect(settings.cassandra, wait_seconds=30)
    try:
        doc, n = export_rows(session, settings, patient_id, start, end, fmt=fmt,
                             pseudonymise=pseudonymise)
        with open(out, "w", newline="", encoding="utf-8") as f:
            if fmt == "fhir":
                json.dump(doc, f)
            else:
                writer = csv.writer(f)
                writer.writerows(doc)
        action = audit.RESEARCH_EXPORTED if pseudonymise else audit.PATIENT_EXPORTED
        audit.record(session, _actor(), action, audit.PATIENT, patient_id,
                     f"{fmt} {n} readings", "cli")
    finally:
        session.cluster.shutdown()
    click.echo(f"wrote {n} readings to {out}" + (" (pseudonymised)" if pseudonymise else ""))
