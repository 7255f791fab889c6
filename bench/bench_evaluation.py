"""Throughput of the per-record core of the stream job, on one core, without Spark.

    .venv/bin/python bench/bench_evaluation.py [--readings 200000] [--patients 200]
                                              [--batch 50] [--faults 0.01]

Data: the seeded simulator (``devices.generator``: every scenario, incl. motion artefacts
and sensor disconnects, 1 Hz, NIBP/temperature/charting as a monitor sends them), encoded
as on the wire (``devices.wire``), with ``--faults`` of the messages made malformed by
``devices.faults``. Measured, each as readings per second of wall time:

* ``validate``: ``backend.validation.validate`` on the raw bytes (census = a dict);
  for comparison also its first step alone (pydantic-core parsing and type-checking against
  the strict schema), ``json.loads`` alone, and building the pydantic model
  (``DeviceReading.model_validate_json``).
* ``process``: ``backend.alerting.evaluation.process`` over each patient's accepted
  readings in batches of ``--batch`` (what one micro-batch brings per patient), alone and
  including the state's JSON round trip per call (``from_json``/``to_json``, as Spark
  stores it), as the stream job calls it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import time
from collections import defaultdict

from backend.alerting.evaluation import PatientState, process
from backend.messages import DeviceReading
from backend.settings import AlertingSettings
from backend.validation import _MESSAGE, Accepted, validate
from devices.faults import inject
from devices.generator import GeneratorConfig, generate, plan_patients

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the best of ``repeat`` runs.

    CPU time of this process is what one core spends; wall time also counts the time
    other processes took the core from us (it equals CPU time on an idle machine).
    """
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.process_time() - c0, time.perf_counter() - w0))
    return best


def _report(label: str, n: int, fn, repeat: int) -> None:
    cpu, wall = _timed(fn, repeat)
    print(f"{label:<26}{n / cpu:>10,.0f} readings/s per core  ({cpu / n * 1e6:6.2f} us CPU "
          f"per reading; wall {n / wall:,.0f}/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readings", type=int, default=200_000)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--batch", type=int, default=50, help="readings per patient per call")
    ap.add_argument("--faults", type=float, default=0.01)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    cfg = GeneratorConfig(start_ms=START_MS, patients=args.patients, wards=4,
                          duration_s=args.readings / args.patients + 1,
                          scenario_mix={"sepsis": 10, "desaturation": 10, "tachycardia": 10,
                                        "hypotension": 10, "sensor_disconnect": 10,
                                        "motion_artefact": 10},
                          seed=7)
    plans = plan_patients(cfg)
    census = {p.patient_id: p.admission(START_MS) for p in plans}
    t0 = time.perf_counter()
    records = list(inject(generate(cfg, plans), args.faults, seed=7))[: args.readings]
    raws = [r.value for r in records]
    received = [r.ts + 150 for r in records]
    print(f"data: {len(raws):,} messages of {args.patients} simulated patients "
          f"({sum(map(len, raws)) / len(raws):.0f} bytes average, {args.faults:.1%} faulty), "
          f"generated in {time.perf_counter() - t0:.1f} s")
    alerting = AlertingSettings()

    del records
    # The inputs live for the whole run; keep the collector from rescanning them, as a
    # stream worker's heap holds one micro-batch, not 200k messages.
    gc.collect()
    gc.freeze()

    def run_validate() -> None:
        for raw, rts in zip(raws, received, strict=True):
            validate(raw, received_ts=rts, census=census, cfg=alerting)

    def run_pydantic() -> None:
        for raw in raws:
            with contextlib.suppress(ValueError):
                DeviceReading.model_validate_json(raw)

    def run_schema() -> None:
        for raw in raws:
            with contextlib.suppress(ValueError):
                _MESSAGE.validate_json(raw)

    def run_json() -> None:
        for raw in raws:
            with contextlib.suppress(ValueError):
                json.loads(raw)

    n = len(raws)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores"
          + ("  (busy machine: wall-time rates are low, CPU-time rates less so)"
             if load > 1.5 else ""))
    _report("validate", n, run_validate, args.repeat)
    _report("  its schema step alone", n, run_schema, args.repeat)
    _report("  json.loads alone", n, run_json, args.repeat)
    _report("  DeviceReading model", n, run_pydantic, args.repeat)
    outcomes = [validate(raw, received_ts=rts, census=census, cfg=alerting)
                for raw, rts in zip(raws, received, strict=True)]
    accepted = [o.reading for o in outcomes if isinstance(o, Accepted)]
    del outcomes
    gc.collect()
    gc.freeze()
    print(f"  accepted {len(accepted):,}, rejected {n - len(accepted):,}")

    by_patient: dict[str, list] = defaultdict(list)
    for r in accepted:
        by_patient[r.patient_id].append(r)
    batches = [(pid, rs[i: i + args.batch]) for pid, rs in by_patient.items()
               for i in range(0, len(rs), args.batch)]
    # Interleave patients as micro-batches would: batch k of every patient, then k+1.
    batches.sort(key=lambda b: b[1][0].ts)
    stats: dict[str, int] = defaultdict(int)

    def run_process(json_state: bool) -> None:
        states: dict[str, object] = {}
        stats.clear()
        for pid, rs in batches:
            admission = census[pid]
            if json_state:
                s = states.get(pid)
                st = PatientState.from_json(s) if s is not None else PatientState.new(pid)
            else:
                st = states.get(pid) or PatientState.new(pid)
            st, results = process(st, rs, admission=admission, now_ms=rs[-1].ts + 200,
                                  cfg=alerting)
            states[pid] = st.to_json() if json_state else st
            for res in results:
                stats[type(res).__name__ + getattr(res, "event", "")] += 1

    m = len(accepted)
    _report("process", m, lambda: run_process(False), args.repeat)
    _report("process + state JSON", m, lambda: run_process(True), args.repeat)
    print(f"  {len(batches):,} calls of <= {args.batch} readings; results: {dict(stats)}")


if __name__ == "__main__":
    main()
