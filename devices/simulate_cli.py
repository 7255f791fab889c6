"""``icu simulate``: publish simulated or replayed bedside-monitor readings to Kafka.

Examples::

    icu simulate replay --record s00001 --speed 60           # 1 recorded minute per second
    icu simulate replay --record s25047 --fast               # whole stay at once, ends now
    icu simulate generate --patients 32 --wards 2 --rate 1 \\
        --scenario-mix sepsis=2,desaturation=2,motion_artefact=1 --duration 600
    icu simulate generate --patients 10000 --rate 1 --duration 60 --no-admit --workers 2
    icu simulate generate --fast --duration 3600 --rate-limit 10000 --inject-errors 0.01
    icu simulate generate --dry-run --count 5                # JSON lines on stdout
    icu simulate scenarios                                   # what each scenario does

Every command first registers the patients' admissions in Cassandra (``--no-admit``
skips it), then publishes to ``Settings.kafka.topic_raw`` (``--bootstrap`` and
``--topic`` override the settings). By default readings are paced in real time: each is
sent when the wall clock reaches its device timestamp. ``--fast`` sends as fast as
possible (or at ``--rate-limit`` messages/s) with the timestamps laid out so the
simulated span ends now. ``--duration`` is in seconds of device time (= run time when
paced); ``--count`` bounds the number of messages. Ctrl-C flushes and stops.
``generate --workers N`` publishes from N processes, each with its own producer and a
disjoint share of the patients (each patient's order is kept): kafka-python costs
~60 us of CPU per message in one process, so one process tops out around 10-15,000/s.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import click

from backend.admission import Admission
from backend.clients import kafka_config, kafka_security
from backend.population.catchment import Catchment
from backend.settings import Settings, get_settings
from devices.publisher import ProducerOptions, Publisher, PublishStats
from devices.wire import Outgoing, Record, boot_id, to_outgoing

log = logging.getLogger("devices")


def _common(f: Callable) -> Callable:
    options = [
        click.option("--bootstrap", help="Kafka bootstrap servers (default: settings)"),
        click.option("--topic", help="topic (default: settings.kafka.topic_raw)"),
        click.option("--acks", type=click.Choice(["all", "1", "0"]), default="all",
                     show_default=True, help="producer acks; 'all' is idempotent"),
        click.option("--linger-ms", type=int, default=20, show_default=True),
        click.option("--batch-size", type=int, default=256 * 1024, show_default=True),
        click.option("--compression", default="auto", show_default=True,
                     type=click.Choice(["auto", "none", "gzip", "lz4", "snappy", "zstd"]),
                     help="auto: lz4 if installed, else none if crc32c is, else gzip"),
        click.option("--count", type=click.IntRange(min=0),
                     help="stop after this many messages"),
        click.option("--duration", type=click.FloatRange(min=0, min_open=True),
                     help="seconds of device time to send (= run time when paced)"),
        click.option("--fast", is_flag=True,
                     help="as fast as possible; timestamps laid out to end now"),
        click.option("--rate-limit", type=click.FloatRange(min=0, min_open=True),
                     help="with --fast: hold this aggregate rate (messages/s)"),
        click.option("--progress", type=float, default=5.0, show_default=True,
                     help="seconds between progress lines (0: none)"),
        click.option("--inject-errors", type=click.FloatRange(0, 1), default=0.0,
                     show_default=True,
                     help="fraction of messages made malformed (devices.faults)"),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--catchment", help="home counties 'FIPS=weight,...' (default: Boston)"),
        click.option("--no-admit", is_flag=True, help="do not register admissions first"),
        click.option("--dry-run", is_flag=True,
                     help="print the messages as JSON lines instead (no Kafka, no admission)"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _settings(bootstrap: str | None) -> Settings:
    """The process settings, or a ``Settings`` passed as the click context object (tests:
    ``CliRunner().invoke(cli, args, obj=settings)``), with ``--bootstrap`` applied."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    settings = obj if isinstance(obj, Settings) else get_settings()
    if bootstrap:
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"bootstrap": bootstrap})})
    return settings


