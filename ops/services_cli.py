"""``icu services``: fetch, start, stop and inspect the local servers (and, through
``icu services secure``, the secured ones of ``ops/secure_services.py``)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import click

from backend.settings import Settings, get_settings
from ops.artefacts import fetch_all
from ops.cassandra_server import cassandra_spec
from ops.kafka_server import kafka_spec
from ops.server_processes import Service, ServiceError, tail
from ops.services import SERVICES, start_all, status, stop_all
from ops.topics import ensure_topics, kafka_topics


def _settings_or_exit() -> Settings:
    return get_settings()


def echo_service(s: Service) -> None:
    if s.external:
        how = "already served by another program (not managed here)"
    elif s.started:
        how = f"started, pid {s.pid}, ready in {s.ready_seconds:.1f}s"
    else:
        how = f"already running, pid {s.pid}"
    click.echo(f"{s.name:<10} {s.address:<16} {how}; {s.detail}")


def _run(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None


class _Group(click.Group):
    """``secure``: the secured servers (ops/secure_services.py), imported when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "secure"])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "secure":
            from ops.secure_services import cli as secure

            return secure
        return super().get_command(ctx, name)


@click.group(cls=_Group)
def cli() -> None:
    """Local Kafka and Cassandra servers (no Docker), and the Spark connector jars."""


@cli.command()
def fetch() -> None:
    """Fetch Kafka, Cassandra and the Spark Kafka connector from Maven Central (cached)."""
    settings = _settings_or_exit()
    started = time.monotonic()
    got = _run(lambda: fetch_all(settings))
    assert isinstance(got, dict)
    for name, jars in got.items():
        click.echo(f"{name:<10} {len(jars):>3} jars in {jars[0].parent if jars else '-'}")
    click.echo(f"done in {time.monotonic() - started:.1f}s")


@cli.command()
@click.option("--only", type=click.Choice(SERVICES), help="start just this server")
@click.option("--timeout", default=180.0, show_default=True, help="seconds to wait per server")
@click.option("--unsafe-system", is_flag=True,
              help="Cassandra: no fsync of system tables (faster schema; for tests)")
@click.option("--topics/--no-topics", default=True, show_default=True,
              help="create the Kafka topics of the settings")
@click.option("--spark", "spark", is_flag=True,
              help="also a Spark standalone master and its workers (ops/spark_cluster.py)")
@click.option("--cluster", "cluster", is_flag=True,
              help="the replicated set instead: 3 Kafka brokers, 3 Cassandra nodes, Spark "
                   "master and workers (ops/cluster.py; `icu services env --cluster`)")
def start(only: str | None, timeout: float, unsafe_system: bool, topics: bool,
          spark: bool, cluster: bool) -> None:
    """Start the local servers (idempotent) and wait until they accept clients."""
    settings = _settings_or_exit()
    if cluster:
        from ops.cluster import env_lines, start_cluster

        t0 = time.monotonic()
        for s in _run(lambda: start_cluster(settings, timeout=max(timeout, 300),  # type: ignore[union-attr]
                                            topics=topics, unsafe_system=unsafe_system)):
            echo_service(s)
        click.echo(f"replicated set ready in {time.monotonic() - t0:.0f}s; point the "
                   "clients at it with:")
        click.echo("\n".join(env_lines(settings)))
        return
    services = _run(lambda: start_all(settings, only=only, unsafe_system=unsafe_system,
                                      timeout=timeout))
    assert isinstance(services, dict)
    for s in services.values():
        echo_service(s)
    click.echo("NO AUTHENTICATION, NO TLS: development servers for this machine only "
               "(`icu services secure start` runs secured ones)")
    if spark:
        from ops.spark_cluster import start_spark

        for s in _run(lambda: start_spark(settings, timeout=timeout)):  # type: ignore[union-attr]
            echo_service(s)
        click.echo(f"stream job: icu stream run --master {settings.spark.cluster_url}")
    if topics and "kafka" in services:
        created = _run(lambda: ensure_topics(settings))
        click.echo(f"topics: created {', '.join(created)}" if created  # type: ignore[arg-type]
                   else "topics: all present")


