"""The writing half of an ingest worker: adapt batches and commit them, in a process of its own.

An ingest worker is two processes. The receiving process owns the MQTT session (paho) and
the acknowledgements; this one adapts each batch to events and writes them in one
transaction. Splitting them lets one worker use two cores: in one interpreter, paho's
decoding and the adapters' parsing take turns under the GIL. The processes speak through a
pipe in the typed messages below; this side never touches MQTT, so it can never
acknowledge anything: the receiver acks a batch only when :class:`BatchDone` comes back.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ingest.normalise import Normaliser
from watchpost import store
from watchpost.config import WatchpostConfig
from watchpost.model import DeadLetter, Event, ReceivedMessage

__all__ = ["BatchDone", "BatchIn", "DatabaseStatus", "Detector", "DetectorFactory", "run_writer"]

log = logging.getLogger("watchpost.ingest.writer")

_MAINTENANCE_EVERY = timedelta(hours=1)


class Detector(Protocol):
    """Looks at a batch's new events inside the transaction that stores them (rule detectors)."""

    def evaluate(self, conn: Any, events: Sequence[Event]) -> Sequence[Any]: ...


# Called in the writer process with the configuration; must be picklable (a class or a
# module-level function), because the writer is a spawned process. The entry point passes
# detectors.rules.RuleEngine: ingest itself never imports the detectors.
DetectorFactory = Callable[[WatchpostConfig], Detector]


@dataclass(frozen=True, slots=True)
class BatchIn:
    """Receiver -> writer: one batch of raw messages as (topic, payload, receive time)."""

    seq: int
    messages: list[tuple[str, bytes, datetime]]


@dataclass(frozen=True, slots=True)
class BatchDone:
    """Writer -> receiver: the batch is committed; ack it."""

    seq: int
    events: int
    inserted: int
    dead_reasons: list[str] = field(default_factory=list)
    dead_details: list[tuple[str, str, str]] = field(default_factory=list)  # topic, reason, detail
    commit_seconds: float = 0.0
    committed_at: float = 0.0  # epoch seconds
    alerts: int = 0  # alerts raised or updated by the detectors in the same transaction
    detector_error: str = ""  # a detector failed on this batch: events stored, its alerts not raised


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """Writer -> receiver: whether the last attempt to reach the database worked."""

    ok: bool
    detail: str


