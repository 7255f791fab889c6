"""Stand-ins for the parts of Spark's Python API that the stream job's functions use, so
those functions run in unit tests without a JVM."""

from __future__ import annotations


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
