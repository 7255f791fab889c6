"""A local server as a detached process (no Docker): pidfile, a file lock per server,
start once and wait until it serves clients, stop with SIGTERM then SIGKILL.

Every operation is idempotent and safe to run from several processes at once:
``start_server`` finds a running server by its pidfile (or, if that was lost, by its
command line) and only waits for it. Kafka (``ops/kafka_server.py``), Cassandra
(``ops/cassandra_server.py``), their secured variants (``ops/secure_services.py``) and the
Spark standalone daemons (``ops/spark_cluster.py``) are run through it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from backend.settings import Settings

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}



class ServiceError(RuntimeError):
    """A server could not be fetched, started, reached or stopped."""


def var_dir(settings: Settings, name: str) -> Path:
    return settings.cache_dir / "var" / name


def say(message: str) -> None:
    click.echo(message, err=True)


@dataclass
class Service:
    """A server as seen by ``start_*``/``status``."""

    name: str
    address: str  # host:port clients use
    pid: int | None  # None: not running, or running but not started by us (``external``)
    log: Path
    started: bool = False  # this call launched the process
    external: bool = False  # something else (e.g. Docker) serves the port
    ready_seconds: float = 0.0  # how long this call waited for readiness
    detail: str = ""

    @property
    def rss_mib(self) -> float | None:
        return rss_mib(self.pid) if self.pid else None


@dataclass
class ServerSpec:
    name: str
    main_class: str
    home: Path  # where the jars are
    var: Path
    host: str
    port: int  # the client port
    other_ports: list[int] = field(default_factory=list)
    local: bool = True  # the settings point at 127.0.0.1 (else: a remote server)
    setting: str = ""  # the setting that names the server, for messages
    config_name: str = ""  # the config file in ``var`` its command line names
    log_name: str = ""  # its log under ``var`` (default: its output file)

    @property
    def pidfile(self) -> Path:
        return self.var / f"{self.name}.pid"

    @property
    def out(self) -> Path:
        return self.var / f"{self.name}.out"

    @property
    def config(self) -> Path:
        return self.var / self.config_name

    @property
    def server_log(self) -> Path:
        return self.var / self.log_name if self.log_name else self.out

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    if not host:
        return address.strip(), default_port
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def is_ours(pid: int, spec: ServerSpec) -> bool:
    """``pid`` is a live JVM running our main class with our config file."""
    args = cmdline(pid)
    config = str(spec.config)
    return (spec.main_class in args and any(a.endswith(config) for a in args)
            and alive(pid))


def find_pid(spec: ServerSpec, *, repair: bool = False) -> int | None:
    """Our server's pid: from the pidfile, else by scanning /proc (a lost pidfile).
    With ``repair`` (only under the lock) the pidfile is rewritten or removed to match."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(spec.pidfile.read_text().strip())
        if is_ours(pid, spec):
            return pid
    found = next((int(e.name) for e in Path("/proc").iterdir()
                  if e.name.isdigit() and is_ours(int(e.name), spec)), None)
    if repair:
        if found is None:
            spec.pidfile.unlink(missing_ok=True)
        else:
            spec.pidfile.write_text(f"{found}\n")
    return found


@contextlib.contextmanager
def locked(spec: ServerSpec, timeout: float = 600) -> Iterator[None]:
    """One process at a time starts or stops a given server (other sessions wait)."""
    spec.var.mkdir(parents=True, exist_ok=True)
    with open(spec.var / f"{spec.name}.lock", "w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError(f"{spec.name}: lock held by another process for "
                                       f"{timeout:.0f}s ({spec.var / spec.name}.lock)") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def failure(spec: ServerSpec, message: str) -> ServiceError:
    parts = [f"{spec.name}: {message}"]
    for path in (spec.out, spec.server_log):
        parts.append(f"--- last lines of {path} ---\n{tail(path)}")
    return ServiceError("\n".join(parts))


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    binary = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not binary or not Path(binary).exists():
        raise ServiceError("java not found; install a JDK/JRE 17+ (apt-get install "
                           "openjdk-17-jre-headless) or set JAVA_HOME")
    return binary


