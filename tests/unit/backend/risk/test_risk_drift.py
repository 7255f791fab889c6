"""Population stability index against hand-computed cases (backend.risk.drift)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.risk.drift import (
    MIN_SCORES,
    Reference,
    Stability,
    bin_counts,
    psi,
    psi_of_scores,
    reference,
    shares,
    stability,
)


def test_psi_hand_computed() -> None:
    # (0.1-0.25)ln(0.1/0.25) + (0.2-0.25)ln(0.2/0.25) + (0.3-0.25)ln(0.3/0.25)
    # + (0.4-0.25)ln(0.4/0.25) = 0.13744 + 0.01116 + 0.00912 + 0.07050 = 0.22822
    assert psi([0.25] * 4, [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.22822, abs=1e-5)
    assert psi([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]) == 0.0
    # symmetric in its two arguments
    assert psi([0.1, 0.2, 0.3, 0.4], [0.25] * 4) == pytest.approx(0.22822, abs=1e-5)


def test_empty_bin_is_floored_not_infinite() -> None:
    # (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(1 / 0.5) = 4.2577 + 0.3466
    assert psi([0.5, 0.5], [0.0, 1.0]) == pytest.approx(4.6043, abs=1e-4)


def test_bins_are_half_open_with_open_ends() -> None:
    assert bin_counts([0.0, 0.1, 0.15, 0.2, 0.99], [0.1, 0.2]).tolist() == [1, 2, 2]


def test_reference_deciles_hold_a_tenth_each() -> None:
    scores = np.arange(1000) / 1000
    ref = reference(scores)
    assert len(ref.edges) == 9 and ref.n == 1000
    assert ref.shares == pytest.approx([0.1] * 10)
    assert Reference.from_dict(ref.to_dict()) == ref
    # the same distribution again: PSI 0; everything in the top decile: drift
    assert psi_of_scores(scores[::-1], ref) == (0.0, Stability.STABLE)
    value, status = psi_of_scores(np.full(200, 0.95), ref)
    assert status is Stability.DRIFT and value == pytest.approx(
        9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1) + (1 - 0.1) * np.log(1 / 0.1), abs=1e-9)
    assert shares(np.full(4, 0.95), ref)[-1] == 1.0


def test_stability_bands_and_minimum_count() -> None:
    assert stability(0.05, 500) is Stability.STABLE
    assert stability(0.10, 500) is Stability.WATCH
    assert stability(0.2499, 500) is Stability.WATCH
    assert stability(0.25, 500) is Stability.DRIFT
    assert stability(3.0, MIN_SCORES - 1) is Stability.TOO_FEW
    assert psi_of_scores(np.full(MIN_SCORES - 1, 0.5), reference(np.arange(100) / 100)) == (
        None, Stability.TOO_FEW)
