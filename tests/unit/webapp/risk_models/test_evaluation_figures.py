"""Figure and table builders of the model page (``webapp.risk_models.evaluation_figures``)
on a small hand-made evaluation document; the threshold-slider numbers are worked out by
hand."""

from __future__ import annotations

import copy

import pytest

from tests.risk_site_fixture import make_recalibration, make_sites
from webapp.risk_models import evaluation_figures as mv

BASE_CURVES = {  # NEWS2 >= 5 and >= 7 share the NEWS2 total curve, as in evaluation.json
    "roc_hourly": {"x": [0.0, 0.3, 1.0], "y": [0.0, 0.6, 1.0], "threshold": [None, 5.0, 0.0]},
    "pr_hourly": {"x": [0.6, 1.0], "y": [0.2, 0.1], "threshold": [5.0, 0.0]},
    "roc_patient": {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.75, 1.0], "threshold": [None, 5.0, 0.0]},
    "pr_patient": {"x": [0.75, 1.0], "y": [0.3, 0.2], "threshold": [5.0, 0.0]},
}


def _row(method: str, kind: str, threshold: float, **kw: float) -> dict:
    row = {"method": method, "kind": kind, "threshold": threshold, "auroc_hourly": 0.7,
           "auprc_hourly": 0.3, "auroc_patient": 0.75, "auprc_patient": 0.5,
           "sensitivity_hourly": 0.5, "specificity_hourly": 0.9, "sensitivity_patient": 0.75,
           "specificity_patient": 0.75, "utility": 0.2, "alerts_per_patient_day": 1.0,
           "median_lead_hours": 10.0, "brier": None}
    row.update(kw)
    return row


def make_eval() -> dict:
    """10 positive of 100 patient-hours; 4 septic of 20 patients."""
    model_curves = {
        "roc_hourly": {"x": [0.0, 0.1, 0.2, 0.5, 1.0], "y": [0.0, 0.4, 0.7, 0.9, 1.0],
                       "threshold": [None, 0.8, 0.5, 0.2, 0.1]},
        "pr_hourly": {"x": [0.4, 0.7, 0.9, 1.0], "y": [0.31, 0.28, 0.17, 0.1],
                      "threshold": [0.8, 0.5, 0.2, 0.1]},
        "roc_patient": {"x": [0.0, 0.125, 0.25, 1.0], "y": [0.0, 0.5, 0.75, 1.0],
                        "threshold": [None, 0.8, 0.5, 0.2]},
        "pr_patient": {"x": [0.5, 0.75, 1.0], "y": [0.5, 0.43, 0.2],
                       "threshold": [0.8, 0.5, 0.2]},
        "reliability_quantile_bins": {"bin_lower": [0.0, 0.1, 0.4], "bin_upper": [0.1, 0.4, 1.0],
                                      "mean_predicted": [0.05, 0.2, 0.6],
                                      "observed": [0.0, 0.1, 0.5], "count": [40, 40, 20]},
        "reliability_uniform_bins": {"bin_lower": [0.0, 0.5], "bin_upper": [0.5, 1.0],
                                     "mean_predicted": [0.1, 0.6], "observed": [0.05, 0.5],
                                     "count": [80, 20]},
        "alert_burden": {"threshold": [0.1, 0.2, 0.4, 0.8],
                         "sensitivity_patient": [1.0, 1.0, 0.75, 0.5],
                         "alerts_per_patient_day": [4.0, 2.0, 1.2, 0.2]},
    }
    return {
        "version": "20260101T000000Z", "evaluated": "2026-01-01T01:00:00+00:00",
        "n_patients": 20, "n_septic_patients": 4, "n_patient_hours": 100,
        "n_positive_hours": 10, "patient_days": 100 / 24, "threshold": 0.45,
        "table": [
            _row(mv.MODEL, "model", 0.45, brier=0.05, auroc_hourly_ci95=[0.61, 0.79]),
            _row("NEWS2 >= 5", "baseline", 5.0,
                 model_minus_this_auroc_hourly_ci95=[0.0123, 0.2]),
            _row("NEWS2 >= 7", "baseline", 7.0, sensitivity_hourly=0.3),
            _row("HR > 120 or SpO2 < 90", "baseline", 1.0,
                 equal_sensitivity={"test_curve": {"model_alerts_per_patient_day": 0.5},
                                    "validation_matched": {"model_alerts_per_patient_day": 0.6,
                                                           "model_sensitivity_patient": 0.7}}),
        ],
        "curves": {
            mv.MODEL: model_curves,
            "NEWS2 >= 5": copy.deepcopy(BASE_CURVES),
            "NEWS2 >= 7": copy.deepcopy(BASE_CURVES),
            "HR > 120 or SpO2 < 90": {
                "roc_hourly": {"x": [0.0, 0.05, 1.0], "y": [0.0, 0.1, 1.0],
                               "threshold": [None, 1.0, 0.0]},
                "pr_hourly": {"x": [0.1, 1.0], "y": [0.18, 0.1], "threshold": [1.0, 0.0]},
                "roc_patient": {"x": [0.0, 0.25, 1.0], "y": [0.0, 0.5, 1.0],
                                "threshold": [None, 1.0, 0.0]},
                "pr_patient": {"x": [0.5, 1.0], "y": [0.33, 0.2], "threshold": [1.0, 0.0]},
            },
        },
    }


