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
@click.option("--activate/--no-activate", default=None,
              help="activate the new version (default: only if none is active)")
@click.option("--cassandra", is_flag=True, help="mirror the new version into Cassandra")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_cmd(max_patients: int | None, seed: int, max_iter: int | None,
              max_depth: int | None, negative_rate: float | None, lab_dropout: float | None,
              activate: bool | None, cassandra: bool, quiet: bool) -> None:
    """Train a new version with Spark MLlib; threshold chosen on validation patients."""
    from backend.risk.train import TrainConfig, train

    overrides = {k: v for k, v in {"max_iter": max_iter, "max_depth": max_depth,
                                   "negative_rate": negative_rate,
                                   "lab_dropout": lab_dropout}.items() if v is not None}
    config = TrainConfig(seed=seed, max_patients=max_patients, **overrides)
    settings = get_settings()
    result = train(settings, config, progress=not quiet, activate=activate)
    meta = result.metadata
    val = meta["metrics"]["validation"]
    click.echo(f"version {result.version} saved in {result.path}")
    click.echo(f"patients train/validation/test: {meta['n_patients']['train']}/"
               f"{meta['n_patients']['validation']}/{meta['n_patients']['test']}; "
               f"threshold {meta['threshold']:.4f} (max validation utility)")
    click.echo("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()
                                           if isinstance(v, float)))
    click.echo(f"runtime {meta['runtime_seconds']['total']:.0f} s "
               f"(fit {meta['runtime_seconds']['fit GBT (Spark MLlib)']:.0f} s); "
               f"active version: {registry.active_version(settings)}")
    if cassandra:
        _mirror(settings, result.version)


@cli.command("evaluate")
@click.argument("version", required=False)
@click.option("--bootstrap", type=click.IntRange(min=0), default=200, show_default=True,
              help="patient resamples for the AUROC confidence intervals (0 = none)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cassandra", is_flag=True, help="mirror the evaluation into Cassandra")
@click.option("--quiet", is_flag=True, help="no progress bar")
def evaluate_cmd(version: str | None, bootstrap: int, seed: int, cassandra: bool,
                 quiet: bool) -> None:
    """Compare the model (default: the active version) with the baselines on TEST patients."""
    from backend.risk.evaluate import evaluate, markdown_table

    settings = get_settings()
    doc = evaluate(settings, version, progress=not quiet, n_bootstrap=bootstrap, seed=seed)
    click.echo(f"version {doc['version']}: {doc['n_patients']} test patients "
               f"({doc['n_septic_patients']} septic), {doc['n_patient_hours']} patient-hours, "
               f"model threshold {doc['threshold']:.4f}")
    click.echo(markdown_table(doc))
    click.echo(f"saved {registry.version_dir(settings, doc['version']) / 'evaluation.json'} "
               f"({doc['runtime_seconds']['total']:.0f} s)")
    if cassandra:
        _mirror(settings, doc["version"])


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
