"""Training: Spark MLlib gradient-boosted trees in local mode, threshold on validation.

Stages (one tqdm bar, one tick per stage; the Spark fit shows its job count):

1. load set A (``backend.risk.data``), optionally a seeded subset of stays;
2. split patients 60/20/20, stratified by septic stay (``backend.risk.split``), or one
   of the site splits (train on one ICU type, test on the other);
3. features (``backend.risk.features``, the configured feature set); in a seeded share
   of *training* stays the labs are hidden so the model also works on monitor-only
   patients; label-0 training rows are down-sampled (kept with probability
   ``negative_rate``, weight ``1/negative_rate``) to keep a full run to a few minutes on
   2 cores;
4. ``GBTClassifier`` (logistic loss) on the training stays;
5. export the trees (``backend.risk.model``) and check them against Spark on validation;
6. calibration fitted on the VALIDATION stays (``backend.risk.calibration``; one map for
   patients with labs, one on the same stays with their labs hidden), then the alarm
   thresholds on the calibrated risks by the configured rule (the test stays are not
   touched: ``icu model evaluate`` uses them);
7. save the version in the registry.
"""

from __future__ import annotations

import logging
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from backend.risk import calibration as calib
from backend.risk import data as data_mod
from backend.risk import registry
from backend.risk.baselines import BASELINES, baseline_scores
from backend.risk.features import FEATURE_SETS, LABS, hourly_features, without_labs
from backend.risk.metrics import (
    alerts_per_patient_day,
    auprc,
    auroc,
    median_lead_time,
    patient_scores,
    patient_sensitivity_specificity,
    sensitivity_specificity,
    threshold_for_patient_sensitivity,
)
from backend.risk.model import RiskModel, trees_from_spark_dir
from backend.risk.split import SCHEMES, Split, site_split
from backend.risk.stages import StageClock
from backend.risk.utility import Cohort, normalized_utility, utility_curve
from backend.settings import Settings

log = logging.getLogger(__name__)

STAGES = ("load data", "split patients", "features", "start Spark", "fit GBT (Spark MLlib)",
          "export trees", "score validation", "calibrate, choose thresholds", "save version")
# What a version's ``params`` mean when a key is missing: how versions were trained before
# the key existed (so an old recipe is re-run as it was).
LEGACY_PARAMS = {"feature_set": "v1", "calibration": "none", "split": "random",
                 "threshold_rule": "max_utility", "match_margin": 0.0}
