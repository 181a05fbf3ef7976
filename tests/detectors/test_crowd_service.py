"""The crowd worker end to end: JPEG frames over a real broker, counts, alerts on the live stream, clearing, faults."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Any

import cv2
import numpy as np
import pytest

from detectors.crowd import synthetic as syn
from detectors.crowd.service import (
    TOTAL_ZONE,
    CrowdWorker,
    camera_cost,
    counting_cameras,
    partition_cameras,
    synthetic_model,
)
from detectors.crowd.snapshot import encode_jpeg
from ingest.mqtt import Publisher
from tests.api.conftest import api, api_config, sse_events, start_api  # noqa: F401  (fixtures)
from tests.support import wait_for
from watchpost import store
from watchpost.config import WatchpostConfig

CAMERA = "lotus-cam-square"
THRESHOLD = 7
# Heads well inside the square zone (its polygon is drawn on the camera's 1920x1080 picture).
CROWD = [(110 + 22 * (i % 6), 80 + 30 * (i // 6), 30 + 20 * (i % 3)) for i in range(12)]
PASSERS = [(60, 70, 220), (250, 150, 40)]


def _crowd_config(base: WatchpostConfig, tag: str, **gathering: Any) -> WatchpostConfig:
    """The demo configuration with the square camera on a topic of this test's own and quick gathering timings."""
    doc = base.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == CAMERA:
            device["crowd"].update(source="mqtt", topic=f"t{tag}/cameras/{{device}}/frame", sample_fps=20)
            device["zones"][0]["gathering"] = {
                "threshold": THRESHOLD,
                "release_threshold": 4,
                "dwell_s": 1.0,
                "release_s": 1.0,
                "cooldown_s": 0,
                "smooth_s": 0.3,
                **gathering,
            }
    return WatchpostConfig.model_validate(doc)


def _start_worker(config, database_url, broker, model, name: str = "crowd-test") -> CrowdWorker:
    """A crowd worker on the test database and broker counting the square camera with ``model``."""
    return CrowdWorker(
        config=config,
        database_url=database_url,
        broker=broker,
        name=name,
        models={CAMERA: model},
        status_every_s=0.3,
    ).start()


@pytest.fixture
def config(config: WatchpostConfig) -> WatchpostConfig:
    """The test configuration with the counting camera on this test's topic and a 1 s dwell."""
    return _crowd_config(config, uuid.uuid4().hex[:8])


@pytest.fixture(scope="module")
def model():
    """The demo scene's model, calibrated from synthetic frames."""
    return synthetic_model()


@pytest.fixture
def worker(config, database_url, broker, db, model):
    """A running crowd worker on the test database and broker."""
    w = _start_worker(config, database_url, broker, model)
    assert w.wait_ready(10), w.subscriber.detail if w.subscriber else ""
    yield w
    w.stop()


def _camera_sender(config, broker):
    """A function that publishes JPEG frames of the synthetic scene to the camera's frame topic, as its gateway
    would (``.close()`` when done)."""
    publisher = Publisher(broker).connect()
    topic = config.device_index[CAMERA].crowd.topic_for(CAMERA)
    rng = np.random.default_rng(5)
    background = syn.background()

    def send(people=(), *, seconds: float = 0.0, fps: float = 20.0, raw: bytes | None = None, view=None) -> None:
        if raw is not None:
            publisher.publish(topic, raw, qos=1).wait_for_publish(5)
            return
        end = time.monotonic() + seconds
        while True:
            image = background.copy()
            syn.draw_people(image, list(people))
            image = syn.finish(image, rng)
            if view is not None:  # what the camera sees instead (turned, covered)
                image = view(image)
            publisher.publish(topic, encode_jpeg(image, quality=90), qos=1).wait_for_publish(5)
            if time.monotonic() >= end:
                return
            time.sleep(1 / fps)

    send.close = publisher.close  # type: ignore[attr-defined]
    return send


@pytest.fixture
def camera(config, broker):
    """Publishes JPEG frames of the synthetic scene to the camera's frame topic, as its gateway would."""
    send = _camera_sender(config, broker)
    yield send
    send.close()


def _status(worker: CrowdWorker):
    return next(c for c in worker.health().cameras if c.device_id == CAMERA)


def _crowd_alerts(db) -> list[dict[str, Any]]:
    return [a for a in store.list_alerts(db, type_="crowd_gathering") if a["device_id"] == CAMERA]


