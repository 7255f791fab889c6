"""What the benchmarks share: the machine, CPU and memory sampling, distributions (the
system's processes and isolated settings: ``harness``)."""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))



def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def dist(values: Iterable[float]) -> dict:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "p50": round(percentile(v, 50), 1), "p95": round(percentile(v, 95), 1),
            "p99": round(percentile(v, 99), 1), "max": round(v[-1], 1),
            "mean": round(sum(v) / len(v), 1)}


def machine_info() -> dict:
    from ops import artefacts

    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True,
                              timeout=20).stderr.splitlines()[0]
    except Exception as exc:  # report, do not fail the run
        java = repr(exc)
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                           text=True, timeout=10).stdout.strip()
    return {
        "nproc": os.cpu_count(), "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(), "python": platform.python_version(), "java": java,
        "kafka": artefacts.KAFKA_VERSION, "cassandra": artefacts.CASSANDRA_VERSION,
        "spark": artefacts.SPARK_VERSION, "git_commit": commit + ("+dirty" if dirty else ""),
        "load_avg_at_start": os.getloadavg(),
    }


def busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class Sampler(threading.Thread):
    """Every ``interval`` s: CPU seconds and RSS of named process trees (a root pid each;
    the stream job's tree split into its JVM, Python driver and Python workers)."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(daemon=True, name="sampler")
        self.interval = interval
        self.roots: dict[str, int] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._cpu: dict[tuple[int, float], tuple[str, float]] = {}
        self.peak_rss: dict[str, float] = defaultdict(float)
        self.rss_series: list[tuple[float, dict[str, float]]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def watch(self, name: str, pid: int | None) -> None:
        if pid:
            self.roots[name] = pid

    def _proc(self, pid: int) -> psutil.Process:
        p = self._procs.get(pid)
        if p is None or not p.is_running():  # gone, or its pid now another process's
            p = self._procs[pid] = psutil.Process(pid)
        return p

    def _members(self) -> list[tuple[str, psutil.Process]]:
        out = []
        for name, pid in list(self.roots.items()):
            root = self._procs.get(pid)
            if root is not None and not root.is_running():
                # A watched process that ended stays ended: its pid, reused by a later
                # process, must not count that process under this name.
                del self.roots[name]
                continue
            with contextlib.suppress(psutil.Error):
                root = self._proc(pid)
                out.append((f"{name}_py" if name == "job" else name, root))
                for child in root.children(recursive=True):
                    group = name
                    if name == "job":
                        try:
                            exe = child.name()
                        except psutil.Error:
                            continue
                        group = "job_jvm" if "java" in exe else "job_workers_py"
                    out.append((group, self._proc(child.pid)))
        return out

    def sample(self) -> None:
        rss: dict[str, float] = defaultdict(float)
        for group, proc in self._members():
            try:
                with proc.oneshot():
                    ct = proc.cpu_times()
                    mem = proc.memory_info().rss
                    born = proc.create_time()
            except psutil.Error:
                continue
            with self._lock:
                # by process, not pid: a reused pid is a new entry, the ended one's CPU
                # stays counted
                self._cpu[(proc.pid, born)] = (group, ct.user + ct.system)
            rss[group] += mem
        rss["job"] = sum(v for g, v in rss.items() if g.startswith("job_"))
        for group, value in rss.items():
            self.peak_rss[group] = max(self.peak_rss[group], value)
        self.rss_series.append((time.time(), dict(rss)))

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            with contextlib.suppress(Exception):
                self.sample()

    def stop(self) -> None:
        self._halt.set()

    def snapshot(self) -> dict:
        self.sample()
        with self._lock:
            cpu: dict[str, float] = defaultdict(float)
            for group, seconds in self._cpu.values():
                cpu[group] += seconds
        return {"t": time.time(), "cpu": dict(cpu), "busy": busy_seconds()}

    def peaks_mib(self) -> dict[str, int]:
        return {g: round(v / 2**20) for g, v in sorted(self.peak_rss.items())}


def cpu_between(a: dict, b: dict) -> dict:
    """Cores used per group between two snapshots, and by the rest of the machine."""
    wall = b["t"] - a["t"]
    groups = {g: round((b["cpu"].get(g, 0.0) - a["cpu"].get(g, 0.0)) / wall, 3)
              for g in sorted(set(a["cpu"]) | set(b["cpu"]))}
    ours = sum(groups.values())
    machine = (b["busy"] - a["busy"]) / wall
    job = sum(v for g, v in groups.items() if g.startswith("job_"))
    return {"wall_s": round(wall, 1), "cores": groups, "job_cores": round(job, 3),
            "machine_cores": round(machine, 3),
            "other_programs_cores": round(max(0.0, machine - ours), 3)}