THRESHOLD_RULES = ("max_utility", "robust_utility", "sensitivity")
# "robust_utility": the validation stays re-weighted as if septic stays were this many
# times as common (odds), the mean normalised utility over these. Another site's share of
# septic stays differs (hospital A's ICU types: 10.7 % and 4.0 %; odds ratio 2.9), and the
# utility-maximising threshold moves with it (docs/model.md, site-robust evaluation).
PREVALENCE_ODDS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    max_patients: int | None = None
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    # GBTClassifier parameters
    max_iter: int = 100
    max_depth: int = 5
    step_size: float = 0.1
    subsampling_rate: float = 0.8
    min_instances_per_node: int = 50
    max_bins: int = 32
    # training-set preparation
    negative_rate: float = 0.35
    lab_dropout: float = 0.25
    # which stays train and test (backend.risk.split.SCHEMES), which features
    # (backend.risk.features.FEATURE_SETS), the calibration fitted on validation
    # (backend.risk.calibration.METHODS) and how the alarm threshold is chosen on the
    # calibrated validation risks: "max_utility" (normalised utility), "robust_utility"
    # (mean utility over other shares of septic stays, ``PREVALENCE_ODDS``) or
    # "sensitivity" (the highest threshold reaching ``target_sensitivity`` of septic stays)
    split: str = "random"
    feature_set: str = "v1"
    calibration: str = "platt"
    # "sensitivity" holds its patient sensitivity when the training and the held-out ICU
    # type differ (0.76-0.82 against 0.51-0.88 for "max_utility"), at equal utility on the
    # random split (docs/model.md, "Site-robust study")
    threshold_rule: str = "sensitivity"
    target_sensitivity: float = 0.8
    # operating point "at least <baseline>'s sensitivity": the highest threshold whose
    # validation patient sensitivity is the baseline's plus this margin (head room for
    # the loss of sensitivity at another site)
    match_margin: float = 0.05  # 0.0: 6 of 15 baseline comparisons held, 0.05: 11 (site study)
    # train on SepsisLabel moved this many hours earlier within septic stays (the
    # Challenge's utility rewards alarms from 12 h before onset, the label starts at 6 h);
    # calibration, thresholds and evaluation always use SepsisLabel itself
    label_lead_hours: int = 0

    def __post_init__(self) -> None:
        if self.split not in SCHEMES:
            raise ValueError(f"unknown split {self.split!r}; expected one of {SCHEMES}")
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {self.feature_set!r}; "
                             f"expected one of {tuple(FEATURE_SETS)}")
        if self.calibration not in calib.METHODS:
            raise ValueError(f"unknown calibration {self.calibration!r}")
        if self.threshold_rule not in THRESHOLD_RULES:
            raise ValueError(f"unknown threshold rule {self.threshold_rule!r}; "
                             f"expected one of {THRESHOLD_RULES}")

    @property
    def features(self) -> tuple[str, ...]:
        return FEATURE_SETS[self.feature_set]

    @classmethod
    def from_params(cls, params: dict) -> TrainConfig:
        """The recipe of a registered version (its metadata ``params``)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {**LEGACY_PARAMS, **{k: v for k, v in params.items() if k in known}}
        if values.get("fractions") is not None:
            values["fractions"] = tuple(values["fractions"])
        return cls(**values)


@dataclass
class TrainResult:
    version: str
    path: Path
    metadata: dict
    timings: dict[str, float] = field(default_factory=dict)


def spark_session(settings: Settings, app_name: str = "icu-risk-train") -> Any:
    """A local SparkSession for batch ML (no Kafka jars, no UI, quiet logs)."""
    from pyspark.sql import SparkSession

    cfg = settings.spark
    spark = (
        SparkSession.builder.appName(app_name)
        .master(cfg.batch_master)
        .config("spark.driver.memory", "4g")
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def _spark_jobs_postfix(bar: tqdm, spark: Any, group: str) -> Iterator[None]:
    """Show the number of Spark jobs of ``group`` on the bar while the block runs."""
    stop = threading.Event()
    tracker = spark.sparkContext.statusTracker()

    def poll() -> None:
        while not stop.wait(1.0):
            try:
                bar.set_postfix_str(f"spark jobs {len(tracker.getJobIdsForGroup(group))}")
            except Exception:  # the progress display must never fail a fit
                return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def septic_by_patient(frame: pd.DataFrame) -> dict[str, bool]:
    return frame.groupby("patient_id", sort=True)["label"].max().astype(bool).to_dict()


def hide_labs(frame: pd.DataFrame, patients: set[str] | list[str]) -> pd.DataFrame:
    """``frame`` with every lab of the given stays set to NaN (monitor-only stays)."""
    out = frame.copy()
    rows = out["patient_id"].isin(list(patients)).to_numpy()
    for lab in LABS:
        if lab in out.columns:
            out.loc[rows, lab] = np.nan
    return out


def training_labels(frame: pd.DataFrame, lead_hours: int = 0) -> np.ndarray:
    """SepsisLabel, or (``lead_hours`` > 0) 1 from ``lead_hours`` before its first 1."""
    y = frame["label"].to_numpy()
    if lead_hours <= 0:
        return y
    pos = frame.groupby("patient_id", sort=False).cumcount().to_numpy()
    first = (pd.Series(np.where(y == 1, pos, np.iinfo(np.int64).max))
             .groupby(frame["patient_id"].to_numpy(), sort=False).transform("min").to_numpy())
    return (pos >= first - lead_hours).astype(y.dtype)


def training_rows(frame: pd.DataFrame, config: TrainConfig,
                  precomputed: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Training features, labels and weights (labs hidden, negatives down-sampled).

    ``precomputed``: the features of ``frame``'s rows with labs and with every lab hidden
    (same index); features are per stay, so picking per stay gives the same rows."""
    rng = np.random.default_rng([config.seed, 1])
    stays = np.array(sorted(frame["patient_id"].unique()))
    hidden = stays[rng.random(len(stays)) < config.lab_dropout]
    if precomputed is None:
        x = hourly_features(hide_labs(frame, set(hidden)))
    else:
        with_labs, no_labs = precomputed
        mask = frame["patient_id"].isin(set(hidden)).to_numpy()
        x = pd.DataFrame(np.where(mask[:, None], no_labs.to_numpy(), with_labs.to_numpy()),
                         index=with_labs.index, columns=with_labs.columns)
    x = x[list(config.features)]
    y = training_labels(frame, config.label_lead_hours)
    keep = (y == 1) | (rng.random(len(y)) < config.negative_rate)
    out = x[keep].copy()
    out["label"] = y[keep].astype(np.float64)
    out["weight"] = np.where(y[keep] == 1, 1.0, 1.0 / config.negative_rate)
    return out.reset_index(drop=True)