def test_a_jpeg_over_mqtt_is_counted_and_stored_as_observations(worker, camera, db):
    """Frames published to the camera's topic are decoded and counted; every zone and the whole frame get a row."""
    camera(PASSERS, seconds=0.5)
    rows = wait_for(
        lambda: db.execute("SELECT zone, people FROM observations WHERE device_id = %s", (CAMERA,)).fetchall()
    )
    zones = {z for z, _ in rows}
    assert zones == {"square", TOTAL_ZONE}
    totals = [p for z, p in rows if z == TOTAL_ZONE]
    assert 0.5 < float(np.median(totals)) < 4.0  # two people in the picture
    status = wait_for(lambda: _status(worker).frames >= 3 and _status(worker))
    assert status.state == "ok" and status.people is not None


def test_a_base64_jpeg_in_a_json_message_is_counted_like_a_raw_one(worker, camera):
    """A gateway that wraps frames as JSON with a base64 image (Node-RED, Blue Iris) is counted, not refused."""
    import base64
    import json

    image = syn.background()
    syn.draw_people(image, PASSERS)
    text = base64.b64encode(encode_jpeg(image, quality=90)).decode()
    for _ in range(4):
        camera(raw=json.dumps({"camera": CAMERA, "image": f"data:image/jpeg;base64,{text}"}).encode())
        time.sleep(0.1)
    status = wait_for(lambda: _status(worker).frames >= 2 and _status(worker))
    assert status.state == "ok" and status.errors == 0 and status.last_error is None
    assert 0.5 < status.people < 4.0  # the two passers-by


def test_a_gathering_reaches_the_live_stream_with_count_trend_and_snapshot(worker, camera, api, db):  # noqa: F811
    """A crowd that stays past the dwell raises a crowd_gathering alert on the SSE stream; its snapshot is served."""
    op = api.client("operator")
    heard: queue.Queue = queue.Queue()

    def listen() -> None:
        with op.stream("GET", "/stream", timeout=30) as r:
            for event in sse_events(r):
                if event.data.get("alert", {}).get("type") == "crowd_gathering":
                    heard.put(event)
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.3)  # the stream is open
    camera(PASSERS, seconds=0.5)
    camera(PASSERS + CROWD, seconds=2.5)
    event = heard.get(timeout=15)
    assert event.event == "raised"
    alert = event.data["alert"]
    assert alert["zone"] == "square" and alert["device_id"] == CAMERA and alert["site_id"] == "lotus"
    assert alert["severity"] in ("major", "critical") and "广场" in alert["title"]
    detail = alert["detail"]
    assert detail["people"] >= THRESHOLD and detail["reason"] == "threshold" and detail["snapshot"] is True
    assert detail["trend"]["slope_per_min"] > 0 and len(detail["trend"]["counts"]) >= 2

    r = op.get(f"/alerts/{alert['alert_id']}/snapshot")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    picture = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (syn.HEIGHT, syn.WIDTH, 3)
    red = (picture[:, :, 2] > 180) & (picture[:, :, 1] < 90) & (picture[:, :, 0] < 90)
    assert red.sum() > 100, "the alarmed zone is outlined in red"
    # A patrol unit not sent to it does not even learn it exists; a manual alert has no snapshot.
    assert api.client("patrol").get(f"/alerts/{alert['alert_id']}/snapshot").status_code == 404
    manual = op.post("/alerts", json={"type": "theft", "site_id": "lotus"}).json()
    r = op.get(f"/alerts/{manual['alert_id']}/snapshot")
    assert r.status_code == 404 and "no snapshot" in r.json()["detail"]


