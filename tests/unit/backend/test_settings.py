import pytest
from pydantic import SecretStr

from backend.settings import Settings


def test_environment_round_trip_keeps_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        secret_key=SecretStr("s3cret"),
        demo_mode=True,
        cassandra={"hosts": ["10.0.0.5", "10.0.0.6"], "keyspace": "icu_x",
                   "password": SecretStr("pw")},
        kafka={"topic_raw": "raw.x", "partitions": 8},
    )
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == original


def test_nested_variables_use_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICU_ALERTING__PERSISTENCE_SECONDS", "4.5")
    monkeypatch.setenv("ICU_CASSANDRA__HOSTS", '["cass-1"]')
    s = Settings()
    assert s.alerting.persistence_seconds == 4.5
    assert s.cassandra.hosts == ["cass-1"]


def test_secrets_are_not_shown_in_repr() -> None:
    s = Settings(secret_key=SecretStr("hunter2hunter2"))
    assert "hunter2" not in repr(s)