def summary_metrics(cohort: Cohort, risk: np.ndarray, threshold: float) -> dict[str, float]:
    """The headline metrics of a risk vector at a threshold (used for validation and test)."""
    pred = risk >= threshold
    sens_h, spec_h = sensitivity_specificity(cohort.labels, pred)
    sens_p, spec_p = patient_sensitivity_specificity(cohort, pred)
    y_p, s_p = patient_scores(cohort, risk)
    return {
        "auroc_hourly": auroc(cohort.labels, risk),
        "auprc_hourly": auprc(cohort.labels, risk),
        "auroc_patient": auroc(y_p, s_p),
        "auprc_patient": auprc(y_p, s_p),
        "sensitivity_hourly": sens_h,
        "specificity_hourly": spec_h,
        "sensitivity_patient": sens_p,
        "specificity_patient": spec_p,
        "utility": normalized_utility(cohort, pred),
        "alerts_per_patient_day": alerts_per_patient_day(cohort, pred),
        "median_lead_hours": median_lead_time(cohort, pred),
    }


def choose_threshold(cohort: Cohort, risk: np.ndarray,
                     n_candidates: int = 1000) -> tuple[float, np.ndarray, np.ndarray]:
    """The threshold maximising the normalised utility; and the (thresholds, utility) curve."""
    candidates = np.unique(np.quantile(risk, np.linspace(0.0, 1.0, n_candidates)))
    curve = utility_curve(cohort, risk, candidates)
    best = int(np.nanargmax(curve))
    return float(candidates[best]), candidates, curve


def robust_threshold(cohort: Cohort, risk: np.ndarray,
                     odds: tuple[float, ...] = PREVALENCE_ODDS,
                     n_candidates: int = 1000) -> float:
    """The threshold maximising the mean normalised utility over ``cohort`` seen with
    septic stays weighted by each of ``odds`` (a site where they are rarer or commoner)."""
    candidates = np.unique(np.quantile(risk, np.linspace(0.0, 1.0, n_candidates)))
    curves = [utility_curve(cohort, risk, candidates, np.where(cohort.row_septic, k, 1.0))
              for k in odds]
    return float(candidates[int(np.nanargmax(np.mean(curves, axis=0)))])


def rule_threshold(config: TrainConfig, cohort: Cohort, risk: np.ndarray) -> float:
    """The alarm threshold of ``config.threshold_rule`` on validation risks."""
    if config.threshold_rule == "sensitivity":
        return threshold_for_patient_sensitivity(cohort, risk, config.target_sensitivity)
    if config.threshold_rule == "robust_utility":
        return robust_threshold(cohort, risk)
    return choose_threshold(cohort, risk)[0]


@dataclass
class Calibrated:
    """What stage 6 decides on the validation stays."""

    calibration: calib.Calibration
    calibration_monitor_only: calib.Calibration
    threshold: float
    threshold_monitor_only: float
    risk: np.ndarray  # calibrated validation risks, with labs
    risk_monitor_only: np.ndarray  # and with every lab hidden


