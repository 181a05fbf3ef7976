"""Live streams of the feed: Server-Sent Events (``GET /stream``) and WebSocket (``/ws``).

Both carry the same entries, oldest first, each once: every change to an alert (raised,
updated, dispatched, accepted, on scene, escalated, resolved...) and unit status changes.
Both resume: SSE from the ``Last-Event-ID`` header (browsers' EventSource sends it when it
reconnects) or ``?after=<id>``, WebSocket from ``?after=<id>``; with neither, from now. A
patrol credential gets only the entries that concern its unit, with its own assignments.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket
from fastapi.responses import StreamingResponse

from api.auth import Action, AuthError, Principal, allowed, require
from api.feed import FeedHub, StreamClosed, Subscription
from api.routes.common import invalid, responses
from watchpost import store

__all__ = ["router"]

log = logging.getLogger("watchpost.api.streams")

router = APIRouter(tags=["streams"])

WS_UNAUTHORIZED = 4401  # close codes 4000-4999 are the application's: these mirror HTTP 401, 403, 503
WS_FORBIDDEN = 4403
WS_UNAVAILABLE = 4503
WS_TRY_AGAIN = 1013  # the subscriber fell behind: reconnect with ?after=<last id received>


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


@router.get(
    "/stream",
    summary="Live feed as Server-Sent Events",
    description="Each entry as `id: <feed id>`, `event: <kind>`, `data: <JSON {id, at, kind, alert?, ...}>`;"
    " a comment every 15 s keeps proxies from closing an idle stream. Resumes after the `Last-Event-ID` header"
    " (sent by EventSource on reconnect) or `?after=`; with neither, starts from now. Nothing is missed or"
    " repeated across a reconnect. A client too slow to keep up is disconnected and resumes the same way.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The event stream"}, **responses(403, 422)},
)
async def stream(
    request: Request,
    principal: Annotated[Principal, require(Action.STREAM)],
    after: Annotated[int | None, Query(ge=0, description="Resume after this feed id")] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this feed id (wins over ?after)")
    ] = None,
) -> StreamingResponse:
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit():
            raise invalid(f"Last-Event-ID must be a feed id (a number), not {last_event_id!r}")
        after = int(last_event_id)
    hub: FeedHub = request.app.state.feed
    unit = principal.unit if principal.patrol else None
    sub = await hub.subscribe(after=after, unit=unit)
    return StreamingResponse(
        _sse(hub, sub, unit, heartbeat_s=request.app.state.heartbeat_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(hub: FeedHub, sub: Subscription, unit: str | None, *, heartbeat_s: float) -> AsyncIterator[str]:
    try:
        yield "retry: 2000\n\n"
        while True:
            entry = await sub.next(timeout=heartbeat_s)
            if entry is None:
                yield ": keep-alive\n\n"
                continue
            yield f"id: {entry.id}\nevent: {entry.kind}\ndata: {_dumps(entry.message(unit))}\n\n"
    except StreamClosed as exc:
        yield f": closed: {exc.reason}; reconnect with Last-Event-ID\n\n"
    except store.DatabaseError:
        yield ": closed: database unavailable; reconnect with Last-Event-ID\n\n"
    finally:
        hub.unsubscribe(sub)


@router.websocket("/ws", name="ws")
async def websocket_feed(
    websocket: WebSocket,
    token: Annotated[str | None, Query(description="API key or sign-in token (browsers cannot set headers)")] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this feed id")] = None,
) -> None:
    """The live feed over WebSocket: one JSON message per entry, ``{id, at, kind, ...}``.

    Authenticate with ``?token=`` (or an ``Authorization: Bearer`` header where the client can
    set one). Refusals close the socket with 4401 (credential), 4403 (role), 4503 (database);
    a subscriber that falls behind is closed with 1013 and resumes with ``?after=<last id>``.
    """
    await websocket.accept()
    app = websocket.app
    header = websocket.headers.get("authorization", "")
    credential = token or (header[7:].strip() if header.lower().startswith("bearer ") else None)
    if not credential:
        await websocket.close(WS_UNAUTHORIZED, "no credential: connect with ?token=<API key or token>")
        return
    try:
        principal = app.state.authenticator.principal(credential)
    except AuthError as exc:
        await websocket.close(WS_UNAUTHORIZED, exc.reason[:120])
        return
    if not allowed(principal, Action.STREAM):
        await websocket.close(WS_FORBIDDEN, f"role {principal.role} may not {Action.STREAM.value}")
        return
    hub: FeedHub = app.state.feed
    unit = principal.unit if principal.patrol else None
    try:
        sub = await hub.subscribe(after=after, unit=unit)
    except store.DatabaseError:
        await websocket.close(WS_UNAVAILABLE, "database unavailable: try again")
        return
    try:
        await _pump(websocket, sub, unit, heartbeat_s=app.state.heartbeat_s)
    finally:
        hub.unsubscribe(sub)


async def _pump(websocket: WebSocket, sub: Subscription, unit: str | None, *, heartbeat_s: float) -> None:
    async def send() -> tuple[int, str] | None:
        try:
            while True:
                entry = await sub.next(timeout=heartbeat_s)
                if entry is not None:
                    await websocket.send_text(_dumps(entry.message(unit)))
        except StreamClosed as exc:
            return WS_TRY_AGAIN, f"{exc.reason}; resume with ?after={exc.cursor}"[:120]
        except store.DatabaseError:
            return WS_UNAVAILABLE, f"database unavailable; resume with ?after={sub.cursor}"[:120]

    async def receive() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # clients have nothing to say; reading is how a disconnect is noticed

    sender, reader = asyncio.create_task(send()), asyncio.create_task(receive())
    done, pending = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if sender in done and not sender.cancelled():
        if sender.exception() is not None:  # the client went away mid-send: nothing more to tell it
            log.debug("websocket send ended: %r", sender.exception())
        elif (closing := sender.result()) is not None:
            await websocket.close(*closing)