def run_writer(
    channel: Connection,
    config: WatchpostConfig,
    database_url: str,
    worker_id: str,
    detector_factory: DetectorFactory | None = None,
) -> None:
    """Entry point of the writer process: serve batches until told to stop or the receiver goes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the receiver's to handle
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    detector = detector_factory(config) if detector_factory is not None else None
    _Writer(channel, config, database_url, worker_id, detector).serve()


class _Writer:
    def __init__(
        self,
        channel: Connection,
        config: WatchpostConfig,
        database_url: str,
        worker_id: str,
        detector: Detector | None = None,
    ) -> None:
        self.detector = detector
        self.channel = channel
        self.config = config
        self.database_url = database_url
        self.worker_id = worker_id
        self.normaliser = Normaliser(config)
        self.inbox: deque[BatchIn] = deque()
        self.conn = None
        self.layout = "native"
        self.partitions = store.PartitionCache()
        self.next_maintenance = 0.0
        self.db_ok: bool | None = None
        self.stopping = False

    def serve(self) -> None:
        while not self.stopping:
            batch = self._next(timeout=1.0)
            if batch is None:
                self._maintain()
                continue
            try:
                done = self._handle(batch)
            except Exception:  # the loop boundary: the batch stays unacked; the receiver resends
                log.exception("ingest batch failed: worker=%s seq=%d", self.worker_id, batch.seq)
                continue
            if done is not None:
                self.channel.send(done)
            self._maintain()
        if self.conn is not None:
            self.conn.close()

    def _next(self, timeout: float) -> BatchIn | None:
        if self.inbox:
            return self.inbox.popleft()
        self._read(timeout)
        return self.inbox.popleft() if self.inbox else None

    def _read(self, timeout: float) -> None:
        """Move whatever the receiver sent into the inbox; a None or a closed pipe means stop."""
        try:
            while self.channel.poll(timeout):
                item = self.channel.recv()
                if item is None:
                    self.stopping = True
                    return
                self.inbox.append(item)
                timeout = 0
        except (EOFError, OSError):
            self.stopping = True

    def _handle(self, batch: BatchIn) -> BatchDone | None:
        events: list[Event] = []
        dead: list[DeadLetter] = []
        normalise = self.normaliser.normalise
        for topic, payload, received in batch.messages:
            message = ReceivedMessage(topic=topic, payload=payload, received_at=received)
            outcome = normalise(message)
            events.extend(outcome.events)
            if outcome.dead is not None:
                dead.append(outcome.dead)
        written = self._write(events, dead)
        if written is None:
            return None
        inserted, seconds, alerts, detector_error = written
        return BatchDone(
            seq=batch.seq,
            events=len(events),
            inserted=inserted,
            dead_reasons=[d.reason.value for d in dead],
            dead_details=[(d.topic, d.reason.value, d.detail) for d in dead],
            commit_seconds=seconds,
            committed_at=time.time(),
            alerts=alerts,
            detector_error=detector_error,
        )

    def _write(self, events: list[Event], dead: list[DeadLetter]) -> tuple[int, float, int, str] | None:
        """One transaction for the batch, retried with backoff until it commits; None if told to stop.

        Returns (new events, seconds, alerts raised or updated, detector error or "").
        """
        delay = 0.2
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self._connect()
                assert self.conn is not None
                if self.layout == "native" and events:
                    store.ensure_partitions(
                        self.conn, days={e.occurred_at.date() for e in events}, cache=self.partitions
                    )
                started = time.perf_counter()
                alerts, detector_error = 0, ""
                with self.conn.transaction():
                    fresh: set[uuid.UUID] | None = set() if self.detector is not None else None
                    inserted = store.insert_events(self.conn, events=events, fresh=fresh)
                    store.insert_dead_letters(self.conn, letters=dead)
                    if fresh:
                        alerts, detector_error = self._detect(events, fresh)
                self._status(True, "ok")
                return inserted, time.perf_counter() - started, alerts, detector_error
            except Exception as exc:  # the retry boundary: the batch is kept, nothing is acked
                self._status(False, f"{type(exc).__name__}: {exc}".strip())
                if isinstance(exc, store.DatabaseError):
                    log.warning("database write failed, retrying in %.1fs: worker=%s error=%s",
                                delay, self.worker_id, exc)  # fmt: skip
                else:  # a bug, not an outage: say so loudly; health shows it until it clears
                    log.exception("batch write failed unexpectedly, retrying in %.1fs: worker=%s",
                                  delay, self.worker_id)  # fmt: skip
                self._drop()
                self._read(delay)  # wait, but keep listening: a stop must not wait for the database
                if self.stopping:
                    return None
                delay = min(delay * 2, 5.0)

    def _detect(self, events: list[Event], fresh: set[uuid.UUID]) -> tuple[int, str]:
        """Run the detectors on the batch's new events in a savepoint of the batch's transaction.

        A detector that fails on a batch (a bug, not an outage) must not stop ingest: its
        savepoint is rolled back, the events are still committed, and the failure is
        logged and counted. A database error is an outage: it fails the whole batch, which
        is retried, so no alert is lost to a dropped connection.
        """
        assert self.conn is not None and self.detector is not None
        seen: set[uuid.UUID] = set()
        new = []
        for event in events:
            if event.event_id in fresh and event.event_id not in seen:
                seen.add(event.event_id)
                new.append(event)
        try:
            with self.conn.transaction():
                return len(self.detector.evaluate(self.conn, new)), ""
        except store.DatabaseError as exc:
            if self.conn.closed or self.conn.broken or isinstance(exc, store.OperationalError):
                raise
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a detector bug: keep the events, say so loudly
            error = f"{type(exc).__name__}: {exc}"
        log.error("detectors failed on a batch, events stored without their alerts: worker=%s events=%d error=%s",
                  self.worker_id, len(new), error)  # fmt: skip
        return 0, error

    def _connect(self) -> None:
        self.conn = store.connect(self.database_url, application_name=f"watchpost-ingest-{self.worker_id}")
        self.layout = store.layout_of(self.conn)

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except store.DatabaseError:
                pass
        self.conn = None
        self.partitions = store.PartitionCache()  # a partition may have been dropped meanwhile

    def _status(self, ok: bool, detail: str) -> None:
        if ok != self.db_ok:  # report changes only: the pipe is for batches
            self.db_ok = ok
            self.channel.send(DatabaseStatus(ok=ok, detail=detail))

    def _maintain(self) -> None:
        """Hourly: pre-create partitions and enforce retention (cheap; any worker may do it)."""
        now = time.monotonic()
        if now < self.next_maintenance:
            return
        self.next_maintenance = now + _MAINTENANCE_EVERY.total_seconds()
        try:
            if self.conn is None:
                self._connect()
            assert self.conn is not None
            today = datetime.now(UTC).date()
            if self.layout == "native":
                days = [today + timedelta(days=d) for d in range(0, 3)]
                store.ensure_partitions(self.conn, days=days, cache=self.partitions)
            dropped = store.drop_expired(self.conn, storage=self.config.storage, now=datetime.now(UTC))
            if any(dropped.values()):
                log.info("retention enforced: worker=%s %s", self.worker_id, dropped)
            private = store.enforce_privacy(self.conn, privacy=self.config.privacy, now=datetime.now(UTC))
            if any(private.values()):
                log.info("privacy enforced: worker=%s %s", self.worker_id, private)
            self._status(True, "ok")
        except store.DatabaseError as exc:
            self._status(False, f"cannot connect: {exc}".strip())
            log.warning("maintenance failed, will retry: worker=%s error=%s", self.worker_id, exc)
            self._drop()
            self.next_maintenance = now + 5
