"""Dispatch state: units and their positions, assignments, tier clocks, and the unit outbox.

Primitives only; the 1-3-5 policy that combines them lives in :mod:`dispatch`. Changes of
units, assignments, tiers and the outbox are made under the alert lock (see
:mod:`watchpost.store.alerts`), which the caller takes first (:func:`dispatch.actions`
functions begin with it); positions (``unit_fixes``, ``unit_positions``) need no lock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from watchpost.config import WatchpostConfig
from watchpost.model import AssignmentState, NotFound, UnitState, UnitStatus
from watchpost.store.alerts import WAKE_CHANNEL, jsonable, lock_alerts, wake_dispatcher

__all__ = [
    "ACTIVE_ASSIGNMENT_STATES",
    "active_assignments",
    "alert_for_dispatch",
    "create_tiers",
    "due_tiers",
    "en_route",
    "get_assignment",
    "get_unit",
    "insert_assignment",
    "list_assignments",
    "list_units",
    "outbox_add",
    "outbox_mark_sent",
    "outbox_unsent",
    "rank_available",
    "record_fix",
    "record_tracker_fixes",
    "set_unit_status",
    "sync_units",
    "tiers_of",
    "unit_states",
    "update_assignment",
    "update_tier",
]

ACTIVE_ASSIGNMENT_STATES = (
    AssignmentState.ASSIGNED.value,
    AssignmentState.ACCEPTED.value,
    AssignmentState.ON_SCENE.value,
)
_DEFAULT_SPEED = {"foot": 5.0, "ebike": 18.0, "car": 30.0, "post": 5.0}


def sync_units(conn: psycopg.Connection, *, config: WatchpostConfig) -> None:
    """Mirror the configured units (upsert); units no longer configured are kept but never sent."""
    lock_alerts(conn)
    speeds = {**_DEFAULT_SPEED, **config.dispatch.speeds_kmh}
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO units (unit_id, name, kind, site_id, speed_kmh, tracker, home_lat, home_lon)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (unit_id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,"
            " site_id = EXCLUDED.site_id, speed_kmh = EXCLUDED.speed_kmh, tracker = EXCLUDED.tracker,"
            " home_lat = EXCLUDED.home_lat, home_lon = EXCLUDED.home_lon, configured = true",
            [
                (
                    u.id,
                    u.name or u.id,
                    u.kind,
                    u.site,
                    u.speed_kmh or speeds[u.kind],
                    u.tracker,
                    u.position.lat,
                    u.position.lon,
                )
                for u in config.units
            ],
        )
    conn.execute("UPDATE units SET configured = false WHERE NOT (unit_id = ANY(%s))", ([u.id for u in config.units],))
    # Fresh statistics: without them the planner probes unit_fixes once per unit when ranking.
    conn.execute("ANALYZE units, unit_fixes")


# --- positions (no alert lock) ------------------------------------------------------------------


def record_fix(conn: psycopg.Connection, *, unit_id: str, lat: float, lon: float, at: datetime, source: str) -> None:
    """Store a unit's position; the newest fix becomes its current position."""
    conn.execute(
        "INSERT INTO unit_fixes (unit_id, lat, lon, at, source) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (unit_id) DO UPDATE SET lat = EXCLUDED.lat, lon = EXCLUDED.lon, at = EXCLUDED.at,"
        " source = EXCLUDED.source WHERE unit_fixes.at <= EXCLUDED.at",
        (unit_id, lat, lon, at, source),
    )
    conn.execute(
        "INSERT INTO unit_positions (unit_id, at, lat, lon, source) VALUES (%s, %s, %s, %s, %s)",
        (unit_id, at, lat, lon, source),
    )
    wake_dispatcher(conn, f"fix:{unit_id}")


def record_tracker_fixes(conn: psycopg.Connection, *, fixes: Sequence[tuple[str, float, float, datetime]]) -> list[str]:
    """Positions reported by GPS trackers, as (tracker device id, lat, lon, time); return the units moved.

    A tracker that no unit carries moves nothing (it may be an e-bike's anti-theft tracker).
    """
    if not fixes:
        return []
    latest: dict[str, tuple[str, float, float, datetime]] = {}
    for fix in fixes:
        if fix[0] not in latest or latest[fix[0]][3] <= fix[3]:
            latest[fix[0]] = fix
    rows = conn.execute(
        "SELECT unit_id, tracker FROM units WHERE tracker = ANY(%s) ORDER BY unit_id", (list(latest),)
    ).fetchall()
    moved = []
    for unit_id, tracker in rows:
        _, lat, lon, at = latest[tracker]
        record_fix(conn, unit_id=unit_id, lat=lat, lon=lon, at=at, source=f"tracker:{tracker}")
        moved.append(unit_id)
    return moved


