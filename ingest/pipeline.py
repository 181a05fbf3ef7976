"""The ingest worker: MQTT messages -> events -> one transaction per batch -> acks after commit.

One worker is one MQTT session (a member of the shared subscription) and one database
connection. The paho callback only enqueues. A normalising thread takes batches off the
queue and adapts them; a writing thread writes each batch's events and dead letters in one
transaction and acknowledges every message of the batch only after the commit, in order.
The two overlap: the next batch is adapted while PostgreSQL works on the last one. When
the database is down the batch is kept and retried with backoff; nothing is acknowledged,
so the broker stops sending once ``receive_maximum`` messages are outstanding and holds
the rest.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.mqtt import BrokerAddress, LinkState, Subscriber
from ingest.normalise import Normaliser
from watchpost import metrics, store
from watchpost.config import WatchpostConfig
from watchpost.model import DeadLetter, Event, ReceivedMessage

__all__ = ["IngestWorker", "WorkerHealth"]

log = logging.getLogger("watchpost.ingest")

_MAINTENANCE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A batch adapted and waiting for its transaction."""

    messages: list[ReceivedMessage]
    events: list[Event]
    dead: list[DeadLetter]


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """A worker's state as the API reports it."""

    worker: str
    broker: str
    broker_detail: str
    database_ok: bool
    database_detail: str
    queue_depth: int
    last_commit_at: datetime | None
    stored: int
    duplicates: int
    dead_letters: int

    @property
    def healthy(self) -> bool:
        return self.database_ok and self.broker == LinkState.CONNECTED.value


