"""1-3-5 dispatch on a real database: tiers and deadlines, arrival, escalation, and people acting."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detectors.rules import RuleEngine
from dispatch import actions
from tests.support import canonical_payload, events_from, ingest
from watchpost import store
from watchpost.model import Conflict, Outcome, UnitStatus

SOS = "lotus-sos-1"  # at 30.2742, 120.1549: three lotus units, a post among them


def _raise(db, config, device: str = SOS, kind: str = "alarm_button", code: str = "press") -> dict:
    (raised,) = ingest(db, RuleEngine(config), events_from(config, device, canonical_payload(kind, code)))
    return store.get_alert_row(db, raised.alert_id)


def _dispatch(db, config, alert) -> list[int]:
    with db.transaction():
        return actions.dispatch_alert(db, config=config, alert_id=alert["alert_id"], now=alert["created_at"])


def _check(db, config, alert_id, tier, now):
    with db.transaction():
        actions.check_tier(db, config=config, alert_id=alert_id, tier=tier, now=now)


def _arrive(db, config, unit_id, lat, lon, at):
    store.record_fix(db, unit_id=unit_id, lat=lat, lon=lon, at=at, source="test")
    with db.transaction():
        return actions.check_arrivals(db, config=config)


def test_a_critical_alert_gets_one_unit_per_tier_nearest_first_with_1_3_5_deadlines(db, config):
    """Tier 1 goes to the post at the site (ETA 0), tiers 2 and 3 to the next nearest; deadlines 60/180/300 s."""
    alert = _raise(db, config)
    assert len(_dispatch(db, config, alert)) == 3
    snap = store.alert_snapshot(db, alert["alert_id"])
    assert snap["state"] == "dispatched"
    assert [(a["tier"], a["unit_id"]) for a in snap["assignments"]] == [
        (1, "lotus-post-n"),
        (2, "lotus-ebike-1"),
        (3, "lotus-car-1"),
    ]
    deadlines = [
        store.tiers_of(db, alert_id=alert["alert_id"])[i]["deadline_at"] - alert["created_at"] for i in range(3)
    ]
    assert deadlines == [timedelta(seconds=60), timedelta(seconds=180), timedelta(seconds=300)]
    sent = store.outbox_unsent(db)
    assert sorted(topic for _, topic, _ in sent) == [
        f"watchpost/units/{u}/assignments" for u in ("lotus-car-1", "lotus-ebike-1", "lotus-post-n")
    ]
    assert all(payload["type"] == "assignment" for _, _, payload in sent)
    assert {u["unit_id"]: u["status"] for u in store.list_units(db)}["lotus-car-1"] == "dispatched"
    assert _dispatch(db, config, alert) == []  # a second pass sends nobody twice
    last = store.feed_after(db, after=0)[-1]
    assert last["kind"] == "dispatched" and last["unit_ids"] == ["lotus-car-1", "lotus-ebike-1", "lotus-post-n"]
    assert last["body"]["alert"]["state"] == "dispatched"


def test_a_units_status_change_reaches_that_units_stream_only(db, config):
    """A unit going off duty appends a feed entry addressed to that unit."""
    with db.transaction():
        actions.set_unit_status(db, unit_id="lotus-car-1", status=UnitStatus.OFF_DUTY, actor="unit:lotus-car-1")
    (entry,) = store.feed_after(db, after=0)
    assert entry["kind"] == "unit_status" and entry["unit_ids"] == ["lotus-car-1"] and entry["alert_id"] is None


def test_an_info_alert_sends_nobody(db, config):
    """Severity info requests no tier."""
    alert = _raise(db, config, device="lotus-gate-s", kind="device_status", code="tamper")
    assert alert["severity"] == "info" and _dispatch(db, config, alert) == []


def test_a_unit_whose_gps_comes_within_the_radius_is_on_scene_and_meets_its_tier(db, config):
    """The e-bike's fix 20 m from the alert marks it on scene by GPS; tier 1 and 2 are met, compliance counts them."""
    alert = _raise(db, config, device="lotus-gate-s", kind="access", code="forced_open")  # major: tiers 1, 2
    _dispatch(db, config, alert)
    created = alert["created_at"]
    assert (
        _arrive(db, config, "lotus-ebike-1", alert["lat"] + 0.0009, alert["lon"], created + timedelta(seconds=20)) == []
    )
    (arrived,) = _arrive(
        db, config, "lotus-ebike-1", alert["lat"] + 0.00018, alert["lon"], created + timedelta(seconds=25)
    )
    a = store.get_assignment(db, arrived)
    assert (
        a["state"] == "on_scene" and a["on_scene_by"] == "gps" and a["on_scene_at"] == created + timedelta(seconds=25)
    )
    tiers = store.tiers_of(db, alert_id=alert["alert_id"])
    assert [t["state"] for t in tiers] == ["met", "pending"]  # one unit on scene meets tier 1 only
    with db.transaction():
        post = next(
            x for x in store.active_assignments(db, alert_id=alert["alert_id"]) if x["unit_id"] == "lotus-post-n"
        )
        actions.on_scene(
            db,
            config=config,
            assignment_id=post["assignment_id"],
            by="api",
            at=created + timedelta(seconds=90),
            actor="unit:lotus-post-n",
        )
    assert [t["state"] for t in store.tiers_of(db, alert_id=alert["alert_id"])] == ["met", "met"]
    assert store.get_alert_row(db, alert["alert_id"])["state"] == "on_scene"
    rows = store.compliance(
        db,
        since=created - timedelta(days=1),
        until=created + timedelta(days=1),
        bucket="week",
        timezone=config.timezone,
        severity="major",
    )
    assert [(r["tier"], r["met"], r["missed"], r["share_met"]) for r in rows] == [(1, 1, 0, 1.0), (2, 1, 0, 1.0)]


