"""The model-performance page in headless Chromium against the real app and Cassandra.

The app reads its models from ``settings.cache_dir / "models"``; here that is a temporary
registry with two tiny versions (one active and evaluated by hand, one not evaluated),
so nothing is trained and the numbers on the page can be checked by hand.
"""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from backend.auth_policy import Role
from backend.risk import drift, registry
from backend.risk.live import HOUR_MS, HourScore
from backend.settings import Settings
from backend.storage.risk_scores import RiskScoreStore
from tests.browser.support import click, wait, wait_text
from tests.risk_site_fixture import make_recalibration, make_sites

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ACTIVE, OTHER = "20260101T000000Z", "20260102T000000Z"
GRAPHS = ("models-roc", "models-pr", "models-calibration", "models-burden",
          "models-sites-calibration")
MODEL = "Model (GBT)"
# live monitoring: reference deciles at 0.1, 0.2, ... 0.9
REFERENCE = drift.reference(np.arange(1000) / 1000)


def _row(method: str, kind: str, threshold: float, **kw: object) -> dict:
    row = {"method": method, "kind": kind, "threshold": threshold, "auroc_hourly": 0.7,
           "auprc_hourly": 0.3, "auroc_patient": 0.75, "auprc_patient": 0.5,
           "sensitivity_hourly": 0.5, "specificity_hourly": 0.9, "sensitivity_patient": 0.75,
           "specificity_patient": 0.75, "utility": 0.2, "alerts_per_patient_day": 1.0,
           "median_lead_hours": 10.0, "brier": None}
    return {**row, **kw}


def _evaluation() -> dict:
    """10 positive of 100 patient-hours, 4 septic of 20 patients; every baseline."""
    base = {
        "roc_hourly": {"x": [0.0, 0.3, 1.0], "y": [0.0, 0.6, 1.0], "threshold": [None, 5, 0]},
        "pr_hourly": {"x": [0.6, 1.0], "y": [0.2, 0.1], "threshold": [5, 0]},
        "roc_patient": {"x": [0.0, 0.5, 1.0], "y": [0.0, 0.75, 1.0], "threshold": [None, 5, 0]},
        "pr_patient": {"x": [0.75, 1.0], "y": [0.3, 0.2], "threshold": [5, 0]},
    }
    model = {
        "roc_hourly": {"x": [0.0, 0.1, 0.2, 0.5, 1.0], "y": [0.0, 0.4, 0.7, 0.9, 1.0],
                       "threshold": [None, 0.8, 0.5, 0.2, 0.1]},
        "pr_hourly": {"x": [0.4, 0.7, 0.9, 1.0], "y": [0.31, 0.28, 0.17, 0.1],
                      "threshold": [0.8, 0.5, 0.2, 0.1]},
        "roc_patient": {"x": [0.0, 0.125, 0.25, 1.0], "y": [0.0, 0.5, 0.75, 1.0],
                        "threshold": [None, 0.8, 0.5, 0.2]},
        "pr_patient": {"x": [0.5, 0.75, 1.0], "y": [0.5, 0.43, 0.2],
                       "threshold": [0.8, 0.5, 0.2]},
        "reliability_quantile_bins": {"bin_lower": [0, 0.1, 0.4], "bin_upper": [0.1, 0.4, 1],
                                      "mean_predicted": [0.05, 0.2, 0.6],
                                      "observed": [0.02, 0.1, 0.5], "count": [40, 40, 20]},
        "reliability_uniform_bins": {"bin_lower": [0, 0.5], "bin_upper": [0.5, 1],
                                     "mean_predicted": [0.1, 0.6], "observed": [0.05, 0.5],
                                     "count": [80, 20]},
        "alert_burden": {"threshold": [0.1, 0.2, 0.4, 0.8],
                         "sensitivity_patient": [1.0, 1.0, 0.75, 0.5],
                         "alerts_per_patient_day": [4.0, 2.0, 1.2, 0.2]},
    }
    baselines = ["NEWS2 >= 5", "NEWS2 >= 7", "qSOFA >= 2", "SIRS >= 2",
                 "HR > 120 or SpO2 < 90"]
    return {
        "version": ACTIVE, "evaluated": "2026-01-01T01:00:00+00:00", "split": "test",
        "n_patients": 20, "n_septic_patients": 4, "n_patient_hours": 100,
        "n_positive_hours": 10, "patient_days": 100 / 24, "threshold": 0.45,
        "table": [_row(MODEL, "model", 0.45, brier=0.05)]
        + [_row(b, "baseline", 1.0, sensitivity_patient=0.5 + 0.1 * i,
                alerts_per_patient_day=1.0 + i) for i, b in enumerate(baselines)],
        "curves": {MODEL: model, **{b: _shifted(base, 0.1 * i) for b, i in
                                    zip(baselines, (0, 0, 1, 2, 3), strict=True)}},
        "score_reference": {"population": "fixture", "monitor_only": REFERENCE.to_dict(),
                            "with_labs": REFERENCE.to_dict()},
    }


