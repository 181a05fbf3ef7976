"""What can happen to an alert and its assignments, by whom: the 1-3-5 policy on top of the store.

Every function runs in the caller's transaction (``with conn.transaction():``), takes the
alert lock first (through the store), records the transition with its actor, appends a feed
entry for the console and queues MQTT messages for the units concerned. The API, the
dispatcher and the tests call these and nothing below them, so a change made through any
door looks the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from dispatch.planner import Pick, Target
from watchpost import store
from watchpost.config import WatchpostConfig
from watchpost.model import AlertState, AssignmentState, Conflict, NotFound, Outcome, Severity, UnitStatus

__all__ = [
    "accept",
    "acknowledge",
    "assign",
    "cancel",
    "check_arrivals",
    "check_tier",
    "clear",
    "dispatch_alert",
    "escalate",
    "on_scene",
    "reassign",
    "resolve",
    "set_unit_status",
]

NO_UNIT_RETRY_S = 15  # a tier that found no free unit tries again this often until its deadline


# --- dispatch -----------------------------------------------------------------------------------


def dispatch_alert(conn: psycopg.Connection, *, config: WatchpostConfig, alert_id: int, now: datetime) -> list[int]:
    """Start the tier clocks the alert's severity requests and send the best free unit to each.

    Tier k's deadline is the alert's creation plus the k-th 1-3-5 deadline. Units are taken
    in ETA order, so tier 1 gets the nearest. A tier with no free unit keeps its clock and
    tries again every few seconds; past its deadline it escalates. Returns the assignments.
    Statements whose answers are not needed at once are pipelined: a dispatch costs a few
    round trips to the database, not one per row.
    """
    with conn.pipeline():
        store.lock_alerts(conn)
        alert, started = store.alert_for_dispatch(conn, alert_id)
        state = AlertState(alert["state"])
        if state.final or started:
            return []
        wanted = sorted(set(config.dispatch.severity_tiers.get(Severity(alert["severity"]).value, [])))
        if not wanted:
            return []
        deadlines = {tier: _deadline(config, alert, tier) for tier in wanted}
        store.create_tiers(conn, alert_id=alert_id, tiers=[(tier, 1, deadlines[tier]) for tier in wanted])
        picks = _rank(conn, config, alert, limit=len(wanted))
        sent = [
            _send(conn, config, alert, pick, tier=tier, reason="dispatch", actor="dispatcher")
            for tier, pick in zip(wanted, picks, strict=False)
        ]
        for tier in wanted[len(picks) :]:
            store.update_tier(
                conn, alert_id=alert_id, tier=tier, next_check_at=now + timedelta(seconds=NO_UNIT_RETRY_S)
            )
        made = [_assignment_id(cursor) for cursor in sent]
        if made:
            store.advance_alert(
                conn,
                alert_id=alert_id,
                to=AlertState.DISPATCHED,
                action="dispatch",
                actor="dispatcher",
                detail={"assignments": made},
                current=state,
            )
            store.append_feed(conn, kind="dispatched", alert_id=alert_id)
        else:
            store.record_transition(
                conn,
                alert_id=alert_id,
                action="no_unit",
                from_state=state,
                to_state=state,
                actor="dispatcher",
                detail={"tiers": wanted},
            )
            store.append_feed(conn, kind="no_unit", alert_id=alert_id, body={"tiers": wanted})
        return made


def _assignment_id(cursor: Any) -> int:
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def _deadline(config: WatchpostConfig, alert: dict[str, Any], tier: int | None) -> datetime | None:
    if tier is None:
        return None
    return alert["created_at"] + timedelta(seconds=config.dispatch.tier_deadlines_s[tier - 1])


def _target(alert: dict[str, Any]) -> Target:
    return Target(site_id=alert["site_id"], lat=alert["lat"], lon=alert["lon"])


def _rank(conn: psycopg.Connection, config: WatchpostConfig, alert: dict[str, Any], *, limit: int = 1) -> list[Pick]:
    """The best free units for the alert (units already on it are not free: they are dispatched)."""
    ranked = store.rank_available(
        conn,
        site_id=alert["site_id"],
        lat=alert["lat"],
        lon=alert["lon"],
        route_factor=config.dispatch.route_factor,
        limit=limit,
    )
    return [Pick(unit.unit_id, eta_s, distance) for unit, eta_s, distance in ranked]


def _send(
    conn: psycopg.Connection,
    config: WatchpostConfig,
    alert: dict[str, Any],
    pick: Pick,
    *,
    tier: int | None,
    reason: str,
    actor: str,
) -> Any:
    """Assign the picked unit and queue its assignment message; returns the statement's cursor
    (its row is the assignment id), so that in pipeline mode several sends cost one round trip."""
    eta_s = None if pick.eta_s is None else round(pick.eta_s, 1)
    distance = None if pick.distance_m is None else round(pick.distance_m, 1)
    message = {
        "type": "assignment",
        "assignment": store.jsonable(
            {
                "assignment_id": None,  # filled in by the server
                "alert_id": alert["alert_id"],
                "unit_id": pick.unit_id,
                "tier": tier,
                "reason": reason,
                "state": AssignmentState.ASSIGNED.value,
                "eta_s": eta_s,
                "distance_m": distance,
                "assigned_at": None,  # filled in by the server
                "assigned_by": actor,
                "deadline_at": _deadline(config, alert, tier),
                "alert_type": alert["type"],
                "severity": alert["severity"],
                "title": alert["title"],
                "site_id": alert["site_id"],
                "zone": alert["zone"],
                "lat": alert["lat"],
                "lon": alert["lon"],
                "alert_created_at": alert["created_at"],
            }
        ),
    }
    return store.insert_assignment(
        conn,
        alert_id=alert["alert_id"],
        unit_id=pick.unit_id,
        tier=tier,
        reason=reason,
        eta_s=eta_s,
        distance_m=distance,
        actor=actor,
        message=(config.dispatch.unit_topic.replace("{unit}", pick.unit_id), message),
    )


def _tell_unit(conn: psycopg.Connection, config: WatchpostConfig, assignment_id: int, message: str) -> None:
    """Queue a message about an assignment for its unit's terminal (published after commit)."""
    assignment = store.list_assignments(conn, assignment_id=assignment_id)[0]
    store.outbox_add(
        conn,
        unit_id=assignment["unit_id"],
        topic=config.dispatch.unit_topic.replace("{unit}", assignment["unit_id"]),
        payload={"type": message, "assignment": assignment},
    )


