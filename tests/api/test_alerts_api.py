"""Alerts and assignments through the API over real HTTP: raise, filter, act, and a patrol unit working one."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.service import Dispatcher
from tests.api.conftest import OTHER_UNIT, PATROL_UNIT, assign, raise_manual


def test_a_manual_alert_takes_its_defaults_from_the_catalogue_and_the_site(api):
    """POST /alerts with a catalogue type: severity, title from the type, location from the site, the note kept."""
    alert = raise_manual(api.client("operator"), note="bicycle taken from the north gate")
    lotus = api.config.site_index["lotus"]
    theft = api.config.alerts.types["theft"]
    assert alert["type"] == "theft" and alert["severity"] == theft.severity and alert["title"] == theft.title
    assert (alert["lat"], alert["lon"]) == (lotus.position.lat, lotus.position.lon)
    assert alert["state"] == "new" and alert["rule"] == "manual" and alert["created_by"] == "key-operator"
    assert alert["detail"] == {"reported_by": "key-operator", "note": "bicycle taken from the north gate"}


def test_manual_alerts_with_bad_fields_get_422_saying_what_is_wrong(api):
    """Unknown type, site or zone, a typo'd field, half a location and a naive time are each refused with the reason."""
    c = api.client("operator")
    cases = [
        ({"type": "alien", "site_id": "lotus"}, "unknown alert type 'alien'"),
        ({"type": "theft", "site_id": "atlantis"}, "unknown site 'atlantis'"),
        ({"type": "theft", "site_id": "lotus", "zone": "moon"}, "has no zone 'moon'"),
        ({"type": "theft", "site_id": "lotus", "colour": "red"}, "body.colour: unknown field"),
        ({"type": "theft", "site_id": "lotus", "lat": 30.1}, "lat and lon go together"),
        ({"type": "theft", "site_id": "lotus", "occurred_at": "2026-01-01T08:00:00"}, "must carry a time zone"),
        ({"type": "theft", "site_id": "lotus", "severity": "apocalyptic"}, "body.severity"),
        ({"site_id": "lotus"}, "body.type: required"),
    ]
    for body, reason in cases:
        r = c.post("/alerts", json=body)
        assert r.status_code == 422, (body, r.text)
        assert reason in r.json()["detail"], (body, r.json())
    assert c.post("/alerts", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_alerts_are_listed_newest_first_filtered_and_paged(api):
    """GET /alerts filters by site, type, severity, repeated state and time, and pages with before_id."""
    c = api.client("operator")
    theft = raise_manual(c)
    fraud = raise_manual(c, type="fraud", site_id="bamboo")
    fight = raise_manual(c, type="fight")
    c.post(f"/alerts/{fight['alert_id']}/acknowledge")

    def ids(**params):
        r = c.get("/alerts", params=params)
        assert r.status_code == 200, r.text
        return [a["alert_id"] for a in r.json()]

    assert ids() == [fight["alert_id"], fraud["alert_id"], theft["alert_id"]]
    assert ids(site="bamboo") == [fraud["alert_id"]]
    assert ids(type="theft") == [theft["alert_id"]]
    assert ids(severity="critical") == [fight["alert_id"]]
    assert ids(state=["acknowledged"]) == [fight["alert_id"]]
    assert ids(state=["new", "acknowledged"]) == [fight["alert_id"], fraud["alert_id"], theft["alert_id"]]
    assert ids(limit=2) == [fight["alert_id"], fraud["alert_id"]]
    assert ids(before_id=fraud["alert_id"]) == [theft["alert_id"]]
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert ids(since=soon) == [] and len(ids(until=soon)) == 3


def test_bad_alert_filters_are_422_naming_the_parameter(api):
    """An unknown state, severity or type, a naive time and a zero limit are refused with the parameter named."""
    c = api.client("operator")
    for params, reason in [
        ({"state": "sleeping"}, "query.state"),
        ({"severity": "huge"}, "query.severity"),
        ({"type": "alien"}, "unknown alert type"),
        ({"since": "2026-01-01T00:00:00"}, "since must carry a time zone"),
        ({"limit": 0}, "query.limit"),
    ]:
        r = c.get("/alerts", params=params)
        assert r.status_code == 422 and reason in r.json()["detail"], (params, r.text)


def test_an_alert_shows_its_timeline_and_unknown_ids_are_404(api):
    """GET /alerts/{id} has the snapshot and every transition with its actor; an unknown id is 404."""
    c = api.client("operator")
    alert = raise_manual(c)
    c.post(f"/alerts/{alert['alert_id']}/acknowledge", json={"note": "on the phone"})
    body = c.get(f"/alerts/{alert['alert_id']}").json()
    assert body["alert"]["state"] == "acknowledged" and body["alert"]["acknowledged_by"] == "key-operator"
    assert [(t["action"], t["actor"]) for t in body["timeline"]] == [
        ("raised", "key-operator"),
        ("acknowledge", "key-operator"),
    ]
    assert body["timeline"][1]["detail"] == {"note": "on the phone"}
    assert body["sources"] == []
    r = c.get("/alerts/999999")
    assert r.status_code == 404 and r.json()["detail"] == "no alert 999999"
    assert c.post("/alerts/999999/acknowledge").status_code == 404


def test_patrol_accepts_arrives_and_clears_which_resolves_the_alert_and_frees_the_unit(api):
    """Accept → on scene → clear by the unit's own credential resolves the alert with its outcome; the unit is free."""
    op, me = api.client("operator"), api.client("patrol")
    alert = raise_manual(op)
    mine = assign(op, alert["alert_id"], PATROL_UNIT, tier=1)
    assert op.get(f"/units/{PATROL_UNIT}").json()["status"] == "dispatched"
    (listed,) = me.get("/assignments").json()
    assert listed["assignment_id"] == mine["assignment_id"] and listed["alert_type"] == "theft"

    a = me.post(f"/assignments/{mine['assignment_id']}/accept").json()
    assert a["state"] == "accepted" and a["accepted_at"]
    assert op.get(f"/alerts/{alert['alert_id']}").json()["alert"]["state"] == "acknowledged"
    a = me.post(f"/assignments/{mine['assignment_id']}/on-scene").json()
    assert a["state"] == "on_scene" and a["on_scene_by"] == "api"
    assert op.get(f"/units/{PATROL_UNIT}").json()["status"] == "on_scene"
    a = me.post(f"/assignments/{mine['assignment_id']}/clear", json={"outcome": "handled", "note": "bike found"})
    assert a.status_code == 200, a.text
    assert a.json()["state"] == "cleared" and a.json()["outcome"] == "handled"

    done = op.get(f"/alerts/{alert['alert_id']}").json()
    assert done["alert"]["state"] == "resolved" and done["alert"]["outcome"] == "handled"
    assert done["alert"]["resolution_note"] == "bike found" and done["alert"]["resolved_by"] == "key-patrol"
    unit = op.get(f"/units/{PATROL_UNIT}").json()
    assert unit["status"] == "available" and unit["active_assignment_id"] is None
    r = me.post(f"/assignments/{mine['assignment_id']}/accept")
    assert r.status_code == 409 and "not waiting to be accepted" in r.json()["detail"]


def test_clear_needs_a_known_outcome(api):
    """Clearing without an outcome, or with one not in handled|false_alarm|duplicate|no_action, is 422."""
    op, me = api.client("operator"), api.client("patrol")
    mine = assign(op, raise_manual(op)["alert_id"])
    r = me.post(f"/assignments/{mine['assignment_id']}/clear", json={"note": "x"})
    assert r.status_code == 422 and "body.outcome: required" in r.json()["detail"]
    r = me.post(f"/assignments/{mine['assignment_id']}/clear", json={"outcome": "solved"})
    assert r.status_code == 422 and "handled" in r.json()["detail"]


def test_resolve_stands_units_down_and_a_second_resolve_is_409(api):
    """Resolving with an outcome ends the alert and frees its unit; resolving again is 409 with the state."""
    op = api.client("operator")
    alert = raise_manual(op)
    assign(op, alert["alert_id"])
    r = op.post(f"/alerts/{alert['alert_id']}/resolve", json={"outcome": "false_alarm", "note": "cat"})
    assert r.status_code == 200 and r.json()["state"] == "resolved" and r.json()["outcome"] == "false_alarm"
    assert r.json()["assignments"][0]["state"] == "cancelled"
    assert op.get(f"/units/{PATROL_UNIT}").json()["status"] == "available"
    r = op.post(f"/alerts/{alert['alert_id']}/resolve", json={"outcome": "handled"})
    assert r.status_code == 409 and "already resolved" in r.json()["detail"]


def test_cancel_withdraws_an_alert(api):
    """A supervisor cancels an alert raised in error; it is final."""
    alert = raise_manual(api.client("operator"))
    r = api.client("supervisor").post(f"/alerts/{alert['alert_id']}/cancel", json={"note": "test call"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["resolution_note"] == "test call"
    assert api.client("operator").post(f"/alerts/{alert['alert_id']}/acknowledge").status_code == 409


def test_assign_a_busy_unit_is_409_and_reassign_moves_the_assignment(api):
    """A unit already on an alert cannot be assigned again (409 says to reassign); reassign hands over the tier."""
    op = api.client("operator")
    first, second = raise_manual(op), raise_manual(op)
    mine = assign(op, first["alert_id"], PATROL_UNIT, tier=2)
    r = op.post(f"/alerts/{second['alert_id']}/assign", json={"unit_id": PATROL_UNIT})
    assert r.status_code == 409 and "reassign" in r.json()["detail"]
    r = op.post(f"/alerts/{first['alert_id']}/assign", json={"unit_id": "no-such-unit"})
    assert r.status_code == 404 and "no-such-unit" in r.json()["detail"]
    r = op.post(f"/assignments/{mine['assignment_id']}/reassign", json={"unit_id": OTHER_UNIT})
    assert r.status_code == 200, r.text
    assert r.json()["unit_id"] == OTHER_UNIT and r.json()["tier"] == 2 and r.json()["state"] == "assigned"
    old = op.get(f"/assignments/{mine['assignment_id']}").json()
    assert old["state"] == "cancelled" and OTHER_UNIT in old["note"]
    assert op.get(f"/units/{PATROL_UNIT}").json()["status"] == "available"


def test_escalate_sends_the_next_free_unit(api):
    """POST /alerts/{id}/escalate sends the nearest free unit and records why."""
    op = api.client("operator")
    alert = raise_manual(op)
    r = op.post(f"/alerts/{alert['alert_id']}/escalate", json={"note": "caller says two suspects"})
    assert r.status_code == 200 and r.json()["state"] == "dispatched" and r.json()["escalations"] == 1
    (sent,) = r.json()["assignments"]
    assert sent["reason"] == "escalation"
    (step,) = [t for t in op.get(f"/alerts/{alert['alert_id']}").json()["timeline"] if t["action"] == "escalate"]
    assert step["detail"]["why"] == "caller says two suspects" and step["detail"]["unit_id"] == sent["unit_id"]


def test_unit_position_and_status(api):
    """A unit's position report becomes its fix (source api); status goes off duty and back; bad input is 422."""
    me = api.client("patrol")
    at = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0)
    r = me.post(f"/units/{PATROL_UNIT}/position", json={"lat": 30.2745, "lon": 120.1555, "time": at.isoformat()})
    assert r.status_code == 200, r.text
    unit = r.json()
    assert (unit["lat"], unit["lon"], unit["fix_source"]) == (30.2745, 120.1555, "api")
    assert datetime.fromisoformat(unit["fix_at"]) == at
    for body, reason in [
        ({"lat": 91, "lon": 120}, "body.lat"),
        ({"lat": 30, "lon": 120, "time": "2026-01-01T00:00:00"}, "time must carry a time zone"),
        ({"lat": 30, "lon": 120, "time": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "future"),
        ({"lat": 30}, "body.lon: required"),
    ]:
        r = me.post(f"/units/{PATROL_UNIT}/position", json=body)
        assert r.status_code == 422 and reason in r.json()["detail"], (body, r.text)
    assert me.post(f"/units/{PATROL_UNIT}/status", json={"status": "off_duty"}).json()["status"] == "off_duty"
    assert me.post(f"/units/{PATROL_UNIT}/status", json={"status": "available"}).json()["status"] == "available"
    r = me.post(f"/units/{PATROL_UNIT}/status", json={"status": "on_scene"})
    assert r.status_code == 422 and "available" in r.json()["detail"]
    assert api.client("admin").post("/units/nope/position", json={"lat": 30, "lon": 120}).status_code == 404


def test_a_unit_with_an_open_assignment_cannot_go_off_duty(api):
    """Going off duty with an open assignment is 409 naming the assignment."""
    op = api.client("operator")
    mine = assign(op, raise_manual(op)["alert_id"])
    r = api.client("patrol").post(f"/units/{PATROL_UNIT}/status", json={"status": "off_duty"})
    assert r.status_code == 409 and str(mine["assignment_id"]) in r.json()["detail"]


@pytest.fixture
def dispatcher(api_config, database_url):
    d = Dispatcher(config=api_config, database_url=database_url, broker=None, name="api-test").start()
    assert d.leading.wait(15), "the dispatcher did not start leading"
    yield d
    d.stop()


def _wait(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_with_the_dispatcher_a_reported_fight_is_dispatched_met_on_scene_by_gps_and_counted(api, dispatcher):
    """A critical manual alert is dispatched tier 1 to the nearest unit; its GPS report puts it on scene; compliance
    counts tier 1 as met."""
    op = api.client("operator")
    fight = raise_manual(op, type="fight", site_id="lotus", lat=30.2741, lon=120.1551)  # at lotus-ebike-1's home
    alert = _wait(
        lambda: (a := op.get(f"/alerts/{fight['alert_id']}").json()["alert"])["state"] == "dispatched" and a,
        what="dispatch",
    )
    tier1 = next(a for a in alert["assignments"] if a["tier"] == 1)
    assert tier1["unit_id"] == PATROL_UNIT and tier1["eta_s"] == 0  # the fight is where the e-bike stands
    me = api.client("patrol")
    assert me.post(f"/assignments/{tier1['assignment_id']}/accept").status_code == 200
    r = me.post(f"/units/{tier1['unit_id']}/position", json={"lat": 30.27411, "lon": 120.15511})
    assert r.status_code == 200
    _wait(
        lambda: op.get(f"/assignments/{tier1['assignment_id']}").json()["on_scene_by"] == "gps",
        what="arrival by GPS",
    )
    rows = op.get("/stats/compliance", params={"severity": "critical", "by_site": "true"}).json()
    (row,) = [r for r in rows if r["tier"] == 1]
    assert row["site_id"] == "lotus" and row["met"] == 1 and row["missed"] == 0 and row["share_met"] == 1.0
