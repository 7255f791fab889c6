"""``icu demo``: the whole system on one machine, for a demonstration or a trial.

Starts Kafka and Cassandra, applies the schema, creates the demo users, registers the
shipped risk model when none is active (``ops/demo_model/``, see ``_demo_model``), then
runs the stream job, two simulators (a real MIMIC stay replayed, and generated patients
with scenarios), the alert manager, a mail catcher and the web app as child processes
sharing one configuration.

Ctrl-C (or SIGTERM) stops every process it started, including Kafka and Cassandra when
this run started them; servers that were already running are left alone, and the last
line says how to stop them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from backend.settings import Settings, get_settings

DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"


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


def _demo_model(settings: Settings) -> str:
    """Make sure a trained, evaluated risk model is active, so the Models page, the risk
    row of the timeline and the patients' risk are complete from the first minute.

    An active version is kept. Otherwise the shipped version in ``ops/demo_model/`` (the
    full PhysioNet/CinC 2019 set A, seed 0, with its evaluation on the held-out test
    patients; rebuilt by ``scripts/build_demo_model.sh``) is registered and activated:
    under a second, where training and evaluating in the background takes about two
    minutes on a quiet 2-core machine and competes with the stream job for the cores
    (docs/model.md, "Demo model"). Returns the line the demo prints."""
    from backend.risk import registry

    active = registry.active_version(settings)
    if active is not None:
        return f"Risk model: {active} (already active; icu model list)"
    archives = sorted(DEMO_MODEL_DIR.glob("*.tar.gz"))
    if not archives:
        return ("Risk model: none active and no shipped model in ops/demo_model/; "
                "train one with: icu model train && icu model evaluate")
    version, _ = registry.import_version(settings, archives[-1])
    registry.activate(settings, version)
    return f"Risk model: {version} (shipped demo model, activated; icu model list)"


def _stop_children(children: dict[str, subprocess.Popen], timeout: float = 30) -> None:
    for proc in children.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in children.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


DEMO_SECURITY_BANNER = (
    "!! DEMO MODE: NO AUTHENTICATION, NO TLS. Kafka and Cassandra accept anyone on this "
    "machine; never put patient data here.\n"
    "!! A secured setup: `icu services secure start` (docs/security.md, section 1).")


@click.command()
@click.option("--patients", default=30, show_default=True, help="generated patients")
@click.option("--wards", default=2, show_default=True)
@click.option("--replay-speed", default=60.0, show_default=True,
              help="MIMIC replay: recorded minutes per wall-clock minute")
@click.option("--keep-services/--stop-services", default=False, show_default=True,
              help="leave Kafka and Cassandra running when the demo stops (servers that "
                   "were already running are always left running)")
def cli(patients: int, wards: int, replay_speed: float, keep_services: bool) -> None:
    """Run the full system with simulated patients and print the demo logins."""
    from ops import services

    base = get_settings()
    settings = base.model_copy(update={"demo_mode": True})
    settings = settings.model_copy(
        update={"secret_key": type(settings.secret_key)(_secret_key(settings))}
    )
    log_dir = settings.cache_dir / "var" / "logs"
    children: dict[str, subprocess.Popen] = {}
    stopping = False
    # the servers running before the demo are left alone; the others it starts and stops
    # (decided up front, so a Ctrl-C while they are still starting stops them too)
    running_before = {name for name, s in services.status(settings).items()
                      if s.pid or s.external}

    def stop(*_: object) -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl-C: stop waiting politely
            raise KeyboardInterrupt
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        click.echo("== starting Kafka and Cassandra")
        click.echo(DEMO_SECURITY_BANNER)
        services.start_all(settings)
        _run(settings, children, log_dir, patients, wards, replay_speed)
        signal.signal(signal.SIGINT, stop)
        while not stopping:
            for name, proc in children.items():
                if name.startswith("waveform-replay"):
                    continue  # one-shot: they exit after sending
                if proc.poll() is not None:
                    click.echo(f"{name} exited with {proc.returncode}; see {log_dir}/{name}.log")
                    stopping = True
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish stopping whatever is pressed
        click.echo("stopping ...")
        _stop_children(children)
        to_stop, kept = shutdown_plan(services.SERVICES, running_before, keep_services)
        stopped = [n for n in to_stop if n in services.stop_all(settings, only=n)]
        click.echo(f"stopped: {', '.join(sorted(children) + stopped) or 'nothing'}")
        line = kept_line(kept, running_before)
        if line:
            click.echo(line)


def shutdown_plan(servers: tuple[str, ...], running_before: set[str],
                  keep_services: bool) -> tuple[list[str], list[str]]:
    """(servers to stop, servers kept running) when the demo ends: it stops the servers
    it started, unless told to keep them; servers running before it are never stopped."""
    ours = [n for n in servers if n not in running_before]
    to_stop = [] if keep_services else ours
    return to_stop, [n for n in servers if n not in to_stop]


def kept_line(kept: list[str], running_before: set[str]) -> str | None:
    """The one line that says which servers keep running, why, and how to stop them."""
    if not kept:
        return None
    names = " and ".join(n.capitalize() for n in kept)
    why = ("already running before the demo" if set(kept) <= running_before
           else "--keep-services")
    return (f"{names} {'keeps' if len(kept) == 1 else 'keep'} running ({why}); stop "
            f"{'it' if len(kept) == 1 else 'them'} with: icu services stop")


def _run(settings: Settings, children: dict[str, subprocess.Popen], log_dir: Path,
         patients: int, wards: int, replay_speed: float) -> None:
    """Everything after the servers: schema, users, model, history, the child processes
    (added to ``children`` as they start, so an interruption stops those already up)."""
    from backend import localtime
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from backend.users import ensure_demo_users
    from ops.topics import ensure_topics

    env = {**os.environ, **settings.to_env()}
    ensure_topics(settings)
    session = connect(settings.cassandra, keyspace=False, wait_seconds=120)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    logins = ensure_demo_users(session, settings)
    session.cluster.shutdown()
    model_line = _demo_model(settings)

    # Population view: a seeded 30-day history so the page has trends at once, then the
    # aggregation job every 15 minutes.
    click.echo("== seeding 30 days of ICU history for the population view")
    seed = subprocess.Popen([sys.executable, "-m", "ops.cli", "population", "seed-history",
                             "--days", "30", "--wards", "4", "--beds-per-ward", "10"],
                            env=env, start_new_session=True)
    children["seed-history"] = seed
    if seed.wait() != 0:
        raise click.ClickException("seeding the population history failed")
    del children["seed-history"]

    plan = {
        "stream": ["stream", "run"],
        "population": ["population", "aggregate", "--every", "15"],
        "replay": ["simulate", "replay", "--record", "s00001", "--speed", str(replay_speed),
                   "--loop"],
        "generate": ["simulate", "generate", "--patients", str(patients), "--wards",
                     str(wards), "--rate", "1"],
        "web": ["web", "run"],
        # the alert manager (escalation, e-mail) and a local SMTP catcher
        "mail": ["mail", "catcher"],
        "alerts": ["alerts", "manager"],
        # the waveform sink
        "waveforms": ["stream", "waveforms"],
    }
    for name, args in plan.items():
        children[name] = _spawn(name, args, env, log_dir)
    # recorded ECG/pleth for the first two generated patients (one-shot replays)
    for i, record in enumerate(("alarms2015/a103l", "mitdb/100"), start=1):
        children[f"waveform-replay-{i}"] = _spawn(
            f"waveform-replay-{i}", ["waveforms", "replay", "--record", record, "--patient",
                                     f"sim-0-{i:04d}", "--seconds", "330"], env, log_dir)

    click.echo("")
    click.echo(f"ICU Monitor is starting at {settings.web.public_url}")
    click.echo("Demo logins (new passwords each start; demo mode only):")
    for username, password, role in logins:
        click.echo(f"  {role:<13} {username:<12} {password}")
    click.echo(model_line)
    click.echo(f"Times are shown in {settings.timezone} "
               f"({localtime.clock(time.time() * 1000, settings.timezone)} now; "
               "set ICU_TIMEZONE to change)")
    click.echo(f"Alert e-mail is caught in {settings.cache_dir / 'mail'} (.eml files)")
    # demo users have addresses at localhost (backend.users.demo_email)
    click.echo("  to the role lists and the demo users (demo-nurse@localhost, ...)")
    click.echo(f"Logs: {log_dir}   Stop: Ctrl-C (stops everything the demo started)")
    click.echo(DEMO_SECURITY_BANNER)
