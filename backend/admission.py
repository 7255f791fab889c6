"""Who lies in which bed: the admission record every reading is checked against."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Admission(BaseModel):
    """An ICU admission. ``label`` is what a ward screen shows (initials or a pseudonym,
    never the full name unless the hospital configures it)."""

    patient_id: str = Field(min_length=1, max_length=64)
    ward: str = Field(min_length=1, max_length=32)
    bed: str = Field(min_length=1, max_length=16)
    label: str = Field(default="", max_length=64)
    age: int | None = Field(default=None, ge=0, le=130)
    sex: str | None = Field(default=None, pattern="^(F|M|U)$")
    # 5-digit US county FIPS of the patient's home, for population analytics.
    home_fips: str | None = Field(default=None, pattern=r"^\d{5}$")
    # NEWS2 SpO2 scale 2 is a clinical decision for patients with hypercapnic
    # respiratory failure; it belongs to the patient, not to a reading.
    spo2_scale: int = Field(default=1, ge=1, le=2)
    admitted_ts: int
    source: str | None = None