# --- deadlines and escalation -------------------------------------------------------------------


def check_tier(conn: psycopg.Connection, *, config: WatchpostConfig, alert_id: int, tier: int, now: datetime) -> None:
    """Act on a tier whose clock is due: fill it, call it missed and escalate, or escalate again."""
    store.lock_alerts(conn)
    alert = store.get_alert_row(conn, alert_id)
    rows = {t["tier"]: t for t in store.tiers_of(conn, alert_id=alert_id)}
    t = rows.get(tier)
    if t is None or t["next_check_at"] is None:
        return
    if AlertState(alert["state"]).final:
        store.update_tier(conn, alert_id=alert_id, tier=tier, next_check_at=None)
        return
    if t["state"] == "pending":
        if now < t["deadline_at"]:
            _fill(conn, config, alert, tier, deadline=t["deadline_at"], now=now)
            return
        store.update_tier(conn, alert_id=alert_id, tier=tier, state="missed", missed_at=t["deadline_at"])
        store.record_transition(
            conn,
            alert_id=alert_id,
            action="deadline_missed",
            from_state=AlertState(alert["state"]),
            to_state=AlertState(alert["state"]),
            actor="dispatcher",
            detail={"tier": tier, "deadline_at": t["deadline_at"].isoformat()},
        )
        escalate(
            conn,
            config=config,
            alert_id=alert_id,
            tier=tier,
            now=now,
            actor="dispatcher",
            why=f"tier {tier} deadline missed",
        )
    elif t["state"] == "missed" and t["arrived_at"] is None:
        if t["escalations"] >= config.dispatch.max_escalations:
            store.update_tier(conn, alert_id=alert_id, tier=tier, next_check_at=None)
            store.append_feed(
                conn,
                kind="escalation_exhausted",
                alert_id=alert_id,
                body={"tier": tier, "escalations": t["escalations"]},
            )
            return
        escalate(
            conn,
            config=config,
            alert_id=alert_id,
            tier=tier,
            now=now,
            actor="dispatcher",
            why=f"tier {tier}: escalated unit not on scene",
        )
    else:
        store.update_tier(conn, alert_id=alert_id, tier=tier, next_check_at=None)