def test_a_gathering_is_raised_after_the_dwell_and_cleared_after_the_release(worker, camera, db):
    """No alert before the dwell; once the crowd has left for the release time the alert is annotated, not resolved;
    the crowd back folds into it, no longer cleared."""
    camera(PASSERS, seconds=0.5)
    started = time.time()
    camera(PASSERS + CROWD, seconds=0.6)
    assert _crowd_alerts(db) == [], "raised before the dwell time"
    camera(PASSERS + CROWD, seconds=1.5)
    (alert,) = wait_for(lambda: _crowd_alerts(db), timeout=10)
    raised_after = store.get_alert_row(db, alert["alert_id"])["first_seen"].timestamp() - started
    assert raised_after >= 1.0
    # The crowd goes home: after the release time the alert's timeline says so.
    camera(PASSERS, seconds=2.0)

    def cleared():
        return [t for t in store.alert_timeline(db, alert["alert_id"]) if t["action"] == "gathering_cleared"]

    (note,) = wait_for(cleared, timeout=10)
    assert note["actor"] == "crowd:crowd-test" and note["from_state"] == note["to_state"]
    assert note["detail"]["peak_people"] >= THRESHOLD and note["detail"]["duration_s"] >= 1.0
    after = store.alert_snapshot(db, alert["alert_id"])
    assert after["state"] not in ("resolved", "cancelled"), "a gathering that ended is not resolved silently"
    assert after["detail"]["cleared_at"] and after["detail"]["people_at_clear"] < THRESHOLD
    kinds = [e["kind"] for e in store.feed_after(db, after=0) if e["alert_id"] == alert["alert_id"]]
    assert kinds[0] == "raised" and kinds[-1] == "updated"
    # The same crowd again (cooldown 0) folds into the open alert with a new snapshot, not a second alert.
    camera(PASSERS + CROWD, seconds=2.0)
    wait_for(lambda: store.alert_snapshot(db, alert["alert_id"])["count"] == 2, timeout=10)
    assert len(_crowd_alerts(db)) == 1
    assert store.alert_snapshot(db, alert["alert_id"])["detail"]["cleared_at"] is None, "the crowd is back"
    n = db.execute("SELECT count(*) FROM alert_snapshots WHERE alert_id = %s", (alert["alert_id"],)).fetchone()[0]
    assert n == 2


def test_a_density_rule_counts_per_square_metre_of_the_area_the_cameras_ground_points_give(
    config, database_url, broker, db, model
):
    """A zone with no area_m2 gets its 600 m² from the demo camera's ground points; 0.0125 people/m² raises."""
    dense = _crowd_config(config, uuid.uuid4().hex[:8], threshold=None, release_threshold=None, density_per_m2=0.0125)
    zone = dense.device_index[CAMERA].zones[0]
    assert zone.area_m2 is None and zone.gathering.density_per_m2 == 0.0125
    w = _start_worker(dense, database_url, broker, model)
    send = _camera_sender(dense, broker)
    try:
        assert w.wait_ready(10)
        send(PASSERS, seconds=0.5)
        assert _crowd_alerts(db) == [], "two passers-by are no crowd at 0.0125 per m²"
        send(PASSERS + CROWD, seconds=2.5)
        (alert,) = wait_for(lambda: _crowd_alerts(db), timeout=10)
        detail = alert["detail"]
        assert detail["reason"] == "density" and detail["people"] >= 600 * 0.0125
        assert detail["density_per_m2"] == pytest.approx(detail["people"] / 600, rel=0.02)
    finally:
        send.close()
        w.stop()


def test_corrupt_frames_and_pixel_bombs_are_refused_with_a_reason_and_counting_goes_on(worker, camera, db):
    """A damaged JPEG, a pixel bomb and a non-JPEG are each refused with a clear error; the next frame is counted."""
    camera(PASSERS, seconds=0.3)
    wait_for(lambda: _status(worker).frames >= 1)
    good = encode_jpeg(syn.background())
    half = len(good) // 2
    corrupt = good[:half] + bytes([0xFF, 0x13]) * 50 + good[half + 100 :]
    bomb = bytearray(encode_jpeg(np.zeros((16, 16, 3), np.uint8)))
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    reasons = []
    for raw in (corrupt, bytes(bomb), b"GIF89a not a jpeg"):
        time.sleep(0.1)  # past the sampling interval: a frame that comes too soon is skipped, not judged
        camera(raw=raw)
        wait_for(lambda: _status(worker).errors > len(reasons), timeout=5)
        reasons.append(_status(worker).last_error)
    assert "corrupt" in reasons[0] and "too_large" in reasons[1] and "60000x60000" in reasons[1]
    assert "not_jpeg" in reasons[2]
    frames = _status(worker).frames
    camera(PASSERS, seconds=0.3)
    status = wait_for(lambda: _status(worker).frames > frames and _status(worker))
    assert status.state == "ok" and status.errors == 3
    stored = wait_for(
        lambda: store.camera_statuses(db).get(CAMERA, {}).get("errors") == 3 and store.camera_statuses(db)
    )
    assert "not_jpeg" in stored[CAMERA]["last_error"]


