"""Who may do what: every route × every role, and a patrol unit confined to its own unit."""

from __future__ import annotations

import pytest
from fastapi.routing import APIWebSocketRoute

from tests.api.conftest import OTHER_UNIT, PATROL_UNIT, assign, raise_manual

ALL = {"operator", "supervisor", "admin", "auditor", "patrol"}
CONSOLE = {"operator", "supervisor", "admin"}
OPEN = {("GET", "/health"), ("POST", "/auth/token")}  # besides FastAPI's own /docs and /openapi.json

# (method, path, body, roles allowed). Paths name the objects made in the test: {alert} and
# {assignment} are the patrol unit's, {other_alert} no unit's, {unit} the patrol's own.
MATRIX = [
    ("GET", "/", None, ALL),
    ("GET", "/auth/me", None, ALL),
    ("GET", "/alerts", None, ALL),
    ("GET", "/alerts/{alert}", None, ALL),
    ("GET", "/alerts/{alert}/snapshot", None, ALL),
    ("POST", "/alerts", {"type": "theft", "site_id": "lotus"}, CONSOLE),
    ("POST", "/alerts/{alert}/acknowledge", {"note": "seen"}, CONSOLE),
    ("POST", "/alerts/{alert}/assign", {"unit_id": "bamboo-foot-1"}, CONSOLE),
    ("POST", "/alerts/{alert}/escalate", None, CONSOLE),
    ("GET", "/alerts/{alert}/candidates", None, CONSOLE),
    ("POST", "/alerts/{other_alert}/resolve", {"outcome": "handled"}, CONSOLE),
    ("POST", "/alerts/{other_alert}/cancel", {"note": "test"}, {"supervisor", "admin"}),
    ("GET", "/alert-types", None, ALL),
    ("GET", "/assignments", None, CONSOLE | {"patrol"}),
    ("GET", "/assignments/{assignment}", None, CONSOLE | {"patrol"}),
    ("POST", "/assignments/{assignment}/accept", None, {"admin", "patrol"}),
    ("POST", "/assignments/{assignment}/on-scene", None, {"admin", "patrol"}),
    ("POST", "/assignments/{assignment}/clear", {"outcome": "handled"}, {"admin", "patrol"}),
    ("POST", "/assignments/{assignment}/reassign", {"unit_id": "bamboo-post-market"}, CONSOLE),
    ("GET", "/units", None, CONSOLE | {"patrol"}),
    ("GET", "/units/{unit}", None, CONSOLE | {"patrol"}),
    ("POST", "/units/{unit}/position", {"lat": 30.27, "lon": 120.15}, {"admin", "patrol"}),
    ("POST", "/units/{unit}/status", {"status": "available"}, {"supervisor", "admin", "patrol"}),
    ("GET", "/hotlists/{list_name}", None, CONSOLE),
    ("POST", "/hotlists/{list_name}", {"value": "浙A99999", "reason": "stolen"}, {"supervisor", "admin"}),
    ("PATCH", "/hotlists/entries/{entry}", {"note": "checked"}, {"supervisor", "admin"}),
    ("DELETE", "/hotlists/entries/{entry}", None, {"supervisor", "admin"}),
    ("GET", "/sites", None, CONSOLE),
    ("GET", "/devices", None, CONSOLE),
    ("GET", "/events", None, CONSOLE),
    ("GET", "/events?purpose=case 2026-117", None, CONSOLE),
    ("GET", "/alerts/{alert}?purpose=case 2026-117", None, CONSOLE),
    ("GET", "/plates/{plate}/sightings?purpose=case 2026-117", None, CONSOLE),
    ("GET", "/audit", None, {"auditor"}),
    ("GET", "/observations?device=lotus-cam-square", None, CONSOLE),
    ("GET", "/cameras", None, CONSOLE),
    ("GET", "/cameras/{device}", None, CONSOLE),
    ("GET", "/cameras/{device}/picture", None, CONSOLE),
    ("GET", "/dead-letters", None, CONSOLE),
    ("GET", "/dead-letters/counts", None, CONSOLE),
    ("GET", "/metrics", None, CONSOLE),
    ("GET", "/stats/compliance", None, CONSOLE | {"auditor"}),
    ("GET", "/stats/alerts", None, CONSOLE | {"auditor"}),
    ("GET", "/stats/zero-case", None, CONSOLE | {"auditor"}),
    ("GET", "/stats/devices", None, CONSOLE | {"auditor"}),
    ("GET", "/stream", None, CONSOLE | {"patrol"}),
    ("GET", "/console/settings", None, ALL),
]


def _template(path: str) -> str:
    for name in ("alert", "other_alert"):
        path = path.replace("{" + name + "}", "{alert_id}")
    return (
        path.replace("{assignment}", "{assignment_id}").replace("{unit}", "{unit_id}").replace("{entry}", "{entry_id}")
    )


def test_the_matrix_covers_every_route(api):
    """Every HTTP route of the app (but the open ones) is in the role matrix, and /ws is tested on its own."""
    paths = api.app.openapi()["paths"]
    routes = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    covered = {(m, _template(p).partition("?")[0]) for m, p, _, _ in MATRIX}
    assert routes - OPEN == covered
    assert "/ws" in {r.path for r in _websocket_routes(api.app)}


