"""What one history row costs in Cassandra on this machine, client and server side.

``ReadingStore.write`` (unlogged per-partition batches, as the stream sink writes them) of
realistic ``ValidatedReading``s, alternating the driver's protocol compression (lz4, the
default when the ``lz4`` package is installed) on and off in the same run, so the two
read as a ratio rather than as absolute times on a shared machine. It reports rows/s, the
client's CPU per row (this process) and the server's (the Cassandra process, via psutil).
These are the per-reading floors the pipeline's throughput target is measured against.

    .venv/bin/python bench/bench_cassandra_rows.py [--rows 50000] [--rounds 2]

Needs the local Cassandra (``icu services start``); writes into its own keyspace and drops it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pipeline as bp

import backend.storage.cassandra as cassandra_conn
from backend.settings import Settings
from backend.storage.migrate import migrate
from backend.storage.readings import ReadingStore
from devices.generator import GeneratorConfig, plan_patients
from ops import services as svc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--chunk", type=int, default=10_000, help="rows per write (a micro-batch)")
    ap.add_argument("--rounds", type=int, default=2, help="on/off pairs")
    args = ap.parse_args()
    settings = bp.bench_settings(Settings(), bp.parse_args([]), Path(tempfile.mkdtemp()))
    session = cassandra_conn.connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    cfg = GeneratorConfig(start_ms=bp.PLACEHOLDER_MS, patients=2000, wards=80, rate_hz=5.0,
                          duration_s=args.rows / 10_000 + 1, seed=11, id_prefix="bload",
                          ward_prefix="BL-")
    ordered = sorted(bp.generate_shares([(cfg, 0, 1, None)])[0][0], key=lambda r: r[2])
    admitted = int(bp.now_ms()) - 86_400_000
    census = {p.patient_id: p.admission(admitted) for p in plan_patients(cfg)}
    shift = int(bp.now_ms()) - ordered[-1][2]
    readings = bp.validated_readings([(o.key, o.value, o.ts) for o in bp.shifted(ordered, shift)],
                                     census, settings)[:args.rows]
    server = psutil.Process(svc.status(settings)["cassandra"].pid)
    make_cluster = cassandra_conn.make_cluster
    print(f"{len(readings):,} readings, chunks of {args.chunk:,}")
    try:
        for compression in [True, False] * args.rounds:
            def with_compression(cfg, compression=compression):
                cluster = make_cluster(cfg)
                cluster.compression = compression
                return cluster
            cassandra_conn.make_cluster = with_compression
            s = cassandra_conn.connect(settings.cassandra, wait_seconds=10)
            store = ReadingStore(s)
            store.write(readings[: args.chunk // 5])  # warm: prepared statements, pool
            c0, w0 = time.process_time(), time.perf_counter()
            s0 = sum(server.cpu_times()[:2])
            for i in range(0, len(readings), args.chunk):
                store.write(readings[i : i + args.chunk])
            wall = time.perf_counter() - w0
            client = time.process_time() - c0
            srv = sum(server.cpu_times()[:2]) - s0
            n = len(readings)
            print(f"compression {'lz4' if compression else 'off'}: {n / wall:,.0f} rows/s, "
                  f"client {client / n * 1e6:.0f} us/row, server {srv / n * 1e6:.0f} us/row")
            s.cluster.shutdown()
    finally:
        cassandra_conn.make_cluster = make_cluster
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}")
        session.cluster.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
