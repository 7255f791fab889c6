"""An in-memory stand-in for a Cassandra session, for unit tests of the stores.

``TableSession`` understands the plain statements a store prepares (``INSERT`` with
``IF NOT EXISTS``, ``DELETE`` and ``SELECT *`` with ``=`` / ``>=`` conditions and
``LIMIT``) on tables whose primary keys it is told, and hands rows back the way the
driver does: dicts (the project's ``dict_factory``), timestamps as naive UTC datetimes
cut to milliseconds, ``date`` columns as ``cassandra.util.Date``. Statements it does not
understand raise, so a test cannot pass by a statement silently doing nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from cassandra.util import Date

_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\) VALUES \([?,\s]*\)( IF NOT EXISTS)?$")
_SELECT = re.compile(r"SELECT \* FROM (\w+) WHERE (.+?)( LIMIT \?)?$")
_DELETE = re.compile(r"DELETE FROM (\w+) WHERE (.+)$")
_CONDITION = re.compile(r"(\w+) (=|>=) \?")

# (partition and clustering columns, the clustering column read newest first)
ALERT_TABLES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "alerts": (("alert_id",), None),
    "active_alerts_by_ward": (("ward", "alert_id"), None),
    "alerts_by_ward_day": (("ward", "day", "detected_ts", "alert_id"), "detected_ts"),
    "alerts_by_patient": (("patient_id", "detected_ts", "alert_id"), "detected_ts"),
    "alert_history": (("alert_id", "ts", "action"), None),
}


class Statement:
    def __init__(self, cql: str) -> None:
        self.cql = " ".join(cql.split())
        self.consistency_level = None
        self.fetch_size = None


class Result(list):
    def one(self) -> dict | None:
        return self[0] if self else None


def stored(value: Any) -> Any:
    """A value as Cassandra keeps it: instants in ms, without their zone."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, date):
        return Date(value)
    if isinstance(value, str):
        return str(value)  # an enum member is stored as its text
    if isinstance(value, dict):
        return dict(value) or None  # an empty map is no map
    return value


class TableSession:
    def __init__(self, tables: dict[str, tuple[tuple[str, ...], str | None]] | None = None
                 ) -> None:
        self.keys = dict(tables or ALERT_TABLES)
        self.tables: dict[str, dict[tuple, dict]] = {t: {} for t in self.keys}

    def prepare(self, cql: str) -> Statement:
        return Statement(cql)

    def execute(self, stmt: Statement, params: tuple | list = ()) -> Result:
        cql, params = stmt.cql, tuple(stored(p) for p in params)
        if m := _INSERT.match(cql):
            table, columns = m[1], [c.strip() for c in m[2].split(",")]
            row = dict(zip(columns, params, strict=True))
            key = self._key(table, row)
            if m[3] and key in self.tables[table]:
                return Result([{"[applied]": False, **self.tables[table][key]}])
            self.tables[table].setdefault(key, {}).update(row)
            return Result([{"[applied]": True}] if m[3] else [])
        if m := _SELECT.match(cql):
            table, conditions, limit = m[1], _CONDITION.findall(m[2]), m[3]
            rows = [dict(r) for r in self.tables[table].values()
                    if _matches(r, conditions, params)]
            newest_first = self.keys[table][1]
            if newest_first:
                rows.sort(key=lambda r: r[newest_first], reverse=True)
            return Result(rows[:params[-1]] if limit else rows)
        if m := _DELETE.match(cql):
            table, conditions = m[1], _CONDITION.findall(m[2])
            for key in [k for k, r in self.tables[m[1]].items()
                        if _matches(r, conditions, params)]:
                del self.tables[table][key]
            return Result([])
        raise NotImplementedError(f"the fake session does not run {cql!r}")

    def _key(self, table: str, row: dict) -> tuple:
        return tuple(row[c] for c in self.keys[table][0])

    def put(self, table: str, row: dict) -> None:
        """Store ``row`` as the driver would have written it."""
        row = {k: stored(v) for k, v in row.items()}
        self.tables[table][self._key(table, row)] = row


def _matches(row: dict, conditions: list[tuple[str, str]], params: tuple) -> bool:
    for (column, op), value in zip(conditions, params, strict=False):
        have = row.get(column)
        if op == "=" and have != value:
            return False
        if op == ">=" and (have is None or have < value):
            return False
    return True
