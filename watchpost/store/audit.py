"""The audit log of personal-data queries: append-only rows chained by SHA-256.

Each row's hash covers the previous row's hash and its own content (canonical JSON), so
:func:`verify_audit` finds the first row that was edited, removed or inserted out of turn.
Rows are appended under a transaction-level advisory lock: the chain has one order.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from watchpost.store.alerts import jsonable

__all__ = ["append_audit", "read_audit", "verify_audit"]

_AUDIT_LOCK = 0x57A7C6
_GENESIS = b"\0" * 32


def _digest(
    prev: bytes,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    query: dict[str, Any],
    purpose: str,
    result_count: int,
) -> bytes:
    body = json.dumps(
        [at.astimezone(UTC).isoformat(), actor, role, action, query, purpose, result_count],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(prev + body.encode("utf-8")).digest()


def append_audit(
    conn: psycopg.Connection,
    *,
    actor: str,
    role: str,
    action: str,
    query: dict[str, Any],
    purpose: str,
    result_count: int,
) -> int:
    """Append one row (in the caller's transaction, or its own); return its id."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_AUDIT_LOCK,))
        row = conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
        prev = bytes(row[0]) if row else _GENESIS
        at = datetime.now(UTC)
        clean = json.loads(json.dumps(query, default=str))
        digest = _digest(prev, at, actor, role, action, clean, purpose, result_count)
        new = conn.execute(
            "INSERT INTO audit_log (at, actor, role, action, query, purpose, result_count, prev_hash, hash)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (at, actor, role, action, Jsonb(clean), purpose, result_count, prev, digest),
        ).fetchone()
    assert new is not None
    return int(new[0])


def read_audit(
    conn: psycopg.Connection, *, since: datetime | None = None, before_id: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Audit rows newest first (hashes in hex)."""
    where, params = ["true"], []
    if since is not None:
        where.append("at >= %s")
        params.append(since)
    if before_id is not None:
        where.append("id < %s")
        params.append(before_id)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT id, at, actor, role, action, query, purpose, result_count, prev_hash, hash FROM audit_log"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
            (*params, limit),
        ).fetchall()
    return jsonable([{**r, "prev_hash": bytes(r["prev_hash"]).hex(), "hash": bytes(r["hash"]).hex()} for r in rows])


def verify_audit(conn: psycopg.Connection) -> dict[str, Any]:
    """Walk the whole chain: {"ok", "rows", "first_broken_id", "reason"}."""
    prev = _GENESIS
    count = 0
    with conn.transaction(), conn.cursor(name="audit_walk") as cur:  # streamed: the log may be long
        cur.execute(
            "SELECT id, at, actor, role, action, query, purpose, result_count, prev_hash, hash"
            " FROM audit_log ORDER BY id"
        )
        for row in cur:
            count += 1
            ident, at, actor, role, action, query, purpose, result_count, prev_hash, digest = row
            if bytes(prev_hash) != prev:
                return {"ok": False, "rows": count, "first_broken_id": ident, "reason": "previous hash does not match"}
            if _digest(prev, at, actor, role, action, query, purpose, result_count) != bytes(digest):
                return {"ok": False, "rows": count, "first_broken_id": ident, "reason": "content does not match hash"}
            prev = bytes(digest)
    return {"ok": True, "rows": count, "first_broken_id": None, "reason": ""}
