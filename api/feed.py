"""The live feed fanned out to streams: one listening connection per API process.

The database is the source of truth. Each API process holds ONE connection that LISTENs on
:data:`watchpost.store.FEED_CHANNEL`; on a notification it reads the feed after the last id
it has seen, once, and hands the new entries to every subscriber of this process. Feed ids
become visible in commit order (the alert lock, see :mod:`watchpost.store.alerts`), so
"everything after my last id" is a complete answer at any moment.

A subscriber registers first, then replays from the database after its cursor, then takes
the live entries from its queue, skipping any it has already had: nothing is missed (what
committed before it registered is in the replay, what the listener reads after is queued)
and nothing comes twice or out of order. A subscriber whose queue overflows is closed; its
client resumes from the last id it received. When the listening connection drops (a
database restart) the hub reconnects, listens again and catches up from its last id.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from watchpost import store

__all__ = ["FeedEntry", "FeedHub", "StreamClosed", "Subscription"]

log = logging.getLogger("watchpost.api.feed")

PAGE = 500  # feed rows read at once


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One feed row: something the console (and the units named) must see."""

    id: int
    at: str
    kind: str
    alert_id: int | None
    unit_ids: tuple[str, ...]
    body: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FeedEntry:
        at = row["at"]
        return cls(
            id=int(row["id"]),
            at=store.jsonable(at) if not isinstance(at, str) else at,
            kind=str(row["kind"]),
            alert_id=row["alert_id"],
            unit_ids=tuple(row["unit_ids"] or ()),
            body=dict(row["body"]),
        )

    def visible_to(self, unit: str | None) -> bool:
        """Whether a caller scoped to ``unit`` (None: not scoped) may see this entry."""
        return unit is None or unit in self.unit_ids

    def message(self, unit: str | None = None) -> dict[str, Any]:
        """The entry as streamed: ``{id, at, kind, ...body}``; a unit sees only its own assignments."""
        body = dict(self.body)
        alert = body.get("alert")
        if unit is not None and isinstance(alert, dict):
            body["alert"] = {**alert, "assignments": [a for a in alert.get("assignments", []) if a["unit_id"] == unit]}
        return {"id": self.id, "at": self.at, **body, "kind": self.kind}


