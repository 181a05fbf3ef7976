"""Counting cameras: their zones with the latest counts, and the picture of the empty scene to draw zones on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api.auth import Action, Principal, require
from api.dependencies import Config, Conn
from api.routes.common import invalid, responses
from api.schemas import CameraOut
from watchpost import store
from watchpost.config import DeviceConfig, WatchpostConfig
from watchpost.model import TOTAL_ZONE, CameraPicture, NotFound

__all__ = ["router"]

router = APIRouter(tags=["cameras"])

_RECENT = timedelta(minutes=5)  # a count older than this is not "the latest" any more

DeviceId = Annotated[str, Path(description="Camera id")]


def _counting_camera(config: WatchpostConfig, device: str) -> DeviceConfig:
    camera = config.device_index.get(device)
    if camera is None:
        raise NotFound(f"no device {device!r}")
    if camera.kind != "camera" or camera.crowd is None:
        raise invalid(f"device {device!r} does not count people (a camera with a crowd section does)")
    return camera


def _camera(
    camera: DeviceConfig,
    statuses: dict[str, dict[str, Any]],
    pictures: dict[str, CameraPicture],
    latest: dict[str, dict[str, tuple[datetime, float]]],
) -> dict[str, Any]:
    assert camera.crowd is not None
    picture = pictures.get(camera.id) if camera.crowd.picture else None
    counts = latest.get(camera.id, {})
    frame_size = camera.crowd.frame_size or (picture and (picture.frame_width, picture.frame_height))
    plane = camera.crowd.ground_plane
    zones = []
    for z in camera.zones:
        at, people = counts.get(z.id, (None, None))
        zones.append(
            {
                "id": z.id,
                "name": z.name or z.id,
                "polygon": z.polygon,
                "area_m2": camera.zone_area_m2(z),
                "area_from": "configured" if z.area_m2 is not None else "ground" if plane is not None else None,
                "gathering": z.gathering.model_dump(mode="json", exclude_none=True) if z.gathering else None,
                "people": people,
                "counted_at": at,
            }
        )
    return {
        "device_id": camera.id,
        "name": camera.name or camera.id,
        "site_id": camera.site,
        "sample_fps": camera.crowd.sample_fps,
        "has_model": camera.crowd.model is not None,
        "frame_size": frame_size or None,
        "zones": zones,
        "ground": [list(row) for row in plane.matrix] if plane is not None else None,
        "people": counts.get(TOTAL_ZONE, (None, None))[1],
        "picture": None
        if picture is None
        else {
            "taken_at": picture.taken_at,
            "width": picture.width,
            "height": picture.height,
            "frame_width": picture.frame_width,
            "frame_height": picture.frame_height,
        },
        "camera": statuses.get(camera.id),
    }


@router.get(
    "/cameras",
    response_model=list[CameraOut],
    summary="Counting cameras, their zones and latest counts",
    description="Every camera with a `crowd` section: its zones (polygons in the camera's pixels) with their"
    " gathering rules and the latest people count of each, the size of the picture the zones are drawn in, its"
    " health, and whether its picture of the empty scene is there (GET /cameras/{device}/picture).",
    responses=responses(403),
)
def list_cameras(
    conn: Conn, config: Config, principal: Annotated[Principal, require(Action.READ_OBSERVATIONS)]
) -> list[dict[str, Any]]:
    cameras = [d for d in config.devices if d.kind == "camera" and d.crowd is not None]
    return _cameras(conn, cameras)


def _cameras(conn: Any, cameras: list[DeviceConfig]) -> list[dict[str, Any]]:
    """The cameras' answers from three queries, however many cameras there are."""
    statuses = store.camera_statuses(conn)
    pictures = store.camera_picture_sizes(conn)
    since = datetime.now(UTC) - _RECENT
    latest = store.latest_counts(conn, device_ids=[c.id for c in cameras], since=since)
    return [_camera(c, statuses, pictures, latest) for c in cameras]


@router.get(
    "/cameras/{device}",
    response_model=CameraOut,
    summary="One counting camera, its zones and latest counts",
    responses=responses(403, 404, 422),
)
def get_camera(
    conn: Conn, config: Config, device: DeviceId, principal: Annotated[Principal, require(Action.READ_OBSERVATIONS)]
) -> dict[str, Any]:
    return _cameras(conn, [_counting_camera(config, device)])[0]


@router.get(
    "/cameras/{device}/picture",
    summary="The camera's picture of its empty scene (JPEG), to draw zones on",
    description="The background the camera's counting model learnt (the median of the calibration frames with"
    " the labelled people left out), as the crowd worker last had it: written when the worker starts and every"
    " 10 minutes as the background adapts. Never a live frame. Its size is the counting size; zones are in the"
    " pixels of `X-Frame-Size` (the camera's picture), so scale by that. 404 until a worker has counted on the"
    " camera.",
    response_class=Response,
    responses={**responses(403, 404, 422), 200: {"content": {"image/jpeg": {}}, "description": "The JPEG picture"}},
)
def camera_picture(
    conn: Conn, config: Config, device: DeviceId, principal: Annotated[Principal, require(Action.READ_OBSERVATIONS)]
) -> Response:
    camera = _counting_camera(config, device)
    assert camera.crowd is not None
    if not camera.crowd.picture:
        raise NotFound(f"camera {device!r} keeps no picture (crowd.picture: false)")
    picture = store.camera_picture(conn, camera.id)
    if picture is None:
        if camera.crowd.model is None:
            reason = "it has no calibrated model (watchpost crowd calibrate, then crowd.model)"
        else:
            reason = "no crowd worker has counted on it yet"
        raise NotFound(f"camera {device!r} has no picture: {reason}")
    return Response(
        content=picture.jpeg,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, max-age=60",
            "X-Picture-Taken-At": picture.taken_at.isoformat().replace("+00:00", "Z"),
            "X-Frame-Size": f"{picture.frame_width}x{picture.frame_height}",
        },
    )
