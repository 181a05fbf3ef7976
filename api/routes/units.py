"""Assignments and units: what patrol terminals and the console do with them.

A patrol credential works only on its own unit: another unit's assignment is 404 (as if it
did not exist), and reporting another unit's position or status is 403.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from api.auth import Action, Principal, require
from api.dependencies import Config, Conn
from api.routes.common import aware, invalid, responses
from api.schemas import AssignmentOut, ClearBody, PositionBody, ReassignBody, StatusBody, UnitOut
from dispatch import actions
from watchpost import store
from watchpost.model import AssignmentState, NotFound, UnitStatus

__all__ = ["router"]

router = APIRouter()

AssignmentId = Annotated[int, Path(ge=1, description="Assignment id")]
UnitId = Annotated[str, Path(description="Unit id")]
_FUTURE_FIX_S = 300  # a position from further ahead than this is a broken clock, not a fix


def _assignment(conn: Any, assignment_id: int, principal: Principal) -> dict[str, Any]:
    rows = store.list_assignments(conn, assignment_id=assignment_id)
    if not rows or (principal.patrol and rows[0]["unit_id"] != principal.unit):
        raise NotFound(f"no assignment {assignment_id}")  # another unit's assignment is not said to exist
    return rows[0]


def _own_unit(principal: Principal, unit_id: str, what: str) -> None:
    if principal.patrol and unit_id != principal.unit:
        raise HTTPException(
            403, detail=f"a patrol credential of unit {principal.unit} may not {what} of unit {unit_id}"
        )


# --- assignments --------------------------------------------------------------------------------


@router.get(
    "/assignments",
    response_model=list[AssignmentOut],
    tags=["assignments"],
    summary="Assignments, newest first",
    description="A patrol credential gets its own unit's only; others may filter by unit, alert and state.",
    responses=responses(403, 422),
)
def list_assignments(
    conn: Conn,
    principal: Annotated[Principal, require(Action.READ_ASSIGNMENTS)],
    unit: Annotated[str | None, Query(description="Unit id")] = None,
    alert: Annotated[int | None, Query(ge=1, description="Alert id")] = None,
    state: Annotated[list[AssignmentState] | None, Query(description="State; repeat for several")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    if principal.patrol:
        _own_unit(principal, unit or principal.unit or "", "list the assignments")
        unit = principal.unit
    return store.list_assignments(
        conn, unit_id=unit, alert_id=alert, states=[s.value for s in state] if state else None, limit=limit
    )


@router.get(
    "/assignments/{assignment_id}",
    response_model=AssignmentOut,
    tags=["assignments"],
    summary="One assignment with its alert",
    responses=responses(403, 404),
)
def get_assignment(
    conn: Conn, assignment_id: AssignmentId, principal: Annotated[Principal, require(Action.READ_ASSIGNMENTS)]
) -> dict[str, Any]:
    return _assignment(conn, assignment_id, principal)


@router.post(
    "/assignments/{assignment_id}/accept",
    response_model=AssignmentOut,
    tags=["assignments"],
    summary="The unit accepts its assignment",
    description="The alert counts as acknowledged.",
    responses=responses(403, 404, 409),
)
def accept(
    conn: Conn, assignment_id: AssignmentId, principal: Annotated[Principal, require(Action.WORK_ASSIGNMENTS)]
) -> dict[str, Any]:
    _assignment(conn, assignment_id, principal)
    with conn.transaction():
        actions.accept(conn, assignment_id=assignment_id, actor=principal.actor)
    return _assignment(conn, assignment_id, principal)


@router.post(
    "/assignments/{assignment_id}/on-scene",
    response_model=AssignmentOut,
    tags=["assignments"],
    summary="The unit is on scene",
    description="The tiers its arrival fulfils are met (or, after a deadline, recorded as late).",
    responses=responses(403, 404, 409),
)
def on_scene(
    conn: Conn,
    config: Config,
    assignment_id: AssignmentId,
    principal: Annotated[Principal, require(Action.WORK_ASSIGNMENTS)],
) -> dict[str, Any]:
    _assignment(conn, assignment_id, principal)
    with conn.transaction():
        actions.on_scene(conn, config=config, assignment_id=assignment_id, by="api", at=None, actor=principal.actor)
    return _assignment(conn, assignment_id, principal)


@router.post(
    "/assignments/{assignment_id}/clear",
    response_model=AssignmentOut,
    tags=["assignments"],
    summary="The unit is done and available again",
    description="The last unit to clear resolves the alert with its outcome.",
    responses=responses(403, 404, 409, 422),
)
def clear(
    conn: Conn,
    config: Config,
    assignment_id: AssignmentId,
    body: ClearBody,
    principal: Annotated[Principal, require(Action.WORK_ASSIGNMENTS)],
) -> dict[str, Any]:
    _assignment(conn, assignment_id, principal)
    with conn.transaction():
        actions.clear(
            conn,
            config=config,
            assignment_id=assignment_id,
            outcome=body.outcome,
            note=body.note,
            actor=principal.actor,
        )
    return _assignment(conn, assignment_id, principal)


@router.post(
    "/assignments/{assignment_id}/reassign",
    response_model=AssignmentOut,
    tags=["assignments"],
    summary="Hand an assignment to another unit",
    description="The old unit is stood down and free; the new one (which must be available) takes the same tier."
    " Answers the new assignment.",
    responses=responses(403, 404, 409, 422),
)
def reassign(
    conn: Conn,
    config: Config,
    assignment_id: AssignmentId,
    body: ReassignBody,
    principal: Annotated[Principal, require(Action.ASSIGN_UNITS)],
) -> dict[str, Any]:
    with conn.transaction():
        new_id = actions.reassign(
            conn, config=config, assignment_id=assignment_id, unit_id=body.unit_id, actor=principal.actor
        )
    return _assignment(conn, new_id, principal)


# --- units --------------------------------------------------------------------------------------


@router.get(
    "/units",
    response_model=list[UnitOut],
    tags=["units"],
    summary="Units with position, status and active assignment",
    description="A patrol credential gets its own unit only.",
    responses=responses(403),
)
def list_units(conn: Conn, principal: Annotated[Principal, require(Action.READ_UNITS)]) -> list[dict[str, Any]]:
    return store.list_units(conn, unit_id=principal.unit if principal.patrol else None)


@router.get(
    "/units/{unit_id}", response_model=UnitOut, tags=["units"], summary="One unit", responses=responses(403, 404)
)
def get_unit(
    conn: Conn, unit_id: UnitId, principal: Annotated[Principal, require(Action.READ_UNITS)]
) -> dict[str, Any]:
    if principal.patrol and unit_id != principal.unit:
        raise NotFound(f"no unit {unit_id!r}")
    return store.get_unit(conn, unit_id)


@router.post(
    "/units/{unit_id}/position",
    response_model=UnitOut,
    tags=["units"],
    summary="Report a unit's position",
    description="Stored as the unit's newest fix (source 'api') and wakes the dispatcher: a unit within the"
    " on-scene radius of its alert arrives. A fix older than the current one is kept in the track only.",
    responses=responses(403, 404, 422),
)
def report_position(
    conn: Conn,
    unit_id: UnitId,
    body: PositionBody,
    principal: Annotated[Principal, require(Action.REPORT_POSITIONS)],
) -> dict[str, Any]:
    _own_unit(principal, unit_id, "report the position")
    now = datetime.now(UTC)
    at = aware("time", body.time) or now
    if at > now + timedelta(seconds=_FUTURE_FIX_S):
        raise invalid(f"time is more than {_FUTURE_FIX_S} s in the future: check the terminal's clock")
    store.get_unit(conn, unit_id)
    with conn.transaction():
        store.record_fix(conn, unit_id=unit_id, lat=body.lat, lon=body.lon, at=at, source="api")
    return store.get_unit(conn, unit_id)


@router.post(
    "/units/{unit_id}/status",
    response_model=UnitOut,
    tags=["units"],
    summary="A unit goes on or off duty",
    description="available or off_duty; a unit with an open assignment must clear it or be reassigned first (409).",
    responses=responses(403, 404, 409, 422),
)
def set_status(
    conn: Conn,
    unit_id: UnitId,
    body: StatusBody,
    principal: Annotated[Principal, require(Action.SET_UNIT_STATUS)],
) -> dict[str, Any]:
    _own_unit(principal, unit_id, "set the status")
    with conn.transaction():
        actions.set_unit_status(conn, unit_id=unit_id, status=UnitStatus(body.status), actor=principal.actor)
    return store.get_unit(conn, unit_id)
