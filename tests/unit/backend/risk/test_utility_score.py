"""The PhysioNet/CinC 2019 utility score (backend/risk/utility.py), hand-computed cases.

Parameters (Reyna et al. 2020; the Challenge's evaluate_sepsis_score.py): dt_early -12,
dt_optimal -6, dt_late 3, max_u_tp 1, min_u_fn -2, u_fp -0.05, u_tn 0, and
t_sepsis = first SepsisLabel==1 row + 6. With d = t - t_sepsis:

    positive, septic:  d <= -6: max(d/6 + 2, -0.05)     -6 < d <= 3: -d/9 + 1/3
    negative, septic:  d <= -6: 0                       -6 < d <= 3: -2d/9 - 4/3
    septic, d > 3: 0 either way;  non-septic: positive -0.05, negative 0
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.risk.utility import (
    Cohort,
    normalized_utility,
    optimal_predictions,
    row_utilities,
    total_utility,
    utility_curve,
)


def one(labels: list[int], pid: str = "p") -> Cohort:
    return Cohort.from_rows([pid] * len(labels), labels)


def septic16() -> list[int]:
    # 16 rows, first label at row 6 -> t_sepsis = 12, so rows t = 0..15 have d = -12..3
    return [0] * 6 + [1] * 10


def at(n: int, *rows: int) -> np.ndarray:
    p = np.zeros(n, dtype=int)
    p[list(rows)] = 1
    return p


# --- non-septic stays ------------------------------------------------------------------


def test_non_septic_all_negative_is_zero() -> None:
    # 5 true negatives x u_tn (0) = 0
    assert total_utility(one([0] * 5), at(5)) == 0.0


def test_non_septic_one_false_positive_costs_u_fp() -> None:
    # 4 x 0 + 1 x (-0.05) = -0.05
    assert total_utility(one([0] * 5), at(5, 2)) == pytest.approx(-0.05)


def test_non_septic_every_hour_positive() -> None:
    # 5 x (-0.05) = -0.25
    assert total_utility(one([0] * 5), np.ones(5)) == pytest.approx(-0.25)


# --- septic stays ----------------------------------------------------------------------


def test_septic_inaction() -> None:
    # Negative everywhere: d = -12..-6 give 0; d = -5..3 give -2d/9 - 4/3:
    # sum = -2/9 * (-5-4-3-2-1+0+1+2+3) - 9 * 4/3 = -2/9 * (-9) - 12 = 2 - 12 = -10
    assert total_utility(one(septic16()), at(16)) == pytest.approx(-10.0)


def test_septic_predicted_at_the_optimal_time() -> None:
    # one positive at d = -6 (row 6): -6/6 + 2 = 1 replaces the FN's 0: -10 + 1 = -9
    assert total_utility(one(septic16()), at(16, 6)) == pytest.approx(-9.0)


def test_septic_alarm_from_the_optimal_time_on() -> None:
    # positive for d = -6..3 (rows 6..15): -d/9 + 1/3 summed over d = -6..3
    # = -1/9 * (-15) + 10/3 = 15/9 + 30/9 = 5; rows d < -6 are negative (0)
    assert total_utility(one(septic16()), at(16, *range(6, 16))) == pytest.approx(5.0)


def test_septic_predicted_early_but_useful() -> None:
    # one positive at d = -9 (row 3): -9/6 + 2 = 0.5 -> -10 + 0.5 = -9.5
    assert total_utility(one(septic16()), at(16, 3)) == pytest.approx(-9.5)


def test_septic_predicted_too_early_is_a_false_positive() -> None:
    # 19 rows, first label at row 9 -> t_sepsis = 15; row 0 has d = -15:
    # max(-15/6 + 2, -0.05) = max(-0.5, -0.05) = -0.05
    labels = [0] * 9 + [1] * 10
    base = total_utility(one(labels), at(19))
    assert base == pytest.approx(-10.0)  # rows d = -5..3 as in test_septic_inaction
    assert total_utility(one(labels), at(19, 0)) - base == pytest.approx(-0.05)
    # d = -12 (row 3): max(-12/6 + 2, -0.05) = 0: no reward, no penalty
    assert total_utility(one(labels), at(19, 3)) - base == pytest.approx(0.0)


def test_septic_predicted_too_late() -> None:
    # one positive at d = 3 (row 15): -3/9 + 1/3 = 0 instead of the FN's -2 at d = 3:
    # -10 - (-2) + 0 = -8
    assert total_utility(one(septic16()), at(16, 15)) == pytest.approx(-8.0)
    # one positive at d = 0 (row 12): 1/3 instead of -4/3: -10 + 4/3 + 1/3 = -25/3
    assert total_utility(one(septic16()), at(16, 12)) == pytest.approx(-25 / 3)


def test_rows_after_the_late_limit_do_not_count() -> None:
    # 18 rows: rows 16, 17 have d = 4, 5 > 3 -> 0 whatever the prediction
    labels = [*septic16(), 1, 1]
    assert total_utility(one(labels), at(18)) == pytest.approx(-10.0)
    assert total_utility(one(labels), at(18, 16, 17)) == pytest.approx(-10.0)


def test_challenge_docstring_example() -> None:
    # evaluate_sepsis_score.py: labels [0,0,0,0,1,1], predictions [0,0,1,1,1,1] -> 3.3889
    # t_sepsis = 4 + 6 = 10; rows 2..5 have d = -8, -7, -6, -5:
    # (-8/6 + 2) + (-7/6 + 2) + (-6/6 + 2) + (5/9 + 1/3) = 2/3 + 5/6 + 1 + 8/9 = 3.3889
    u = total_utility(one([0, 0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 1, 1]))
    assert u == pytest.approx(2 / 3 + 5 / 6 + 1 + 8 / 9)
    assert u == pytest.approx(3.388888888888889)


# --- normalisation ---------------------------------------------------------------------


def two_patients() -> tuple[Cohort, int]:
    labels = [*septic16(), 0, 0, 0, 0]
    pids = ["s"] * 16 + ["n"] * 4
    return Cohort.from_rows(pids, labels), len(labels)


def test_optimal_predictor_is_positive_from_d_minus_12_to_3() -> None:
    cohort, _ = two_patients()
    assert optimal_predictions(cohort).tolist() == [True] * 16 + [False] * 4


def test_normalisation_between_inaction_and_optimal() -> None:
    cohort, n = two_patients()
    # U_inaction = -10 (septic) + 0 (non-septic) = -10
    # U_optimal: septic rows d = -12..-6 positive: (0+1+2+3+4+5+6)/6 = 3.5;
    #            d = -5..3 positive: -1/9 * (-9) + 9/3 = 4 -> 7.5; non-septic negative: 0
    assert total_utility(cohort, optimal_predictions(cohort)) == pytest.approx(7.5)
    assert normalized_utility(cohort, np.zeros(n)) == pytest.approx(0.0)
    assert normalized_utility(cohort, optimal_predictions(cohort)) == pytest.approx(1.0)
    # alarm from d = -6 on (5) plus one false positive on the non-septic stay (-0.05):
    # (4.95 - (-10)) / (7.5 - (-10)) = 14.95 / 17.5
    pred = at(n, *range(6, 16), 17)
    assert total_utility(cohort, pred) == pytest.approx(4.95)
    assert normalized_utility(cohort, pred) == pytest.approx(14.95 / 17.5)


def test_normalised_is_nan_without_septic_stays() -> None:
    assert np.isnan(normalized_utility(one([0, 0, 0]), np.zeros(3)))


def test_utility_curve_matches_thresholding() -> None:
    cohort, n = two_patients()
    rng = np.random.default_rng(3)
    scores = rng.random(n)
    ths = np.array([0.0, 0.2, 0.5, 0.77, 1.1, *scores[:5]])
    curve = utility_curve(cohort, scores, ths)
    for th, u in zip(ths, curve, strict=True):
        assert u == pytest.approx(normalized_utility(cohort, scores >= th))


def reference_utility(labels: list[int], preds: list[int]) -> float:
    """A direct, row-by-row transcription of the published definition (one stay)."""
    septic = any(labels)
    t_s = labels.index(1) + 6 if septic else float("inf")
    total = 0.0
    for t, p in enumerate(preds):
        if not septic:
            total += -0.05 if p else 0.0
            continue
        d = t - t_s
        if d > 3:
            continue
        if p:
            total += max(d / 6 + 2, -0.05) if d <= -6 else -d / 9 + 1 / 3
        elif d > -6:
            total += -2 * d / 9 - 4 / 3
    return total


def test_vectorised_matches_row_by_row_definition_on_random_stays() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        onset = int(rng.integers(0, n + 5))
        labels = [int(t >= onset) for t in range(n)]
        preds = rng.integers(0, 2, n).tolist()
        got = total_utility(one(labels), np.array(preds))
        assert got == pytest.approx(reference_utility(labels, preds)), (labels, preds)


def test_row_utilities_pieces() -> None:
    u_pos, u_neg = row_utilities(one(septic16()))
    d = np.arange(-12, 4)
    assert u_pos[d == -12][0] == pytest.approx(0.0)
    assert u_pos[d == -6][0] == pytest.approx(1.0)
    assert u_pos[d == 3][0] == pytest.approx(0.0)
    assert u_neg[d == -6][0] == pytest.approx(0.0)
    assert u_neg[d == 3][0] == pytest.approx(-2.0)


def test_cohort_rejects_interleaved_stays() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        Cohort.from_rows(["a", "b", "a"], [0, 0, 0])
