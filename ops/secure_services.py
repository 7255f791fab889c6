"""A secured local Kafka and Cassandra: authentication, authorisation per component and
TLS, run by this project beside (never instead of) the development servers of
``ops/services.py``, which accept anyone on this machine.

``icu services secure start`` runs them on their own ports (Kafka 18092, its KRaft
controller 18093; Cassandra 18042, gossip 16000) with their own data under
``<cache_dir>/secure`` (``--dir``), and writes one environment file per component
(``<dir>/env/<component>.env``, owner-only) with that component's credentials::

    set -a; . ~/.cache/icu-monitor/secure/env/stream.env; set +a; icu stream run

Kafka (KRaft, one node): the client listener takes SASL/SCRAM-SHA-512 only, over TLS
when certificates are configured (default: a local CA made here; ``--ca-file``,
``--cert-file``, ``--key-file`` take the hospital's). SCRAM users are written into the
metadata when the storage is formatted (``kafka-storage format --add-scram``). The
controller listener (127.0.0.1 only) takes SASL/PLAIN for the administrator alone: KRaft
controllers cannot use SCRAM. ``StandardAuthorizer`` with no access where no ACL allows
it; the ACLs per principal are :func:`kafka_acls`.

Cassandra (one node): ``PasswordAuthenticator``, ``CassandraAuthorizer``, client TLS.
The default ``cassandra`` superuser is disabled once ``icu_admin`` exists; one role per
component with the grants of :func:`cassandra_grants`.

Principals (Kafka user = Cassandra role): ``icu_admin`` (schema, topics, ACLs, erasure),
``icu_stream`` (stream job, waveform sink), ``icu_web`` (web app), ``icu_alerts`` (alert
manager), ``icu_devices`` (bedside monitors, simulator, FHIR ingest; Kafka only).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from pydantic import SecretStr

from backend.settings import Settings, TlsSettings, get_settings
from ops import cassandra_server, kafka_server
from ops.artefacts import cassandra_home, fetch_kafka, kafka_home
from ops.server_processes import (
    ServerSpec,
    Service,
    ServiceError,
    java,
    quiet,
    start_server,
    stop_server,
)
from ops.services_cli import echo_service
from ops.topics import ensure_topics

KAFKA_PORT = 18092
CASSANDRA_PORT = 18042
MECHANISM = "SCRAM-SHA-512"

ADMIN = "admin"
COMPONENTS = ("stream", "web", "alerts", "devices")
# Components without a Cassandra role: a bedside monitor only ever sends to Kafka.
KAFKA_ONLY = ("devices",)


def principal(component: str) -> str:
    """The Kafka user and Cassandra role of ``component``."""
    return f"icu_{component}"


@dataclass(frozen=True)
class Layout:
    """Where the secured servers keep everything, and their ports."""

    root: Path
    kafka_port: int = KAFKA_PORT
    cassandra_port: int = CASSANDRA_PORT
    tls: bool = True

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


def default_layout(settings: Settings, **kw: object) -> Layout:
    return Layout(settings.cache_dir / "secure", **kw)  # type: ignore[arg-type]


def saved_layout(root: Path) -> Layout:
    """The layout ``start`` used in ``root`` (ports, TLS)."""
    path = root / "layout.json"
    if not path.exists():
        raise ServiceError(f"no secured servers set up in {root} (`icu services secure "
                               "start` first)")
    data = json.loads(path.read_text())
    return Layout(root, data["kafka_port"], data["cassandra_port"], data["tls"])


# ---------------------------------------------------------------------------------------
# Secrets and certificates


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a file made before with wider permissions
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def credentials(layout: Layout) -> dict[str, str]:
    """Each principal's password (one for Kafka and Cassandra), made once, kept owner-only.
    Also the key store password of the servers' TLS key."""
    if layout.credentials.exists():
        return json.loads(layout.credentials.read_text())
    creds = {name: secrets.token_urlsafe(24) for name in (ADMIN, *COMPONENTS, "keystore")}
    _write_private(layout.credentials, json.dumps(creds, indent=1).encode())
    return creds


