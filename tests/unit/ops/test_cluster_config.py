"""The replicated set's configuration (ops/cluster.py): what each member is told, and the
client settings that point at it. Pure: nothing is started here (the set itself is
started by tests/integration/test_replicated_cluster.py)."""

from __future__ import annotations

import re
import shlex

import pytest
from pydantic import ValidationError

from backend.settings import ClusterSettings, Settings
from ops import cluster


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def _yaml(text: str) -> dict:
    """The top-level ``key: value`` lines, the seeds and the data directories (all this
    test reads; no YAML library in the project)."""
    out: dict = {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()
                                              if line and line[0].isalpha() and ": " in line)}
    out["seeds"] = re.search(r'- seeds: "([^"]*)"', text)[1]  # type: ignore[index]
    out["data_file_directories"] = re.findall(r"data_file_directories:\n((?:  - .*\n)+)",
                                              text)[0].replace("  - ", "").split()
    return out


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(cache_dir=tmp_path)


def test_three_brokers_form_one_quorum_with_durable_defaults(settings: Settings) -> None:
    brokers = cluster.kafka_members(settings)
    props = [_props(cluster.kafka_properties(settings, m)) for m in brokers]
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert len({p["listeners"] for p in props}) == 3, "each broker its own ports"
    voters = {p["controller.quorum.voters"] for p in props}
    assert voters == {"1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"}
    for p, m in zip(props, brokers, strict=True):
        assert p["process.roles"] == "broker,controller"
        assert p["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{m.spec.port}"
        assert p["log.dirs"] == str(m.spec.var / "data")
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
        assert p["unclean.leader.election.enable"] == "false"
        # nothing of the single-node broker's durability is left
        assert not [k for k, v in p.items() if "replication.factor" in k and v == "1"]


def test_cassandra_nodes_differ_by_address_and_split_the_ring_evenly(settings) -> None:
    nodes = cluster.cassandra_members(settings)
    confs = [_yaml(cluster.cassandra_yaml(settings, m)) for m in nodes]
    assert [c["listen_address"] for c in confs] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert [c["rpc_address"] for c in confs] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert {c["native_transport_port"] for c in confs} == {"19042"}
    assert {c["storage_port"] for c in confs} == {"17000"}
    assert {c["cluster_name"] for c in confs} == {"icu-replicated"}
    assert {c["seeds"] for c in confs} == { "127.0.0.1:17000,127.0.0.2:17000,127.0.0.3:17000"}
    tokens = [int(c["initial_token"]) for c in confs]
    assert tokens[0] == -(2**63) and tokens == sorted(tokens)
    gaps = {b - a for a, b in zip(tokens, [*tokens[1:], tokens[0] + 2**64], strict=True)}
    assert max(gaps) - min(gaps) <= 2, "each node owns a third of the ring"
    assert all(c["data_file_directories"] == [str(m.spec.var / "data")]
               for c, m in zip(confs, nodes, strict=True))
    assert len({m.spec.other_ports[1] for m in nodes}) == 3, "one JMX port per node"


def test_tokens_are_distinct_and_in_range_for_any_size() -> None:
    for n in range(1, 12):
        tokens = cluster._tokens(n)
        assert len(set(tokens)) == n
        assert all(-(2**63) <= t < 2**63 for t in tokens)


def test_the_cluster_never_collides_with_the_single_node_servers(settings) -> None:
    single = {("127.0.0.1", 9092), ("127.0.0.1", 9093), ("127.0.0.1", 9042),
              ("127.0.0.1", 7000), ("127.0.0.1", 7199)}
    taken = set()
    for m in cluster.members(settings):
        for port in (m.spec.port, *m.spec.other_ports):
            host = "127.0.0.1" if m.kind == "kafka" or port in m.spec.other_ports[1:] \
                else m.spec.host
            taken.add((host, port))
        assert "cluster" in m.spec.var.parts, "its own data directories"
    assert not taken & single


def test_env_lines_give_back_the_client_settings(settings, monkeypatch) -> None:
    for line in cluster.env_lines(settings):
        name, value = shlex.split(line.removeprefix("export "))[0].split("=", 1)
        monkeypatch.setenv(name, value)
    from_env = Settings(cache_dir=settings.cache_dir)
    direct = cluster.client_settings(settings)
    assert from_env.kafka == direct.kafka
    assert from_env.cassandra == direct.cassandra
    assert from_env.spark.master == "spark://127.0.0.1:7077"
    assert from_env.kafka.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert (from_env.kafka.replication_factor, from_env.kafka.min_insync_replicas) == (3, 2)
    assert from_env.cassandra.hosts == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert from_env.cassandra.replication_factor == 3
    assert from_env.cassandra.consistency == "LOCAL_QUORUM"


def test_single_node_stays_the_default() -> None:
    s = Settings()
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert (s.kafka.replication_factor, s.kafka.min_insync_replicas) == (1, 1)
    assert (s.cassandra.hosts, s.cassandra.port, s.cassandra.replication_factor) == (
        ["127.0.0.1"], 9042, 1)


@pytest.mark.parametrize("bad", [
    {"replication_factor": 4},  # more copies than nodes
    {"replication_factor": 2, "min_insync_replicas": 3},
    {"cassandra_hosts": ["127.0.0.1", "127.0.0.2"]},  # RF 3 on two nodes
])
def test_impossible_replication_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ClusterSettings(**bad)


def test_unknown_consistency_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(cassandra={"consistency": "LOCAL_SOMETIMES"})


def test_a_changed_single_node_template_fails_loudly() -> None:
    with pytest.raises(cluster.ServiceError, match="not in the single-node template"):
        cluster._replace("a=1\n", "b=1\n", "b=2\n")
