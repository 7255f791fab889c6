"""Training: Spark MLlib gradient-boosted trees in local mode, threshold on validation.

Stages (one tqdm bar, one tick per stage; the Spark fit shows its job count):

1. load set A (``backend.risk.data``), optionally a seeded subset of stays;
2. split patients 60/20/20, stratified by septic stay (``backend.risk.split``);
3. features (``backend.risk.features``); in a seeded share of *training* stays the labs
   are hidden so the model also works on monitor-only patients; label-0 training rows
   are down-sampled (kept with probability ``negative_rate``, weight ``1/negative_rate``
   so the risks stay calibrated) to keep a full run to a few minutes on 2 cores;
4. ``GBTClassifier`` (logistic loss) on the training stays;
5. export the trees (``backend.risk.model``) and check them against Spark on validation;
6. alarm threshold = the one that maximises the normalised utility on the VALIDATION
   stays (the test stays are not touched: ``icu model evaluate`` uses them); a second
   threshold the same way on the validation stays with their labs hidden, for
   monitor-only patients;
7. save the version in the registry.
"""

from __future__ import annotations

import logging
import platform
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from backend.risk import data as data_mod
from backend.risk import registry
from backend.risk.features import FEATURES, LABS, hourly_features, without_labs
from backend.risk.metrics import (
    alerts_per_patient_day,
    auprc,
    auroc,
    median_lead_time,
    patient_scores,
    patient_sensitivity_specificity,
    sensitivity_specificity,
)
from backend.risk.model import RiskModel, trees_from_spark_dir
from backend.risk.split import Split, split_patients
from backend.risk.utility import Cohort, normalized_utility, utility_curve
from backend.settings import Settings

log = logging.getLogger(__name__)

STAGES = ("load data", "split patients", "features", "start Spark", "fit GBT (Spark MLlib)",
          "export trees", "score validation", "choose threshold", "save version")


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
        .master(cfg.master)
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