def _outgoing(records: Iterable[Record], opts: dict[str, Any], seed: object) -> Iterator[Outgoing]:
    from devices.faults import inject

    if opts["inject_errors"] > 0:
        return inject(records, opts["inject_errors"], seed)
    return to_outgoing(records)


def _share(count: int | None, worker: int, workers: int) -> int | None:
    return None if count is None else count // workers + (worker < count % workers)


def _publish(options: ProducerOptions, outgoing: Iterable[Outgoing], *, realtime: bool,
             opts: dict[str, Any], worker: int = 0, workers: int = 1) -> PublishStats:
    """One producer publishing one share of the records."""
    try:
        publisher = Publisher(options)
        publisher.producer  # noqa: B018 - connect now, to fail early and clearly
    except Exception as exc:
        raise click.ClickException(
            f"cannot connect to Kafka at {options.bootstrap}: {exc!r}") from exc
    try:
        return publisher.run(
            outgoing, realtime=realtime,
            rate=None if realtime or not opts["rate_limit"] else opts["rate_limit"] / workers,
            count=_share(opts["count"], worker, workers), progress_every=opts["progress"],
            label=f"[{worker + 1}/{workers}] " if workers > 1 else "",
        )
    finally:
        publisher.close()


def _worker(worker: int, workers: int, options: ProducerOptions,
            make_records: Callable[[int, int], Iterable[Record]], realtime: bool,
            opts: dict[str, Any], results: Any) -> None:
    try:
        stats = _publish(options, _outgoing(make_records(worker, workers), opts,
                                            f"{opts['seed']}/{worker}"),
                         realtime=realtime, opts=opts, worker=worker, workers=workers)
    except BaseException as exc:  # reported by the parent
        stats = PublishStats(first_error=f"worker {worker + 1}: {exc!r}")
    results.put(stats)


def _publish_parallel(options: ProducerOptions,
                      make_records: Callable[[int, int], Iterable[Record]], *,
                      realtime: bool, opts: dict[str, Any], workers: int) -> PublishStats:
    """``workers`` processes, each with its own producer and a disjoint set of patients
    (so each patient's readings stay in order). Ctrl-C/SIGTERM reach every worker, which
    stops, flushes and reports; the parent waits for them and adds up."""
    import multiprocessing
    import queue as queue_mod

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, name=f"simulator-{w + 1}",
                         args=(w, workers, options, make_records, realtime, opts, results))
             for w in range(workers)]
    for proc in procs:
        proc.start()

    def forward(signum: int, frame: object) -> None:
        for proc in procs:
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    parts: list[PublishStats] = []
    try:
        while len(parts) < workers:
            try:
                parts.append(results.get(timeout=1.0))
            except queue_mod.Empty:
                if not any(proc.is_alive() for proc in procs) and results.empty():
                    break
        for proc in procs:
            proc.join()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    total = PublishStats.combine(parts)
    lost = workers - len(parts)
    if lost:
        total.first_error = total.first_error or f"{lost} worker(s) died without a report"
    return total


