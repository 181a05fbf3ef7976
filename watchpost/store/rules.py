"""What rule detectors remember, in the database so that they survive restarts and are shared
by every ingest worker: hotlists, event rates per minute, door states, when devices were last
heard from, and site response levels.

None of these writes takes the alert lock (see :mod:`watchpost.store.alerts`), except the
site level, which is written together with alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from watchpost.config import WatchpostConfig
from watchpost.model import OPEN_STATES, Conflict, NotFound
from watchpost.store.alerts import jsonable, lock_alerts

__all__ = [
    "HotlistEntryRow",
    "add_hotlist_entry",
    "bump_rates",
    "case_counts",
    "count_recent",
    "count_reports",
    "delete_hotlist_entry",
    "get_hotlist_entry",
    "hotlist_version",
    "list_hotlist",
    "load_hotlists",
    "open_doors",
    "open_offline_alerts",
    "rate_window",
    "set_door_states",
    "set_site_level",
    "silent_devices",
    "site_levels",
    "sync_hotlists",
    "update_hotlist_entry",
]


@dataclass(frozen=True, slots=True)
class HotlistEntryRow:
    """A hotlist entry as the matchers cache it."""

    entry_id: int
    list: str
    value: str
    reason: str
    owner: str
    expires: date | None


def sync_hotlists(conn: psycopg.Connection, *, config: WatchpostConfig) -> None:
    """Seed the configured hotlist entries; entries that left the configuration go too.

    Entries added through the API (source 'api') are never touched here.
    """
    rows = [("plates", e.value, e.reason, e.owner, e.expires) for e in config.hotlists.plates] + [
        ("rfid_tags", e.value.upper(), e.reason, e.owner, e.expires) for e in config.hotlists.rfid_tags
    ]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO hotlist_entries (list, value, reason, owner, expires, source, created_by)"
            " VALUES (%s, %s, %s, %s, %s, 'config', 'config')"
            " ON CONFLICT (list, value) DO UPDATE SET reason = EXCLUDED.reason, owner = EXCLUDED.owner,"
            " expires = EXCLUDED.expires, updated_at = now()"
            " WHERE hotlist_entries.source = 'config' AND (hotlist_entries.reason, hotlist_entries.owner,"
            " hotlist_entries.expires) IS DISTINCT FROM (EXCLUDED.reason, EXCLUDED.owner, EXCLUDED.expires)",
            rows,
        )
    conn.execute(
        "DELETE FROM hotlist_entries WHERE source = 'config'"
        " AND (list, value) NOT IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
        ([r[0] for r in rows], [r[1] for r in rows]),
    )


def hotlist_version(conn: psycopg.Connection) -> int:
    """A number that changes whenever any hotlist entry does."""
    row = conn.execute("SELECT value FROM watchpost_meta WHERE key = 'hotlist_version'").fetchone()
    return int(row[0]) if row else 0


def load_hotlists(conn: psycopg.Connection) -> list[HotlistEntryRow]:
    """Every hotlist entry (expired ones too: the matcher checks expiry at the read's time)."""
    rows = conn.execute(
        "SELECT entry_id, list, value, reason, owner, expires FROM hotlist_entries ORDER BY entry_id"
    ).fetchall()
    return [HotlistEntryRow(*r) for r in rows]


_ENTRY_COLUMNS = "entry_id, list, value, reason, owner, note, expires, source, created_at, created_by, updated_at"


def list_hotlist(conn: psycopg.Connection, *, list_name: str | None = None) -> list[dict[str, Any]]:
    """Hotlist entries for the API."""
    where, params = "true", []
    if list_name is not None:
        where, params = "list = %s", [list_name]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM hotlist_entries WHERE {where} ORDER BY list, value", params
        ).fetchall()
    return jsonable(rows)


def get_hotlist_entry(conn: psycopg.Connection, entry_id: int) -> dict[str, Any]:
    """One entry; :class:`NotFound` when there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_ENTRY_COLUMNS} FROM hotlist_entries WHERE entry_id = %s", (entry_id,)).fetchone()
    if row is None:
        raise NotFound(f"no hotlist entry {entry_id}")
    return jsonable(row)


def add_hotlist_entry(
    conn: psycopg.Connection,
    *,
    list_name: str,
    value: str,
    reason: str,
    owner: str,
    note: str,
    expires: date | None,
    actor: str,
) -> dict[str, Any]:
    """Add an entry; :class:`Conflict` when the value is already on that list."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO hotlist_entries (list, value, reason, owner, note, expires, source, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'api', %s) ON CONFLICT (list, value) DO NOTHING"
            f" RETURNING {_ENTRY_COLUMNS}",
            (list_name, value, reason, owner, note, expires, actor),
        ).fetchone()
    if row is None:
        raise Conflict(f"{value!r} is already on the {list_name} hotlist")
    return jsonable(row)


