"""The physiological generator, its scenarios, home regions, fault injection, the
publisher's pacing and the CLI's dry run: all without Kafka."""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections import Counter, defaultdict

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from backend.admission import Admission
from backend.messages import Consciousness, DeviceReading
from backend.population.catchment import BOSTON, Catchment, County, known_fips
from backend.scores.news2 import News2Inputs, news2
from backend.settings import Settings
from backend.vitals import VITALS, Vital
from devices import scenarios as sc
from devices.faults import FAULTS, YEAR_MS, inject
from devices.generator import GeneratorConfig, generate, parse_mix, plan_patients, ward_names
from devices.publisher import ProducerOptions, Publisher, choose_compression
from devices.regions import draw_fips
from devices.simulate_cli import cli
from devices.wire import Outgoing, encode, to_outgoing

T0 = 1_800_000_000_000
MIN = 60.0


def cfg(**kw: object) -> GeneratorConfig:
    base: dict = dict(start_ms=T0, patients=4, duration_s=120, seed=1)
    base.update(kw)
    return GeneratorConfig(**base)


def one(scenario: str, seed: int = 1, **kw: object) -> tuple:
    c = cfg(patients=1, scenario_mix={scenario: 1}, seed=seed, **kw)
    plan = plan_patients(c)[0]
    return plan, [r for _, r in generate(c, [plan])]


# --- determinism, seq, time ----------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = [encode(r) for _, r in generate(cfg())]
    b = [encode(r) for _, r in generate(cfg())]
    c = [encode(r) for _, r in generate(cfg(seed=2))]
    assert a == b
    assert a != c


def test_seq_per_device_from_zero_without_gaps_and_ts_ordered() -> None:
    out = list(generate(cfg(patients=6, wards=2, duration_s=300, scenario_mix={})))
    by_device: dict[str, list[DeviceReading]] = defaultdict(list)
    for key, r in out:
        assert key == r.patient_id
        by_device[r.device_id].append(r)
    assert len(by_device) == 6
    for series in by_device.values():
        assert [r.seq for r in series] == list(range(len(series)))
        assert all(b.ts - a.ts == 1000 for a, b in itertools.pairwise(series))
        assert len({r.patient_id for r in series}) == 1
    ts = [r.ts for _, r in out]
    assert ts == sorted(ts)  # globally in device-time order, for pacing


def test_rate_duration_and_stagger() -> None:
    out = [r for _, r in generate(cfg(patients=5, rate_hz=4, duration_s=10,
                                      scenario_mix={}))]
    assert len(out) == 5 * 4 * 10
    assert [r.ts - T0 for r in out[:6]] == [0, 50, 100, 150, 200, 250]


def test_a_patient_series_does_not_depend_on_the_others() -> None:
    c = cfg(patients=6, duration_s=60)
    plans = plan_patients(c)
    full = [encode(r) for _, r in generate(c) if r.patient_id == plans[3].patient_id]
    alone = [encode(r) for _, r in generate(c, [plans[3]])]
    assert alone == full and len(full) == 60


def test_infinite_without_duration() -> None:
    it = generate(cfg(duration_s=None, patients=2))
    assert len([next(it) for _ in range(5000)]) == 5000


def test_messages_are_valid_and_compact() -> None:
    for key, r in generate(cfg(duration_s=30)):
        raw = encode(r)
        assert DeviceReading.model_validate_json(raw) == r
        assert b" " not in raw and b"null" not in raw
        assert key.encode() == r.patient_id.encode()
        for vital, value in r.vitals.items():
            spec = VITALS[vital]
            assert value == round(value, spec.decimals)


def test_temperature_and_charting_are_occasional() -> None:
    out = [r for _, r in generate(cfg(patients=1, scenario_mix={}, duration_s=3600))]
    temps = [i for i, r in enumerate(out) if Vital.TEMP in r.vitals]
    assert temps[0] == 0 and len(temps) == 3600 // 240
    assert {b - a for a, b in itertools.pairwise(temps)} == {240}
    charted = [i for i, r in enumerate(out) if r.consciousness is not None]
    assert charted == [0, 900, 1800, 2700]
    assert all(out[i].o2_supplemental is False for i in charted)
    assert all(r.o2_supplemental is None for i, r in enumerate(out) if i not in charted)