def _run(
    *, settings: Settings, make_records: Callable[[int, int], Iterable[Record]],
    admissions: list[Admission], realtime: bool, opts: dict[str, Any], workers: int = 1,
) -> None:
    """The shared tail of every command: admit, then publish (or print).

    ``make_records(worker, workers)`` gives one worker's share of the records.
    """
    if opts["dry_run"]:
        n, faults = 0, Counter()
        for rec in _outgoing(make_records(0, 1), opts, opts["seed"]):
            if opts["count"] is not None and n >= opts["count"]:
                break
            click.echo(rec.value.decode(errors="replace"))
            n += 1
            if rec.fault:
                faults[rec.fault] += 1
        click.echo(f"dry run: {n} messages" + (f", faults {dict(faults)}" if faults else ""),
                   err=True)
        return

    if not opts["no_admit"]:
        from devices.admissions import register

        click.echo(f"admitting {len(admissions)} patient(s) in Cassandra "
                   f"{','.join(settings.cassandra.hosts)}:{settings.cassandra.port} ...",
                   err=True)
        try:
            register(settings, admissions)
        except Exception as exc:
            raise click.ClickException(
                f"could not register admissions ({exc!r}); start Cassandra and run "
                "'icu db migrate', or pass --no-admit") from exc

    options = ProducerOptions(
        bootstrap=settings.kafka.bootstrap, topic=opts["topic"] or settings.kafka.topic_raw,
        acks=opts["acks"], linger_ms=opts["linger_ms"], batch_size=opts["batch_size"],
        compression=opts["compression"], security=kafka_security(settings.kafka),
    )
    cfg = options.producer_config()
    click.echo(f"publishing to {options.topic} at {options.bootstrap} (acks={options.acks}, "
               f"compression={cfg['compression_type'] or 'none'}, linger={options.linger_ms}ms,"
               f" batch={options.batch_size:,}B"
               + (f", {workers} worker processes" if workers > 1 else "")
               + (", paced by device time" if realtime else
                  f", rate limit {opts['rate_limit']:,.0f}/s" if opts["rate_limit"] else
                  ", as fast as possible") + ")", err=True)
    if workers > 1:
        stats = _publish_parallel(options, make_records, realtime=realtime, opts=opts,
                                  workers=workers)
    else:
        stats = _publish(options, _outgoing(make_records(0, 1), opts, opts["seed"]),
                         realtime=realtime, opts=opts)
    click.echo(stats.summary(), err=True)
    if stats.failed or stats.first_error:
        raise click.ClickException(f"not every message was delivered: {stats.first_error}")


