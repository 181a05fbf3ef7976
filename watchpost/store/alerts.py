"""Alerts: raising with deduplication, lifecycle transitions, and the live feed.

Lock discipline. Every transaction that changes alerts, assignments, unit status, tiers,
the feed or the outbox takes :data:`ALERT_LOCK` (a transaction-level advisory lock) *before*
anything else of those tables (:func:`lock_alerts`; the functions here take it themselves
and it is re-entrant). Two things follow: feed ids become visible in commit order, so a
stream that resumes after its last id misses nothing; and alert and dispatch changes cannot
deadlock one another. Tables written without the lock (events, device_seen, door_states,
event_rates, unit_fixes, unit_positions) are never written by a holder of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from watchpost.model import OPEN_STATES, AlertDraft, AlertState, Conflict, NotFound, Outcome

__all__ = [
    "ALERT_LOCK",
    "FEED_CHANNEL",
    "WAKE_CHANNEL",
    "Raised",
    "advance_alert",
    "alert_snapshot",
    "alert_sources",
    "alert_timeline",
    "append_feed",
    "feed_after",
    "feed_head",
    "finish_alert",
    "get_alert_row",
    "jsonable",
    "list_alerts",
    "listen_feed",
    "lock_alerts",
    "raise_alert",
    "record_transition",
    "wait_for_feed",
    "wake_dispatcher",
]

ALERT_LOCK = 0x57A7C3
FEED_CHANNEL = "watchpost_feed"  # payload: the new feed id
WAKE_CHANNEL = "watchpost_dispatch"  # something for the dispatcher: a new alert, a position, an outbox row

_SEVERITY_ORDER = "ARRAY['info', 'minor', 'major', 'critical']"
ALERT_COLUMNS = (
    "alert_id, type, severity, state, rule, title, site_id, zone, device_id, lat, lon, dedup_key, count,"
    " first_seen, last_seen, created_at, created_by, updated_at, dispatched_at, acknowledged_at,"
    " acknowledged_by, on_scene_at, resolved_at, resolved_by, outcome, resolution_note, escalations, detail"
)


def lock_alerts(conn: psycopg.Connection) -> None:
    """Take the alert lock for the rest of the caller's transaction (re-entrant)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_LOCK,))


def wake_dispatcher(conn: psycopg.Connection, reason: str = "") -> None:
    """Tell the dispatcher there is work, when the caller's transaction commits."""
    conn.execute("SELECT pg_notify(%s, %s)", (WAKE_CHANNEL, reason))


@dataclass(frozen=True, slots=True)
class Raised:
    """What :func:`raise_alert` did: a new alert, or a repeat folded into an open one."""

    alert_id: int
    created: bool
    count: int