def update_hotlist_entry(conn: psycopg.Connection, *, entry_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Change reason, owner, note or expiry of an entry."""
    allowed = {"reason", "owner", "note", "expires"}
    sets = {k: v for k, v in fields.items() if k in allowed}
    if not sets:
        return get_hotlist_entry(conn, entry_id)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"UPDATE hotlist_entries SET {', '.join(f'{k} = %s' for k in sets)}, updated_at = now()"
            f" WHERE entry_id = %s RETURNING {_ENTRY_COLUMNS}",
            (*sets.values(), entry_id),
        ).fetchone()
    if row is None:
        raise NotFound(f"no hotlist entry {entry_id}")
    return jsonable(row)


def delete_hotlist_entry(conn: psycopg.Connection, *, entry_id: int) -> None:
    """Remove an entry; :class:`NotFound` when there is none."""
    if conn.execute("DELETE FROM hotlist_entries WHERE entry_id = %s", (entry_id,)).rowcount == 0:
        raise NotFound(f"no hotlist entry {entry_id}")


# --- counts and rates ---------------------------------------------------------------------------


def count_recent(
    conn: psycopg.Connection,
    *,
    device_id: str,
    kinds: Sequence[str],
    codes: Sequence[str],
    attribute: tuple[str, str] | None,
    since: datetime,
    until: datetime,
) -> int:
    """How many stored events of a device match, between two times (both inclusive)."""
    where = ["device_id = %s", "occurred_at >= %s", "occurred_at <= %s", "kind = ANY(%s)"]
    params: list[Any] = [device_id, since, until, list(kinds)]
    if codes:
        where.append("code = ANY(%s)")
        params.append(list(codes))
    if attribute is not None:
        where.append("attributes ->> %s = %s")
        params.extend(attribute)
    row = conn.execute(f"SELECT count(*) FROM events WHERE {' AND '.join(where)}", params).fetchone()
    return int(row[0]) if row else 0


def count_reports(
    conn: psycopg.Connection,
    *,
    device_id: str,
    zone: str | None,
    kinds: Sequence[str],
    since: datetime,
    until: datetime,
) -> list[tuple[datetime, int | None]]:
    """The people counts a device reported for one zone (None: the whole view), oldest first, between two times
    (both inclusive); repeats of a vendor's event are left out."""
    rows = conn.execute(
        "SELECT occurred_at, count FROM events WHERE device_id = %s AND kind = ANY(%s) AND zone IS NOT DISTINCT FROM %s"
        " AND occurred_at >= %s AND occurred_at <= %s AND NOT repeat ORDER BY occurred_at",
        (device_id, list(kinds), zone, since, until),
    ).fetchall()
    return [(r[0], None if r[1] is None else int(r[1])) for r in rows]


def bump_rates(conn: psycopg.Connection, *, counts: Sequence[tuple[str, str, datetime, int]]) -> None:
    """Add (device, kind, minute, n) to the per-minute event counts (in a fixed order: no deadlocks)."""
    if not counts:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO event_rates (device_id, kind, minute, n) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (device_id, kind, minute) DO UPDATE SET n = event_rates.n + EXCLUDED.n",
            sorted(counts),
        )


def rate_window(
    conn: psycopg.Connection,
    *,
    device_id: str,
    kinds: Sequence[str],
    recent_since: datetime,
    baseline_since: datetime,
    until: datetime,
) -> tuple[int, int, datetime | None]:
    """Events of a device in [recent_since, until], in [baseline_since, recent_since), and the first
    minute on record for it within the baseline (None when there is none): a baseline that
    began only minutes ago is no baseline."""
    row = conn.execute(
        "SELECT coalesce(sum(n) FILTER (WHERE minute >= %s), 0), coalesce(sum(n) FILTER (WHERE minute < %s), 0),"
        " min(minute) FROM event_rates WHERE device_id = %s AND kind = ANY(%s) AND minute >= %s AND minute <= %s",
        (recent_since, recent_since, device_id, list(kinds), baseline_since, until),
    ).fetchone()
    return (int(row[0]), int(row[1]), row[2]) if row else (0, 0, None)


# --- doors and silence --------------------------------------------------------------------------


