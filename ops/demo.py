"""``icu demo``: the whole system on one machine, for a demonstration or a trial.

Starts Kafka and Cassandra, applies the schema, creates the demo users, then runs the
stream job, two simulators (a real MIMIC stay replayed, and generated patients with
scenarios) and the web app as child processes sharing one configuration. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from backend.settings import Settings, get_settings


def _secret_key(settings: Settings) -> str:
    """The signing key: from the environment, else one generated per installation and
    kept (mode 0600) in the cache directory, so restarts keep sessions and e-mail links."""
    if settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    path = settings.cache_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
    return subprocess.Popen(
        [sys.executable, "-m", "ops.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@click.command()
@click.option("--patients", default=30, show_default=True, help="generated patients")
@click.option("--wards", default=2, show_default=True)
@click.option("--replay-speed", default=60.0, show_default=True,
              help="MIMIC replay: recorded minutes per wall-clock minute")
@click.option("--keep-services/--stop-services", default=True, show_default=True,
              help="leave Kafka and Cassandra running when the demo stops")
def cli(patients: int, wards: int, replay_speed: float, keep_services: bool) -> None:
    """Run the full system with simulated patients and print the demo logins."""
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from backend.users import ensure_demo_users
    from ops import services

    base = get_settings()
    settings = base.model_copy(update={"demo_mode": True})
    settings = settings.model_copy(
        update={"secret_key": type(settings.secret_key)(_secret_key(settings))}
    )
    env = {**os.environ, **settings.to_env()}
    log_dir = settings.cache_dir / "var" / "logs"

    click.echo("== starting Kafka and Cassandra")
    services.start_all(settings)
    services.ensure_topics(settings)
    session = connect(settings.cassandra, keyspace=False, wait_seconds=120)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    logins = ensure_demo_users(session, settings)
    session.cluster.shutdown()

    # Population view (issue 7): a seeded 30-day history so the page has trends at once,
    # then the aggregation job every 15 minutes.
    click.echo("== seeding 30 days of ICU history for the population view")
    subprocess.run([sys.executable, "-m", "ops.cli", "population", "seed-history", "--days",
                    "30", "--wards", "4", "--beds-per-ward", "10"], env=env, check=True)

    children = {
        "stream": _spawn("stream", ["stream", "run"], env, log_dir),
        "population": _spawn("population", ["population", "aggregate", "--every", "15"], env,
                             log_dir),
        "replay": _spawn("replay", ["simulate", "replay", "--record", "s00001",
                                    "--speed", str(replay_speed), "--loop"], env, log_dir),
        "generate": _spawn("generate", ["simulate", "generate", "--patients", str(patients),
                                        "--wards", str(wards), "--rate", "1"], env, log_dir),
        "web": _spawn("web", ["web", "run"], env, log_dir),
        # issue 4: the alert manager (escalation, e-mail) and a local SMTP catcher
        "mail": _spawn("mail", ["mail", "catcher"], env, log_dir),
        "alerts": _spawn("alerts", ["alerts", "manager"], env, log_dir),
    }
    # issue 5: the waveform sink, and recorded ECG/pleth for the first two generated
    # patients (one-shot replays: they exit after sending, so they are not watched)
    children["waveforms"] = _spawn("waveforms", ["stream", "waveforms"], env, log_dir)
    for i, record in enumerate(("alarms2015/a103l", "mitdb/100"), start=1):
        _spawn(f"waveform-replay-{i}", ["waveforms", "replay", "--record", record,
                                        "--patient", f"sim-0-{i:04d}", "--seconds", "330"],
               env, log_dir)

    click.echo("")
    click.echo(f"ICU Monitor is starting at {settings.web.public_url}")
    click.echo("Demo logins (new passwords each start; demo mode only):")
    for username, password, role in logins:
        click.echo(f"  {role:<13} {username:<12} {password}")
    click.echo(f"Alert e-mail is caught in {settings.cache_dir / 'mail'} (.eml files)")
    # issue useremail: demo users have addresses at localhost (backend.users.demo_email)
    click.echo("  to the role lists and the demo users (demo-nurse@localhost, ...)")
    click.echo(f"Logs: {log_dir}   Stop: Ctrl-C")

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    click.echo(f"{name} exited with {proc.returncode}; see {log_dir}/{name}.log")
                    stopping = True
            time.sleep(1)
    finally:
        click.echo("stopping ...")
        for proc in children.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in children.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not keep_services:
            services.stop_all(settings)
