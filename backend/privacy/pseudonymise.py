"""Pseudonymised research export: keyed-hash identifiers and a per-patient date shift.

A research export (``icu patient export P --pseudonymise``) replaces

- the patient id by ``pt-`` + the first 20 hex digits of HMAC-SHA-256(key, "patient" ||
  id), and each device id likewise (``dev-...``): the same id always gives the same
  pseudonym under one key (records of one patient stay linked across exports), and
  without the key a pseudonym cannot be turned back into the id, nor checked against a
  guessed id;
- every time by the same patient-specific shift: a whole number of days in
  ``[-max_date_shift_days, -1] u [1, max_date_shift_days]`` from the same HMAC, so
  intervals, time of day and the order of events within a patient are exact while the
  calendar dates are not;
- the patient's label (initials) is left out.

The key is ``ICU_PRIVACY__PSEUDONYM_KEY`` (else derived from ``ICU_SECRET_KEY``). Whoever
holds it can re-identify: keep it with the hospital, never with the data. Values
(vital signs) are exported as stored; a research data set may need more (rare values,
small cohorts): this is pseudonymisation, not anonymisation.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from backend.settings import Settings

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Pseudonymiser:
    key: bytes
    max_shift_days: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymiser:
        key = (settings.privacy.pseudonym_key.get_secret_value()
               or settings.secret_key.get_secret_value())
        if not key:
            raise ValueError("no key: set ICU_PRIVACY__PSEUDONYM_KEY (or ICU_SECRET_KEY)")
        derived = hmac.new(key.encode(), b"icu-research-pseudonym", hashlib.sha256).digest()
        return cls(derived, settings.privacy.max_date_shift_days)

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.key, kind.encode() + b"\0" + value.encode(),
                        hashlib.sha256).digest()

    def patient(self, patient_id: str) -> str:
        return "pt-" + self._digest("patient", patient_id).hex()[:20]

    def device(self, device_id: str) -> str:
        return "dev-" + self._digest("device", device_id).hex()[:20]

    def shift_days(self, patient_id: str) -> int:
        """The patient's date shift, never 0."""
        n = int.from_bytes(self._digest("shift", patient_id)[:8], "big")
        days = n % self.max_shift_days + 1
        return days if n & (1 << 63) else -days

    def shift_ms(self, patient_id: str, ms: int) -> int:
        return ms + self.shift_days(patient_id) * DAY_MS
