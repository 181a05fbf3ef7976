"""The dispatcher: the one process that sends units, watches the clocks and talks to terminals.

Several may run; one leads (a PostgreSQL session advisory lock) and the others wait to take
over. The leader wakes on a notification (a new alert, a position, a message to send) or
every ``dispatch.tick_s``, and in each pass:

1. applies what patrol terminals published (position, status) and acknowledges it after commit;
2. dispatches new alerts (:func:`dispatch.actions.dispatch_alert`);
3. marks units on scene whose GPS fix is within the radius of their alert;
4. acts on due tier clocks: a missed deadline escalates, and goes on escalating;
5. runs the clock-driven rules (device offline, gate held open, site response level);
6. publishes queued messages to units' MQTT topics and records when the broker has them.

Every clock lives in the database, so a restarted dispatcher resumes exactly where the last
one stopped: nothing it was waiting for is forgotten, and nothing is sent twice except an
MQTT message whose acknowledgement was lost (terminals see the same message id again).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from dispatch import actions
from ingest.mqtt import BrokerAddress, Publisher, Subscriber
from watchpost import store
from watchpost.config import WatchpostConfig
from watchpost.model import Conflict, DeadLetter, DeadReason, NotFound, ReceivedMessage, UnitStatus

__all__ = ["DISPATCHER_LOCK", "Dispatcher", "DispatcherHealth"]

log = logging.getLogger("watchpost.dispatch")

DISPATCHER_LOCK = 0x57A7C4  # session advisory lock: held by the leading dispatcher
_PERIODIC_EVERY_S = 1.0
_PUBLISH_WAIT_S = 2.0

Periodic = Callable[[psycopg.Connection, datetime], Any]


@dataclass(frozen=True, slots=True)
class DispatcherHealth:
    """What the API reports about a dispatcher."""

    name: str
    leader: bool
    database_ok: bool
    detail: str
    broker: str
    last_pass_at: datetime | None
    outbox_in_flight: int

    @property
    def healthy(self) -> bool:
        return self.database_ok and (not self.leader or self.broker in ("connected", "none"))


class Dispatcher:
    """Run with :meth:`start`; :meth:`stop` releases leadership for a standby to take over."""

    def __init__(
        self,
        *,
        config: WatchpostConfig,
        database_url: str,
        broker: BrokerAddress | None,
        name: str = "dispatcher-0",
        periodic: list[Periodic] | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self._url = database_url
        self._broker = broker
        self._periodic = list(periodic or [])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inbox: queue.SimpleQueue[ReceivedMessage] = queue.SimpleQueue()
        self._subscriber: Subscriber | None = None
        self._publisher: Publisher | None = None
        self._in_flight: dict[int, Any] = {}  # outbox id -> paho message info
        self._leader = False
        self._db_ok = False
        self._detail = "starting"
        self._last_pass: datetime | None = None
        self.leading = threading.Event()
        self._dispatch_severities = [s for s, tiers in config.dispatch.severity_tiers.items() if tiers]

    # -- lifecycle --

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._run, name=f"watchpost-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_mqtt()

    def health(self) -> DispatcherHealth:
        broker = "none"
        if self._subscriber is not None:
            broker = self._subscriber.state.value
        return DispatcherHealth(
            name=self.name,
            leader=self._leader,
            database_ok=self._db_ok,
            detail=self._detail,
            broker=broker,
            last_pass_at=self._last_pass,
            outbox_in_flight=len(self._in_flight),
        )

    # -- the loop --

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._lead()
                delay = 0.5
            except Exception as exc:  # the loop boundary: log, back off, try again
                self._db_ok, self._leader = False, False
                self.leading.clear()
                self._detail = f"{type(exc).__name__}: {exc}".strip()
                if isinstance(exc, psycopg.Error):
                    log.warning(
                        "dispatcher lost the database, retrying in %.1fs: name=%s error=%s", delay, self.name, exc
                    )
                else:
                    log.exception("dispatcher pass failed, retrying in %.1fs: name=%s", delay, self.name)
                self._close_mqtt()
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _lead(self) -> None:
        with (
            store.connect(self._url, application_name=f"watchpost-{self.name}") as conn,
            store.connect(self._url, application_name=f"watchpost-{self.name}-listen") as listen,
        ):
            self._db_ok, self._detail = True, "standby: another dispatcher leads"
            while not self._stop.is_set():
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (DISPATCHER_LOCK,)).fetchone()
                if row and row[0]:
                    break
                self._stop.wait(1.0)
            if self._stop.is_set():
                return
            self._leader, self._detail = True, "leading"
            self.leading.set()
            log.info("dispatcher leads: name=%s", self.name)
            listen.execute(f"LISTEN {store.WAKE_CHANNEL}")
            self._open_mqtt()
            # The clock-driven rules run beside the passes, on their own connection: a slow check
            # must not hold up the dispatch of an alert that arrives meanwhile.
            periodic = threading.Thread(target=self._run_periodic, name=f"watchpost-{self.name}-rules", daemon=True)
            periodic.start()
            while not self._stop.is_set():
                self._pass(conn)
                # Wake on the first notification or the tick; then drain the rest, so that a
                # burst of positions costs one pass, not one each.
                woke = any(True for _ in listen.notifies(timeout=self.config.dispatch.tick_s, stop_after=1))
                if woke:
                    for _ in listen.notifies(timeout=0.001):
                        pass
            conn.execute("SELECT pg_advisory_unlock(%s)", (DISPATCHER_LOCK,))
            self._leader = False
            self.leading.clear()
            periodic.join(10)

    def _pass(self, conn: psycopg.Connection) -> None:
        self._apply_inbound(conn)
        now = _now(conn)
        new = self._new_alerts(conn)
        for alert_id in new:
            with conn.transaction():
                actions.dispatch_alert(conn, config=self.config, alert_id=alert_id, now=now)
        if new:
            self._publish(conn)  # units first: the clocks and timers below can wait a few ms
        with conn.transaction():
            actions.check_arrivals(conn, config=self.config)
        for due in store.due_tiers(conn, now=now):
            with conn.transaction():
                actions.check_tier(conn, config=self.config, alert_id=due["alert_id"], tier=due["tier"], now=now)
        self._publish(conn)
        self._last_pass = datetime.now(UTC)

    def _run_periodic(self) -> None:
        """While leading: the clock-driven rules every second, retried after a database error."""
        while self._leader and not self._stop.is_set():
            try:
                with store.connect(self._url, application_name=f"watchpost-{self.name}-rules") as conn:
                    while self._leader and not self._stop.wait(_PERIODIC_EVERY_S):
                        now = _now(conn)
                        for task in self._periodic:
                            task(conn, now)
            except Exception:  # the loop boundary: log and try again; the passes go on meanwhile
                log.exception("clock-driven rules failed, retrying: name=%s", self.name)
                self._stop.wait(1.0)

    def _new_alerts(self, conn: psycopg.Connection) -> list[int]:
        rows = conn.execute(
            "SELECT alert_id FROM alerts a WHERE state = 'new' AND severity = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM alert_tiers t WHERE t.alert_id = a.alert_id)"
            # The most severe first: when units are short, the emergency button gets them.
            " ORDER BY array_position(ARRAY['critical', 'major', 'minor', 'info'], severity), alert_id",
            (self._dispatch_severities,),
        ).fetchall()
        return [int(r[0]) for r in rows]

    # -- MQTT: unit terminals --

    def _open_mqtt(self) -> None:
        if self._broker is None:
            return
        d = self.config.dispatch
        self._publisher = Publisher(self._broker, client_id=f"watchpost-{self.name}-out").connect()
        self._subscriber = Subscriber(
            self._broker,
            client_id=f"watchpost-{self.name}-in",
            filters=[d.unit_position_topic.replace("{unit}", "+"), d.unit_status_topic.replace("{unit}", "+")],
            share_group="watchpost-dispatch",
            on_message=self._inbox.put,
        ).start()

    def _close_mqtt(self) -> None:
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber = None
        if self._publisher is not None:
            self._publisher.close(timeout=2)
            self._publisher = None
        self._in_flight.clear()

    def _publish(self, conn: psycopg.Connection) -> None:
        """Publish queued unit messages (QoS 1) and mark those the broker acknowledged."""
        if self._publisher is None:
            return
        for outbox_id, topic, payload in store.outbox_unsent(conn):
            if outbox_id in self._in_flight:
                continue
            body = json.dumps({"message_id": outbox_id, **payload}, ensure_ascii=False).encode()
            self._in_flight[outbox_id] = self._publisher.publish(topic, body, qos=1)
        deadline = time.monotonic() + _PUBLISH_WAIT_S
        while self._in_flight and time.monotonic() < deadline:
            done = [i for i, info in self._in_flight.items() if info.is_published()]
            if done:
                store.outbox_mark_sent(conn, ids=done)
                for i in done:
                    del self._in_flight[i]
            if self._in_flight:
                time.sleep(0.002)

    def _apply_inbound(self, conn: psycopg.Connection) -> None:
        """Positions and status from terminals, each committed before its acknowledgement."""
        d = self.config.dispatch
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                with conn.transaction():
                    self._apply(conn, message, d.unit_position_topic, d.unit_status_topic)
            except (ValueError, NotFound, Conflict) as exc:
                with conn.transaction():
                    reason = DeadReason.UNKNOWN_DEVICE if isinstance(exc, NotFound) else DeadReason.SCHEMA
                    store.insert_dead_letters(
                        conn,
                        letters=[
                            DeadLetter(
                                topic=message.topic,
                                payload=message.payload,
                                reason=reason,
                                detail=str(exc),
                                received_at=message.received_at,
                            )
                        ],
                    )
                log.info("unit message refused: topic=%s reason=%s", message.topic, exc)
            if self._subscriber is not None:
                self._subscriber.ack(message)

    def _apply(self, conn: psycopg.Connection, message: ReceivedMessage, position: str, status: str) -> None:
        unit_id, what = _unit_topic(message.topic, position, status)
        if unit_id not in self.config.unit_index:
            raise NotFound(f"no unit {unit_id!r} (topic {message.topic})")
        try:
            data = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if what == "position":
            lat, lon = data.get("lat"), data.get("lon")
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
                raise ValueError('a position needs numeric "lat" and "lon"')
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"position out of range: {lat}, {lon}")
            at = message.received_at
            if data.get("time") is not None:
                try:
                    at = datetime.fromisoformat(str(data["time"]))
                except ValueError:
                    raise ValueError(f"time {data['time']!r} is not ISO 8601") from None
                if at.tzinfo is None:
                    raise ValueError("time must carry a zone (e.g. 2026-12-01T08:00:00+08:00)")
            store.record_fix(conn, unit_id=unit_id, lat=float(lat), lon=float(lon), at=at, source="terminal")
        else:
            try:
                new = UnitStatus(str(data.get("status")))
            except ValueError:
                raise ValueError('status must be "available" or "off_duty"') from None
            actions.set_unit_status(conn, unit_id=unit_id, status=new, actor=f"unit:{unit_id}")


def _unit_topic(topic: str, position: str, status: str) -> tuple[str, str]:
    for template, what in ((position, "position"), (status, "status")):
        head, _, tail = template.partition("{unit}")
        if topic.startswith(head) and topic.endswith(tail) and len(topic) > len(head) + len(tail):
            return topic[len(head) : len(topic) - len(tail)], what
    raise ValueError(f"topic {topic!r} is neither a unit position nor a status topic")


def _now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]