def _fill(
    conn: psycopg.Connection,
    config: WatchpostConfig,
    alert: dict[str, Any],
    tier: int,
    *,
    deadline: datetime,
    now: datetime,
) -> None:
    """A tier that found no free unit at dispatch: try again before its deadline."""
    alert_id = alert["alert_id"]
    if any(a["tier"] == tier for a in store.active_assignments(conn, alert_id=alert_id)):
        store.update_tier(conn, alert_id=alert_id, tier=tier, next_check_at=deadline)
        return
    picks = _rank(conn, config, alert)
    if not picks:
        retry = min(deadline, now + timedelta(seconds=NO_UNIT_RETRY_S))
        store.update_tier(conn, alert_id=alert_id, tier=tier, next_check_at=retry)
        return
    assignment_id = _assignment_id(
        _send(conn, config, alert, picks[0], tier=tier, reason="dispatch", actor="dispatcher")
    )
    store.update_tier(conn, alert_id=alert_id, tier=tier, next_check_at=deadline)
    store.advance_alert(
        conn,
        alert_id=alert_id,
        to=AlertState.DISPATCHED,
        action="dispatch",
        actor="dispatcher",
        detail={"assignments": [assignment_id], "tier": tier},
    )
    store.append_feed(conn, kind="dispatched", alert_id=alert_id)


def escalate(
    conn: psycopg.Connection,
    *,
    config: WatchpostConfig,
    alert_id: int,
    tier: int | None,
    now: datetime,
    actor: str,
    why: str,
) -> int | None:
    """Send the next best free unit (for ``tier``, or the alert in general) and tell the console.

    With no free unit the console is told so, and the tier tries again shortly. The tier's
    next check is the new unit's ETA plus the configured grace. Returns the new assignment.
    """
    store.lock_alerts(conn)
    alert = store.get_alert_row(conn, alert_id, for_update=True)
    if AlertState(alert["state"]).final:
        raise Conflict(f"alert {alert_id} is {alert['state']}")
    picks = _rank(conn, config, alert)
    assignment_id = None
    if picks:
        pick = picks[0]
        assignment_id = _assignment_id(_send(conn, config, alert, pick, tier=tier, reason="escalation", actor=actor))
        wait = (pick.eta_s or 0.0) + config.dispatch.escalation_grace_s
    else:
        wait = float(NO_UNIT_RETRY_S)
    if tier is not None:
        row = next((t for t in store.tiers_of(conn, alert_id=alert_id) if t["tier"] == tier), None)
        if row is not None:
            store.update_tier(
                conn,
                alert_id=alert_id,
                tier=tier,
                escalations=row["escalations"] + 1,
                next_check_at=now + timedelta(seconds=wait),
            )
    conn.execute("UPDATE alerts SET escalations = escalations + 1, updated_at = now() WHERE alert_id = %s", (alert_id,))
    detail = {"tier": tier, "why": why, "assignment_id": assignment_id, "unit_id": picks[0].unit_id if picks else None}
    to = AlertState.DISPATCHED if assignment_id is not None else AlertState(alert["state"])
    store.advance_alert(conn, alert_id=alert_id, to=to, action="escalate", actor=actor, detail=detail)
    store.append_feed(conn, kind="escalated", alert_id=alert_id, body={"escalation": detail})
    return assignment_id


# --- arrival ------------------------------------------------------------------------------------


def check_arrivals(conn: psycopg.Connection, *, config: WatchpostConfig) -> list[int]:
    """Units whose latest fix is within the on-scene radius of their alert arrive (by GPS)."""
    from watchpost.geo import distance_m

    arrived = []
    for row in store.en_route(conn, max_fix_age_s=config.dispatch.position_max_age_s):
        metres = distance_m(row["unit_lat"], row["unit_lon"], row["alert_lat"], row["alert_lon"])
        if metres <= config.dispatch.on_scene_radius_m:
            on_scene(
                conn,
                config=config,
                assignment_id=row["assignment_id"],
                by="gps",
                at=row["fix_at"],
                actor=f"unit:{row['unit_id']}",
            )
            arrived.append(row["assignment_id"])
    return arrived


