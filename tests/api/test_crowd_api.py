"""Crowd routes over real HTTP: zone counts for charts, alert snapshots with the alert's access rules, camera health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import PATROL_UNIT, assign
from tests.support import raise_crowd_alert
from watchpost import store
from watchpost.config import WatchpostConfig
from watchpost.model import CameraPicture, CameraStatus, Observation

CAMERA = "lotus-cam-square"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _observe(db, rows):
    if store.layout_of(db) == "native":
        store.ensure_partitions(
            db, days={o.at.date() for o in rows}, cache=store.PartitionCache(), table="observations"
        )
    with db.transaction():
        store.insert_observations(db, observations=rows)


def _minute_of_counts(db):
    rows = []
    for s in range(60):
        at = T0 + timedelta(seconds=s)
        rows.append(Observation(at=at, device_id=CAMERA, zone="square", people=float(s // 10)))
        rows.append(Observation(at=at, device_id=CAMERA, zone="_total", people=float(s // 10) + 2))
    _observe(db, rows)


def test_zone_counts_come_bucketed_per_zone_for_the_chart(api, db):
    """GET /observations answers each zone and the whole frame in buckets with mean, min, max and samples."""
    _minute_of_counts(db)
    r = api.client("operator").get(
        "/observations",
        params={
            "device": CAMERA,
            "since": T0.isoformat(),
            "until": (T0 + timedelta(minutes=1)).isoformat(),
            "bucket": "30s",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["device_id"] == CAMERA and body["site_id"] == "lotus" and body["bucket_s"] == 30
    series = {s["zone"]: s for s in body["series"]}
    assert set(series) == {"square", "_total"} and series["square"]["zone_name"] == "广场"
    square = series["square"]["points"]
    assert [(p["mean"], p["min"], p["max"], p["samples"]) for p in square] == [(1.0, 0.0, 2.0, 30), (4.0, 3.0, 5.0, 30)]
    assert square[0]["at"].startswith("2026-11-30T08:00:00")
    only = api.client("supervisor").get(
        "/observations", params={"device": CAMERA, "zone": "_total", "since": T0.isoformat(), "bucket": "1m"}
    )
    assert [s["zone"] for s in only.json()["series"]] == ["_total"]
    assert only.json()["series"][0]["points"][0]["mean"] == 4.5


def test_the_default_window_is_the_last_hour_in_about_360_points(api, db):
    """Without since, until and bucket: the hour before now, in 10 s buckets; the camera's health comes along."""
    now = datetime.now(UTC)
    _observe(db, [Observation(at=now - timedelta(minutes=5), device_id=CAMERA, zone="square", people=3.0)])
    with db.transaction():
        store.upsert_camera_status(
            db,
            statuses=[
                CameraStatus(
                    device_id=CAMERA,
                    worker="crowd-0",
                    state="ok",
                    reason=None,
                    source="mqtt:x",
                    last_frame_at=now,
                    frames=5,
                    errors=0,
                    reconnects=0,
                    people=3.0,
                )
            ],
        )
    body = api.client("admin").get("/observations", params={"device": CAMERA}).json()
    assert body["bucket_s"] == 10
    assert (
        3590 <= (datetime.fromisoformat(body["until"]) - datetime.fromisoformat(body["since"])).total_seconds() <= 3600
    )
    assert [p["mean"] for p in body["series"][0]["points"]] == [3.0]
    assert body["camera"]["state"] == "ok" and body["camera"]["people"] == 3.0


def test_bad_observation_queries_say_what_is_wrong(api, db):
    """Unknown camera 404; a gate, an unknown zone, a bad bucket, a reversed or naive window, too many points 422."""
    op = api.client("operator")
    assert op.get("/observations", params={"device": "nope"}).status_code == 404
    cases = [
        ({"device": "lotus-gate-n"}, "only cameras count people"),
        ({"device": CAMERA, "zone": "plaza"}, "has no zone 'plaza'"),
        ({"device": CAMERA, "bucket": "5 minutes"}, "expected a length such as 10s"),
        ({"device": CAMERA, "since": "2026-11-30T09:00:00Z", "until": "2026-11-30T08:00:00Z"}, "must be before"),
        ({"device": CAMERA, "since": "2026-11-30T08:00:00"}, "must carry a time zone"),
        ({"device": CAMERA, "since": "2026-01-01T00:00:00Z", "bucket": "1s"}, "more than 10000 points"),
        ({}, "query.device: required"),
    ]
    for params, reason in cases:
        r = op.get("/observations", params=params)
        assert r.status_code == 422 and reason in r.json()["detail"], (params, r.text)