def test_nibp_patients_get_a_cuff_reading_every_15_minutes() -> None:
    c = cfg(patients=40, duration_s=3600, scenario_mix={}, arterial_line_fraction=0.0)
    out = [r for _, r in generate(c)]
    per_patient = Counter(r.patient_id for r in out if Vital.SBP in r.vitals)
    assert set(per_patient.values()) == {4}


def test_plan_places_patients_and_admissions_are_valid() -> None:
    c = cfg(patients=10, wards=3, scenario_mix={"sepsis": 2, "hypotension": 1})
    plans = plan_patients(c)
    assert [p.ward for p in plans[:4]] == ["ICU-A", "ICU-B", "ICU-C", "ICU-A"]
    assert len({(p.ward, p.bed) for p in plans}) == 10
    assert len({p.device_id for p in plans}) == 10
    assert Counter(p.scenario for p in plans) == {"stable": 7, "sepsis": 2, "hypotension": 1}
    assert all(p.arterial_line for p in plans if p.scenario in ("sepsis", "hypotension"))
    for p in plans:
        a = p.admission(T0)
        assert isinstance(a, Admission)
        assert a.label.startswith(f"Bed {p.bed} · ")
        assert 18 <= a.age <= 95 and a.sex in ("F", "M") and a.admitted_ts == T0
        assert a.home_fips in {c.fips for c in BOSTON}
    assert plans == plan_patients(c)


def test_default_mix_and_mix_parsing() -> None:
    plans = plan_patients(cfg(patients=8))
    assert Counter(p.scenario for p in plans) == {
        "stable": 2, "sepsis": 1, "desaturation": 1, "tachycardia": 1, "hypotension": 1,
        "sensor_disconnect": 1, "motion_artefact": 1}
    assert parse_mix("sepsis=2, desaturation=1,sepsis") == {"sepsis": 3, "desaturation": 1}
    assert parse_mix("") is None
    with pytest.raises(ValueError, match="unknown scenario"):
        parse_mix("flu=2")
    with pytest.raises(ValueError, match="more than"):
        cfg(patients=2, scenario_mix={"sepsis": 3})
    with pytest.raises(ValueError, match="do not fit"):
        cfg(patients=9, wards=2, beds_per_ward=4)
    assert ward_names(3) == ["ICU-A", "ICU-B", "ICU-C"]


# --- scenario shapes (pure functions) -------------------------------------------------------

BASE = sc.Baseline()


@pytest.mark.parametrize("name", sorted(sc.SCENARIOS))
def test_every_scenario_is_the_baseline_before_onset(name: str) -> None:
    fn = sc.SCENARIOS[name]
    p = fn(-1.0, BASE)
    assert (p.hr, p.rr, p.spo2, p.sbp, p.dbp, p.temp) == (
        BASE.hr, BASE.rr, BASE.spo2, BASE.sbp, BASE.dbp, BASE.temp)
    assert not p.off and not p.silent and not p.artefact
    assert fn(123.0, BASE) == fn(123.0, BASE)  # pure


def test_stable_is_the_baseline_for_ever() -> None:
    assert sc.stable(10 * 3600, BASE) == sc.stable(0, BASE)


def test_tachycardia_shape() -> None:
    p = sc.tachycardia(10 * MIN, BASE)
    assert p.hr == 150 and p.pulse == 138 and p.rr == BASE.rr + 4
    assert sc.tachycardia(40 * MIN, BASE).hr == BASE.hr
    assert sc.tachycardia(70 * MIN, BASE).hr == 150  # it recurs every hour


def test_desaturation_shape() -> None:
    assert sc.desaturation(6 * MIN, BASE).spo2 == 84
    assert not sc.desaturation(6 * MIN, BASE).o2_supplemental
    on_o2 = sc.desaturation(16 * MIN, BASE)
    assert on_o2.o2_supplemental and on_o2.spo2 == 95
    assert not sc.desaturation(35 * MIN, BASE).o2_supplemental