def training_rows(frame: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """Training features, labels and weights (labs hidden, negatives down-sampled)."""
    rng = np.random.default_rng([config.seed, 1])
    stays = np.array(sorted(frame["patient_id"].unique()))
    hidden = stays[rng.random(len(stays)) < config.lab_dropout]
    x = hourly_features(hide_labs(frame, set(hidden)))
    y = frame["label"].to_numpy()
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


def train(settings: Settings, config: TrainConfig | None = None, *,
          progress: bool = True, activate: bool | None = None) -> TrainResult:
    """Train, choose the threshold on validation, save a registry version.

    ``activate``: True activates the new version, False never, None (default) only when
    no version is active yet.
    """
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.feature import VectorAssembler

    config = config or TrainConfig()
    timings: dict[str, float] = {}
    bar = tqdm(total=len(STAGES), desc="train", unit="stage", disable=not progress)
    t_stage = time.monotonic()
    t_start = t_stage

    def stage(name: str) -> None:
        nonlocal t_stage
        now = time.monotonic()
        timings[name] = round(now - t_stage, 2)
        t_stage = now
        bar.update(1)

    def begin(name: str) -> None:
        bar.set_description(name)
        bar.set_postfix_str("")

    begin(STAGES[0])
    dataset = data_mod.load(settings, max_patients=config.max_patients, seed=config.seed)
    frame = dataset.frame
    stage(STAGES[0])

    begin(STAGES[1])
    split: Split = split_patients(septic_by_patient(frame), seed=config.seed,
                                  fractions=config.fractions)
    stage(STAGES[1])

    begin(STAGES[2])
    train_frame = frame[frame["patient_id"].isin(split.train)].reset_index(drop=True)
    val_frame = frame[frame["patient_id"].isin(split.validation)].reset_index(drop=True)
    rows = training_rows(train_frame, config)
    x_val = hourly_features(val_frame)
    stage(STAGES[2])

    begin(STAGES[3])
    spark = spark_session(settings)
    stage(STAGES[3])

    begin(STAGES[4])
    assembler = VectorAssembler(inputCols=list(FEATURES), outputCol="features")
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
    with _spark_jobs_postfix(bar, spark, group):
        gbt_model = gbt.fit(train_df)
    train_df.unpersist()
    stage(STAGES[4])

    version = registry.new_version(settings)
    work = registry.partial_dir(settings, version)
    work.mkdir(parents=True)
    try:
        path, metadata = _finish(settings, config, version, work, gbt_model, assembler, spark,
                                 dataset, frame, split, val_frame, x_val, n_train_rows,
                                 begin, stage, timings, t_start)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # never leave a half-written version
        raise
    if activate or (activate is None and registry.active_version(settings) is None):
        registry.activate(settings, version)
    stage(STAGES[8])
    bar.close()
    metadata["runtime_seconds"] = {**timings, "total": round(time.monotonic() - t_start, 2)}
    registry.update_metadata(settings, version, runtime_seconds=metadata["runtime_seconds"])
    return TrainResult(version, path, metadata, timings)


def _finish(settings: Settings, config: TrainConfig, version: str, work: Path, gbt_model: Any,
            assembler: Any, spark: Any, dataset: data_mod.Dataset, frame: pd.DataFrame,
            split: Split, val_frame: pd.DataFrame, x_val: pd.DataFrame, n_train_rows: int,
            begin: Callable[[str], None], stage: Callable[[str], None],
            timings: dict[str, float], t_start: float) -> tuple[Path, dict]:
    """Stages 6-9 up to publishing: export, validation scores, thresholds, metadata."""
    import pyspark

    begin(STAGES[5])
    gbt_model.write().overwrite().save(str(work / "spark"))
    trees, weights = trees_from_spark_dir(work / "spark")
    model = RiskModel(version, FEATURES, trees, weights, threshold=0.5)
    stage(STAGES[5])

    begin(STAGES[6])
    risk_val = model.predict_features(x_val)
    risk_val_monitor = model.predict_features(hourly_features(without_labs(val_frame)))
    # the exported trees must reproduce Spark's probabilities (checked on a sample)
    sample = np.random.default_rng(config.seed).choice(len(x_val), min(2000, len(x_val)),
                                                       replace=False)
    check = (gbt_model.transform(assembler.transform(spark.createDataFrame(
        x_val.iloc[np.sort(sample)].reset_index(drop=True)))).select("probability").toPandas())
    spark_risk = np.array([v[1] for v in check["probability"]])
    max_diff = float(np.max(np.abs(spark_risk - risk_val[np.sort(sample)])))
    if max_diff > 1e-9:
        raise RuntimeError(f"exported trees disagree with Spark by {max_diff}")
    stage(STAGES[6])

    begin(STAGES[7])
    cohort_val = Cohort.from_rows(val_frame["patient_id"].to_numpy(),
                                  val_frame["label"].to_numpy())
    threshold, candidates, curve = choose_threshold(cohort_val, risk_val)
    model.threshold = threshold
    val_metrics = summary_metrics(cohort_val, risk_val, threshold)
    threshold_monitor, _, _ = choose_threshold(cohort_val, risk_val_monitor)
    model.threshold_monitor_only = threshold_monitor
    val_metrics_monitor = summary_metrics(cohort_val, risk_val_monitor, threshold_monitor)
    stage(STAGES[7])

    begin(STAGES[8])
    n_septic = _septic_counts(frame, split)
    metadata = {
        "model_name": registry.MODEL_NAME,
        "version": version,
        "created": registry.now_iso(),
        "task": "hourly risk that SepsisLabel is 1 (sepsis onset within 6 h or present)",
        "training_data": "PhysioNet/CinC 2019 training set A (doi:10.13026/v64v-d857)",
        "training_data_sha256": dataset.data_sha256,
        "source_sha256": dataset.source_sha256,
        "n_patients": {p: len(split.part(p)) for p in ("train", "validation", "test")},
        "n_septic_patients": n_septic,
        "n_training_rows": int(n_train_rows),
        "features": list(FEATURES),
        "threshold": threshold,
        "threshold_rule": "maximises the normalised PhysioNet 2019 utility on validation",
        "threshold_monitor_only": threshold_monitor,
        "metrics": {"validation": val_metrics,
                    "validation_monitor_only": val_metrics_monitor},
        "params": asdict(config),
        "spark_version": pyspark.__version__,
        "python_version": platform.python_version(),
        "spark_check_max_abs_diff": max_diff,
        # MLlib's importance: split gains weighted by the rows they split, normalised
        "feature_importances": dict(sorted(
            ((name, float(v)) for name, v in zip(FEATURES, gbt_model.featureImportances.toArray(),
                                                 strict=True)),
            key=lambda kv: -kv[1])),
        "runtime_seconds": {**timings, "total": round(time.monotonic() - t_start, 2)},
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