def _crowd_alert(db) -> int:
    return raise_crowd_alert(db, jpeg=b"\xff\xd8\xff\xe0fake\xff\xd9")


def test_a_snapshot_is_served_to_whoever_may_see_its_alert(api, db):
    """The console and the auditor get the JPEG; a patrol unit only once its unit is sent to the alert."""
    alert_id = _crowd_alert(db)
    for role in ("operator", "auditor"):
        r = api.client(role).get(f"/alerts/{alert_id}/snapshot")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content == b"\xff\xd8\xff\xe0fake\xff\xd9" and r.headers["x-snapshot-zone"] == "square"
    patrol = api.client("patrol")
    assert patrol.get(f"/alerts/{alert_id}/snapshot").status_code == 404
    assign(api.client("operator"), alert_id, PATROL_UNIT)
    assert patrol.get(f"/alerts/{alert_id}/snapshot").status_code == 200
    assert api.client("operator").get("/alerts/999999/snapshot").status_code == 404


def test_device_health_shows_a_counting_cameras_capture_state(api, db):
    """/stats/devices carries each counting camera's state, reason and last error."""
    now = datetime.now(UTC)
    with db.transaction():
        store.upsert_camera_status(
            db,
            statuses=[
                CameraStatus(
                    device_id=CAMERA,
                    worker="crowd-0",
                    state="dead",
                    reason="gave up after 5 failed attempts",
                    source="rtsp://admin:***@cam/1",
                    last_frame_at=None,
                    frames=0,
                    errors=0,
                    reconnects=4,
                    people=None,
                    last_error="stream dead: gave up after 5 failed attempts",
                    last_error_at=now,
                )
            ],
        )
    rows = {r["device_id"]: r for r in api.client("auditor").get("/stats/devices").json()}
    camera = rows[CAMERA]["camera"]
    assert camera["state"] == "dead" and camera["reconnects"] == 4 and "gave up" in camera["last_error"]
    assert rows["lotus-gate-n"]["camera"] is None


def _picture(db, jpeg: bytes = b"\xff\xd8\xff\xe0empty-scene\xff\xd9") -> None:
    with db.transaction():
        store.put_camera_picture(
            db,
            picture=CameraPicture(
                device_id=CAMERA,
                taken_at=datetime.now(UTC),
                width=640,
                height=352,
                frame_width=1920,
                frame_height=1080,
                jpeg=jpeg,
            ),
        )


def test_cameras_list_their_zones_with_the_latest_counts_and_the_picture_size(api, db):
    """GET /cameras: each counting camera's zones (camera pixels), rules, newest count per zone, frame size, and each
    zone's ground area with where it comes from."""
    now = datetime.now(UTC)
    _observe(
        db,
        [
            Observation(at=now - timedelta(minutes=30), device_id=CAMERA, zone="square", people=40.0),  # too old
            Observation(at=now - timedelta(seconds=4), device_id=CAMERA, zone="square", people=6.0),
            Observation(at=now - timedelta(seconds=2), device_id=CAMERA, zone="square", people=7.5),
            Observation(at=now - timedelta(seconds=2), device_id=CAMERA, zone="_total", people=9.0),
        ],
    )
    before = api.client("operator").get("/cameras").json()
    assert [c["device_id"] for c in before] == [CAMERA] and before[0]["picture"] is None
    _picture(db)
    cameras = api.client("supervisor").get("/cameras").json()
    assert [c["device_id"] for c in cameras] == [CAMERA]
    camera = cameras[0]
    assert camera["frame_size"] == [1920, 1080] and camera["has_model"] and camera["people"] == 9.0
    assert camera["picture"]["width"] == 640 and camera["picture"]["frame_width"] == 1920
    (square,) = camera["zones"]
    assert square["id"] == "square" and square["name"] == "广场" and square["people"] == 7.5
    assert square["polygon"] == [[120, 200], [1800, 200], [1800, 1060], [120, 1060]]
    assert square["gathering"]["threshold"] == 9 and square["gathering"]["dwell_s"] == 20
    assert square["area_m2"] == 600 and square["area_from"] == "ground"  # the demo's ground points
    h = camera["ground"]
    x, y, w = (sum(h[r][c] * v for c, v in enumerate((1800, 200, 1))) for r in range(3))
    assert (x / w, y / w) == pytest.approx((24, 25)), "the homography takes the picture to the ground's metres"
    one = api.client("admin").get(f"/cameras/{CAMERA}").json()
    assert one["zones"] == camera["zones"]


