"""Privacy enforcement: plates pseudonymised after their readable window with a key per period
(keys destroyed afterwards), dead letters (raw bytes) deleted then too, face-capture events
deleted after theirs.

Runs from the ingest workers' maintenance; one worker at a time (an advisory lock). Plates of
events that raised a hotlist alert stay readable: they are the evidence of a hit.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

import psycopg

from watchpost.config import PrivacyConfig

__all__ = ["PSEUDONYM_PREFIX", "enforce_privacy", "pseudonym"]

PSEUDONYM_PREFIX = "#"  # a stored plate starting with this is a keyed hash, not a plate
_PRIVACY_LOCK = 0x57A7C5
_PERIOD = {"day": ("day", "YYYY-MM-DD"), "week": ("week", 'IYYY-"W"IW'), "month": ("month", "YYYY-MM")}


def _pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA-256's inner and outer pads of a 32-byte key (block size 64)."""
    block = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def pseudonym(key: bytes, plate: str) -> str:
    """What a plate becomes under ``key`` (the same computation the database does)."""
    return PSEUDONYM_PREFIX + hmac.new(key, plate.encode("utf-8"), "sha256").hexdigest()[:32]


def enforce_privacy(conn: psycopg.Connection, *, privacy: PrivacyConfig, now: datetime) -> dict[str, int]:
    """Hash readable plates past their window, destroy keys no longer needed, delete old face captures.

    Returns what was done; an empty dict when another worker holds the job right now.
    """
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_PRIVACY_LOCK,)).fetchone()
    if not row or not row[0]:
        return {}
    try:
        return _enforce(conn, privacy, now)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_PRIVACY_LOCK,))


def _enforce(conn: psycopg.Connection, privacy: PrivacyConfig, now: datetime) -> dict[str, int]:
    unit, fmt = _PERIOD[privacy.key_period]
    cutoff = now - timedelta(days=privacy.plate_readable_days)
    done = {
        "plates_hashed": 0,
        "keys_created": 0,
        "keys_destroyed": 0,
        "face_captures_deleted": 0,
        "dead_letters_deleted": 0,
    }
    with conn.transaction():
        periods = conn.execute(
            f"SELECT DISTINCT to_char(occurred_at AT TIME ZONE 'UTC', '{fmt}'),"
            f" date_trunc('{unit}', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 {unit}'"
            " FROM events WHERE plate IS NOT NULL AND plate NOT LIKE '#%%' AND occurred_at < %s",
            (cutoff,),
        ).fetchall()
        for period, ends_at in periods:
            inner, outer = _pads(secrets.token_bytes(32))
            created = conn.execute(
                "INSERT INTO privacy_keys (period, ends_at, inner_pad, outer_pad) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (period) DO NOTHING",
                (period, ends_at, inner, outer),
            ).rowcount
            done["keys_created"] += created
        done["plates_hashed"] = conn.execute(
            "UPDATE events e SET plate = '#' || left(encode(sha256(k.outer_pad"
            "   || sha256(k.inner_pad || convert_to(e.plate, 'UTF8'))), 'hex'), 32)"
            f" FROM privacy_keys k WHERE k.period = to_char(e.occurred_at AT TIME ZONE 'UTC', '{fmt}')"
            " AND k.inner_pad IS NOT NULL AND e.plate IS NOT NULL AND e.plate NOT LIKE '#%%' AND e.occurred_at < %s"
            " AND NOT EXISTS (SELECT 1 FROM alert_events ae JOIN alerts a USING (alert_id)"
            "   WHERE ae.event_id = e.event_id AND a.type = 'hotlist_plate')",
            (cutoff,),
        ).rowcount
        # A late event (a slow device clock) of a period whose key is gone gets a hash no one can link.
        done["plates_hashed"] += conn.execute(
            "UPDATE events e SET plate = '#' || md5(random()::text || clock_timestamp()::text)"
            f" FROM privacy_keys k WHERE k.period = to_char(e.occurred_at AT TIME ZONE 'UTC', '{fmt}')"
            " AND k.inner_pad IS NULL AND e.plate IS NOT NULL AND e.plate NOT LIKE '#%%' AND e.occurred_at < %s"
            " AND NOT EXISTS (SELECT 1 FROM alert_events ae JOIN alerts a USING (alert_id)"
            "   WHERE ae.event_id = e.event_id AND a.type = 'hotlist_plate')",
            (cutoff,),
        ).rowcount
        # A period that ended before the cutoff has no readable plate left but hotlist evidence:
        # its key is never needed again. Destroyed, the hashes can be neither reversed nor linked.
        done["keys_destroyed"] = conn.execute(
            "UPDATE privacy_keys SET inner_pad = NULL, outer_pad = NULL, destroyed_at = now()"
            " WHERE destroyed_at IS NULL AND ends_at <= %s",
            (cutoff,),
        ).rowcount
        # A dead letter keeps its raw bytes (a plate, a face capture's reference) and cannot be
        # pseudonymised: it goes when the plates it may carry would have.
        done["dead_letters_deleted"] = conn.execute("DELETE FROM dead_letters WHERE last_seen < %s", (cutoff,)).rowcount
        done["face_captures_deleted"] = conn.execute(
            "DELETE FROM events WHERE kind = 'face_capture' AND occurred_at < %s",
            (now - timedelta(days=privacy.face_capture_retention_days),),
        ).rowcount
    return done
