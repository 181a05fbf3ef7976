"""Alerts: list, read, raise by hand, acknowledge, assign, escalate, resolve, cancel.

Every change goes through :mod:`dispatch.actions` in one transaction, so a change made here
looks the same (timeline, feed, unit messages) as one made by the dispatcher.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi import status as http

from api.auth import Action, Principal, allowed, require
from api.dependencies import Config, Conn
from api.routes import privacy
from api.routes.common import aware, invalid, responses
from api.schemas import (
    AlertDetailOut,
    AlertOut,
    AlertTypeOut,
    AssignBody,
    CandidateOut,
    ManualAlertBody,
    NoteBody,
    ResolveBody,
)
from dispatch import actions
from watchpost import store
from watchpost.model import AlertDraft, AlertState, NotFound, Severity

__all__ = ["router", "visible_alert"]

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, description="Alert id")]


def scoped(snapshot: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The alert as ``principal`` may see it: a patrol unit sees only its own assignments."""
    if not principal.patrol:
        return snapshot
    return {**snapshot, "assignments": [a for a in snapshot["assignments"] if a["unit_id"] == principal.unit]}


def visible_alert(conn: Any, alert_id: int, principal: Principal) -> dict[str, Any]:
    """The alert's snapshot for ``principal``; NotFound when it does not exist or is not theirs to see."""
    snapshot = store.alert_snapshot(conn, alert_id)
    if principal.patrol and not any(a["unit_id"] == principal.unit for a in snapshot["assignments"]):
        raise NotFound(f"no alert {alert_id}")  # another unit's alert is not even said to exist
    return scoped(snapshot, principal)