def test_the_camera_picture_is_the_empty_scene_and_a_standing_crowd_never_enters_it(
    config, database_url, broker, db, model, camera, monkeypatch
):
    """At start the worker stores the model's background as the camera's picture (with the zones' frame size);
    refreshed on every frame while a crowd stands in view, it still shows the empty scene, not the people."""
    from detectors.crowd import service

    monkeypatch.setattr(service, "_PICTURE_EVERY_S", 0.0)  # follow the adapting background at every frame
    w = _start_worker(config, database_url, broker, model, name="crowd-picture")
    try:
        assert w.wait_ready(10)
        first = wait_for(lambda: store.camera_picture(db, CAMERA))
        assert (first.width, first.height) == (model.width, model.height)
        assert (first.frame_width, first.frame_height) == (1920, 1080)  # the demo camera's configured frame_size
        camera(CROWD, seconds=3.0)
        wait_for(lambda: _status(w).frames >= 30)
        time.sleep(0.5)
        latest = store.camera_picture(db, CAMERA)
        assert latest.taken_at > first.taken_at
    finally:
        w.stop()
    picture = cv2.imdecode(np.frombuffer(latest.jpeg, np.uint8), cv2.IMREAD_COLOR)
    crowd = model.background.copy()
    syn.draw_people(crowd, CROWD)
    empty = np.abs(picture.astype(int) - model.background.astype(int)).mean()
    with_people = np.abs(crowd.astype(int) - model.background.astype(int)).mean()
    assert empty < 3.0 and with_people > 3 * empty, (empty, with_people)


def test_a_camera_told_to_keep_no_picture_forgets_the_one_it_had(config, database_url, broker, db, model, camera):
    """With crowd.picture false the worker stores no empty scene and deletes one kept before; counting goes on."""
    from datetime import UTC, datetime

    from watchpost.model import CameraPicture

    with db.transaction():
        store.put_camera_picture(
            db,
            picture=CameraPicture(CAMERA, datetime.now(UTC), 2, 2, 1920, 1080, b"\xff\xd8old\xff\xd9"),
        )
    doc = config.model_dump(mode="json")
    next(d for d in doc["devices"] if d["id"] == CAMERA)["crowd"]["picture"] = False
    w = _start_worker(WatchpostConfig.model_validate(doc), database_url, broker, model, name="crowd-nopicture")
    try:
        assert w.wait_ready(10)
        wait_for(lambda: store.camera_picture(db, CAMERA) is None)
        camera(PASSERS, seconds=0.5)
        wait_for(lambda: _status(w).frames >= 3)
        time.sleep(0.5)
        assert store.camera_picture(db, CAMERA) is None
    finally:
        w.stop()


def test_a_camera_read_from_its_snapshot_url_is_counted(config, database_url, db, model):
    """A camera with `snapshot: true` is polled at its still-image URL with digest authentication; its frames
    are counted into observations and its health shows the URL without the password."""
    from tests.camera_http import SnapshotCamera

    rng = np.random.default_rng(3)

    def picture() -> bytes:
        image = syn.background()
        syn.draw_people(image, list(PASSERS))
        return encode_jpeg(syn.finish(image, rng), quality=90)

    with SnapshotCamera(picture) as http_camera:
        doc = config.model_dump(mode="json")
        crowd = next(d for d in doc["devices"] if d["id"] == CAMERA)["crowd"]
        crowd.update(source=http_camera.url("/picture"), snapshot=True, sample_fps=10)
        w = _start_worker(WatchpostConfig.model_validate(doc), database_url, None, model, name="crowd-snapshot")
        try:
            status = wait_for(lambda: _status(w).frames >= 5 and _status(w), timeout=20)
            assert status.state == "ok" and "***" in status.source and "se@cret" not in status.source
            rows = wait_for(
                lambda: db.execute(
                    "SELECT people FROM observations WHERE device_id = %s AND zone = %s", (CAMERA, TOTAL_ZONE)
                ).fetchall()
            )
            assert 0.5 < float(np.median([r[0] for r in rows])) < 4.0  # the two passers-by
        finally:
            w.stop()
    assert "Digest" in http_camera.schemes