def test_hypotension_shape() -> None:
    p = sc.hypotension(12 * MIN, BASE)
    assert (p.sbp, p.dbp, p.hr) == (78, 42, BASE.hr + 20)
    assert p.map == pytest.approx(54, abs=0.5)
    assert sc.hypotension(35 * MIN, BASE).sbp == BASE.sbp


def test_sepsis_trends() -> None:
    ts = [m * MIN for m in range(0, 91, 5)]
    ps = [sc.sepsis(t, BASE) for t in ts]
    for name in ("hr", "rr", "temp"):
        values = [getattr(p, name) for p in ps[1:]]
        assert values == sorted(values), name
    sbp = [p.sbp for p in ps[1:]]
    assert sbp == sorted(sbp, reverse=True)
    assert ps[-1].temp >= 39.1 and ps[-1].sbp < 90 and ps[-1].hr > 130 and ps[-1].rr >= 25
    spo2 = [p.spo2 for p in ps]
    assert spo2[9] == 97.5 and spo2[-1] < 90  # falls late (after 45 min)
    assert sc.sepsis(74 * MIN, BASE).consciousness == Consciousness.ALERT
    assert sc.sepsis(76 * MIN, BASE).consciousness == Consciousness.CONFUSION
    assert sc.sepsis(81 * MIN, BASE).o2_supplemental


def _news2(p_or_values: dict) -> int:
    return news2(News2Inputs(**p_or_values)).total


def _truth_news2(p: sc.Physiology) -> int:
    return _news2(dict(rr=round(p.rr), spo2=round(p.spo2), o2_supplemental=p.o2_supplemental,
                       sbp=round(p.sbp), pulse=round(p.hr), temp=round(p.temp, 1),
                       consciousness=p.consciousness))


@pytest.mark.parametrize("base", [
    sc.Baseline(),
    sc.Baseline(hr=60, rr=13, spo2=99, sbp=140, dbp=80, temp=36.4),
    sc.Baseline(hr=85, rr=18, spo2=96, sbp=112, dbp=60, temp=37.4),
])
def test_sepsis_news2_crosses_5_and_7_at_the_documented_times(base: sc.Baseline) -> None:
    scores = [(s / MIN, _truth_news2(sc.sepsis(s, base))) for s in range(0, 95 * 60, 6)]
    assert [n for _, n in scores] == sorted(n for _, n in scores)  # never improves
    first5 = next(m for m, n in scores if n >= 5)
    first7 = next(m for m, n in scores if n >= 7)
    assert first5 == pytest.approx(25.1, abs=0.15)
    assert first7 == pytest.approx(35.1, abs=0.15)
    assert scores[0][1] == 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sepsis_with_noise_crosses_at_the_documented_times(seed: int) -> None:
    plan, out = one("sepsis", seed=seed, duration_s=50 * MIN + 300)
    carried: dict = {}
    scores = []
    for r in out:
        carried.update({k.value: v for k, v in r.vitals.items()})
        if r.consciousness is not None:
            carried["consciousness"], carried["o2"] = r.consciousness, r.o2_supplemental
        n = _news2(dict(rr=carried["rr"], spo2=carried["spo2"], o2_supplemental=carried["o2"],
                        sbp=carried["sbp"], pulse=carried["hr"], temp=carried["temp"],
                        consciousness=carried["consciousness"]))
        scores.append(((r.ts - T0) / 1000 / MIN - plan.onset_s / MIN, n))

    def crossing(threshold: int) -> float:  # first minute whose median reaches it
        for i in range(len(scores) - 60):
            if statistics.median(n for _, n in scores[i:i + 60]) >= threshold:
                return scores[i + 30][0]
        raise AssertionError(f"NEWS2 never reached {threshold}")

    assert crossing(5) == pytest.approx(25, abs=1.5)
    assert crossing(7) == pytest.approx(35, abs=1.5)


