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
    from streaming.vitals_job import start_vitals_query

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
               f"checkpoint {settings.spark.checkpoint_dir})")

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


@cli.command("waveforms")
def waveforms() -> None:
    """Store the waveform chunks of ``waveforms.raw`` in Cassandra until interrupted."""
    from streaming.waveform_sink import WaveformSink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sink = WaveformSink(get_settings())
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    click.echo("waveform sink running")
    try:
        sink.run(lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