def launch(spec: ServerSpec, argv: list[str]) -> int:
    """Start ``argv`` detached (own session, reparented to init, stdin closed, output
    appended to ``spec.out``) and record its pid."""
    spec.out.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.out, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n"
                  .encode())
    # A short-lived sh forks the server in the background and prints its pid, so the
    # server is not our child: no zombie, no ResourceWarning, survives this process.
    script = 'cd "$1" || exit 1; out="$2"; shift 2; "$@" </dev/null >>"$out" 2>&1 & echo $!'
    proc = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(spec.var), str(spec.out), *argv],
        capture_output=True, text=True, start_new_session=True, check=True, timeout=30,
    )
    pid = int(proc.stdout.strip())
    spec.pidfile.write_text(f"{pid}\n")
    return pid


def wait_ready(spec: ServerSpec, pid: int | None, probe: Callable[[], str | None],
                timeout: float) -> tuple[float, str]:
    """Poll ``probe`` (None = not yet, else a description) until it succeeds; fail fast
    if the process dies and with the log tail on timeout."""
    started = time.monotonic()
    deadline = started + timeout
    last = "port closed"
    while True:
        if pid is not None and not alive(pid):
            spec.pidfile.unlink(missing_ok=True)
            raise failure(spec, f"process {pid} exited during start-up")
        if port_open(spec.host, spec.port):
            try:
                detail = probe()
                if detail is not None:
                    return time.monotonic() - started, detail
                last = "port open, server not serving yet"
            except Exception as exc:
                last = f"port open, client failed: {exc!r}"[:300]
        if time.monotonic() > deadline:
            raise failure(spec, f"not accepting clients on {spec.address} after "
                                 f"{timeout:.0f}s (pid {pid}; last: {last})")
        time.sleep(0.25)


def check_ports_free(spec: ServerSpec) -> None:
    for port in (spec.port, *spec.other_ports):
        if port_open(spec.host, port):
            raise ServiceError(
                f"{spec.name}: port {spec.host}:{port} is in use by another program "
                f"(not a {spec.name} server this tool manages, and it does not answer as one)"
            )


def start_server(spec: ServerSpec, settings: Settings, probe: Callable[[], str | None],
           prepare: Callable[[], list[str]], timeout: float) -> Service:
    if not spec.local:
        raise ServiceError(f"{spec.setting} is not this machine; the local servers listen "
                           "on 127.0.0.1 only (use wait_until_ready for remote servers)")
    with locked(spec):
        pid = find_pid(spec, repair=True)
        if pid is not None:
            waited, detail = wait_ready(spec, pid, probe, timeout)
            return Service(spec.name, spec.address, pid, spec.server_log,
                           ready_seconds=waited, detail=detail)
        if port_open(spec.host, spec.port):
            # Not ours, but maybe a real server (Docker, a package install): use it.
            with contextlib.suppress(Exception):
                detail = probe()
                if detail is not None:
                    return Service(spec.name, spec.address, None, spec.server_log,
                                   external=True, detail=detail)
        check_ports_free(spec)
        argv = prepare()
        pid = launch(spec, argv)
        waited, detail = wait_ready(spec, pid, probe, timeout)
        return Service(spec.name, spec.address, pid, spec.server_log, started=True,
                       ready_seconds=waited, detail=detail)


def stop_server(spec: ServerSpec, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. True if something was stopped."""
    if not spec.local:
        return False
    with locked(spec):
        pid = find_pid(spec, repair=True)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            say(f"{spec.name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.1)
        spec.pidfile.unlink(missing_ok=True)
        return True


def common_jvm_flags() -> list[str]:
    return [
        "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-XX:+PerfDisableSharedMem",
        "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
        "-Dfile.encoding=UTF-8",
    ]


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Silence client libraries' connection-refused noise while probing."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for lg, _ in saved:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)