def test_sensor_disconnect_shape_and_output() -> None:
    assert sc.sensor_disconnect(30, BASE).off == {Vital.SPO2, Vital.PULSE}
    assert sc.sensor_disconnect(120, BASE).off == frozenset()
    assert sc.sensor_disconnect(15 * MIN + 30, BASE).off >= {Vital.HR, Vital.RR}
    assert sc.sensor_disconnect(25 * MIN + 10, BASE).silent
    _plan, out = one("sensor_disconnect", duration_s=40 * MIN)
    assert any(r.vitals[Vital.SPO2] == 0 and r.vitals[Vital.PULSE] == 0 for r in out)
    assert any(r.vitals[Vital.HR] == 0 and r.vitals[Vital.RR] == 0 for r in out)
    gaps = [b.ts - a.ts for a, b in itertools.pairwise(out) if b.ts - a.ts > 1000]
    assert gaps == [46_000]  # 45 s without any message: longer than the stale alarm's 30 s
    assert [r.seq for r in out] == list(range(len(out)))  # silence is not a seq gap


def test_motion_artefact_bursts_are_a_few_samples_of_impossible_pulse() -> None:
    _plan, out = one("motion_artefact", duration_s=20 * MIN)
    spikes = [i for i, r in enumerate(out) if r.vitals[Vital.PULSE] >= 250]
    assert spikes
    assert all(out[i].vitals[Vital.HR] >= 185 for i in spikes)
    runs, run = [], 1
    for a, b in itertools.pairwise(spikes):
        if b == a + 1:
            run += 1
        else:
            runs.append(run)
            run = 1
    runs.append(run)
    assert max(runs) <= 5
    assert max(out[i].vitals[Vital.PULSE] for i in spikes) > VITALS[Vital.PULSE].plausible_max


def test_describe_lists_every_scenario() -> None:
    assert set(sc.describe()) == set(sc.SCENARIOS)
    assert "25" in sc.describe()["sepsis"]


# --- home regions --------------------------------------------------------------------------

def test_default_catchment_counties_exist_on_the_map() -> None:
    Catchment.parse(None).check_known(Settings().data_dir)
    assert {c.fips for c in BOSTON} <= known_fips(Settings().data_dir)


def test_region_draws_follow_population_weights() -> None:
    catchment = Catchment.parse(None)
    probs = catchment.probabilities()
    total = sum(c.weight for c in BOSTON)
    assert probs == pytest.approx({c.fips: c.weight / total for c in BOSTON})
    n = 20_000
    drawn = Counter(draw_fips(catchment, 7, f"p{i}") for i in range(n))
    for fips, p in probs.items():
        assert drawn[fips] / n == pytest.approx(p, abs=0.015)


def test_region_draw_is_reproducible_per_patient() -> None:
    c = Catchment.parse(None)
    assert [draw_fips(c, 1, f"p{i}") for i in range(50)] == \
           [draw_fips(c, 1, f"p{i}") for i in range(50)]
    assert [draw_fips(c, 1, f"p{i}") for i in range(50)] != \
           [draw_fips(c, 2, f"p{i}") for i in range(50)]


def test_catchment_parsing() -> None:
    c = Catchment.parse("17031=3,17043=1")
    assert c.probabilities() == pytest.approx({"17031": 0.75, "17043": 0.25})
    assert Catchment.parse("06075,06081").probabilities() == pytest.approx(
        {"06075": 0.5, "06081": 0.5})
    for bad in ("1703", "17031=0", "17031,17031", "abcde"):
        with pytest.raises(ValueError):
            Catchment.parse(bad)
    with pytest.raises(ValueError, match="not in"):
        Catchment([County("99999", "nowhere", 1)]).check_known(Settings().data_dir)


# --- malformed traffic ---------------------------------------------------------------------

def test_no_faults_by_default_means_plain_encoding() -> None:
    records = list(generate(cfg(duration_s=20)))
    assert list(inject(records, 0.0)) == list(to_outgoing(records))


