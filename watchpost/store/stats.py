"""Reports the command centre asks for: 1-3-5 compliance, alerts per period, the zero-case
board and device health. Periods are local calendar periods in the configured time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

from watchpost.store.alerts import jsonable
from watchpost.store.crowd import camera_statuses

__all__ = ["Bucket", "alert_counts", "compliance", "device_health", "zero_case_board"]

Bucket = Literal["day", "week", "month", "quarter"]


def compliance(
    conn: psycopg.Connection,
    *,
    since: datetime,
    until: datetime,
    bucket: Bucket,
    timezone: str,
    site_id: str | None = None,
    severity: str | None = None,
    by_site: bool = True,
) -> list[dict[str, Any]]:
    """Per period (and site), severity and tier: tiers requested, met, missed, pending, void.

    ``share_met`` is met / (met + missed): pending tiers are not decided yet and void ones
    (the alert ended before its deadline with nobody needed) count neither way. Arrival
    seconds are from the alert's creation to the unit on scene that met or (late) closed it.
    """
    where, params = ["a.created_at >= %s", "a.created_at < %s"], [since, until]
    if site_id is not None:
        where.append("a.site_id = %s")
        params.append(site_id)
    if severity is not None:
        where.append("a.severity = %s")
        params.append(severity)
    site = "a.site_id" if by_site else "NULL::text"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT date_trunc(%s, a.created_at AT TIME ZONE %s)::date AS period, {site} AS site_id,"
            " a.severity, t.tier, max(t.deadline_at - a.created_at) AS deadline,"
            " count(*) AS requested,"
            " count(*) FILTER (WHERE t.state = 'met') AS met,"
            " count(*) FILTER (WHERE t.state = 'missed') AS missed,"
            " count(*) FILTER (WHERE t.state = 'pending') AS pending,"
            " count(*) FILTER (WHERE t.state = 'void') AS void,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
            "   coalesce(t.met_at, t.arrived_at) - a.created_at)) AS median_arrival_s,"
            " max(extract(epoch FROM coalesce(t.met_at, t.arrived_at) - a.created_at)) AS max_arrival_s"
            " FROM alert_tiers t JOIN alerts a USING (alert_id)"
            f" WHERE {' AND '.join(where)} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            (bucket, timezone, *params),
        ).fetchall()
    out = []
    for r in rows:
        decided = r["met"] + r["missed"]
        deadline = r.pop("deadline")
        out.append(
            {
                **r,
                "period": r["period"].isoformat(),
                "deadline_s": int(deadline.total_seconds()) if deadline is not None else None,
                "share_met": round(r["met"] / decided, 4) if decided else None,
                "median_arrival_s": _round(r["median_arrival_s"]),
                "max_arrival_s": _round(r["max_arrival_s"]),
            }
        )
    return out


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def alert_counts(
    conn: psycopg.Connection,
    *,
    since: datetime,
    until: datetime,
    bucket: Bucket,
    timezone: str,
    site_id: str | None = None,
) -> list[dict[str, Any]]:
    """Alerts per period, site and type (cancelled ones excluded), with how many were false alarms."""
    where, params = ["created_at >= %s", "created_at < %s", "state <> 'cancelled'"], [since, until]
    if site_id is not None:
        where.append("site_id = %s")
        params.append(site_id)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT date_trunc(%s, created_at AT TIME ZONE %s)::date AS period, site_id, type,"
            " count(*) AS alerts, sum(count) AS sightings,"
            " count(*) FILTER (WHERE outcome = 'false_alarm') AS false_alarms"
            f" FROM alerts WHERE {' AND '.join(where)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            (bucket, timezone, *params),
        ).fetchall()
    return [{**r, "period": r["period"].isoformat(), "sightings": int(r["sightings"] or 0)} for r in rows]


def zero_case_board(
    conn: psycopg.Connection, *, case_types: Sequence[str], now: datetime, timezone: str, since: datetime
) -> list[dict[str, Any]]:
    """Per site: its last case-type alert, whole local days since, and case alerts since ``since``."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT s.site_id, s.name, s.kind, c.last_case_at, c.last_case_type,"
            " coalesce(c.cases_in_period, 0) AS cases_in_period,"
            " (%s AT TIME ZONE %s)::date - (c.last_case_at AT TIME ZONE %s)::date AS days_since_case,"
            " coalesce(l.level, 0) AS response_level"
            " FROM sites s LEFT JOIN ("
            "   SELECT DISTINCT ON (site_id) site_id, created_at AS last_case_at, type AS last_case_type,"
            "     count(*) FILTER (WHERE created_at >= %s) OVER (PARTITION BY site_id) AS cases_in_period"
            "   FROM alerts WHERE type = ANY(%s) AND state <> 'cancelled' AND site_id IS NOT NULL"
            "   ORDER BY site_id, created_at DESC) c USING (site_id)"
            " LEFT JOIN site_levels l USING (site_id)"
            " ORDER BY coalesce(c.cases_in_period, 0), c.last_case_at NULLS FIRST, s.site_id",
            (now, timezone, timezone, since, list(case_types)),
        ).fetchall()
    for r in rows:
        r["zero_case"] = r["cases_in_period"] == 0
    return jsonable(rows)


def device_health(conn: psycopg.Connection, *, now: datetime) -> list[dict[str, Any]]:
    """Per configured device: last heard from, silent past its heartbeat or not, open alerts."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT d.device_id, d.site_id, d.kind, d.name, d.lat, d.lon, d.heartbeat_s, s.last_received,"
            " extract(epoch FROM %s - s.last_received) AS silent_s,"
            " (SELECT count(*) FROM alerts a WHERE a.device_id = d.device_id"
            "   AND a.state NOT IN ('resolved', 'cancelled')) AS open_alerts"
            " FROM devices d LEFT JOIN device_seen s USING (device_id) ORDER BY d.site_id, d.device_id",
            (now,),
        ).fetchall()
    cameras = camera_statuses(conn)
    for r in rows:
        r["camera"] = cameras.get(r["device_id"])
        silent = r["silent_s"]
        r["silent_s"] = _round(silent)
        if r["last_received"] is None:
            r["status"] = "never_seen"
        elif r["heartbeat_s"] and silent is not None and float(silent) > r["heartbeat_s"]:
            r["status"] = "silent"
        else:
            r["status"] = "ok"
    return jsonable(rows)
