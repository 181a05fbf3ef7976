"""The ingest worker: MQTT messages -> events -> one transaction per batch -> acks after commit.

One worker is one MQTT session (a member of the shared subscription) and two processes.
This one receives: the paho callback only enqueues, a feeding thread groups messages into
batches and hands them to the writer process (:mod:`ingest.writer`), which adapts and
commits each batch in one transaction; when the writer reports a batch committed, this
process acknowledges all of its messages. Receiving and writing thus run on two cores.

At most two batches are with the writer at once. When the database is down the writer
retries with backoff and reports nothing, so nothing is acknowledged and the broker stops
sending once ``receive_maximum`` messages are outstanding: memory stays bounded. If the
writer process dies, a new one is started and the unacknowledged batches are handed to it
again (replays are no-ops).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest.mqtt import BrokerAddress, LinkState, Subscriber
from ingest.writer import BatchDone, BatchIn, DatabaseStatus, DetectorFactory, run_writer
from watchpost import metrics
from watchpost.config import WatchpostConfig
from watchpost.model import ReceivedMessage

__all__ = ["IngestWorker", "WorkerHealth"]

log = logging.getLogger("watchpost.ingest")

_IN_FLIGHT = 2  # batches with the writer at once: one being written, one being adapted


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
        detector_factory: DetectorFactory | None = None,
    ) -> None:
        self.config = config
        self._detector_factory = detector_factory  # rule detectors, run in the writer's transaction
        self.worker_id = worker_id
        self._database_url = database_url
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
        self._on_commit = on_commit  # benchmarks measure publish-to-commit latency with it
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._slots = threading.BoundedSemaphore(_IN_FLIGHT)
        self._pending: dict[int, list[ReceivedMessage]] = {}  # seq -> batch, in send order
        self._pending_lock = threading.Lock()
        self._seq = 0
        self._process: mp.process.BaseProcess | None = None
        self._channel = None
        self._db_ok = False
        self._db_detail = "not connected yet"
        self._writer_up = threading.Event()
        self._last_commit: datetime | None = None
        self._counts = {"stored": 0, "duplicates": 0, "dead_letters": 0, "alerts": 0, "detector_errors": 0}
        self._labels = {"worker": worker_id}

    # -- lifecycle --

    def start(self) -> IngestWorker:
        """Start the writer process, the feeding and result threads, and the MQTT session."""
        self._spawn_writer()
        self._threads = [
            threading.Thread(target=self._feed, name=f"ingest-{self.worker_id}-feed", daemon=True),
            threading.Thread(target=self._collect, name=f"ingest-{self.worker_id}-results", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        # Subscribe only once the writer has started and tried the database: messages that
        # arrived meanwhile would wait out its start-up (a second or so) unacknowledged.
        if not self._writer_up.wait(60):
            log.warning("writer process slow to start: worker=%s", self.worker_id)
        self.subscriber.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming and disconnect; unacknowledged messages stay queued at the broker."""
        self._stop.set()
        self.subscriber.stop()
        with self._pending_lock:
            channel, process = self._channel, self._process
            if channel is not None:
                try:
                    channel.send(None)
                except OSError:
                    pass
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)
        for thread in self._threads:
            thread.join(timeout)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until subscribed to the broker."""
        return self.subscriber.wait_ready(timeout)

    def health(self) -> WorkerHealth:
        """The worker's current state."""
        with self._pending_lock:
            pending = sum(len(b) for b in self._pending.values())
        return WorkerHealth(
            worker=self.worker_id,
            broker=self.subscriber.state.value,
            broker_detail=self.subscriber.detail,
            database_ok=self._db_ok,
            database_detail=self._db_detail,
            queue_depth=self._queue.qsize() + pending,
            last_commit_at=self._last_commit,
            stored=self._counts["stored"],
            duplicates=self._counts["duplicates"],
            dead_letters=self._counts["dead_letters"],
        )

    # -- the writer process --

    def _spawn_writer(self) -> None:
        ours, theirs = mp.Pipe()
        process = mp.get_context("spawn").Process(
            target=run_writer,
            args=(theirs, self.config, self._database_url, self.worker_id, self._detector_factory),
            name=f"watchpost-writer-{self.worker_id}",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._channel, self._process = ours, process

    def _respawn_writer(self) -> None:
        """The writer died: start another and hand it every batch not yet acknowledged."""
        with self._pending_lock:
            log.error("writer process died, restarting it: worker=%s pending_batches=%d",
                      self.worker_id, len(self._pending))  # fmt: skip
            self._spawn_writer()
            assert self._channel is not None
            for seq, batch in self._pending.items():
                self._channel.send(_batch_in(seq, batch))

    # -- threads --

    def _feed(self) -> None:
        """Group received messages into batches and hand them to the writer, two at a time."""
        linger = self.config.ingest.batch_linger_ms / 1000
        batch_max = self.config.ingest.batch_max
        while not self._stop.is_set():
            metrics.BROKER_CONNECTED.labels(**self._labels).set(self.subscriber.state is LinkState.CONNECTED)
            metrics.QUEUE_DEPTH.labels(**self._labels).set(self._queue.qsize())
            if not self._slots.acquire(timeout=0.2):
                continue  # the writer is busy (or the database away): let the broker hold the rest
            batch = self._take(batch_max, linger)
            if not batch:
                self._slots.release()
                continue
            metrics.RECEIVED.labels(**self._labels).inc(len(batch))
            with self._pending_lock:
                self._seq += 1
                self._pending[self._seq] = batch
                assert self._channel is not None
                try:
                    self._channel.send(_batch_in(self._seq, batch))
                except OSError:
                    pass  # the writer is gone; the result thread restarts it and resends

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

    def _collect(self) -> None:
        """Act on what the writer reports: database state, and committed batches to acknowledge."""
        while not self._stop.is_set():
            channel = self._channel
            assert channel is not None
            try:
                if not channel.poll(0.2):
                    continue
                report = channel.recv()
            except (EOFError, OSError):
                if self._stop.is_set():
                    return
                self._set_db(False, "writer process died; restarting it")
                self._respawn_writer()
                continue
            if isinstance(report, DatabaseStatus):
                self._set_db(report.ok, report.detail)
                self._writer_up.set()
            elif isinstance(report, BatchDone):
                self._committed(report)

    def _committed(self, done: BatchDone) -> None:
        with self._pending_lock:
            batch = self._pending.pop(done.seq, None)
        if batch is None:
            return  # a resent batch finished twice: its acks have gone already
        self._slots.release()
        # Acks of a connection that has since dropped are skipped: the broker redelivers
        # those messages and their events are already stored, so the redelivery is a no-op.
        self.subscriber.ack_all(batch)
        committed_at = datetime.fromtimestamp(done.committed_at, UTC)
        if self._on_commit is not None:
            self._on_commit(batch, committed_at)
        self._set_db(True, "ok")
        self._last_commit = committed_at
        duplicates = done.events - done.inserted
        self._counts["stored"] += done.inserted
        self._counts["duplicates"] += duplicates
        self._counts["dead_letters"] += len(done.dead_reasons)
        self._counts["alerts"] += done.alerts
        if done.detector_error:
            self._counts["detector_errors"] += 1
            metrics.DETECTOR_ERRORS.labels(**self._labels).inc()
        metrics.ALERTS_RAISED.labels(**self._labels).inc(done.alerts)
        metrics.STORED.labels(**self._labels).inc(done.inserted)
        metrics.DUPLICATES.labels(**self._labels).inc(duplicates)
        for topic, reason, detail in done.dead_details:
            metrics.DEAD_LETTERS.labels(reason=reason).inc()
            log.info("dead letter: topic=%s reason=%s detail=%s", topic, reason, detail)
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.COMMIT_SECONDS.observe(done.commit_seconds)
        metrics.CONSUMER_LAG.labels(**self._labels).set((committed_at - batch[0].received_at).total_seconds())

    def _set_db(self, ok: bool, detail: str) -> None:
        self._db_ok, self._db_detail = ok, detail
        metrics.DATABASE_UP.labels(**self._labels).set(1 if ok else 0)


def _batch_in(seq: int, batch: list[ReceivedMessage]) -> BatchIn:
    return BatchIn(seq=seq, messages=[(m.topic, m.payload, m.received_at) for m in batch])
