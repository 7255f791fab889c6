"""Who gets an alert's e-mail: the users table read per alert vs the 30 s cached read
(``backend.alerting.recipients.UserDirectory``), in the same run on real Cassandra.

    flock /tmp/icu-heavy.lock .venv/bin/python bench/bench_alert_recipients.py \\
        [--users 200 2000] [--alerts 300]

Creates a scratch keyspace (dropped afterwards), fills the users table with USERS rows
(a ward each out of 10, 90 % with an address, 5 % disabled; the password column holds a
placeholder, as no sign-in happens here), then computes the recipients of ALERTS alerts
(random ward and role) twice: with a cache interval of 0 (one full read of the users
per alert, what the manager would do without the cache) and of 30 s (the default).
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.alerting.recipients import UserDirectory  # noqa: E402
from backend.settings import Settings  # noqa: E402
from backend.storage.cassandra import connect  # noqa: E402
from backend.storage.migrate import migrate  # noqa: E402
from backend.users import list_users  # noqa: E402

ROLES = ("nurse", "charge_nurse", "physician")
WARDS = [f"ICU-{c}" for c in "ABCDEFGHIJ"]


def fill(session, n: int, rng: random.Random) -> None:
    insert = session.prepare(
        "INSERT INTO users (username, display_name, role, password_hash, disabled, is_demo,"
        " email, wards) VALUES (?, ?, ?, 'bench-placeholder', ?, false, ?, ?)")
    for i in range(n):
        name = f"u{i:05d}"
        email = f"{name}@hospital.org" if rng.random() < 0.9 else None
        session.execute(insert, (name, name, ROLES[i % 3], rng.random() < 0.05, email,
                                 {rng.choice(WARDS)}))


def run(session, alerts: list[tuple[str, str]], ttl: float) -> tuple[list[float], int, int]:
    directory = UserDirectory(lambda: list_users(session), ttl)
    times, total = [], 0
    for role, ward in alerts:
        t0 = time.perf_counter()
        total += len(directory.recipients(role, ward, [f"{role}@hospital.org"],
                                          demo_mode=False))
        times.append(time.perf_counter() - t0)
    return times, directory.loads, total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--alerts", type=int, default=300)
    args = ap.parse_args(argv)
    base = Settings()
    print(f"machine {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print("| users | alerts | per alert, read each time: median / p95 ms | table reads | "
          "per alert, 30 s cache: median / p95 ms | table reads | total time ratio |")
    print("|---|---|---|---|---|---|---|")
    for n in args.users:
        settings = base.model_copy(update={"cassandra": base.cassandra.model_copy(
            update={"keyspace": f"icu_bench_{uuid.uuid4().hex[:10]}"})})
        session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
        try:
            migrate(session, settings)
            session.set_keyspace(settings.cassandra.keyspace)
            rng = random.Random(n)
            fill(session, n, rng)
            alerts = [(rng.choice(ROLES), rng.choice(WARDS)) for _ in range(args.alerts)]
            run(session, alerts[:5], 0)  # warm-up: prepared statements, connections
            uncached, reads0, total0 = run(session, alerts, 0)
            cached, reads30, total30 = run(session, alerts, 30)
            assert total0 == total30, "the cache must not change who is mailed"

            def fmt(ts: list[float]) -> str:
                p95 = sorted(ts)[int(len(ts) * 0.95) - 1]
                return f"{statistics.median(ts) * 1e3:.2f} / {p95 * 1e3:.2f}"

            print(f"| {n:,} | {args.alerts} | {fmt(uncached)} | {reads0} | {fmt(cached)} | "
                  f"{reads30} | {sum(uncached) / sum(cached):.0f}x |")
        finally:
            session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}",
                            timeout=60)
            session.cluster.shutdown()


if __name__ == "__main__":
    main()