def test_injected_faults_are_each_malformed_as_documented() -> None:
    records = list(generate(cfg(patients=4, duration_s=600)))
    out = list(inject(records, 0.05, seed=3))
    faults = [o for o in out if o.fault]
    kinds = Counter(o.fault for o in faults)
    assert set(kinds) == set(FAULTS)
    assert 0.03 * len(records) < len(faults) < 0.07 * len(records)
    assert list(inject(records, 0.05, seed=3)) == out  # reproducible
    for i, o in enumerate(out):
        if o.fault is None:
            DeviceReading.model_validate_json(o.value)
            continue
        assert o.key == out[i - 1].key or o.fault != "duplicate_seq"
        if o.fault == "bad_json":
            with pytest.raises(ValueError):
                json.loads(o.value)
        elif o.fault == "missing_field":
            with pytest.raises(ValidationError, match="Field required"):
                DeviceReading.model_validate_json(o.value)
        elif o.fault == "impossible_value":
            r = DeviceReading.model_validate_json(o.value)
            assert any(not VITALS[v].plausible_min <= x <= VITALS[v].plausible_max
                       for v, x in r.vitals.items() if x is not None)
        elif o.fault == "duplicate_seq":
            assert o.value == out[i - 1].value and out[i - 1].fault is None
        elif o.fault == "future_ts":
            r = DeviceReading.model_validate_json(o.value)
            assert r.ts == o.ts + YEAR_MS
    good = [o for o in out if o.fault is None]
    assert len(good) == len(records) - sum(v for k, v in kinds.items() if k != "duplicate_seq")


# --- publisher pacing and accounting (fake producer) ---------------------------------------

class FakeFuture:
    def __init__(self, fail: bool) -> None:
        self.fail = fail

    def add_errback(self, fn, *args):
        if self.fail:
            fn(RuntimeError("broker said no"), *args)
        return self


class FakeProducer:
    def __init__(self, fail_every: int = 0) -> None:
        self.sent: list[tuple[str, bytes, bytes, float]] = []
        self.flushed = False
        self.fail_every = fail_every

    def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
        self.sent.append((topic, key, value, time.time()))
        return FakeFuture(bool(self.fail_every) and len(self.sent) % self.fail_every == 0)

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        pass


def _outgoing(n: int, ts0: int = 0, step_ms: int = 0) -> list[Outgoing]:
    return [Outgoing(b"k", b"v%d" % i, ts0 + i * step_ms) for i in range(n)]


def test_rate_limit_holds_the_rate_without_drift() -> None:
    fake = FakeProducer()
    pub = Publisher(ProducerOptions(bootstrap="x:1", topic="t"), producer=fake)
    stats = pub.run(_outgoing(2001), rate=4000, out=None)
    sent_at = [s[3] for s in fake.sent]
    assert stats.sent == 2001 and fake.flushed
    assert sent_at[-1] - sent_at[0] == pytest.approx(0.5, abs=0.1)
    assert sent_at[1000] - sent_at[0] == pytest.approx(0.25, abs=0.1)


def test_realtime_pacing_sends_at_the_device_timestamp() -> None:
    fake = FakeProducer()
    pub = Publisher(ProducerOptions(bootstrap="x:1", topic="t"), producer=fake)
    t0 = int(time.time() * 1000) + 200
    pub.run(_outgoing(5, ts0=t0, step_ms=100), realtime=True, out=None)
    for (_, _, _, at), rec in zip(fake.sent, _outgoing(5, ts0=t0, step_ms=100), strict=True):
        assert at >= rec.ts / 1000 - 0.002
        assert at - rec.ts / 1000 < 0.1


def test_count_bound_and_fault_accounting_and_errors() -> None:
    fake = FakeProducer(fail_every=10)
    pub = Publisher(ProducerOptions(bootstrap="x:1", topic="t"), producer=fake)
    recs = [Outgoing(b"k", b"v", 0, "bad_json" if i % 7 == 0 else None) for i in range(100)]
    stats = pub.run(recs, count=50, out=None)
    assert stats.sent == 50 == len(fake.sent)
    assert stats.faults == {"bad_json": 8}
    assert stats.failed == 5 and "broker said no" in stats.first_error
    assert "sent 50" in stats.summary()