def make_certificates(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      days: int = 825) -> tuple[Path, Path, Path]:
    """A CA and a server certificate signed by it (names: ``hosts``), as PEM files:
    ``(ca.pem, server.pem, server-key.pem)``. For a local secured setup and the tests; a
    hospital uses its own PKI (``--ca-file/--cert-file/--key-file``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ICU Monitor local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    _write_private(paths[2], key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    # The CA's key is not kept: nothing else is ever signed with it.
    return paths


def install_certificates(layout: Layout, ca_file: Path, cert_file: Path,
                         key_file: Path) -> None:
    """The servers' certificate (PEM) as the PKCS#12 key store both JVMs read, and the CA
    the clients trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        load_pem_private_key,
        pkcs12,
    )

    chain = x509.load_pem_x509_certificates(Path(cert_file).read_bytes())
    key = load_pem_private_key(Path(key_file).read_bytes(), None)
    password = credentials(layout)["keystore"]
    store = pkcs12.serialize_key_and_certificates(
        b"server", key, chain[0], chain[1:] or None,  # type: ignore[arg-type]
        BestAvailableEncryption(password.encode()))
    _write_private(layout.tls_dir / "server.p12", store)
    layout.tls_dir.mkdir(parents=True, exist_ok=True)
    if Path(ca_file).resolve() != layout.ca_file.resolve():
        layout.ca_file.write_bytes(Path(ca_file).read_bytes())


def _ensure_tls(layout: Layout) -> None:
    if layout.tls and not (layout.tls_dir / "server.p12").exists():
        ca, cert, key = make_certificates(layout.tls_dir / "generated")
        install_certificates(layout, ca, cert, key)


# ---------------------------------------------------------------------------------------
# Settings of each component


def component_settings(settings: Settings, layout: Layout, component: str) -> Settings:
    """``settings`` pointed at the secured servers, as ``component`` (``admin`` or one of
    :data:`COMPONENTS`)."""
    password = SecretStr(credentials(layout)[component])
    tls = TlsSettings(ca_file=layout.ca_file) if layout.tls else TlsSettings()
    kafka = settings.kafka.model_copy(update={
        "bootstrap": layout.bootstrap, "sasl_mechanism": MECHANISM,
        "username": principal(component), "password": password, "tls": tls})
    cassandra = settings.cassandra.model_copy(update={
        "hosts": ["127.0.0.1"], "port": layout.cassandra_port, "tls": tls,
        "username": None if component in KAFKA_ONLY else principal(component),
        "password": None if component in KAFKA_ONLY else password})
    return settings.model_copy(update={"kafka": kafka, "cassandra": cassandra})