def on_scene(
    conn: psycopg.Connection,
    *,
    config: WatchpostConfig,
    assignment_id: int,
    by: str,
    at: datetime | None,
    actor: str,
) -> dict[str, Any]:
    """A unit reports (or its GPS shows) it is on scene; the tiers it fulfils are met.

    Tier k is met when at least as many distinct units as tiers 1..k need are on scene by
    its deadline; a missed tier that is now covered stops escalating and records when help
    arrived (late).
    """
    store.lock_alerts(conn)
    a = store.get_assignment(conn, assignment_id, for_update=True)
    if a["state"] not in (AssignmentState.ASSIGNED.value, AssignmentState.ACCEPTED.value):
        raise Conflict(f"assignment {assignment_id} is {a['state']}, not on its way")
    if AlertState(a["alert_state"]).final:
        raise Conflict(f"alert {a['alert_id']} is {a['alert_state']}")
    when = at or _db_now(conn)
    when = max(when, a["assigned_at"])  # a fix taken just before the assignment counts from the assignment
    store.update_assignment(
        conn,
        assignment_id=assignment_id,
        state=AssignmentState.ON_SCENE,
        on_scene_at=when,
        on_scene_by=by,
        **({} if a["accepted_at"] else {"accepted_at": when}),
    )
    conn.execute(
        "UPDATE units SET status = 'on_scene', status_at = now(), status_by = %s WHERE unit_id = %s",
        (actor, a["unit_id"]),
    )
    _settle_tiers(conn, alert_id=a["alert_id"])
    store.advance_alert(
        conn,
        alert_id=a["alert_id"],
        to=AlertState.ON_SCENE,
        action="on_scene",
        actor=actor,
        detail={"unit_id": a["unit_id"], "by": by, "assignment_id": assignment_id},
        at=when,
    )
    store.append_feed(
        conn, kind="on_scene", alert_id=a["alert_id"], body={"unit_id": a["unit_id"], "assignment_id": assignment_id}
    )
    return store.get_assignment(conn, assignment_id)


def _settle_tiers(conn: psycopg.Connection, *, alert_id: int) -> None:
    arrivals = sorted(
        r[0]
        for r in conn.execute(
            "SELECT min(on_scene_at) FROM assignments WHERE alert_id = %s AND on_scene_at IS NOT NULL GROUP BY unit_id",
            (alert_id,),
        ).fetchall()
    )
    needed = 0
    for t in store.tiers_of(conn, alert_id=alert_id):
        needed += t["needed"]
        if len(arrivals) < needed:
            continue
        arrival = arrivals[needed - 1]
        if t["state"] == "pending":
            if arrival <= t["deadline_at"]:
                store.update_tier(
                    conn,
                    alert_id=alert_id,
                    tier=t["tier"],
                    state="met",
                    met_at=arrival,
                    arrived_at=arrival,
                    next_check_at=None,
                )
            else:  # arrived after the deadline, before the dispatcher's check noticed: still a miss
                store.update_tier(
                    conn,
                    alert_id=alert_id,
                    tier=t["tier"],
                    state="missed",
                    missed_at=t["deadline_at"],
                    arrived_at=arrival,
                    next_check_at=None,
                )
        elif t["state"] == "missed" and t["arrived_at"] is None:
            store.update_tier(conn, alert_id=alert_id, tier=t["tier"], arrived_at=arrival, next_check_at=None)


def _db_now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


# --- people acting ------------------------------------------------------------------------------


def acknowledge(conn: psycopg.Connection, *, alert_id: int, actor: str, note: str = "") -> None:
    """An operator has seen the alert."""
    store.lock_alerts(conn)
    store.advance_alert(
        conn,
        alert_id=alert_id,
        to=AlertState.ACKNOWLEDGED,
        action="acknowledge",
        actor=actor,
        detail={"note": note} if note else None,
    )
    store.append_feed(conn, kind="acknowledged", alert_id=alert_id)


