"""What route functions are handed: a pooled database connection and the configuration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from watchpost import store
from watchpost.config import WatchpostConfig

__all__ = ["Config", "Conn", "connection"]


def connection(request: Request) -> Iterator[Any]:
    """A pooled connection for one request; 503 when the database cannot be reached (an outage, not a bug:
    other database errors stay errors)."""
    try:
        with request.app.state.pool.connection(timeout=5) as conn:
            yield conn
    except store.OperationalError as exc:
        raise HTTPException(status_code=503, detail=f"database unavailable: {exc}") from None


def _config(request: Request) -> WatchpostConfig:
    return request.app.state.config


Conn = Annotated[Any, Depends(connection)]
Config = Annotated[WatchpostConfig, Depends(_config)]