def _shell_word(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def write_env_files(settings: Settings, layout: Layout) -> dict[str, Path]:
    """``<root>/env/<component>.env``: the ``ICU_*`` variables that differ from
    ``settings`` (servers, credentials, CA), owner-only."""
    base = settings.to_env()
    out = {}
    for component in (ADMIN, *COMPONENTS):
        env = component_settings(settings, layout, component).to_env()
        lines = [f"{k}={_shell_word(v)}" for k, v in sorted(env.items())
                 if k.startswith(("ICU_KAFKA__", "ICU_CASSANDRA__")) and base.get(k) != v]
        path = layout.root / "env" / f"{component}.env"
        _write_private(path, ("# icu services secure: the "
                              f"{component} component's servers and credentials\n"
                              + "\n".join(lines) + "\n").encode())
        out[component] = path
    return out


# ---------------------------------------------------------------------------------------
# Kafka

# Who may connect to the secured broker; storage, partitions, replication and retention
# come from ops/kafka_server.broker_properties like the development broker's.
KAFKA_SECURE_LISTENERS = """\
listeners=CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=CLIENT://127.0.0.1:{port}
inter.broker.listener.name=CLIENT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:{client_protocol}
sasl.enabled.mechanisms={mechanism}
sasl.mechanism.inter.broker.protocol={mechanism}
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=\
org.apache.kafka.common.security.plain.PlainLoginModule required \
username="{admin}" password="{admin_password}" user_{admin}="{admin_password}";
listener.name.client.{mechanism_lower}.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required \
username="{admin}" password="{admin_password}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{admin}
{tls}"""

KAFKA_TLS_PROPERTIES = """\
listener.name.client.ssl.keystore.type=PKCS12
listener.name.client.ssl.keystore.location={keystore}
listener.name.client.ssl.keystore.password={password}
listener.name.client.ssl.key.password={password}
listener.name.client.ssl.enabled.protocols=TLSv1.3,TLSv1.2
# the broker is its own client on this listener (inter-broker), so it trusts the CA too
listener.name.client.ssl.truststore.type=PEM
listener.name.client.ssl.truststore.location={ca_file}
ssl.client.auth=none
"""


def _kafka_spec(settings: Settings, layout: Layout) -> ServerSpec:
    return ServerSpec("kafka", kafka_server.KAFKA_MAIN, kafka_home(settings), layout.root / "kafka",
                     "127.0.0.1", layout.kafka_port, [layout.kafka_port + 1],
                     setting=f"secure Kafka on {layout.bootstrap}",
                     config_name="server.properties", log_name="logs/server.log")


def _kafka_prepare(spec: ServerSpec, settings: Settings, layout: Layout) -> list[str]:
    if not list((spec.home / "lib").glob("kafka_*.jar")):
        fetch_kafka(settings)
    creds = credentials(layout)
    base, data = kafka_server.jvm_argv(spec)
    tls = (KAFKA_TLS_PROPERTIES.format(keystore=layout.tls_dir / "server.p12",
                                       password=creds["keystore"], ca_file=layout.ca_file)
           if layout.tls else "")
    text = (kafka_server.kraft_header(spec.other_ports[0], "icu services secure start")
            + KAFKA_SECURE_LISTENERS.format(
                port=spec.port, controller_port=spec.other_ports[0],
                client_protocol="SASL_SSL" if layout.tls else "SASL_PLAINTEXT",
                mechanism=MECHANISM, mechanism_lower=MECHANISM.lower(),
                admin=principal(ADMIN), admin_password=creds[ADMIN], tls=tls)
            + kafka_server.broker_properties(settings, data))
    _write_private(spec.config, text.encode())  # holds the administrator's password
    scram = []
    for name in (ADMIN, *COMPONENTS):
        scram += ["--add-scram", f"{MECHANISM}=[name={principal(name)},password={creds[name]}]"]
    kafka_server.format_storage(spec, base, scram, secret=creds[ADMIN])
    return [*base, kafka_server.KAFKA_MAIN, str(spec.config)]


def kafka_acls(settings: Settings) -> list[tuple[str, str, str, str, str]]:
    """``(principal, resource type, pattern type, name, operation)``: everything each
    component may do; nothing else is allowed (``allow.everyone.if.no.acl.found=false``).
    READ and WRITE imply DESCRIBE."""
    k = settings.kafka
    acl: list[tuple[str, str, str, str, str]] = []

    def topic(who: str, op: str, *names: str) -> None:
        acl.extend((principal(who), "TOPIC", "LITERAL", n, op) for n in names)

    # Devices only send readings and waveforms.
    topic("devices", "WRITE", k.topic_raw, k.topic_waveforms)
    # The stream job: the alarm query reads raw readings and its clock and publishes
    # its outputs in transactions; the persist query reads what it stores; the risk query
    # reads validated readings; the waveform sink reads waveforms, dead-letters bad ones.
    topic("stream", "READ", k.topic_raw, k.topic_ticks, k.topic_validated,
          k.topic_deadletter, k.topic_waveforms, k.topic_sink_progress)
    topic("stream", "WRITE", k.topic_validated, k.topic_deadletter, k.topic_alerts,
          k.topic_ticks)
    topic("stream", "CREATE", k.topic_sink_progress)
    acl += [
        (principal("stream"), "TRANSACTIONAL_ID", "PREFIXED", "icu-sink-", "WRITE"),
        (principal("stream"), "TRANSACTIONAL_ID", "PREFIXED", "icu-sink-", "DESCRIBE"),
        (principal("stream"), "GROUP", "PREFIXED", "icu-sink-", "READ"),
        (principal("stream"), "GROUP", "PREFIXED", "spark-kafka-source", "READ"),
        (principal("stream"), "GROUP", "LITERAL", "icu-waveform-sink", "READ"),
    ]
    # The web app follows what the ward screens show and publishes acknowledgements.
    topic("web", "READ", k.topic_validated, k.topic_alerts, k.topic_lifecycle)
    topic("web", "WRITE", k.topic_lifecycle)
    # The alert manager follows alerts and publishes the lifecycle it drives.
    topic("alerts", "READ", k.topic_alerts)
    topic("alerts", "WRITE", k.topic_lifecycle)
    acl.append((principal("alerts"), "GROUP", "LITERAL", settings.alert_manager.consumer_group,
                "READ"))
    return acl


def apply_kafka_acls(admin_settings: Settings) -> int:
    """Create every ACL of :func:`kafka_acls` (idempotent); returns how many."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    entries = [ACL(principal=f"User:{who}", host="*", operation=ACLOperation[op],
                   permission_type=ACLPermissionType.ALLOW,
                   resource_pattern=ResourcePattern(ResourceType[rtype], name,
                                                    ACLResourcePatternType[ptype]))
               for who, rtype, ptype, name, op in kafka_acls(admin_settings)]
    with kafka_server.kafka_admin(admin_settings, 30_000) as admin:
        result = admin.create_acls(entries)  # type: ignore[attr-defined]
    failed = result.get("failed") or []
    if failed:
        raise ServiceError(f"creating Kafka ACLs: {failed[:3]}")
    return len(entries)


# ---------------------------------------------------------------------------------------
# Cassandra

CASSANDRA_AUTH = """\
authenticator: PasswordAuthenticator
authorizer: CassandraAuthorizer
role_manager: CassandraRoleManager
roles_validity: 2000ms
permissions_validity: 2000ms
"""

CASSANDRA_TLS = """\
client_encryption_options:
  enabled: true
  optional: false
  keystore: {keystore}
  keystore_password: {password}
  truststore: {truststore}
  truststore_password: {truststore_password}
  store_type: PKCS12
  require_client_auth: false
  accepted_protocols: [TLSv1.2, TLSv1.3]
"""


# Append-only for every role but the superuser (ops/cassandra/AppendOnlyQueryHandler.java):
# Cassandra's MODIFY permission covers INSERT, UPDATE, DELETE and TRUNCATE alike.
AUDIT_TABLES = ("audit_by_day", "audit_by_actor_day", "audit_by_patient_day")


def _cassandra_spec(settings: Settings, layout: Layout) -> ServerSpec:
    storage = layout.cassandra_port - cassandra_server.CASSANDRA_STORAGE_PORT_OFFSET
    return ServerSpec("cassandra", cassandra_server.CASSANDRA_MAIN, cassandra_home(settings),
                     layout.root / "cassandra", "127.0.0.1", layout.cassandra_port, [storage],
                     setting=f"secure Cassandra on 127.0.0.1:{layout.cassandra_port}",
                     config_name="cassandra.yaml", log_name="logs/system.log")


def _cassandra_prepare(spec: ServerSpec, settings: Settings, layout: Layout,
                       unsafe_system: bool) -> list[str]:
    from backend.clients import java_truststore

    argv = cassandra_server.cassandra_prepare(spec, settings, unsafe_system)
    text = spec.config.read_text()
    plain = "authenticator: AllowAllAuthenticator\nauthorizer: AllowAllAuthorizer\n"
    if plain not in text:
        raise ServiceError("the Cassandra configuration template changed: no "
                               "AllowAllAuthenticator to replace")
    text = text.replace(plain, CASSANDRA_AUTH).replace("cluster_name: icu-local",
                                                       "cluster_name: icu-secure")
    if layout.tls:
        trust, trust_password = java_truststore(layout.ca_file, layout.tls_dir)
        text += CASSANDRA_TLS.format(keystore=layout.tls_dir / "server.p12",
                                     password=credentials(layout)["keystore"],
                                     truststore=trust, truststore_password=trust_password)
    _write_private(spec.config, text.encode())
    classes = _append_only_handler(spec, settings)
    cp = argv.index("-cp")
    argv[cp + 1] += os.pathsep + str(classes)
    argv[cp:cp] = [f"-Dcassandra.custom_query_handler_class={APPEND_ONLY_HANDLER}",
                   f"-Dicu.append_only_tables={','.join(AUDIT_TABLES)}"]
    return argv


APPEND_ONLY_HANDLER = "icu.cassandra.AppendOnlyQueryHandler"
APPEND_ONLY_SOURCE = Path(__file__).with_name("cassandra") / "AppendOnlyQueryHandler.java"


def _append_only_handler(spec: ServerSpec, settings: Settings) -> Path:
    """Compile the append-only query handler against this Cassandra (once per source
    change); returns its class directory."""
    import shutil

    classes = spec.var / "classes"
    built = classes / "icu" / "cassandra" / "AppendOnlyQueryHandler.class"
    if built.exists() and built.stat().st_mtime >= APPEND_ONLY_SOURCE.stat().st_mtime:
        return classes
    javac = Path(java()).resolve().with_name("javac")
    if not javac.exists():
        javac = Path(shutil.which("javac") or "javac")
    try:
        proc = subprocess.run(
            [str(javac), "-nowarn", "--release", "17", "-cp",
             f"{cassandra_home(settings) / 'lib'}/*", "-d", str(classes),
             str(APPEND_ONLY_SOURCE)], capture_output=True, text=True, timeout=180)
    except FileNotFoundError:
        raise ServiceError("the secured Cassandra needs javac (a JDK 17: apt-get install "
                           "openjdk-17-jdk-headless) to build its append-only query "
                           "handler") from None
    if proc.returncode != 0:
        raise ServiceError(f"compiling {APPEND_ONLY_SOURCE.name} failed:\n"
                           f"{proc.stdout}{proc.stderr}")
    return classes


def _cql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@contextlib.contextmanager
def _cql(settings: Settings, username: str, password: str,
         wait_seconds: float = 0) -> Iterator[object]:
    from backend.storage.cassandra import connect

    cfg = settings.cassandra.model_copy(update={"username": username,
                                                "password": SecretStr(password)})
    session = connect(cfg, keyspace=False, wait_seconds=wait_seconds)
    try:
        yield session
    finally:
        session.cluster.shutdown()


def _admin_session_settings(settings: Settings, layout: Layout) -> Settings:
    return component_settings(settings, layout, ADMIN)


def _cassandra_probe(settings: Settings, layout: Layout) -> str | None:
    """Ready once it answers the administrator, or (first start) the default superuser."""
    admin = _admin_session_settings(settings, layout)
    first = not (layout.root / "cassandra" / "roles.done").exists()
    user, password = (("cassandra", "cassandra") if first
                      else (principal(ADMIN), credentials(layout)[ADMIN]))
    with quiet("cassandra"), _cql(admin, user, password) as s:
        row = s.execute("SELECT release_version FROM system.local").one()  # type: ignore[attr-defined]
    return f"Cassandra {row['release_version']}, authentication on" if row else None


def setup_cassandra_roles(settings: Settings, layout: Layout) -> None:
    """First start: ``icu_admin`` becomes the superuser and the default ``cassandra`` role
    can no longer sign in; then one login role per component (password from the
    credentials file, set again on every start)."""
    admin = _admin_session_settings(settings, layout)
    creds = credentials(layout)
    done = layout.root / "cassandra" / "roles.done"
    if not done.exists():
        # Role writes by the default superuser are read at QUORUM; retry while the
        # authentication tables are still being set up on a fresh node.
        deadline = time.monotonic() + 60
        while True:
            try:
                with _cql(admin, "cassandra", "cassandra") as s:
                    s.execute(f"CREATE ROLE IF NOT EXISTS {principal(ADMIN)} WITH "  # type: ignore[attr-defined]
                              f"SUPERUSER = true AND LOGIN = true AND PASSWORD = "
                              f"{_cql_literal(creds[ADMIN])}")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        with _cql(admin, principal(ADMIN), creds[ADMIN], wait_seconds=30) as s:
            s.execute("ALTER ROLE cassandra WITH SUPERUSER = false AND LOGIN = false "  # type: ignore[attr-defined]
                      f"AND PASSWORD = {_cql_literal(secrets.token_urlsafe(24))}")
        done.write_text("icu_admin is the superuser; the default role is disabled\n")
    with _cql(admin, principal(ADMIN), creds[ADMIN], wait_seconds=30) as s:
        for component in COMPONENTS:
            if component in KAFKA_ONLY:
                continue
            role, password = principal(component), _cql_literal(creds[component])
            s.execute(f"CREATE ROLE IF NOT EXISTS {role} WITH LOGIN = true "  # type: ignore[attr-defined]
                      f"AND PASSWORD = {password}")
            s.execute(f"ALTER ROLE {role} WITH PASSWORD = {password}")  # type: ignore[attr-defined]


# What each component role reads (SELECT) and writes (MODIFY), table by table, from the
# code that runs as it (backend/storage/* is the only CQL; the stream job's persist query
# writes through the Spark Cassandra Connector, streaming/persist_job.py). A table not
# listed is the administrator's alone (schema_migrations, the risk model registry's
# mirror, raw messages and dead letters once stored). Conditional writes
# (INSERT ... IF NOT EXISTS, UPDATE ... IF) need SELECT as well as MODIFY.
_ALERT_INDEXES = ("active_alerts_by_ward", "alerts_by_ward_day", "alerts_by_patient",
                  "alert_history")
TABLE_ACCESS: dict[str, dict[str, tuple[str, ...]]] = {
    # the alarm, persist, risk queries, the alert and waveform sinks (streaming/), and
    # the population batch job (streaming/population_job.py), run with this role
    "stream": {
        "SELECT": ("admissions", "alerts", "waveform_channels_by_patient",
                   "alerts_by_ward_day", "population_days", "population_by_region"),
        "MODIFY": ("readings_by_patient_day", "readings_by_patient_minute", "latest_by_ward",
                   "raw_messages", "deadletters_by_day", "alerts", *_ALERT_INDEXES,
                   "risk_scores_by_patient", "risk_scores_by_model_day",
                   "waveforms_by_patient_hour", "waveform_channels_by_patient",
                   "population_by_region", "population_by_ward", "population_days",
                   "population_surges"),
    },
    # pages, callbacks, sign-in, sessions, acknowledgements (screen and e-mail link),
    # notes, the audit log
    "web": {
        "SELECT": ("admissions", "beds_by_ward", "readings_by_patient_day",
                   "readings_by_patient_minute", "latest_by_ward", "alerts",
                   *_ALERT_INDEXES, "alert_ack_links", "users", "web_sessions",
                   "login_throttle", *AUDIT_TABLES, "notes_by_patient",
                   "waveforms_by_patient_hour", "waveform_channels_by_patient",
                   "risk_scores_by_patient", "risk_scores_by_model_day",
                   "population_by_region", "population_by_ward", "population_days",
                   "population_surges"),
        "MODIFY": ("users", "web_sessions", "login_throttle", *AUDIT_TABLES,
                   "notes_by_patient", "alerts", *_ALERT_INDEXES, "alert_ack_links"),
    },
    # escalation, auto-resolution, the e-mail outbox (backend/alerting/manager.py)
    "alerts": {
        "SELECT": ("admissions", "users", "alerts", "alert_manager_open", "email_outbox",
                   "email_outbox_pending"),
        "MODIFY": ("alerts", *_ALERT_INDEXES, "alert_manager_open", "email_outbox",
                   "email_outbox_pending", *AUDIT_TABLES),
    },
}


def cassandra_grants(keyspace: str) -> list[str]:
    """The GRANT statements of every component role: SELECT and MODIFY on the tables of
    :data:`TABLE_ACCESS` only, no schema changes, no permission management. The audit
    tables (:data:`AUDIT_TABLES`) are append-only for all of them: MODIFY lets a role
    INSERT a new entry, the server's query handler refuses everything else."""
    out = []
    for component, access in TABLE_ACCESS.items():
        role = principal(component)
        for permission in ("SELECT", "MODIFY"):
            out += [f"GRANT {permission} ON TABLE {keyspace}.{table} TO {role}"
                    for table in sorted(set(access[permission]))]
    return out


def revoke_keyspace_grants(keyspace: str) -> list[str]:
    """What servers set up before per-table grants held: keyspace-wide SELECT and MODIFY
    (revoking a permission that was never granted is a no-op)."""
    return [f"REVOKE {permission} ON KEYSPACE {keyspace} FROM {principal(component)}"
            for component in TABLE_ACCESS for permission in ("SELECT", "MODIFY")]


def grant_cassandra(settings: Settings, layout: Layout) -> list[str]:
    """Apply :func:`cassandra_grants` (idempotent; ``icu services secure grant`` after
    the keyspace was re-created or a migration added a table)."""
    admin = _admin_session_settings(settings, layout)
    with _cql(admin, principal(ADMIN), credentials(layout)[ADMIN], wait_seconds=30) as s:
        keyspace = settings.cassandra.keyspace
        statements = revoke_keyspace_grants(keyspace) + cassandra_grants(keyspace)
        for statement in statements:
            s.execute(statement)  # type: ignore[attr-defined]
    return statements


# ---------------------------------------------------------------------------------------
# Start, stop


def start_secure(settings: Settings, layout: Layout, *, timeout: float = 240,
                 unsafe_system: bool = False, migrate: bool = True) -> dict[str, Service]:
    """Start (idempotently) the secured Kafka and Cassandra, then make sure topics, ACLs,
    roles, the schema and the grants are in place and write the environment files."""
    from concurrent.futures import ThreadPoolExecutor

    layout.root.mkdir(parents=True, exist_ok=True)
    (layout.root / "layout.json").write_text(json.dumps(
        {"kafka_port": layout.kafka_port, "cassandra_port": layout.cassandra_port,
         "tls": layout.tls}) + "\n")
    credentials(layout)
    _ensure_tls(layout)
    admin = _admin_session_settings(settings, layout)
    kspec, cspec = _kafka_spec(settings, layout), _cassandra_spec(settings, layout)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="secure-start") as pool:
        kafka = pool.submit(start_server, kspec, admin, lambda: kafka_server.kafka_probe(admin),
                            lambda: _kafka_prepare(kspec, settings, layout), timeout)
        cassandra = pool.submit(start_server, cspec, admin,
                                lambda: _cassandra_probe(settings, layout),
                                lambda: _cassandra_prepare(cspec, settings, layout,
                                                           unsafe_system), timeout)
        started = {"kafka": kafka.result(), "cassandra": cassandra.result()}
    ensure_topics(admin)
    apply_kafka_acls(admin)
    setup_cassandra_roles(settings, layout)
    if migrate:
        from backend.storage.cassandra import connect
        from backend.storage.migrate import migrate as run_migrations

        session = connect(admin.cassandra, keyspace=False, wait_seconds=30)
        try:
            run_migrations(session, admin)
        finally:
            session.cluster.shutdown()
        grant_cassandra(settings, layout)
    write_env_files(settings, layout)
    return started


