"""The active model of a long-running process follows `activate` and `rollback`
(backend.risk.registry.ActiveModel), and rollback walks back one step per call."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from backend.risk import registry
from backend.risk.model_cli import cli
from backend.settings import Settings
from tests.risk_fixture import write_model

V1, V2 = "20260101T000000Z", "20260102T000000Z"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(cache_dir=tmp_path)
    write_model(s, V1, hr_split=110)
    write_model(s, V2, hr_split=120, created="2026-01-02T00:00:00+00:00")
    return s


def test_active_model_follows_activate_and_rollback(settings: Settings) -> None:
    clock = Clock()
    active = registry.ActiveModel(settings, recheck_seconds=30, clock=clock)
    assert active.get().version == V2
    registry.rollback(settings)
    assert active.get().version == V2, "not re-read before recheck_seconds"
    clock.t = 30
    assert active.get().version == V1
    registry.activate(settings, V2)
    clock.t = 60
    assert active.get().version == V2


def test_broken_active_version_keeps_the_loaded_model(settings: Settings) -> None:
    active = registry.ActiveModel(settings, recheck_seconds=0)
    assert active.get().version == V2
    (registry.version_dir(settings, V1) / "trees.json").write_text("{not json")
    registry.rollback(settings)
    assert active.get().version == V2
    assert "active model not loaded" in active.error


def test_no_active_model(tmp_path: Path) -> None:
    assert registry.ActiveModel(Settings(cache_dir=tmp_path)).get() is None


def test_rollback_is_one_command(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backend.risk.model_cli.get_settings", lambda: settings)
    result = CliRunner().invoke(cli, ["rollback"])
    assert result.exit_code == 0, result.output
    assert f"active: {V1} (rolled back from {V2})" in result.output
    assert registry.active_version(settings) == V1
    again = CliRunner().invoke(cli, ["rollback"])
    assert again.exit_code != 0 and "nothing to roll back to" in again.output
    assert registry.active_version(settings) == V1