# --- the threshold slider -------------------------------------------------------------------

def test_slider_offers_the_stored_thresholds_ascending_without_infinity() -> None:
    ev = make_eval()
    assert mv.slider_thresholds(ev, "hourly") == [0.1, 0.2, 0.5, 0.8]
    assert mv.slider_thresholds(ev, "patient") == [0.2, 0.5, 0.8]
    assert mv.nearest_index([0.1, 0.2, 0.5, 0.8], 0.45) == 2


def test_hourly_confusion_matrix_at_a_threshold_by_hand() -> None:
    op = mv.operating_point(make_eval(), 0.5, "hourly")
    # 10 positive, 90 negative hours; at 0.5: sensitivity 0.7, FPR 0.2
    assert (op["tp"], op["fn"], op["fp"], op["tn"]) == (7, 3, 18, 72)
    assert op["sensitivity"] == pytest.approx(0.7)
    assert op["specificity"] == pytest.approx(72 / 90)  # 0.8
    assert op["ppv"] == pytest.approx(7 / 25)  # 0.28
    # burden curve has 0.4 -> 1.2 and 0.8 -> 0.2; 0.5 is a quarter of the way
    assert op["alerts_per_patient_day"] == pytest.approx(1.2 - 0.25 * 1.0)
    assert op["threshold"] == 0.5


def test_patient_confusion_matrix_at_a_threshold_by_hand() -> None:
    op = mv.operating_point(make_eval(), 0.5, "patient")
    # 4 septic, 16 non-septic stays; sensitivity 0.75, FPR 0.25
    assert (op["tp"], op["fn"], op["fp"], op["tn"]) == (3, 1, 4, 12)
    assert op["specificity"] == pytest.approx(0.75)
    assert op["ppv"] == pytest.approx(3 / 7)


def test_operating_point_snaps_to_the_nearest_stored_point_and_clamps_the_burden() -> None:
    ev = make_eval()
    assert mv.operating_point(ev, 0.45, "hourly")["threshold"] == 0.5
    top = mv.operating_point(ev, 0.8, "hourly")
    assert (top["tp"], top["fp"]) == (4, 9)
    assert top["alerts_per_patient_day"] == pytest.approx(0.2)
    low = mv.operating_point(ev, 0.1, "hourly")  # everybody alerts
    assert (low["tp"], low["fp"], low["fn"], low["tn"]) == (10, 90, 0, 0)
    assert low["specificity"] == 0
    assert low["alerts_per_patient_day"] == pytest.approx(4.0)


def test_operating_point_without_a_burden_curve_has_no_alert_rate() -> None:
    ev = make_eval()
    del ev["curves"][mv.MODEL]["alert_burden"]
    assert mv.operating_point(ev, 0.5, "hourly")["alerts_per_patient_day"] is None


def test_ppv_from_rates_and_counts() -> None:
    assert mv.ppv(0.5, 0.9, 10, 90) == pytest.approx(5 / 14)
    assert mv.ppv(0.0, 1.0, 10, 90) is None


# --- figures ----------------------------------------------------------------------------------

