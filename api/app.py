"""The HTTP API: the patrol dispatch API (alerts, assignments, units, hotlists, sites, statistics,
live streams) and the ingest views (health, recent events, dead letters, per-device counts,
Prometheus metrics).

Stateless: every answer comes from the database (the source of truth) or from the in-process
health sources handed in by the entry point; the live streams fan out through the database
(:mod:`api.feed`). Every route but ``/health``, the OpenAPI pages and ``POST /auth/token``
needs a credential (:mod:`api.auth`). Built by :func:`create_app`; nothing is created at
import time.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from api.auth import Action, Authenticator, Principal, allowed, authenticate, bearer_scheme, require
from api.dependencies import Conn
from api.feed import FeedHub
from api.limits import LimitMiddleware
from api.routes import access, alerts, cameras, console, hotlists, observations, privacy, reports, streams, units
from api.routes.common import responses
from api.schemas import EventOut
from watchpost import metrics, store
from watchpost.config import WatchpostConfig, zone_changes
from watchpost.model import Conflict, DeadReason, EventKind, NotFound

__all__ = ["create_app", "reload_config"]

log = logging.getLogger("watchpost.api")

HealthSource = Callable[[], dict[str, Any]]


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


_DESCRIPTION = """Alert ingestion and 1-3-5 patrol dispatch for community public-safety command centres.

**Credentials.** Every route but `/health`, these pages and `POST /auth/token` needs
`Authorization: Bearer <token>`: an API key (configured by its SHA-256 in `access.api_keys`), or a
token from `POST /auth/token` for a user of `access.users`. The WebSocket `/ws` takes the same
token as `?token=`, since browsers cannot set headers on a WebSocket.

**Roles.** operator (read, acknowledge, assign, escalate, resolve, raise by hand, stream),
supervisor (operator + cancel, hotlists, any unit's status), admin (everything), auditor (read
alerts and statistics), patrol (its own unit only: its assignments and their alerts, accept, on
scene, clear, its position and status, its stream).

