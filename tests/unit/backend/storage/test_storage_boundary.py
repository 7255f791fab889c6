"""Every Cassandra table is read and written only through ``backend/storage/``.

Scans the source tree: outside ``backend/storage/`` and ``ops/`` (which starts the
servers and applies migrations) no module imports the ``cassandra`` driver and no
string literal is a CQL statement. Tests, benches and their harness may query the
database directly.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
ALLOWED = ("backend/storage/", "ops/", "tests/", "bench/", "harness/")
SKIP_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".ruff_cache", ".pytest_cache"}

# A string literal that *is* a statement starts with one of these, in capitals as every
# statement here is written (prose, "Select the ward from the list", does not match).
CQL = re.compile(
    r"""^\s*(
        SELECT\s+(DISTINCT\s+)?[\w*,\s()]+?\s+FROM\s
      | INSERT\s+INTO\s
      | UPDATE\s+[\w.{}]+\s+(USING\s+TTL\s+\S+\s+)?SET\s
      | DELETE\s+([\w,\s]+\s+)?FROM\s
      | TRUNCATE\s
      | (CREATE|ALTER|DROP)\s+(TABLE|KEYSPACE|INDEX|TYPE|MATERIALIZED\s+VIEW)\s
      | BEGIN\s+(UNLOGGED\s+)?BATCH
    )""",
    re.VERBOSE,
)


def _sources() -> list[Path]:
    out = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if SKIP_DIRS & set(rel.parts[:-1]):
            continue
        if rel.as_posix().startswith(ALLOWED):
            continue
        out.append(path)
    return out


def _leading_text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # f"SELECT ... {x}": its literal head
        head = node.values[0] if node.values else None
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value
    return None


def violations(source: str) -> list[str]:
    """What in ``source`` reaches Cassandra directly: driver imports and CQL strings."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[0] == "cassandra"]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] == "cassandra":
                found.append(f"line {node.lineno}: from {node.module} import ...")
        else:
            text = _leading_text(node)
            if text is not None and CQL.match(text):
                found.append(f"line {node.lineno}: CQL {text.strip()[:50]!r}")
    return found


@pytest.mark.parametrize("text", [
    "SELECT * FROM alerts WHERE alert_id = ?",
    "SELECT ward FROM alerts WHERE alert_id = %s",
    "SELECT DISTINCT patient_id, day FROM readings_by_patient_day",
    "INSERT INTO audit_by_day (day) VALUES (?)",
    "UPDATE login_throttle USING TTL ? SET attempts = ? WHERE key = ?",
    "UPDATE users SET disabled = ? WHERE username = ?",
    "DELETE FROM web_sessions WHERE session_id = ?",
    "  TRUNCATE alerts",
    "CREATE TABLE IF NOT EXISTS x (a int PRIMARY KEY)",
    "BEGIN BATCH INSERT INTO x (a) VALUES (1) APPLY BATCH",
])
def test_statements_are_recognised(text: str) -> None:
    assert violations(f"q = {text!r}\n")
    assert violations(f"q = f{text!r} + str(1)\n")


@pytest.mark.parametrize("source", [
    "import cassandra\n",
    "from cassandra.cluster import Session\n",
    "def f():\n    from cassandra.query import SimpleStatement\n",
    "import cassandra.util as u\n",
])
def test_driver_imports_are_recognised(source: str) -> None:
    assert violations(source)


@pytest.mark.parametrize("source", [
    '"""Select the ward from the list, then update the screen."""\n',
    'x = "the alert manager will delete from its list what ended"\n',
    "from backend.storage.cassandra import connect\n",
    'settings = {"cassandra": 1}\n',
    'msg = "Update available"\n',
])
def test_prose_and_storage_imports_pass(source: str) -> None:
    assert violations(source) == []


def test_no_cql_or_driver_outside_storage() -> None:
    sources = _sources()
    assert any(p.relative_to(ROOT).as_posix() == "webapp/pages/ward.py" for p in sources)
    found = {}
    for path in sources:
        bad = violations(path.read_text(encoding="utf-8"))
        if bad:
            found[path.relative_to(ROOT).as_posix()] = bad
    assert found == {}, "Cassandra reached outside backend/storage/:\n" + "\n".join(
        f"{path}: {'; '.join(items)}" for path, items in sorted(found.items()))