@router.get(
    "/alerts",
    response_model=list[AlertOut],
    summary="Alerts, newest first",
    description="Filtered by site, type, severity, state (repeat `state` for several) and creation time;"
    " page with `before_id` (the smallest id of the previous page). A patrol credential sees only the alerts"
    " its unit was assigned to, with its own assignments only.",
    responses=responses(403, 422),
)
def list_alerts(
    conn: Conn,
    config: Config,
    principal: Annotated[Principal, require(Action.READ_ALERTS)],
    site: Annotated[str | None, Query(description="Site id")] = None,
    type: Annotated[str | None, Query(description="Alert type (see GET /alert-types)")] = None,
    severity: Annotated[Severity | None, Query(description="Severity")] = None,
    state: Annotated[list[AlertState] | None, Query(description="State; repeat for several")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601 with a zone)")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601 with a zone)")] = None,
    before_id: Annotated[int | None, Query(ge=1, description="Only alerts with a smaller id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    if type is not None and type not in config.alerts.types:
        raise invalid(f"unknown alert type {type!r}; known: {sorted(config.alerts.types)}")
    rows = store.list_alerts(
        conn,
        site_id=site,
        type_=type,
        severity=severity.value if severity else None,
        states=[s.value for s in state] if state else None,
        since=aware("since", since),
        until=aware("until", until),
        unit_id=principal.unit if principal.patrol else None,
        before_id=before_id,
        limit=limit,
    )
    return [scoped(r, principal) for r in rows]


@router.get(
    "/alerts/{alert_id}",
    response_model=AlertDetailOut,
    summary="One alert with its timeline and source events",
    responses=responses(403, 404),
)
def get_alert(
    conn: Conn,
    alert_id: AlertId,
    principal: Annotated[Principal, require(Action.READ_ALERTS)],
    purpose: Annotated[
        str | None,
        Query(
            min_length=5,
            max_length=500,
            description="Why you need the source events' plates and face captures"
            " (audited); without it they are withheld",
        ),
    ] = None,
) -> dict[str, Any]:
    alert = visible_alert(conn, alert_id, principal)
    timeline = store.alert_timeline(conn, alert_id)
    if principal.patrol:  # what other units did is not this unit's to see
        timeline = [t for t in timeline if t["detail"].get("unit_id") in (None, principal.unit)]
    sources = store.alert_sources(conn, alert_id)
    if purpose is None:
        sources = privacy.redact(sources)
    else:
        if not allowed(principal, Action.LOOK_UP_PERSONAL):
            raise HTTPException(403, detail=f"role {principal.role} may not {Action.LOOK_UP_PERSONAL.value}")
        privacy.audited(
            conn,
            principal,
            action="alert source events",
            query={"alert_id": alert_id},
            purpose=purpose,
            count=privacy.personal(sources),
        )
    return {"alert": alert, "timeline": timeline, "sources": sources}


@router.get(
    "/alerts/{alert_id}/snapshot",
    summary="The alert's annotated snapshot (JPEG)",
    description="The picture a crowd alert was raised with: the camera's frame with its zones and people counts"
    " drawn on it (the newest, when a gathering came back into an open alert). Only alerts raised by a camera"
    " have one; the same access as the alert (a patrol unit: its own alerts only). Snapshots are kept for"
    " `storage.snapshot_retention_days`.",
    response_class=Response,
    responses={**responses(403, 404), 200: {"content": {"image/jpeg": {}}, "description": "The JPEG picture"}},
)
def alert_snapshot(
    conn: Conn, alert_id: AlertId, principal: Annotated[Principal, require(Action.READ_ALERTS)]
) -> Response:
    visible_alert(conn, alert_id, principal)
    snap = store.latest_snapshot(conn, alert_id)
    if snap is None:
        raise NotFound(f"alert {alert_id} has no snapshot")
    taken = snap["taken_at"].isoformat().replace("+00:00", "Z")
    return Response(
        content=snap["jpeg"],
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, max-age=300",
            "X-Snapshot-Taken-At": taken,
            "X-Snapshot-Zone": snap["zone"] or "",
        },
    )


@router.post(
    "/alerts",
    response_model=AlertOut,
    status_code=http.HTTP_201_CREATED,
    summary="Raise an alert by hand",
    description="For what a person reports (a phoned-in theft, a fight seen on the video wall). The type comes"
    " from the catalogue (GET /alert-types) and gives the default severity and title; the location defaults to"
    " the site's centre. The dispatcher sends units as for any alert.",
    responses=responses(403, 422),
)
def raise_alert(
    conn: Conn,
    config: Config,
    body: ManualAlertBody,
    principal: Annotated[Principal, require(Action.RAISE_ALERTS)],
) -> dict[str, Any]:
    kind = config.alerts.types.get(body.type)
    if kind is None:
        raise invalid(f"type: unknown alert type {body.type!r}; known: {sorted(config.alerts.types)}")
    site = config.site_index.get(body.site_id)
    if site is None:
        raise invalid(f"site_id: unknown site {body.site_id!r}; known: {sorted(config.site_index)}")
    if body.zone is not None and body.zone not in {z.id for z in site.zones}:
        raise invalid(f"zone: site {site.id!r} has no zone {body.zone!r}; zones: {sorted(z.id for z in site.zones)}")
    if (body.lat is None) != (body.lon is None):
        raise invalid("lat and lon go together: give both or neither")
    now = datetime.now(UTC)
    occurred = aware("occurred_at", body.occurred_at) or now
    if occurred > now:
        raise invalid("occurred_at is in the future")
    detail: dict[str, Any] = {"reported_by": principal.name}
    if body.note:
        detail["note"] = body.note
    draft = AlertDraft(
        type=body.type,
        severity=Severity(body.severity or kind.severity),
        title=body.title or kind.title,
        dedup_key=f"manual:{uuid.uuid4().hex}",  # a report is its own alert: never folded into another
        site_id=site.id,
        occurred_at=occurred,
        rule="manual",
        zone=body.zone,
        lat=body.lat if body.lat is not None else site.position.lat,
        lon=body.lon if body.lon is not None else site.position.lon,
        detail=detail,
    )
    with conn.transaction():
        raised = store.raise_alert(conn, draft=draft, window_s=None, actor=principal.actor, fold=False)
    return store.alert_snapshot(conn, raised.alert_id)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    summary="The console has seen the alert",
    responses=responses(403, 404, 409),
)
def acknowledge(
    conn: Conn,
    alert_id: AlertId,
    principal: Annotated[Principal, require(Action.ACKNOWLEDGE_ALERTS)],
    body: NoteBody | None = None,
) -> dict[str, Any]:
    with conn.transaction():
        actions.acknowledge(conn, alert_id=alert_id, actor=principal.actor, note=body.note if body else "")
    return store.alert_snapshot(conn, alert_id)


@router.post(
    "/alerts/{alert_id}/assign",
    response_model=AlertOut,
    summary="Send a particular unit",
    description="The unit must be available; to move a busy unit, reassign its current assignment"
    " (POST /assignments/{id}/reassign). The new assignment is in the alert's assignments.",
    responses=responses(403, 404, 409, 422),
)
def assign(
    conn: Conn,
    config: Config,
    alert_id: AlertId,
    body: AssignBody,
    principal: Annotated[Principal, require(Action.ASSIGN_UNITS)],
) -> dict[str, Any]:
    with conn.transaction():
        actions.assign(
            conn, config=config, alert_id=alert_id, unit_id=body.unit_id, actor=principal.actor, tier=body.tier
        )
    return store.alert_snapshot(conn, alert_id)