def _names(fig) -> list[str]:
    return [t.name for t in fig.data]


@pytest.mark.parametrize("kind", ["roc", "pr"])
@pytest.mark.parametrize("level", ["hourly", "patient"])
def test_curve_figure_has_every_method_and_its_operating_point(kind: str, level: str) -> None:
    ev = make_eval()
    fig = mv.curve_figure(ev, kind, level)
    names = _names(fig)
    lines = [t for t in fig.data if t.mode == "lines"]
    # model, the NEWS2 curve once (>= 5 and >= 7 are the same score), reference, chance
    assert len(lines) == 4
    assert any(n.startswith("NEWS2 score (≥ 5, ≥ 7)") for n in names)
    assert any(n.startswith("HR > 120 or SpO2 < 90 (") for n in names)
    points = [t for t in fig.data if t.mode == "markers"]
    assert [p.name for p in points] == [f"{mv.label(r['method'])} at its threshold"
                                        for r in ev["table"]]
    # colour is never the only difference: NEWS2 >= 5 and >= 7 differ by symbol
    assert len({p.marker.symbol for p in points}) == len(points)
    model = next(t for t in fig.data if t.name.startswith(mv.MODEL))
    assert list(model.x) == ev["curves"][mv.MODEL][f"{kind}_{level}"]["x"]


def test_roc_operating_points_are_fpr_and_sensitivity() -> None:
    fig = mv.curve_figure(make_eval(), "roc", "hourly")
    p = next(t for t in fig.data if t.name == "NEWS2 ≥ 7 at its threshold")
    assert (p.x[0], p.y[0]) == pytest.approx((0.1, 0.3))
    assert fig.data[-1].name == "chance" and list(fig.data[-1].x) == [0, 1]


def test_pr_operating_points_use_ppv_and_the_prevalence_line() -> None:
    fig = mv.curve_figure(make_eval(), "pr", "hourly")
    p = next(t for t in fig.data if t.name == "NEWS2 ≥ 5 at its threshold")
    # sensitivity 0.5, specificity 0.9, 10/90 hours: PPV 5 / (5 + 9)
    assert (p.x[0], p.y[0]) == pytest.approx((0.5, 5 / 14))
    chance = fig.data[-1]
    assert chance.name == "chance (prevalence 0.100)" and list(chance.y) == [0.1, 0.1]


def test_calibration_has_the_diagonal_and_drops_bins_a_log_axis_cannot_show() -> None:
    ev = make_eval()
    q = mv.calibration_figure(ev, "quantile")
    model, diag = q.data[0], q.data[-1]
    assert list(model.x) == [0.2, 0.6] and list(model.y) == [0.1, 0.5]  # observed 0 dropped
    assert "Brier 0.0500" in model.name
    assert diag.name == "perfect calibration" and list(diag.x) == list(diag.y)
    assert q.layout.xaxis.type == "log"
    u = mv.calibration_figure(ev, "uniform")
    assert list(u.data[0].x) == [0.1, 0.6] and list(u.data[-1].x) == [0.0, 1.0]


def test_burden_figure_has_the_model_curve_every_method_and_the_slider_point() -> None:
    ev = make_eval()
    current = mv.operating_point(ev, 0.5, "patient")
    fig = mv.burden_figure(ev, current)
    curve = fig.data[0]
    assert list(curve.x) == [4.0, 2.0, 1.2, 0.2] and list(curve.y) == [1.0, 1.0, 0.75, 0.5]
    markers = [t.name for t in fig.data if t.mode == "markers"]
    assert markers[:-1] == [f"{mv.label(r['method'])} at its threshold" for r in ev["table"]]
    assert markers[-1] == "slider threshold"
    assert (fig.data[-1].x[0], fig.data[-1].y[0]) == pytest.approx((0.95, 0.75))


# --- tables and facts ------------------------------------------------------------------------

