"""Crowd routes over real HTTP: zone counts for charts, alert snapshots with the alert's access rules, camera health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.conftest import PATROL_UNIT, assign
from watchpost import store
from watchpost.model import AlertDraft, CameraStatus, Observation, Severity

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
    draft = AlertDraft(
        type="crowd_gathering",
        severity=Severity.MAJOR,
        title="人员聚集 · 广场全景 · 广场",
        dedup_key="crowd_gathering:lotus-cam-square:square",
        site_id="lotus",
        occurred_at=datetime.now(UTC),
        rule="crowd-lotus-cam-square-square",
        device_id=CAMERA,
        zone="square",
        detail={"people": 21.0, "snapshot": True},
    )
    with db.transaction():
        alert_id = store.raise_alert(db, draft=draft, window_s=300, actor="crowd:test").alert_id
        store.insert_snapshot(
            db,
            alert_id=alert_id,
            taken_at=draft.occurred_at,
            device_id=CAMERA,
            zone="square",
            width=2,
            height=2,
            jpeg=b"\xff\xd8\xff\xe0fake\xff\xd9",
        )
    return alert_id


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