**Errors.** 401 (no or bad credential) and 403 (role) say why; 404 unknown (or not yours), 409 not
possible in the current state, 422 invalid request, each with `detail` saying what is wrong.
"""


def create_app(
    *,
    config: WatchpostConfig,
    database_url: str,
    health_sources: list[HealthSource] | None = None,
    jwt_secret: str | None = None,
    heartbeat_s: float = 15.0,
    stream_queue: int = 1000,
    production: bool = False,
) -> FastAPI:
    """Build the API for ``config`` on the database at ``database_url``.

    ``jwt_secret`` signs sign-in tokens; every API process of a deployment needs the same one
    (the entry point reads ``WATCHPOST_JWT_SECRET``). Without one, a random secret is made
    for this process: tokens then die with it. ``heartbeat_s`` spaces the SSE keep-alive
    comments; ``stream_queue`` is how many live entries a stream may fall behind before it is
    closed (its client resumes from its last id). In ``production`` a missing secret and the
    demo's published credentials are refused (ValueError).
    """
    sources = list(health_sources or [])
    if jwt_secret is None and production:
        raise ValueError("WATCHPOST_JWT_SECRET is required in production: every API process must share it")
    if jwt_secret is None:
        log.warning("no JWT secret given: using a random one, sign-in tokens last as long as this process")
        jwt_secret = secrets.token_urlsafe(32)
    authenticator = Authenticator(config.access, secret=jwt_secret, production=production)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        app.state.pool = store.open_pool(database_url, min_size=1, max_size=8)
        app.state.feed = FeedHub(database_url, pool=app.state.pool, queue_size=stream_queue).start(
            asyncio.get_running_loop()
        )
        try:
            yield
        finally:
            app.state.feed.stop()
            app.state.pool.close()

    app = FastAPI(
        title="Watchpost",
        version="0.1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.authenticator = authenticator
    app.state.heartbeat_s = heartbeat_s
    _handle_errors(app)
    app.add_middleware(LimitMiddleware, limits=config.api)
    for module in (access, alerts, units, hotlists, observations, cameras, reports, streams, privacy, console):
        app.include_router(module.router)
    app.mount("/assets", console.assets(), name="assets")

    @app.get(
        "/",
        summary="What this service offers",
        description="A browser (asking for text/html) gets the command-centre console, which signs in itself;"
        " an API client gets this index of the API.",
        responses=responses(),
    )
    def index(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
    ) -> Any:
        if console.wants_page(request):
            return console.page("index.html")
        principal = authenticate(request, credentials)
        return {
            "service": "watchpost",
            "you": {"name": principal.name, "role": principal.role, "unit": principal.unit},
            "links": {
                "health": "/health",
                "alerts": "/alerts",
                "assignments": "/assignments",
                "units": "/units",
                "hotlists": "/hotlists/plates",
                "sites": "/sites",
                "alert_types": "/alert-types",
                "stats": "/stats/compliance",
                "stream": "/stream",
                "websocket": "/ws",
                "events": "/events",
                "dead_letters": "/dead-letters",
                "devices": "/devices",
                "observations": "/observations",
                "metrics": "/metrics",
                "docs": "/docs",
                "console": "/",
                "patrol": "/patrol",
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
        feed = getattr(request.app.state, "feed", None)
        if feed is not None:
            body["stream"] = feed.health()
        if any(not w.get("healthy", True) for w in workers):
            body["status"] = "degraded"
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get(
        "/events", response_model=list[EventOut], summary="Recent events, newest first", responses=responses(403, 422)
    )
    def events(
        conn: Conn,
        principal: Annotated[Principal, require(Action.READ_EVENTS)],
        device: Annotated[str | None, Query(description="Device id")] = None,
        site: Annotated[str | None, Query(description="Site id")] = None,
        kind: Annotated[EventKind | None, Query(description="Event kind")] = None,
        since: Annotated[
            datetime | None, Query(description="Oldest occurred_at (ISO 8601); default 7 days ago")
        ] = None,
        before: Annotated[datetime | None, Query(description="Only events that occurred before this")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        purpose: privacy.Purpose = None,
    ) -> list[dict[str, Any]]:
        for name, value in (("since", since), ("before", before)):
            if value is not None and value.tzinfo is None:
                raise HTTPException(422, detail=f"{name} must carry a time zone, e.g. 2026-11-23T08:00:00Z")
        if purpose is not None and not allowed(principal, Action.LOOK_UP_PERSONAL):
            raise HTTPException(403, detail=f"role {principal.role} may not {Action.LOOK_UP_PERSONAL.value}")
        rows = store.recent_events(
            conn,
            limit=limit,
            device_id=device,
            site_id=site,
            kind=kind.value if kind else None,
            since=since,
            before=before,
        )
        if purpose is None:
            rows = privacy.redact(rows)  # plates withheld, face captures left out: no purpose, no personal data
        else:
            query = {
                "device": device,
                "site": site,
                "kind": kind.value if kind else None,
                "limit": limit,
                "since": since.isoformat() if since else None,
                "before": before.isoformat() if before else None,
            }
            privacy.audited(
                conn, principal, action="events", query=query, purpose=purpose, count=privacy.personal(rows)
            )
        return [{**r, "event_id": str(r["event_id"])} for r in rows]

    @app.get(
        "/dead-letters",
        response_model=list[DeadLetterOut],
        summary="Messages that could not be used",
        responses=responses(403, 422),
    )
    def dead_letters(
        conn: Conn,
        principal: Annotated[Principal, require(Action.READ_SITES)],
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

    @app.get("/dead-letters/counts", summary="Dead letters by reason", responses=responses(403))
    def dead_letter_counts(conn: Conn, principal: Annotated[Principal, require(Action.READ_SITES)]) -> dict[str, int]:
        return store.dead_letter_counts(conn)

    @app.get(
        "/devices",
        response_model=list[DeviceCountOut],
        summary="Per-device event counts and silence",
        responses=responses(403, 422),
    )
    def devices(
        conn: Conn,
        principal: Annotated[Principal, require(Action.READ_SITES)],
        hours: Annotated[int, Query(ge=1, le=24 * 31, description="Count events of the last N hours")] = 24,
    ) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        rows = store.device_counts(conn, since=now - timedelta(hours=hours))
        for r in rows:
            beat, last = r["heartbeat_s"], r["last_received"]
            r["silent"] = bool(beat) and (last is None or (now - last).total_seconds() > beat)
        return rows

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response, responses=responses(403))
    def prometheus(principal: Annotated[Principal, require(Action.READ_METRICS)]) -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def reload_config(app: FastAPI, config: WatchpostConfig) -> list[str]:
    """Serve ``config`` from now on when only camera zones changed (the console then shows the new
    zones); the cameras whose zones changed. :class:`~watchpost.config.ReloadError`, nothing applied,
    when anything else changed (access and limits are built at start: that needs a restart)."""
    changed = zone_changes(app.state.config, config)
    app.state.config = config
    return changed


def _handle_errors(app: FastAPI) -> None:
    """Domain errors become HTTP answers here, once, for every route."""

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": _problem(e)} for e in exc.errors()]
        detail = "; ".join(f"{e['where']}: {e['problem']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(store.OperationalError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: path=%s error=%s", request.url.path, exc)
        return JSONResponse({"detail": f"database unavailable: {exc}"}, status_code=503)


def _problem(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field (a typo?)"
    if error.get("type") == "missing":
        return "required"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")
