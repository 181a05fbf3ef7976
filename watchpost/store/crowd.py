"""The crowd detector's storage: zone counts (observations), alert snapshots, camera health and pictures.

Observations are written without the alert lock (like events); snapshots only in the
transaction that raises or folds into their alert, which holds it. Frames are never stored
but as an alert's snapshot; a camera's picture is its model's empty scene, not a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from watchpost.config import StorageConfig
from watchpost.model import OPEN_STATES, AlertState, CameraPicture, CameraStatus, Observation
from watchpost.store.alerts import append_feed, lock_alerts, record_transition
from watchpost.store.events import drop_partitions, layout_of

__all__ = [
    "Snapshot",
    "camera_picture",
    "camera_picture_sizes",
    "camera_statuses",
    "drop_camera_picture",
    "drop_expired_crowd",
    "insert_observations",
    "insert_snapshot",
    "latest_counts",
    "latest_snapshot",
    "note_open_alert",
    "observation_series",
    "put_camera_picture",
    "upsert_camera_status",
]

Snapshot = dict[str, Any]  # taken_at, device_id, zone, width, height, jpeg (bytes)


def insert_observations(conn: psycopg.Connection, *, observations: Sequence[Observation]) -> int:
    """Store zone counts (binary COPY); the caller has made the day's partitions (native layout)."""
    if not observations:
        return 0
    with conn.cursor() as cur:
        with cur.copy("COPY observations (at, device_id, zone, people) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(("timestamptz", "text", "text", "float4"))
            for o in observations:
                copy.write_row((o.at, o.device_id, o.zone, o.people))
    return len(observations)


def observation_series(
    conn: psycopg.Connection,
    *,
    device_id: str,
    zones: Sequence[str] | None,
    since: datetime,
    until: datetime,
    bucket_s: int,
) -> list[dict[str, Any]]:
    """Zone counts of a device in [since, until) per bucket of ``bucket_s`` seconds, oldest first.

    Each row: zone, bucket start (``at``), mean, min, max and the number of samples. Buckets
    are aligned to the Unix epoch, so the same bucket has the same bounds in every query.
    """
    where = ["device_id = %s", "at >= %s", "at < %s"]
    params: list[Any] = [device_id, since, until]
    if zones:
        where.append("zone = ANY(%s)")
        params.append(list(zones))
    query = (
        "SELECT zone, date_bin(make_interval(secs => %s), at, 'epoch'::timestamptz) AS at,"
        " avg(people)::float8 AS mean, min(people)::float8 AS min, max(people)::float8 AS max, count(*) AS samples"
        f" FROM observations WHERE {' AND '.join(where)} GROUP BY 1, 2 ORDER BY 1, 2"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, (bucket_s, *params)).fetchall()  # type: ignore[arg-type]


def latest_counts(
    conn: psycopg.Connection, *, device_ids: Sequence[str], since: datetime
) -> dict[str, dict[str, tuple[datetime, float]]]:
    """Each zone's newest count taken at or after ``since``, for all these cameras in one query:
    device -> zone -> (at, people)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (device_id, zone) device_id, zone, at, people FROM observations"
        " WHERE device_id = ANY(%s) AND at >= %s ORDER BY device_id, zone, at DESC",
        (list(device_ids), since),
    ).fetchall()
    out: dict[str, dict[str, tuple[datetime, float]]] = {}
    for device_id, zone, at, people in rows:
        out.setdefault(device_id, {})[zone] = (at, float(people))
    return out


def insert_snapshot(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    taken_at: datetime,
    device_id: str,
    zone: str | None,
    width: int,
    height: int,
    jpeg: bytes,
) -> int:
    """Keep the annotated picture of an alert; runs in the transaction that raised (or folded into) it."""
    row = conn.execute(
        "INSERT INTO alert_snapshots (alert_id, taken_at, device_id, zone, width, height, jpeg)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING snapshot_id",
        (alert_id, taken_at, device_id, zone, width, height, jpeg),
    ).fetchone()
    assert row is not None
    return int(row[0])


def latest_snapshot(conn: psycopg.Connection, alert_id: int) -> Snapshot | None:
    """The newest snapshot of the alert, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT snapshot_id, taken_at, device_id, zone, width, height, jpeg FROM alert_snapshots"
            " WHERE alert_id = %s ORDER BY snapshot_id DESC LIMIT 1",
            (alert_id,),
        ).fetchone()
    if row is not None:
        row["jpeg"] = bytes(row["jpeg"])
    return row