class StreamClosed(Exception):
    """The subscription ended (too slow, or the server is stopping); resume from ``cursor``."""

    def __init__(self, reason: str, cursor: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cursor = cursor


class Subscription:
    """One stream's view of the feed: replay after its cursor, then live entries, each once, in order."""

    def __init__(self, hub: FeedHub, *, unit: str | None, queue_size: int) -> None:
        self._hub = hub
        self.unit = unit
        self.cursor = 0
        self._queue: asyncio.Queue[FeedEntry | None] = asyncio.Queue(maxsize=queue_size)
        self._pending: deque[FeedEntry] = deque()
        self._replaying = True
        self.closed_reason: str | None = None

    def offer(self, entries: Sequence[FeedEntry]) -> None:
        """Queue live entries (on the event loop). Overflow closes the subscription."""
        if self.closed_reason is not None:
            return
        for entry in entries:
            if not entry.visible_to(self.unit):
                continue
            try:
                self._queue.put_nowait(entry)
            except asyncio.QueueFull:
                self.close(f"too slow: more than {self._queue.maxsize} entries waiting")
                return

    def close(self, reason: str) -> None:
        """End the subscription: the consumer gets :class:`StreamClosed` once it has read what it had."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        while not self._queue.empty():  # what was queued is dropped: the client resumes from its cursor
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self, *, timeout: float) -> FeedEntry | None:
        """The next entry this subscriber may see, or None when none came within ``timeout`` seconds."""
        while True:
            if self._pending:
                entry = self._pending.popleft()
                self.cursor = entry.id
                if entry.visible_to(self.unit):
                    return entry
                continue
            if self._replaying:
                rows = await run_in_threadpool(self._hub.read_after, self.cursor)
                self._replaying = len(rows) == PAGE
                self._pending.extend(rows)
                continue
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                return None
            if item is None:
                raise StreamClosed(self.closed_reason or "closed", self.cursor)
            if item.id <= self.cursor:
                continue  # already had it from the replay
            self.cursor = item.id
            return item


class FeedHub:
    """The process's listener on the feed and its subscribers. :meth:`start` in the app's lifespan."""

    def __init__(self, database_url: str, *, pool: Any, queue_size: int = 1000, poll_s: float = 5.0) -> None:
        self._url = database_url
        self._pool = pool
        self.queue_size = queue_size
        self._poll_s = poll_s  # read even without a notification this often: a safety net, not the path
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_id = 0
        self.connects = 0
        self.detail = "starting"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> FeedHub:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="watchpost-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.close("the server is stopping")

    def health(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._subscribers)
        return {
            "listening": self._ready.is_set(),
            "last_id": self.last_id,
            "subscribers": count,
            "connects": self.connects,
            "detail": self.detail,
        }

    # --- subscribers ----------------------------------------------------------------------------

    async def subscribe(self, *, after: int | None, unit: str | None) -> Subscription:
        """A subscription replaying after ``after`` (None: from now). Raises ``OperationalError`` when the
        feed cannot be read (the database is away)."""
        if not await run_in_threadpool(self._ready.wait, 5.0):
            raise store.OperationalError(f"live feed not available: {self.detail}")
        sub = Subscription(self, unit=unit, queue_size=self.queue_size)
        with self._lock:
            self._subscribers.add(sub)
        try:
            sub.cursor = after if after is not None else await run_in_threadpool(self._head)
        except BaseException:
            self.unsubscribe(sub)
            raise
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def read_after(self, after: int) -> list[FeedEntry]:
        """Up to :data:`PAGE` entries after ``after`` from the database (a pooled connection)."""
        with self._pool.connection(timeout=5) as conn:
            return [FeedEntry.from_row(r) for r in store.feed_after(conn, after=after, limit=PAGE)]

    def _head(self) -> int:
        with self._pool.connection(timeout=5) as conn:
            return store.feed_head(conn)

    # --- the listening thread -------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.5
        first = True
        while not self._stop.is_set():
            try:
                with store.connect(self._url, application_name="watchpost-api-feed") as conn:
                    store.listen_feed(conn)
                    self.connects += 1
                    if first:
                        self.last_id = store.feed_head(conn)  # nobody is subscribed yet: start from now
                        first = False
                    self._catch_up(conn)  # after a reconnect: whatever committed while we were away
                    self._ready.set()
                    self.detail = "listening"
                    delay = 0.5
                    self._listen(conn)
            except store.DatabaseError as exc:
                self._ready.clear()
                self.detail = f"reconnecting: {exc}".strip()
                log.warning("feed listener lost the database, retrying in %.1fs: %s", delay, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
        self._ready.clear()
        self.detail = "stopped"

    def _listen(self, conn: Any) -> None:
        quiet = 0.0
        while not self._stop.is_set():
            if store.wait_for_feed(conn, timeout=0.5):
                quiet = 0.0
                self._catch_up(conn)
                continue
            quiet += 0.5
            if quiet >= self._poll_s:
                quiet = 0.0
                self._catch_up(conn)

    def _catch_up(self, conn: Any) -> None:
        while True:
            rows = store.feed_after(conn, after=self.last_id, limit=PAGE)
            if not rows:
                return
            entries = [FeedEntry.from_row(r) for r in rows]
            self.last_id = entries[-1].id
            self._distribute(entries)
            if len(rows) < PAGE:
                return

    def _distribute(self, entries: list[FeedEntry]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                loop.call_soon_threadsafe(sub.offer, entries)
            except RuntimeError:  # the loop closed under us: the app is stopping
                return
