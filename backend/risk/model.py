"""``RiskModel``: a trained gradient-boosted tree ensemble, scored with NumPy.

Training uses Spark MLlib (``backend.risk.train``); its ``GBTClassificationModel`` is saved
in Spark's format *and* exported here to a plain JSON of trees (``trees.json``), so a
consumer that has no SparkSession (a pandas UDF on an executor, the web app, a test)
scores a patient in microseconds with exactly Spark's arithmetic:

    margin = sum_i weight_i * tree_i(x)   (a split sends x left when x[f] <= threshold)
    raw    = 1 / (1 + exp(-2 * margin))   (MLlib's GBT logistic loss)
    risk   = calibration(raw)             (``backend.risk.calibration``, fitted on validation)

Training checks on the validation set that the raw risks equal Spark's. Patients without
any lab result (every live patient: the stream carries no labs) get the calibration and
the threshold fitted on validation stays with their labs hidden. A version saved before
calibration existed has none (``risk = raw``).
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from backend.risk.calibration import IDENTITY, Calibration
from backend.risk.features import LABS, hourly_features


@dataclass(frozen=True)
class Tree:
    feature: np.ndarray  # per node: feature index, -1 for a leaf
    threshold: np.ndarray  # per node: go left when x[feature] <= threshold
    left: np.ndarray  # per node: child index, -1 for a leaf
    right: np.ndarray
    value: np.ndarray  # per node: prediction (used at leaves)

    @cached_property
    def _lists(self) -> tuple[list, list, list, list, list]:
        return (self.feature.tolist(), self.threshold.tolist(), self.left.tolist(),
                self.right.tolist(), self.value.tolist())

    def predict_row(self, row: list[float]) -> float:
        feature, threshold, left, right, value = self._lists
        node = 0
        while left[node] >= 0:
            node = left[node] if row[feature[node]] <= threshold[node] else right[node]
        return value[node]

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) <= 4:  # a live score: walking the tree in Python beats NumPy's overhead
            return np.array([self.predict_row(r) for r in x.tolist()], dtype=np.float64)
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        for _ in range(len(self.feature)):
            inner = self.left[node] >= 0
            if not inner.any():
                break
            f = np.where(inner, self.feature[node], 0)
            go_left = x[rows, f] <= self.threshold[node]
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node]

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist()
                for k in ("feature", "threshold", "left", "right", "value")}

    @classmethod
    def from_dict(cls, d: dict) -> Tree:
        return cls(np.asarray(d["feature"], dtype=np.int64),
                   np.asarray(d["threshold"], dtype=np.float64),
                   np.asarray(d["left"], dtype=np.int64),
                   np.asarray(d["right"], dtype=np.int64),
                   np.asarray(d["value"], dtype=np.float64))


def trees_from_spark_dir(path: Path) -> tuple[list[Tree], list[float]]:
    """Trees and weights of a saved ``GBTClassificationModel`` (its Parquet node table)."""
    import pyarrow.parquet as pq

    nodes = pq.read_table(sorted(glob.glob(str(path / "data" / "*.parquet")))).to_pylist()
    meta = pq.read_table(sorted(glob.glob(str(path / "treesMetadata" / "*.parquet"))))
    # (tree id, params metadata, weight): Spark 3.5 names the columns treeID/metadata/
    # weights, Spark 4 leaves the tuple's _1/_2/_3, so they are read by position
    tree_col, _, weight_col = meta.column_names
    weights_by_tree = {row[tree_col]: row[weight_col] for row in meta.to_pylist()}
    by_tree: dict[int, list[dict]] = {}
    for row in nodes:
        by_tree.setdefault(row["treeID"], []).append(row["nodeData"])
    trees: list[Tree] = []
    for tree_id in sorted(by_tree):
        data = sorted(by_tree[tree_id], key=lambda n: n["id"])
        if [n["id"] for n in data] != list(range(len(data))):
            raise ValueError(f"tree {tree_id}: node ids are not 0..n-1")
        feature, threshold, left, right, value = [], [], [], [], []
        for n in data:
            leaf = n["leftChild"] < 0
            split = n["split"]
            if not leaf and split["numCategories"] != -1:
                raise ValueError("categorical splits are not supported")
            feature.append(-1 if leaf else split["featureIndex"])
            threshold.append(0.0 if leaf else split["leftCategoriesOrThreshold"][0])
            left.append(-1 if leaf else n["leftChild"])
            right.append(-1 if leaf else n["rightChild"])
            value.append(n["prediction"])
        trees.append(Tree(np.asarray(feature), np.asarray(threshold, dtype=np.float64),
                          np.asarray(left), np.asarray(right),
                          np.asarray(value, dtype=np.float64)))
    return trees, [float(weights_by_tree[t]) for t in sorted(by_tree)]


@dataclass
class RiskModel:
    """A model version ready to score: features, trees, alarm threshold and metadata."""

    version: str
    features: tuple[str, ...]
    trees: list[Tree]
    weights: list[float]
    threshold: float
    metadata: dict = field(default_factory=dict)
    # threshold chosen the same way on validation stays with every lab hidden; use it for
    # patients without lab results (``threshold_for``)
    threshold_monitor_only: float | None = None
    calibration: Calibration = IDENTITY
    calibration_monitor_only: Calibration | None = None  # None: ``calibration``

    def margin(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} feature columns, got {x.shape}")
        total = np.zeros(len(x))
        for tree, w in zip(self.trees, self.weights, strict=True):
            total += w * tree.predict(x)
        return total

    def raw_risk(self, features: pd.DataFrame) -> np.ndarray:
        """The trees' risk per row of a feature frame, before calibration (Spark's number)."""
        x = features[list(self.features)].to_numpy(dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-2.0 * self.margin(x)))

    def calibration_for(self, monitor_only: bool) -> Calibration:
        if monitor_only and self.calibration_monitor_only is not None:
            return self.calibration_monitor_only
        return self.calibration

    def predict_features(self, features: pd.DataFrame, *,
                         monitor_only: bool = False) -> np.ndarray:
        """Calibrated risk per row of a feature frame (columns by name, extra columns
        ignored); ``monitor_only``: rows of patients without lab results."""
        return self.calibration_for(monitor_only).apply(self.raw_risk(features))

    def score_frame(self, history: pd.DataFrame, last: int | None = None) -> np.ndarray:
        """Risk for every hour of one patient's stay (see ``features.hourly_features``),
        each hour as ``score_history`` gives it from the hours up to it: the monitor-only
        calibration for the hours before the first lab result. ``last``: only the last
        so many hours (their features still come from the whole stay). The live scorer
        wants one hour of a stay of up to two weeks; the trees cost per row scored."""
        features = hourly_features(history)
        labs_seen = labs_seen_by_row(history)
        if last is not None:
            start = max(len(history) - last, 0)
            features, labs_seen = features.iloc[start:], labs_seen[start:]
        raw = self.raw_risk(features)
        return np.where(labs_seen, self.calibration_for(False).apply(raw),
                        self.calibration_for(True).apply(raw))

    def score_history(self, history: pd.DataFrame) -> float:
        """Risk at the last hour of one patient's hourly history (no ``patient_id`` needed)."""
        if history.empty:
            raise ValueError("empty history")
        return float(self.predict_features(hourly_features(history).iloc[-1:],
                                           monitor_only=is_monitor_only(history))[0])

    def threshold_for(self, history: pd.DataFrame) -> float:
        """The alarm threshold for this history: the monitor-only one when it has no lab."""
        if not is_monitor_only(history) or self.threshold_monitor_only is None:
            return self.threshold
        return self.threshold_monitor_only

    def alarm(self, risk: float | np.ndarray, *, monitor_only: bool = False) -> bool | np.ndarray:
        th = self.threshold
        if monitor_only and self.threshold_monitor_only is not None:
            th = self.threshold_monitor_only
        return risk >= th

    def trees_to_dict(self) -> dict:
        return {"features": list(self.features), "weights": self.weights,
                "link": "risk = 1 / (1 + exp(-2 * sum(weight * tree)))",
                "trees": [t.to_dict() for t in self.trees]}

    def save_trees(self, path: Path) -> None:
        path.write_text(json.dumps(self.trees_to_dict()))

    @classmethod
    def load(cls, directory: Path) -> RiskModel:
        """A version directory of the registry (``metadata.json`` + ``trees.json``)."""
        meta = json.loads((directory / "metadata.json").read_text())
        trees = json.loads((directory / "trees.json").read_text())
        if trees["features"] != meta["features"]:
            raise ValueError(f"{directory}: trees and metadata list different features")
        monitor = meta.get("calibration_monitor_only")
        return cls(version=meta["version"], features=tuple(meta["features"]),
                   trees=[Tree.from_dict(t) for t in trees["trees"]],
                   weights=[float(w) for w in trees["weights"]],
                   threshold=float(meta["threshold"]), metadata=meta,
                   threshold_monitor_only=meta.get("threshold_monitor_only"),
                   calibration=Calibration.from_dict(meta.get("calibration")),
                   calibration_monitor_only=(None if monitor is None
                                             else Calibration.from_dict(monitor)))


def is_monitor_only(history: pd.DataFrame) -> bool:
    """A history without any lab result (a live patient: the stream carries no labs)."""
    return not any(c in history.columns and history[c].notna().any() for c in LABS)


def labs_seen_by_row(history: pd.DataFrame) -> np.ndarray:
    """Per row: has any lab result been recorded up to and including this row?"""
    columns = [c for c in LABS if c in history.columns]
    if not columns:
        return np.zeros(len(history), dtype=bool)
    return history[columns].notna().any(axis=1).cummax().to_numpy(dtype=bool)