def test_a_camera_read_from_its_mjpeg_http_stream_is_counted_and_a_stall_is_reported(config, database_url, db, model):
    """A camera whose source is its MJPEG stream over HTTP is counted into observations; when it hangs (connected,
    sending nothing) its health says the stream stalled instead of staying ok."""
    from tests.camera_http import MjpegCamera

    rng = np.random.default_rng(4)
    jpegs = []
    for _ in range(30):
        image = syn.background()
        syn.draw_people(image, list(PASSERS))
        jpegs.append(encode_jpeg(syn.finish(image, rng), quality=90))
    with MjpegCamera(jpegs, fps=10, stall_after=30) as http_camera:
        doc = config.model_dump(mode="json")
        crowd = next(d for d in doc["devices"] if d["id"] == CAMERA)["crowd"]
        crowd.update(source=http_camera.url, sample_fps=10, stall_timeout_s=1.5, reconnect_initial_s=5)
        w = _start_worker(WatchpostConfig.model_validate(doc), database_url, None, model, name="crowd-mjpeg")
        try:
            rows = wait_for(
                lambda: db.execute(
                    "SELECT people FROM observations WHERE device_id = %s AND zone = %s", (CAMERA, TOTAL_ZONE)
                ).fetchall(),
                timeout=20,
            )
            assert 0.5 < float(np.median([r[0] for r in rows])) < 4.0  # the two passers-by
            status = wait_for(lambda: _status(w).state == "reconnecting" and _status(w), timeout=20)
            assert "stalled, no frame for" in (status.reason or "") and status.frames >= 20
        finally:
            w.stop()


def test_a_camera_read_from_its_rtsp_stream_is_counted(config, database_url, db, model, tmp_path):
    """A camera whose source is an rtsp:// URL (a real RTSP server sending H.264, as IP cameras do) is counted
    into observations, and its health shows the stream."""
    from tests.camera_rtsp import RtspCamera, rtsp_unavailable

    if why := rtsp_unavailable("h264"):
        pytest.skip(why)
    rng = np.random.default_rng(6)
    for i in range(20):
        image = syn.background()
        syn.draw_people(image, list(PASSERS))
        (tmp_path / f"frame{i:04d}.jpg").write_bytes(encode_jpeg(syn.finish(image, rng), quality=90))
    with RtspCamera(tmp_path, fps=10, codec="h264") as rtsp_camera:
        doc = config.model_dump(mode="json")
        crowd = next(d for d in doc["devices"] if d["id"] == CAMERA)["crowd"]
        crowd.update(source=rtsp_camera.url, sample_fps=5)
        w = _start_worker(WatchpostConfig.model_validate(doc), database_url, None, model, name="crowd-rtsp")
        try:
            rows = wait_for(
                lambda: (
                    (
                        r := db.execute(
                            "SELECT people FROM observations WHERE device_id = %s AND zone = %s", (CAMERA, TOTAL_ZONE)
                        ).fetchall()
                    )
                    and len(r) >= 5
                    and r
                ),
                timeout=30,
            )
            assert 0.5 < float(np.median([r[0] for r in rows])) < 4.0  # the two passers-by
            status = _status(w)
            assert status.state == "ok" and status.source == rtsp_camera.url
        finally:
            w.stop()


def test_a_camera_read_behind_its_stream_says_so_in_its_health(config, database_url, model, tmp_path):
    """A camera whose stream is read 5 s or more behind its own clock (the worker has more cameras than it
    keeps up with) stays ok but says how far behind, and what to do."""
    from detectors.crowd.capture import StreamSource

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (syn.WIDTH, syn.HEIGHT))
    for f in syn.video(150, seed=2):
        writer.write(f.image)
    writer.release()
    doc = config.model_dump(mode="json")
    next(d for d in doc["devices"] if d["id"] == CAMERA)["crowd"]["source"] = str(path)
    cfg = WatchpostConfig.model_validate(doc)
    worker = CrowdWorker(config=cfg, database_url=database_url, broker=None, models={CAMERA: model})
    camera = next(c for c in worker.cameras if c.device.id == CAMERA)
    source = StreamSource(str(path), pace=True, max_attempts=1)
    camera._stream, camera._state = source, "ok"  # the camera's own source, read here by a slow consumer
    for frame in source:
        time.sleep(0.1)  # 10 frames a second of a 50 fps stream: 0.08 s more behind at every frame
        if frame.index == 75:
            break
    status = camera.status()
    assert status.state == "ok"
    assert "s behind the live stream" in status.reason and "crowd run --processes" in status.reason


