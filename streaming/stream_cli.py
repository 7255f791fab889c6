"""``icu stream``: run the Spark Structured Streaming jobs."""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import signal
import sys
from collections.abc import Callable

import click

from backend.settings import Settings, SparkSettings, get_settings
from streaming.query_supervisor import QuerySupervisor, Started

# The default is SparkSettings'; stated once there.
_MASTER_HELP = ("Spark master URL (default: ICU_SPARK__MASTER, "
                f"{SparkSettings.model_fields['master'].default})")


@click.group()
def cli() -> None:
    """Spark streaming jobs."""


def _settings(master: str | None = None) -> Settings:
    from backend.clients import ClientConfigError, require_secure_services

    settings = get_settings()
    try:
        require_secure_services(settings, "the stream job")
    except ClientConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": master})}
        )
    return settings


@cli.command("run")
@click.option("--master", default=None, help=_MASTER_HELP)
@click.option("--risk/--no-risk", default=True, show_default=True,
              help="also run the risk query (hourly sepsis risk, streaming/risk_job.py)")
@click.option("--persist/--no-persist", default=True, show_default=True,
              help="also run the persist query (Kafka -> Cassandra, streaming/persist_job.py)")
def run(master: str | None, risk: bool, persist: bool) -> None:
    """Run the stream job until interrupted: the alarm query (Kafka -> alarms ->
    Kafka), the persist query (Kafka -> Cassandra) and the risk query."""
    from streaming.persist_job import persist_checkpoint_dir, start_persist_query
    from streaming.session import LATENCY_POOL, THROUGHPUT_POOL, job_session, use_pool
    from streaming.vitals_job import Ticker, checkpoint_location, start_vitals_query

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopping = _stop_requests()
    settings = _settings(master)
    spark, stop_session = job_session(settings, "icu-vitals")
    spark.sparkContext.setLogLevel("WARN")
    queries = _supervisor(spark, settings)

    def alarm() -> Started:
        use_pool(spark, LATENCY_POOL)
        query, sink = start_vitals_query(spark, settings)
        return query, sink.close

    queries.start("alarm", alarm)
    ticker = Ticker(settings).start()
    click.echo(f"alarm query running (master {settings.spark.master}, "
               f"checkpoint {checkpoint_location(settings)})")
    if persist:
        def persist_query() -> Started:
            use_pool(spark, THROUGHPUT_POOL)
            return start_persist_query(spark, settings), None

        queries.start("persist", persist_query)
        click.echo(f"persist query running (checkpoint {persist_checkpoint_dir(settings)})")
    if risk:
        from streaming.risk_job import risk_checkpoint_dir, start_risk_query

        def risk_query() -> Started:
            use_pool(spark, THROUGHPUT_POOL)
            query, sink = start_risk_query(spark, settings)
            return query, sink.close

        queries.start("risk", risk_query)
        click.echo(f"risk stream running (checkpoint {risk_checkpoint_dir(settings)})")
    _serve(stop_session, queries, [ticker.stop], settings, stopping)


@cli.command("risk")
@click.option("--master", default=None, help=_MASTER_HELP)
def risk_cmd(master: str | None) -> None:
    """Run only the risk query: hourly sepsis risk from vitals.validated."""
    from streaming.risk_job import risk_checkpoint_dir, start_risk_query
    from streaming.session import job_session

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopping = _stop_requests()
    settings = _settings(master)
    spark, stop_session = job_session(settings, "icu-risk")
    spark.sparkContext.setLogLevel("WARN")
    queries = _supervisor(spark, settings)

    def risk_query() -> Started:
        query, sink = start_risk_query(spark, settings)
        return query, sink.close

    queries.start("risk", risk_query)
    click.echo(f"risk stream running (master {settings.spark.master}, "
               f"checkpoint {risk_checkpoint_dir(settings)})")
    _serve(stop_session, queries, [], settings, stopping)


@cli.command("persist")
@click.option("--master", default=None, help=_MASTER_HELP)
def persist_cmd(master: str | None) -> None:
    """Run only the persist query (Kafka -> Cassandra), in a Spark application of its
    own: on another machine than `icu stream run --no-persist`, it takes Cassandra's
    writes off the alarm path (docs/benchmarks.md, "What the persist query costs the
    alarm path"; on the same machine it costs more than inside the job)."""
    from streaming.persist_job import persist_checkpoint_dir, start_persist_query
    from streaming.session import job_session

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopping = _stop_requests()
    settings = _settings(master)
    spark, stop_session = job_session(settings, "icu-persist")
    spark.sparkContext.setLogLevel("WARN")
    queries = _supervisor(spark, settings)
    queries.start("persist", lambda: (start_persist_query(spark, settings), None))
    click.echo(f"persist query running (master {settings.spark.master}, "
               f"checkpoint {persist_checkpoint_dir(settings)})")
    _serve(stop_session, queries, [], settings, stopping)


# What Spark's Kafka source reports when a checkpointed offset is no longer on the broker
# (failOnDataLoss: the job refuses to skip records silently).
_LOST_OFFSETS = "OffsetOutOfRange"


def _lost_offsets_help(queries: list, settings: Settings) -> str:
    return (
        "the stream job cannot resume: records its checkpoint still needed were deleted by "
        "Kafka's retention (ICU_KAFKA__RETENTION_HOURS) while it was stopped, and it does "
        "not skip records silently. Readings it had not yet processed are lost for the "
        "alarms; those the persist query had stored are in Cassandra. To start again "
        "from what the broker still holds, move the checkpoint directories aside "
        f"({settings.spark.checkpoint_dir}*, queries "
        f"{', '.join(str(q.name) for q in queries)}) and start the job again."
    )


def _stop_requests() -> list[int]:
    """SIGTERM and Ctrl-C from now on only append to the returned list, which ``_serve``
    watches. Installed before the Spark session starts: a stop that came while the
    queries were still starting killed the job (exit -15, no class archive written)
    instead of stopping it once they had started."""
    # Only a flag: stopping the queries from the handler would call into the JVM while
    # the main thread is inside another call on the same py4j connection, which breaks
    # both, so a stop exited 1 with tracebacks instead of 0.
    stopping: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # `kill -USR1 <driver>` writes every Python thread's stack to the job's log (code
    # locations only, no data): where a job that stopped making progress is waiting.
    # The process's own stderr (the log), whatever sys.stderr has been replaced with.
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    return stopping


def _supervisor(spark, settings: Settings) -> QuerySupervisor:
    cfg = settings.spark
    return QuerySupervisor(spark.streams, budget=cfg.query_restarts,
                           window_seconds=cfg.query_restart_window_seconds,
                           restartable=lambda error: _LOST_OFFSETS not in str(error))


def _serve(stop_session: Callable[[], None], queries: QuerySupervisor,
           closers: list[Callable[[], None]], settings: Settings,
           stopping: list[int]) -> None:
    """Until a stop request (``_stop_requests``), or a query fails beyond what its
    supervisor restarts: then stop every query, close the sinks."""
    try:
        while not stopping:
            queries.wait(1)
    except Exception as exc:
        if _LOST_OFFSETS in str(exc):
            raise click.ClickException(_lost_offsets_help(queries.queries, settings)) from None
        raise
    finally:
        queries.stop()
        for close in closers:
            close()
        stop_session()


@cli.command("waveforms")
def waveforms() -> None:
    """Store the waveform chunks of ``waveforms.raw`` in Cassandra until interrupted."""
    from streaming.waveform_sink import WaveformSink

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sink = WaveformSink(_settings())
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    click.echo("waveform sink running")
    try:
        sink.run(lambda: bool(stopping))
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
