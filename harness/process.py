"""An ``icu`` command as a child process: its own process group (so a test can kill the
whole tree like a crash), its output in a log file, "ready" when a line appears."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend.settings import Settings
from harness import REPO


class IcuProcess:
    """``python -m ops.cli ARGS`` (or ``python -m MODULE ARGS``) with ``settings`` as its
    environment."""

    def __init__(self, settings: Settings, args: list[str] | tuple[str, ...], log_path: Path,
                 ready_text: str | None = None, *, module: str = "ops.cli",
                 nice: int = 0) -> None:
        self.settings = settings
        self.module = module
        self.nice = nice
        self.args = tuple(args)
        self.log_path = log_path
        self.ready_text = ready_text
        self.proc: subprocess.Popen | None = None
        self._log_start = 0

    def start(self, timeout: float = 240) -> float:
        """Start it and wait for ``ready_text`` in its log; the seconds that took. Raises
        AssertionError (with the log's tail) if it exits or is not ready in time."""
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}
        t0 = time.monotonic()
        # a restart appends to the same log: only what this start writes counts
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)
        if self.ready_text:
            while self.ready_text not in self.text(since_start=True):
                if self.proc.poll() is not None:
                    raise AssertionError(f"`icu {' '.join(self.args)}` exited "
                                         f"{self.proc.returncode}:\n{self.tail()}")
                if time.monotonic() - t0 > timeout:
                    raise AssertionError(f"`icu {' '.join(self.args)}` not ready in "
                                         f"{timeout:.0f} s:\n{self.tail()}")
                time.sleep(0.1)
        return time.monotonic() - t0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process tree: no shutdown hook, no final commit."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM the process tree; SIGKILL it if it has not exited after ``timeout``."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)

    def text(self, *, since_start: bool = False) -> str:
        """The log; with ``since_start`` only what the latest start wrote."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start if since_start else 0)
            return f.read().decode(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])


class StreamJob(IcuProcess):
    """``icu stream run`` (or another stream ``command``, e.g. ``("stream", "risk")``)."""

    def __init__(self, settings: Settings, log_path: Path,
                 command: tuple[str, ...] = ("stream", "run"),
                 ready_text: str = "alarm query running") -> None:
        super().__init__(settings, command, log_path, ready_text)

    def start(self, ready_timeout: float = 180) -> float:
        return super().start(ready_timeout)

    def stacks(self, wait: float = 3.0) -> str:
        """Where the running job is waiting: its Python threads' stacks (SIGUSR1,
        ``streaming.stream_cli``) and its JVM's stream-execution threads (SIGQUIT, the
        JVM's thread dump), as the job wrote them to its log. For a job that stopped
        making progress."""
        if not self.alive():
            return ""
        start = self.log_path.stat().st_size
        os.kill(self.proc.pid, signal.SIGUSR1)
        for pid in _group_members(self.proc.pid):
            if _command(pid) == "java":
                os.kill(pid, signal.SIGQUIT)
        time.sleep(wait)
        with open(self.log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        return _interesting_threads(text)


def _group_members(pgid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    out.append(int(entry.name))
            except ProcessLookupError:
                pass
    return out


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _interesting_threads(dump: str, frames: int = 12) -> str:
    """The Python dump whole; of the JVM's, only the threads that run queries or talk
    to Kafka, each cut to its top ``frames`` frames."""
    keep, block, out = False, [], []
    for line in dump.splitlines():
        if line.startswith('"'):  # a JVM thread's header
            if keep:
                out.extend(block[:frames + 2])
            block = [line]
            keep = any(k in line for k in ("stream execution", "kafka", "Executor task"))
        elif block:
            block.append(line)
        else:
            out.append(line)
    if keep:
        out.extend(block[:frames + 2])
    return "\n".join(out)
