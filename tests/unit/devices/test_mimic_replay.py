"""The MIMIC replay as a pure generator: mapping of real frames, time, seq, admission."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from backend.admission import Admission
from backend.messages import DeviceReading
from backend.population.catchment import DEFAULT_CATCHMENT
from backend.settings import Settings
from backend.vitals import Vital
from devices import mimic_replay as mr
from devices.wire import encode

DATA = Settings().data_dir
NAN = math.nan


@pytest.fixture(scope="module")
def s00001() -> mr.MimicRecord:
    return mr.load_record("s00001", DATA)


@pytest.fixture(scope="module")
def s25047() -> mr.MimicRecord:
    return mr.load_record("s25047", DATA)


def frame(**kw: float) -> dict[str, float]:
    names = ("HR", "ABPSys", "ABPDias", "ABPMean", "PULSE", "RESP", "SpO2",
             "NBPSys", "NBPDias", "NBPMean")
    return {n: kw.get(n, NAN) for n in names}


# --- the mapping of one frame -------------------------------------------------------------

def test_direct_signals_map_to_wire_names() -> None:
    out = mr.map_frame(frame(HR=62.8, PULSE=61.5, SpO2=97.4, RESP=12.7))
    assert out == {Vital.HR: 62.8, Vital.PULSE: 61.5, Vital.SPO2: 97.4, Vital.RR: 12.7}


def test_zeros_are_sent_as_recorded() -> None:
    out = mr.map_frame(frame(HR=0.0, PULSE=0.0, SpO2=0.0, RESP=0.0))
    assert out == {Vital.HR: 0.0, Vital.PULSE: 0.0, Vital.SPO2: 0.0, Vital.RR: 0.0}


def test_nan_leaves_the_key_out() -> None:
    out = mr.map_frame(frame(HR=70.0))
    assert out == {Vital.HR: 70.0}


def test_arterial_line_is_used_when_it_reads() -> None:
    out = mr.map_frame(frame(ABPSys=129.3, ABPDias=59.3, ABPMean=76.0,
                             NBPSys=120, NBPDias=60, NBPMean=80))
    assert (out[Vital.SBP], out[Vital.DBP], out[Vital.MAP]) == (129.3, 59.3, 76.0)


def test_cuff_is_used_when_the_arterial_line_reads_zero() -> None:
    out = mr.map_frame(frame(ABPSys=0, ABPDias=0, ABPMean=0, NBPSys=120, NBPDias=60,
                             NBPMean=80))
    assert (out[Vital.SBP], out[Vital.DBP], out[Vital.MAP]) == (120, 60, 80)


def test_no_bp_at_all_when_line_is_off_and_no_cuff_reading() -> None:
    out = mr.map_frame(frame(HR=60, ABPSys=0, ABPDias=0, ABPMean=0))
    assert not {Vital.SBP, Vital.DBP, Vital.MAP} & out.keys()


def test_connected_line_with_a_zero_component_keeps_the_zero() -> None:
    # s00001 minute 1923: the line reads a mean of 25.3 with systolic/diastolic 0
    out = mr.map_frame(frame(ABPSys=0.0, ABPDias=0.0, ABPMean=25.3))
    assert (out[Vital.SBP], out[Vital.DBP], out[Vital.MAP]) == (0.0, 0.0, 25.3)


def test_partial_cuff_reading_sends_what_is_there() -> None:
    out = mr.map_frame(frame(NBPMean=62.0))
    assert out == {Vital.MAP: 62.0}


# --- the real records ----------------------------------------------------------------------

def test_header_gives_patient_id_age_and_sex(s00001: mr.MimicRecord,
                                             s25047: mr.MimicRecord) -> None:
    assert s00001.patient_id == "mimic-s00001"
    assert (s00001.age, s00001.sex) == (60, "F")
    assert s00001.minutes == 1936
    assert s25047.patient_id == "mimic-s25047"
    assert (s25047.age, s25047.sex) == (None, "U")


def test_parse_header_comment() -> None:
    assert mr.parse_header_comment(["<age>: 60 <sex>: F"]) == (60, "F")
    assert mr.parse_header_comment(["<age>: ?? <sex>: ?"]) == (None, "U")
    assert mr.parse_header_comment([]) == (None, None)


def test_unknown_record_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="s99999"):
        mr.load_record("s99999", DATA)


def test_first_frames_of_s00001_exactly(s00001: mr.MimicRecord) -> None:
    out = [r for _, r in mr.replay(s00001, start_ms=0, minutes=2)]
    assert out[0].vitals == {Vital.HR: 0.0, Vital.PULSE: 0.0, Vital.SPO2: 0.0, Vital.RR: 23.0}
    assert out[1].vitals == {Vital.HR: 62.8, Vital.PULSE: 0.0, Vital.SPO2: 0.0, Vital.RR: 12.7}


def test_every_recorded_zero_and_value_is_replayed(s00001: mr.MimicRecord) -> None:
    out = [r for _, r in mr.replay(s00001, start_ms=0)]
    assert len(out) == s00001.minutes
    for sig, vital in mr.DIRECT.items():
        col = s00001.sig_name.index(sig)
        recorded = [row[col] for row in s00001.frames]
        sent = [r.vitals.get(vital) for r in out]
        assert sent == recorded, sig  # no NaN in these columns: every value, zeros too
    zeros = sum(r.vitals[Vital.HR] == 0 for r in out)
    assert zeros == 46  # as the monitor showed them
    assert sum(r.vitals[Vital.SPO2] == 0 for r in out) == 363


def test_bp_sources_in_s00001(s00001: mr.MimicRecord) -> None:
    out = [r for _, r in mr.replay(s00001, start_ms=0)]
    nbp = s00001.sig_name.index("NBPSys")
    cuff_minutes = {m for m, row in enumerate(s00001.frames) if not math.isnan(row[nbp])}
    art_minutes = {m for m in range(s00001.minutes)
                   if mr.arterial_connected(s00001.frame(m))}
    assert len(cuff_minutes) == 152 and len(art_minutes) == 8
    assert not cuff_minutes & art_minutes
    with_bp = {m for m, r in enumerate(out) if Vital.SBP in r.vitals}
    assert with_bp == cuff_minutes | art_minutes  # each cuff reading once, not repeated
    assert out[1924].vitals[Vital.SBP] == 129.3  # arterial line
    m = min(cuff_minutes)
    assert out[m].vitals[Vital.SBP] == s00001.frames[m][nbp]


def test_pulse_of_277_is_preserved_as_recorded(s25047: mr.MimicRecord) -> None:
    out = [r for _, r in mr.replay(s25047, start_ms=0)]
    pulses = [r.vitals.get(Vital.PULSE) for r in out]
    assert 277.0 in pulses
    # and it survives the wire
    msg = json.loads(encode(out[pulses.index(277.0)]))
    assert msg["vitals"]["pulse"] == 277.0


def test_record_without_arterial_line_uses_cuff_only(s25047: mr.MimicRecord) -> None:
    out = [r for _, r in mr.replay(s25047, start_ms=0)]
    assert out[2].vitals[Vital.SBP] == 87.0 and out[2].vitals[Vital.MAP] == 62.0
    assert Vital.SBP not in out[0].vitals


def test_nibp_hold_repeats_the_latest_cuff_reading_for_a_while(
        s00001: mr.MimicRecord) -> None:
    held = [r for _, r in mr.replay(s00001, start_ms=0, nibp_hold_s=5 * 60)]
    nbp = s00001.sig_name.index("NBPSys")
    m = min(i for i, row in enumerate(s00001.frames) if not math.isnan(row[nbp]))
    value = s00001.frames[m][nbp]
    following = [r.vitals.get(Vital.SBP) for r in held[m:m + 7]]
    assert following[:6] == [value] * 6  # the measuring frame + 5 minutes
    assert following[6] in (None, s00001.frames[m + 6][nbp])


# --- time, seq, keys -----------------------------------------------------------------------

def test_seq_from_zero_and_timestamps_keep_recorded_spacing(s25047: mr.MimicRecord) -> None:
    out = list(mr.replay(s25047, start_ms=1_000_000))
    assert [r.seq for _, r in out] == list(range(72))
    assert [r.ts for _, r in out] == [1_000_000 + 60_000 * i for i in range(72)]
    assert {k for k, _ in out} == {"mimic-s25047"}
    assert all(r.patient_id == k for k, r in out)


def test_speed_scales_the_spacing(s25047: mr.MimicRecord) -> None:
    out = [r for _, r in mr.replay(s25047, start_ms=5, spacing_ms=60_000 / 60)]
    assert [r.ts for r in out[:3]] == [5, 1005, 2005]


def test_loop_continues_time_and_seq(s25047: mr.MimicRecord) -> None:
    it = mr.replay(s25047, start_ms=0, spacing_ms=1000, loop=True, first_minute=2,
                   minutes=10)
    out = [next(it)[1] for _ in range(25)]
    assert [r.seq for r in out] == list(range(25))
    assert [r.ts for r in out] == [1000 * i for i in range(25)]
    assert out[10].vitals == out[0].vitals == out[20].vitals
    assert len({r.device_id for r in out}) == 1


def test_window_selection(s00001: mr.MimicRecord) -> None:
    out = [r for _, r in mr.replay(s00001, start_ms=0, first_minute=1923, minutes=3)]
    assert len(out) == 3
    assert out[0].vitals[Vital.MAP] == 25.3
    with pytest.raises(ValueError):
        list(mr.replay(s00001, start_ms=0, first_minute=5000))


def test_messages_are_valid_compact_device_readings(s25047: mr.MimicRecord) -> None:
    for key, r in mr.replay(s25047, start_ms=0, ward="ICU-B", bed="7", boot="x1"):
        raw = encode(r)
        assert b" " not in raw and b"NaN" not in raw and b"null" not in raw
        back = DeviceReading.model_validate_json(raw)
        assert back == r
        assert back.schema_version == 1
        assert (back.ward, back.bed, back.device_id) == ("ICU-B", "7", "mon-ICU-B-7.x1")
        assert key == back.patient_id


# --- admission -----------------------------------------------------------------------------

def test_admission(s00001: mr.MimicRecord) -> None:
    a = mr.admission(s00001, ward="ICU-R", bed="1", admitted_ts=123)
    assert isinstance(a, Admission)
    assert (a.patient_id, a.age, a.sex, a.admitted_ts) == ("mimic-s00001", 60, "F", 123)
    assert a.home_fips in {c.fips for c in DEFAULT_CATCHMENT}
    assert a.label.startswith("Bed 1 · ") and len(a.label) == len("Bed 1 · J.D.")
    assert a == mr.admission(s00001, ward="ICU-R", bed="1", admitted_ts=123)  # reproducible


def test_resolve_accepts_name_and_path(s00001: mr.MimicRecord) -> None:
    folder = Path(DATA) / "mimic-numerics"
    assert mr.resolve(s00001.name, DATA) == folder / s00001.name
    assert mr.resolve(str(folder / f"{s00001.name}.hea"), DATA) == folder / s00001.name