def test_a_failing_send_stops_and_still_flushes() -> None:
    class Broken(FakeProducer):
        def send(self, topic: str, key: bytes, value: bytes) -> FakeFuture:
            if len(self.sent) == 3:
                raise TimeoutError("no broker")
            return super().send(topic, key, value)

    fake = Broken()
    stats = Publisher(ProducerOptions(bootstrap="x:1", topic="t"), producer=fake).run(
        _outgoing(10), out=None)
    assert stats.sent == 3 and fake.flushed and "no broker" in stats.first_error


def test_progress_lines_report_the_rate() -> None:
    import io

    buf = io.StringIO()
    pub = Publisher(ProducerOptions(bootstrap="x:1", topic="t"), producer=FakeProducer())
    pub.run(_outgoing(3000), rate=10_000, progress_every=0.1, out=buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 2 and "/s now" in lines[0] and "errors 0" in lines[0]


def test_parallel_stats_add_up_and_counts_are_shared() -> None:
    from devices.publisher import PublishStats
    from devices.simulate_cli import _share

    a = PublishStats(sent=10, failed=1, faults=Counter(bad_json=2), elapsed_s=2.0)
    b = PublishStats(sent=5, faults=Counter(bad_json=1, future_ts=1), elapsed_s=3.0,
                     interrupted=True, first_error="x")
    total = PublishStats.combine([a, b])
    assert (total.sent, total.failed, total.elapsed_s, total.interrupted) == (15, 1, 3.0, True)
    assert total.faults == {"bad_json": 3, "future_ts": 1} and total.first_error == "x"
    assert [_share(7, w, 3) for w in range(3)] == [3, 2, 2]
    assert _share(None, 0, 2) is None


def test_producer_options() -> None:
    cfg_all = ProducerOptions(bootstrap="a:1,b:2", topic="t").producer_config()
    assert cfg_all["acks"] == "all" and cfg_all["enable_idempotence"]
    assert cfg_all["bootstrap_servers"] == ["a:1", "b:2"]
    cfg_one = ProducerOptions(bootstrap="a:1", topic="t", acks="1").producer_config()
    assert cfg_one["acks"] == 1 and not cfg_one["enable_idempotence"]
    assert choose_compression("none") is None
    assert choose_compression("gzip") == "gzip"
    assert choose_compression("auto") in ("lz4", None, "gzip")
    with pytest.raises(ValueError):
        choose_compression("brotli")


# --- CLI (dry run: no Kafka, no Cassandra) -------------------------------------------------

def test_cli_generate_dry_run_prints_valid_messages() -> None:
    result = CliRunner().invoke(cli, ["generate", "--dry-run", "--patients", "3", "--count",
                                      "12", "--seed", "5"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 12
    readings = [DeviceReading.model_validate_json(ln) for ln in lines]
    assert {r.patient_id for r in readings} == {"sim-5-0001", "sim-5-0002", "sim-5-0003"}


def test_cli_replay_fast_dry_run_ends_now() -> None:
    before = time.time() * 1000
    result = CliRunner().invoke(cli, ["replay", "--record", "s25047", "--fast", "--dry-run"])
    assert result.exit_code == 0, result.output
    readings = [DeviceReading.model_validate_json(ln)
                for ln in result.stdout.splitlines() if ln.startswith("{")]
    assert len(readings) == 72
    assert readings[-1].ts <= time.time() * 1000
    assert readings[-1].ts >= before - 120_000
    assert readings[1].ts - readings[0].ts == 60_000


def test_cli_usage_errors() -> None:
    r = CliRunner().invoke(cli, ["generate", "--dry-run", "--fast"])
    assert r.exit_code == 2 and "--duration" in r.output
    r = CliRunner().invoke(cli, ["generate", "--dry-run", "--scenario-mix", "flu=1"])
    assert r.exit_code == 2 and "unknown scenario" in r.output
    r = CliRunner().invoke(cli, ["replay", "--dry-run", "--record", "nope"])
    assert r.exit_code == 2