def raise_alert(
    conn: psycopg.Connection,
    *,
    draft: AlertDraft,
    window_s: int | None,
    actor: str,
    fold: bool = True,
    sightings: int = 1,
    last_seen: datetime | None = None,
) -> Raised:
    """Raise ``draft``, or fold it into the open alert with its key seen within ``window_s``.

    A repeat counts up, moves ``last_seen``, adds its source events, keeps the higher
    severity and merges ``detail``; it appends an ``updated`` feed entry. A new alert
    appends ``raised`` and wakes the dispatcher. ``window_s`` None means any open alert
    with the key; ``fold`` False leaves an open alert untouched (a condition checked on a
    timer is one sighting, however often it is checked). ``sightings`` repeats seen together
    (one batch) count as that many, the last at ``last_seen``. Runs in the caller's transaction.
    """
    last = max(last_seen or draft.occurred_at, draft.occurred_at)
    lock_alerts(conn)
    oldest = (
        draft.occurred_at - timedelta(seconds=window_s)
        if window_s is not None
        else datetime.min.replace(tzinfo=draft.occurred_at.tzinfo)
    )
    row = conn.execute(
        "SELECT alert_id, count FROM alerts WHERE dedup_key = %s AND state = ANY(%s) AND last_seen >= %s"
        " ORDER BY last_seen DESC LIMIT 1",
        (draft.dedup_key, list(OPEN_STATES), oldest),
    ).fetchone()
    if row is not None and not fold:
        return Raised(alert_id=int(row[0]), created=False, count=int(row[1]))
    if row is not None:
        alert_id = int(row[0])
        updated = conn.execute(
            "UPDATE alerts SET count = count + %s, last_seen = greatest(last_seen, %s), updated_at = now(),"
            f" severity = CASE WHEN array_position({_SEVERITY_ORDER}, %s::text)"
            f"   > array_position({_SEVERITY_ORDER}, severity) THEN %s ELSE severity END,"
            " detail = detail || %s WHERE alert_id = %s RETURNING count",
            (sightings, last, draft.severity.value, draft.severity.value, Jsonb(dict(draft.detail)), alert_id),
        ).fetchone()
        _link_events(conn, alert_id, draft)
        append_feed(conn, kind="updated", alert_id=alert_id)
        return Raised(alert_id=alert_id, created=False, count=int(updated[0]) if updated else 0)
    new = conn.execute(
        "INSERT INTO alerts (type, severity, rule, title, site_id, zone, device_id, lat, lon, dedup_key,"
        " first_seen, last_seen, created_by, detail, count)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING alert_id",
        (
            draft.type,
            draft.severity.value,
            draft.rule,
            draft.title,
            draft.site_id,
            draft.zone,
            draft.device_id,
            draft.lat,
            draft.lon,
            draft.dedup_key,
            draft.occurred_at,
            last,
            actor,
            Jsonb(dict(draft.detail)),
            sightings,
        ),
    ).fetchone()
    assert new is not None
    alert_id = int(new[0])
    _link_events(conn, alert_id, draft)
    record_transition(
        conn,
        alert_id=alert_id,
        action="raised",
        from_state=None,
        to_state=AlertState.NEW,
        actor=actor,
        detail={"rule": draft.rule, "severity": draft.severity.value},
    )
    append_feed(conn, kind="raised", alert_id=alert_id)
    wake_dispatcher(conn, f"alert:{alert_id}")
    return Raised(alert_id=alert_id, created=True, count=sightings)


def _link_events(conn: psycopg.Connection, alert_id: int, draft: AlertDraft) -> None:
    if not draft.source_events:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO alert_events (alert_id, event_id, occurred_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(alert_id, event_id, at) for event_id, at in draft.source_events],
        )