@cli.command()
@click.option("--only", type=click.Choice(SERVICES), help="stop just this server")
@click.option("--cluster", "cluster", is_flag=True, help="the replicated set instead")
def stop(only: str | None, cluster: bool) -> None:
    """Stop the local servers this tool started (SIGTERM, then SIGKILL)."""
    from ops.spark_cluster import stop_spark

    settings = _settings_or_exit()
    if cluster:
        from ops.cluster import stop_cluster

        gone = _run(lambda: stop_cluster(settings))
        click.echo(f"stopped: {', '.join(gone)}" if gone  # type: ignore[arg-type]
                   else "nothing was running")
        return
    spark = [] if only else _run(lambda: stop_spark(settings))
    stopped = [*spark, *_run(lambda: stop_all(settings, only=only))]  # type: ignore[misc]
    click.echo(f"stopped: {', '.join(stopped)}" if stopped  # type: ignore[arg-type]
               else "nothing was running")


def _cluster_status(settings: Settings) -> bool:
    from ops.cluster import cluster_status

    ok = True
    for s in cluster_status(settings):
        proc = f"pid {s.pid}, RSS {s.rss_mib or 0:.0f} MiB" if s.pid else "not running"
        ok &= bool(s.detail)
        click.echo(f"{s.name:<14} {s.address:<16} {proc:<28} "
                   f"{s.detail or 'NOT accepting clients'}")
    return ok


@cli.command("status")
@click.option("--cluster", "cluster", is_flag=True,
              help="only the replicated set (exit 1 unless every member answers)")
def status_cmd(cluster: bool) -> None:
    """Each server, its pid and memory, and whether it accepts clients (exit 1 if not all
    do); the replicated set's members too when any of them runs."""
    settings = _settings_or_exit()
    if cluster:
        sys.exit(0 if _cluster_status(settings) else 1)
    result = _run(lambda: status(settings))
    assert isinstance(result, dict)
    ok = True
    for s in result.values():
        if s.pid:
            proc = f"pid {s.pid}, RSS {s.rss_mib or 0:.0f} MiB"
        elif s.external:
            proc = "not managed here"
        else:
            proc = "not running"
        accepting = f"accepting clients: {s.detail}" if s.detail else "NOT accepting clients"
        ok &= bool(s.detail)
        click.echo(f"{s.name:<10} {s.address:<16} {proc:<28} {accepting}")
    from ops.cluster import any_running
    from ops.spark_cluster import spark_status

    if any_running(settings):  # listed only when it runs (it is optional)
        click.echo("replicated set (`icu services status --cluster`):")
        _cluster_status(settings)
    else:
        for s in spark_status(settings):  # listed only when it runs (it is optional)
            if s.pid:
                click.echo(f"{s.name:<14} {s.address:<16} pid {s.pid}, RSS "
                           f"{s.rss_mib or 0:.0f} MiB  {s.detail or 'NOT ready'}")
    sys.exit(0 if ok else 1)


@cli.command("env")
@click.option("--cluster", "cluster", is_flag=True, required=True,
              help="the replicated set's client settings")
def env_cmd(cluster: bool) -> None:
    """Print the ICU_* variables that point every command at the replicated set:
    eval "$(icu services env --cluster)"."""
    from ops.cluster import env_lines

    click.echo("\n".join(env_lines(_settings_or_exit())))


@cli.command("spark-daemon")
@click.argument("role", type=click.Choice(["master", "worker"]))
@click.option("--master-url", default=None, help="the master a worker joins")
def spark_daemon(role: str, master_url: str | None) -> None:
    """Run a Spark standalone master or worker in the foreground (containers; on this
    machine `icu services start --spark` runs them detached)."""
    from ops.spark_cluster import daemon_env, foreground_argv

    settings = _settings_or_exit()
    argv = foreground_argv(settings, role, master_url)
    daemon_env()
    os.execv(argv[0], argv)


@cli.command()
def topics() -> None:
    """Create the Kafka topics of the settings (idempotent)."""
    settings = _settings_or_exit()
    created = _run(lambda: ensure_topics(settings))
    for name, parts in kafka_topics(settings).items():
        mark = "created" if name in created else "exists"  # type: ignore[operator]
        click.echo(f"{name:<28} {parts:>3} partitions  {mark}")


@cli.command("logs")
@click.argument("name")
@click.option("-n", "--lines", default=50, show_default=True)
def logs_cmd(name: str, lines: int) -> None:
    """The last lines of a server's log: kafka, cassandra, or a member of the replicated
    set (kafka-1, cassandra-2, ...)."""
    settings = _settings_or_exit()
    if name in SERVICES:
        spec = kafka_spec(settings) if name == "kafka" else cassandra_spec(settings)
    else:
        from ops.cluster import member

        spec = _run(lambda: member(settings, name)).spec  # type: ignore[union-attr]
    click.echo(f"--- {spec.server_log}")
    click.echo(tail(spec.server_log, lines))
