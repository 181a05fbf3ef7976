"""Schema, migrations, batched idempotent event writes, dead letters, queries and retention.

Events are a
TimescaleDB hypertable when the extension can be created, native daily range partitions when
not; the chosen layout is recorded and never flips on restart.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb, set_json_dumps
from psycopg_pool import ConnectionPool

from watchpost.config import StorageConfig, WatchpostConfig
from watchpost.model import DeadLetter, Event

__all__ = [
    "DatabaseError",
    "Layout",
    "OperationalError",
    "PartitionCache",
    "connect",
    "count_events",
    "dead_letter_counts",
    "device_counts",
    "drop_expired",
    "drop_partitions",
    "ensure_partitions",
    "insert_dead_letters",
    "insert_events",
    "list_dead_letters",
    "migrate",
    "open_pool",
    "plate_sightings",
    "recent_events",
    "sync_config",
]

# The errors a caller retries on: the server went away, refused us, or a statement failed.
DatabaseError = psycopg.Error
OperationalError = psycopg.OperationalError  # the server is gone or refuses us: an outage, not a bug
Layout = str  # "timescaledb" or "native"

_MIGRATION_LOCK = 0x57A7C1  # advisory lock key: one migrator at a time
_PARTITION_LOCK = 0x57A7C2  # advisory lock key: one partition creator at a time
_EVENT_COLUMNS = (
    "occurred_at",
    "event_id",
    "received_at",
    "device_time",
    "clock",
    "device_id",
    "site_id",
    "kind",
    "code",
    "source_format",
    "topic",
    "ref",
    "plate",
    "confidence",
    "repeat",
    "zone",
    "count",
    "state",
    "attributes",
)
_EVENT_TYPES = (
    "timestamptz",
    "uuid",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "float4",
    "bool",
    "text",
    "int4",
    "text",
    "jsonb",
)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


set_json_dumps(_dumps)


def connect(url: str, *, application_name: str = "watchpost", connect_timeout: int = 5) -> psycopg.Connection:
    """Open an autocommit connection (explicit ``conn.transaction()`` blocks are real transactions)."""
    return psycopg.connect(url, autocommit=True, application_name=application_name, connect_timeout=connect_timeout)


def open_pool(url: str, *, min_size: int = 1, max_size: int = 8, name: str = "watchpost-api") -> ConnectionPool:
    """A connection pool for the API: autocommit connections, checked before use."""
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True, "application_name": name, "connect_timeout": 5},
        check=ConnectionPool.check_connection,
        open=True,
        name=name,
    )


# --- schema -------------------------------------------------------------------------------------


def migrate(conn: psycopg.Connection, *, storage: StorageConfig) -> Layout:
    """Apply pending migrations and retention policies; return the events layout in use."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS watchpost_meta (key text PRIMARY KEY, value text NOT NULL)")
        layout = _layout(conn)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, text in _migrations(layout):
            if version in applied:
                continue
            with conn.transaction():
                conn.execute(text)  # type: ignore[arg-type]  # migration files are trusted SQL
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        _apply_policies(conn, layout=layout, storage=storage)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    if layout == "native":
        today = datetime.now(UTC).date()
        days = [today + timedelta(days=d) for d in range(-1, 3)]
        ensure_partitions(conn, days=days, cache=PartitionCache())
        ensure_partitions(conn, days=days, cache=PartitionCache(), table="observations")
    return layout


def _layout(conn: psycopg.Connection) -> Layout:
    row = conn.execute("SELECT value FROM watchpost_meta WHERE key = 'layout'").fetchone()
    if row:
        return str(row[0])
    layout = "native"
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if available:
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            layout = "timescaledb"
        except psycopg.Error:
            layout = "native"  # installed but not preloaded: plain partitioning still works
    conn.execute("INSERT INTO watchpost_meta (key, value) VALUES ('layout', %s)", (layout,))
    return layout


def _migrations(layout: Layout) -> list[tuple[str, str]]:
    folder = resources.files("watchpost") / "migrations"
    chosen: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        m = re.fullmatch(r"(\d{3}_[a-z0-9_]+)(?:\.(native|timescaledb|timescale))?\.sql", entry.name)
        if not m:
            continue
        variant = m.group(2)
        if variant == "timescale":
            variant = "timescaledb"
        if variant is None or variant == layout:
            chosen[m.group(1)] = entry.read_text(encoding="utf-8")
    return sorted(chosen.items())