def accept(conn: psycopg.Connection, *, assignment_id: int, actor: str) -> dict[str, Any]:
    """The unit accepts its assignment (the alert counts as acknowledged)."""
    store.lock_alerts(conn)
    a = store.get_assignment(conn, assignment_id, for_update=True)
    if a["state"] != AssignmentState.ASSIGNED.value:
        raise Conflict(f"assignment {assignment_id} is {a['state']}, not waiting to be accepted")
    store.update_assignment(
        conn, assignment_id=assignment_id, state=AssignmentState.ACCEPTED, accepted_at=_db_now(conn)
    )
    store.advance_alert(
        conn,
        alert_id=a["alert_id"],
        to=AlertState.ACKNOWLEDGED,
        action="unit_accept",
        actor=actor,
        detail={"unit_id": a["unit_id"], "assignment_id": assignment_id},
    )
    store.append_feed(
        conn, kind="accepted", alert_id=a["alert_id"], body={"unit_id": a["unit_id"], "assignment_id": assignment_id}
    )
    return store.get_assignment(conn, assignment_id)


def clear(
    conn: psycopg.Connection,
    *,
    config: WatchpostConfig,
    assignment_id: int,
    outcome: Outcome,
    note: str,
    actor: str,
) -> dict[str, Any]:
    """The unit is done and free again; the last unit to clear resolves the alert with its outcome."""
    store.lock_alerts(conn)
    a = store.get_assignment(conn, assignment_id, for_update=True)
    if a["state"] not in store.ACTIVE_ASSIGNMENT_STATES:
        raise Conflict(f"assignment {assignment_id} is already {a['state']}")
    store.update_assignment(
        conn,
        assignment_id=assignment_id,
        state=AssignmentState.CLEARED,
        cleared_at=_db_now(conn),
        outcome=outcome.value,
        note=note,
    )
    _free(conn, a["unit_id"], actor)
    others = [x for x in store.active_assignments(conn, alert_id=a["alert_id"]) if x["assignment_id"] != assignment_id]
    if not others and not AlertState(a["alert_state"]).final:
        store.finish_alert(
            conn, alert_id=a["alert_id"], state=AlertState.RESOLVED, outcome=outcome, note=note, actor=actor
        )
        store.append_feed(
            conn,
            kind="resolved",
            alert_id=a["alert_id"],
            body={"unit_id": a["unit_id"], "assignment_id": assignment_id},
        )
    else:
        store.record_transition(
            conn,
            alert_id=a["alert_id"],
            action="unit_clear",
            from_state=AlertState(a["alert_state"]),
            to_state=AlertState(a["alert_state"]),
            actor=actor,
            detail={"unit_id": a["unit_id"], "outcome": outcome.value, "note": note},
        )
        store.append_feed(
            conn, kind="cleared", alert_id=a["alert_id"], body={"unit_id": a["unit_id"], "assignment_id": assignment_id}
        )
    return store.get_assignment(conn, assignment_id)


def _free(conn: psycopg.Connection, unit_id: str, actor: str) -> None:
    conn.execute(
        "UPDATE units SET status = 'available', status_at = now(), status_by = %s"
        " WHERE unit_id = %s AND status IN ('dispatched', 'on_scene')",
        (actor, unit_id),
    )


def _end(
    conn: psycopg.Connection,
    *,
    config: WatchpostConfig,
    alert_id: int,
    state: AlertState,
    outcome: Outcome | None,
    note: str,
    actor: str,
) -> None:
    store.lock_alerts(conn)
    store.finish_alert(conn, alert_id=alert_id, state=state, outcome=outcome, note=note, actor=actor)
    now = _db_now(conn)
    for a in store.active_assignments(conn, alert_id=alert_id):
        if a["state"] == AssignmentState.ON_SCENE.value:
            store.update_assignment(
                conn,
                assignment_id=a["assignment_id"],
                state=AssignmentState.CLEARED,
                cleared_at=now,
                outcome=outcome.value if outcome else None,
                note=note,
            )
        else:
            store.update_assignment(
                conn,
                assignment_id=a["assignment_id"],
                state=AssignmentState.CANCELLED,
                cleared_at=now,
                note=f"alert {state.value}",
            )
        _free(conn, a["unit_id"], actor)
        _tell_unit(conn, config, a["assignment_id"], "stand_down")
    store.append_feed(conn, kind=state.value, alert_id=alert_id)


