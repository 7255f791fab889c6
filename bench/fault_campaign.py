"""The fault campaign (``harness.campaign``): the whole platform on the replicated set
under a steady paced load, each part killed in turn and brought back, everything counted
against what the devices sent. Results: docs/reliability.md.

    .venv/bin/python bench/fault_campaign.py --patients 200 --out docs/fault_campaign.json

Starts its own replicated set (a private cache directory, ports 24092-24094 / 24042,
storage 22000, JMX 22199-22201, ``-Dcassandra.unsafesystem=true`` unless ``--fsync``),
its own Spark master and workers, and stops all of it at the end. Exit status 1 when a
guarantee was broken (the problems are printed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import machine_info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=200, help="beds at 1 Hz")
    ap.add_argument("--down", type=float, default=30.0, help="seconds each part stays down")
    ap.add_argument("--settle", type=float, default=30.0,
                    help="seconds of steady load after each recovery")
    ap.add_argument("--lead", type=float, default=60.0, help="steady load before the first")
    ap.add_argument("--faults", default=None, help="comma-separated subset of the faults")
    ap.add_argument("--fsync", action="store_true", help="fsync Cassandra's system tables")
    ap.add_argument("--keep", action="store_true", help="leave the work directory")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from backend.settings import Settings
    from harness.campaign import FAULTS, Campaign, CampaignPlan, markdown, problems
    from harness.isolation import Scratch
    from harness.replicated_set import private_set
    from ops import cluster

    work = Path(tempfile.mkdtemp(prefix="icu-fault-campaign-"))
    loopback = Settings()
    # the set listens on loopback only: no credentials or TLS (allowed there only)
    loopback = loopback.model_copy(update={"allow_insecure_services": True})
    base = private_set(loopback, work / "cache", 24000)
    plan = CampaignPlan(patients=args.patients, down_seconds=args.down,
                        settle_seconds=args.settle, lead_seconds=args.lead,
                        faults=tuple(args.faults.split(",")) if args.faults else FAULTS)
    t0 = time.monotonic()
    cluster.start_cluster(base, spark=False, timeout=600, unsafe_system=not args.fsync)
    print(f"replicated set up in {time.monotonic() - t0:.0f} s (work: {work})", flush=True)
    campaign = None
    try:
        settings = Scratch().isolate(cluster.client_settings(base, spark_cluster=False),
                                     work / "checkpoints", marker="fc")
        campaign = Campaign(settings, plan, work, log=lambda m: print(m, flush=True))
        campaign.setup()
        campaign.run()
        campaign.drain()
        report = campaign.verify()
    finally:
        if campaign is not None:
            campaign.stop()
        cluster.stop_cluster(base, spark=False)
    report["machine"] = machine_info()
    report["command"] = " ".join(sys.argv)
    report["plan"] = asdict(plan)
    found = problems(report, plan, settings.alerting.stale_after_seconds)
    report["problems"] = found
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    print()
    print(markdown(report))
    print("\nPROBLEMS:\n  " + "\n  ".join(found) if found else "\nno problem found")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