def stop_secure(settings: Settings, layout: Layout) -> list[str]:
    stopped = []
    for name, spec in (("kafka", _kafka_spec(settings, layout)),
                       ("cassandra", _cassandra_spec(settings, layout))):
        if spec.var.exists() and stop_server(spec, 90):
            stopped.append(name)
    return stopped


# ---------------------------------------------------------------------------------------
# CLI

_dir = click.option("--dir", "root", type=click.Path(path_type=Path), default=None,
                    help="where the secured servers keep their data, credentials and "
                         "certificates (default <cache_dir>/secure)")


def _root(root: Path | None) -> tuple[Settings, Path]:
    settings = get_settings()
    return settings, root or default_layout(settings).root


@click.group("secure")
def cli() -> None:
    """Kafka and Cassandra with authentication, per-component authorisation and TLS."""


@cli.command("start")
@_dir
@click.option("--kafka-port", default=KAFKA_PORT, show_default=True)
@click.option("--cassandra-port", default=CASSANDRA_PORT, show_default=True)
@click.option("--tls/--no-tls", default=True, show_default=True,
              help="TLS on the client ports (certificates: --ca-file/--cert-file/--key-file, "
                   "else a local CA made on first start)")
@click.option("--ca-file", type=click.Path(exists=True, path_type=Path))
@click.option("--cert-file", type=click.Path(exists=True, path_type=Path))
@click.option("--key-file", type=click.Path(exists=True, path_type=Path))
@click.option("--timeout", default=240.0, show_default=True)
def start_cmd(root: Path | None, kafka_port: int, cassandra_port: int, tls: bool,
              ca_file: Path | None, cert_file: Path | None, key_file: Path | None,
              timeout: float) -> None:
    """Start the secured servers (idempotent) and write each component's environment."""
    settings, directory = _root(root)
    layout = Layout(directory, kafka_port, cassandra_port, tls)
    given = [ca_file, cert_file, key_file]
    if any(given):
        if not all(given):
            raise click.UsageError("--ca-file, --cert-file and --key-file go together")
        install_certificates(layout, ca_file, cert_file, key_file)  # type: ignore[arg-type]
    try:
        started = start_secure(settings, layout, timeout=timeout)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    for s in started.values():
        echo_service(s)
    click.echo(f"Kafka {layout.bootstrap}: SASL/{MECHANISM}"
               + (" over TLS" if tls else " WITHOUT TLS") + ", ACLs per component")
    click.echo(f"Cassandra 127.0.0.1:{cassandra_port}: password authentication, "
               "roles per component" + (", TLS" if tls else ", WITHOUT TLS"))
    click.echo(f"each component's settings: {layout.root / 'env'}/<component>.env "
               f"(components: {ADMIN}, {', '.join(COMPONENTS)}); e.g.\n"
               f"  set -a; . {layout.root / 'env' / 'stream.env'}; set +a; icu stream run")


@cli.command("stop")
@_dir
def stop_cmd(root: Path | None) -> None:
    """Stop the secured servers."""
    settings, directory = _root(root)
    try:
        stopped = stop_secure(settings, saved_layout(directory))
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@cli.command("grant")
@_dir
def grant_cmd(root: Path | None) -> None:
    """Apply the per-component grants again (after the keyspace was re-created)."""
    settings, directory = _root(root)
    try:
        statements = grant_cassandra(settings, saved_layout(directory))
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    for statement in statements:
        click.echo(statement)