def resolve(
    conn: psycopg.Connection, *, config: WatchpostConfig, alert_id: int, outcome: Outcome, note: str, actor: str
) -> None:
    """Close the alert with an outcome; units still on it are stood down."""
    _end(conn, config=config, alert_id=alert_id, state=AlertState.RESOLVED, outcome=outcome, note=note, actor=actor)


def cancel(conn: psycopg.Connection, *, config: WatchpostConfig, alert_id: int, note: str, actor: str) -> None:
    """Withdraw an alert raised in error; units on it are stood down."""
    _end(conn, config=config, alert_id=alert_id, state=AlertState.CANCELLED, outcome=None, note=note, actor=actor)


def assign(
    conn: psycopg.Connection,
    *,
    config: WatchpostConfig,
    alert_id: int,
    unit_id: str,
    actor: str,
    tier: int | None = None,
) -> int:
    """An operator sends a particular unit. It must be available (reassign a busy one explicitly)."""
    store.lock_alerts(conn)
    alert = store.get_alert_row(conn, alert_id, for_update=True)
    if AlertState(alert["state"]).final:
        raise Conflict(f"alert {alert_id} is {alert['state']}")
    unit = next(iter(store.unit_states(conn, unit_id=unit_id)), None)
    if unit is None:
        raise NotFound(f"no unit {unit_id!r}")
    if unit.status is not UnitStatus.AVAILABLE:
        raise Conflict(f"unit {unit_id} is {unit.status.value}; reassign it from its current assignment first")
    from dispatch.planner import eta

    pick = eta(unit, _target(alert), route_factor=config.dispatch.route_factor) or Pick(unit_id, None, None)
    assignment_id = _assignment_id(_send(conn, config, alert, pick, tier=tier, reason="manual", actor=actor))
    store.advance_alert(
        conn,
        alert_id=alert_id,
        to=AlertState.DISPATCHED,
        action="assign",
        actor=actor,
        detail={"unit_id": unit_id, "assignment_id": assignment_id, "tier": tier},
    )
    store.append_feed(
        conn, kind="assigned", alert_id=alert_id, body={"unit_id": unit_id, "assignment_id": assignment_id}
    )
    return assignment_id


def reassign(conn: psycopg.Connection, *, config: WatchpostConfig, assignment_id: int, unit_id: str, actor: str) -> int:
    """Hand an assignment to another unit: the old one is stood down, the new one takes its tier."""
    store.lock_alerts(conn)
    a = store.get_assignment(conn, assignment_id, for_update=True)
    if a["state"] not in store.ACTIVE_ASSIGNMENT_STATES:
        raise Conflict(f"assignment {assignment_id} is {a['state']}")
    if a["unit_id"] == unit_id:
        raise Conflict(f"assignment {assignment_id} is already unit {unit_id}'s")
    store.update_assignment(
        conn,
        assignment_id=assignment_id,
        state=AssignmentState.CANCELLED,
        cleared_at=_db_now(conn),
        note=f"reassigned to {unit_id} by {actor}",
    )
    _free(conn, a["unit_id"], actor)
    _tell_unit(conn, config, assignment_id, "stand_down")
    return assign(conn, config=config, alert_id=a["alert_id"], unit_id=unit_id, actor=actor, tier=a["tier"])


def set_unit_status(conn: psycopg.Connection, *, unit_id: str, status: UnitStatus, actor: str) -> None:
    """A unit goes on or off duty. A unit with an open assignment must clear or be reassigned first."""
    if status not in (UnitStatus.AVAILABLE, UnitStatus.OFF_DUTY):
        raise Conflict("a unit may set itself available or off_duty; dispatch sets the rest")
    store.lock_alerts(conn)
    busy = conn.execute(
        "SELECT assignment_id FROM assignments WHERE unit_id = %s AND state = ANY(%s)",
        (unit_id, list(store.ACTIVE_ASSIGNMENT_STATES)),
    ).fetchone()
    if busy is not None:
        raise Conflict(f"unit {unit_id} has open assignment {busy[0]}: clear it or ask for reassignment")
    previous = store.set_unit_status(conn, unit_id=unit_id, status=status, actor=actor)
    if previous is not status:
        store.append_feed(
            conn,
            kind="unit_status",
            alert_id=None,
            body={"unit_id": unit_id, "status": status.value, "previous": previous.value, "actor": actor},
        )
