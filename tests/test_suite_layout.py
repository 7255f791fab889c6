"""The suite's own layout: unit tests sit under the package they test, so a reader finds
``backend/alerting/rules.py``'s tests in ``tests/unit/backend/alerting/``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def test_unit_tests_mirror_the_package_tree() -> None:
    unit = TESTS / "unit"
    stray = [p.name for p in unit.glob("test_*.py")]
    assert stray == [], f"put these under tests/unit/<package>/: {stray}"
    not_packages = [str(d.relative_to(unit)) for d in unit.rglob("*")
                    if d.is_dir() and d.name != "__pycache__"
                    and not (REPO / d.relative_to(unit) / "__init__.py").is_file()]
    assert not_packages == [], f"tests/unit/ folders that are no package: {not_packages}"


def test_test_module_names_are_unique() -> None:
    # pytest's default import mode imports every test file by its bare name
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
