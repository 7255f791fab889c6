"""WardState (display rules, alarms, versions, bounded trends) and LiveFollower's
sync/recovery logic against fake Kafka and Cassandra clients."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.messages import AlertEvent, Priority, ValidatedReading
from backend.settings import Settings
from backend.storage.alerts import ActiveAlert, AlertStore
from backend.storage.census import Bed
from backend.storage.readings import latest_reading
from backend.vitals import Vital
from tests.cassandra_fakes import TableSession
from webapp.live.follower import LiveFollower
from webapp.live.state import WardState, alarm_priority, bed_sort_key

T0 = 1_800_000_000.0  # epoch seconds


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def reading(bed: str = "1", t: float = T0, *, ward: str = "ICU-A", patient: str | None = None,
            carried: dict | None = None, off: list | None = None, news2: int | None = 1,
            complete: bool = True, processed: float | None = None) -> ValidatedReading:
    carried = {Vital.HR: 80.0, Vital.SPO2: 97.0, Vital.RR: 16.0} if carried is None else carried
    return ValidatedReading(
        patient_id=patient or f"p{bed}", ward=ward, bed=bed, device_id=f"d{bed}", seq=int(t),
        ts=int(t * 1000), vitals=dict(carried), carried=carried, sensors_off=off or [],
        news2=news2, news2_band="low", news2_complete=complete,
        processed_ts=int((processed if processed is not None else t) * 1000),
    )


def alert(alert_id: str, priority: Priority, *, bed: str = "1", event: str = "raised",
          t: float = T0, ward: str = "ICU-A", patient: str | None = None) -> AlertEvent:
    ms = int(t * 1000)
    return AlertEvent(
        alert_id=alert_id, event=event, patient_id=patient or f"p{bed}", ward=ward, bed=bed,
        rule=alert_id.split(":")[0], priority=priority, message=f"{alert_id} msg", values={},
        onset_ts=ms, reading_ts=ms, detected_ts=ms,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> WardState:
    return WardState(stale_after_seconds=30, trend_window_seconds=600, trend_step_seconds=5,
                     clock=clock)


# ------------------------------------------------------------------ display rules


def test_fresh_reading_shows_carried_values(state: WardState) -> None:
    state.apply_reading(reading())
    s = state.bed_snapshot("ICU-A", "1")
    assert not s.stale
    assert s.param(Vital.HR).kind == "value" and s.param(Vital.HR).value == 80.0
    assert s.news2 == 1


def test_bed_goes_stale_after_the_limit_and_shows_no_values(state: WardState,
                                                            clock: Clock) -> None:
    state.apply_reading(reading())
    clock.t = T0 + 30
    assert not state.bed_snapshot("ICU-A", "1").stale
    clock.t = T0 + 45.5
    s = state.bed_snapshot("ICU-A", "1")
    assert s.stale
    assert s.age_seconds == pytest.approx(45.5)
    assert dict(s.values) == {} and s.news2 is None and s.sensors_off == frozenset()
    assert all(s.param(v).kind == "stale" for v in Vital)


def test_stale_uses_processing_time_not_device_time(state: WardState, clock: Clock) -> None:
    # A monitor whose clock is 10 minutes behind, processed just now, is not stale.
    state.apply_reading(reading(t=T0 - 600, processed=T0))
    assert not state.bed_snapshot("ICU-A", "1").stale


def test_sensor_off_and_missing_parameters(state: WardState) -> None:
    state.apply_reading(reading(carried={Vital.HR: 72.0}, off=[Vital.SPO2]))
    s = state.bed_snapshot("ICU-A", "1")
    assert s.param(Vital.SPO2).kind == "off"
    assert s.param(Vital.TEMP).kind == "missing"
    assert s.param(Vital.HR).kind == "value"


def test_an_older_reading_never_overwrites_a_newer_one(state: WardState) -> None:
    state.apply_reading(reading(t=T0, carried={Vital.HR: 90.0}))
    assert not state.apply_reading(reading(t=T0 - 5, carried={Vital.HR: 60.0}, processed=T0))
    assert state.bed_snapshot("ICU-A", "1").param(Vital.HR).value == 90.0


def test_a_new_patient_in_the_bed_shows_nothing_of_the_previous_one(state: WardState) -> None:
    state.apply_reading(reading(patient="old", carried={Vital.HR: 90.0, Vital.TEMP: 38.0}))
    state.apply_alert(alert("hr:1", Priority.HIGH, patient="old"))
    state.apply_reading(reading(t=T0 + 1, patient="new", carried={Vital.HR: 70.0}))
    s = state.bed_snapshot("ICU-A", "1")
    assert s.patient_id == "new"
    assert s.param(Vital.TEMP).kind == "missing"
    assert s.alarms == ()
    assert all(p.hr != 90.0 for p in s.trend)


# ------------------------------------------------------------------ alarms


def test_alarms_are_ordered_highest_priority_first(state: WardState, clock: Clock) -> None:
    state.apply_reading(reading())
    state.apply_alert(alert("low:1", Priority.LOW, t=T0 - 3))
    state.apply_alert(alert("high:1", Priority.HIGH, t=T0 - 1))
    state.apply_alert(alert("med:1", Priority.MEDIUM, t=T0 - 2))
    state.apply_alert(alert("high:2", Priority.HIGH, t=T0))
    state.apply_lifecycle("high:2", "acknowledged", "nurse1", T0 + 1)
    ids = [a.alert_id for a in state.bed_snapshot("ICU-A", "1").alarms]
    # Unacknowledged before acknowledged within a priority.
    assert ids == ["high:1", "high:2", "med:1", "low:1"]


def test_raise_is_idempotent_and_clear_removes_an_unacknowledged_alarm(state: WardState) -> None:
    assert state.apply_alert(alert("a", Priority.HIGH))
    state.apply_lifecycle("a", "escalated", "system", T0)
    assert not state.apply_alert(alert("a", Priority.HIGH))  # replay keeps the status
    assert state.alarm("a").status == "escalated"
    state.apply_lifecycle("a", "raised", None, T0)
    assert state.apply_alert(alert("a", Priority.HIGH, event="cleared"))
    assert state.alarm("a") is None
    assert not state.apply_alert(alert("a", Priority.HIGH, event="cleared"))


def test_an_acknowledged_alarm_outlives_its_condition_until_resolved(state: WardState) -> None:
    state.apply_alert(alert("a", Priority.MEDIUM))
    assert state.apply_lifecycle("a", "acknowledged", "nurse1", datetime.fromtimestamp(T0, UTC))
    state.apply_alert(alert("a", Priority.MEDIUM, event="cleared"))
    a = state.alarm("a")
    assert a is not None and a.condition_ended and a.status_by == "nurse1"
    assert a.status_ts == int(T0 * 1000)
    assert state.apply_lifecycle("a", "resolved", "nurse1", T0)
    assert state.alarm("a") is None
    assert not state.apply_lifecycle("unknown", "acknowledged", "x", T0)


# ------------------------------------------------------------------ versions


def test_versions_grow_on_every_change_and_only_then(state: WardState, clock: Clock) -> None:
    state.apply_reading(reading())
    v1 = state.bed_snapshot("ICU-A", "1").version
    w1 = state.ward_version("ICU-A")
    assert state.bed_snapshot("ICU-A", "1").version == v1  # reading is no change
    state.apply_reading(reading(t=T0 + 1))
    v2 = state.bed_snapshot("ICU-A", "1").version
    assert v2 > v1 and state.ward_version("ICU-A") > w1
    state.apply_alert(alert("a", Priority.LOW))
    v3 = state.bed_snapshot("ICU-A", "1").version
    assert v3 > v2
    state.apply_reading(reading("2"))  # another bed does not touch bed 1
    assert state.bed_snapshot("ICU-A", "1").version == v3
    clock.t = T0 + 60  # going stale is a change
    v4 = state.bed_snapshot("ICU-A", "1").version
    assert v4 > v3
    assert state.bed_snapshot("ICU-A", "1").version == v4


# ------------------------------------------------------------------ trend


def test_trend_keeps_one_point_per_step_and_ten_minutes_at_most(state: WardState,
                                                                 clock: Clock) -> None:
    for i in range(3600):  # one hour at 1 Hz
        clock.t = T0 + i
        state.apply_reading(reading(t=T0 + i, carried={Vital.HR: 60.0 + i % 7,
                                                        Vital.SPO2: 95.0}))
    trend = state.bed_snapshot("ICU-A", "1").trend
    assert len(trend) <= 600 / 5 + 1
    assert trend[-1].ts == int((T0 + 3599) * 1000)  # the newest point is the newest value
    assert trend[-1].ts - trend[0].ts <= 600_000
    assert all(b.ts - a.ts >= 1000 for a, b in itertools.pairwise(trend))


def test_trend_has_gaps_where_a_sensor_was_off(state: WardState) -> None:
    state.apply_reading(reading(t=T0, carried={Vital.HR: 70.0}, off=[Vital.SPO2]))
    p = state.bed_snapshot("ICU-A", "1").trend[-1]
    assert p.hr == 70.0 and p.spo2 is None


# ------------------------------------------------------------------ fill from Cassandra


def bed(name: str, patient: str, label: str = "", scale: int = 1) -> Bed:
    return Bed("ICU-A", name, patient, label, scale, None)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC).replace(tzinfo=None)  # the driver's naive UTC


def test_load_ward_follows_the_census(state: WardState) -> None:
    state.load_ward(
        "ICU-A",
        beds=[bed("2", "p2", "Birch"), bed("10", "p10", "Juniper")],
        latest=[latest_reading(row) for row in (
            {"ward": "ICU-A", "bed": "2", "patient_id": "p2", "ts": _dt(T0), "hr": 88.0,
             "spo2": None, "sensors_off": {"spo2"}, "news2": 3, "news2_band": "low",
             "news2_complete": False, "qsofa": 0, "processed_ts": _dt(T0)},
            # the previous occupant of bed 10: must not show
            {"ward": "ICU-A", "bed": "10", "patient_id": "gone", "ts": _dt(T0), "hr": 140.0,
             "processed_ts": _dt(T0)},
        )],
        alerts=[ActiveAlert("ICU-A", "x", "p2", "2", "hr", "medium", "HR",
                            datetime.fromtimestamp(T0, UTC), "acknowledged")],
    )
    beds = state.ward_snapshot("ICU-A")
    assert [b.bed for b in beds] == ["2", "10"]  # natural order
    b2, b10 = beds
    assert b2.label == "Birch" and b2.param(Vital.HR).value == 88.0
    assert b2.param(Vital.SPO2).kind == "off" and not b2.news2_complete
    assert b2.alarms[0].status == "acknowledged"
    assert b10.no_data and b10.stale and b10.param(Vital.HR).kind == "stale"


def test_a_filled_bed_shows_what_the_live_reading_showed(clock: Clock) -> None:
    """The fill from Cassandra and the live stream take one path: the latest_by_ward row
    of a reading puts the bed in the state that reading put it in live."""
    r = reading(carried={Vital.HR: 91.0, Vital.RR: 22.0}, off=[Vital.SPO2], news2=4)
    live, filled = WardState(clock=clock), WardState(clock=clock)
    live.apply_reading(r)
    off = {s.value for s in r.sensors_off} or None
    row = {"ward": r.ward, "bed": r.bed, "patient_id": r.patient_id, "ts": _dt(r.ts / 1000),
           **{v.value: r.carried.get(v) for v in Vital}, "sensors_off": off,
           "news2": r.news2, "news2_band": r.news2_band, "news2_complete": r.news2_complete,
           "qsofa": r.qsofa, "processed_ts": _dt(r.processed_ts / 1000)}
    filled.load_ward(r.ward, latest=[latest_reading(row)])
    a, b = live.bed_snapshot(r.ward, r.bed), filled.bed_snapshot(r.ward, r.bed)
    assert a is not None and b is not None
    for vital in Vital:
        assert a.param(vital) == b.param(vital), vital
    assert (a.values, a.sensors_off, a.news2, a.news2_band, a.news2_complete, a.stale,
            a.last_ts, a.last_processed_ts, a.trend) == (
        b.values, b.sensors_off, b.news2, b.news2_band, b.news2_complete, b.stale,
        b.last_ts, b.last_processed_ts, b.trend)
    # the same reading again changes nothing (a refill redraws no tile)
    version = filled.ward_version(r.ward)
    filled.load_ward(r.ward, latest=[latest_reading(row)])
    assert filled.ward_version(r.ward) == version


def test_refill_replaces_the_alarms_of_the_ward(state: WardState) -> None:
    state.apply_reading(reading())
    state.apply_alert(alert("old", Priority.HIGH))
    state.load_ward("ICU-A", alerts=[ActiveAlert("ICU-A", "new", "p1", "1", "", "low", "",
                                                 datetime.fromtimestamp(T0, UTC), "raised")])
    assert [a.alert_id for a in state.bed_snapshot("ICU-A", "1").alarms] == ["new"]
    assert state.alarm("old") is None


MOVES = ("acknowledged", "silenced", "escalated", "resolved", "auto_resolved")


@st.composite
def alarm_histories(draw) -> list[tuple[AlertEvent, tuple[str, str, datetime] | None]]:
    """Raises on a few beds of one ward, each perhaps moved once since (by whom, when)."""
    out = []
    for n in range(draw(st.integers(1, 6))):
        bed_name = draw(st.sampled_from(["1", "2", "10"]))
        ms = int(T0 * 1000) - draw(st.integers(0, 3_600_000))
        values = draw(st.dictionaries(st.sampled_from(["hr", "spo2", "rr"]),
                                      st.floats(0, 300, width=32), max_size=3))
        e = AlertEvent(alert_id=f"a{n}", event="raised", patient_id=f"p{bed_name}",
                       ward="ICU-A", bed=bed_name, rule=draw(st.sampled_from(["hr", "spo2"])),
                       priority=draw(st.sampled_from(list(Priority))),
                       message=draw(st.text(max_size=10)), values=values, onset_ts=ms,
                       reading_ts=ms, detected_ts=ms)
        move = draw(st.none() | st.tuples(
            st.sampled_from(MOVES), st.sampled_from(["n.kim", "system"]),
            st.integers(1, 600_000).map(lambda d, ms=ms: datetime.fromtimestamp(
                (ms + d) / 1000, UTC))))
        out.append((e, move))
    return out


@settings(max_examples=100, deadline=None)
@given(alarm_histories())
def test_an_alarm_reaches_its_bed_the_same_way_live_and_from_a_refill(history) -> None:
    """The same raises and moves, followed live or read back from the alert tables (an
    in-memory session behind the real AlertStore), put the same alarms on the same beds;
    a refill of the live state changes nothing and keeps the values only events carry."""
    clock = Clock()
    live, filled = WardState(clock=clock), WardState(clock=clock)
    session = TableSession()
    store = AlertStore(session)
    for e, move in history:
        assert live.apply_alert(e)
        assert not live.apply_alert(e)  # a replay
        store.raise_alert(e)
        if move is not None:
            status, by, at = move
            live.apply_lifecycle(e.alert_id, status, by, at)
            # what the lifecycle's transaction and its index refresh leave in the tables
            session.put("alerts", {**session.tables["alerts"][(e.alert_id,)],
                                   "status": status, "status_by": by, "status_ts": at})
            store.write_indexes(store.get(e.alert_id))
    rows = store.active_for_ward("ICU-A")
    filled.load_ward("ICU-A", alerts=rows)

    def alarms(state: WardState) -> dict[str, tuple]:
        return {b.bed: b.alarms for b in state.ward_snapshot("ICU-A") if b.alarms}

    assert alarms(filled) == alarms(live)  # every field but the values (compare=False)
    assert all(not a.values for shown in alarms(filled).values() for a in shown)
    version = live.ward_version("ICU-A")
    live.load_ward("ICU-A", alerts=rows)
    assert live.ward_version("ICU-A") == version  # the refill brought nothing new
    sent = {e.alert_id: e.values for e, _ in history}
    for shown in alarms(live).values():
        assert all(dict(a.values) == sent[a.alert_id] for a in shown)


def test_a_refill_keeps_what_only_live_events_know(state: WardState) -> None:
    e = alert("a", Priority.MEDIUM)
    state.apply_alert(e.model_copy(update={"values": {"hr": 151.0}}))
    state.apply_lifecycle("a", "acknowledged", "nurse1", T0 + 1)
    state.apply_alert(alert("a", Priority.MEDIUM, event="cleared"))
    state.load_ward("ICU-A", alerts=[ActiveAlert(
        "ICU-A", "a", "p1", "1", "a", "medium", "a msg", datetime.fromtimestamp(T0, UTC),
        "acknowledged", status_by="nurse2", status_ts=datetime.fromtimestamp(T0 + 2, UTC))])
    a = state.alarm("a")
    assert (a.status_by, a.status_ts) == ("nurse2", int((T0 + 2) * 1000))  # the stored move
    assert a.condition_ended and dict(a.values) == {"hr": 151.0}


def test_an_unknown_priority_is_shown_as_high() -> None:
    assert alarm_priority("urgent") is Priority.HIGH
    assert alarm_priority("low") is Priority.LOW
    state = WardState()
    state.load_ward("ICU-A", alerts=[ActiveAlert("ICU-A", "x", "p1", "1", "r", "urgent", "",
                                                 datetime.fromtimestamp(T0, UTC), "raised")])
    assert state.alarm("x").priority is Priority.HIGH


def test_a_discharged_bed_leaves_once_it_stops_sending(state: WardState, clock: Clock) -> None:
    state.apply_reading(reading("5"))
    state.load_ward("ICU-A", beds=[bed("1", "p1")])
    assert [b.bed for b in state.ward_snapshot("ICU-A")] == ["1", "5"]  # still sending
    clock.t = T0 + 120
    state.load_ward("ICU-A", beds=[bed("1", "p1")])
    assert [b.bed for b in state.ward_snapshot("ICU-A")] == ["1"]


def test_delayed_since_is_the_earliest_open_outage(state: WardState) -> None:
    assert state.delayed_since is None
    state.mark_delayed("kafka", at=T0 + 5)
    state.mark_delayed("cassandra", at=T0)
    state.mark_delayed("kafka", at=T0 + 50)  # still the first time
    assert state.delayed_since == T0
    state.mark_recovered("cassandra")
    assert state.delayed_since == T0 + 5
    state.mark_recovered("kafka")
    assert state.delayed_since is None


def test_natural_bed_order() -> None:
    assert sorted(["10", "2", "B10", "B2", "1"], key=bed_sort_key) == ["1", "2", "10", "B2",
                                                                       "B10"]


def test_concurrent_writers_and_readers(state: WardState) -> None:
    errors: list[BaseException] = []

    def write(bed: str) -> None:
        try:
            for i in range(300):
                state.apply_reading(reading(bed, t=T0 + i))
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(300):
                for s in state.ward_snapshot("ICU-A"):
                    assert s.version > 0
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(str(b),)) for b in range(8)]
    threads += [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(state.ward_snapshot("ICU-A")) == 8


# ------------------------------------------------------------------ follower with fakes


class FakeConsumer:
    """Enough of KafkaConsumer: partitions, end offsets, assign/seek and poll."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.positions: dict = {}
        self.closed = False
        if broker.down:
            raise ConnectionError("no brokers")

    def partitions_for_topic(self, topic: str) -> set[int]:
        self._check()
        return {0}

    def end_offsets(self, tps, timeout_ms=None):
        self._check()
        return {tp: len(self.broker.log[tp.topic]) for tp in tps}

    def offsets_for_times(self, times, timeout_ms=None):
        """The fake log has no timestamps: as Kafka answers for a time after every
        message (start at the end)."""
        self._check()
        return dict.fromkeys(times)

    def assign(self, tps) -> None:
        self.positions = dict.fromkeys(tps, 0)

    def seek(self, tp, offset: int) -> None:
        self.positions[tp] = offset

    def poll(self, timeout_ms: int = 0):
        self._check()
        out = {}
        for tp, pos in self.positions.items():
            records = self.broker.log[tp.topic][pos:]
            if records:
                out[tp] = [SimpleNamespace(value=v, offset=pos + i)
                           for i, v in enumerate(records)]
                self.positions[tp] = pos + len(records)
        if not out:
            time.sleep(timeout_ms / 1000 / 10)
        return out

    def close(self, **_: object) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.broker.down:
            raise ConnectionError("broker went away")


