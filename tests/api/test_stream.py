"""Live streams over real HTTP and WebSocket: SSE and /ws, resume, fan-out across API processes, outages."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from api.feed import FeedHub, StreamClosed
from tests.api.conftest import KEYS, PASSWORD, PATROL_UNIT, assign, raise_manual, sse_events
from watchpost import store


def _feed_ids(db, after=0):
    return [r["id"] for r in store.feed_after(db, after=after, limit=100000)]


def test_sse_starts_from_now_and_carries_each_entry_with_id_kind_and_data(api, db):
    """Without a cursor the stream starts at the head; a new alert arrives as id/event/data with the alert in it."""
    op = api.client("operator")
    raise_manual(op)  # before the stream: not sent
    with op.stream("GET", "/stream") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
        alert = raise_manual(op, type="fraud")
        event = next(events)
    assert event.event == "raised" and event.data["kind"] == "raised"
    assert event.data["alert"]["alert_id"] == alert["alert_id"] and event.data["alert"]["type"] == "fraud"
    assert event.id == event.data["id"] == _feed_ids(db)[-1]
    deadline = time.monotonic() + 5  # the server lets go of a stream whose client hung up
    while api.app.state.feed.health()["subscribers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.app.state.feed.health()["subscribers"] == 0


def test_sse_after_replays_from_the_database_in_order(api, db):
    """?after=0 replays every entry so far, oldest first, then continues live."""
    op = api.client("operator")
    for _ in range(3):
        raise_manual(op)
    with op.stream("GET", "/stream", params={"after": 0}) as r:
        events = sse_events(r)
        replayed = [next(events) for _ in range(3)]
        assert [e.id for e in replayed] == _feed_ids(db)
        raise_manual(op)
        assert next(events).id == _feed_ids(db)[-1]


def test_sse_resume_with_last_event_id_misses_nothing_while_alerts_are_raised(start_api, db):
    """Reconnecting with Last-Event-ID while alerts keep coming yields every entry exactly once, in order."""
    api = start_api(heartbeat_s=0.2)  # keep-alives let the reader notice the end of the traffic
    start = store.feed_head(db)
    done = threading.Event()

    def produce() -> None:
        producer = api.client("operator")
        try:
            for i in range(40):
                alert = raise_manual(producer)
                if i % 3 == 0:
                    producer.post(f"/alerts/{alert['alert_id']}/acknowledge")
        finally:
            done.set()

    def finished() -> bool:
        return done.is_set() and last == store.feed_head(db)

    seen: list[int] = []
    last, reconnects = start, 0
    thread = threading.Thread(target=produce)
    thread.start()
    try:
        while not finished():
            with api.client("operator").stream("GET", "/stream", headers={"Last-Event-ID": str(last)}) as r:
                assert r.status_code == 200
                for n, event in enumerate(sse_events(r, heartbeats=True)):
                    if event is not None:
                        seen.append(event.id)
                        last = event.id
                    if finished() or n == 6:  # hang up every few entries, in the middle of the traffic
                        break
            reconnects += 1
    finally:
        thread.join(30)
    assert reconnects >= 5
    assert seen == _feed_ids(db, after=start)
    assert len(seen) == 40 + 14


def test_sse_sends_heartbeat_comments_and_refuses_a_bad_last_event_id(start_api):
    """An idle stream gets a keep-alive comment every heartbeat; a non-numeric Last-Event-ID is 422."""
    api = start_api(heartbeat_s=0.2)
    c = api.client("operator")
    comments: list[str] = []
    with c.stream("GET", "/stream") as r:
        lines = r.iter_lines()
        deadline = time.monotonic() + 5
        while "keep-alive" not in comments and time.monotonic() < deadline:
            line = next(lines)
            if line.startswith(":"):
                comments.append(line[1:].strip())
    assert "keep-alive" in comments
    r = c.get("/stream", headers={"Last-Event-ID": "yesterday"})
    assert r.status_code == 422 and "Last-Event-ID" in r.json()["detail"]


def test_a_patrol_stream_carries_only_its_units_entries_with_its_own_assignment(api):
    """A patrol credential's stream skips alerts its unit is not on and shows only its own assignment."""
    op = api.client("operator")
    with api.client("patrol").stream("GET", "/stream") as r:
        events = sse_events(r)
        raise_manual(op)  # no unit: not for the patrol
        alert = raise_manual(op)
        assign(op, alert["alert_id"], "lotus-car-1")  # another unit: not for the patrol either
        mine = assign(op, alert["alert_id"], PATROL_UNIT)
        event = next(events)
        assert event.event == "assigned" and event.data["assignment_id"] == mine["assignment_id"]
        assert [a["unit_id"] for a in event.data["alert"]["assignments"]] == [PATROL_UNIT]
        op.post(f"/alerts/{alert['alert_id']}/resolve", json={"outcome": "handled"})
        assert next(events).event == "resolved"
        r = api.client("supervisor").post("/units/lotus-car-1/status", json={"status": "off_duty"})
        assert r.status_code == 200  # another unit's status change: not in this stream
        api.client("patrol").post(f"/units/{PATROL_UNIT}/status", json={"status": "off_duty"})
        status = next(events)
    assert (
        status.event == "unit_status" and status.data["unit_id"] == PATROL_UNIT and status.data["status"] == "off_duty"
    )


