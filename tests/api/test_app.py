"""The HTTP API over a real database: health, events, dead letters, device counts, metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from watchpost import store
from watchpost.model import ClockStatus, DeadLetter, DeadReason, Event, EventKind


@pytest.fixture
def client(start_api):
    """An operator's client of a real server whose one worker reports ``client.health``."""
    health = {"worker": "w0", "healthy": True, "broker": "connected"}
    c = start_api(health_sources=[lambda: health]).client("operator")
    c.health = health  # type: ignore[attr-defined]
    return c


def _store(db, events=(), letters=()):
    store.ensure_partitions(db, days={e.occurred_at.date() for e in events}, cache=store.PartitionCache())
    with db.transaction():
        store.insert_events(db, events=list(events))
        store.insert_dead_letters(db, letters=list(letters))


def _event(device: str, site: str, kind: EventKind, at: datetime, **extra) -> Event:
    return Event(
        event_id=uuid.uuid4(),
        device_id=device,
        site_id=site,
        kind=kind,
        code=extra.pop("code", "x"),
        occurred_at=at,
        received_at=at,
        device_time=at,
        clock=ClockStatus.OK,
        source_format="canonical",
        topic=f"t/devices/{device}/events",
        **extra,
    )


def test_health_is_ok_with_database_and_workers_and_503_when_a_worker_is_not(client):
    """/health says ok when the database answers and workers are healthy, 503 with the reason otherwise."""
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["database"] == {"ok": True}
    client.health["healthy"] = False
    r = client.get("/health")
    assert r.status_code == 503 and r.json()["status"] == "degraded"


def test_events_are_listed_newest_first_and_filtered(client, db):
    """/events returns stored events newest first, filtered by device, site and kind."""
    now = datetime.now(UTC)
    _store(
        db,
        [
            _event("lotus-gate-n", "lotus", EventKind.ACCESS, now - timedelta(minutes=2), code="forced_open"),
            _event("bamboo-lpr-e", "bamboo", EventKind.PLATE_READ, now - timedelta(minutes=1), plate="浙A12345"),
            _event("lotus-sos-1", "lotus", EventKind.ALARM_BUTTON, now, code="press"),
        ],
    )
    body = client.get("/events").json()
    assert [e["device_id"] for e in body] == ["lotus-sos-1", "bamboo-lpr-e", "lotus-gate-n"]
    assert [e["device_id"] for e in client.get("/events", params={"site": "lotus"}).json()] == [
        "lotus-sos-1",
        "lotus-gate-n",
    ]
    (plate,) = client.get("/events", params={"kind": "plate_read"}).json()
    assert plate["plate"] is None  # withheld without a stated purpose (tests/api/test_privacy_api.py)
    (plate,) = client.get("/events", params={"kind": "plate_read", "purpose": "test of the listing"}).json()
    assert plate["plate"] == "浙A12345"
    assert client.get("/events", params={"device": "lotus-gate-n", "limit": 1}).json()[0]["code"] == "forced_open"


def test_bad_query_parameters_get_a_4xx_that_says_what_is_wrong(client):
    """Unknown kinds, naive times and out-of-range limits are refused with a reason."""
    r = client.get("/events", params={"kind": "teleport"})
    assert r.status_code == 422 and "kind" in r.text
    r = client.get("/events", params={"since": "2026-01-01T00:00:00"})
    assert r.status_code == 422 and "time zone" in r.json()["detail"]
    assert client.get("/events", params={"limit": 0}).status_code == 422
    assert client.get("/dead-letters", params={"reason": "nope"}).status_code == 422


def test_dead_letters_show_reason_detail_and_raw_bytes(client, db):
    """/dead-letters lists each with its reason, detail and the raw bytes (base64 and text)."""
    now = datetime.now(UTC)
    _store(
        db,
        letters=[
            DeadLetter(
                topic="t/x",
                payload=b"{bad json",
                reason=DeadReason.MALFORMED_JSON,
                detail="line 1 column 2",
                received_at=now,
            )
        ],
    )
    (row,) = client.get("/dead-letters").json()
    assert row["reason"] == "malformed_json" and row["detail"] == "line 1 column 2"
    assert row["head_text"] == "{bad json" and row["size"] == 9
    assert client.get("/dead-letters/counts").json() == {"malformed_json": 1}
    assert client.get("/dead-letters", params={"reason": "oversize"}).json() == []


def test_devices_report_counts_and_silence(client, db, config):
    """/devices lists every configured device with its counts; a device with a heartbeat and no traffic is silent."""
    now = datetime.now(UTC)
    _store(db, [_event("lotus-gate-n", "lotus", EventKind.ACCESS, now)])
    rows = {r["device_id"]: r for r in client.get("/devices").json()}
    assert set(rows) == {d.id for d in config.devices}
    assert rows["lotus-gate-n"]["events"] == 1 and rows["lotus-gate-n"]["silent"] is False
    assert rows["lotus-sos-1"]["events"] == 0 and rows["lotus-sos-1"]["silent"] is True
    assert rows["lotus-face-n"]["silent"] is False  # no heartbeat configured: never called silent


def test_metrics_are_prometheus_text(client):
    """/metrics serves the ingest counters in Prometheus text format."""
    r = client.get("/metrics")
    assert r.status_code == 200
    assert "watchpost_dead_letters_total" in r.text or "# HELP watchpost_dead_letters" in r.text
    assert "watchpost_commit_seconds" in r.text
