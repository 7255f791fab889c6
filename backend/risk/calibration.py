"""Calibration of the model's risks: the maps fitted on validation, and how well risks
match observed rates.

The trees give a raw risk ``r = 1 / (1 + exp(-2 * margin))``. A ``Calibration`` maps it
to the risk shown and compared with the thresholds:

* ``platt``: logistic recalibration, ``logit(p) = a + b * logit(r)`` (Platt 1999), fitted
  by maximum likelihood on the validation hours. Monotone and smooth, so the ranking
  (AUROC) is unchanged, and two numbers describe it.
* ``isotonic``: the non-decreasing step function that minimises the squared error on the
  validation hours (pool-adjacent-violators; Zadrozny and Elkan 2002), linearly
  interpolated between its breakpoints and clipped at the ends. Ties within a step
  can lower the AUROC a little.
* ``none``: ``p = r`` (versions trained before calibration existed).

Scoring stays pure Python/NumPy: ``apply`` is one ``exp`` or one ``interp``.

How well risks match outcomes (``calibration_report``; Van Calster et al., J Clin
Epidemiol 2016;74:167-176, and BMC Med 2019;17:230):

* calibration slope: ``b`` of the logistic fit ``y ~ a + b * logit(p)`` (1 is ideal;
  below 1 the risks are too extreme, above 1 too modest);
* calibration intercept ("calibration-in-the-large"): ``a`` of ``y ~ a + offset(logit(p))``
  (0 is ideal; negative = risks too high on average);
* expected calibration error (ECE): ``sum_k n_k / n * |mean predicted_k - observed_k|``
  over ``ECE_BINS`` equal-count bins (risks crowd near 0, so equal-width bins would put
  almost every hour in the first one);
* Brier score against the base-rate Brier ``y_bar * (1 - y_bar)`` (always predicting the
  observed prevalence): a model below it adds information beyond the prevalence;
* observed/expected: mean predicted risk divided by the observed rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

METHODS = ("none", "platt", "isotonic")
EPS = 1e-6  # risks are clipped to [EPS, 1 - EPS] before a logit
ECE_BINS = 10


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(q / (1.0 - q))


def expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def logistic_fit(x: np.ndarray, y: np.ndarray, *, slope: bool = True,
                 offset: np.ndarray | None = None, iterations: int = 100) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``P(y=1) = expit(a + b * x + offset)`` by Newton's
    method (``slope=False`` fixes ``b = 0``: intercept only). Deterministic; a separable or
    one-class sample raises ``ValueError``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    off = np.zeros_like(x) if offset is None else np.asarray(offset, dtype=np.float64)
    if len(x) == 0 or y.min() == y.max():
        raise ValueError("a logistic fit needs both outcomes")
    design = np.column_stack([np.ones_like(x), x]) if slope else np.ones((len(x), 1))
    prev = float(y.mean())

    def loglik(beta: np.ndarray) -> float:
        z = design @ beta + off
        return float(np.sum(y * z - np.logaddexp(0.0, z)))

    beta = np.zeros(design.shape[1])
    beta[0] = math.log(prev / (1 - prev))
    current = loglik(beta)
    for _ in range(iterations):
        p = expit(design @ beta + off)
        grad = design.T @ (y - p)
        hess = (design * (p * (1.0 - p))[:, None]).T @ design
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError as e:
            raise ValueError("logistic fit did not converge (separable sample)") from e
        scale = 1.0
        while scale > 1e-6:  # step halving keeps every Newton step an ascent
            trial = beta + scale * step
            value = loglik(trial)
            if value >= current - 1e-12:
                break
            scale /= 2
        beta, current = trial, value
        if np.max(np.abs(scale * step)) < 1e-10:
            break
    if not np.all(np.isfinite(beta)):
        raise ValueError("logistic fit did not converge")
    return float(beta[0]), float(beta[1]) if slope else 0.0


@dataclass(frozen=True)
class Calibration:
    """A fitted map from raw risk to calibrated risk (see the module docstring)."""

    method: str = "none"
    a: float = 0.0  # platt intercept
    b: float = 1.0  # platt slope
    x: tuple[float, ...] = ()  # isotonic breakpoints (raw risk, ascending)
    y: tuple[float, ...] = ()  # isotonic calibrated risk at the breakpoints
    fitted_on: Mapping = field(default_factory=dict)  # what it was fitted on (provenance)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration {self.method!r}; expected one of {METHODS}")
        if self.method == "isotonic" and (len(self.x) != len(self.y) or not self.x):
            raise ValueError("isotonic calibration needs breakpoints")

    def apply(self, risk: np.ndarray) -> np.ndarray:
        r = np.asarray(risk, dtype=np.float64)
        if self.method == "platt":
            return expit(self.a + self.b * logit(r))
        if self.method == "isotonic":
            return np.interp(r, self.x, self.y)
        return r

    def inverse(self, p: float) -> float:
        """The smallest raw risk whose calibrated risk is at least ``p`` (so
        ``apply(raw) >= p`` exactly when ``raw >= inverse(p)``, for a threshold)."""
        if self.method == "platt":
            if self.b <= 0:
                raise ValueError("a non-increasing calibration has no threshold inverse")
            return float(expit((logit(np.array(p)) - self.a) / self.b))
        if self.method == "isotonic":
            ys = np.asarray(self.y)
            above = np.flatnonzero(ys >= p)
            if not len(above):
                return math.inf
            k = int(above[0])
            if k == 0:
                return -math.inf if ys[0] >= p else float(self.x[0])
            # linear piece between breakpoints k-1 and k reaches p at:
            x0, x1, y0, y1 = self.x[k - 1], self.x[k], ys[k - 1], ys[k]
            return float(x0 + (p - y0) * (x1 - x0) / (y1 - y0)) if y1 > y0 else float(x1)
        return float(p)

    def to_dict(self) -> dict:
        out: dict = {"method": self.method, "fitted_on": dict(self.fitted_on)}
        if self.method == "platt":
            out.update(a=self.a, b=self.b)
        elif self.method == "isotonic":
            out.update(x=list(self.x), y=list(self.y))
        return out

    @classmethod
    def from_dict(cls, d: Mapping | None) -> Calibration:
        if not d:
            return cls()
        return cls(method=str(d.get("method", "none")), a=float(d.get("a", 0.0)),
                   b=float(d.get("b", 1.0)), x=tuple(float(v) for v in d.get("x", ())),
                   y=tuple(float(v) for v in d.get("y", ())),
                   fitted_on=dict(d.get("fitted_on", {})))


IDENTITY = Calibration()


def fit_platt(y: np.ndarray, risk: np.ndarray, *, slope: bool = True,
              fitted_on: Mapping | None = None) -> Calibration:
    """Platt (logistic) recalibration of ``risk`` on outcomes ``y``; ``slope=False`` only
    shifts the intercept (for a small local sample)."""
    if slope:
        a, b = logistic_fit(logit(risk), y)
    else:
        a, _ = logistic_fit(np.zeros(len(y)), y, slope=False, offset=logit(risk))
        b = 1.0
    return Calibration("platt", a=a, b=b, fitted_on=dict(fitted_on or {}))


def fit_isotonic(y: np.ndarray, risk: np.ndarray, *,
                 fitted_on: Mapping | None = None) -> Calibration:
    """Isotonic regression of ``y`` on ``risk`` (scikit-learn's PAV), kept as breakpoints."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(np.asarray(risk, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return Calibration("isotonic", x=tuple(float(v) for v in iso.X_thresholds_),
                       y=tuple(float(v) for v in iso.y_thresholds_),
                       fitted_on=dict(fitted_on or {}))