def test_a_missed_deadline_escalates_to_the_next_unit_and_counts_as_missed(db, config):
    """Nobody on scene at tier 1's deadline: the tier is missed, the next free unit is sent, the console told;
    the late arrival stops escalation but the miss stands."""
    alert = _raise(db, config, device="lotus-gate-s", kind="access", code="forced_open")
    _dispatch(db, config, alert)  # post (tier 1) and e-bike (tier 2); the car is still free
    deadline = alert["created_at"] + timedelta(seconds=60)
    _check(db, config, alert["alert_id"], 1, deadline - timedelta(seconds=1))
    assert store.tiers_of(db, alert_id=alert["alert_id"])[0]["state"] == "pending"
    _check(db, config, alert["alert_id"], 1, deadline + timedelta(seconds=1))
    tier1 = store.tiers_of(db, alert_id=alert["alert_id"])[0]
    assert tier1["state"] == "missed" and tier1["escalations"] == 1 and tier1["next_check_at"] is not None
    snap = store.alert_snapshot(db, alert["alert_id"])
    assert [(a["unit_id"], a["reason"], a["tier"]) for a in snap["assignments"]][-1] == ("lotus-car-1", "escalation", 1)
    assert snap["escalations"] == 1
    kinds = [f["kind"] for f in store.feed_after(db, after=0)]
    assert "escalated" in kinds
    actions_seen = [t["action"] for t in store.alert_timeline(db, alert["alert_id"])]
    assert "deadline_missed" in actions_seen and "escalate" in actions_seen
    car = next(a for a in snap["assignments"] if a["unit_id"] == "lotus-car-1")
    with db.transaction():
        actions.on_scene(
            db,
            config=config,
            assignment_id=car["assignment_id"],
            by="api",
            at=deadline + timedelta(seconds=40),
            actor="unit:lotus-car-1",
        )
    tier1 = store.tiers_of(db, alert_id=alert["alert_id"])[0]
    assert tier1["state"] == "missed" and tier1["arrived_at"] == deadline + timedelta(seconds=40)
    assert tier1["next_check_at"] is None
    rows = store.compliance(
        db,
        since=deadline - timedelta(days=1),
        until=deadline + timedelta(days=1),
        bucket="day",
        timezone=config.timezone,
        by_site=True,
    )
    tier1_row = next(r for r in rows if r["tier"] == 1)
    assert (tier1_row["site_id"], tier1_row["met"], tier1_row["missed"], tier1_row["share_met"]) == ("lotus", 0, 1, 0.0)


