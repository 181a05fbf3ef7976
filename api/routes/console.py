"""The command-centre console and the patrol view: pages, their assets, and the settings they read.

The pages are plain HTML, CSS and ES modules in ``api/console/`` (nothing is built or fetched
from elsewhere). They hold no data and no secret: a browser signs in with ``POST /auth/token``
and then uses the API like any other client, so the pages themselves are served without a
credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.auth import CurrentPrincipal
from api.dependencies import Config
from api.routes.common import responses
from api.schemas import ConsoleSettingsOut
from watchpost.model import Outcome

__all__ = ["ASSETS", "PAGES", "assets", "page", "router", "wants_page"]

PAGES = Path(__file__).resolve().parent.parent / "console"
ASSETS = PAGES / "assets"

router = APIRouter(tags=["console"])

_NO_CACHE = {"Cache-Control": "no-cache"}  # a new release is picked up at the next load


def wants_page(request: Request) -> bool:
    """Whether the caller is a browser asking for a page (not an API client asking for JSON)."""
    return "text/html" in request.headers.get("accept", "")


def page(name: str) -> FileResponse:
    """One of the console's HTML pages."""
    return FileResponse(PAGES / name, media_type="text/html; charset=utf-8", headers=_NO_CACHE)


def assets() -> StaticFiles:
    """The pages' scripts, styles and icons, to mount at ``/assets``."""
    return StaticFiles(directory=ASSETS)


@router.get("/patrol", include_in_schema=False)
def patrol_page() -> FileResponse:
    return page("patrol.html")


@router.get(
    "/console/settings",
    response_model=ConsoleSettingsOut,
    summary="What the console needs to know of this deployment",
    description="Local time zone, the 1-3-5 policy (tier deadlines, tiers per severity, on-scene radius),"
    " the outcomes, and the map: tiles only when a tile server is configured (`map.tile_url`).",
    responses=responses(),
)
def console_settings(config: Config, principal: CurrentPrincipal) -> dict[str, Any]:
    d = config.dispatch
    return {
        "timezone": config.timezone,
        "tier_deadlines_s": list(d.tier_deadlines_s),
        "severity_tiers": {str(k): list(v) for k, v in d.severity_tiers.items()},
        "on_scene_radius_m": d.on_scene_radius_m,
        "outcomes": [o.value for o in Outcome],
        "map": config.map.model_dump(),
    }