def record_transition(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    action: str,
    from_state: AlertState | None,
    to_state: AlertState,
    actor: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one row to the alert's timeline."""
    conn.execute(
        "INSERT INTO alert_transitions (alert_id, action, from_state, to_state, actor, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, action, from_state.value if from_state else None, to_state.value, actor, Jsonb(detail or {})),
    )


def get_alert_row(conn: psycopg.Connection, alert_id: int, *, for_update: bool = False) -> dict[str, Any]:
    """The alert's row; :class:`NotFound` when there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = %s{' FOR UPDATE' if for_update else ''}",
            (alert_id,),
        ).fetchone()
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    return row


def advance_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    to: AlertState,
    action: str,
    actor: str,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
    current: AlertState | None = None,
) -> AlertState:
    """Move an open alert forward to ``to`` (never back) and record the action; return its state.

    The action is recorded even when the state does not move (an acknowledgement after a
    unit is already on scene is still a fact of the timeline). The state's own timestamp
    column is set the first time it is reached. A final alert raises :class:`Conflict`.
    The caller holds the alert lock; a caller that read the alert under it may pass its
    ``current`` state and save a round trip.
    """
    if current is None:
        current = AlertState(get_alert_row(conn, alert_id, for_update=True)["state"])
    if current.final:
        raise Conflict(f"alert {alert_id} is {current.value}")
    new = to if to.rank > current.rank else current
    sets = ["state = %s", "updated_at = now()"]
    params: list[Any] = [new.value]
    stamp = {
        AlertState.DISPATCHED: "dispatched_at",
        AlertState.ACKNOWLEDGED: "acknowledged_at",
        AlertState.ON_SCENE: "on_scene_at",
    }.get(to)
    if stamp:
        sets.append(f"{stamp} = coalesce({stamp}, coalesce(%s, now()))")
        params.append(at)
    if to is AlertState.ACKNOWLEDGED:
        sets.append("acknowledged_by = coalesce(acknowledged_by, %s)")
        params.append(actor)
    conn.execute(f"UPDATE alerts SET {', '.join(sets)} WHERE alert_id = %s", (*params, alert_id))
    record_transition(
        conn, alert_id=alert_id, action=action, from_state=current, to_state=new, actor=actor, detail=detail
    )
    return new


def finish_alert(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    state: AlertState,
    outcome: Outcome | None,
    note: str,
    actor: str,
) -> None:
    """Resolve (with an outcome) or cancel an open alert; its pending tier clocks stop.

    A tier still pending when the alert ends early (a false alarm cleared by the operator
    before any deadline) is void: it counts neither as met nor as missed.
    """
    assert state.final
    lock_alerts(conn)
    row = get_alert_row(conn, alert_id, for_update=True)
    current = AlertState(row["state"])
    if current.final:
        raise Conflict(f"alert {alert_id} is already {current.value}")
    conn.execute(
        "UPDATE alerts SET state = %s, resolved_at = now(), resolved_by = %s, outcome = %s,"
        " resolution_note = %s, updated_at = now() WHERE alert_id = %s",
        (state.value, actor, outcome.value if outcome else None, note, alert_id),
    )
    conn.execute(
        "UPDATE alert_tiers SET state = CASE WHEN state = 'pending' THEN 'void' ELSE state END,"
        " next_check_at = NULL WHERE alert_id = %s",
        (alert_id,),
    )
    record_transition(
        conn,
        alert_id=alert_id,
        action="resolve" if state is AlertState.RESOLVED else "cancel",
        from_state=current,
        to_state=state,
        actor=actor,
        detail={"outcome": outcome.value if outcome else None, "note": note},
    )


# --- the feed -----------------------------------------------------------------------------------


def append_feed(
    conn: psycopg.Connection,
    *,
    kind: str,
    alert_id: int | None,
    body: dict[str, Any] | None = None,
    unit_ids: list[str] | None = None,
) -> int:
    """Append a feed entry carrying the alert's current snapshot; listeners hear of it at commit.

    ``unit_ids`` says which units' patrol streams see the entry: the units ever assigned to
    the alert, the unit the body names (a unit hears of its own status changes), and any
    given. One round trip: the snapshot is built by the server.
    """
    lock_alerts(conn)
    body = body or {}
    named = {body["unit_id"]} if isinstance(body.get("unit_id"), str) else set()
    unit_ids = sorted(named | set(unit_ids or []))
    payload = Jsonb({"kind": kind, **body})
    if alert_id is None:
        row = conn.execute(
            "WITH f AS (INSERT INTO feed (kind, alert_id, unit_ids, body) VALUES (%s, NULL, %s, %s) RETURNING id)"
            " SELECT id, pg_notify(%s, id::text) FROM f",
            (kind, unit_ids, payload, FEED_CHANNEL),
        ).fetchone()
    else:
        row = conn.execute(
            "WITH s AS MATERIALIZED (SELECT wp_alert_snapshot(%s) AS snap),"
            " f AS (INSERT INTO feed (kind, alert_id, unit_ids, body)"
            "   SELECT %s, %s, ARRAY(SELECT x FROM (SELECT a ->> 'unit_id' AS x"
            "     FROM jsonb_array_elements(s.snap -> 'assignments') a UNION SELECT unnest(%s::text[])) u ORDER BY 1),"
            "   %s || jsonb_build_object('alert', s.snap) FROM s WHERE s.snap IS NOT NULL RETURNING id)"
            " SELECT id, pg_notify(%s, id::text) FROM f",
            (alert_id, kind, alert_id, unit_ids, payload, FEED_CHANNEL),
        ).fetchone()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
    assert row is not None
    return int(row[0])


def feed_after(conn: psycopg.Connection, *, after: int, limit: int = 500) -> list[dict[str, Any]]:
    """Feed entries with an id above ``after``, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, at, kind, alert_id, unit_ids, body FROM feed WHERE id > %s ORDER BY id LIMIT %s",
            (after, limit),
        ).fetchall()