def test_escalation_stops_when_the_configured_escalations_run_out_and_says_so(db, config):
    """With no free unit left, each check escalates to nobody; after max_escalations the console is told."""
    cfg = config.model_copy(update={"dispatch": config.dispatch.model_copy(update={"max_escalations": 2})})
    for unit in ("lotus-car-1", "bamboo-foot-1"):
        with db.transaction():
            actions.set_unit_status(db, unit_id=unit, status=UnitStatus.OFF_DUTY, actor="test")
    alert = _raise(db, cfg, device="lotus-gate-s", kind="access", code="forced_open")
    _dispatch(db, cfg, alert)
    later = alert["created_at"] + timedelta(seconds=61)
    for step in range(4):
        _check(db, cfg, alert["alert_id"], 1, later + timedelta(seconds=60 * step))
    tier1 = store.tiers_of(db, alert_id=alert["alert_id"])[0]
    assert tier1["escalations"] == 2 and tier1["next_check_at"] is None
    kinds = [f["kind"] for f in store.feed_after(db, after=0)]
    assert kinds.count("escalated") == 2 and "escalation_exhausted" in kinds


def test_a_tier_without_a_free_unit_is_filled_when_one_becomes_available(db, config):
    """All lotus units busy: the emergency gets what is free, and a unit coming on duty is sent before the deadline."""
    with db.transaction():
        actions.set_unit_status(db, unit_id="lotus-car-1", status=UnitStatus.OFF_DUTY, actor="test")
        actions.set_unit_status(db, unit_id="bamboo-foot-1", status=UnitStatus.OFF_DUTY, actor="test")
    alert = _raise(db, config)
    assert len(_dispatch(db, config, alert)) == 2  # post and e-bike; tier 3 waits
    tier3 = store.tiers_of(db, alert_id=alert["alert_id"])[2]
    assert tier3["next_check_at"] < tier3["deadline_at"]
    with db.transaction():
        actions.set_unit_status(db, unit_id="lotus-car-1", status=UnitStatus.AVAILABLE, actor="test")
    _check(db, config, alert["alert_id"], 3, alert["created_at"] + timedelta(seconds=20))
    units = {a["unit_id"]: a["tier"] for a in store.alert_snapshot(db, alert["alert_id"])["assignments"]}
    assert units == {"lotus-post-n": 1, "lotus-ebike-1": 2, "lotus-car-1": 3}


def test_the_last_unit_to_clear_resolves_the_alert_with_its_outcome(db, config):
    """Accept, on scene, clear: the alert is acknowledged, on scene, then resolved; the units are free again."""
    alert = _raise(db, config, device="lotus-gate-s", kind="access", code="forced_open")
    _dispatch(db, config, alert)
    first, second = store.active_assignments(db, alert_id=alert["alert_id"])
    with db.transaction():
        actions.accept(db, assignment_id=first["assignment_id"], actor="unit:lotus-post-n")
    assert store.get_alert_row(db, alert["alert_id"])["state"] == "acknowledged"
    with db.transaction():
        actions.on_scene(db, config=config, assignment_id=first["assignment_id"], by="api", at=None, actor="unit:x")
        actions.clear(
            db,
            config=config,
            assignment_id=second["assignment_id"],
            outcome=Outcome.NO_ACTION,
            note="not needed",
            actor="unit:lotus-ebike-1",
        )
    assert store.get_alert_row(db, alert["alert_id"])["state"] == "on_scene"
    with db.transaction():
        actions.clear(
            db,
            config=config,
            assignment_id=first["assignment_id"],
            outcome=Outcome.FALSE_ALARM,
            note="wind",
            actor="unit:lotus-post-n",
        )
    row = store.get_alert_row(db, alert["alert_id"])
    assert (row["state"], row["outcome"], row["resolved_by"]) == ("resolved", "false_alarm", "unit:lotus-post-n")
    statuses = {u["unit_id"]: u["status"] for u in store.list_units(db)}
    assert statuses["lotus-post-n"] == statuses["lotus-ebike-1"] == "available"
    timeline = [(t["action"], t["to_state"]) for t in store.alert_timeline(db, alert["alert_id"])]
    assert timeline[0] == ("raised", "new") and timeline[-1] == ("resolve", "resolved")
    with pytest.raises(Conflict):
        with db.transaction():
            actions.acknowledge(db, alert_id=alert["alert_id"], actor="operator:late")


