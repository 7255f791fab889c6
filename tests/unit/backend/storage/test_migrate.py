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