def fit(method: str, y: np.ndarray, risk: np.ndarray, *,
        fitted_on: Mapping | None = None) -> Calibration:
    if method == "platt":
        return fit_platt(y, risk, fitted_on=fitted_on)
    if method == "isotonic":
        return fit_isotonic(y, risk, fitted_on=fitted_on)
    if method == "none":
        return Calibration(fitted_on=dict(fitted_on or {}))
    raise ValueError(f"unknown calibration {method!r}; expected one of {METHODS}")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-count bins of the predicted risk."""
    p = np.asarray(p, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(p))):
        if len(chunk):
            total += len(chunk) * abs(float(p[chunk].mean()) - float(yy[chunk].mean()))
    return total / len(p)


def calibration_report(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Slope, intercept, ECE, Brier, base-rate Brier and observed/expected of risks ``p``."""
    yy = np.asarray(y, dtype=np.float64)
    pp = np.asarray(p, dtype=np.float64)
    prevalence = float(yy.mean()) if len(yy) else float("nan")
    out = {
        "brier": float(np.mean((pp - yy) ** 2)) if len(yy) else float("nan"),
        "brier_base_rate": prevalence * (1.0 - prevalence),
        "prevalence": prevalence,
        "mean_predicted": float(pp.mean()) if len(pp) else float("nan"),
        "ece": expected_calibration_error(yy, pp),
        "calibration_slope": float("nan"),
        "calibration_intercept": float("nan"),
    }
    out["expected_over_observed"] = (out["mean_predicted"] / prevalence
                                     if prevalence > 0 else float("nan"))
    try:
        z = logit(pp)
        out["calibration_slope"] = logistic_fit(z, yy)[1]
        out["calibration_intercept"] = logistic_fit(np.zeros_like(z), yy, slope=False,
                                                    offset=z)[0]
    except ValueError:
        pass
    return out
