"""ops/secure_services.py without servers: the ACL table, the grants, the per-component
environment files."""

from __future__ import annotations

import stat
from pathlib import Path

from backend.settings import Settings
from ops import secure_services as secure


def _acl(settings: Settings) -> dict[str, set[tuple[str, str, str, str]]]:
    out: dict[str, set[tuple[str, str, str, str]]] = {}
    for who, rtype, ptype, name, op in secure.kafka_acls(settings):
        out.setdefault(who, set()).add((rtype, ptype, name, op))
    return out


def test_devices_only_write_readings_and_waveforms() -> None:
    s = Settings()
    k = s.kafka
    assert _acl(s)["icu_devices"] == {("TOPIC", "LITERAL", k.topic_raw, "WRITE"),
                                      ("TOPIC", "LITERAL", k.topic_waveforms, "WRITE")}


def test_only_the_stream_job_writes_its_outputs_and_nobody_but_devices_sends_readings() -> None:
    s = Settings()
    k = s.kafka
    acl = _acl(s)
    writers = {(name, who) for who, entries in acl.items()
               for rtype, _, name, op in entries if rtype == "TOPIC" and op == "WRITE"}
    for topic in (k.topic_validated, k.topic_deadletter, k.topic_alerts):
        assert {who for name, who in writers if name == topic} == {"icu_stream"}
    assert {who for name, who in writers if name == k.topic_raw} == {"icu_devices"}
    assert {who for name, who in writers if name == k.topic_lifecycle} == {"icu_web",
                                                                           "icu_alerts"}
    # the web app reads what its screens show, nothing raw
    web_reads = {name for rtype, _, name, op in acl["icu_web"] if op == "READ"}
    assert web_reads == {k.topic_validated, k.topic_alerts, k.topic_lifecycle}
    # no principal but the administrator may alter, delete or manage anything
    ops = {op for entries in acl.values() for *_, op in entries}
    assert ops <= {"READ", "WRITE", "DESCRIBE", "CREATE"}
    assert all(name == k.topic_sink_progress for entries in acl.values()
               for _, _, name, op in entries if op == "CREATE")


def test_component_roles_get_data_access_only() -> None:
    grants = secure.cassandra_grants("icu")
    assert all(g.startswith(("GRANT SELECT ON KEYSPACE icu TO ",
                             "GRANT MODIFY ON KEYSPACE icu TO ")) for g in grants)
    assert {g.rsplit(" ", 1)[1] for g in grants} == {"icu_stream", "icu_web", "icu_alerts"}


def test_each_component_gets_its_own_credentials_in_an_owner_only_file(
        tmp_path: Path) -> None:
    layout = secure.Layout(tmp_path, 19092, 19042, tls=True)
    creds = secure.credentials(layout)
    assert stat.S_IMODE(layout.credentials.stat().st_mode) == 0o600
    assert len(set(creds.values())) == len(creds)  # no password shared
    files = secure.write_env_files(Settings(), layout)
    assert set(files) == {"admin", "stream", "web", "alerts", "devices"}
    for component, path in files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = path.read_text()
        assert f"ICU_KAFKA__USERNAME='icu_{component}'" in text
        assert "ICU_KAFKA__SASL_MECHANISM='SCRAM-SHA-512'" in text
        assert f"ICU_KAFKA__TLS__CA_FILE='{layout.ca_file}'" in text
        others = [v for k, v in creds.items() if k != component]
        assert not any(v in text for v in others)
        assert creds[component] in text
        assert ("ICU_CASSANDRA__USERNAME" in text) == (component != "devices")
