"""Small checks the routers share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import HTTPException

from api.schemas import ErrorOut

__all__ = ["aware", "invalid", "responses"]


def invalid(reason: str) -> HTTPException:
    """422 for a request that parses but cannot be used, with the reason."""
    return HTTPException(status_code=422, detail=reason)


def aware(name: str, value: datetime | None) -> datetime | None:
    """``value`` unchanged when it carries a time zone; 422 naming the parameter otherwise."""
    if value is not None and value.tzinfo is None:
        raise invalid(f"{name} must carry a time zone, e.g. 2026-11-23T08:00:00Z or 2026-11-23T16:00:00+08:00")
    return value


_TEXT = {
    401: "No credential, or one that is not accepted (the reason says which)",
    403: "The caller's role may not do this",
    404: "No such object, or not the caller's to see",
    409: "Not possible in the object's current state",
    422: "The request is invalid: what is wrong is in detail",
    503: "The database is unavailable",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of the error answers a route may give (401 and 503 always)."""
    return {code: {"model": ErrorOut, "description": _TEXT[code]} for code in sorted({401, 503, *codes})}
