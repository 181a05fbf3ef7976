"""The dispatcher against a real broker and database: messages to units, terminals reporting, restarts."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from detectors.rules import RuleEngine
from dispatch.service import Dispatcher
from ingest.mqtt import BrokerAddress, Publisher
from tests.support import TopicListener, canonical_payload, events_from, ingest, wait_for
from watchpost import store


@pytest.fixture
def fast(config):
    """Tier deadlines of 2, 4 and 6 s, and unit topics of this test's own."""
    tag = uuid.uuid4().hex[:6]
    dispatch = config.dispatch.model_copy(
        update={
            "tier_deadlines_s": [2, 4, 6],
            "escalation_grace_s": 1,
            "tick_s": 0.05,
            "unit_topic": f"u{tag}/units/{{unit}}/assignments",
            "unit_position_topic": f"u{tag}/units/{{unit}}/position",
            "unit_status_topic": f"u{tag}/units/{{unit}}/status",
        }
    )
    return config.model_copy(update={"dispatch": dispatch})


def _dispatcher(cfg, database_url, broker_url, name="d-test"):
    return Dispatcher(config=cfg, database_url=database_url, broker=BrokerAddress.parse(broker_url), name=name).start()


def _raise(db, cfg, device="lotus-gate-s", kind="access", code="forced_open"):
    (raised,) = ingest(db, RuleEngine(cfg), events_from(cfg, device, canonical_payload(kind, code)))
    store.wake_dispatcher(db)
    return raised.alert_id


def test_assignments_reach_each_units_own_topic_after_commit(db, fast, database_url, broker_url):
    """A new alert is dispatched within moments and each unit gets its assignment on its own topic, once."""
    topic = fast.dispatch.unit_topic
    with TopicListener(broker_url, [topic.replace("{unit}", "+")], client_id=f"term-{uuid.uuid4().hex[:6]}") as term:
        d = _dispatcher(fast, database_url, broker_url)
        try:
            assert d.leading.wait(10)
            alert_id = _raise(db, fast)
            got = wait_for(lambda: len(term.bodies()) >= 2, timeout=10)
            assert got, term.messages
            by_unit = {b["assignment"]["unit_id"]: b for b in term.bodies()}
            assert set(by_unit) == {"lotus-post-n", "lotus-ebike-1"}
            post = by_unit["lotus-post-n"]
            assert post["type"] == "assignment" and post["assignment"]["alert_id"] == alert_id
            assert post["assignment"]["tier"] == 1 and post["assignment"]["deadline_at"]
            assert [t for t, _, _ in term.messages if "lotus-post-n" in t] == [topic.replace("{unit}", "lotus-post-n")]
            assert wait_for(lambda: not store.outbox_unsent(db), timeout=5)
        finally:
            d.stop()
    assert len(term.bodies()) == 2  # nothing sent twice


def test_a_terminal_position_over_mqtt_puts_the_unit_on_scene_and_bad_messages_are_dead_lettered(
    db, fast, database_url, broker_url
):
    """The e-bike publishes a position beside the gate: on scene by GPS; garbage and unknown units are dead letters."""
    d = _dispatcher(fast, database_url, broker_url)
    try:
        assert d.leading.wait(10)
        alert_id = _raise(db, fast)
        assert wait_for(lambda: store.get_alert_row(db, alert_id)["state"] == "dispatched", timeout=10)
        gate = fast.device_index["lotus-gate-s"].position
        position = fast.dispatch.unit_position_topic
        with Publisher(BrokerAddress.parse(broker_url)) as pub:
            pub.publish(position.replace("{unit}", "lotus-ebike-1"), b"{not json")
            pub.publish(position.replace("{unit}", "no-such-unit"), json.dumps({"lat": 1, "lon": 2}).encode())
            pub.publish(
                position.replace("{unit}", "lotus-ebike-1"),
                json.dumps({"lat": gate.lat + 0.0001, "lon": gate.lon, "time": datetime.now(UTC).isoformat()}).encode(),
            )
        assert wait_for(lambda: store.get_alert_row(db, alert_id)["state"] == "on_scene", timeout=10)
        (ebike,) = [a for a in store.alert_snapshot(db, alert_id)["assignments"] if a["unit_id"] == "lotus-ebike-1"]
        assert ebike["on_scene_by"] == "gps"
        letters = wait_for(
            lambda: store.dead_letter_counts(db) if sum(store.dead_letter_counts(db).values()) >= 2 else None, timeout=5
        )
        assert letters == {"schema": 1, "unknown_device": 1}
    finally:
        d.stop()


def test_a_restarted_dispatcher_resumes_the_clocks_and_escalates_a_missed_deadline(db, fast, database_url, broker_url):
    """Stopped after dispatching, a new dispatcher finds tier 1 past its deadline and escalates it."""
    first = _dispatcher(fast, database_url, broker_url, name="d-first")
    assert first.leading.wait(10)
    alert_id = _raise(db, fast)
    assert wait_for(lambda: len(store.alert_snapshot(db, alert_id)["assignments"]) == 2, timeout=10)
    first.stop()
    tiers = store.tiers_of(db, alert_id=alert_id)
    assert all(t["state"] == "pending" for t in tiers)
    wait_for(lambda: datetime.now(UTC) > tiers[0]["deadline_at"], timeout=5)
    second = _dispatcher(fast, database_url, broker_url, name="d-second")
    try:
        assert wait_for(lambda: store.tiers_of(db, alert_id=alert_id)[0]["state"] == "missed", timeout=10)
        assert wait_for(lambda: store.alert_snapshot(db, alert_id)["escalations"], timeout=10)
        snap = store.alert_snapshot(db, alert_id)
        assert snap["assignments"][-1]["reason"] == "escalation"
        assert snap["assignments"][-1]["unit_id"] == "lotus-car-1"
    finally:
        second.stop()


def test_a_standby_dispatcher_takes_over_when_the_leader_stops(db, fast, database_url, broker_url):
    """Two dispatchers: one leads, the other waits; when the leader stops the other leads and dispatches."""
    a = _dispatcher(fast, database_url, broker_url, name="d-a")
    assert a.leading.wait(10)
    b = _dispatcher(fast, database_url, broker_url, name="d-b")
    try:
        assert wait_for(lambda: b.health().database_ok, timeout=5) and not b.health().leader
        a.stop()
        assert b.leading.wait(10)
        alert_id = _raise(db, fast)
        assert wait_for(lambda: store.get_alert_row(db, alert_id)["state"] == "dispatched", timeout=10)
    finally:
        b.stop()
        a.stop()


def test_the_leading_dispatcher_runs_the_clock_driven_rules_beside_its_passes(db, fast, database_url, broker_url):
    """With the sentinel as its periodic task, a dispatcher raises the offline alert of a silent device and
    dispatches it like any other."""
    from datetime import timedelta

    from detectors.sentinel import Sentinel

    sentinel = Sentinel(fast)
    db.execute("INSERT INTO device_seen VALUES ('lotus-sos-1', %s)", (datetime.now(UTC) - timedelta(hours=2),))
    d = Dispatcher(
        config=fast,
        database_url=database_url,
        broker=BrokerAddress.parse(broker_url),
        name="d-rules",
        periodic=[lambda conn, now: sentinel.check(conn, now=now)],
    ).start()
    try:
        alerts = wait_for(lambda: store.list_alerts(db, type_="device_offline"), timeout=10)
        assert alerts and alerts[0]["device_id"] == "lotus-sos-1"
        assert wait_for(lambda: store.get_alert_row(db, alerts[0]["alert_id"])["state"] == "dispatched", timeout=10)
    finally:
        d.stop()