def test_a_cameras_picture_is_its_empty_scene_with_the_size_its_zones_are_drawn_in(api, db):
    """GET /cameras/{id}/picture serves the stored JPEG and X-Frame-Size; before a worker stored one, 404 says why."""
    op = api.client("operator")
    r = op.get(f"/cameras/{CAMERA}/picture")
    assert r.status_code == 404 and "no crowd worker has counted on it yet" in r.json()["detail"]
    _picture(db)
    r = op.get(f"/cameras/{CAMERA}/picture")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == b"\xff\xd8\xff\xe0empty-scene\xff\xd9" and r.headers["x-frame-size"] == "1920x1080"


def test_camera_routes_refuse_what_is_not_a_counting_camera_and_who_may_not_see_counts(api, db):
    """Unknown device 404, a gate 422 saying why; auditors and patrol units may not read cameras (403)."""
    op = api.client("operator")
    assert op.get("/cameras/nope").status_code == 404
    r = op.get("/cameras/lotus-gate-n/picture")
    assert r.status_code == 422 and "does not count people" in r.json()["detail"]
    for role in ("auditor", "patrol"):
        r = api.client(role).get("/cameras")
        assert r.status_code == 403 and "read observations" in r.json()["detail"], (role, r.text)


def test_a_camera_without_a_model_says_it_has_no_picture_because_it_is_not_calibrated(start_api, api_config, db):
    """No crowd.model: GET /cameras shows has_model false, and the picture's 404 says to calibrate the camera."""
    doc = api_config.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == CAMERA:
            device["crowd"]["model"] = None
            device["crowd"]["frame_size"] = None
    api = start_api(config=WatchpostConfig.model_validate(doc))
    op = api.client("operator")
    (camera,) = op.get("/cameras").json()
    assert camera["has_model"] is False and camera["frame_size"] is None and camera["picture"] is None
    r = op.get(f"/cameras/{CAMERA}/picture")
    assert r.status_code == 404 and "no calibrated model (watchpost crowd calibrate" in r.json()["detail"]


def test_a_camera_that_keeps_no_picture_serves_none_even_if_one_is_stored(start_api, api_config, db):
    """crowd.picture false: GET /cameras shows no picture and the picture route 404s saying it is turned off."""
    _picture(db)
    doc = api_config.model_dump(mode="json")
    next(d for d in doc["devices"] if d["id"] == CAMERA)["crowd"]["picture"] = False
    op = start_api(config=WatchpostConfig.model_validate(doc)).client("operator")
    assert op.get("/cameras").json()[0]["picture"] is None
    r = op.get(f"/cameras/{CAMERA}/picture")
    assert r.status_code == 404 and "keeps no picture (crowd.picture: false)" in r.json()["detail"]


def test_a_reload_with_new_zones_shows_them_and_one_changing_access_is_refused(api):
    """reload_config serves a configuration whose only change is a camera's zones (GET /cameras lists the new
    zone); one that also changes who may sign in is refused whole and the console keeps the old zones."""
    from api.app import reload_config
    from watchpost.config import ReloadError

    doc = api.app.state.config.model_dump(mode="json")
    camera = next(d for d in doc["devices"] if d["id"] == CAMERA)
    camera["zones"].append({"id": "gate-side", "name": "门口", "polygon": [[0, 0], [960, 0], [960, 1080], [0, 1080]]})
    assert reload_config(api.app, WatchpostConfig.model_validate(doc)) == [CAMERA]
    (listed,) = api.client("operator").get("/cameras").json()
    assert [z["id"] for z in listed["zones"]] == ["square", "gate-side"] and listed["zones"][1]["name"] == "门口"
    camera["zones"].pop()
    doc["access"]["users"] = doc["access"]["users"][1:]
    with pytest.raises(ReloadError, match="restart to apply: access changed"):
        reload_config(api.app, WatchpostConfig.model_validate(doc))
    assert [z["id"] for z in api.client("operator").get(f"/cameras/{CAMERA}").json()["zones"]] == [
        "square",
        "gate-side",
    ]