# --- units --------------------------------------------------------------------------------------


def unit_states(
    conn: psycopg.Connection, *, status: UnitStatus | None = None, unit_id: str | None = None
) -> list[UnitState]:
    """Configured units with their current position, optionally only one status or one unit."""
    where, params = "u.configured", []
    if status is not None:
        where += " AND u.status = %s"
        params.append(status.value)
    if unit_id is not None:
        where += " AND u.unit_id = %s"
        params.append(unit_id)
    rows = conn.execute(
        "SELECT u.unit_id, u.name, u.kind, u.site_id, u.speed_kmh, coalesce(f.lat, u.home_lat),"
        " coalesce(f.lon, u.home_lon), f.at, u.status FROM units u LEFT JOIN unit_fixes f USING (unit_id)"
        f" WHERE {where} ORDER BY u.unit_id",
        params,
    ).fetchall()
    return [_unit_state(r) for r in rows]


def _unit_state(r: Any) -> UnitState:
    """A unit from the first nine columns both unit queries select, in this order."""
    return UnitState(
        unit_id=r[0],
        name=r[1],
        kind=r[2],
        site_id=r[3],
        speed_kmh=r[4],
        lat=r[5],
        lon=r[6],
        fix_at=r[7],
        status=UnitStatus(r[8]),
    )


def rank_available(
    conn: psycopg.Connection,
    *,
    site_id: str | None,
    lat: float | None,
    lon: float | None,
    route_factor: float,
    exclude: Sequence[str] = (),
    limit: int = 10,
) -> list[tuple[UnitState, float | None, float | None]]:
    """The best available units for a place, best first, as (unit, ETA s, distance m).

    The same policy as :func:`dispatch.planner.rank_units` (tested to agree), computed by the
    server so that choosing among a thousand units costs one round trip: a fixed post goes
    only to its own site, with ETA 0; everyone else covers the great-circle distance times
    ``route_factor`` at their speed; ties go to units of the alert's own site, then by id.
    An alert without a location gets units with an unknown ETA (NULL), own site first.
    """
    rows = conn.execute(
        "WITH c AS ("
        "  SELECT u.unit_id, u.name, u.kind, u.site_id, u.speed_kmh, coalesce(f.lat, u.home_lat) AS lat,"
        "    coalesce(f.lon, u.home_lon) AS lon, f.at AS fix_at, u.status FROM units u"
        "  LEFT JOIN unit_fixes f USING (unit_id)"
        "  WHERE u.configured AND u.status = 'available' AND NOT (u.unit_id = ANY(%(exclude)s))"
        "    AND (u.kind <> 'post' OR u.site_id = %(site)s)),"
        # A cheap flat-earth ETA narrows a thousand units to a few dozen candidates (its error
        # at district scale is far below the margin), which then get the exact great circle.
        " n AS (SELECT c.* FROM c ORDER BY CASE WHEN c.kind = 'post' THEN 0"
        "   WHEN %(lat)s::float8 IS NULL THEN NULL"
        "   ELSE sqrt(power(%(lat)s::float8 - c.lat, 2) + power((%(lon)s::float8 - c.lon) * %(coslat)s, 2))"
        "     / c.speed_kmh END ASC NULLS LAST, (c.site_id IS DISTINCT FROM %(site)s), c.unit_id LIMIT %(margin)s),"
        " d AS (SELECT n.*, CASE WHEN %(lat)s::float8 IS NULL THEN NULL ELSE 2 * 6371008.8 * asin(least(1, sqrt("
        "    power(sin(radians(%(lat)s::float8 - n.lat) / 2), 2) + cos(radians(n.lat)) * cos(radians(%(lat)s::float8))"
        "    * power(sin(radians(%(lon)s::float8 - n.lon) / 2), 2)))) END AS distance FROM n)"
        " SELECT unit_id, name, kind, site_id, speed_kmh, lat, lon, fix_at, status,"
        "   CASE WHEN kind = 'post' THEN 0 ELSE distance * %(rf)s / (speed_kmh / 3.6) END AS eta, distance"
        " FROM d ORDER BY eta ASC NULLS LAST, (site_id IS DISTINCT FROM %(site)s), unit_id LIMIT %(limit)s",
        {
            "exclude": list(exclude),
            "site": site_id,
            "lat": lat,
            "lon": lon,
            "rf": route_factor,
            "limit": limit,
            "coslat": math.cos(math.radians(lat)) if lat is not None else 1.0,
            "margin": max(4 * limit, 32),
        },
    ).fetchall()
    return [
        (
            _unit_state(r),
            None if r[9] is None else float(r[9]),
            None if r[10] is None else float(r[10]),
        )
        for r in rows
    ]


