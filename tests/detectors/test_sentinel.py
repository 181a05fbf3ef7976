"""Clock-driven rules: a silent device, a gate left open, and a site's response level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detectors.rules import RuleEngine
from detectors.sentinel import Sentinel
from tests.support import canonical_payload, events_from, ingest
from watchpost import store
from watchpost.model import AlertDraft, Severity


def _types(db):
    return sorted((a["type"], a["state"]) for a in store.list_alerts(db))


def test_a_device_silent_past_its_heartbeat_raises_once_and_clears_when_it_speaks(db, config):
    """lotus-sos-1 (heartbeat 900 s, grace 2) silent for an hour: one offline alert, however often checked;
    its next message resolves the alert with outcome no_action."""
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO device_seen VALUES ('lotus-sos-1', %s), ('lotus-gate-n', %s)",
        (now - timedelta(hours=1), now - timedelta(seconds=30)),
    )
    sentinel = Sentinel(config)
    assert sentinel.check(db, now=now) == 1
    assert sentinel.check(db, now=now + timedelta(seconds=5)) == 0
    (alert,) = store.list_alerts(db)
    assert (alert["type"], alert["device_id"], alert["severity"]) == ("device_offline", "lotus-sos-1", "minor")
    ingest(db, RuleEngine(config), events_from(config, "lotus-sos-1", canonical_payload("device_status", "heartbeat")))
    sentinel.check(db, now=datetime.now(UTC))
    (alert,) = store.list_alerts(db)
    assert alert["state"] == "resolved" and alert["outcome"] == "no_action"


def test_a_gate_open_past_the_limit_raises_held_open_and_a_closed_one_does_not(db, config):
    """A door open for three minutes (limit 120 s) raises gate_held_open; one closed since does not."""
    engine = RuleEngine(config)
    now = datetime.now(UTC)
    ingest(
        db,
        engine,
        events_from(config, "lotus-gate-s", canonical_payload("access", "door_open", at=now - timedelta(minutes=3))),
    )
    ingest(
        db,
        engine,
        events_from(
            config, "bamboo-gate-main", canonical_payload("access", "door_open", at=now - timedelta(minutes=4))
        ),
    )
    ingest(
        db,
        engine,
        events_from(
            config, "bamboo-gate-main", canonical_payload("access", "door_close", at=now - timedelta(minutes=2))
        ),
    )
    sentinel = Sentinel(config)
    sentinel.check(db, now=now - timedelta(minutes=2))  # only 60 s open then: not yet
    assert _types(db) == []
    sentinel.check(db, now=now)
    (alert,) = store.list_alerts(db)
    assert (alert["type"], alert["device_id"]) == ("gate_held_open", "lotus-gate-s")
    assert alert["detail"]["limit_s"] == 120


def _case(db, config, type_: str, site: str, at: datetime, n: int) -> None:
    for i in range(n):
        draft = AlertDraft(
            type=type_,
            severity=Severity.MAJOR,
            title=type_,
            dedup_key=f"test:{type_}:{at}:{i}",
            site_id=site,
            occurred_at=at,
            rule="operator",
        )
        raised = store.raise_alert(db, draft=draft, window_s=0, actor="operator:test")
        db.execute("UPDATE alerts SET created_at = %s WHERE alert_id = %s", (at, raised.alert_id))


def test_half_the_monthly_control_number_in_a_week_declares_level_2(db, config):
    """lotus (control 12): 5 thefts this week, as many as the week before, stay normal; the 6th declares
    level 2 and raises a response alert."""
    now = datetime.now(UTC)
    rule = next(r for r in config.rules if r.type == "response_level")
    sentinel = Sentinel(config)
    _case(db, config, "theft", "lotus", now - timedelta(days=10), 5)
    _case(db, config, "theft", "lotus", now - timedelta(days=2), 5)
    sentinel.response_levels(db, rule, now)
    assert store.site_levels(db)["lotus"]["level"] == 0
    _case(db, config, "fraud", "lotus", now - timedelta(days=1), 1)
    sentinel.response_levels(db, rule, now)
    level = store.site_levels(db)["lotus"]
    assert level["level"] == 2 and level["detail"]["cases_7d"] == 6
    (alert,) = store.list_alerts(db, type_="response_level")
    assert alert["site_id"] == "lotus" and alert["detail"]["level"] == 2


def test_a_third_with_a_rise_declares_level_2_and_without_the_rise_does_not(db, config):
    """bamboo (control 6): 2 cases this week against 2 the week before stay normal; against 1 they declare 2."""
    now = datetime.now(UTC)
    rule = next(r for r in config.rules if r.type == "response_level")
    sentinel = Sentinel(config)
    _case(db, config, "theft", "bamboo", now - timedelta(days=1), 2)
    _case(db, config, "theft", "bamboo", now - timedelta(days=9), 2)
    sentinel.response_levels(db, rule, now)
    assert store.site_levels(db)["bamboo"]["level"] == 0
    db.execute(
        "UPDATE alerts SET state = 'cancelled' WHERE alert_id = (SELECT min(alert_id) FROM alerts"
        " WHERE site_id = 'bamboo' AND created_at < %s)",
        (now - timedelta(days=8),),
    )
    sentinel.response_levels(db, rule, now)
    assert store.site_levels(db)["bamboo"]["level"] == 2


def test_a_serious_event_declares_level_1(db, config):
    """One robbery declares level 1 at its site at once, for the configured days."""
    now = datetime.now(UTC)
    rule = next(r for r in config.rules if r.type == "response_level")
    _case(db, config, "robbery", "lotus", now - timedelta(hours=1), 1)
    Sentinel(config).response_levels(db, rule, now)
    level = store.site_levels(db)["lotus"]
    assert level["level"] == 1 and level["until"] is not None
    assert store.list_alerts(db, type_="response_level")[0]["severity"] == "critical"