class IngestWorker:
    """Consume the configured routes and store what arrives; run with :meth:`start`."""

    def __init__(
        self,
        *,
        config: WatchpostConfig,
        database_url: str,
        broker: BrokerAddress,
        worker_id: str = "0",
        client_id: str | None = None,
        on_commit: Callable[[list[ReceivedMessage], datetime], None] | None = None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id
        self._database_url = database_url
        self._normaliser = Normaliser(config)
        self._queue: queue.SimpleQueue[ReceivedMessage] = queue.SimpleQueue()
        ingest = config.ingest
        self.subscriber = Subscriber(
            broker,
            client_id=client_id or f"{ingest.client_id}-{worker_id}",
            filters=[r.subscription for r in ingest.routes],
            share_group=ingest.share_group,
            on_message=self._queue.put,
            session_expiry_s=ingest.session_expiry_s,
            receive_maximum=ingest.receive_maximum,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._handoff: queue.Queue[_Prepared] = queue.Queue(maxsize=2)
        self._conn = None
        self._partitions = store.PartitionCache()
        self._layout = "native"
        self._db_ok = False
        self._db_detail = "not connected yet"
        self._last_commit: datetime | None = None
        self._next_maintenance = 0.0
        self._counts = {"stored": 0, "duplicates": 0, "dead_letters": 0}
        self._labels = {"worker": worker_id}
        self._on_commit = on_commit  # benchmarks measure publish-to-commit latency with it

    # -- lifecycle --

    def start(self) -> IngestWorker:
        """Connect to the database and the broker and start consuming in a thread."""
        try:
            self._connect_database()
        except store.DatabaseError as exc:  # the loop retries; health says why meanwhile
            log.warning("database unavailable at start, will retry: worker=%s error=%s", self.worker_id, exc)
        self._threads = [
            threading.Thread(target=self._run, name=f"ingest-{self.worker_id}-adapt", daemon=True),
            threading.Thread(target=self._write_loop, name=f"ingest-{self.worker_id}-write", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.subscriber.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, stop consuming and disconnect; unacked messages stay queued at the broker."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self.subscriber.stop()
        if self._conn is not None:
            self._conn.close()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until subscribed to the broker."""
        return self.subscriber.wait_ready(timeout)

    def health(self) -> WorkerHealth:
        """The worker's current state."""
        return WorkerHealth(
            worker=self.worker_id,
            broker=self.subscriber.state.value,
            broker_detail=self.subscriber.detail,
            database_ok=self._db_ok,
            database_detail=self._db_detail,
            queue_depth=self._queue.qsize() + sum(len(p.messages) for p in list(self._handoff.queue)),
            last_commit_at=self._last_commit,
            stored=self._counts["stored"],
            duplicates=self._counts["duplicates"],
            dead_letters=self._counts["dead_letters"],
        )

    # -- the loop --

    def _run(self) -> None:
        """Adapting thread: batches off the queue, normalised, handed to the writer."""
        linger = self.config.ingest.batch_linger_ms / 1000
        batch_max = self.config.ingest.batch_max
        while not self._stop.is_set():
            metrics.BROKER_CONNECTED.labels(**self._labels).set(self.subscriber.state is LinkState.CONNECTED)
            batch = self._take(batch_max, linger)
            metrics.QUEUE_DEPTH.labels(**self._labels).set(self._queue.qsize())
            if not batch:
                continue
            try:
                prepared = self._prepare(batch)
            except Exception:  # the loop boundary: log, leave the batch unacked, carry on
                log.exception("ingest batch could not be adapted: worker=%s size=%d", self.worker_id, len(batch))
                continue
            while not self._stop.is_set():
                try:
                    self._handoff.put(prepared, timeout=0.2)
                    break
                except queue.Full:
                    continue

    def _write_loop(self) -> None:
        """Writing thread: one transaction per batch, then its acks, in arrival order."""
        while not self._stop.is_set():
            try:
                prepared = self._handoff.get(timeout=0.2)
            except queue.Empty:
                self._maintain()
                continue
            try:
                self._commit(prepared)
            except Exception:  # the loop boundary: log, leave the batch unacked, carry on
                log.exception("ingest batch failed: worker=%s size=%d", self.worker_id, len(prepared.messages))
            self._maintain()

    def _take(self, batch_max: int, linger: float) -> list[ReceivedMessage]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + linger
        get = self._queue.get_nowait
        while len(batch) < batch_max:
            try:
                batch.append(get())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
        return batch

    def _prepare(self, batch: list[ReceivedMessage]) -> _Prepared:
        metrics.RECEIVED.labels(**self._labels).inc(len(batch))
        events: list[Event] = []
        dead: list[DeadLetter] = []
        normalise = self._normaliser.normalise
        for message in batch:
            outcome = normalise(message)
            events.extend(outcome.events)
            if outcome.dead is not None:
                dead.append(outcome.dead)
        return _Prepared(batch, events, dead)

    def _commit(self, prepared: _Prepared) -> None:
        batch, events, dead = prepared.messages, prepared.events, prepared.dead
        inserted = self._write(events, dead)
        if inserted is None:
            return  # stopping while the database is away: the broker keeps the batch
        committed_at = datetime.now(UTC)

        # Acks of a connection that has since dropped are skipped: the broker redelivers
        # those messages and their events are already stored, so the redelivery is a no-op.
        self.subscriber.ack_all(batch)

        if self._on_commit is not None:
            self._on_commit(batch, committed_at)
        now = committed_at
        self._last_commit = now
        self._counts["stored"] += inserted
        self._counts["duplicates"] += len(events) - inserted
        self._counts["dead_letters"] += len(dead)
        metrics.STORED.labels(**self._labels).inc(inserted)
        metrics.DUPLICATES.labels(**self._labels).inc(len(events) - inserted)
        for letter in dead:
            metrics.DEAD_LETTERS.labels(reason=letter.reason.value).inc()
            log.info("dead letter: topic=%s reason=%s detail=%s", letter.topic, letter.reason.value, letter.detail)
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.CONSUMER_LAG.labels(**self._labels).set((now - batch[0].received_at).total_seconds())

    def _write(self, events: list[Event], dead: list[DeadLetter]) -> int | None:
        """Write one batch in one transaction, retrying until it commits; None if stopped first."""
        delay = 0.2
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._connect_database()
                assert self._conn is not None
                if self._layout == "native" and events:
                    store.ensure_partitions(
                        self._conn, days={e.occurred_at.date() for e in events}, cache=self._partitions
                    )
                started = time.perf_counter()
                with self._conn.transaction():
                    inserted = store.insert_events(self._conn, events=events)
                    store.insert_dead_letters(self._conn, letters=dead)
                metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
                self._set_db(True, "ok")
                return inserted
            except store.DatabaseError as exc:
                self._set_db(False, f"{type(exc).__name__}: {exc}".strip())
                log.warning("database write failed, retrying in %.1fs: worker=%s error=%s", delay, self.worker_id, exc)
                self._drop_connection()
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, 5.0)

    def _connect_database(self) -> None:
        try:
            self._conn = store.connect(self._database_url, application_name=f"watchpost-ingest-{self.worker_id}")
            self._layout = store.layout_of(self._conn)
            self._set_db(True, "ok")
        except store.DatabaseError as exc:
            self._conn = None
            self._set_db(False, f"cannot connect: {exc}".strip())
            raise

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except store.DatabaseError:
                pass
        self._conn = None
        self._partitions = store.PartitionCache()  # a partition may have been dropped meanwhile

    def _set_db(self, ok: bool, detail: str) -> None:
        self._db_ok, self._db_detail = ok, detail
        metrics.DATABASE_UP.labels(**self._labels).set(1 if ok else 0)

    def _maintain(self) -> None:
        """Hourly: pre-create partitions and enforce retention (cheap; any worker may do it)."""
        now = time.monotonic()
        if now < self._next_maintenance or self._conn is None:
            return
        self._next_maintenance = now + _MAINTENANCE_EVERY.total_seconds()
        try:
            today = datetime.now(UTC).date()
            if self._layout == "native":
                store.ensure_partitions(
                    self._conn, days=[today + timedelta(days=d) for d in range(0, 3)], cache=self._partitions
                )
            dropped = store.drop_expired(self._conn, storage=self.config.storage, now=datetime.now(UTC))
            if any(dropped.values()):
                log.info("retention enforced: worker=%s %s", self.worker_id, dropped)
        except store.DatabaseError as exc:
            log.warning("maintenance failed, will retry: worker=%s error=%s", self.worker_id, exc)
            self._next_maintenance = now + 60
