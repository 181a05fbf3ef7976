"""Observations: the people counted in each camera zone over time, bucketed for the console's charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.auth import Action, Principal, require
from api.dependencies import Config, Conn
from api.routes.common import aware, invalid, responses
from api.schemas import ObservationsOut
from watchpost import store
from watchpost.model import TOTAL_ZONE, NotFound

__all__ = ["parse_bucket", "router"]

router = APIRouter(tags=["observations"])

_MAX_POINTS = 10_000  # per zone
_AUTO_POINTS = 360
_STEPS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 86400)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_bucket(text: str) -> int:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or plain seconds -> seconds; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"bucket {text!r}: expected a length such as 10s, 5m, 1h or 1d")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


@router.get(
    "/observations",
    response_model=ObservationsOut,
    summary="People counted per camera zone over time",
    description="The crowd worker stores each zone's count at every sample (and the whole frame as zone"
    " `_total`). This answers them in buckets (`bucket`: 10s, 1m, 5m, 1h... default: about 360 points) with"
    " the mean, minimum, maximum and number of samples of each, oldest first, per zone (repeat `zone` for several;"
    " default every zone and `_total`), between `since` (default an hour before `until`) and `until` (default now)."
    " The camera's health comes along.",
    responses=responses(403, 404, 422),
)
def observations(
    conn: Conn,
    config: Config,
    principal: Annotated[Principal, require(Action.READ_OBSERVATIONS)],
    device: Annotated[str, Query(description="Camera id")],
    zone: Annotated[list[str] | None, Query(description="Zone id (or _total); repeat for several")] = None,
    since: Annotated[datetime | None, Query(description="From (ISO 8601 with a zone); default until - 1 hour")] = None,
    until: Annotated[datetime | None, Query(description="Until, exclusive (ISO 8601 with a zone); default now")] = None,
    bucket: Annotated[str | None, Query(description="Bucket length: 10s, 1m, 5m, 1h, 1d or seconds")] = None,
) -> dict[str, Any]:
    camera = config.device_index.get(device)
    if camera is None:
        raise NotFound(f"no device {device!r}")
    if camera.kind != "camera":
        raise invalid(f"device: {device!r} is a {camera.kind}; only cameras count people")
    names = {z.id: z.name or z.id for z in camera.zones} | {TOTAL_ZONE: "whole frame"}
    for z in zone or []:
        if z not in names:
            raise invalid(f"zone: camera {device!r} has no zone {z!r}; zones: {sorted(names)}")
    until = aware("until", until) or datetime.now(UTC)
    since = aware("since", since) or until - timedelta(hours=1)
    if since >= until:
        raise invalid(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    span = (until - since).total_seconds()
    if bucket is None:
        bucket_s = next((s for s in _STEPS if span / s <= _AUTO_POINTS), _STEPS[-1])
    else:
        try:
            bucket_s = parse_bucket(bucket)
        except ValueError as exc:
            raise invalid(str(exc)) from None
    if span / bucket_s > _MAX_POINTS:
        raise invalid(f"bucket: {bucket_s} s over {span:g} s is more than {_MAX_POINTS} points; use a longer bucket")
    rows = store.observation_series(conn, device_id=device, zones=zone, since=since, until=until, bucket_s=bucket_s)
    wanted = list(zone) if zone else [*(z.id for z in camera.zones), TOTAL_ZONE]
    series: dict[str, list[dict[str, Any]]] = {z: [] for z in wanted}
    for r in rows:
        series.setdefault(r["zone"], []).append(
            {
                "at": r["at"],
                "mean": round(r["mean"], 2),
                "min": round(r["min"], 2),
                "max": round(r["max"], 2),
                "samples": r["samples"],
            }
        )
    status = store.camera_statuses(conn).get(device)
    return {
        "device_id": device,
        "site_id": camera.site,
        "since": since,
        "until": until,
        "bucket_s": bucket_s,
        "series": [{"zone": z, "zone_name": names.get(z, z), "points": pts} for z, pts in series.items()],
        "camera": status,
    }
