"""The HTTP API: health, recent events, dead letters, per-device counts and Prometheus metrics.

Stateless: every answer comes from the database (the source of truth) or from the in-process
health sources handed in by the entry point. Built by :func:`create_app`; nothing is
created at import time.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from watchpost import metrics, store
from watchpost.config import WatchpostConfig
from watchpost.model import DeadReason, EventKind

__all__ = ["create_app"]

HealthSource = Callable[[], dict[str, Any]]


class EventOut(BaseModel):
    """A stored event."""

    event_id: str
    occurred_at: datetime
    received_at: datetime
    device_time: datetime | None
    clock: str = Field(description="ok, no_time, zero_date, ahead or behind: how far the device clock is trusted")
    device_id: str
    site_id: str
    kind: str
    code: str
    source_format: str
    topic: str
    ref: str | None
    plate: str | None
    confidence: float | None
    repeat: bool
    zone: str | None
    count: int | None
    state: str | None
    attributes: dict[str, Any]


class DeadLetterOut(BaseModel):
    """A message that could not be used, with why."""

    id: int
    received_at: datetime
    last_seen: datetime
    times_seen: int
    topic: str
    device_id: str | None
    reason: str
    detail: str
    size: int
    head_base64: str = Field(description="The first 512 raw bytes, base64")
    head_text: str = Field(description="The first 512 raw bytes as text, undecodable bytes replaced")


class DeviceCountOut(BaseModel):
    """A configured device's recent traffic."""

    device_id: str
    site_id: str
    device_kind: str
    name: str
    events: int
    by_kind: dict[str, int]
    last_received: datetime | None
    heartbeat_s: int | None
    silent: bool = Field(description="No message within its heartbeat interval")


def _connection(request: Request) -> Iterator[Any]:
    """A pooled connection for one request; 503 when the database cannot be reached."""
    try:
        with request.app.state.pool.connection(timeout=5) as conn:
            yield conn
    except store.DatabaseError as exc:
        raise HTTPException(status_code=503, detail=f"database unavailable: {exc}") from None


Conn = Annotated[Any, Depends(_connection)]


def create_app(
    *,
    config: WatchpostConfig,
    database_url: str,
    health_sources: list[HealthSource] | None = None,
) -> FastAPI:
    """Build the API for ``config`` on the database at ``database_url``."""
    sources = list(health_sources or [])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        app.state.pool = store.open_pool(database_url, min_size=1, max_size=8)
        try:
            yield
        finally:
            app.state.pool.close()

    app = FastAPI(
        title="Watchpost",
        version="0.1.0",
        description="Alert ingestion for community public-safety command centres.",
        lifespan=lifespan,
    )

    @app.get("/", summary="What this service offers")
    def index() -> dict[str, Any]:
        return {
            "service": "watchpost",
            "links": {
                "health": "/health",
                "events": "/events",
                "dead_letters": "/dead-letters",
                "devices": "/devices",
                "metrics": "/metrics",
                "docs": "/docs",
            },
        }

    @app.get("/health", summary="Database, broker and worker state; 503 when degraded")
    def health(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"status": "ok", "checked_at": datetime.now(UTC).isoformat()}
        try:
            with request.app.state.pool.connection(timeout=3) as conn:
                store.ping(conn)
            body["database"] = {"ok": True}
        except Exception as exc:  # any failure to reach the database is a health answer, not a crash
            body["database"] = {"ok": False, "detail": str(exc)}
            body["status"] = "degraded"
        workers = [source() for source in sources]
        body["workers"] = workers
        if any(not w.get("healthy", True) for w in workers):
            body["status"] = "degraded"
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/events", response_model=list[EventOut], summary="Recent events, newest first")
    def events(
        conn: Conn,
        device: Annotated[str | None, Query(description="Device id")] = None,
        site: Annotated[str | None, Query(description="Site id")] = None,
        kind: Annotated[EventKind | None, Query(description="Event kind")] = None,
        since: Annotated[
            datetime | None, Query(description="Oldest occurred_at (ISO 8601); default 7 days ago")
        ] = None,
        before: Annotated[datetime | None, Query(description="Only events that occurred before this")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        for name, value in (("since", since), ("before", before)):
            if value is not None and value.tzinfo is None:
                raise HTTPException(422, detail=f"{name} must carry a time zone, e.g. 2026-11-23T08:00:00Z")
        rows = store.recent_events(
            conn,
            limit=limit,
            device_id=device,
            site_id=site,
            kind=kind.value if kind else None,
            since=since,
            before=before,
        )
        return [{**r, "event_id": str(r["event_id"])} for r in rows]

    @app.get("/dead-letters", response_model=list[DeadLetterOut], summary="Messages that could not be used")
    def dead_letters(
        conn: Conn,
        reason: Annotated[DeadReason | None, Query(description="Only this reason")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        rows = store.list_dead_letters(conn, limit=limit, reason=reason.value if reason else None)
        out = []
        for r in rows:
            head = bytes(r.pop("head") or b"")
            out.append(
                {**r, "head_base64": base64.b64encode(head).decode(), "head_text": head.decode("utf-8", "replace")}
            )
        return out

    @app.get("/dead-letters/counts", summary="Dead letters by reason")
    def dead_letter_counts(conn: Conn) -> dict[str, int]:
        return store.dead_letter_counts(conn)

    @app.get("/devices", response_model=list[DeviceCountOut], summary="Per-device event counts and silence")
    def devices(
        conn: Conn,
        hours: Annotated[int, Query(ge=1, le=24 * 31, description="Count events of the last N hours")] = 24,
    ) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        rows = store.device_counts(conn, since=now - timedelta(hours=hours))
        for r in rows:
            beat, last = r["heartbeat_s"], r["last_received"]
            r["silent"] = bool(beat) and (last is None or (now - last).total_seconds() > beat)
        return rows

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.state.config = config
    return app