def _apply_policies(conn: psycopg.Connection, *, layout: Layout, storage: StorageConfig) -> None:
    if layout != "timescaledb":
        return
    conn.execute("SELECT remove_retention_policy('events', if_exists => true)")
    conn.execute("SELECT add_retention_policy('events', make_interval(days => %s))", (storage.event_retention_days,))
    conn.execute("SELECT remove_compression_policy('events', if_exists => true)")
    conn.execute("SELECT add_compression_policy('events', make_interval(days => %s))", (storage.compress_after_days,))
    conn.execute("SELECT remove_retention_policy('observations', if_exists => true)")
    conn.execute(
        "SELECT add_retention_policy('observations', make_interval(days => %s))", (storage.observation_retention_days,)
    )


@dataclass
class PartitionCache:
    """Days whose native partition is known to exist, so a batch checks them once."""

    days: set[date] | None = None

    def __post_init__(self) -> None:
        if self.days is None:
            self.days = set()


def ensure_partitions(
    conn: psycopg.Connection, *, days: Iterable[date], cache: PartitionCache, table: str = "events"
) -> None:
    """Create the daily partitions of ``table`` for ``days`` that do not exist yet (native layout only).

    Runs in its own short transaction before a batch touches the table, under an advisory
    lock, so concurrent workers neither race on the DDL nor deadlock against each other.
    ``table`` is ``events`` or ``observations``.
    """
    assert cache.days is not None
    missing = sorted(set(days) - cache.days)
    if not missing:
        return
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
        for day in missing:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(f"{table}_p{day:%Y%m%d}"),
                    sql.Identifier(table),
                    sql.Literal(start),
                    sql.Literal(start + timedelta(days=1)),
                )
            )
    cache.days.update(missing)


def drop_partitions(conn: psycopg.Connection, *, table: str, cutoff: datetime) -> int:
    """Drop the daily partitions of ``table`` that end at or before ``cutoff``; return how many went."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
        (table,),
    ).fetchall()
    dropped = 0
    for (name,) in rows:
        m = re.fullmatch(re.escape(table) + r"_p(\d{8})", name)
        if m is None:
            continue
        end = datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC) + timedelta(days=1)
        if end <= cutoff:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            dropped += 1
    return dropped


def layout_of(conn: psycopg.Connection) -> Layout:
    """The events layout recorded by :func:`migrate`."""
    row = conn.execute("SELECT value FROM watchpost_meta WHERE key = 'layout'").fetchone()
    return str(row[0]) if row else "native"


def sync_config(conn: psycopg.Connection, *, config: WatchpostConfig) -> None:
    """Mirror the configured sites and devices into their tables (upsert; nothing is deleted)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO sites (site_id, name, kind, lat, lon, timezone) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (site_id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind,"
            " lat = EXCLUDED.lat, lon = EXCLUDED.lon, timezone = EXCLUDED.timezone",
            [(s.id, s.name, s.kind, s.position.lat, s.position.lon, s.timezone) for s in config.sites],
        )
        cur.executemany(
            "INSERT INTO devices (device_id, site_id, kind, name, format, lat, lon, heartbeat_s)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET site_id = EXCLUDED.site_id, kind = EXCLUDED.kind,"
            " name = EXCLUDED.name, format = EXCLUDED.format, lat = EXCLUDED.lat, lon = EXCLUDED.lon,"
            " heartbeat_s = EXCLUDED.heartbeat_s",
            [
                (
                    d.id,
                    d.site,
                    d.kind,
                    d.name,
                    d.format,
                    d.position.lat if d.position else None,
                    d.position.lon if d.position else None,
                    d.heartbeat_s,
                )
                for d in config.devices
            ],
        )


# --- writes -------------------------------------------------------------------------------------