def calibrate(config: TrainConfig, cohort: Cohort, raw: np.ndarray,
              raw_monitor_only: np.ndarray) -> Calibrated:
    """Fit the calibrations on the validation stays' raw risks, then the thresholds on
    the calibrated risks (with labs, and with every lab hidden)."""
    if config.calibration == "platt" and not 0 < int(cohort.labels.sum()) < cohort.n_rows:
        raise ValueError("the validation stays hold no septic hour (or only septic hours): "
                         "cannot fit a calibration; train on more stays")
    where = {"population": "validation stays", "n_hours": int(cohort.n_rows),
             "n_positive_hours": int(cohort.labels.sum()),
             "n_stays": len(cohort.stay_ids), "n_septic_stays": int(cohort.stay_septic.sum())}
    cal = calib.fit(config.calibration, cohort.labels, raw, fitted_on=where)
    cal_monitor = calib.fit(config.calibration, cohort.labels, raw_monitor_only,
                            fitted_on={**where, "labs": "hidden"})
    risk, risk_monitor = cal.apply(raw), cal_monitor.apply(raw_monitor_only)
    return Calibrated(cal, cal_monitor, rule_threshold(config, cohort, risk),
                      rule_threshold(config, cohort, risk_monitor), risk, risk_monitor)


def operating_points(config: TrainConfig, cohort: Cohort, risk: np.ndarray,
                     base: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per baseline: the model threshold detecting at least the baseline's share of septic
    validation stays plus ``config.match_margin`` (``base``: baseline scores, same rows)."""
    out = {}
    for b in BASELINES:
        sens = patient_sensitivity_specificity(cohort, b.alerts(base))[0]
        target = min(1.0, sens + config.match_margin)
        out[b.name] = {"baseline_validation_sensitivity": sens, "target_sensitivity": target,
                       "threshold": threshold_for_patient_sensitivity(cohort, risk, target)}
    return out


def threshold_rule_text(config: TrainConfig) -> str:
    if config.threshold_rule == "sensitivity":
        return (f"the highest threshold detecting {config.target_sensitivity:.0%} of the "
                "septic validation stays (calibrated risks)")
    if config.threshold_rule == "robust_utility":
        odds = ", ".join(f"{k:g}" for k in PREVALENCE_ODDS)
        return ("maximises the mean normalised PhysioNet 2019 utility on validation with "
                f"septic stays weighted {odds} (other sites' sepsis rates; calibrated risks)")
    return "maximises the normalised PhysioNet 2019 utility on validation (calibrated risks)"


def fit_gbt(spark: Any, rows: pd.DataFrame, config: TrainConfig,
            bar: tqdm | None = None) -> tuple[Any, Any, int]:
    """Spark MLlib GBT on training rows; returns (model, assembler, number of rows)."""
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.feature import VectorAssembler

    assembler = VectorAssembler(inputCols=list(config.features), outputCol="features")
    train_df = (assembler.transform(spark.createDataFrame(rows))
                .select("features", "label", "weight")
                .repartition(max(1, spark.sparkContext.defaultParallelism)).cache())
    n_train_rows = train_df.count()
    gbt = GBTClassifier(
        labelCol="label", featuresCol="features", weightCol="weight",
        maxIter=config.max_iter, maxDepth=config.max_depth, stepSize=config.step_size,
        subsamplingRate=config.subsampling_rate,
        minInstancesPerNode=config.min_instances_per_node, maxBins=config.max_bins,
        seed=config.seed, lossType="logistic",
    )
    group = f"risk-train-{time.time_ns()}"
    spark.sparkContext.setJobGroup(group, "GBT fit")
    # MLlib checkpoints the boosting state every ``checkpointInterval`` (10) trees when a
    # checkpoint directory is set; without one the lineage grows with every tree and a
    # fit of ~200 trees dies of a StackOverflowError
    with tempfile.TemporaryDirectory(prefix="icu-gbt-checkpoints-") as checkpoints:
        spark.sparkContext.setCheckpointDir(checkpoints)
        if bar is None:
            gbt_model = gbt.fit(train_df)
        else:
            with _spark_jobs_postfix(bar, spark, group):
                gbt_model = gbt.fit(train_df)
    train_df.unpersist()
    return gbt_model, assembler, int(n_train_rows)


def export_checked(gbt_model: Any, assembler: Any, spark: Any, directory: Path,
                   version: str, features: tuple[str, ...], x_check: pd.DataFrame,
                   seed: int) -> tuple[RiskModel, float]:
    """Save the Spark model in ``directory/spark``, export its trees and check them
    against Spark's own probabilities on up to 2,000 rows of ``x_check``."""
    gbt_model.write().overwrite().save(str(directory / "spark"))
    trees, weights = trees_from_spark_dir(directory / "spark")
    model = RiskModel(version, features, trees, weights, threshold=0.5)
    sample = np.sort(np.random.default_rng(seed).choice(
        len(x_check), min(2000, len(x_check)), replace=False))
    rows = x_check.iloc[sample][list(features)].reset_index(drop=True)
    check = (gbt_model.transform(assembler.transform(spark.createDataFrame(rows)))
             .select("probability").toPandas())
    spark_risk = np.array([v[1] for v in check["probability"]])
    max_diff = float(np.max(np.abs(spark_risk - model.raw_risk(rows))))
    if max_diff > 1e-9:
        raise RuntimeError(f"exported trees disagree with Spark by {max_diff}")
    return model, max_diff


def train(settings: Settings, config: TrainConfig | None = None, *,
          progress: bool = True, activate: bool | None = None) -> TrainResult:
    """Train, calibrate and choose the thresholds on validation, save a registry version.

    ``activate``: True activates the new version, False never, None (default) only when
    no version is active yet.
    """
    config = config or TrainConfig()
    clock = StageClock(STAGES, "train", progress=progress)

    clock.begin(STAGES[0])
    dataset = data_mod.load(settings, max_patients=config.max_patients, seed=config.seed)
    frame = dataset.frame
    clock.end(STAGES[0])

    clock.begin(STAGES[1])
    split: Split = site_split(config.split, septic_by_patient(frame),
                              data_mod.stay_units(frame), seed=config.seed,
                              fractions=config.fractions)
    clock.end(STAGES[1])

    clock.begin(STAGES[2])
    train_frame = frame[frame["patient_id"].isin(split.train)].reset_index(drop=True)
    val_frame = frame[frame["patient_id"].isin(split.validation)].reset_index(drop=True)
    rows = training_rows(train_frame, config)
    x_val = hourly_features(val_frame)
    clock.end(STAGES[2])

    clock.begin(STAGES[3])
    spark = spark_session(settings)
    clock.end(STAGES[3])

    clock.begin(STAGES[4])
    gbt_model, assembler, n_train_rows = fit_gbt(spark, rows, config, clock.bar)
    clock.end(STAGES[4])

    version = registry.new_version(settings)
    work = registry.partial_dir(settings, version)
    work.mkdir(parents=True)
    try:
        path, metadata = _finish(settings, config, version, work, gbt_model, assembler, spark,
                                 dataset, frame, split, val_frame, x_val, n_train_rows,
                                 clock)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # never leave a half-written version
        raise
    if activate or (activate is None and registry.active_version(settings) is None):
        registry.activate(settings, version)
    clock.end(STAGES[8])
    clock.close()
    metadata["runtime_seconds"] = clock.runtime_seconds()
    registry.update_metadata(settings, version, runtime_seconds=metadata["runtime_seconds"])
    return TrainResult(version, path, metadata, clock.timings)


def _finish(settings: Settings, config: TrainConfig, version: str, work: Path, gbt_model: Any,
            assembler: Any, spark: Any, dataset: data_mod.Dataset, frame: pd.DataFrame,
            split: Split, val_frame: pd.DataFrame, x_val: pd.DataFrame, n_train_rows: int,
            clock: StageClock) -> tuple[Path, dict]:
    """Stages 6-9 up to publishing: export, validation scores, calibration, thresholds."""
    import pyspark

    clock.begin(STAGES[5])
    model, max_diff = export_checked(gbt_model, assembler, spark, work, version,
                                     config.features, x_val, config.seed)
    clock.end(STAGES[5])

    clock.begin(STAGES[6])
    raw_val = model.raw_risk(x_val)
    raw_val_monitor = model.raw_risk(hourly_features(without_labs(val_frame)))
    clock.end(STAGES[6])

    clock.begin(STAGES[7])
    cohort_val = Cohort.from_rows(val_frame["patient_id"].to_numpy(),
                                  val_frame["label"].to_numpy())
    cal = calibrate(config, cohort_val, raw_val, raw_val_monitor)
    model.calibration, model.calibration_monitor_only = (cal.calibration,
                                                         cal.calibration_monitor_only)
    model.threshold, model.threshold_monitor_only = cal.threshold, cal.threshold_monitor_only
    val_metrics = {**summary_metrics(cohort_val, cal.risk, cal.threshold),
                   **calib.calibration_report(cohort_val.labels, cal.risk)}
    val_metrics_monitor = {
        **summary_metrics(cohort_val, cal.risk_monitor_only, cal.threshold_monitor_only),
        **calib.calibration_report(cohort_val.labels, cal.risk_monitor_only)}
    _, candidates, curve = choose_threshold(cohort_val, cal.risk)
    base_val = baseline_scores(val_frame, settings)
    points = operating_points(config, cohort_val, cal.risk, base_val)
    points_monitor = operating_points(config, cohort_val, cal.risk_monitor_only, base_val)
    for name, p in points.items():
        p["threshold_monitor_only"] = points_monitor[name]["threshold"]
        p["target_sensitivity_monitor_only"] = points_monitor[name]["target_sensitivity"]
    clock.end(STAGES[7])

    clock.begin(STAGES[8])
    n_septic = _septic_counts(frame, split)
    importances = gbt_model.featureImportances.toArray()
    metadata = {
        "model_name": registry.MODEL_NAME,
        "version": version,
        "created": registry.now_iso(),
        "task": "hourly risk that SepsisLabel is 1 (sepsis onset within 6 h or present)",
        "training_data": "PhysioNet/CinC 2019 training set A (doi:10.13026/v64v-d857)",
        "training_data_sha256": dataset.data_sha256,
        "source_sha256": dataset.source_sha256,
        "split_scheme": split.scheme,
        "n_patients": {p: len(split.part(p)) for p in ("train", "validation", "test")},
        "n_septic_patients": n_septic,
        "n_training_rows": int(n_train_rows),
        "features": list(config.features),
        "feature_set": config.feature_set,
        "threshold": cal.threshold,
        "threshold_rule": threshold_rule_text(config),
        "threshold_monitor_only": cal.threshold_monitor_only,
        "calibration": cal.calibration.to_dict(),
        "calibration_monitor_only": cal.calibration_monitor_only.to_dict(),
        # per baseline: thresholds reaching its validation sensitivity (plus a margin)
        "operating_points": points,
        "metrics": {"validation": val_metrics,
                    "validation_monitor_only": val_metrics_monitor},
        "params": asdict(config),
        "spark_version": pyspark.__version__,
        "python_version": platform.python_version(),
        "spark_check_max_abs_diff": max_diff,
        # MLlib's importance: split gains weighted by the rows they split, normalised
        "feature_importances": dict(sorted(
            ((name, float(v)) for name, v in zip(config.features, importances, strict=True)),
            key=lambda kv: -kv[1])),
        "runtime_seconds": clock.runtime_seconds(),
    }
    model.save_trees(work / "trees.json")
    registry.write_json(work / "split.json", split.to_dict())
    registry.write_json(work / "validation_utility_curve.json",
                        {"threshold": candidates, "utility": curve})
    registry.write_json(work / "metadata.json", metadata)
    return registry.publish(settings, version), metadata


def _septic_counts(frame: pd.DataFrame, split: Split) -> dict[str, int]:
    septic = septic_by_patient(frame)
    return {p: sum(septic[pid] for pid in split.part(p)) for p in ("train", "validation", "test")}
