"""Personal data behind a stated purpose, and the audit log that records every such look.

Plates and face captures are personal data. A query that returns them must state why
(``purpose``) and leaves one append-only, hash-chained audit row: who, when, what was asked,
why, and how many records it returned. Without a purpose, event lists come with plates
withheld and without face captures. Only the auditor reads the log, and that read is itself
audited. Hotlist hits on an alert (the listed plate that matched) are the alert itself and
are shown to whoever handles it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.auth import Action, Principal, require
from api.dependencies import Conn
from api.routes.common import aware, invalid, responses
from api.schemas import AuditOut, EventOut
from ingest.adapters import normalise_plate
from watchpost import store

__all__ = ["Purpose", "audited", "redact", "router"]

router = APIRouter(tags=["privacy"])

Purpose = Annotated[
    str | None,
    Query(
        min_length=5,
        max_length=500,
        description="Why you need plates and face captures (case number, incident): recorded in the audit log",
    ),
]

_PERSONAL_KINDS = ("plate_read", "face_capture")


def redact(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as shown without a purpose: no face captures, plates withheld."""
    return [{**r, "plate": None} if r.get("plate") else r for r in rows if r.get("kind") != "face_capture"]


def personal(rows: list[dict[str, Any]]) -> int:
    """How many of the rows are personal data (a plate read with a plate, a face capture)."""
    return sum(1 for r in rows if r.get("plate") or r.get("kind") == "face_capture")


def audited(conn: Any, principal: Principal, *, action: str, query: dict[str, Any], purpose: str, count: int) -> None:
    """Record one look at personal data."""
    store.append_audit(
        conn,
        actor=principal.name,
        role=principal.role,
        action=action,
        query={k: v for k, v in query.items() if v is not None},
        purpose=purpose,
        result_count=count,
    )


@router.get(
    "/plates/{plate}/sightings",
    response_model=list[EventOut],
    summary="Where and when a plate was read (needs a purpose; audited)",
    description="Reads of this plate, newest first, while it is still readable: plates that hit no hotlist"
    " become keyed hashes after `privacy.plate_readable_days`. The plate is normalised like ingest"
    " reads it (upper case, separators dropped, province character kept).",
    responses=responses(403, 422),
)
def sightings(
    conn: Conn,
    principal: Annotated[Principal, require(Action.LOOK_UP_PERSONAL)],
    plate: Annotated[str, Path(min_length=2, max_length=20, description="Plate, e.g. 浙A12345")],
    purpose: Annotated[str, Query(min_length=5, max_length=500, description="Why (recorded in the audit log)")],
    since: Annotated[
        datetime | None, Query(description="Oldest read (ISO 8601 with a zone); default 30 days ago")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    value = normalise_plate(plate)
    if value is None or value.startswith(store.PSEUDONYM_PREFIX):
        raise invalid(f"plate: {plate!r} is not a plate")
    since = aware("since", since) or datetime.now(UTC) - timedelta(days=30)
    rows = store.plate_sightings(conn, plate=value, since=since, limit=limit)
    audited(
        conn,
        principal,
        action="plate sightings",
        query={"plate": value, "since": since.isoformat(), "limit": limit},
        purpose=purpose,
        count=len(rows),
    )
    return [{**r, "event_id": str(r["event_id"])} for r in rows]


@router.get(
    "/audit",
    response_model=AuditOut,
    summary="The audit log of personal-data queries, and whether its chain is intact (auditor only; audited)",
    responses=responses(403, 422),
)
def audit(
    conn: Conn,
    principal: Annotated[Principal, require(Action.READ_AUDIT)],
    since: Annotated[datetime | None, Query(description="Oldest entry (ISO 8601 with a zone)")] = None,
    before_id: Annotated[int | None, Query(ge=1, description="Page: entries below this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    purpose: Annotated[str, Query(min_length=5, max_length=500, description="Why you read the log")] = "audit review",
) -> dict[str, Any]:
    entries = store.read_audit(conn, since=aware("since", since), before_id=before_id, limit=limit)
    chain = store.verify_audit(conn)
    audited(
        conn,
        principal,
        action="read audit log",
        query={"since": since.isoformat() if since else None, "before_id": before_id, "limit": limit},
        purpose=purpose,
        count=len(entries),
    )
    return {"entries": entries, "chain": chain}