def _websocket_routes(app):
    for route in app.routes:
        if isinstance(route, APIWebSocketRoute):
            yield route
        inner = getattr(route, "original_router", None)  # FastAPI keeps included routers wrapped
        if inner is not None:
            yield from _websocket_routes(inner)


def test_every_route_without_a_credential_is_401(api):
    """No route of the matrix answers anything but 401 to a caller without a credential."""
    c = api.client()
    for method, path, body, _ in MATRIX:
        r = c.request(
            method,
            path.format(
                alert=1, other_alert=1, assignment=1, unit="x", entry=1, list_name="plates", plate="A1", device="x"
            ),
            json=body,
        )
        assert r.status_code == 401, (method, path, r.status_code)


@pytest.mark.parametrize("role", sorted(ALL))
def test_role_matrix(api, role):
    """Each role is refused (403 naming the role and the action) exactly the routes it may not use."""
    op = api.client("operator")
    alert = raise_manual(op)
    mine = assign(op, alert["alert_id"], PATROL_UNIT)
    other = raise_manual(op, type="fraud")
    entry = api.client("admin").post("/hotlists/plates", json={"value": f"浙B{role[:3].upper()}12", "reason": "other"})
    assert entry.status_code == 201, entry.text
    ids = {
        "alert": alert["alert_id"],
        "other_alert": other["alert_id"],
        "assignment": mine["assignment_id"],
        "unit": PATROL_UNIT,
        "entry": entry.json()["entry_id"],
        "list_name": "plates",
        "plate": "浙A12345",
        "device": "lotus-cam-square",
    }
    c = api.client(role)
    for method, path, body, allowed in MATRIX:
        url = path.format(**ids)
        if path == "/stream":
            with c.stream("GET", url) as r:
                status, detail = r.status_code, r.read().decode() if r.status_code != 200 else ""
        else:
            r = c.request(method, url, json=body)
            status, detail = r.status_code, r.text
        if role in allowed:
            assert status not in (401, 403), (role, method, path, status, detail)
        else:
            assert status == 403, (role, method, path, status, detail)
            assert f"role {role} may not" in detail


def test_a_unit_cannot_read_or_work_another_units_assignment(api):
    """Another unit's assignment, and the alert it is for, are 404 to a patrol credential; listing them is 403."""
    op = api.client("operator")
    alert = raise_manual(op)
    theirs = assign(op, alert["alert_id"], OTHER_UNIT)
    me = api.client("patrol")
    for method, path, body in [
        ("GET", f"/assignments/{theirs['assignment_id']}", None),
        ("POST", f"/assignments/{theirs['assignment_id']}/accept", None),
        ("POST", f"/assignments/{theirs['assignment_id']}/on-scene", None),
        ("POST", f"/assignments/{theirs['assignment_id']}/clear", {"outcome": "handled"}),
        ("GET", f"/alerts/{alert['alert_id']}", None),
        ("GET", f"/units/{OTHER_UNIT}", None),
    ]:
        r = me.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
    assert me.get("/assignments").json() == []
    assert me.get("/alerts").json() == []
    r = me.get("/assignments", params={"unit": OTHER_UNIT})
    assert r.status_code == 403 and OTHER_UNIT in r.json()["detail"]
    assert api.client("patrol2").get(f"/assignments/{theirs['assignment_id']}").status_code == 200
    # The other unit's assignment is untouched by the refused attempts.
    assert api.client("patrol2").get(f"/assignments/{theirs['assignment_id']}").json()["state"] == "assigned"


def test_a_unit_sees_only_its_own_assignment_in_an_alerts_list(api):
    """An alert two units work shows a patrol credential only its own assignment, in the list and on its own."""
    op = api.client("operator")
    alert = raise_manual(op)
    assign(op, alert["alert_id"], PATROL_UNIT)
    assign(op, alert["alert_id"], OTHER_UNIT)
    assert len(op.get(f"/alerts/{alert['alert_id']}").json()["alert"]["assignments"]) == 2
    me = api.client("patrol")
    (listed,) = me.get("/alerts").json()
    assert [a["unit_id"] for a in listed["assignments"]] == [PATROL_UNIT]
    detail = me.get(f"/alerts/{alert['alert_id']}").json()
    assert [a["unit_id"] for a in detail["alert"]["assignments"]] == [PATROL_UNIT]
    assert all(t["detail"].get("unit_id") in (None, PATROL_UNIT) for t in detail["timeline"])
    assert [a["unit_id"] for a in me.get("/assignments").json()] == [PATROL_UNIT]


def test_a_unit_may_not_report_another_units_position_or_status(api):
    """Position and status of another unit are 403 for a patrol credential; its own are accepted."""
    me = api.client("patrol")
    r = me.post(f"/units/{OTHER_UNIT}/position", json={"lat": 30.27, "lon": 120.15})
    assert r.status_code == 403 and "may not report the position of unit lotus-car-1" in r.json()["detail"]
    assert me.post(f"/units/{OTHER_UNIT}/status", json={"status": "off_duty"}).status_code == 403
    assert me.post(f"/units/{PATROL_UNIT}/position", json={"lat": 30.27, "lon": 120.15}).status_code == 200
    assert [u["unit_id"] for u in me.get("/units").json()] == [PATROL_UNIT]
