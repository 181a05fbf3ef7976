"""Helpers shared by the alert and dispatch tests: events as devices send them, stored the way
ingest stores them, and rule detectors run on the new ones in the same transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg

from detectors.rules import RuleEngine
from ingest.normalise import Normaliser
from watchpost import store
from watchpost.config import WatchpostConfig
from watchpost.model import Event, ReceivedMessage

T = TypeVar("T")


def canonical_payload(
    kind: str, code: str, *, at: datetime | None = None, ref: str | None = None, **fields: Any
) -> bytes:
    """A canonical Watchpost payload as a gateway would publish it."""
    body: dict[str, Any] = {"kind": kind, "code": code, "time": (at or datetime.now(UTC)).isoformat(), **fields}
    if ref is not None:
        body["id"] = ref
    return json.dumps(body, ensure_ascii=False).encode()


def events_from(config: WatchpostConfig, device: str, payload: bytes) -> list[Event]:
    """The events ingest makes of ``payload`` from ``device``; fails on a dead letter."""
    topic = config.ingest.routes[0].topic.replace("{device}", device).replace("#", "events")
    message = ReceivedMessage(topic=topic, payload=payload, received_at=datetime.now(UTC))
    outcome = Normaliser(config).normalise(message)
    assert outcome.dead is None, outcome.dead
    return list(outcome.events)


def ingest(conn: psycopg.Connection, engine: RuleEngine, events: Sequence[Event]) -> list[store.Raised]:
    """Store ``events`` and run the rules on the new ones in one transaction, as the writer does."""
    store.ensure_partitions(conn, days={e.occurred_at.date() for e in events}, cache=store.PartitionCache())
    with conn.transaction():
        fresh: set = set()
        store.insert_events(conn, events=events, fresh=fresh)
        return list(engine.evaluate(conn, [e for e in events if e.event_id in fresh]))


def raise_crowd_alert(
    conn: psycopg.Connection, *, jpeg: bytes, size: tuple[int, int] = (2, 2), camera: str = "lotus-cam-square"
) -> int:
    """A crowd gathering alert on the demo camera's square zone with its snapshot, as the crowd worker stores it."""
    from watchpost.model import AlertDraft, Severity

    draft = AlertDraft(
        type="crowd_gathering",
        severity=Severity.MAJOR,
        title="人员聚集 · 广场全景 · 广场",
        dedup_key=f"crowd_gathering:{camera}:square",
        site_id="lotus",
        occurred_at=datetime.now(UTC),
        rule=f"crowd-{camera}-square",
        device_id=camera,
        zone="square",
        detail={"camera": camera, "people": 21.0, "threshold": 9, "snapshot": True},
    )
    with conn.transaction():
        alert_id = store.raise_alert(conn, draft=draft, window_s=300, actor="crowd:test").alert_id
        store.insert_snapshot(
            conn,
            alert_id=alert_id,
            taken_at=draft.occurred_at,
            device_id=camera,
            zone="square",
            width=size[0],
            height=size[1],
            jpeg=jpeg,
        )
    return alert_id


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll ``predicate`` until it returns a truthy value or time runs out; return the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = predicate()
    return value


class TopicListener:
    """Collects what arrives on MQTT topic filters (QoS 1, acknowledged), as a patrol terminal would."""

    def __init__(self, broker_url: str, filters: Sequence[str], *, client_id: str) -> None:
        from ingest.mqtt import BrokerAddress, Subscriber

        self.messages: list[tuple[str, dict[str, Any], float]] = []  # topic, JSON body, arrival (time.time())
        self._subscriber = Subscriber(
            BrokerAddress.parse(broker_url),
            client_id=client_id,
            filters=list(filters),
            on_message=self._on,
            session_expiry_s=0,
        )

    def _on(self, message: Any) -> None:
        self.messages.append((message.topic, json.loads(message.payload), time.time()))
        self._subscriber.ack(message)

    def __enter__(self) -> TopicListener:
        self._subscriber.start()
        assert self._subscriber.wait_ready(10), self._subscriber.detail
        return self

    def __exit__(self, *exc: object) -> None:
        self._subscriber.stop()

    def bodies(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [body for t, body, _ in list(self.messages) if topic is None or t == topic]


def synthetic_ground(x: float, y: float) -> tuple[float, float]:
    """Where a pixel of the synthetic test scene lies on the ground: a level camera 300 px of focal length at the
    height that makes a 1.7 m person as tall as the scene draws them (22 px at the top row, 60 at the bottom)."""
    from detectors.crowd import synthetic as syn

    slope = (syn.BOTTOM_HEIGHT - syn.TOP_HEIGHT) / syn.HEIGHT  # person pixels per row
    horizon = -syn.TOP_HEIGHT / slope
    camera_height = 1.7 / slope
    depth = 300.0 * camera_height / (y - horizon)
    return ((x - syn.WIDTH / 2) * depth / 300.0, depth)
