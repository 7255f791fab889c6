"""``icu stream``: run the Spark Structured Streaming job."""

from __future__ import annotations

import logging
import signal

import click

from backend.settings import get_settings


@click.group()
def cli() -> None:
    """Spark streaming jobs."""


@cli.command("run")
@click.option("--master", default=None, help="Spark master URL (default: settings, local[2])")
def run(master: str | None) -> None:
    """Run the vitals job until interrupted."""
    from streaming.session import spark_session
    from streaming.vitals_job import checkpoint_location, start_vitals_query

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    if master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": master})}
        )
    spark = spark_session(settings)
    spark.sparkContext.setLogLevel("WARN")
    query, sink = start_vitals_query(spark, settings)
    click.echo(f"vitals stream running (master {settings.spark.master}, "
               f"checkpoint {checkpoint_location(settings)})")

    def stop(*_: object) -> None:
        query.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()
    finally:
        sink.close()
        spark.stop()
