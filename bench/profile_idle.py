"""Where an idle stream job spends its CPU, per process and per JVM thread (names from
``jcmd Thread.print``), over SECONDS after DELAY s of rest (docs/benchmarks.md, "Where an
idle stream job's CPU goes").

    .venv/bin/python bench/profile_idle.py [SECONDS] [PATIENTS] [DELAY] [JAVA_OPTS]
"""
from __future__ import annotations

import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import psutil
from bench_stream import admit

from backend.settings import get_settings
from harness.isolation import Scratch
from harness.process import StreamJob

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 60
PATIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
DELAY = float(sys.argv[3]) if len(sys.argv) > 3 else 30
JAVA_OPTS = sys.argv[4] if len(sys.argv) > 4 else ""
TCK = 100.0


def threads(pid: int) -> dict[int, float]:
    out = {}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            f = (t / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(t.name)] = (int(f[11]) + int(f[12])) / TCK
        except (OSError, IndexError):
            pass
    return out


def jvm_names(pid: int) -> dict[int, str]:
    text = subprocess.run(["jcmd", str(pid), "Thread.print"], capture_output=True,
                          text=True).stdout
    names = {}
    for m in re.finditer(r'^"([^"]+)".*?nid=0x([0-9a-f]+)', text, re.M):
        names[int(m.group(2), 16)] = m.group(1)
    return names


def norm(name: str) -> str:
    return re.sub(r"\d+", "N", name)


work = Path(tempfile.mkdtemp(prefix="idle-"))
base = get_settings()
scratch = Scratch()
s = scratch.isolate(base, work / "cp" / "vitals", marker="idle", allow_insecure_services=True,
                    alerting={"stale_after_seconds": 3600.0},
                    spark={"driver_java_options": JAVA_OPTS})
admit(s, PATIENTS)
job = StreamJob(s, work / "job.log")
try:
    print("ready in", round(job.start(), 1), "s", flush=True)
    time.sleep(DELAY)
    root = psutil.Process(job.pid)
    procs = [root, *root.children(recursive=True)]
    jvm = next(p for p in procs if "java" in p.name())
    names = jvm_names(jvm.pid)
    a = {p.pid: threads(p.pid) for p in procs}
    pa = {p.pid: sum(p.cpu_times()[:2]) for p in procs}
    time.sleep(SECONDS)
    procs = [p for p in (root, *root.children(recursive=True))
             if p.status() != psutil.STATUS_ZOMBIE]
    names.update(jvm_names(jvm.pid))
    b = {p.pid: threads(p.pid) for p in procs}
    total = 0.0
    for p in procs:
        cpu = sum(p.cpu_times()[:2]) - pa.get(p.pid, 0.0)
        total += cpu
        print(f"process {p.pid} {p.name():12s} {' '.join(p.cmdline()[-2:])[:60]:60s} "
              f"{cpu / SECONDS:.3f} core")
    print(f"total {total / SECONDS:.3f} core")
    by = collections.Counter()
    for tid, t in b.get(jvm.pid, {}).items():
        d = t - a.get(jvm.pid, {}).get(tid, 0.0)
        if d > 0:
            by[norm(names.get(tid, f"tid{tid}"))] += d
    print("JVM threads (core):")
    for name, d in by.most_common(25):
        print(f"  {d / SECONDS:.4f}  {name}")
    log = (work / "job.log").read_text()
    print("micro-batches logged:", len(re.findall(r"streaming.sink batch", log)),
          "persist:", len(re.findall(r"persist batch", log)))
finally:
    job.stop()
    scratch.drop(s)
