"""The vital-sign parameters the system knows: one table, used by every layer.

Each parameter has its wire name (the key in a device message), a display label, the
UCUM unit the value must be in, its LOINC code, and the range a monitor can really
measure. A value outside that range is not physiology but a device or transmission
error, and validation rejects it with a reason rather than alarming on it.

A value of exactly 0 is how bedside monitors (and the MIMIC numerics) report "sensor
off" for HR, pulse, SpO2, RR and BP; ``zero_means_off`` marks those parameters. Asystole
is detected from the ECG waveform, never from a numeric trend of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Vital(StrEnum):
    HR = "hr"
    PULSE = "pulse"
    SPO2 = "spo2"
    RR = "rr"
    SBP = "sbp"
    DBP = "dbp"
    MAP = "map"
    TEMP = "temp"


@dataclass(frozen=True, slots=True)
class VitalSpec:
    vital: Vital
    label: str
    ucum: str
    display_unit: str
    loinc: str
    loinc_display: str
    plausible_min: float
    plausible_max: float
    zero_means_off: bool
    decimals: int


# Plausible ranges follow the measuring ranges of ICU monitors: ECG heart rate 15-300/min
# (e.g. Philips IntelliVue), pulse-oximeter pulse rate 20-250/min (Masimo/Nellcor
# specifications), SpO2 up to 100 %, invasive/non-invasive BP 10-300 mmHg.
VITALS: dict[Vital, VitalSpec] = {
    s.vital: s
    for s in (
        VitalSpec(Vital.HR, "Heart rate", "/min", "bpm", "8867-4", "Heart rate",
                  15, 300, True, 0),
        VitalSpec(Vital.PULSE, "Pulse rate (SpO2)", "/min", "bpm", "8889-8",
                  "Heart rate by Pulse oximetry", 20, 250, True, 0),
        VitalSpec(Vital.SPO2, "SpO2", "%", "%", "59408-5",
                  "Oxygen saturation in Arterial blood by Pulse oximetry", 20, 100, True, 0),
        VitalSpec(Vital.RR, "Respiratory rate", "/min", "/min", "9279-1", "Respiratory rate",
                  2, 80, True, 0),
        VitalSpec(Vital.SBP, "Systolic BP", "mm[Hg]", "mmHg", "8480-6", "Systolic blood pressure",
                  30, 300, True, 0),
        VitalSpec(Vital.DBP, "Diastolic BP", "mm[Hg]", "mmHg", "8462-4",
                  "Diastolic blood pressure", 10, 200, True, 0),
        VitalSpec(Vital.MAP, "Mean BP", "mm[Hg]", "mmHg", "8478-0", "Mean blood pressure",
                  20, 250, True, 0),
        VitalSpec(Vital.TEMP, "Temperature", "Cel", "°C", "8310-5", "Body temperature",
                  25, 45, False, 1),
    )
}

# LOINC panel code for a vital-signs Observation group (FHIR vital-signs profile).
VITAL_SIGNS_PANEL_LOINC = "85353-1"
