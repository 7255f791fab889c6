import pytest

from backend.settings import Settings
from backend.storage.migrate import discover, render, split_statements


def test_split_ignores_comments_and_keeps_multiline_statements() -> None:
    text = """
    -- a comment; with a semicolon
    CREATE TABLE a (
        x int PRIMARY KEY
    );
    CREATE TABLE b (y int PRIMARY KEY);
    """
    assert split_statements(text) == [
        "CREATE TABLE a (\n        x int PRIMARY KEY\n    )",
        "CREATE TABLE b (y int PRIMARY KEY)",
    ]


def test_render_substitutes_keyspace_and_retention_in_seconds() -> None:
    s = Settings(cassandra={"keyspace": "icu_t", "readings_ttl_days": 30, "raw_ttl_days": 0})
    out = render("{keyspace}.t ttl={readings_ttl} raw={raw_ttl}", s)
    assert out == "icu_t.t ttl=2592000 raw=0"


def test_migrations_are_ordered_and_every_statement_names_the_keyspace() -> None:
    migrations = discover()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert migrations[0].version == "0001_core"
    for m in migrations:
        for statement in split_statements(m.text):
            assert "{keyspace}." in statement, (m.version, statement[:60])


class _Control:
    def __init__(self, agrees: bool) -> None:
        self.agrees = agrees
        self.waits = 0

    def get_connections(self) -> list:
        return [type("Connection", (), {"endpoint": "node-2"})()]

    def wait_for_schema_agreement(self, wait_time: float) -> bool:
        self.waits += 1
        return self.agrees


class _Session:
    """What ``schema_changes`` uses of a driver session: execute (with ``host``), the
    cluster's agreement setting and wait, its control connection's node."""

    def __init__(self, agrees: bool = True) -> None:
        self.log: list[tuple] = []
        self.versions_asked = 0
        control = _Control(agrees)
        metadata = type("Metadata", (), {"get_host": staticmethod(lambda e: f"host:{e}")})()
        self.cluster = type("Cluster", (), {})()
        self.cluster.control_connection = control
        self.cluster.metadata = metadata
        self.cluster.max_schema_agreement_wait = 10

    def get_pool_state(self) -> dict:
        return {"host:node-1": {}, "host:node-2": {}}

    def execute(self, statement: str, params=None, timeout=None, host=None) -> list:
        if statement.startswith("SELECT schema_version FROM system."):
            self.versions_asked += 1
            return [{"schema_version": "v1"}]  # every node on the same schema
        self.log.append((statement.split()[0], host, self.cluster.control_connection.waits,
                         self.cluster.max_schema_agreement_wait))
        return []


def test_schema_changes_wait_once_for_agreement_before_data_and_at_the_end() -> None:
    from backend.storage.migrate import schema_changes

    session = _Session()
    with schema_changes(session) as run:  # type: ignore[arg-type]
        run("CREATE TABLE ks.a (x int PRIMARY KEY)")
        run("ALTER TABLE ks.a WITH comment = 'x'")
        run("SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'ks'")
        assert session.cluster.control_connection.waits == 0  # DDL and own schema: no wait
        run("SELECT * FROM ks.a")  # data: the nodes must have the table
        assert session.cluster.control_connection.waits == 1
        run("DROP TABLE ks.b")
    assert session.cluster.control_connection.waits == 2
    assert session.versions_asked == 4  # and every node's version, as gossip knows it
    # every statement on the control connection's node, the driver's own wait off
    assert {(host, wait) for _, host, _, wait in session.log} == {("host:node-2", 0)}
    assert session.cluster.max_schema_agreement_wait == 10  # restored


def test_schema_changes_refuse_to_go_on_without_agreement() -> None:
    from backend.storage.migrate import SchemaAgreementError, schema_changes

    session = _Session(agrees=False)
    with pytest.raises(SchemaAgreementError), \
            schema_changes(session) as run:  # type: ignore[arg-type]
        run("CREATE TABLE ks.a (x int PRIMARY KEY)")
        run("INSERT INTO ks.a (x) VALUES (1)")
    assert [s for s, *_ in session.log] == ["CREATE"]  # the insert never ran
    assert session.cluster.max_schema_agreement_wait == 10


def test_retention_alters_only_the_tables_whose_ttl_differs() -> None:
    from backend.storage.migrate import RETENTION, apply_retention

    s = Settings(cassandra={"keyspace": "icu_t", "readings_ttl_days": 30, "raw_ttl_days": 7})
    day = 86_400
    current = {t: (30 if a == "readings_ttl_days" else 7) * day for t, a in RETENTION.items()}
    current["raw_messages"] = 14 * day
    sent: list[str] = []

    def run(statement: str, params=None) -> list[dict]:
        sent.append(statement)
        if statement.startswith("SELECT"):
            assert params == ("icu_t",)
            return [{"table_name": t, "default_time_to_live": v} for t, v in current.items()]
        return []

    apply_retention(run, s)
    assert sent[1:] == [f"ALTER TABLE icu_t.raw_messages WITH default_time_to_live = {7 * day}"]
    sent.clear()
    current["raw_messages"] = 7 * day
    apply_retention(run, s)
    assert len(sent) == 1  # only the read


def test_schema_changes_use_a_connected_node_when_the_control_node_has_no_pool() -> None:
    from backend.storage.migrate import schema_changes

    session = _Session()
    session.get_pool_state = lambda: {"host:node-3": {}}  # type: ignore[method-assign]
    refreshed = []
    session.cluster.refresh_schema_metadata = lambda: refreshed.append(True)
    with schema_changes(session) as run:  # type: ignore[arg-type]
        run("CREATE TABLE ks.a (x int PRIMARY KEY)")
    assert [host for _, host, _, _ in session.log] == ["host:node-3"]
    assert refreshed == [True]  # the control node's metadata caught up after agreement