@click.group()
def cli() -> None:
    """Simulated and replayed bedside monitors -> Kafka."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # "task ran for 0.3s": gzip of a full batch on a busy box; not actionable here
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)


def _catchment(spec: str | None, settings: Settings) -> Catchment:
    try:
        catchment = Catchment.parse(spec)
        if spec:  # the default is known to be on the map (tested)
            catchment.check_known(settings.data_dir)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--catchment") from exc
    return catchment


def _now_ms() -> int:
    return int(time.time() * 1000)


@cli.command()
@click.option("--record", default="s00001", show_default=True,
              help="record in <data_dir>/mimic-numerics (prefix, name or path)")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="recorded minutes per wall-clock minute")
@click.option("--loop", is_flag=True, help="start the stay again after its end")
@click.option("--ward", default="ICU-R", show_default=True)
@click.option("--bed", default="1", show_default=True)
@click.option("--first-minute", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--minutes", type=click.IntRange(min=1), help="recorded minutes to replay")
@click.option("--nibp-hold", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="repeat the latest cuff BP for this many recorded minutes (0: send once)")
@_common
def replay(record: str, speed: float, loop: bool, ward: str, bed: str, first_minute: int,
           minutes: int | None, nibp_hold: float, **opts: Any) -> None:
    """Replay a real ICU stay (MIMIC numerics) as a bedside monitor."""
    from devices import mimic_replay

    settings = _settings(opts["bootstrap"])
    try:
        rec = mimic_replay.load_record(record, settings.data_dir)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from exc
    if first_minute >= rec.minutes:
        raise click.UsageError(f"--first-minute: {rec.name} has {rec.minutes} minutes")
    now = _now_ms()
    window = rec.minutes - first_minute if minutes is None else min(minutes,
                                                                      rec.minutes - first_minute)
    if opts["fast"] and loop:
        raise click.UsageError("--loop cannot be combined with --fast")
    spacing = mimic_replay.RECORD_MINUTE_MS / (1.0 if opts["fast"] else speed)
    frames = None if loop else window  # frames to send; None = for ever
    if opts["duration"]:
        limit = math.ceil(opts["duration"] * 1000 / spacing)
        frames = limit if frames is None else min(frames, limit)
    start = now - frames * int(spacing) if opts["fast"] else now
    records: Iterable[Record] = mimic_replay.replay(
        rec, start_ms=start, spacing_ms=spacing, ward=ward, bed=bed, boot=boot_id(now),
        first_minute=first_minute, minutes=window, loop=loop, nibp_hold_s=nibp_hold * 60,
    )
    if frames is not None:
        records = islice(records, frames)
    adm = mimic_replay.admission(rec, ward=ward, bed=bed, admitted_ts=start,
                                 catchment=_catchment(opts["catchment"], settings),
                                 seed=opts["seed"])
    click.echo(f"replaying {rec.name} as {rec.patient_id} ({ward} bed {bed}, age {rec.age}, "
               f"sex {rec.sex}, home {adm.home_fips}): "
               + (f"{frames} frames" if frames is not None else "for ever")
               + (f" of a {window}-minute window, looped" if loop else "")
               + (" as fast as possible" if opts["fast"] else f" at {speed:g}x"), err=True)
    _run(settings=settings, make_records=lambda w, n: records, admissions=[adm],
         realtime=not opts["fast"], opts=opts)


@cli.command()
@click.option("--patients", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--wards", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--beds-per-ward", type=click.IntRange(min=1),
              help="default: just enough for the patients")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="readings per second per patient")
@click.option("--scenario-mix", help="e.g. sepsis=2,desaturation=2 (the rest: stable; "
              "default: one of each abnormal scenario)")
@click.option("--onset", type=click.FloatRange(min=0),
              help="scenario onset, seconds after the start, for every patient "
                   "(default: drawn per patient between 60 and 300)")
@click.option("--id-prefix", default="sim", show_default=True,
              help="patient ids are <prefix>-<seed>-<n>")
@click.option("--ward-prefix", default="ICU-", show_default=True,
              help="wards are <prefix>A, <prefix>B, ... (two generators: two prefixes)")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="publishing processes, each with its own share of the patients")
@_common
def generate(patients: int, wards: int, beds_per_ward: int | None, rate: float,
             scenario_mix: str | None, onset: float | None, id_prefix: str,
             ward_prefix: str, workers: int, **opts: Any) -> None:
    """Generate patients with physiological scenarios (seeded, reproducible)."""
    from devices.generator import GeneratorConfig, generate, parse_mix, plan_patients

    settings = _settings(opts["bootstrap"])
    now = _now_ms()
    duration = opts["duration"]
    if opts["fast"]:
        if duration is None and opts["count"] is None:
            raise click.UsageError("--fast needs --duration or --count")
        span = duration if duration is not None else opts["count"] / (patients * rate)
        start = now - int(span * 1000)
    else:
        start = now
    try:
        cfg = GeneratorConfig(
            start_ms=start, patients=patients, wards=wards, beds_per_ward=beds_per_ward,
            rate_hz=rate, duration_s=duration, scenario_mix=parse_mix(scenario_mix),
            seed=opts["seed"], catchment=_catchment(opts["catchment"], settings),
            boot=boot_id(now), id_prefix=id_prefix, ward_prefix=ward_prefix,
            **({"onset_range_s": (onset, onset)} if onset is not None else {}),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    plans = plan_patients(cfg)
    by_scenario = Counter(p.scenario for p in plans)
    click.echo(f"{patients} patients in {wards} ward(s) at {rate:g} Hz "
               f"({patients * rate:,.0f} readings/s): "
               + ", ".join(f"{k} {v}" for k, v in sorted(by_scenario.items())), err=True)
    for p in plans:
        if p.scenario != "stable" and len(plans) <= 200:
            click.echo(f"  {p.ward} bed {p.bed:>3}  {p.patient_id}  {p.scenario:<17} "
                       f"onset +{p.onset_s:.0f}s", err=True)
    admissions = [p.admission(start) for p in plans]
    _run(settings=settings, make_records=lambda w, n: generate(cfg, plans[w::n]),
         admissions=admissions, realtime=not opts["fast"], opts=opts,
         workers=min(workers, patients))


@cli.command()
def scenarios() -> None:
    """Describe the generator's scenarios."""
    from devices.scenarios import describe

    for name, text in describe().items():
        click.echo(f"{name}\n    {text}\n")



@cli.command("fhir")
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--patient", help="ingest under this patient id instead of the Observations' "
              "subject (the Bundle must be about one patient)")
@click.option("--source", help="device id becomes fhir-<source> (default: each "
              "Observation's device, else 'bundle')")
