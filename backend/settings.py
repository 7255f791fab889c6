"""The one typed settings object, read from the environment (prefix ``ICU_``).

Every host, port, topic, keyspace, threshold and secret the system uses is a field
here; nothing else reads ``os.environ`` for configuration. Nested groups use a double
underscore, e.g. ``ICU_KAFKA__BOOTSTRAP=127.0.0.1:9092`` or ``ICU_SMTP__PORT=2525``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.vitals import VITALS, Vital

REPO_ROOT = Path(__file__).resolve().parent.parent


class TlsSettings(BaseModel):
    """TLS towards a server (Kafka, Cassandra): PEM files, all optional. ``ca_file`` set
    (or ``enabled``) turns TLS on; ``cert_file``/``key_file`` add a client certificate
    (mutual TLS); ``check_hostname`` stays on outside tests with IP-only certificates."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True

    @property
    def on(self) -> bool:
        return self.enabled or self.ca_file is not None


class KafkaSettings(BaseModel):
    bootstrap: str = "127.0.0.1:9092"
    partitions: int = 4
    # Authentication: SASL/SCRAM (``SCRAM-SHA-512`` or ``SCRAM-SHA-256``) or ``PLAIN``;
    # None: no SASL (the local development broker). With ``tls`` the protocol is
    # SASL_SSL / SSL, without it SASL_PLAINTEXT / PLAINTEXT (backend/clients.py).
    sasl_mechanism: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings = TlsSettings()
    # How long Kafka keeps records (every topic the platform creates). Raw vital signs
    # stay readable there until this expires, also after `icu patient erase`.
    retention_hours: float = Field(default=168.0, gt=0)
    # Copies of every topic the platform creates, and how many of them must have a
    # record before an acks=all producer hears "stored" (1 and 1 on the single-node
    # broker; 3 and 2 on the replicated set, which then survives one broker down).
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    topic_raw: str = "vitals.raw"
    topic_validated: str = "vitals.validated"
    topic_deadletter: str = "vitals.deadletter"
    topic_alerts: str = "alerts.events"
    topic_lifecycle: str = "alerts.lifecycle"
    topic_waveforms: str = "waveforms.raw"
    # One-partition topic whose committed consumer-group offset records, inside each
    # Kafka transaction, the last micro-batch the stream job published (exactly-once).
    topic_sink_progress: str = "stream.sink-progress"
    # The stream job's own clock: it sends one small record per state bucket here every
    # ``SparkSettings.tick_seconds``, so silent beds are noticed with no device input
    # (docs/benchmarks.md, "Stream design": Spark's processing-time timeouts would run a
    # micro-batch back to back instead, 1.5 cores of an idle machine).
    topic_ticks: str = "stream.ticks"


class CassandraSettings(BaseModel):
    hosts: list[str] = ["127.0.0.1"]
    port: int = 9042
    keyspace: str = "icu"
    replication_factor: int = 1
    # Retention in days; 0 keeps data forever. Raw messages are kept longer than the
    # readings because a hospital must be able to produce exactly what it received.
    readings_ttl_days: int = 0
    raw_ttl_days: int = 0
    username: str | None = None
    password: SecretStr | None = None
    # The stream job's writes through the Spark Cassandra Connector (a quorum of the
    # replicas in the local data centre: with replication factor 1, the one node).
    write_consistency: str = "LOCAL_QUORUM"
    # Every other read and write of the platform (the Python driver's default, and the
    # connector's reads): with replication factor 3 a quorum is 2 replicas, so one node
    # may be down and a read still sees every acknowledged write.
    consistency: str = Field(default="LOCAL_QUORUM",
                             pattern="^(ONE|LOCAL_ONE|QUORUM|LOCAL_QUORUM|EACH_QUORUM|ALL)$")
    tls: TlsSettings = TlsSettings()