def test_an_operator_resolving_stands_units_down_and_voids_pending_tiers(db, config):
    """Resolved as a false alarm before any deadline: units get a stand-down message, tiers count neither way."""
    alert = _raise(db, config)
    _dispatch(db, config, alert)
    with db.transaction():
        actions.resolve(
            db,
            config=config,
            alert_id=alert["alert_id"],
            outcome=Outcome.FALSE_ALARM,
            note="test press",
            actor="operator:wang",
        )
    snap = store.alert_snapshot(db, alert["alert_id"])
    assert {a["state"] for a in snap["assignments"]} == {"cancelled"}
    assert {t["state"] for t in snap["tiers"]} == {"void"}
    stand_downs = [p for _, _, p in store.outbox_unsent(db) if p["type"] == "stand_down"]
    assert len(stand_downs) == 3


def test_a_busy_unit_cannot_be_assigned_twice_but_can_be_reassigned(db, config):
    """Assigning a dispatched unit is a conflict; reassigning hands the tier to another unit."""
    alert = _raise(db, config, device="lotus-gate-s", kind="access", code="forced_open")
    _dispatch(db, config, alert)
    other = _raise(db, config, device="bamboo-sos-1")
    with pytest.raises(Conflict):
        with db.transaction():
            actions.assign(db, config=config, alert_id=other["alert_id"], unit_id="lotus-post-n", actor="operator:li")
    tier1 = next(a for a in store.active_assignments(db, alert_id=alert["alert_id"]) if a["tier"] == 1)
    with db.transaction():
        new_id = actions.reassign(
            db, config=config, assignment_id=tier1["assignment_id"], unit_id="lotus-car-1", actor="operator:li"
        )
    assert store.get_assignment(db, tier1["assignment_id"])["state"] == "cancelled"
    new = store.get_assignment(db, new_id)
    assert (new["unit_id"], new["tier"], new["reason"]) == ("lotus-car-1", 1, "manual")
    with pytest.raises(Conflict):
        with db.transaction():
            actions.set_unit_status(db, unit_id="lotus-car-1", status=UnitStatus.OFF_DUTY, actor="unit:lotus-car-1")


def test_the_databases_ranking_agrees_with_the_planner(db, config):
    """rank_available (in SQL, for speed) orders 300 random units exactly as dispatch.planner.rank_units does."""
    import random

    from dispatch.planner import Target, rank_units
    from watchpost.config import UnitConfig

    rng = random.Random(5)
    units = [
        UnitConfig(
            id=f"r-{i:03d}",
            kind=rng.choice(["foot", "ebike", "car", "post"]),
            site=rng.choice(["lotus", "bamboo"]),
            speed_kmh=rng.choice([None, 4.0, 25.0]),
            position={"lat": 30.28 + rng.uniform(-0.02, 0.02), "lon": 120.16 + rng.uniform(-0.02, 0.02)},
        )
        for i in range(300)
    ]
    store.sync_configuration(db, config=config.model_copy(update={"units": units}))
    states = store.unit_states(db, status=UnitStatus.AVAILABLE)
    targets = [Target("lotus", 30.275, 120.155), Target("bamboo", 30.29, 120.17), Target("lotus", None, None)]
    for target, limit in [(t, n) for t in targets for n in (40, 3)]:
        expected = rank_units(states, target, route_factor=1.3)[:limit]
        got = store.rank_available(
            db, site_id=target.site_id, lat=target.lat, lon=target.lon, route_factor=1.3, limit=limit
        )
        assert [u.unit_id for u, _, _ in got] == [p.unit_id for p in expected]
        for (_, eta_s, _), pick in zip(got, expected, strict=True):
            assert (eta_s is None) == (pick.eta_s is None)
            assert eta_s is None or eta_s == pytest.approx(pick.eta_s, rel=1e-9, abs=1e-6)