class FakeBroker:
    def __init__(self, settings: Settings) -> None:
        self.down = False
        self.log = {settings.kafka.topic_validated: [], settings.kafka.topic_alerts: [],
                    settings.kafka.topic_raw: []}


class Prepared(str):
    """A prepared statement is its text here (it may carry a consistency level)."""

    consistency_level = None


class FakeSession:
    """Answers the census, latest_by_ward and active_alerts_by_ward queries."""

    def __init__(self, db: FakeDb) -> None:
        self.db = db

    def prepare(self, query: str) -> str:
        return Prepared(query)

    def execute(self, query, params=None, **_: object):
        if self.db.down:
            raise ConnectionError("cassandra unreachable")
        q = str(query)
        if "DISTINCT ward" in q:
            return [{"ward": w} for w in self.db.beds]
        if "FROM beds_by_ward" in q:
            return list(self.db.beds.get(params[0], []))
        if "FROM latest_by_ward" in q:
            return list(self.db.latest.get(params[0], []))
        if "FROM active_alerts_by_ward" in q:
            return list(self.db.alerts.get(params[0], []))
        return []


class FakeDb:
    def __init__(self) -> None:
        self.down = False
        self.beds = {"ICU-A": [{"ward": "ICU-A", "bed": "1", "patient_id": "p1",
                                "label": "Alder"}]}
        t = time.time() - 1
        self.latest = {"ICU-A": [{"ward": "ICU-A", "bed": "1", "patient_id": "p1", "ts": _dt(t),
                                  "hr": 77.0, "processed_ts": _dt(t)}]}
        self.alerts: dict = {}


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def fakes():
    settings = Settings()
    broker, db = FakeBroker(settings), FakeDb()
    state = WardState(stale_after_seconds=30)
    follower = LiveFollower(
        settings, state, poll_timeout_ms=20, probe_interval_seconds=0.05,
        census_refresh_seconds=0.2, backoff_initial_seconds=0.02, backoff_max_seconds=0.1,
        consumer_factory=lambda: FakeConsumer(broker), session_factory=lambda: FakeSession(db),
    )
    yield SimpleNamespace(settings=settings, broker=broker, db=db, state=state,
                          follower=follower)
    follower.stop(timeout=5)
    assert not follower.running