def _live_scores(db) -> None:
    """Yesterday 200 scores spread like the reference (PSI 0, stable); today 120 scores
    of 0.95, all in the top decile (PSI 8.3: drift)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = {1: int((today - timedelta(days=1)).timestamp() * 1000),
             0: int(today.timestamp() * 1000)}
    risks = {1: np.arange(0, 1, 0.005), 0: np.full(120, 0.95)}
    scores = [HourScore(patient_id=f"b-p{i % 20}", hour=i // 20 + 1,
                        hour_ts=start[ago] + (i // 20) * HOUR_MS, risk=float(r), threshold=0.45,
                        above=bool(r >= 0.45), monitor_only=True, model_version=ACTIVE,
                        n_readings=60, inputs={"hr": 80.0})
              for ago in (1, 0) for i, r in enumerate(risks[ago])]
    RiskScoreStore(db).write(scores, int(datetime.now(UTC).timestamp() * 1000))


def _shifted(curves: dict, dx: float) -> dict:
    """A baseline's curves, moved so that each baseline score has its own curve."""
    out = copy.deepcopy(curves)
    for c in out.values():
        c["x"] = [min(1.0, x + dx) if 0 < x < 1 else x for x in c["x"]]
    return out


def _metadata(version: str, created: str) -> dict:
    return {"model_name": "sepsis-gbt", "version": version, "created": created,
            "training_data": "PhysioNet/CinC 2019 training set A (fixture)",
            "training_data_sha256": "c0ffee" * 10 + "abcd", "features": ["hr", "spo2", "age"],
            "threshold": 0.45, "threshold_monitor_only": 0.4}