def insert_events(conn: psycopg.Connection, *, events: Sequence[Event], fresh: set[uuid.UUID] | None = None) -> int:
    """Store ``events`` by binary COPY; return how many were new (replays insert nothing).

    Must run inside the caller's transaction. The batch is copied into a temporary staging
    table, its keys are claimed in ``event_keys`` (ON CONFLICT DO NOTHING), and only the
    events whose key was new move into ``events``. When ``fresh`` is given, the ids of the
    new events are added to it (rule detectors look at new events only, so a replay raises
    nothing twice). Each device's last receive time is kept in ``device_seen``.
    """
    if not events:
        return 0
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _incoming (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    with conn.cursor() as cur:
        with cur.copy(
            sql.SQL("COPY _incoming ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(map(sql.Identifier, _EVENT_COLUMNS))
            )
        ) as copy:
            copy.set_types(_EVENT_TYPES)
            for e in events:
                copy.write_row(
                    (
                        e.occurred_at,
                        e.event_id,
                        e.received_at,
                        e.device_time,
                        e.clock.value,
                        e.device_id,
                        e.site_id,
                        e.kind.value,
                        e.code,
                        e.source_format,
                        e.topic,
                        e.ref,
                        e.plate,
                        e.confidence,
                        e.repeat,
                        e.zone,
                        e.count,
                        e.state,
                        Jsonb(dict(e.attributes)),
                    )
                )
        cur.execute(
            "WITH fresh AS ("
            "  INSERT INTO event_keys (event_id, occurred_at)"
            "  SELECT DISTINCT ON (event_id) event_id, occurred_at FROM _incoming"
            "  ON CONFLICT (event_id) DO NOTHING RETURNING event_id)"
            " INSERT INTO events SELECT DISTINCT ON (i.event_id) i.* FROM _incoming i JOIN fresh USING (event_id)"
            + (" RETURNING event_id" if fresh is not None else "")
        )
        inserted = cur.rowcount
        if fresh is not None:
            fresh.update(row[0] for row in cur.fetchall())
        # Devices in a fixed order, so that two workers' batches never lock rows crosswise.
        cur.execute(
            "INSERT INTO device_seen (device_id, last_received)"
            " SELECT device_id, max(received_at) FROM _incoming GROUP BY device_id ORDER BY device_id"
            " ON CONFLICT (device_id) DO UPDATE SET last_received = EXCLUDED.last_received"
            " WHERE device_seen.last_received < EXCLUDED.last_received"
        )
        return inserted


def insert_dead_letters(conn: psycopg.Connection, *, letters: Sequence[DeadLetter]) -> None:
    """Store dead letters; the same topic and payload again only counts up ``times_seen``."""
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letters"
            " (digest, received_at, last_seen, topic, device_id, reason, detail, size, payload)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (digest) DO UPDATE SET times_seen = dead_letters.times_seen + 1,"
            " last_seen = EXCLUDED.last_seen",
            [
                (
                    _digest(d),
                    d.received_at,
                    d.received_at,
                    d.topic,
                    d.device_id,
                    d.reason.value,
                    d.detail[:2000],
                    len(d.payload),
                    d.payload,
                )
                for d in letters
            ],
        )


def _digest(letter: DeadLetter) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(letter.topic.encode("utf-8", "replace"))
    h.update(b"\0")
    h.update(letter.payload)
    return h.digest()


# --- retention ----------------------------------------------------------------------------------


def drop_expired(conn: psycopg.Connection, *, storage: StorageConfig, now: datetime) -> dict[str, int]:
    """Enforce retention: old native partitions, idempotency keys and dead letters go."""
    dropped = {"partitions": 0, "event_keys": 0, "dead_letters": 0}
    cutoff = now - timedelta(days=storage.event_retention_days)
    if layout_of(conn) == "native":
        dropped["partitions"] = drop_partitions(conn, table="events", cutoff=cutoff)
    dropped["event_keys"] = conn.execute("DELETE FROM event_keys WHERE occurred_at < %s", (cutoff,)).rowcount
    dead_cutoff = now - timedelta(days=storage.dead_letter_retention_days)
    dropped["dead_letters"] = conn.execute("DELETE FROM dead_letters WHERE last_seen < %s", (dead_cutoff,)).rowcount
    dropped["unit_positions"] = conn.execute("DELETE FROM unit_positions WHERE at < %s", (cutoff,)).rowcount
    feed_cutoff = now - timedelta(days=storage.feed_retention_days)
    dropped["feed"] = conn.execute("DELETE FROM feed WHERE at < %s", (feed_cutoff,)).rowcount
    dropped["outbox"] = conn.execute(
        "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < %s", (feed_cutoff,)
    ).rowcount
    rate_cutoff = now - timedelta(days=storage.rate_retention_days)
    dropped["event_rates"] = conn.execute("DELETE FROM event_rates WHERE minute < %s", (rate_cutoff,)).rowcount
    return dropped