def set_door_states(conn: psycopg.Connection, *, states: Sequence[tuple[str, int, str, datetime]]) -> None:
    """Record (device, door, 'open'|'closed', since); an older report never overwrites a newer one."""
    if not states:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO door_states (device_id, door, state, since) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (device_id, door) DO UPDATE SET state = EXCLUDED.state, since = EXCLUDED.since"
            " WHERE door_states.since <= EXCLUDED.since",
            sorted(states),
        )


def open_doors(conn: psycopg.Connection, *, opened_before: datetime) -> list[tuple[str, int, datetime]]:
    """Doors open since before ``opened_before``: (device, door, since)."""
    rows = conn.execute(
        "SELECT device_id, door, since FROM door_states WHERE state = 'open' AND since < %s ORDER BY device_id, door",
        (opened_before,),
    ).fetchall()
    return [(r[0], int(r[1]), r[2]) for r in rows]


def silent_devices(conn: psycopg.Connection, *, now: datetime, grace: float) -> list[dict[str, Any]]:
    """Devices with a heartbeat interval that were heard from once and not for ``grace`` intervals since."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT d.device_id, d.site_id, d.kind, d.name, d.lat, d.lon, d.heartbeat_s, s.last_received"
            " FROM devices d JOIN device_seen s USING (device_id)"
            " WHERE d.heartbeat_s IS NOT NULL AND s.last_received < %s - make_interval(secs => d.heartbeat_s * %s)",
            (now, grace),
        ).fetchall()


def open_offline_alerts(conn: psycopg.Connection) -> list[tuple[int, str, datetime | None, datetime]]:
    """Open device-offline alerts with when their device was last heard from: (alert, device, last, raised)."""
    rows = conn.execute(
        "SELECT a.alert_id, a.device_id, s.last_received, a.first_seen FROM alerts a"
        " LEFT JOIN device_seen s USING (device_id)"
        " WHERE a.type = 'device_offline' AND a.state = ANY(%s)",
        (list(OPEN_STATES),),
    ).fetchall()
    return [(int(r[0]), r[1], r[2], r[3]) for r in rows]


# --- site response levels -----------------------------------------------------------------------


def case_counts(
    conn: psycopg.Connection, *, case_types: Sequence[str], windows: Sequence[tuple[datetime, datetime]]
) -> dict[str, list[int]]:
    """Per site, case-type alerts created in each [start, end) window (cancelled ones do not count)."""
    selects = ", ".join(
        f"count(*) FILTER (WHERE created_at >= %s AND created_at < %s) AS w{i}" for i in range(len(windows))
    )
    params: list[Any] = [t for window in windows for t in window]
    earliest = min(w[0] for w in windows)
    rows = conn.execute(
        f"SELECT site_id, {selects} FROM alerts WHERE type = ANY(%s) AND state <> 'cancelled'"
        " AND created_at >= %s AND site_id IS NOT NULL GROUP BY site_id",
        (*params, list(case_types), earliest),
    ).fetchall()
    return {r[0]: [int(x) for x in r[1:]] for r in rows}


def site_levels(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Current response level of every site that has one recorded."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT site_id, level, since, until, reason, detail FROM site_levels").fetchall()
    return {r["site_id"]: jsonable(r) for r in rows}


def set_site_level(
    conn: psycopg.Connection,
    *,
    site_id: str,
    level: int,
    reason: str,
    detail: dict[str, Any],
    until: datetime | None,
) -> int | None:
    """Record a site's response level; return the previous level when it changed, else None."""
    lock_alerts(conn)
    row = conn.execute("SELECT level FROM site_levels WHERE site_id = %s FOR UPDATE", (site_id,)).fetchone()
    previous = int(row[0]) if row else 0
    if row is not None and previous == level:
        conn.execute(
            "UPDATE site_levels SET detail = %s, until = %s WHERE site_id = %s", (Jsonb(detail), until, site_id)
        )
        return None
    conn.execute(
        "INSERT INTO site_levels (site_id, level, since, until, reason, detail) VALUES (%s, %s, now(), %s, %s, %s)"
        " ON CONFLICT (site_id) DO UPDATE SET level = EXCLUDED.level, since = now(), until = EXCLUDED.until,"
        " reason = EXCLUDED.reason, detail = EXCLUDED.detail",
        (site_id, level, until, reason, Jsonb(detail)),
    )
    if row is None and level == 0:
        return None
    conn.execute(
        "INSERT INTO site_level_changes (site_id, from_level, to_level, reason, detail) VALUES (%s, %s, %s, %s, %s)",
        (site_id, previous, level, reason, Jsonb(detail)),
    )
    return previous