def feed_head(conn: psycopg.Connection) -> int:
    """The newest feed id (0 when the feed is empty)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM feed").fetchone()
    return int(row[0]) if row else 0


def listen_feed(conn: psycopg.Connection) -> None:
    """Have ``conn`` (autocommit, kept for this only) hear of every feed entry committed from now on."""
    conn.execute(f"LISTEN {FEED_CHANNEL}")


def wait_for_feed(conn: psycopg.Connection, *, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for feed notifications on a listening connection.

    Returns whether any came. Notifications that arrived together are consumed at once: the
    caller reads :func:`feed_after` its last id once for all of them.
    """
    heard = False
    for _ in conn.notifies(timeout=timeout, stop_after=1):
        heard = True
    if heard:
        for _ in conn.notifies(timeout=0.001):
            pass
    return heard


# --- reads --------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Rows as JSON-ready values: times as ISO 8601 in UTC, nested containers converted."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def alert_snapshot(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    """The alert as the console shows it: its row, its tier clocks and its assignments."""
    row = conn.execute("SELECT wp_alert_snapshot(%s)", (alert_id,)).fetchone()
    if row is None or row[0] is None:
        raise NotFound(f"no alert {alert_id}")
    return row[0]


def list_alerts(
    conn: psycopg.Connection,
    *,
    site_id: str | None = None,
    type_: str | None = None,
    severity: str | None = None,
    states: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    unit_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts newest first, filtered; ``unit_id`` keeps only alerts that unit was assigned to."""
    where, params = ["true"], []
    for column, value in (("site_id", site_id), ("type", type_), ("severity", severity)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if states:
        where.append("state = ANY(%s)")
        params.append(list(states))
    if since is not None:
        where.append("created_at >= %s")
        params.append(since)
    if until is not None:
        where.append("created_at < %s")
        params.append(until)
    if before_id is not None:
        where.append("alert_id < %s")
        params.append(before_id)
    if unit_id is not None:
        where.append("alert_id IN (SELECT alert_id FROM assignments WHERE unit_id = %s)")
        params.append(unit_id)
    with conn.cursor(row_factory=dict_row) as cur:
        ids = [
            r["alert_id"]
            for r in cur.execute(
                f"SELECT alert_id FROM alerts WHERE {' AND '.join(where)} ORDER BY alert_id DESC LIMIT %s",
                (*params, limit),
            ).fetchall()
        ]
    return [alert_snapshot(conn, alert_id) for alert_id in ids]


def alert_timeline(conn: psycopg.Connection, alert_id: int) -> list[dict[str, Any]]:
    """Every transition of the alert, oldest first."""
    get_alert_row(conn, alert_id)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT transition_id, at, action, from_state, to_state, actor, detail FROM alert_transitions"
            " WHERE alert_id = %s ORDER BY transition_id",
            (alert_id,),
        ).fetchall()
    return jsonable(rows)


def alert_sources(conn: psycopg.Connection, alert_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    """The events the alert was raised from (still within event retention), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT e.event_id, e.occurred_at, e.received_at, e.device_id, e.site_id, e.kind, e.code,"
            " e.source_format, e.plate, e.confidence, e.zone, e.count, e.state, e.attributes"
            " FROM alert_events ae JOIN events e ON e.event_id = ae.event_id AND e.occurred_at = ae.occurred_at"
            " WHERE ae.alert_id = %s ORDER BY e.occurred_at LIMIT %s",
            (alert_id, limit),
        ).fetchall()
    return jsonable([{**r, "event_id": str(r["event_id"])} for r in rows])
