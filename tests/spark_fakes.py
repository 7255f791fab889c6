"""Stand-ins for the parts of Spark's Python API that the stream job's functions use, so
those functions run in unit tests without a JVM."""

from __future__ import annotations

from collections.abc import Mapping

from backend.admission import Admission


class FakeGroupState:
    """The part of Spark's ``GroupState`` the evaluator uses."""

    def __init__(self) -> None:
        self.value: str | None = None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple:
        return (self.value,)

    def update(self, row: tuple) -> None:
        self.value = row[0]

    def remove(self) -> None:
        self.value = None


class FakeCensus:
    """The census lookup the evaluator makes per patient (``backend.storage.census``),
    with the patients of one ward admitted: ``beds`` maps patient to bed."""

    def __init__(self, ward: str, beds: Mapping[str, str]) -> None:
        self.admitted = {p: Admission(patient_id=p, ward=ward, bed=bed, admitted_ts=0)
                         for p, bed in beds.items()}

    def get(self, patient_id: str) -> Admission | None:
        return self.admitted.get(patient_id)