class SparkSettings(BaseModel):
    """The stream job: the alarm query (latency) and the persist query (throughput)."""

    # The stream job's master (`icu stream run|persist|risk`). In local mode, more task
    # slots than the machine's cores: the persist query's write tasks and the risk query's
    # hourly scoring (Python, seconds per task) would otherwise hold every slot while the
    # alarm query's next micro-batch waits for one. With local[2] the ward screens froze
    # for 8-11 s when both ran together; with local[8] no run froze
    # (docs/benchmarks.md, "What froze the alarm query").
    master: str = "local[8]"
    # Batch jobs (risk model training, the population aggregation): their partitioning
    # follows this master's parallelism, and the model's training is reproduced with it.
    batch_master: str = "local[2]"
    checkpoint_dir: Path = Path.home() / ".cache" / "icu-monitor" / "checkpoints" / "vitals"
    trigger_seconds: float = 0.0  # 0 = start the next micro-batch as soon as one ends
    max_offsets_per_trigger: int = 50_000
    shuffle_partitions: int = 2
    # Patients share per-micro-batch state calls in this many buckets (hash of the
    # patient key). Fewer buckets, less per-call overhead; more, more parallelism.
    # Changing it starts a new checkpoint (streaming.vitals_job.checkpoint_location).
    state_buckets: int = Field(default=8, ge=1, le=4096)
    jars_dir: Path = Path.home() / ".cache" / "icu-monitor" / "jars"
    # Records longer than this are dead-lettered ("oversized") from their length alone,
    # before any parsing: well under Kafka's 1 MiB message limit, far above a reading.
    max_record_bytes: int = Field(default=64 * 1024, ge=1024)
    # A dead letter carries at most this many bytes of its original (plus its length and
    # SHA-256); the whole original is in raw_messages and on the source topic.
    deadletter_head_bytes: int = Field(default=1024, ge=0, le=64 * 1024)
    # How often the job's clock ticks (KafkaSettings.topic_ticks): a silent bed is
    # flagged at most this long after ``AlertingSettings.stale_after_seconds``.
    tick_seconds: float = Field(default=5.0, gt=0)
    # The persist query (Kafka -> Cassandra through the Spark Cassandra Connector) runs
    # a micro-batch this often: Cassandra's history (the patient timeline) trails the
    # ward screens, which follow Kafka, by about this much plus a batch. Each batch pays
    # ~0.15 s per table written, so larger is cheaper: 10 s against 5 s took ~0.13 core
    # off the 1,000-bed stream machine (docs/benchmarks.md, "The persist interval").
    persist_trigger_seconds: float = Field(default=10.0, gt=0)
    persist_max_offsets_per_trigger: int = 200_000
    # The connector sends the rows of one partition as one unlogged batch (one mutation)
    # of up to this many bytes (spark.cassandra.output.batch.size.bytes). Cassandra's
    # batch size warning and failure thresholds skip single-partition batches. 32 KiB
    # against 4 KiB: drain +12 %, ceiling +11-29 %, Cassandra CPU per reading -30 %
    # (docs/benchmarks.md, "The persist batch size").
    persist_batch_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    # A persist write that fails on a passing fault of the cluster (a node lost or
    # restarting, a timeout) is retried with backoff for this long before the batch, and
    # with it the job, fails (streaming/cassandra_retry.py). The writes are idempotent,
    # so a retry rewrites the same rows; meanwhile the screens go on following Kafka.
    persist_retry_seconds: float = Field(default=300.0, ge=0)
    # A query that failed is started again from its checkpoint, inside the job, up to this
    # many times within the window; one failure more stops the job for its supervisor
    # (streaming/query_supervisor.py). 0: every failure stops the job.
    query_restarts: int = Field(default=5, ge=0)
    query_restart_window_seconds: float = Field(default=600.0, gt=0)
    # "hdfs" (Spark's in-memory map with delta files) or "rocksdb". The state is one small
    # row per bucket, so the in-memory map is faster (docs/benchmarks.md, "Stream design").
    # A checkpoint keeps the store it was started with.
    state_store: str = Field(default="hdfs", pattern="^(rocksdb|hdfs)$")
    # FileSystemBased renames files into place (atomic on a local or HDFS file system;
    # object stores such as S3 need FileContextBased). The FileContext one forks chmod
    # and readlink helpers on the local file system: 5x the forks of an idle job.
    checkpoint_file_manager: str = Field(
        default="FileSystemBasedCheckpointFileManager",
        pattern="^(FileContextBasedCheckpointFileManager|FileSystemBasedCheckpointFileManager)$")
    # Spark's driver JVM heap (local mode: the executors run in it too).
    driver_memory: str = "1g"
    # More JVM options for the driver, e.g. a flight recording for a profile.
    driver_java_options: str = ""
    # The long-running job commands' driver JVM (in local mode the executors too; a
    # cluster's executors keep the defaults): C2 compiles a method only after ten times the
    # default calls and loops. Each micro-batch runs Spark's planning code a few times, and
    # at the defaults it kept crossing the thresholds: C2 was the JVM's largest CPU user
    # under load. Raised, the cold start is shorter (11 of 11 pairs measured), the idle job
    # after it lighter, the storm's alert p99 shorter in 5 of 5 short pairs, and ten paced
    # minutes are no slower (docs/benchmarks.md, "... the JIT's thresholds").
    # Batch sessions (training, site studies) keep the defaults; "" turns it off.
    job_jit_options: str = ("-XX:Tier4InvocationThreshold=50000 "
                            "-XX:Tier4MinInvocationThreshold=6000 "
                            "-XX:Tier4CompileThreshold=150000 "
                            "-XX:Tier4BackEdgeThreshold=400000")
    # The job commands' driver JVM maps a class-data archive of the classes its last run
    # loaded, written when that run stopped (streaming/class_archive.py): cold start 13.0 s
    # against 15.9 s on average (docs/benchmarks.md, "The driver JVM's class archive").
    class_archive: bool = True
    # The standalone cluster `icu services start --spark` runs on 127.0.0.1
    # (ops/spark_cluster.py): the master's port, its workers, each worker's share.
    cluster_port: int = 7077
    cluster_workers: int = Field(default=2, ge=1)
    worker_cores: int = Field(default=1, ge=1)
    worker_memory: str = "1536m"
    executor_memory: str = "1g"

    @property
    def cluster_url(self) -> str:
        return f"spark://127.0.0.1:{self.cluster_port}"