def test_a_dead_stream_is_reported_and_retried_while_other_cameras_count(
    config, database_url, broker, db, model, camera
):
    """A stream that cannot be opened goes dead with the reason, is tried again later; the other camera counts on."""
    doc = config.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == "bamboo-cam-market":
            device["crowd"] = {
                "source": "http://127.0.0.1:9/stream.mjpg",  # nothing listens on port 9
                "model": "synthetic",
                "reconnect_initial_s": 0.05,
                "dead_after": 2,
                "retry_dead_s": 0.5,
            }
    cfg = WatchpostConfig.model_validate(doc)
    w = _start_worker(cfg, database_url, broker, model, name="crowd-dead")
    try:
        assert w.wait_ready(10)

        def dead():
            return next(
                (c for c in w.health().cameras if c.device_id == "bamboo-cam-market" and c.state == "dead"), None
            )

        status = wait_for(dead, timeout=30)
        assert status is not None
        assert "gave up after 2 failed attempts" in status.reason and "trying again" in status.reason
        assert "http://127.0.0.1:9/stream.mjpg" in status.last_error
        retried = wait_for(
            lambda: next(c for c in w.health().cameras if c.device_id == "bamboo-cam-market").reconnects >= 3
        )
        assert retried
        camera(PASSERS, seconds=0.3)
        assert wait_for(lambda: next(c for c in w.health().cameras if c.device_id == CAMERA).frames >= 1)
        stored = wait_for(lambda: store.camera_statuses(db).get("bamboo-cam-market"))
        assert stored["state"] in ("dead", "reconnecting") and stored["source"] == "http://127.0.0.1:9/stream.mjpg"
    finally:
        w.stop()


def test_a_camera_without_a_model_reports_counts_unavailable(config, database_url, db):
    """A counting camera with no calibrated model says so in its health, needs no frames and counts nothing."""
    doc = config.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == CAMERA:
            device["crowd"]["model"] = None
    cfg = WatchpostConfig.model_validate(doc)
    w = CrowdWorker(config=cfg, database_url=database_url, broker=None, name="crowd-nomodel", status_every_s=0.3)
    w.start()
    try:
        # the first report may come before the camera's thread has looked at its model ("waiting", "starting")
        status = wait_for(lambda: (s := store.camera_statuses(db).get(CAMERA)) and s["state"] != "waiting" and s)
        assert status["state"] == "unavailable" and "no calibrated model" in status["reason"]
        assert w.subscriber is None
    finally:
        w.stop()


def test_the_demo_frame_simulator_feeds_the_demo_camera(worker, config, broker, db):
    """The demo's simulated camera publishes JPEG frames of the synthetic scene that the worker counts."""
    from detectors.crowd.simulator import FrameSimulator

    simulator = FrameSimulator(config=config, broker=broker)
    assert simulator.cameras == [CAMERA]
    stop = threading.Event()
    thread = threading.Thread(target=simulator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        status = wait_for(lambda: _status(worker).frames >= 5 and _status(worker), timeout=15)
        assert status.state == "ok" and status.errors == 0 and 0 < status.people < 12
    finally:
        stop.set()
        thread.join(5)


def test_a_lost_database_connection_is_re_established_and_the_gathering_still_raised(worker, camera, db, caplog):
    """The worker's database connection is killed; it reconnects and the gathering that follows is still alerted."""
    camera(PASSERS, seconds=0.3)
    assert wait_for(lambda: worker.recorder.database_ok)
    killed = db.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'watchpost-crowd-test'"
    ).fetchone()[0]
    assert killed >= 1
    camera(PASSERS + CROWD, seconds=2.5)
    (alert,) = wait_for(lambda: _crowd_alerts(db), timeout=15)
    assert alert["detail"]["people"] >= THRESHOLD
    assert worker.health().database_ok and worker.health().healthy
    assert store.latest_snapshot(db, alert["alert_id"]) is not None
    assert "crowd recorder lost the database" in caplog.text


def test_health_shows_each_camera_of_the_crowd_worker(worker, camera, start_api):  # noqa: F811
    """Under `watchpost run`, /health lists the crowd worker with each camera's state, count and last error."""
    from watchpost.cli import _crowd_health

    camera(PASSERS, seconds=0.3)
    wait_for(lambda: _status(worker).frames >= 1)
    body = start_api(health_sources=[_crowd_health(worker)]).client().get("/health").json()
    (crowd,) = body["workers"]
    assert crowd["worker"] == "crowd-test" and crowd["healthy"] and crowd["broker"] == "connected"
    cam = crowd["cameras"][CAMERA]
    assert cam["state"] == "ok" and cam["frames"] >= 1 and cam["people"] is not None and cam["last_error"] is None