# --- queries ------------------------------------------------------------------------------------


def recent_events(
    conn: psycopg.Connection,
    *,
    limit: int = 100,
    device_id: str | None = None,
    site_id: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    before: datetime | None = None,
) -> list[dict[str, Any]]:
    """The newest events first, filtered; plates are returned as stored."""
    where, params = ["occurred_at >= %s"], [since or datetime.now(UTC) - timedelta(days=7)]
    for column, value in (("device_id", device_id), ("site_id", site_id), ("kind", kind)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if before is not None:
        where.append("occurred_at < %s")
        params.append(before)
    query = (
        "SELECT event_id, occurred_at, received_at, device_time, clock, device_id, site_id, kind, code,"
        " source_format, topic, ref, plate, confidence, repeat, zone, count, state, attributes"
        f" FROM events WHERE {' AND '.join(where)} ORDER BY occurred_at DESC LIMIT %s"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, (*params, limit)).fetchall()  # type: ignore[arg-type]


def plate_sightings(conn: psycopg.Connection, *, plate: str, since: datetime, limit: int) -> list[dict[str, Any]]:
    """Reads of one (still readable) plate, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT event_id, occurred_at, received_at, device_time, clock, device_id, site_id, kind, code,"
            " source_format, topic, ref, plate, confidence, repeat, zone, count, state, attributes"
            " FROM events WHERE plate = %s AND occurred_at >= %s ORDER BY occurred_at DESC LIMIT %s",
            (plate, since, limit),
        ).fetchall()


def count_events(conn: psycopg.Connection) -> int:
    """How many events are stored."""
    row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def list_dead_letters(conn: psycopg.Connection, *, limit: int = 100, reason: str | None = None) -> list[dict[str, Any]]:
    """The newest dead letters first, with a printable preview of the raw bytes."""
    where, params = "", []
    if reason is not None:
        where, params = "WHERE reason = %s", [reason]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, received_at, last_seen, times_seen, topic, device_id, reason, detail, size,"
            f" substring(payload from 1 for 512) AS head FROM dead_letters {where}"
            " ORDER BY received_at DESC, id DESC LIMIT %s",
            (*params, limit),
        ).fetchall()
    return rows


def dead_letter_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Dead letters by reason (replays counted)."""
    rows = conn.execute("SELECT reason, sum(times_seen) FROM dead_letters GROUP BY reason").fetchall()
    return {reason: int(n) for reason, n in rows}


def device_counts(conn: psycopg.Connection, *, since: datetime) -> list[dict[str, Any]]:
    """Per configured device: events since ``since`` by kind, and when it was last heard from."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT d.device_id, d.site_id, d.kind AS device_kind, d.name, d.heartbeat_s,"
            " coalesce(c.total, 0) AS events, coalesce(c.by_kind, '{}'::jsonb) AS by_kind, c.last_received"
            " FROM devices d LEFT JOIN ("
            "   SELECT device_id, sum(n)::bigint AS total, jsonb_object_agg(kind, n) AS by_kind,"
            "          max(last_received) AS last_received"
            "   FROM (SELECT device_id, kind, count(*) AS n, max(received_at) AS last_received"
            "         FROM events WHERE occurred_at >= %s GROUP BY device_id, kind) k"
            "   GROUP BY device_id) c USING (device_id)"
            " ORDER BY d.site_id, d.device_id",
            (since,),
        ).fetchall()


def ping(conn: psycopg.Connection) -> None:
    """Raise :data:`DatabaseError` unless the server answers."""
    conn.execute("SELECT 1")