def note_open_alert(
    conn: psycopg.Connection,
    *,
    dedup_key: str,
    action: str,
    actor: str,
    detail: dict[str, Any],
    seen_at: datetime,
) -> int | None:
    """Record ``action`` on the timeline of the open alert with ``dedup_key`` and merge ``detail`` into it.

    The alert's state does not change (a crowd that went home does not resolve an alert a unit
    is on its way to: people decide that); ``last_seen`` moves to ``seen_at``, the console hears
    of it through an ``updated`` feed entry. Returns the alert id, None when no alert is open.
    Takes the alert lock; runs in the caller's transaction.
    """
    lock_alerts(conn)
    row = conn.execute(
        "SELECT alert_id, state FROM alerts WHERE dedup_key = %s AND state = ANY(%s)"
        " ORDER BY last_seen DESC LIMIT 1 FOR UPDATE",
        (dedup_key, list(OPEN_STATES)),
    ).fetchone()
    if row is None:
        return None
    alert_id, state = int(row[0]), AlertState(row[1])
    conn.execute(
        "UPDATE alerts SET detail = detail || %s, last_seen = greatest(last_seen, %s), updated_at = now()"
        " WHERE alert_id = %s",
        (Jsonb(detail), seen_at, alert_id),
    )
    record_transition(
        conn, alert_id=alert_id, action=action, from_state=state, to_state=state, actor=actor, detail=detail
    )
    append_feed(conn, kind="updated", alert_id=alert_id, body={"change": action})
    return alert_id


def upsert_camera_status(conn: psycopg.Connection, *, statuses: Sequence[CameraStatus]) -> None:
    """Record cameras' health; a camera that sent frames counts as heard from (``device_seen``)."""
    if not statuses:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO camera_status (device_id, worker, state, reason, source, last_frame_at, frames, errors,"
            " reconnects, people, last_error, last_error_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())"
            " ON CONFLICT (device_id) DO UPDATE SET worker = EXCLUDED.worker, state = EXCLUDED.state,"
            " reason = EXCLUDED.reason, source = EXCLUDED.source, last_frame_at = EXCLUDED.last_frame_at,"
            " frames = EXCLUDED.frames, errors = EXCLUDED.errors, reconnects = EXCLUDED.reconnects,"
            " people = EXCLUDED.people, last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at,"
            " updated_at = now()",
            [
                (
                    s.device_id,
                    s.worker,
                    s.state,
                    s.reason,
                    s.source,
                    s.last_frame_at,
                    s.frames,
                    s.errors,
                    s.reconnects,
                    s.people,
                    s.last_error,
                    s.last_error_at,
                )
                for s in statuses
            ],
        )
        seen = sorted((s.device_id, s.last_frame_at) for s in statuses if s.last_frame_at is not None)
        cur.executemany(
            "INSERT INTO device_seen (device_id, last_received) VALUES (%s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET last_received = EXCLUDED.last_received"
            " WHERE device_seen.last_received < EXCLUDED.last_received",
            seen,
        )


def camera_statuses(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """Every counting camera's last reported health, by device id."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT device_id, worker, state, reason, source, last_frame_at, frames, errors, reconnects, people,"
            " last_error, last_error_at, updated_at FROM camera_status ORDER BY device_id"
        ).fetchall()
    return {r["device_id"]: r for r in rows}


def put_camera_picture(conn: psycopg.Connection, *, picture: CameraPicture) -> None:
    """Keep a camera's picture of its empty scene, replacing the one before."""
    conn.execute(
        "INSERT INTO camera_pictures (device_id, taken_at, width, height, frame_width, frame_height, jpeg)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET taken_at = EXCLUDED.taken_at,"
        " width = EXCLUDED.width, height = EXCLUDED.height, frame_width = EXCLUDED.frame_width,"
        " frame_height = EXCLUDED.frame_height, jpeg = EXCLUDED.jpeg",
        (
            picture.device_id,
            picture.taken_at,
            picture.width,
            picture.height,
            picture.frame_width,
            picture.frame_height,
            picture.jpeg,
        ),
    )


def drop_camera_picture(conn: psycopg.Connection, device_id: str) -> bool:
    """Forget a camera's picture (its camera keeps none); True when there was one."""
    return conn.execute("DELETE FROM camera_pictures WHERE device_id = %s", (device_id,)).rowcount > 0


def camera_picture(conn: psycopg.Connection, device_id: str) -> CameraPicture | None:
    """A camera's latest picture of its empty scene."""
    row = conn.execute(
        "SELECT device_id, taken_at, width, height, frame_width, frame_height, jpeg FROM camera_pictures"
        " WHERE device_id = %s",
        (device_id,),
    ).fetchone()
    return None if row is None else CameraPicture(*row[:6], jpeg=bytes(row[6]))


def camera_picture_sizes(conn: psycopg.Connection) -> dict[str, CameraPicture]:
    """Every camera's picture without its JPEG (``jpeg`` empty): when it was taken and its sizes."""
    rows = conn.execute(
        "SELECT device_id, taken_at, width, height, frame_width, frame_height FROM camera_pictures"
    ).fetchall()
    return {r[0]: CameraPicture(*r, jpeg=b"") for r in rows}


def drop_expired_crowd(conn: psycopg.Connection, *, storage: StorageConfig, now: datetime) -> dict[str, int]:
    """Retention of observations (native layout: whole days; TimescaleDB has its own policy) and snapshots."""
    dropped = {"observation_partitions": 0, "snapshots": 0}
    cutoff = now - timedelta(days=storage.observation_retention_days)
    if layout_of(conn) == "native":
        dropped["observation_partitions"] = drop_partitions(conn, table="observations", cutoff=cutoff)
    snap_cutoff = now - timedelta(days=storage.snapshot_retention_days)
    dropped["snapshots"] = conn.execute("DELETE FROM alert_snapshots WHERE taken_at < %s", (snap_cutoff,)).rowcount
    return dropped