def test_two_api_processes_on_one_database_stream_the_same_entries(start_api, db):
    """Two API servers (replicas) on the same database both stream every entry, whichever served the change."""
    a, b = start_api(), start_api()
    with (
        a.client("operator").stream("GET", "/stream") as ra,
        b.client("supervisor").stream("GET", "/stream") as rb,
        ws_connect(b.ws_url(f"token={KEYS['operator']}")) as ws,
    ):
        ea, eb = sse_events(ra), sse_events(rb)
        first = raise_manual(a.client("operator"))
        b.client("operator").post(f"/alerts/{first['alert_id']}/acknowledge")
        raise_manual(b.client("operator"))
        got_a = [(e.id, e.event) for e in (next(ea) for _ in range(3))]
        got_b = [(e.id, e.event) for e in (next(eb) for _ in range(3))]
        got_ws = [(m["id"], m["kind"]) for m in (json.loads(ws.recv(timeout=10)) for _ in range(3))]
    assert got_a == got_b == got_ws
    assert [k for _, k in got_a] == ["raised", "acknowledged", "raised"]
    assert [i for i, _ in got_a] == _feed_ids(db)[-3:]


def test_websocket_with_a_token_query_parameter_streams_and_resumes(api, db):
    """/ws?token= with an API key or a sign-in token streams JSON {id, kind, ...}; ?after= replays from the DB."""
    op = api.client("operator")
    before = raise_manual(op)
    with ws_connect(api.ws_url(f"token={KEYS['operator']}")) as ws:
        alert = raise_manual(op, type="robbery")
        message = json.loads(ws.recv(timeout=10))
    assert message["kind"] == "raised" and message["alert"]["alert_id"] == alert["alert_id"]
    token = op.post("/auth/token", data={"username": "alice", "password": PASSWORD}).json()["access_token"]
    with ws_connect(api.ws_url(f"token={token}&after=0")) as ws:
        replay = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
    assert [m["alert"]["alert_id"] for m in replay] == [before["alert_id"], alert["alert_id"]]
    assert [m["id"] for m in replay] == _feed_ids(db)


@pytest.mark.parametrize(
    ("query", "code", "reason"),
    [
        ("", 4401, "no credential"),
        ("token=wrong", 4401, "unknown API key"),
        (f"token={KEYS['auditor']}", 4403, "role auditor may not stream the live feed"),
    ],
)
def test_websocket_refusals_close_with_a_code_and_the_reason(api, query, code, reason):
    """/ws without a usable credential, or with a role that may not stream, is closed with 4401/4403 and why."""
    with ws_connect(api.ws_url(query)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code and reason in closed.value.rcvd.reason


def test_the_listener_survives_losing_its_connection_and_catches_up(api, db):
    """When the listening connection is killed, the hub reconnects and streams what committed meanwhile."""
    op = api.client("operator")
    with op.stream("GET", "/stream") as r:
        events = sse_events(r)
        raise_manual(op)
        assert next(events).event == "raised"
        killed = db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'watchpost-api-feed' AND datname = current_database()"
        ).fetchall()
        assert killed == [(True,)]
        raised = [raise_manual(op)["alert_id"] for _ in range(3)]
        got = [next(events) for _ in range(3)]
    assert [e.data["alert"]["alert_id"] for e in got] == raised
    health = api.client().get("/health").json()["stream"]
    assert health["listening"] is True and health["connects"] == 2


def test_a_subscriber_that_falls_behind_is_closed_and_can_resume(database_url, db):
    """A subscription whose queue overflows is closed with the reason and the cursor to resume from."""

    async def scenario() -> tuple[list[int], StreamClosed]:
        pool = store.open_pool(database_url, min_size=1, max_size=2)
        hub = FeedHub(database_url, pool=pool, queue_size=3).start(asyncio.get_running_loop())
        try:
            sub = await hub.subscribe(after=None, unit=None)
            for i in range(10):
                with db.transaction():
                    store.append_feed(db, kind="test", alert_id=None, body={"n": i})
            while sub.closed_reason is None:
                await asyncio.sleep(0.05)
            got = []
            with pytest.raises(StreamClosed) as closed:
                while True:
                    entry = await sub.next(timeout=5)
                    assert entry is not None
                    got.append(entry.id)
            return got, closed.value
        finally:
            hub.stop()
            pool.close()

    got, closed = asyncio.run(scenario())
    assert closed.reason.startswith("too slow") and closed.cursor == got[-1]
    assert got == _feed_ids(db)  # what it had not taken yet was replayed from the database before closing