def list_units(conn: psycopg.Connection, *, unit_id: str | None = None) -> list[dict[str, Any]]:
    """Units as the API shows them: position, status and the active assignment if any."""
    where, params = "true", []
    if unit_id is not None:
        where, params = "u.unit_id = %s", [unit_id]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT u.unit_id, u.name, u.kind, u.site_id, u.speed_kmh, u.tracker, u.status, u.status_at,"
            " u.status_by, u.configured, coalesce(f.lat, u.home_lat) AS lat, coalesce(f.lon, u.home_lon) AS lon,"
            " f.at AS fix_at, coalesce(f.source, 'home') AS fix_source,"
            " (SELECT a.assignment_id FROM assignments a WHERE a.unit_id = u.unit_id"
            "   AND a.state = ANY(%s) ORDER BY a.assignment_id DESC LIMIT 1) AS active_assignment_id"
            f" FROM units u LEFT JOIN unit_fixes f USING (unit_id) WHERE {where} ORDER BY u.unit_id",
            (list(ACTIVE_ASSIGNMENT_STATES), *params),
        ).fetchall()
    return jsonable(rows)


def get_unit(conn: psycopg.Connection, unit_id: str) -> dict[str, Any]:
    """One unit; :class:`NotFound` when there is none."""
    rows = list_units(conn, unit_id=unit_id)
    if not rows:
        raise NotFound(f"no unit {unit_id!r}")
    return rows[0]


def set_unit_status(conn: psycopg.Connection, *, unit_id: str, status: UnitStatus, actor: str) -> UnitStatus:
    """Set a unit's status; return the previous one. :class:`NotFound` for an unknown unit."""
    row = conn.execute("SELECT status FROM units WHERE unit_id = %s FOR UPDATE", (unit_id,)).fetchone()
    if row is None:
        raise NotFound(f"no unit {unit_id!r}")
    conn.execute(
        "UPDATE units SET status = %s, status_at = now(), status_by = %s WHERE unit_id = %s",
        (status.value, actor, unit_id),
    )
    return UnitStatus(row[0])


# --- assignments --------------------------------------------------------------------------------

_ASSIGNMENT_COLUMNS = (
    "a.assignment_id, a.alert_id, a.unit_id, a.tier, a.reason, a.state, a.eta_s, a.distance_m, a.assigned_at,"
    " a.assigned_by, a.accepted_at, a.on_scene_at, a.on_scene_by, a.cleared_at, a.outcome, a.note"
)


