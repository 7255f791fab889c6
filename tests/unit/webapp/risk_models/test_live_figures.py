"""Live-monitoring figures and status of the models page (webapp.risk_models.live_figures) on
hand-made scores."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from backend.risk import drift
from backend.storage.risk_scores import ModelScore
from webapp.risk_models import live_figures as lv

REF = drift.reference(np.arange(1000) / 1000)
SCORE_REFERENCE = {"monitor_only": REF.to_dict(),
                   "with_labs": drift.Reference((0.5,), (0.5, 0.5), 10).to_dict()}
DAY1 = datetime(2026, 3, 1, tzinfo=UTC)


def rows(day: datetime, risks, patients: int = 10) -> list[ModelScore]:
    """Scores as the store reads them from the driver's rows (naive UTC datetimes)."""
    return [ModelScore.from_row({
        "hour_ts": (day + timedelta(hours=i % 24)).replace(tzinfo=None),
        "patient_id": f"p{i % patients}", "risk": float(r), "above": False,
        "monitor_only": True}) for i, r in enumerate(risks)]


def test_stable_day_then_drifting_day() -> None:
    same = rows(DAY1, np.arange(0, 1, 0.005))  # 200 scores spread like the reference
    high = rows(DAY1 + timedelta(days=1), np.full(100, 0.97))
    s = lv.summarize(same + high, SCORE_REFERENCE)
    assert s.reference_kind == "monitor_only" and s.n_scores == 300 and s.n_patients == 10
    assert [(d.day.day, d.n, d.status) for d in s.days] == [
        (1, 200, drift.Stability.STABLE), (2, 100, drift.Stability.DRIFT)]
    assert s.days[0].psi == pytest.approx(0.0, abs=1e-9)
    assert s.latest is s.days[1]
    # 24 distinct hours on each of 2 days, naive Cassandra datetimes read as UTC
    assert len(s.volume) == 48 and sum(s.volume.values()) == 300
    assert next(iter(s.volume)).tzinfo is UTC
    assert sum(s.live_shares) == pytest.approx(1.0)
    level, text = lv.status_text(s)
    assert level == "error" and text.startswith("⚠ DRIFT: PSI") and "2026-03-02" in text


def test_too_few_scores_gives_no_psi() -> None:
    s = lv.summarize(rows(DAY1, [0.1] * 10), SCORE_REFERENCE)
    assert s.latest is None and s.days[0].status is drift.Stability.TOO_FEW
    level, text = lv.status_text(s)
    assert level == "info" and "too few" in text


def test_reference_follows_labs_of_the_live_scores() -> None:
    with_labs = [dataclasses.replace(r, monitor_only=False) for r in rows(DAY1, [0.2] * 60)]
    assert lv.summarize(with_labs, SCORE_REFERENCE).reference_kind == "with_labs"


def test_figures_have_their_traces() -> None:
    s = lv.summarize(rows(DAY1, np.arange(0, 1, 0.01)) + rows(DAY1 + timedelta(days=1),
                                                             [0.5] * 10), SCORE_REFERENCE)
    assert lv.bin_labels(REF)[0].startswith("< 0.1") and len(lv.bin_labels(REF)) == 10
    assert len(lv.volume_figure(s).data) == 1
    # hours stay UTC instants on the axis, labelled in the hospital's local time
    local = lv.volume_figure(s, "Asia/Kolkata")
    assert local.layout.xaxis.title.text == "Hour scored (IST, Asia/Kolkata)"
    assert local.data[0].x[0] == "2026-03-01 00:00:00"
    assert local.data[0].customdata[0] == "01 Mar 05:30 IST"
    ticks = [datetime.fromisoformat(v).replace(tzinfo=UTC) for v in local.layout.xaxis.tickvals]
    assert [t.split("<br>")[0] for t in local.layout.xaxis.ticktext] == [
        (v + timedelta(hours=5, minutes=30)).strftime("%H:%M") for v in ticks]
    dist = lv.distribution_figure(s)
    assert [t.name for t in dist.data] == ["reference (test patients)", "live (this window)"]
    assert dist.data[0].marker.pattern.shape == "/"  # not by colour alone
    psi = lv.psi_figure(s)
    assert [t.name for t in psi.data] == ["PSI per day", "fewer than 50 scores"]
    assert list(psi.data[0].text) == ["stable"]


def test_bin_labels_are_distinct_for_close_deciles() -> None:
    # the real reference's lower deciles differ in the fourth decimal
    ref = drift.Reference((0.01594, 0.01637, 0.01673, 0.01693, 0.01746), (0.2,) * 6, 100)
    labels = lv.bin_labels(ref)
    assert len(set(labels)) == 6
    assert labels[:2] == ["< 0.0159", "0.0159–0.0164"]