def test_follower_fills_then_follows_from_the_recorded_offsets(fakes) -> None:
    k = fakes.settings.kafka
    # Published before the start: covered by the fill, must not be replayed on top of it.
    fakes.broker.log[k.topic_alerts].append(alert("old", Priority.HIGH).model_dump_json())
    fakes.follower.start()
    assert fakes.follower.synced.wait(5)
    assert fakes.state.bed_snapshot("ICU-A", "1").label == "Alder"
    assert fakes.state.alarm("old") is None
    now = time.time()
    fakes.broker.log[k.topic_validated].append(
        reading(t=now, patient="p1", carried={Vital.HR: 101.0}).model_dump_json().encode())
    fakes.broker.log[k.topic_validated].append(b"{not json")
    assert wait_for(lambda: fakes.state.bed_snapshot("ICU-A", "1").param(Vital.HR).value
                    == 101.0)
    assert wait_for(lambda: fakes.follower.counts["bad"] == 1)
    assert fakes.state.delayed_since is None


def test_kafka_outage_marks_delayed_and_recovery_refills(fakes) -> None:
    fakes.follower.start()
    assert fakes.follower.synced.wait(5)
    fakes.broker.down = True
    assert wait_for(lambda: fakes.state.delayed_since is not None)
    assert fakes.state.delayed_sources == ("kafka",)
    # What happened meanwhile reaches Cassandra; the refill after reconnecting shows it.
    fakes.db.latest["ICU-A"][0].update(hr=66.0, ts=_dt(time.time()),
                                       processed_ts=_dt(time.time()))
    fakes.broker.down = False
    assert wait_for(lambda: fakes.state.delayed_since is None)
    assert fakes.follower.counts["syncs"] >= 2
    assert wait_for(lambda: fakes.state.bed_snapshot("ICU-A", "1").param(Vital.HR).value
                    == 66.0)
    assert fakes.follower.running