def insert_assignment(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    unit_id: str,
    tier: int | None,
    reason: str,
    eta_s: float | None,
    distance_m: float | None,
    actor: str,
    message: tuple[str, dict[str, Any]] | None = None,
) -> psycopg.Cursor[Any]:
    """Assign a unit to an alert, mark it dispatched, and queue ``message`` (topic, payload) for it.

    One statement: the assignment's id and time are filled into the message's ``assignment``
    by the server. Returns the cursor: ``fetchone()`` gives (assignment id, assigned at); in
    pipeline mode, fetch after sending the rest, to save the round trips.
    """
    topic, payload = message if message is not None else (None, None)
    return conn.execute(
        "WITH a AS (INSERT INTO assignments (alert_id, unit_id, tier, reason, eta_s, distance_m, assigned_by)"
        "   VALUES (%(alert)s, %(unit)s, %(tier)s, %(reason)s, %(eta)s, %(distance)s, %(actor)s)"
        "   RETURNING assignment_id, assigned_at, unit_id),"
        " u AS (UPDATE units SET status = 'dispatched', status_at = now(), status_by = %(actor)s"
        "   WHERE unit_id = (SELECT unit_id FROM a)),"
        " o AS (INSERT INTO outbox (unit_id, topic, payload)"
        "   SELECT a.unit_id, %(topic)s, jsonb_set(jsonb_set(%(payload)s::jsonb, '{assignment,assignment_id}',"
        "     to_jsonb(a.assignment_id)), '{assignment,assigned_at}', to_jsonb(wp_ts(a.assigned_at)))"
        "   FROM a WHERE %(topic)s::text IS NOT NULL RETURNING id)"
        " SELECT a.assignment_id, a.assigned_at,"
        "   (SELECT count(*) FROM (SELECT pg_notify(%(channel)s, 'outbox') FROM o) n) FROM a",
        {
            "alert": alert_id,
            "unit": unit_id,
            "tier": tier,
            "reason": reason,
            "eta": eta_s,
            "distance": distance_m,
            "actor": actor,
            "topic": topic,
            "payload": Jsonb(payload or {}),
            "channel": WAKE_CHANNEL,
        },
    )


def alert_for_dispatch(conn: psycopg.Connection, alert_id: int) -> tuple[dict[str, Any], bool]:
    """The alert's row and whether its tier clocks have started, in one round trip."""
    from watchpost.store.alerts import ALERT_COLUMNS

    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {ALERT_COLUMNS}, EXISTS (SELECT 1 FROM alert_tiers t WHERE t.alert_id = alerts.alert_id)"
            " AS tiers_started FROM alerts WHERE alert_id = %s",
            (alert_id,),
        ).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return row, bool(row.pop("tiers_started"))


def get_assignment(conn: psycopg.Connection, assignment_id: int, *, for_update: bool = False) -> dict[str, Any]:
    """One assignment with its alert's state; :class:`NotFound` when there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_ASSIGNMENT_COLUMNS}, al.state AS alert_state FROM assignments a"
            " JOIN alerts al USING (alert_id) WHERE a.assignment_id = %s"
            f"{' FOR UPDATE OF a' if for_update else ''}",
            (assignment_id,),
        ).fetchone()
    if row is None:
        raise NotFound(f"no assignment {assignment_id}")
    return row


def list_assignments(
    conn: psycopg.Connection,
    *,
    unit_id: str | None = None,
    alert_id: int | None = None,
    assignment_id: int | None = None,
    states: Sequence[str] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Assignments newest first, with the alert each is for."""
    where, params = ["true"], []
    if assignment_id is not None:
        where.append("a.assignment_id = %s")
        params.append(assignment_id)
    if unit_id is not None:
        where.append("a.unit_id = %s")
        params.append(unit_id)
    if alert_id is not None:
        where.append("a.alert_id = %s")
        params.append(alert_id)
    if states:
        where.append("a.state = ANY(%s)")
        params.append(list(states))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_ASSIGNMENT_COLUMNS}, al.type AS alert_type, al.severity, al.title, al.state AS alert_state,"
            " al.site_id, al.zone, al.lat, al.lon, al.created_at AS alert_created_at,"
            " (SELECT t.deadline_at FROM alert_tiers t WHERE t.alert_id = a.alert_id AND t.tier = a.tier)"
            "   AS deadline_at"
            f" FROM assignments a JOIN alerts al USING (alert_id) WHERE {' AND '.join(where)}"
            " ORDER BY a.assignment_id DESC LIMIT %s",
            (*params, limit),
        ).fetchall()
    return jsonable(rows)