def test_a_model_file_that_cannot_be_read_is_an_error_with_the_reason(config, database_url, broker, db, tmp_path):
    """A camera whose model file is missing reports state error naming the file; the worker runs on."""
    doc = config.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == CAMERA:
            device["crowd"]["model"] = str(tmp_path / "missing.model")
    cfg = WatchpostConfig.model_validate(doc)
    w = CrowdWorker(config=cfg, database_url=database_url, broker=broker, name="crowd-badmodel", status_every_s=0.3)
    w.start()
    try:
        status = wait_for(lambda: store.camera_statuses(db).get(CAMERA))
        assert status["state"] == "error" and "missing.model" in status["reason"]
        assert status["last_error"].startswith("camera model:")
    finally:
        w.stop()


def test_zones_on_the_camera_picture_need_no_frame_size_when_the_model_knows_it(
    config, database_url, broker, db, model, camera
):
    """Without frame_size, zones are in the pixels of the frames the model was calibrated from (its source_size)."""
    import dataclasses

    doc = config.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == CAMERA:
            device["crowd"]["frame_size"] = None  # the zone is still drawn on the 1920x1080 picture
    bare = WatchpostConfig.model_validate(doc)
    calibrated_from_1080p = dataclasses.replace(model, fit={**model.fit, "source_size": [1920, 1080]})
    w = _start_worker(bare, database_url, broker, calibrated_from_1080p)
    try:
        assert w.wait_ready(10), w.subscriber.detail if w.subscriber else ""
        camera(PASSERS + CROWD, seconds=2.5)
        (alert,) = wait_for(lambda: _crowd_alerts(db), timeout=10)
        assert alert["detail"]["people"] >= THRESHOLD
    finally:
        w.stop()


def test_a_turned_camera_holds_its_counts_and_raises_a_device_fault_until_the_view_is_back(worker, camera, db):
    """A camera turned away (its picture no longer the calibrated scene) stops counting: no observations, no
    gathering alert for the crowd it seems to see, its health `held` with the reason, and one device_fault alert
    with a snapshot; when the view is back counting resumes and the alert's timeline says so."""

    def turned(image):
        return np.roll(image, 60, axis=1)

    def rows() -> int:
        return db.execute("SELECT count(*) FROM observations WHERE device_id = %s", (CAMERA,)).fetchone()[0]

    camera(PASSERS, seconds=0.5)
    wait_for(lambda: _status(worker).frames >= 5)
    camera(PASSERS + CROWD, seconds=1.0, view=turned)
    status = wait_for(lambda: _status(worker).state == "held" and _status(worker))
    assert "counts held" in status.reason and "the camera moved" in status.reason and status.people is None

    def faults():
        return [a for a in store.list_alerts(db, type_="device_fault") if a["device_id"] == CAMERA]

    (fault,) = wait_for(faults, timeout=10)
    row = store.alert_snapshot(db, fault["alert_id"])
    assert row["detail"]["reason"] == "view_unlike_calibration" and row["detail"]["counts_held"] is True
    assert row["detail"]["outlines_kept"] < 0.5
    assert db.execute("SELECT count(*) FROM alert_snapshots WHERE alert_id = %s", (fault["alert_id"],)).fetchone()[0]
    held_rows = rows()
    camera(PASSERS + CROWD, seconds=2.0, view=turned)  # longer than the dwell: the seeming crowd raises nothing
    assert _crowd_alerts(db) == [] and rows() == held_rows
    assert len(faults()) == 1
    camera(PASSERS, seconds=1.0)
    wait_for(lambda: _status(worker).state == "ok")
    wait_for(lambda: rows() > held_rows)

    def restored():
        return [t for t in store.alert_timeline(db, fault["alert_id"]) if t["action"] == "view_restored"]

    (note,) = wait_for(restored, timeout=10)
    assert note["detail"]["held_s"] >= 1.0
    assert store.alert_snapshot(db, fault["alert_id"])["detail"]["counts_held"] is False


def test_a_camera_with_a_night_model_counts_its_night_pictures_with_it_and_goes_back_at_dawn(
    config, database_url, broker, db, model, camera
):
    """Infrared night frames fail the day model's view check and pass the night model's: counting goes on with
    it (a gathering at night is raised, no device fault), and day frames bring the day model back."""
    night = syn.demo_model(night=True)
    w = CrowdWorker(
        config=config,
        database_url=database_url,
        broker=broker,
        name="crowd-test",
        models={CAMERA: model},
        night_models={CAMERA: night},
        status_every_s=0.3,
    ).start()
    try:
        assert w.wait_ready(10)
        camera(PASSERS, seconds=0.5)
        wait_for(lambda: _status(w).frames >= 5 and _status(w).state == "ok")
        assert _status(w).reason is None
        camera(PASSERS + CROWD, seconds=2.5, view=syn.night_picture)
        status = _status(w)
        assert status.state == "ok" and "night model" in status.reason and status.people > 8
        (alert,) = wait_for(lambda: _crowd_alerts(db), timeout=10)
        assert alert["detail"]["people"] >= THRESHOLD
        camera(PASSERS, seconds=1.0)
        wait_for(lambda: _status(w).reason is None)
        assert _status(w).people < 5
        assert [a for a in store.list_alerts(db, type_="device_fault") if a["device_id"] == CAMERA] == []
    finally:
        w.stop()


