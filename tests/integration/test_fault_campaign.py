"""The short fault campaign (``harness.campaign``): one fault of each kind - a Kafka broker
(the active controller), a Cassandra node, a Spark worker, the stream driver, the alert
manager, the web app, the SMTP server (down 60 s) - under a small steady load with
deterioration scenarios and malformed records, on the replicated set. Nothing may be lost
or duplicated anywhere (readings on the topic and in every table, alerts, e-mails per
recipient, dead letters), and the ward screen must show "data delayed" through the
driver's outage and clear it by itself. The full campaign: ``bench/fault_campaign.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.settings import Settings
from harness.campaign import Campaign, CampaignPlan, markdown, problems
from harness.isolation import Scratch

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.replicated]

SHORT = CampaignPlan(patients=24, down_seconds=15, settle_seconds=10, lead_seconds=20,
                     driver_down_seconds=40, smtp_down_seconds=60)


@pytest.mark.timeout(1800)
def test_nothing_lost_or_duplicated_through_one_fault_of_each_kind(
        replicated: Settings, tmp_path: Path) -> None:
    settings = Scratch().isolate(replicated, tmp_path / "checkpoints", marker="fc")
    campaign = Campaign(settings, SHORT, tmp_path)
    try:
        campaign.setup()
        campaign.run()
        campaign.drain()
        report = campaign.verify()
    finally:
        campaign.stop()
    print(markdown(report))
    found = problems(report, SHORT, settings.alerting.stale_after_seconds)
    assert not found, "\n".join(found)
    # the campaign exercised what it counts: alarms raised and mailed, malformed records
    windows = report["windows"].values()
    assert sum(c.get("alerts_expected", 0) for c in windows) > 0
    assert sum(c.get("emails_due", 0) for c in windows) > 0
    assert report["dead_letters"]["whole"] > 0
    assert [f["fault"] for f in report["faults"]] == list(SHORT.faults)
