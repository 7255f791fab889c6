"""A hand-made model version for tests of live scoring: one tree, one split on the
hourly heart rate, so every score is known in advance.

    hourly HR <= split  ->  margin -2  ->  risk 1 / (1 + e^4)  = 0.0180
    hourly HR >  split  ->  margin +1  ->  risk 1 / (1 + e^-2) = 0.8808

Threshold 0.5 for both the full and the monitor-only model.
"""

from __future__ import annotations

import math

from backend.risk import registry
from backend.risk.features import FEATURES
from backend.settings import Settings

LOW_RISK = 1 / (1 + math.exp(4))
HIGH_RISK = 1 / (1 + math.exp(-2))
THRESHOLD = 0.5


def write_model(settings: Settings, version: str, *, hr_split: float = 110.0,
                created: str = "2026-01-01T00:00:00+00:00", activate: bool = True,
                calibration: dict | None = None, threshold: float = THRESHOLD) -> None:
    """``calibration``: stored as both calibrations (``Calibration.to_dict`` form)."""
    d = registry.version_dir(settings, version)
    registry.write_json(d / "trees.json", {
        "features": list(FEATURES), "weights": [1.0],
        "trees": [{"feature": [FEATURES.index("hr"), -1, -1], "threshold": [hr_split, 0, 0],
                   "left": [1, -1, -1], "right": [2, -1, -1], "value": [0.0, -2.0, 1.0]}],
    })
    registry.write_json(d / "metadata.json", {
        "model_name": registry.MODEL_NAME, "version": version, "created": created,
        "training_data": "hand-made test model", "training_data_sha256": "0" * 64,
        "features": list(FEATURES), "threshold": threshold,
        "threshold_monitor_only": threshold, "spark_version": "none",
        **({"calibration": calibration, "calibration_monitor_only": calibration}
           if calibration else {}),
    })
    if activate:
        registry.activate(settings, version)
