"""Crowd storage: zone counts as a bucketed time series, snapshots, camera health, notes on alerts, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchpost import store
from watchpost.model import AlertDraft, AlertState, CameraStatus, Observation, Severity


def _observe(db, rows: list[Observation]) -> None:
    if store.layout_of(db) == "native":
        store.ensure_partitions(
            db, days={o.at.date() for o in rows}, cache=store.PartitionCache(), table="observations"
        )
    with db.transaction():
        store.insert_observations(db, observations=rows)


def _alert(db, key: str = "crowd_gathering:cam:square") -> int:
    draft = AlertDraft(
        type="crowd_gathering",
        severity=Severity.MAJOR,
        title="人员聚集",
        dedup_key=key,
        site_id="lotus",
        occurred_at=datetime.now(UTC),
        rule="crowd-test",
        device_id="lotus-cam-square",
        zone="square",
    )
    with db.transaction():
        return store.raise_alert(db, draft=draft, window_s=300, actor="test").alert_id


def test_observations_come_back_in_aligned_buckets_per_zone(db):
    """One row per zone per sample is summarised per bucket (mean, min, max, samples), oldest first."""
    t0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    rows = [
        Observation(at=t0 + timedelta(seconds=s), device_id="cam", zone="square", people=float(s)) for s in range(20)
    ]
    rows += [Observation(at=t0, device_id="cam", zone="_total", people=30.0)]
    rows += [Observation(at=t0, device_id="other", zone="square", people=99.0)]
    _observe(db, rows)
    series = store.observation_series(
        db, device_id="cam", zones=["square"], since=t0, until=t0 + timedelta(minutes=1), bucket_s=10
    )
    assert [(r["zone"], r["at"], r["mean"], r["min"], r["max"], r["samples"]) for r in series] == [
        ("square", t0, 4.5, 0.0, 9.0, 10),
        ("square", t0 + timedelta(seconds=10), 14.5, 10.0, 19.0, 10),
    ]
    every = store.observation_series(
        db, device_id="cam", zones=None, since=t0, until=t0 + timedelta(hours=1), bucket_s=3600
    )
    assert {r["zone"]: r["samples"] for r in every} == {"_total": 1, "square": 20}


def test_a_note_on_the_open_alert_keeps_its_state_and_reaches_the_timeline_and_feed(db):
    """A cleared gathering is recorded on the open alert (timeline, detail, feed) and never changes its state."""
    alert_id = _alert(db)
    with db.transaction():
        store.advance_alert(db, alert_id=alert_id, to=AlertState.DISPATCHED, action="dispatch", actor="dispatcher")
    later = datetime.now(UTC) + timedelta(minutes=3)
    with db.transaction():
        noted = store.note_open_alert(
            db,
            dedup_key="crowd_gathering:cam:square",
            action="gathering_cleared",
            actor="crowd:test",
            detail={"people_at_clear": 2.0},
            seen_at=later,
        )
    assert noted == alert_id
    row = store.get_alert_row(db, alert_id)
    assert row["state"] == "dispatched" and row["detail"]["people_at_clear"] == 2.0 and row["last_seen"] == later
    last = store.alert_timeline(db, alert_id)[-1]
    assert (last["action"], last["from_state"], last["to_state"]) == ("gathering_cleared", "dispatched", "dispatched")
    feed = store.feed_after(db, after=0)
    assert feed[-1]["kind"] == "updated" and feed[-1]["body"]["change"] == "gathering_cleared"
    with db.transaction():
        assert (
            store.note_open_alert(db, dedup_key="crowd_gathering:none", action="x", actor="a", detail={}, seen_at=later)
            is None
        )


def test_snapshots_and_camera_health_are_kept_and_read_back(db):
    """The newest snapshot of an alert is served; camera health is upserted and marks the camera as heard from."""
    alert_id = _alert(db)
    now = datetime.now(UTC)
    with db.transaction():
        for n, jpeg in enumerate((b"\xff\xd8old", b"\xff\xd8new")):
            store.insert_snapshot(
                db,
                alert_id=alert_id,
                taken_at=now + timedelta(seconds=n),
                device_id="lotus-cam-square",
                zone="square",
                width=4,
                height=3,
                jpeg=jpeg,
            )
    snap = store.latest_snapshot(db, alert_id)
    assert snap is not None and snap["jpeg"] == b"\xff\xd8new" and snap["zone"] == "square"
    assert store.latest_snapshot(db, alert_id + 1000) is None
    status = CameraStatus(
        device_id="lotus-cam-square",
        worker="w",
        state="ok",
        reason=None,
        source="mqtt:t",
        last_frame_at=now,
        frames=10,
        errors=1,
        reconnects=0,
        people=3.5,
        last_error="frame refused: corrupt",
        last_error_at=now,
    )
    with db.transaction():
        store.upsert_camera_status(db, statuses=[status])
        store.upsert_camera_status(db, statuses=[CameraStatus(**{**_fields(status), "frames": 11})])
    got = store.camera_statuses(db)["lotus-cam-square"]
    assert got["frames"] == 11 and got["people"] == 3.5 and got["last_error"] == "frame refused: corrupt"
    seen = db.execute("SELECT last_received FROM device_seen WHERE device_id = 'lotus-cam-square'").fetchone()
    assert seen == (now,)
    health = {r["device_id"]: r for r in store.device_health(db, now=now)}
    assert health["lotus-cam-square"]["camera"]["state"] == "ok" and health["lotus-gate-n"]["camera"] is None


def _fields(status: CameraStatus) -> dict:
    return {f: getattr(status, f) for f in status.__slots__}


def test_retention_drops_old_observation_days_and_old_snapshots(db, demo_config):
    """Past their retention, observation partitions and snapshots go; recent ones stay."""
    if store.layout_of(db) != "native":
        pytest.skip("TimescaleDB enforces observation retention with its own policy")
    now = datetime.now(UTC)
    storage = demo_config.storage
    old = now - timedelta(days=storage.observation_retention_days + 2)
    _observe(db, [Observation(at=t, device_id="cam", zone="square", people=1.0) for t in (old, now)])
    alert_id = _alert(db)
    stale = now - timedelta(days=storage.snapshot_retention_days + 1)
    with db.transaction():
        for at in (stale, now):
            store.insert_snapshot(
                db, alert_id=alert_id, taken_at=at, device_id="cam", zone=None, width=1, height=1, jpeg=b"x"
            )
    dropped = store.drop_expired_crowd(db, storage=storage, now=now)
    assert dropped["observation_partitions"] >= 1 and dropped["snapshots"] == 1
    assert db.execute("SELECT count(*) FROM observations").fetchone()[0] == 1
    assert db.execute("SELECT taken_at FROM alert_snapshots").fetchall() == [(now,)]


def test_latest_counts_give_each_cameras_newest_count_per_zone_in_one_query(db):
    """For several cameras at once: the newest count of each zone since the given time; older ones and other
    cameras are left out."""
    now = datetime.now(UTC)
    rows = [
        Observation(at=now - timedelta(minutes=30), device_id="cam-a", zone="square", people=40.0),
        Observation(at=now - timedelta(seconds=9), device_id="cam-a", zone="square", people=5.0),
        Observation(at=now - timedelta(seconds=3), device_id="cam-a", zone="square", people=6.0),
        Observation(at=now - timedelta(seconds=3), device_id="cam-a", zone="_total", people=8.0),
        Observation(at=now - timedelta(seconds=4), device_id="cam-b", zone="gate", people=2.0),
        Observation(at=now - timedelta(seconds=4), device_id="cam-c", zone="gate", people=9.0),
        Observation(at=now - timedelta(minutes=20), device_id="cam-d", zone="lane", people=1.0),
    ]
    _observe(db, rows)
    latest = store.latest_counts(db, device_ids=["cam-a", "cam-b", "cam-d"], since=now - timedelta(minutes=5))
    assert {d: {z: p for z, (_, p) in zones.items()} for d, zones in latest.items()} == {
        "cam-a": {"square": 6.0, "_total": 8.0},
        "cam-b": {"gate": 2.0},
    }
    assert latest["cam-a"]["square"][0] == now - timedelta(seconds=3)
