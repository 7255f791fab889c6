"""The persist query builds its column expressions once per Spark gateway."""

from __future__ import annotations

import pytest
from pyspark import SparkContext

from streaming.persist_job import _built_once


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch):
    def use(obj: object) -> None:
        monkeypatch.setattr(SparkContext, "_gateway", obj)
    return use


def test_built_once_per_gateway_and_again_for_a_new_one(gateway) -> None:
    calls: list[int] = []

    @_built_once
    def columns() -> list[int]:
        calls.append(1)
        return [len(calls)]

    first, second = object(), object()
    gateway(first)
    a = columns()
    assert columns() is a and len(calls) == 1  # every batch of the query: the same objects
    gateway(second)  # a new JVM: the old expressions belong to a gateway that is gone
    b = columns()
    assert b == [2] and b is not a and columns() is b
    assert columns.build() == [3]  # the uncached builder, as the bench compares it
