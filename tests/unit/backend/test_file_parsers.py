"""File parsers report the line and the reason: CDC WONDER CSV, PhysioNet .psv files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.population import cdc
from backend.risk import data

HEADER = (b",County,County Code,Year,Year Code,Deaths,Population,Crude Rate,Crude Rate Lower,"
          b"Crude Rate Upper,Age Adjusted Rate,Age Adjusted Rate Lower,Age Adjusted Rate Upper")
GOOD = b"0,Autauga County, AL,01001,1999,1999,12,42963,,,,27.9 (Unreliable),,"


def test_cdc_good_lines_and_the_missing_markers() -> None:
    rows = cdc.parse_lines([HEADER, GOOD, GOOD.replace(b"12,42963", b"Missing,Missing"),
                            b""])
    assert [(r.deaths, r.population, r.age_adjusted_rate, r.unreliable) for r in rows] == [
        (12, 42963, 27.9, True), (None, None, 27.9, True)]


@pytest.mark.parametrize(("line", "reason"), [
    (GOOD.replace(b"42963", b"4296x"), "line 3: population '4296x' is not a number"),
    (GOOD.replace(b"42963", b"NaN"), "line 3: population 'NaN' is not a number"),
    (GOOD.replace(b",12,", b",-12,"), "line 3: deaths '-12' is not a number"),
    (GOOD.replace(b",12,", b",1.5,"), "line 3: deaths '1.5' is not a whole number"),
    (GOOD.replace(b"01001,1999", b"01001,19x9"), "line 3: year '19x9' is not a year"),
    (GOOD.replace(b"01001", b"1001"), "line 3: bad county FIPS"),
    (GOOD + b",extra", "line 3: 15 fields, expected 14"),
    (GOOD.replace(b"Autauga", b"Auta\xffuga"), "line 3: not UTF-8"),
])
def test_cdc_bad_lines_name_the_line_and_the_reason(line: bytes, reason: str) -> None:
    with pytest.raises(cdc.MalformedRow, match=reason):
        cdc.parse_lines([HEADER, GOOD, line])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([6, 7, 11]), st.text(min_size=1, max_size=12))
def test_cdc_any_value_is_read_or_refused_with_its_line(field: int, text: str) -> None:
    fields = GOOD.decode().split(",")
    fields[field + 1] = text.replace(",", "").replace("\n", "").replace("\r", "")
    line = ",".join(fields).encode()
    try:
        [row] = cdc.parse_lines([HEADER, line])
    except cdc.MalformedRow as exc:
        assert str(exc).startswith("line 2: "), exc
        return
    value = (row.deaths, row.population, row.age_adjusted_rate)[[6, 7, 11].index(field)]
    assert value is None or value >= 0  # a number, or one of the documented markers


PSV_HEADER = ("HR|O2Sat|Temp|SBP|MAP|DBP|Resp|EtCO2|BaseExcess|HCO3|FiO2|pH|PaCO2|SaO2|AST|"
              "BUN|Alkalinephos|Calcium|Chloride|Creatinine|Bilirubin_direct|Glucose|Lactate|"
              "Magnesium|Phosphate|Potassium|Bilirubin_total|TroponinI|Hct|Hgb|PTT|WBC|"
              "Fibrinogen|Platelets|Age|Gender|Unit1|Unit2|HospAdmTime|ICULOS|SepsisLabel")
ROW = "|".join(["80"] * 39 + ["1", "0"])


@pytest.mark.parametrize(("second", "reason"), [
    (ROW.replace("80", "8O", 1).encode(), "p2.psv line 3: HR '8O' is not a number"),
    ((ROW + "|5").encode(), "p2.psv line 3: 42 fields, expected 41"),
    (b"\xff" + ROW.encode(), "p2.psv line 3: not UTF-8"),
])
def test_psv_errors_name_the_file_and_line(tmp_path: Path, second: bytes, reason: str) -> None:
    (tmp_path / "p1.psv").write_text(f"{PSV_HEADER}\n{ROW}\n{ROW}\n")
    (tmp_path / "p2.psv").write_bytes(f"{PSV_HEADER}\n{ROW}\n".encode() + second + b"\n")
    with pytest.raises(data.DataFileError, match=reason):
        data._parse(sorted(tmp_path.glob("*.psv")))
    (tmp_path / "p2.psv").write_text(f"{PSV_HEADER}\n{ROW}\n")
    frame, _ = data._parse(sorted(tmp_path.glob("*.psv")))
    assert len(frame) == 3