@click.option("--bootstrap", help="Kafka bootstrap servers (default: settings)")
@click.option("--topic", help="topic (default: settings.kafka.topic_raw)")
@click.option("--dry-run", is_flag=True,
              help="print the messages as JSON lines instead (no Kafka; the census is still "
                   "read for ward and bed)")
def fhir(bundle: str, patient: str | None, source: str | None, bootstrap: str | None,
         topic: str | None, dry_run: bool) -> None:
    """Ingest a FHIR R4 Bundle of vital-sign Observations through vitals.raw.

    The patient must be admitted (its ward and bed come from the census). The readings
    are validated by the stream job like a monitor's; re-ingesting a Bundle yields
    duplicates, which are not stored again.
    """
    from backend.fhir import FhirIngestError, bundle_to_device_readings
    from devices import fhir_ingest

    settings = _settings(bootstrap)
    try:
        parsed = fhir_ingest.load_bundle(bundle)
    except (OSError, FhirIngestError) as exc:
        raise click.UsageError(f"{bundle}: {exc}") from exc
    try:
        census = fhir_ingest.read_census(settings)
    except Exception as exc:
        raise click.ClickException(
            f"cannot read the census from Cassandra ({exc!r}); start Cassandra and run "
            "'icu db migrate'") from exc
    try:
        readings = bundle_to_device_readings(parsed, census=census, patient_id=patient,
                                             source=source)
    except FhirIngestError as exc:
        raise click.UsageError(f"{bundle}: {exc}") from exc
    if dry_run:
        for line in fhir_ingest.dry_run_lines(readings):
            click.echo(line)
        click.echo(f"dry run: {len(readings)} messages", err=True)
        return
    try:
        sent = fhir_ingest.ingest(settings, parsed, patient_id=patient, source=source,
                                  census=census, topic=topic)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"published {sent} readings from {bundle} to "
               f"{topic or settings.kafka.topic_raw}", err=True)


@cli.command()
@click.option("--records", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--beds", type=click.IntRange(min=1), default=12, show_default=True,
              help="admitted beds the records pretend to come from")
@click.option("--ward", default="ICU-H", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--valid-share", type=click.FloatRange(0, 1), default=0.3, show_default=True)
@click.option("--bootstrap", help="Kafka bootstrap servers (default: settings)")
@click.option("--no-admit", is_flag=True, help="do not register admissions first")
def hostile(records: int, beds: int, ward: str, seed: int, valid_share: float,
            bootstrap: str | None, no_admit: bool) -> None:
    """Malformed and edge-case records of every kind (devices/hostile.py) to vitals.raw,
    interleaved with valid readings of admitted beds: the stream must dead-letter each
    bad one with a reason, store the good ones, and keep running."""
    from kafka import KafkaProducer

    from backend.admission import Admission
    from devices.hostile import Ward, generate

    settings = _settings(bootstrap)
    target = Ward(ward, {f"hostile-{seed}-{i:03d}": f"{i + 1}" for i in range(beds)})
    if not no_admit:
        from backend.storage import census
        from backend.storage.cassandra import connect

        session = connect(settings.cassandra, wait_seconds=60)
        for patient, bed in target.beds.items():
            census.admit(session, Admission(patient_id=patient, ward=ward, bed=bed,
                                            label=bed, admitted_ts=_now_ms(),
                                            source="simulator/hostile"))
        session.cluster.shutdown()
    producer = KafkaProducer(**kafka_config(settings.kafka, acks="all", linger_ms=20,
                                            max_request_size=4 * 2**20))
    kinds: Counter[str] = Counter()
    step = 20
    for rec in generate(target, n=records, start_ms=_now_ms() - records * step,
                        step_ms=step, seed=seed, valid_share=valid_share,
                        max_record_bytes=settings.spark.max_record_bytes):
        producer.send(settings.kafka.topic_raw, key=rec.key, value=rec.value)
        kinds[rec.kind] += 1
    producer.flush(60)
    producer.close()
    click.echo(f"sent {records} records to {settings.kafka.topic_raw}: "
               + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