def update_assignment(conn: psycopg.Connection, *, assignment_id: int, state: AssignmentState, **fields: Any) -> None:
    """Set an assignment's state and the given columns (accepted_at, on_scene_at, outcome...)."""
    allowed = {"accepted_at", "on_scene_at", "on_scene_by", "cleared_at", "outcome", "note"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown assignment fields {sorted(unknown)}")
    sets = ["state = %s", *(f"{k} = %s" for k in fields)]
    conn.execute(
        f"UPDATE assignments SET {', '.join(sets)} WHERE assignment_id = %s",
        (state.value, *fields.values(), assignment_id),
    )


def active_assignments(conn: psycopg.Connection, *, alert_id: int) -> list[dict[str, Any]]:
    """The alert's assignments still open (assigned, accepted, on scene)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_ASSIGNMENT_COLUMNS} FROM assignments a WHERE a.alert_id = %s AND a.state = ANY(%s)"
            " ORDER BY a.assignment_id",
            (alert_id, list(ACTIVE_ASSIGNMENT_STATES)),
        ).fetchall()


def en_route(conn: psycopg.Connection, *, max_fix_age_s: int) -> list[dict[str, Any]]:
    """Units on their way (assigned or accepted) with their latest fix and the alert's location.

    A fix older than ``max_fix_age_s`` before the assignment says nothing about arriving.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT a.assignment_id, a.alert_id, a.unit_id, f.lat AS unit_lat, f.lon AS unit_lon, f.at AS fix_at,"
            " al.lat AS alert_lat, al.lon AS alert_lon"
            " FROM assignments a JOIN alerts al USING (alert_id) JOIN unit_fixes f USING (unit_id)"
            " WHERE a.state IN ('assigned', 'accepted') AND al.lat IS NOT NULL"
            " AND f.at >= a.assigned_at - make_interval(secs => %s)",
            (max_fix_age_s,),
        ).fetchall()


# --- tier clocks --------------------------------------------------------------------------------


def create_tiers(conn: psycopg.Connection, *, alert_id: int, tiers: Sequence[tuple[int, int, datetime]]) -> None:
    """Start the clocks of the tiers an alert requested: (tier, units needed, deadline)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO alert_tiers (alert_id, tier, needed, deadline_at, next_check_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(alert_id, tier, needed, deadline, deadline) for tier, needed, deadline in tiers],
        )


def tiers_of(conn: psycopg.Connection, *, alert_id: int) -> list[dict[str, Any]]:
    """The alert's tier clocks, tier 1 first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT alert_id, tier, needed, deadline_at, state, met_at, missed_at, arrived_at, escalations,"
            " next_check_at FROM alert_tiers WHERE alert_id = %s ORDER BY tier FOR UPDATE",
            (alert_id,),
        ).fetchall()


def update_tier(conn: psycopg.Connection, *, alert_id: int, tier: int, **fields: Any) -> None:
    """Set columns of one tier clock (state, met_at, missed_at, arrived_at, escalations, next_check_at)."""
    allowed = {"state", "met_at", "missed_at", "arrived_at", "escalations", "next_check_at"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown tier fields {sorted(unknown)}")
    conn.execute(
        f"UPDATE alert_tiers SET {', '.join(f'{k} = %s' for k in fields)} WHERE alert_id = %s AND tier = %s",
        (*fields.values(), alert_id, tier),
    )


def due_tiers(conn: psycopg.Connection, *, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Tier clocks whose next check is due, earliest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT t.alert_id, t.tier, t.state, t.deadline_at, t.escalations FROM alert_tiers t"
            " WHERE t.next_check_at <= %s ORDER BY t.next_check_at LIMIT %s",
            (now, limit),
        ).fetchall()


# --- outbox -------------------------------------------------------------------------------------


def outbox_add(conn: psycopg.Connection, *, unit_id: str, topic: str, payload: dict[str, Any]) -> int:
    """Queue a message for a unit's terminal and wake the dispatcher to publish it after commit."""
    row = conn.execute(
        "WITH o AS (INSERT INTO outbox (unit_id, topic, payload) VALUES (%s, %s, %s) RETURNING id)"
        " SELECT id, pg_notify(%s, 'outbox') FROM o",
        (unit_id, topic, Jsonb(payload), WAKE_CHANNEL),
    ).fetchone()
    assert row is not None
    return int(row[0])


def outbox_unsent(conn: psycopg.Connection, *, limit: int = 500) -> list[tuple[int, str, dict[str, Any]]]:
    """Messages not yet published, oldest first: (id, topic, payload)."""
    rows = conn.execute(
        "SELECT id, topic, payload FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT %s", (limit,)
    ).fetchall()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def outbox_mark_sent(conn: psycopg.Connection, *, ids: Sequence[int]) -> None:
    """Record that the broker has these messages (no alert lock: only the publisher writes sent_at)."""
    if ids:
        conn.execute("UPDATE outbox SET sent_at = now() WHERE id = ANY(%s)", (list(ids),))