@pytest.fixture(scope="module")
def services(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The shared settings with ``cache_dir`` on a fixture registry (the web app's models)."""
    settings = services.model_copy(update={"cache_dir": tmp_path_factory.mktemp("icu-cache")})
    for version, created in ((ACTIVE, "2026-01-01T00:00:00+00:00"),
                             (OTHER, "2026-01-02T00:00:00+00:00")):
        registry.write_json(registry.version_dir(settings, version) / "metadata.json",
                            _metadata(version, created))
    registry.write_json(registry.version_dir(settings, ACTIVE) / "evaluation.json",
                        _evaluation())
    registry.write_json(registry.version_dir(settings, ACTIVE) / "sites.json", make_sites())
    registry.write_json(registry.version_dir(settings, OTHER) / "recalibration.json",
                        make_recalibration())
    registry.activate(settings, ACTIVE)
    return settings


def sign_in(driver, web, role: Role) -> None:
    name, password = web.users[role]
    driver.get(web.url("/login"))
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, EC.presence_of_element_located((By.ID, "shell-role")))


def drawn_paths(driver, graph_id: str, css: str) -> list[str]:
    """The ``d`` of the SVG paths matching ``css`` inside a graph, non-empty only."""
    paths = driver.find_elements(By.CSS_SELECTOR, f"#{graph_id} svg.main-svg {css}")
    return [d for d in (p.get_attribute("d") for p in paths) if d and d != "M0,0Z"]


def test_physician_sees_every_plot_table_and_note(live_web, browser) -> None:
    _live_scores(live_web.db)
    sign_in(browser, live_web, Role.PHYSICIAN)
    browser.get(live_web.url("/models"))
    for graph in GRAPHS:  # curves drawn as SVG paths, not just empty containers
        wait(browser, lambda d, g=graph: drawn_paths(d, g, ".scatterlayer path.js-line"))
    # ROC: model, NEWS2 (once for >= 5 and >= 7), qSOFA, SIRS, reference, chance
    assert len(drawn_paths(browser, "models-roc", ".scatterlayer path.js-line")) == 6
    # every method's operating point as a marker
    for graph in ("models-roc", "models-pr", "models-burden"):
        assert len(drawn_paths(browser, graph, ".scatterlayer path.point")) >= 6, graph
    assert len(drawn_paths(browser, "models-calibration", ".scatterlayer path.point")) == 3
    legend = wait_text(browser, (By.CSS_SELECTOR, "#models-roc .legend"))
    for name in ("Model (GBT)", "NEWS2 score (≥ 5, ≥ 7)", "qSOFA ≥ 2", "SIRS ≥ 2",
                 "HR > 120 or SpO2 < 90"):
        assert name in legend

    # version facts: the active fixture version
    facts = wait_text(browser, (By.ID, "models-body"))
    assert f"{ACTIVE} (active)" in facts
    assert "c0ffee" * 10 + "abcd" in facts
    assert "0.4500 (monitor only: 0.4000)" in facts
    # confusion matrix at the default threshold 0.45 -> the stored point 0.5:
    # hourly TP 7 FN 3 FP 18 TN 72 (10 positive / 90 negative hours, sens 0.7, FPR 0.2)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "models-threshold-summary"),
                                                   "Threshold 0.5000"))
    hourly = wait_text(browser, (By.ID, "models-confusion-hourly"))
    for text in ("7", "3", "18", "72", "Sensitivity\n0.700", "Specificity\n0.800",
                 "PPV\n0.280"):
        assert text in hourly, text
    patient = wait_text(browser, (By.ID, "models-confusion-patient"))
    assert "PPV\n0.429" in patient  # 3 / (3 + 4)
    # 1.2 alerts/day at 0.4 and 0.2 at 0.8: 0.95 at 0.5
    assert "0.95 alerts per patient-day" in wait_text(browser,
                                                      (By.ID, "models-threshold-summary"))

    # the slider moves to the next stored point (0.8): TP 4, FP 9
    browser.find_element(By.CSS_SELECTOR, "#models-threshold [role=slider]").send_keys(
        Keys.ARROW_RIGHT)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "models-threshold-summary"),
                                                   "Threshold 0.8000"))
    assert "PPV\n0.308" in wait_text(browser, (By.ID, "models-confusion-hourly"))

    tables = wait_text(browser, (By.ID, "models-tables"))
    for text in ("Model (GBT)", "NEWS2 ≥ 5", "NEWS2 ≥ 7", "qSOFA ≥ 2", "SIRS ≥ 2",
                 "HR > 120 or SpO2 < 90", "0.0500"):
        assert text in tables, text
    # live monitoring: volume, distribution and PSI drawn, the drift warning in words
    # text and class of the warning read together (the live part refreshes itself)
    live_text, live_class = wait(browser, lambda d: [
        (e.text, e.get_attribute("class")) for e in [d.find_element(By.ID, "models-live")]
        if "DRIFT" in e.text])[0]
    assert "PSI 8.28" in live_text and "notice-error" in live_class
    assert len(drawn_paths(browser, "models-live-volume", ".barlayer path")) == 10 + 6
    assert len(drawn_paths(browser, "models-live-dist", ".barlayer path")) == 2 * 10
    assert drawn_paths(browser, "models-live-psi", ".scatterlayer path.js-line")
    psi_text = wait_text(browser, (By.ID, "models-live-psi"))
    assert "stable" in psi_text and "DRIFT" in psi_text
    assert "watch 0.10" in psi_text and "drift 0.25" in psi_text
    assert f"Version {ACTIVE} (active)" in wait_text(browser, (By.ID, "models-live-caption"))
    # site-robust evaluation: targets and verdicts in words, one curve per split
    targets = wait_text(browser, (By.ID, "models-sites-targets"))
    assert "Random patients: meets every target" in targets
    assert "Surgical ICU → medical ICU: MISSES utility ≥ 0.35 (0.250)" in targets
    assert len(drawn_paths(browser, "models-sites-calibration",
                           ".scatterlayer path.js-line")) == 3  # 2 splits + diagonal
    verdicts = wait_text(browser, (By.ID, "models-sites-baselines"))
    assert "meets: sens 0.80" in verdicts and "DOES NOT MEET: sens 0.30" in verdicts
    assert "does not beat qSOFA ≥ 2 (sensitivity 0.30 below its 0.40)" in wait_text(
        browser, (By.ID, "models-sites-shortfalls"))
    assert "Platt (logistic) (used)" in wait_text(browser, (By.ID, "models-sites-methods"))
    assert "not recalibrated locally" in wait_text(browser, (By.ID, "models-recalibration"))
    note = wait_text(browser, (By.ID, "models-data-note"))
    for text in ("PhysioNet", "Reyna", "2019", "Goldberger", "one hospital only"):
        assert text in note, text

    # the patient level redraws the discrimination plots
    click(browser, (By.CSS_SELECTOR, "#models-level input[value=patient]"), scroll=True)
    wait_text(browser, (By.CSS_SELECTOR, "#models-roc .gtitle"), lambda t: "per patient" in t)
    assert len(drawn_paths(browser, "models-pr", ".scatterlayer path.js-line")) == 6

    if os.environ.get("ICU_SAVE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "models-fixture.png"))


def test_a_version_without_evaluation_says_so(live_web, browser) -> None:
    sign_in(browser, live_web, Role.ADMIN)
    browser.get(live_web.url("/models"))
    wait(browser, EC.text_to_be_present_in_element((By.ID, "models-body"), f"{ACTIVE} (active)"))
    click(browser, (By.CSS_SELECTOR, "#models-version"))
    click(browser, (By.XPATH, f"//*[@role='option'][contains(., '{OTHER}')]"))
    body = wait_text(browser, (By.ID, "models-body"),
                     lambda t: "has not been evaluated yet" in t)
    assert f"{OTHER} (not active)" in body
    # its local recalibration: the before/after table and plot; no site evaluation
    text = wait_text(browser, (By.ID, "models-recalibration-text"))
    assert "Recalibrated from version v0 on the first 100 stays of site X" in text
    table = wait_text(browser, (By.ID, "models-recalibration-table"))
    assert "100 held out (6 septic)" in table and "0.0100 (0.0110)" in table
    wait(browser, lambda d: len(drawn_paths(d, "models-recalibration-figure",
                                            ".scatterlayer path.js-line")) == 3)
    assert "no site-robust evaluation yet" in wait_text(browser, (By.ID, "models-sites"))


def test_nurse_is_refused(live_web, browser) -> None:
    sign_in(browser, live_web, Role.NURSE)
    assert "nav-models" not in {a.get_attribute("id")
                                for a in browser.find_elements(By.CSS_SELECTOR, "#nav a")}
    browser.get(live_web.url("/models"))
    forbidden = wait(browser, EC.presence_of_element_located((By.ID, "forbidden")))
    assert "403" in forbidden.text
    assert not browser.find_elements(By.ID, "models-roc")
    assert not browser.find_elements(By.ID, "models-live-psi")