@router.get(
    "/alerts/{alert_id}/candidates",
    response_model=list[CandidateOut],
    summary="Free units that could be sent, nearest first",
    description="The dispatcher's own ranking (ETA by distance and speed; a fixed post only at its own site),"
    " with the pending tiers whose deadline each unit can still make. For choosing whom to assign.",
    responses=responses(403, 404, 422),
)
def candidates(
    conn: Conn,
    config: Config,
    alert_id: AlertId,
    principal: Annotated[Principal, require(Action.ASSIGN_UNITS)],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[dict[str, Any]]:
    alert = store.alert_snapshot(conn, alert_id)
    now = datetime.now(UTC)
    pending = [(t["tier"], datetime.fromisoformat(t["deadline_at"])) for t in alert["tiers"] if t["state"] == "pending"]
    ranked = store.rank_available(
        conn,
        site_id=alert["site_id"],
        lat=alert["lat"],
        lon=alert["lon"],
        route_factor=config.dispatch.route_factor,
        limit=limit,
    )
    return [
        {
            "unit_id": unit.unit_id,
            "name": unit.name,
            "kind": unit.kind,
            "site_id": unit.site_id,
            "lat": unit.lat,
            "lon": unit.lon,
            "eta_s": None if eta is None else round(eta, 1),
            "distance_m": None if distance is None else round(distance, 1),
            "in_time_for": [
                tier for tier, deadline in pending if eta is not None and now + timedelta(seconds=eta) <= deadline
            ],
        }
        for unit, eta, distance in ranked
    ]


@router.post(
    "/alerts/{alert_id}/escalate",
    response_model=AlertOut,
    summary="Send the next best free unit now",
    description="As the dispatcher does when a tier's deadline passes; with no free unit the console is told so.",
    responses=responses(403, 404, 409),
)
def escalate(
    conn: Conn,
    config: Config,
    alert_id: AlertId,
    principal: Annotated[Principal, require(Action.ESCALATE_ALERTS)],
    body: NoteBody | None = None,
) -> dict[str, Any]:
    why = (body.note if body else "") or f"escalated by {principal.name}"
    with conn.transaction():
        actions.escalate(
            conn, config=config, alert_id=alert_id, tier=None, now=datetime.now(UTC), actor=principal.actor, why=why
        )
    return store.alert_snapshot(conn, alert_id)


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=AlertOut,
    summary="Close the alert with an outcome",
    description="Units still on it are stood down (told over MQTT).",
    responses=responses(403, 404, 409, 422),
)
def resolve(
    conn: Conn,
    config: Config,
    alert_id: AlertId,
    body: ResolveBody,
    principal: Annotated[Principal, require(Action.RESOLVE_ALERTS)],
) -> dict[str, Any]:
    with conn.transaction():
        actions.resolve(
            conn, config=config, alert_id=alert_id, outcome=body.outcome, note=body.note, actor=principal.actor
        )
    return store.alert_snapshot(conn, alert_id)


@router.post(
    "/alerts/{alert_id}/cancel",
    response_model=AlertOut,
    summary="Withdraw an alert raised in error",
    description="Cancelled alerts count in no statistics; units on it are stood down.",
    responses=responses(403, 404, 409),
)
def cancel(
    conn: Conn,
    config: Config,
    alert_id: AlertId,
    principal: Annotated[Principal, require(Action.CANCEL_ALERTS)],
    body: NoteBody | None = None,
) -> dict[str, Any]:
    with conn.transaction():
        actions.cancel(conn, config=config, alert_id=alert_id, note=body.note if body else "", actor=principal.actor)
    return store.alert_snapshot(conn, alert_id)


@router.get(
    "/alert-types",
    response_model=list[AlertTypeOut],
    summary="The alert catalogue",
    description="Types with their default severity, titles and case category (for the console's forms).",
    responses=responses(403),
)
def alert_types(config: Config, principal: Annotated[Principal, require(Action.READ_ALERTS)]) -> list[dict[str, Any]]:
    return [{"type": name, **t.model_dump()} for name, t in config.alerts.types.items()]