class ClusterSettings(BaseModel):
    """The replicated set ``icu services start --cluster`` runs on this one machine
    (ops/cluster.py): three Kafka brokers (each also a KRaft controller) on 127.0.0.1 and
    three Cassandra nodes on ``cassandra_hosts``. Its ports differ from the single-node
    servers' (9092/9093, 9042/7000 on 127.0.0.1), so both can run side by side; its
    data lives under ``cache_dir``/var/cluster. ``icu services env --cluster`` prints the
    ICU_* variables that point the clients at it."""

    kafka_ports: list[int] = [19092, 19093, 19094]  # broker i's controller: port + 100
    cassandra_hosts: list[str] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    # One port for all nodes (each node has its own address); the Spark Cassandra
    # Connector and the Python driver both assume that.
    cassandra_port: int = 19042
    cassandra_storage_port: int = 17000
    # JMX (nodetool: snapshots for `icu db backup`) binds to 127.0.0.1 only, so each
    # node has its own port: node i listens on jmx_port + i - 1.
    cassandra_jmx_port: int = 17199
    replication_factor: int = Field(default=3, ge=1)
    min_insync_replicas: int = Field(default=2, ge=1)
    kafka_heap_mb: int = Field(default=384, ge=128)
    cassandra_heap_mb: int = Field(default=768, ge=512)

    @model_validator(mode="after")
    def _enough_nodes(self) -> ClusterSettings:
        nodes = min(len(self.kafka_ports), len(self.cassandra_hosts))
        if not self.min_insync_replicas <= self.replication_factor <= nodes:
            raise ValueError(f"need min_insync_replicas ({self.min_insync_replicas}) <= "
                             f"replication_factor ({self.replication_factor}) <= nodes "
                             f"({nodes})")
        return self