def test_tables_format_like_docs() -> None:
    ev = make_eval()
    ranking = mv.ranking_rows(ev)
    assert ranking[0][:3] == ["Model (GBT)", "0.700 (0.61–0.79)", "0.300"]
    assert ranking[0][5] == "0.0500" and ranking[1][5] == "–"
    assert ranking[1][7] == "+0.012 to +0.200"
    assert len(ranking[0]) == len(mv.RANKING_HEADER)
    operating = mv.operating_rows(ev)
    assert operating[2][:3] == ["NEWS2 ≥ 7", "7", "0.300"]
    assert operating[3][-1] == "0.50 / 0.60 (sens 0.70)"
    assert len(operating[0]) == len(mv.OPERATING_HEADER)
    assert mv.cohort_text(ev).startswith("20 held-out test patients (4 septic), 100 patient")


def test_version_picker_and_facts() -> None:
    metas = [{"version": "20260101T000000Z"}, {"version": "20260102T000000Z"}]
    opts = mv.version_options(metas, "20260101T000000Z")
    assert [o["value"] for o in opts] == ["20260102T000000Z", "20260101T000000Z"]
    assert opts[1]["label"].endswith("active") and "active" not in opts[0]["label"]
    facts = dict(mv.version_facts({"version": "v1", "created": "2026-01-01T00:00:00+00:00",
                                   "training_data_sha256": "ab" * 32, "features": ["a", "b"],
                                   "threshold": 0.0308, "threshold_monitor_only": 0.0293},
                                  "v1", "Europe/Berlin"))
    assert facts["Version"] == "v1 (active)"
    assert facts["Features"] == "2"
    assert facts["Training-data SHA-256"] == "ab" * 32
    assert facts["Threshold"] == "0.0308 (monitor only: 0.0293)"
    assert facts["Created"] == "2026-01-01 01:00:00 CET"  # local time, with the zone


# --- site-robust evaluation and local recalibration ------------------------------------------

def test_site_tables_and_targets_in_words() -> None:
    doc = make_sites()
    rows = mv.sites_rows(doc)
    assert len(rows) == 4 and all(len(r) == len(mv.SITES_HEADER) for r in rows)
    assert rows[0][:4] == ["Random patients", "with labs", "3,531 (310)", "0.810"]
    assert rows[2][8:11] == ["0.0270 (0.0260)", "0.60", "+0.50"]
    lines = mv.target_lines(doc)
    assert lines[0][:2] == ("Random patients", True)
    assert lines[0][2].startswith("meets every target")
    assert lines[1][1] is False
    assert "MISSES utility ≥ 0.35 (0.250)" in lines[1][2]
    assert "Brier below the base rate (0.0270 vs 0.0260)" in lines[1][2]


def test_site_baseline_verdicts_and_shortfalls_are_words() -> None:
    doc = make_sites()
    rows = mv.site_baseline_rows(doc)
    assert rows[0][1] == "qSOFA ≥ 2" and rows[0][2] == "0.40, 0.60"
    assert rows[0][4].startswith("meets: sens 0.80")
    assert rows[1][4].startswith("DOES NOT MEET: sens 0.30")
    short = mv.site_baseline_shortfalls(doc)
    assert short == ["Surgical ICU → medical ICU: the model does not beat qSOFA ≥ 2 "
                     "(sensitivity 0.30 below its 0.40)."]
    methods = mv.calibration_method_rows(doc)
    assert methods[1][1] == "Platt (logistic) (used)" and methods[0][1] == "none (raw trees)"


def test_site_calibration_figure_draws_each_split() -> None:
    fig = mv.sites_calibration_figure(make_sites())
    names = _names(fig)
    assert names[0].startswith("Random patients (slope 1.05")
    assert names[-1] == "perfect calibration" and len(names) == 3
    assert fig.layout.xaxis.type == "log"
    assert fig.data[0].line.dash != fig.data[1].line.dash  # not colour alone


def test_recalibration_rows_and_figure() -> None:
    recal = make_recalibration()
    rows = mv.recalibration_rows(recal)
    assert [r[1] for r in rows] == ["before", "after", "before", "after"]
    assert rows[0][0] == "100 used for fitting (6 septic)" and rows[2][0].startswith(
        "100 held out")
    assert rows[0][6] == "2.40" and rows[1][2] == "0.0100 (0.0110)"
    assert "same hours alert" in mv.recalibration_text(recal)
    fig = mv.recalibration_figure(recal)
    assert [t.name.split(" (")[0] for t in fig.data] == [
        "before recalibration", "after recalibration", "perfect calibration"]
    assert "held-out stays" in fig.layout.title.text
