"""Features per patient-hour: hand-computed values, no look-ahead, stays kept apart, and
scoring one patient's history with the exported trees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.risk.features import (
    FEATURE_SETS,
    FEATURES,
    LAB_FEATURES,
    LAB_STALE_CAP_HOURS,
    LABS,
    NORMAL,
    VITAL_FEATURES,
    VITAL_STALE_CAP_HOURS,
    VITALS,
    Rows,
    hourly_features,
    last_observed,
    without_labs,
)
from backend.risk.model import RiskModel, Tree


def random_stay(rng: np.random.Generator, n: int, pid: str | None = None,
                missing: float = 0.4) -> pd.DataFrame:
    centre = {"hr": 85, "spo2": 96, "temp": 37, "sbp": 120, "map": 80, "dbp": 60, "rr": 18,
              "wbc": 10, "platelets": 200, "creatinine": 1.0, "bun": 20, "bilirubin": 1.0,
              "lactate": 2.0}
    cols: dict[str, object] = {"hour": np.arange(1, n + 1)}
    for name, c in centre.items():
        x = c * (1 + 0.1 * rng.standard_normal(n))
        x[rng.random(n) < (missing if name in VITALS else 0.9)] = np.nan
        cols[name] = x
    cols["age"] = 70.0
    cols["sex"] = 1.0
    frame = pd.DataFrame(cols)
    if pid is not None:
        frame.insert(0, "patient_id", pid)
    return frame


def test_feature_names_partition() -> None:
    assert len(FEATURES) == len(set(FEATURES)) == 71
    # the first versions' 64 features keep their names and positions
    assert FEATURE_SETS["v1"] == FEATURES[:64]
    assert all(set(fs) <= set(FEATURES) for fs in FEATURE_SETS.values())
    assert set(VITAL_FEATURES) | set(LAB_FEATURES) == set(FEATURES)
    assert all(f.split("_")[0] in LABS for f in LAB_FEATURES)


def test_hand_computed_values() -> None:
    h = pd.DataFrame({
        "hour": [1, 2, 3, 4, 5, 6, 7, 8],
        "hr": [80, np.nan, 90, 0, 100, np.nan, np.nan, 110],  # 0 = sensor off -> NaN
        "sbp": [100, 100, np.nan, np.nan, 125, np.nan, np.nan, np.nan],
        "wbc": [np.nan, np.nan, 12.5, np.nan, np.nan, np.nan, np.nan, np.nan],
        "age": 95, "sex": 0,
    })
    f = hourly_features(h)
    # last observed HR, carried forward; the 0 is dropped as "sensor off"
    assert f["hr"].tolist() == [80, 80, 90, 90, 100, 100, 100, 110]
    assert f["hr_hours_since"].tolist() == [0, 1, 0, 1, 0, 1, 2, 0]
    # d1 = last(t) - last(t-1); first row has no earlier hour -> 0
    assert f["hr_d1"].tolist() == [0, 0, 10, 0, 10, 0, 0, 10]
    # d6 = last(t) - last(max(t-6, first)): row 7 (hour 8): 110 - last(hour 2) = 110 - 80
    assert f["hr_d6"].tolist() == [0, 0, 10, 10, 20, 20, 20, 30]
    # std6 over the observed values of the last 6 hours (>= 2 values):
    # hour 3: {80, 90} -> sample std 7.0711; hour 8 (hours 3..8): {90, 100, 110} -> 10
    assert f["hr_std6"].iloc[0] == 0.0
    assert f["hr_std6"].iloc[2] == pytest.approx(np.std([80, 90], ddof=1))
    assert f["hr_std6"].iloc[7] == pytest.approx(10.0)
    # deviation from the stay's own mean so far: hour 3: 90 - (80+90)/2 = 5;
    # hour 8: 110 - (80+90+100+110)/4 = 15
    assert f["hr_dev"].iloc[2] == pytest.approx(5.0)
    assert f["hr_dev"].iloc[7] == pytest.approx(15.0)
    # worst value over the last 24 h: max HR, min SBP (never measured -> last/normal)
    assert f["hr_max24"].tolist() == [80, 80, 90, 90, 100, 100, 100, 110]
    assert f["sbp_min24"].tolist() == [100, 100, 100, 100, 100, 100, 100, 100]
    assert (f["temp_max24"] == NORMAL["temp"]).all()
    # shock index from the last HR and SBP: hour 5: 100 / 125
    assert f["shock_index"].iloc[4] == pytest.approx(0.8)
    # never measured: normal value, hours-since at the cap
    assert (f["temp"] == NORMAL["temp"]).all()
    assert (f["temp_hours_since"] == VITAL_STALE_CAP_HOURS).all()
    assert f["wbc"].tolist() == [NORMAL["wbc"]] * 2 + [12.5] * 6
    assert f["wbc_hours_since"].tolist() == [LAB_STALE_CAP_HOURS] * 2 + list(range(6))
    assert (f["lactate_hours_since"] == LAB_STALE_CAP_HOURS).all()
    # ICULOS, age clipped to the training range (89), sex
    assert f["hour"].tolist() == list(range(1, 9))
    assert (f["age"] == 89).all() and (f["sex"] == 0).all()


def test_no_look_ahead_truncated_histories() -> None:
    rng = np.random.default_rng(7)
    stay = random_stay(rng, 30)
    full = hourly_features(stay)
    for t in range(len(stay)):
        prefix = hourly_features(stay.iloc[: t + 1])
        pd.testing.assert_series_equal(prefix.iloc[-1], full.iloc[t], check_names=False)


def test_changing_the_future_does_not_change_the_past() -> None:
    rng = np.random.default_rng(8)
    stay = random_stay(rng, 25)
    before = hourly_features(stay)
    changed = stay.copy()
    numeric = [c for c in changed.columns if c not in ("hour", "age", "sex")]
    changed.loc[15:, numeric] = changed.loc[15:, numeric] * 3 + 7
    after = hourly_features(changed)
    pd.testing.assert_frame_equal(before.iloc[:15], after.iloc[:15])
    assert not before.iloc[15:].equals(after.iloc[15:])


def test_many_stays_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(9)
    stays = [random_stay(rng, int(n), pid=f"p{i}") for i, n in enumerate([1, 7, 30, 3])]
    together = hourly_features(pd.concat(stays, ignore_index=True))
    alone = pd.concat([hourly_features(s.drop(columns="patient_id")) for s in stays],
                      ignore_index=True)
    # exactly: a stay's features must not depend on the stays before it in the frame (the
    # live scorer computes one stay, training computes thousands; the scores must agree)
    pd.testing.assert_frame_equal(together, alone, check_exact=True)


def test_stay_means_of_several_columns_at_once_are_each_columns_own() -> None:
    rng = np.random.default_rng(10)
    stays = pd.concat([random_stay(rng, int(n), pid=f"p{i}", missing=0.6)
                       for i, n in enumerate([5, 1, 40, 12])], ignore_index=True)
    rows = Rows(stays)
    columns = np.column_stack([stays[v].to_numpy(dtype=float) for v in VITALS])
    columns[:, 0] = np.nan  # a vital never measured in any stay
    together = rows.stay_mean(columns)
    for j in range(columns.shape[1]):
        np.testing.assert_array_equal(together[:, j], rows.stay_mean(columns[:, j]))
    # by hand: the mean of the stay's non-missing values so far
    start = 0
    for _, stay in stays.groupby("patient_id", sort=False):
        x = stay[VITALS[1]].to_numpy(dtype=float)
        for t in range(len(x)):
            seen = x[: t + 1][~np.isnan(x[: t + 1])]
            got = together[start + t, 1]
            assert np.isnan(got) if seen.size == 0 else got == pytest.approx(seen.mean())
        start += len(x)
    assert np.isnan(together[:, 0]).all()


def test_first_hours_of_a_stay_do_not_see_the_previous_stay() -> None:
    a = pd.DataFrame({"patient_id": "a", "hour": [1, 2], "hr": [150.0, 150.0]})
    b = pd.DataFrame({"patient_id": "b", "hour": [1, 2], "hr": [np.nan, 70.0]})
    f = hourly_features(pd.concat([a, b], ignore_index=True))
    assert f["hr"].tolist() == [150, 150, NORMAL["hr"], 70]
    assert f["hr_hours_since"].tolist() == [0, 0, VITAL_STALE_CAP_HOURS, 0]
    assert f["hr_d1"].iloc[2] == 0


def test_history_must_have_one_row_per_hour_and_contiguous_stays() -> None:
    with pytest.raises(ValueError, match="consecutive"):
        hourly_features(pd.DataFrame({"hour": [1, 2, 4], "hr": [80, 80, 80]}))
    with pytest.raises(ValueError, match="contiguous"):
        hourly_features(pd.DataFrame({"patient_id": ["a", "b", "a"], "hour": [1, 1, 2]}))
    with pytest.raises(ValueError, match="hour"):
        hourly_features(pd.DataFrame({"hr": [80]}))


def test_monitor_only_history_without_lab_columns() -> None:
    rng = np.random.default_rng(10)
    stay = random_stay(rng, 12)
    monitor = without_labs(stay)
    assert not set(LABS) & set(monitor.columns)
    f = hourly_features(monitor)
    for lab in LABS:
        assert (f[lab] == NORMAL[lab]).all()
        assert (f[f"{lab}_hours_since"] == LAB_STALE_CAP_HOURS).all()
    # vitals features do not depend on labs
    pd.testing.assert_frame_equal(f[list(VITAL_FEATURES)],
                                  hourly_features(stay)[list(VITAL_FEATURES)])


def test_last_observed_with_age_limit() -> None:
    h = pd.DataFrame({"hour": [1, 2, 3, 4], "fio2": [0.5, np.nan, np.nan, np.nan],
                      "hr": [np.nan, 300.5, 80, np.nan]})
    out = last_observed(h, ["fio2", "hr"], max_age_hours={"fio2": 2})
    assert out["fio2"].tolist()[:3] == [0.5, 0.5, 0.5] and np.isnan(out["fio2"].iloc[3])
    # 300.5 is above the monitor's plausible range (backend.vitals) -> dropped
    assert np.isnan(out["hr"].iloc[1]) and out["hr"].iloc[3] == 80


def test_score_history_with_a_hand_built_tree() -> None:
    # one stump on "hr": hr <= 100 -> -1, else +1; weight 0.5 -> margin +-0.5
    i = FEATURES.index("hr")
    stump = Tree(feature=np.array([i, -1, -1]), threshold=np.array([100.0, 0, 0]),
                 left=np.array([1, -1, -1]), right=np.array([2, -1, -1]),
                 value=np.array([0.0, -1.0, 1.0]))
    model = RiskModel("test", FEATURES, [stump], [0.5], threshold=0.5)
    history = pd.DataFrame({"hour": [1, 2, 3], "hr": [90.0, 130.0, np.nan]})
    high = 1 / (1 + np.exp(-2 * 0.5))
    low = 1 / (1 + np.exp(2 * 0.5))
    assert model.score_frame(history) == pytest.approx([low, high, high])
    assert model.score_history(history) == pytest.approx(high)  # HR 130 carried forward
    assert model.alarm(model.score_history(history))
    assert model.score_history(history.iloc[:1]) == pytest.approx(low)


def test_long_window_forgets_values_older_than_24_hours() -> None:
    # HR 150 in hour 1, then 80: the 24 h maximum is 150 up to hour 24 and 80 from hour 25
    h = pd.DataFrame({"hour": range(1, 31), "hr": [150.0] + [80.0] * 29})
    f = hourly_features(h)
    assert f["hr_max24"].iloc[23] == 150 and f["hr_max24"].iloc[24] == 80
    # the stay mean keeps all hours: hour 30: 80 - (150 + 29*80)/30 = -70/30
    assert f["hr_dev"].iloc[29] == pytest.approx(80 - (150 + 29 * 80) / 30)


def test_monitor_only_patients_use_the_monitor_only_threshold() -> None:
    model = RiskModel("test", FEATURES, [], [], threshold=0.05, threshold_monitor_only=0.03)
    monitor = pd.DataFrame({"hour": [1, 2], "hr": [90.0, 95.0]})
    with_lab = monitor.assign(lactate=[np.nan, 2.1])
    empty_lab = monitor.assign(lactate=[np.nan, np.nan])
    assert model.threshold_for(monitor) == 0.03
    assert model.threshold_for(empty_lab) == 0.03
    assert model.threshold_for(with_lab) == 0.05
    assert model.alarm(0.04, monitor_only=True) and not model.alarm(0.04)


def test_lab_change_since_the_first_result_and_capped_hour_by_hand() -> None:
    h = pd.DataFrame({"hour": range(1, 8),
                      "creatinine": [np.nan, 1.0, np.nan, 1.6, 2.2, np.nan, 0.9],
                      "platelets": [250.0, np.nan, 180.0, np.nan, np.nan, np.nan, np.nan]})
    f = hourly_features(h)
    # no result yet or only one: no change; then last minus the stay's first result
    assert f["creatinine_delta"].tolist() == pytest.approx([0, 0, 0, 0.6, 1.2, 1.2, -0.1])
    assert f["platelets_delta"].tolist() == [0, 0, -70, -70, -70, -70, -70]
    assert (f["lactate_delta"] == 0).all()
    long = hourly_features(pd.DataFrame({"hour": range(1, 61)}))
    assert long["hour48"].tolist() == [*range(1, 49), *[48] * 12]
    # a stay's first result never comes from the previous stay
    two = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "hour": [1, 2, 1, 2],
                        "creatinine": [1.0, 3.0, np.nan, 2.0]})
    assert hourly_features(two)["creatinine_delta"].tolist() == [0, 2.0, 0, 0]


def test_calibrated_scores_and_the_monitor_only_calibration() -> None:
    from backend.risk.calibration import Calibration, expit, logit

    i = FEATURES.index("hr")
    stump = Tree(feature=np.array([i, -1, -1]), threshold=np.array([100.0, 0, 0]),
                 left=np.array([1, -1, -1]), right=np.array([2, -1, -1]),
                 value=np.array([0.0, -1.0, 1.0]))
    with_labs, monitor = Calibration("platt", a=-1.0, b=0.5), Calibration("platt", a=-2.0)
    model = RiskModel("test", FEATURES, [stump], [0.5], threshold=0.1,
                      calibration=with_labs, calibration_monitor_only=monitor)
    history = pd.DataFrame({"hour": [1, 2], "hr": [90.0, 130.0]})
    raw = model.raw_risk(hourly_features(history))
    assert raw == pytest.approx([1 / (1 + np.exp(1.0)), 1 / (1 + np.exp(-1.0))])
    # no lab in the history: the monitor-only map
    assert model.score_frame(history) == pytest.approx(expit(-2.0 + logit(raw)))
    assert model.score_history(history) == pytest.approx(expit(-2.0 + logit(raw[-1])))
    labs = history.assign(lactate=[np.nan, 3.0])
    assert model.score_history(labs) == pytest.approx(expit(-1.0 + 0.5 * logit(raw[-1])))
    # a version saved before calibration: risk = raw
    plain = RiskModel("old", FEATURES, [stump], [0.5], threshold=0.1)
    assert plain.score_frame(history) == pytest.approx(raw)


def test_scoring_only_the_last_hours_equals_their_scores_from_the_whole_stay() -> None:
    """The live scorer scores only the hours it closes (``last``); each must be the score
    the whole stay gives that hour, with each hour's own calibration (labs or not yet)."""
    from backend.risk.calibration import Calibration

    rng = np.random.default_rng(11)
    trees = []
    for _ in range(30):  # depth-2 trees on random features and thresholds
        f = rng.integers(0, len(FEATURES), size=3)
        trees.append(Tree(feature=np.array([f[0], f[1], f[2], -1, -1, -1, -1]),
                          threshold=np.array([*rng.normal(20, 30, size=3), 0, 0, 0, 0]),
                          left=np.array([1, 3, 5, -1, -1, -1, -1]),
                          right=np.array([2, 4, 6, -1, -1, -1, -1]),
                          value=np.array([0, 0, 0, *rng.normal(0, 0.3, size=4)])))
    model = RiskModel("test", FEATURES, trees, list(rng.uniform(0.05, 0.2, size=30)),
                      threshold=0.1, calibration=Calibration("platt", a=-1.0, b=0.7),
                      calibration_monitor_only=Calibration("platt", a=-2.0, b=1.1))
    for n in (1, 2, 9, 60):
        stay = random_stay(rng, n)
        whole = model.score_frame(stay)
        for last in (1, 3, n, n + 4):
            np.testing.assert_array_equal(model.score_frame(stay, last=last),
                                          whole[-last:])