def test_cassandra_outage_keeps_kafka_flowing_and_refills_later(fakes) -> None:
    fakes.db.down = True
    fakes.follower.start()
    assert fakes.follower.synced.wait(5)
    assert wait_for(lambda: "cassandra" in fakes.state.delayed_sources)
    k = fakes.settings.kafka
    fakes.broker.log[k.topic_validated].append(
        reading(t=time.time(), carried={Vital.HR: 99.0}).model_dump_json().encode())
    assert wait_for(lambda: (s := fakes.state.bed_snapshot("ICU-A", "1")) is not None
                    and s.param(Vital.HR).value == 99.0)
    assert not fakes.follower.filled.is_set()
    fakes.db.down = False
    assert fakes.follower.filled.wait(5)
    assert wait_for(lambda: fakes.state.delayed_since is None)
    assert fakes.state.bed_snapshot("ICU-A", "1").label == "Alder"


def test_follower_marks_a_stalled_stream_and_ignores_its_own_replay(fakes,
                                                                   monkeypatch) -> None:
    """Raw grows, validated does not: "stream" is delayed from the start of following
    until a new validated reading arrives. The readings a reconnect replays are old news,
    not a sign that the stream flows again."""
    k = fakes.settings.kafka
    fakes.follower.settings = fakes.settings.model_copy(update={
        "alerting": fakes.settings.alerting.model_copy(update={"stale_after_seconds": 0.3})})
    fakes.broker.log[k.topic_validated].append(
        reading(t=time.time() - 1, patient="p1").model_dump_json().encode())
    monkeypatch.setattr(FakeConsumer, "offsets_for_times", lambda self, times, timeout_ms=None:
                        {tp: SimpleNamespace(offset=0) for tp in times})
    fakes.follower.start()
    assert fakes.follower.synced.wait(5)
    started = time.time()
    assert wait_for(lambda: fakes.follower.counts["readings"] == 1)  # the replay
    raw = fakes.broker.log[k.topic_raw]
    assert wait_for(lambda: raw.append(b"r") or fakes.state.delayed_sources == ("stream",))
    assert started - 1 < fakes.state.delayed_since <= started
    since = fakes.state.delayed_since
    # A reconnect replays the old reading again: still behind, since the same time.
    fakes.broker.down = True
    assert wait_for(lambda: "kafka" in fakes.state.delayed_sources)
    fakes.broker.down = False
    assert wait_for(lambda: fakes.follower.counts["readings"] == 2)
    assert wait_for(lambda: "kafka" not in fakes.state.delayed_sources)
    time.sleep(0.2)
    assert fakes.state.delayed_sources == ("stream",) and fakes.state.delayed_since == since
    # A new reading: the stream flows again.
    fakes.broker.log[k.topic_validated].append(
        reading(t=time.time(), patient="p1").model_dump_json().encode())
    assert wait_for(lambda: fakes.state.delayed_since is None)
    assert fakes.follower.counts["stalls"] == 1


def test_a_silent_ward_with_a_stopped_stream_is_not_delayed(fakes) -> None:
    fakes.follower.settings = fakes.settings.model_copy(update={
        "alerting": fakes.settings.alerting.model_copy(update={"stale_after_seconds": 0.1})})
    fakes.follower.start()
    assert fakes.follower.synced.wait(5)
    time.sleep(0.5)  # ten probes, twice the threshold: raw never grew
    assert fakes.state.delayed_since is None and fakes.follower.counts["stalls"] == 0


def test_follower_survives_an_unreachable_kafka_at_start(fakes) -> None:
    fakes.broker.down = True
    fakes.follower.start()
    assert wait_for(lambda: fakes.state.delayed_since is not None)
    assert fakes.follower.running and not fakes.follower.synced.is_set()
    fakes.broker.down = False
    assert fakes.follower.synced.wait(5)
    assert wait_for(lambda: fakes.state.delayed_since is None)