def _with_zones(config: WatchpostConfig, *added: dict[str, Any], **crowd: Any) -> WatchpostConfig:
    """``config`` with zones added to the square camera (and its crowd section changed by ``crowd``)."""
    doc = config.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == CAMERA:
            device["zones"] += list(added)
            device["crowd"].update(crowd)
    return WatchpostConfig.model_validate(doc)


def test_zones_reloaded_while_counting_are_counted_and_an_unchanged_zone_keeps_its_gathering(
    worker, camera, config, db
):
    """A reload adding a zone counts it from the next frames; the square, drawn and ruled as before, keeps its
    open gathering (not raised again) and clears as usual; a reload changing anything else is refused."""
    from watchpost.config import ReloadError

    camera(PASSERS + CROWD, seconds=2.0)
    (alert,) = wait_for(lambda: _crowd_alerts(db), timeout=10)
    whole = {"id": "whole", "name": "whole picture", "polygon": [[0, 0], [1920, 0], [1920, 1080], [0, 1080]]}
    assert worker.reload(_with_zones(config, whole)) == [CAMERA]
    camera(PASSERS + CROWD, seconds=2.0)

    def counts():
        rows = db.execute(
            "SELECT at, zone, people FROM observations WHERE device_id = %s AND at >= ("
            " SELECT min(at) FROM observations WHERE device_id = %s AND zone = 'whole')",
            (CAMERA, CAMERA),
        ).fetchall()
        by_zone: dict[str, list[float]] = {}
        for _, zone, people in rows:
            by_zone.setdefault(zone, []).append(float(people))
        return len(by_zone.get("whole", ())) >= 5 and by_zone

    by_zone = wait_for(counts, timeout=10)
    assert set(by_zone) == {"square", "whole", TOTAL_ZONE}
    assert abs(np.median(by_zone["whole"]) - np.median(by_zone[TOTAL_ZONE])) < 1.0  # scaled to the picture
    assert store.alert_snapshot(db, alert["alert_id"])["count"] == 1, "the kept gathering was raised again"
    camera(PASSERS, seconds=2.0)
    wait_for(
        lambda: [t for t in store.alert_timeline(db, alert["alert_id"]) if t["action"] == "gathering_cleared"],
        timeout=10,
    )
    with pytest.raises(ReloadError, match=r"device lotus-cam-square changed \(crowd\)"):
        worker.reload(_with_zones(config, whole, sample_fps=5))
    frames = _status(worker).frames
    camera(PASSERS, seconds=0.5)
    wait_for(lambda: _status(worker).frames > frames)


def test_cameras_are_split_over_processes_by_cost_each_in_exactly_one(config):
    """A worker's cameras split over processes: each camera in one group, no group empty, the groups' costs
    within one camera's of each other (a stream, decoded in full, costs more than MQTT frames)."""
    doc = config.model_dump(mode="json")
    square = next(d for d in doc["devices"] if d["id"] == CAMERA)
    for i in range(5):
        source = f"rtsp://10.2.0.{i}/stream" if i < 3 else "mqtt"
        doc["devices"].append(
            {**square, "id": f"cam-{i}", "aliases": [], "crowd": {**square["crowd"], "source": source}}
        )
    cameras = counting_cameras(WatchpostConfig.model_validate(doc))
    ids = sorted(d.id for d in cameras)
    cost = {d.id: camera_cost(d) for d in cameras}
    assert cost["cam-0"] > cost["cam-4"]
    groups = partition_cameras(cameras, 2)
    assert len(groups) == 2 and sorted(c for g in groups for c in g) == ids
    totals = [sum(cost[c] for c in g) for g in groups]
    assert max(totals) - min(totals) <= max(cost.values())
    assert sorted(partition_cameras(cameras, 50)) == sorted([c] for c in ids)  # at most one process a camera
    assert partition_cameras(cameras[:1], 4) == [[cameras[0].id]]