class AlarmLimits(BaseModel):
    """Physiological alarm limits of the central station, each with its rule in
    ``backend.alerting.rules.LIMITS`` (which also fixes its priority). A value beyond a
    limit, as the monitor displays it, raises that rule; ``None`` switches the rule off.
    Defaults: the limits of an adult ICU; wards differ (``AlertingSettings.ward_limits``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    spo2_below: float | None = 85.0  # %: desaturation
    hr_below: float | None = 40.0  # /min: extreme bradycardia
    hr_above: float | None = 150.0  # /min: extreme tachycardia
    map_below: float | None = 65.0  # mmHg: hypotension (the usual MAP target in shock)

    @model_validator(mode="after")
    def _plausible(self) -> AlarmLimits:
        for name, value in self:
            if value is None:
                continue
            spec = VITALS[Vital(name.split("_", 1)[0])]
            if not spec.plausible_min < value <= spec.plausible_max:
                raise ValueError(f"{name} {value:g} is outside what a monitor measures "
                                 f"({spec.plausible_min:g}-{spec.plausible_max:g} "
                                 f"{spec.display_unit})")
        if self.hr_below is not None and self.hr_above is not None \
                and self.hr_below >= self.hr_above:
            raise ValueError(f"hr_below {self.hr_below:g} must be below hr_above "
                             f"{self.hr_above:g}")
        return self


class AlertingSettings(BaseModel):
    """Alarm behaviour. The rules and their priorities are ``backend.alerting.rules``;
    NEWS2 and qSOFA thresholds are the published tables in ``backend.scores``."""

    # A condition must hold for this long (device time) before it raises an alarm, so a
    # one-sample artefact never pages anybody (IEC 60601-1-8 "alarm condition delay").
    persistence_seconds: float = 10.0
    # A condition must stay clear this long before the alarm clears by itself.
    clear_seconds: float = 30.0
    # No reading from a bed for this long (processing time) raises a technical alarm:
    # the floor, right for a monitor that sends every second. A source that reports less
    # often (a gateway sending numerics once a minute) is stale only after it has missed
    # ``stale_missed_intervals`` of its own reporting intervals, at most
    # ``stale_max_seconds`` (``backend.alerting.rules.stale_timeout_ms``).
    stale_after_seconds: float = 30.0
    stale_missed_intervals: float = Field(default=3.0, ge=1.0)
    # 300 s: the carry-forward validity of the continuous parameters (HR, SpO2, RR), after
    # which the bed has no current value anyway.
    stale_max_seconds: float = 300.0
    # Physiological limits, and the wards whose limits differ from them (only the
    # differing ones), e.g. ``ICU_ALERTING__WARD_LIMITS='{"CCU": {"hr_below": 35}}'``.
    limits: AlarmLimits = AlarmLimits()
    ward_limits: dict[str, dict[str, float | None]] = {}
    # Reference ruleset of the system we replace (HR above, SpO2 below): no longer an
    # alarm; the sepsis model's evaluation compares against it (backend.risk.baselines).
    reference_hr_above: float = 120.0
    reference_spo2_below: float = 90.0
    # Readings whose device timestamp is further than this from the receive time are
    # rejected as clock errors.
    max_future_skew_seconds: float = 120.0
    max_past_age_seconds: float = 7 * 24 * 3600.0
    # Duplicates (backend.alerting.evaluation): a reading whose seq is not above its
    # device's and whose ts is at most this much (device time) before the device's
    # newest is a resent or replayed message. A counter and clock that both went back by
    # less than this are mistaken for a replay for at most this long; older readings are
    # accepted as late ones (stored idempotently, never driving an alarm).
    duplicate_window_seconds: float = Field(default=10.0, ge=0)
    # A device's memory lasts this long after its last accepted reading (wall time).
    device_memory_seconds: float = Field(default=60.0, gt=0)
    # At most this many devices are remembered per patient (the most recent ones).
    max_devices_per_patient: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _ward_limits_are_valid(self) -> AlertingSettings:
        for ward in self.ward_limits:
            try:
                self.limits_for(ward)
            except ValidationError as exc:
                raise ValueError(f"ward_limits[{ward!r}]: {exc}") from None
        return self

    def limits_for(self, ward: str | None) -> AlarmLimits:
        """The physiological limits of ``ward`` (the defaults where it sets none)."""
        overrides = self.ward_limits.get(ward) if ward is not None else None
        if not overrides:
            return self.limits
        return AlarmLimits.model_validate({**self.limits.model_dump(), **overrides})

    def for_ward(self, ward: str | None) -> AlertingSettings:
        """These settings as one ward's: ``limits`` are the ward's, ``ward_limits`` empty.
        ``self`` itself when the ward has no limits of its own."""
        if ward is None or not self.ward_limits.get(ward):
            return self
        return self.model_copy(update={"limits": self.limits_for(ward), "ward_limits": {}})


class RiskSettings(BaseModel):
    """The live sepsis-risk scorer (streaming/risk_job.py, backend/risk/live.py)."""

    # Consecutive scored hours at or above the model's threshold before a risk alert is
    # raised (one high hour is often a transient), and below it before it clears.
    persistence_hours: int = Field(default=2, ge=1)
    clear_hours: int = Field(default=2, ge=1)
    # How often a scorer re-reads the registry's active pointer, so `icu model activate`
    # or `icu model rollback` reaches a running stream job without a restart.
    model_recheck_seconds: float = 30.0
    # Hourly rows kept per patient (the features look back at most 72 h; the patient's
    # own mean uses the whole stay, capped here). 336 h = 14 days, the longest set-A stay.
    max_history_hours: int = Field(default=336, ge=72)
    # A patient silent this long (processing time) loses their scoring state.
    state_ttl_hours: float = 48.0
    # The risk query's micro-batch interval. Scores are hourly, so a 30 s delay costs
    # nothing clinically, while back-to-back batches (one Python call per patient each)
    # took the 2 cores the vitals query needs (docs/benchmarks.md, pipeline 2026-12-03).
    trigger_seconds: float = Field(default=30.0, gt=0)


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 2525
    starttls: bool = False
    tls: bool = False
    # The CA that signed the relay's certificate (PEM); the system's trust store if unset.
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "icu-monitor@localhost"
    timeout_seconds: float = 10.0
    # User e-mail addresses (backend.users.normalize_email) are checked with
    # email_validator, which refuses special-use and dotless domains ("localhost",
    # "*.local", "*.test"). The relay above may deliver some of those (an intranet's
    # "hospital.local", the demo's mail catcher at "localhost"): list them here (a domain
    # covers its subdomains). Production with public domains only: set it to [].
    local_domains: list[str] = ["localhost"]


class AlertManagerSettings(BaseModel):
    """The alert lifecycle and the alert manager (backend/alerting/): escalation, silences,
    auto-resolve, alert e-mail."""

    # Escalation per priority: minutes after the alert was raised, still unacknowledged,
    # at which it escalates one more step along ``chain`` (cumulative, from the raise):
    # high [2, 5] = charge nurse after 2 min, physician after 5 min. Empty: no escalation.
    escalation_minutes: dict[str, list[float]] = {
        "high": [2.0, 5.0], "medium": [5.0, 15.0], "low": [],
    }
    # Who is notified at each level: level 0 (the raise) the nurses, then up the chain.
    chain: list[str] = ["nurse", "charge_nurse", "physician"]
    # E-mail addresses per role (ward distribution lists).
    recipients: dict[str, list[str]] = {
        "nurse": ["icu-nurses@localhost"],
        "charge_nurse": ["icu-charge-nurse@localhost"],
        "physician": ["icu-physicians@localhost"],
    }
    # Priorities whose raise is e-mailed to level 0 (escalations are always e-mailed).
    email_on_raise: list[str] = ["high"]
    # A silence lasts at most this long (the user chooses up to it, with a reason).
    silence_max_minutes: float = 30.0
    # An acknowledged / escalated / silenced alert whose condition has been clear this
    # long is resolved by the system ("auto_resolved").
    auto_resolve_after_seconds: float = 300.0
    tick_seconds: float = 1.0
    consumer_group: str = "icu-alert-manager"
    # The signed acknowledgement link in e-mails expires after this many minutes.
    ack_link_max_age_minutes: float = 60.0
    # Patient names in e-mail: off (ward, bed, alert, values, time only).
    email_include_name: bool = False
    # Failed sends are retried with exponential backoff: base * 2**(attempt-1), capped.
    email_retry_base_seconds: float = 5.0
    email_retry_max_seconds: float = 300.0
    # A claimed message not marked sent after this long is retried (its sender died).
    email_claim_seconds: float = 60.0
    # Individual recipients (users with an e-mail covering the alert's ward) are read
    # from the users table at most this often: one small scan per interval instead of
    # one per alert; an admin's change reaches the manager within this time.
    user_cache_seconds: float = Field(default=30.0, ge=0)


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8050
    # How often a ward screen asks for its changed tiles. Dash's WebSocket push needs a
    # FastAPI or Quart server, and flask-login needs Flask, so screens poll; 500 ms keeps
    # a reading's way to the screen under 1 s at the 99th percentile (docs/benchmarks.md,
    # "Ward screens: reading to pixel").
    ward_update_ms: int = Field(default=500, ge=100, le=10_000)
    # The address users reach the app at (links in e-mail). Outside demo mode it must be
    # https and cookies must be Secure, or the app refuses to start (webapp/app.py).
    public_url: str = "http://127.0.0.1:8050"
    # On (re)connect a ward screen's live state replays this much of vitals.validated on
    # top of Cassandra's latest state, which trails Kafka by the stream job's persist
    # interval (SparkSettings.persist_trigger_seconds) plus a batch.
    live_replay_seconds: float = Field(default=30.0, ge=0)
    secure_cookies: bool = False  # True behind TLS in production
    # Plain http outside demo mode, for a developer's machine and the tests: refused
    # unless host and public_url are loopback addresses (webapp.app.check_transport).
    allow_insecure_http: bool = False
    # Strict-Transport-Security max-age on every response once public_url is https.
    hsts_seconds: int = Field(default=365 * 24 * 3600, ge=0)
    # Sessions end after this long without a user action (idle) and, whatever the
    # activity, this long after sign-in (absolute); per role where listed, else the
    # default. A ward display's screen keeps its session alive by showing the ward.
    idle_timeout_minutes: int = Field(default=15, ge=1)
    idle_timeout_minutes_by_role: dict[str, int] = {"admin": 10, "ward_display": 30}
    session_max_hours: float = Field(default=12.0, gt=0)
    session_max_hours_by_role: dict[str, float] = {"ward_display": 7 * 24.0}
    # Sign-in throttling (backend/users/throttle.py): per account, per client address and per
    # known device, each a fixed window of lockout_minutes.
    max_failed_logins: int = 5
    lockout_minutes: int = 15
    max_failed_logins_per_address: int = 20
    # A browser that signed in to an account before carries a signed device cookie for
    # it; its sign-ins are counted per device, so somebody else's failures elsewhere
    # cannot keep that user out. Cookie lifetime in days.
    known_device_days: int = Field(default=90, ge=1)
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host
    # (werkzeug ProxyFix); 0 = none (the socket's peer is the client). Set it to exactly
    # the number of proxies: a larger value lets clients forge their address.
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    # Largest request body accepted (Dash callbacks, forms); larger gets 413.
    max_request_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024)

    def idle_minutes(self, role: str | None) -> int:
        return self.idle_timeout_minutes_by_role.get(str(role), self.idle_timeout_minutes)

    def max_hours(self, role: str | None) -> float:
        return self.session_max_hours_by_role.get(str(role), self.session_max_hours)


class PrivacySettings(BaseModel):
    """Pseudonymised research export (backend/privacy/pseudonymise.py)."""

    # Key of the keyed hash that replaces patient and device ids, and of each patient's
    # date shift. Secret: whoever has it can link pseudonyms back to patient ids. Empty:
    # derived from ICU_SECRET_KEY (a separate key lets the web key rotate on its own).
    pseudonym_key: SecretStr = Field(default=SecretStr(""))
    # Dates of one patient move by the same whole number of days, at most this many.
    max_date_shift_days: int = Field(default=365, ge=1, le=3650)


class PopulationSettings(BaseModel):
    """Population analytics: catchment, disclosure control, surge detection."""

    # Counties the hospital admits from, "FIPS=weight,..." as
    # backend.population.catchment.Catchment parses it ("" = the default Boston
    # catchment). The map zooms to these counties.
    catchment: str = ""
    # Counts from 1 to suppress_below - 1 are shown as "<N" (and rates built on them
    # hidden), so nobody can be singled out. 11 follows the CMS cell-size rule.
    suppress_below: int = Field(default=11, ge=1)
    # Rules counted as "NEWS2 high-risk episodes" and as "sepsis-risk alerts".
    news2_high_rules: list[str] = ["news2_high"]
    sepsis_rules: list[str] = ["qsofa_positive", "sepsis_risk"]
    # Beds per ward for occupancy; a ward not listed counts the distinct beds it used.
    ward_beds: dict[str, int] = {}
    # A day is recomputed until it has been over for this long (late acknowledgements,
    # back-dated discharges), then it is final and incremental runs skip it.
    final_after_hours: float = 24.0
    # Surge detection (backend.population.surge): one-sided CUSUM on daily counts against
    # the mean and SD of the preceding baseline_days (excluding the guard_days before).
    surge_baseline_days: int = Field(default=28, ge=7)
    surge_guard_days: int = Field(default=0, ge=0)
    surge_k: float = 0.5  # allowance, in baseline SDs
    surge_h: float = 5.0  # decision threshold, in baseline SDs
    surge_min_sd: float = 1.0  # SD floor: Poisson-like counts near 0 have SD ~ 1
    # `icu population aggregate --every` default period (scheduled runs).
    schedule_minutes: float = 60.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ICU_", env_nested_delimiter="__", extra="ignore"
    )

    demo_mode: bool = False
    # Outside demo mode the stream job, web app and alert manager refuse Kafka or
    # Cassandra without credentials and TLS (backend.clients.require_secure_services).
    # This lets a developer's machine and the tests use the unauthenticated local servers;
    # it is refused unless every server is on loopback.
    allow_insecure_services: bool = False
    # The hospital's time zone, an IANA name ("Europe/Berlin", "America/New_York"): every
    # page, e-mail and export shows local time in it, with the zone; storage stays UTC
    # (backend/localtime.py). The default matches the default catchment (Boston).
    timezone: str = "America/New_York"
    # Signs sessions and e-mail links. Must come from the environment in production;
    # the run script generates a random one per installation.
    secret_key: SecretStr = Field(default=SecretStr(""))
    data_dir: Path = REPO_ROOT.parent / "shared" / "data"
    cache_dir: Path = Path.home() / ".cache" / "icu-monitor"

    kafka: KafkaSettings = KafkaSettings()
    cassandra: CassandraSettings = CassandraSettings()
    spark: SparkSettings = SparkSettings()
    cluster: ClusterSettings = ClusterSettings()
    alerting: AlertingSettings = AlertingSettings()
    risk: RiskSettings = RiskSettings()
    smtp: SmtpSettings = SmtpSettings()
    web: WebSettings = WebSettings()
    alert_manager: AlertManagerSettings = AlertManagerSettings()
    population: PopulationSettings = PopulationSettings()
    privacy: PrivacySettings = PrivacySettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)

    def to_env(self) -> dict[str, str]:
        """These settings as ``ICU_*`` environment variables, for child processes."""
        env: dict[str, str] = {}

        def put(prefix: str, data: dict) -> None:
            for key, value in data.items():
                name = f"{prefix}{key.upper()}"
                # Nested variables only carry lowercase identifier keys (names are
                # case-insensitive): a dict keyed by e.g. ward names goes as JSON.
                if isinstance(value, dict) and all(
                        isinstance(k, str) and k.isidentifier() and k == k.lower()
                        for k in value):
                    put(f"{name}__", value)
                elif isinstance(value, dict):
                    env[name] = json.dumps(value)
                elif value is None:
                    continue
                elif isinstance(value, (list, bool)):
                    env[name] = json.dumps(value)
                else:
                    env[name] = str(value)

        put("ICU_", self.model_dump(mode="json", context={"reveal": True}))
        for name, secret in (("ICU_SECRET_KEY", self.secret_key),
                             ("ICU_SMTP__PASSWORD", self.smtp.password),
                             ("ICU_CASSANDRA__PASSWORD", self.cassandra.password),
                             ("ICU_CASSANDRA__TLS__KEY_PASSWORD", self.cassandra.tls.key_password),
                             ("ICU_KAFKA__PASSWORD", self.kafka.password),
                             ("ICU_KAFKA__TLS__KEY_PASSWORD", self.kafka.tls.key_password),
                             ("ICU_PRIVACY__PSEUDONYM_KEY", self.privacy.pseudonym_key)):
            if secret is not None:
                env[name] = secret.get_secret_value()
        return env


def check_timezone(name: str) -> str:
    """``name`` if it is an ``Area/Location`` zone of the IANA database (the system's or
    the ``tzdata`` package pandas brings) or ``UTC``, else ``ValueError`` naming a few
    close matches. Legacy names such as ``EST`` (no daylight saving: wrong all summer) or
    the system's ``localtime`` are refused."""
    value = (name or "").strip()
    if (value == "UTC" or "/" in value) and value in available_timezones():
        try:
            ZoneInfo(value)
            return value
        except (ZoneInfoNotFoundError, ValueError):
            pass
    last = value.lower().rsplit("/", 1)[-1].replace(" ", "_")
    hint = sorted(z for z in available_timezones()
                  if "/" in z and value and z.lower().rsplit("/", 1)[-1] == last)[:5]
    raise ValueError(f"{name!r} is not an IANA time zone name (like 'Europe/Berlin' or "
                     f"'America/New_York')" + (f"; did you mean {', '.join(hint)}?" if hint
                                                else ""))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings(...)`` instead."""
    return Settings()
