"""``icu model``: train, evaluate and manage versions of the sepsis risk model.

Cassandra is optional: the registry on disk is authoritative, and ``--cassandra`` (or
``icu model mirror``) copies versions, activations and evaluations into the tables of
migration 0100_model_registry (run ``icu db migrate`` first).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from backend.risk import registry
from backend.risk.calibration import METHODS
from backend.risk.features import FEATURE_SETS
from backend.risk.split import SCHEMES, UNITS
from backend.risk.train import THRESHOLD_RULES
from backend.settings import Settings, get_settings


@contextlib.contextmanager
def _cassandra(settings: Settings, wait: float = 30.0) -> Iterator[Any]:
    from backend.storage.cassandra import connect

    session = connect(settings.cassandra, wait_seconds=wait)
    try:
        yield session
    finally:
        session.cluster.shutdown()


def _mirror(settings: Settings, version: str | None) -> None:
    with _cassandra(settings) as session:
        done = registry.mirror_all(session, settings, version)
    click.echo(f"mirrored to Cassandra keyspace {settings.cassandra.keyspace}: "
               f"{', '.join(done) or 'no versions'} and the activation log")


@click.group()
def cli() -> None:
    """Sepsis deterioration risk model (PhysioNet/CinC 2019 set A)."""


@cli.command("train")
@click.option("--max-patients", type=click.IntRange(min=20), default=None,
              help="train on a seeded random subset of stays (quick runs)")
@click.option("--seed", type=int, default=0, show_default=True,
              help="seed of the subset, the split, the sampling and the trees")
@click.option("--max-iter", type=click.IntRange(min=1), default=None,
              help="number of boosted trees (default: TrainConfig.max_iter)")
@click.option("--max-depth", type=click.IntRange(min=1, max=15), default=None)
@click.option("--negative-rate", type=click.FloatRange(0.01, 1.0), default=None,
              help="share of label-0 training rows kept (weighted back)")
@click.option("--lab-dropout", type=click.FloatRange(0.0, 1.0), default=None,
              help="share of training stays whose labs are hidden")
@click.option("--split", "split_scheme", type=click.Choice(SCHEMES), default=None,
              help="random patients (default), or train on one ICU type and test on the "
                   "other")
@click.option("--feature-set", type=click.Choice(sorted(FEATURE_SETS)), default=None,
              help="named feature set (backend/risk/features.py)")
@click.option("--calibration", type=click.Choice(METHODS), default=None,
              help="calibration fitted on validation")
@click.option("--threshold-rule", type=click.Choice(THRESHOLD_RULES), default=None,
              help="alarm threshold: max validation utility, its mean over other sepsis "
                   "rates, or --target-sensitivity")
@click.option("--target-sensitivity", type=click.FloatRange(0.05, 1.0), default=None)
@click.option("--match-margin", type=click.FloatRange(0.0, 0.5), default=None,
              help="head room above each baseline's validation sensitivity for its "
                   "operating point")
@click.option("--activate/--no-activate", default=None,
              help="activate the new version (default: only if none is active)")
@click.option("--cassandra", is_flag=True, help="mirror the new version into Cassandra")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_cmd(max_patients: int | None, seed: int, max_iter: int | None,
              max_depth: int | None, negative_rate: float | None, lab_dropout: float | None,
              split_scheme: str | None, feature_set: str | None, calibration: str | None,
              threshold_rule: str | None, target_sensitivity: float | None,
              match_margin: float | None, activate: bool | None, cassandra: bool,
              quiet: bool) -> None:
    """Train a new version with Spark MLlib; calibration and thresholds on validation."""
    from backend.risk.train import TrainConfig, train

    overrides = {k: v for k, v in {
        "max_iter": max_iter, "max_depth": max_depth, "negative_rate": negative_rate,
        "lab_dropout": lab_dropout, "split": split_scheme, "feature_set": feature_set,
        "calibration": calibration, "threshold_rule": threshold_rule,
        "target_sensitivity": target_sensitivity, "match_margin": match_margin,
    }.items() if v is not None}
    config = TrainConfig(seed=seed, max_patients=max_patients, **overrides)
    settings = get_settings()
    result = train(settings, config, progress=not quiet, activate=activate)
    meta = result.metadata
    val = meta["metrics"]["validation"]
    click.echo(f"version {result.version} saved in {result.path}")
    click.echo(f"split {meta['split_scheme']}: patients train/validation/test: "
               f"{meta['n_patients']['train']}/{meta['n_patients']['validation']}/"
               f"{meta['n_patients']['test']}; calibration {config.calibration}; threshold "
               f"{meta['threshold']:.4f} (monitor only {meta['threshold_monitor_only']:.4f}): "
               f"{meta['threshold_rule']}")
    click.echo("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()
                                           if isinstance(v, float)))
    click.echo(f"runtime {meta['runtime_seconds']['total']:.0f} s "
               f"(fit {meta['runtime_seconds']['fit GBT (Spark MLlib)']:.0f} s); "
               f"active version: {registry.active_version(settings)}")
    if cassandra:
        _mirror(settings, result.version)


def _site_frame(settings: Settings, data: str | None, unit: str | None,
                version: str | None) -> tuple[Any, str]:
    """The stays of another site (``--data``) or of one ICU type of set A (``--unit``)
    that ``version`` was not trained or validated on; and a name for them."""
    from pathlib import Path

    from backend.risk import data as data_mod

    if (data is None) == (unit is None):
        raise click.UsageError("give exactly one of --data PATH and --unit "
                               + "|".join(UNITS))
    try:
        if data is not None:
            dataset = data_mod.load_directory(Path(data))
            return dataset.frame, Path(data).name
        version = version or registry.active_version(settings)
        if version is None:
            raise click.ClickException("no active model; pass a version")
        used = registry.read_json_file(registry.version_dir(settings, version) / "split.json")
        seen = set(used["train"]) | set(used["validation"])
        frame = data_mod.load(settings).frame
        units = data_mod.stay_units(frame)
        keep = [p for p, u in units.items() if u == unit and p not in seen]
    except (OSError, ValueError, registry.RegistryError) as e:
        raise click.ClickException(str(e)) from e
    if not keep:
        raise click.ClickException(f"no {unit} stays outside version {version}'s training "
                                   "and validation stays")
    return (frame[frame["patient_id"].isin(set(keep))].reset_index(drop=True),
            f"set A {unit} ICU (stays not trained or validated on)")


@cli.command("evaluate")
@click.argument("version", required=False)
@click.option("--bootstrap", type=click.IntRange(min=0), default=200, show_default=True,
              help="patient resamples for the AUROC confidence intervals (0 = none)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--data", type=click.Path(exists=True), default=None,
              help="evaluate on every stay of this directory or tar archive of PhysioNet "
                   "2019 .psv files (another site), with the version's thresholds")
@click.option("--cassandra", is_flag=True, help="mirror the evaluation into Cassandra")
@click.option("--quiet", is_flag=True, help="no progress bar")
def evaluate_cmd(version: str | None, bootstrap: int, seed: int, data: str | None,
                 cassandra: bool, quiet: bool) -> None:
    """Compare the model (default: the active version) with the baselines on TEST patients."""
    from backend.risk.model_evaluation import evaluate_model, markdown_table

    settings = get_settings()
    frame, name = (None, None) if data is None else _site_frame(settings, data, None, version)
    doc = evaluate_model(settings, version, progress=not quiet, n_bootstrap=bootstrap, seed=seed,
                   test_frame=frame, name=name)
    where = "test patients" if data is None else f"stays of {name}"
    click.echo(f"version {doc['version']}: {doc['n_patients']} {where} "
               f"({doc['n_septic_patients']} septic), {doc['n_patient_hours']} patient-hours, "
               f"model threshold {doc['threshold']:.4f}")
    click.echo(markdown_table(doc))
    saved = "evaluation.json" if data is None else "evaluation-<name>.json"
    click.echo(f"saved {registry.version_dir(settings, doc['version']) / saved} "
               f"({doc['runtime_seconds']['total']:.0f} s)")
    if cassandra and data is None:
        _mirror(settings, doc["version"])


@cli.command("sites")
@click.argument("version", required=False)
@click.option("--quiet", is_flag=True, help="no progress bar")
def sites_cmd(version: str | None, quiet: bool) -> None:
    """Site-robust evaluation of VERSION's recipe (default: the active version).

    Random split: the version itself on its test patients. Medical ICU -> surgical ICU and
    back: the same recipe retrained (Spark) on one ICU type of set A, calibrated and
    thresholded on its validation stays, tested on every stay of the other. Saves
    sites.json next to the version (the Models page shows it)."""
    from backend.risk.sites import site_evaluation, summary_rows

    settings = get_settings()
    try:
        doc = site_evaluation(settings, version, progress=not quiet)
    except registry.RegistryError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"version {doc['version']}: site-robust evaluation "
               f"({doc['runtime_seconds']:.0f} s)")
    for line in summary_rows(doc):
        click.echo(line)
    click.echo(f"saved {registry.version_dir(settings, doc['version']) / 'sites.json'}")


@cli.command("recalibrate")
@click.argument("version", required=False)
@click.option("--data", type=click.Path(exists=True), default=None,
              help="the new site's labelled stays: a directory or tar archive of PhysioNet "
                   "2019 .psv files")
@click.option("--unit", type=click.Choice(UNITS), default=None,
              help="instead of --data: set A stays of this ICU type that VERSION was not "
                   "trained or validated on (to test the procedure)")
@click.option("--first", type=click.IntRange(min=1), default=None,
              help="fit on the first N stays in id order (the rest are held out)")
@click.option("--fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="fit on this share of the stays, in id order (default 0.3)")
@click.option("--mode", type=click.Choice(["platt", "intercept"]), default="platt",
              show_default=True, help="refit slope and intercept, or the intercept only")
@click.option("--thresholds", type=click.Choice(["keep", "local"]), default="keep",
              show_default=True,
              help="keep: the same hours alert as before; local: re-choose the thresholds "
                   "on the local stays")
@click.option("--activate", is_flag=True, help="activate the new version")
@click.option("--cassandra", is_flag=True, help="mirror the new version into Cassandra")
def recalibrate_cmd(version: str | None, data: str | None, unit: str | None,
                    first: int | None, fraction: float | None, mode: str, thresholds: str,
                    activate: bool, cassandra: bool) -> None:
    """Recalibrate VERSION (default: the active one) on a new site's first labelled stays.

    The trees are kept; a new version is registered with the refitted calibration, and
    recalibration.json holds the calibration before and after on the stays used and on
    the held-out ones (the Models page shows it)."""
    from backend.risk.recalibrate import RecalibrationError, recalibrate

    settings = get_settings()
    frame, name = _site_frame(settings, data, unit, version)
    if first is None and fraction is None:
        fraction = 0.3
    try:
        meta = recalibrate(settings, frame, source=name, version=version, first=first,
                           fraction=fraction, mode=mode, thresholds=thresholds,
                           activate=activate)
    except (RecalibrationError, registry.RegistryError) as e:
        raise click.ClickException(str(e)) from e
    reports = meta["recalibration_reports"]
    click.echo(f"version {meta['version']} (recalibrated from {meta['parent_version']} on "
               f"{reports['local']['n_stays']} stays of {name}, "
               f"{reports['local']['n_septic_stays']} septic)")
    for part in ("local", "held_out"):
        if part not in reports:
            continue
        r = reports[part]
        for when in ("before", "after"):
            c = r[when]
            click.echo(f"  {part:<9} {when:<6} Brier {c['brier']:.4f} (base rate "
                       f"{c['brier_base_rate']:.4f}), slope {c['calibration_slope']:.2f}, "
                       f"intercept {c['calibration_intercept']:+.2f}, ECE {c['ece']:.4f}, "
                       f"mean risk / observed {c['expected_over_observed']:.2f}")
    click.echo(f"threshold {meta['threshold']:.4f} (monitor only "
               f"{meta['threshold_monitor_only']:.4f}); active version: "
               f"{registry.active_version(settings)}")
    if cassandra:
        _mirror(settings, meta["version"])


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="print the metadata as JSON")
def list_cmd(as_json: bool) -> None:
    """Versions in the registry, oldest first; * marks the active one."""
    settings = get_settings()
    versions = registry.list_versions(settings)
    active = registry.active_version(settings)
    if as_json:
        click.echo(json.dumps({"active": active, "versions": versions}, indent=1))
        return
    if not versions:
        click.echo(f"no model versions in {registry.models_dir(settings)}")
        return
    click.echo(f"  {'version':<20} {'created':<26} {'patients':>8} {'threshold':>9} "
               f"{'val AUROC':>9} {'test AUROC':>10}")
    for m in versions:
        val = m.get("metrics", {}).get("validation", {}).get("auroc_hourly")
        test = m.get("metrics", {}).get("test", {}).get("auroc_hourly")
        n = sum(m.get("n_patients", {}).values())
        click.echo(f"{'*' if m['version'] == active else ' '} {m['version']:<20} "
                   f"{m['created']:<26} {n:>8} {m['threshold']:>9.4f} "
                   f"{'-' if val is None else f'{val:.3f}':>9} "
                   f"{'-' if test is None else f'{test:.3f}':>10}")


@cli.command("activate")
@click.argument("version")
@click.option("--cassandra", is_flag=True, help="mirror the activation into Cassandra")
def activate_cmd(version: str, cassandra: bool) -> None:
    """Make VERSION the active model."""
    settings = get_settings()
    try:
        entry = registry.activate(settings, version)
    except registry.RegistryError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"active: {entry['version']} (was {entry['previous']})")
    if cassandra:
        _mirror(settings, version)


@cli.command("rollback")
@click.option("--cassandra", is_flag=True, help="mirror the activation into Cassandra")
def rollback_cmd(cassandra: bool) -> None:
    """Re-activate the previously active version."""
    settings = get_settings()
    try:
        entry = registry.rollback(settings)
    except registry.RegistryError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"active: {entry['version']} (rolled back from {entry['previous']})")
    if cassandra:
        _mirror(settings, entry["version"])


@cli.command("mirror")
@click.argument("version", required=False)
def mirror_cmd(version: str | None) -> None:
    """Copy VERSION (default: all versions), evaluations and activations into Cassandra."""
    _mirror(get_settings(), version)


@cli.command("export")
@click.argument("version")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
def export_cmd(version: str, archive: Path) -> None:
    """Pack VERSION (trees, metadata, split, evaluation; not the Spark directory) into
    ARCHIVE (.tar.gz), e.g. the demo's shipped model."""
    settings = get_settings()
    try:
        path = registry.export_version(settings, version, archive)
    except registry.RegistryError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{version} -> {path} ({path.stat().st_size:,} bytes)")


@cli.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--activate/--no-activate", default=None,
              help="activate it (default: only if no version is active)")
def import_cmd(archive: Path, activate: bool | None) -> None:
    """Register the model version packed in ARCHIVE (``icu model export``)."""
    settings = get_settings()
    try:
        version, added = registry.import_version(settings, archive)
        if activate or (activate is None and registry.active_version(settings) is None):
            registry.activate(settings, version)
    except (registry.RegistryError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{'registered' if added else 'already registered'}: {version}; "
               f"active: {registry.active_version(settings)}")
