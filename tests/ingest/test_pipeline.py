"""Ingest end to end: a paho client publishes to a real broker, the worker stores rows in PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.mqtt import BrokerAddress, LinkState, Publisher
from ingest.pipeline import IngestWorker
from tests.conftest import FIXTURES, topic_for, write_config

SAMPLE_DEVICES = {
    "hikvision_anpr.xml": "lotus-lpr-n",
    "hikvision_person_density_pdc.json": "lotus-cam-square",
    "hikvision_face_capture.json": "lotus-face-n",
    "hikvision_access_face_pass.json": "lotus-gate-n",
    "dahua_traffic_junction.json": "bamboo-lpr-e",
    "gat1400_motor_vehicle.json": "bamboo-checkpoint",
    "gat1400_face.json": "bamboo-face-e",
}


def canonical(i: int, *, device_time: datetime | None = None, kind: str = "access", code: str = "card_pass") -> bytes:
    """A canonical Watchpost event with a stable id."""
    when = (device_time or datetime.now(UTC)).isoformat()
    return json.dumps({"kind": kind, "code": code, "time": when, "id": f"seq-{i}"}).encode()


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value or time runs out; return the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = predicate()
    return value


def stable_count(url: str, quiet: float = 0.5) -> int:
    """The event count once it has stopped changing for ``quiet`` seconds."""
    last = count(url)
    while True:
        time.sleep(quiet)
        now = count(url)
        if now == last:
            return now
        last = now


def count(url: str, query: str = "SELECT count(*) FROM events", params=()) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute(query, params).fetchone()[0])


@pytest.fixture
def worker(config, database_url, broker, db):
    w = IngestWorker(config=config, database_url=database_url, broker=broker, worker_id="t0").start()
    assert w.wait_ready(15), w.subscriber.detail
    yield w
    w.stop()


def publish_all(broker, messages: list[tuple[str, bytes]]) -> None:
    with Publisher(broker) as pub:
        for topic, payload in messages:
            pub.publish(topic, payload)


def test_every_sample_format_is_stored_and_a_replay_adds_nothing(worker, config, broker, database_url):
    """Each real vendor sample published to its device's topic becomes rows; publishing again adds none."""
    messages = [
        (topic_for(config, dev), (FIXTURES / "formats" / name).read_bytes()) for name, dev in SAMPLE_DEVICES.items()
    ]
    frigate_topic = config.ingest.routes[1].topic
    messages.append((frigate_topic, (FIXTURES / "formats" / "frigate_events.json").read_bytes()))
    publish_all(broker, messages)
    devices = set(SAMPLE_DEVICES.values()) | {"lotus-cam-lane"}
    stored = wait_for(lambda: count(database_url, "SELECT count(DISTINCT device_id) FROM events") == len(devices))
    assert stored, f"devices seen: {count(database_url, 'SELECT count(DISTINCT device_id) FROM events')}"
    total = stable_count(database_url)
    assert count(database_url, "SELECT count(*) FROM dead_letters") == 0

    publish_all(broker, messages)
    wait_for(lambda: worker.health().duplicates >= total, timeout=20)
    assert count(database_url) == total
    assert worker.health().duplicates >= total
    plates = {r[0] for r in psycopg.connect(database_url).execute("SELECT plate FROM events WHERE plate IS NOT NULL")}
    assert {"KH35192", "浙BY6H39", "AB12CDE"} <= plates


def test_malformed_payloads_are_dead_lettered_and_good_ones_around_them_stored(worker, config, broker, database_url):
    """A corpus of bad payloads each becomes a dead letter with a reason; every good message is stored."""
    bad = {
        b"{not json": "malformed_json",
        b"\xff\xfe\x00garbage": "invalid_utf8",
        b"<EventNotificationAlert><eventType>ANPR": "malformed_xml",
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<EventNotificationAlert>&lol2;</EventNotificationAlert>"
        ): "forbidden_xml",
        b'{"kind": "teleport", "time": "2026-01-01T00:00:00Z"}': "schema",
        b"x" * (config.ingest.max_payload_bytes + 1): "oversize",
    }
    messages = []
    for i, payload in enumerate(bad):
        messages.append((topic_for(config, "lotus-gate-s"), canonical(i)))
        messages.append((topic_for(config, "lotus-gate-s"), payload))
    messages.append((topic_for(config, "no-such-device"), canonical(99)))
    messages.append((topic_for(config, "lotus-gate-s"), canonical(100)))
    publish_all(broker, messages)

    assert wait_for(lambda: count(database_url) == len(bad) + 1), count(database_url)
    assert wait_for(lambda: count(database_url, "SELECT count(*) FROM dead_letters") == len(bad) + 1)
    with psycopg.connect(database_url) as conn:
        reasons = dict(conn.execute("SELECT encode(substring(payload from 1 for 16), 'hex'), reason FROM dead_letters"))
        details = [r[0] for r in conn.execute("SELECT detail FROM dead_letters")]
    assert sorted(reasons.values()) == sorted([*bad.values(), "unknown_device"])
    assert all(details), "every dead letter says what is wrong"
    assert worker.health().database_ok


def test_database_connections_killed_during_a_stream_lose_and_double_nothing(worker, config, broker, database_url):
    """10,000 messages while the worker's connections are terminated repeatedly: exactly 10,000 events."""
    n = 10_000
    stop = threading.Event()
    kills = []

    def killer() -> None:
        with psycopg.connect(database_url, autocommit=True) as admin:
            while not stop.wait(0.25):
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name LIKE 'watchpost-ingest-t0%%' AND datname = current_database()"
                ).fetchone()[0]
                kills.append(killed)
                if sum(kills) >= 8:
                    return

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    base = datetime.now(UTC)
    publish_all(
        broker,
        [
            (topic_for(config, "lotus-gate-s"), canonical(i, device_time=base - timedelta(milliseconds=i)))
            for i in range(n)
        ],
    )
    ok = wait_for(lambda: count(database_url) >= n, timeout=120, every=0.5)
    stop.set()
    thread.join()
    time.sleep(1.0)  # let redeliveries of the last batches arrive: they must insert nothing
    assert ok, f"stored {count(database_url)} of {n}"
    assert count(database_url) == n
    assert count(database_url, "SELECT count(DISTINCT event_id) FROM events") == n
    assert sum(kills) >= 1, "the test must actually have killed connections"


def test_database_outage_holds_messages_at_the_broker_and_resumes(config, database_url, durable_broker_url, db):
    """With the database refusing connections, nothing is acked, memory stays bounded, and all arrives after."""
    broker = BrokerAddress.parse(durable_broker_url)
    small = config.model_copy(update={"ingest": config.ingest.model_copy(update={"receive_maximum": 200})})
    w = IngestWorker(config=small, database_url=database_url, broker=broker, worker_id="t-outage").start()
    assert w.wait_ready(15)
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    admin_url = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    n = 3000  # beyond a stock Mosquitto's 1,000-message session queue: the deployment's broker holds them
    try:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name LIKE 'watchpost-ingest-t-outage%%'",
                (dbname,),
            )
            publisher = threading.Thread(
                target=publish_all, args=(broker, [(topic_for(small, "lotus-gate-s"), canonical(i)) for i in range(n)])
            )
            publisher.start()
            depths = []
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                depths.append(w.health().queue_depth)
                time.sleep(0.05)
            assert not w.health().database_ok
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        publisher.join(60)
        assert wait_for(lambda: count(database_url) >= n, timeout=90, every=0.5), count(database_url)
        assert count(database_url) == n
        assert max(depths) <= 2 * 200 + small.ingest.batch_max, f"queue grew to {max(depths)}"
        assert w.health().database_ok
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        w.stop()


def test_two_workers_share_one_subscription(config, database_url, broker, db):
    """Two workers in one share group split the stream; together they store every message once."""
    workers = [
        IngestWorker(config=config, database_url=database_url, broker=broker, worker_id=f"s{i}").start()
        for i in range(2)
    ]
    try:
        assert all(w.wait_ready(15) for w in workers)
        n = 2000
        publish_all(broker, [(topic_for(config, "lotus-gate-s"), canonical(i)) for i in range(n)])
        assert wait_for(lambda: count(database_url) >= n, timeout=60), count(database_url)
        time.sleep(0.5)
        assert count(database_url) == n
        received = [w.health().stored for w in workers]
        assert all(r > 0 for r in received), f"one worker got nothing: {received}"
    finally:
        for w in workers:
            w.stop()


def test_time_without_zone_is_read_in_the_device_zone_and_bad_clocks_flagged(worker, config, broker, database_url):
    """A naive time is local to the device (Asia/Shanghai); future and zero dates are flagged, not dropped."""
    local = (datetime.now(UTC) + timedelta(hours=8)).replace(microsecond=0, tzinfo=None)
    messages = [
        (
            topic_for(config, "lotus-gate-s"),
            json.dumps({"kind": "access", "code": "card_pass", "time": local.isoformat(), "id": "naive"}).encode(),
        ),
        (
            topic_for(config, "lotus-gate-s"),
            json.dumps(
                {"kind": "access", "code": "card_pass", "time": "2099-01-01T00:00:00Z", "id": "future"}
            ).encode(),
        ),
        (
            topic_for(config, "lotus-gate-s"),
            json.dumps({"kind": "access", "code": "card_pass", "time": "1970-01-01T00:00:00Z", "id": "zero"}).encode(),
        ),
    ]
    publish_all(broker, messages)
    assert wait_for(lambda: count(database_url) == 3)
    with psycopg.connect(database_url) as conn:
        rows = {
            r[0]: r[1:] for r in conn.execute("SELECT ref, clock, occurred_at, device_time, received_at FROM events")
        }
    clock, occurred, _, received = rows["naive"]
    assert clock == "ok" and abs((occurred - received).total_seconds()) < 5
    assert rows["future"][0] == "ahead" and rows["future"][2].year == 2099
    assert rows["future"][1] == rows["future"][3]  # stored at the receive time
    assert rows["zero"][0] == "zero_date" and rows["zero"][2] is None


@pytest.mark.skipif(
    not shutil.which("mosquitto") or not shutil.which("mosquitto_passwd"), reason="needs the mosquitto binary"
)
def test_bad_credentials_are_reported_and_not_retried(tmp_path):
    """A broker refusing our password leaves the subscriber REFUSED with the reason, with no retry loop."""
    from ingest.mqtt import BrokerAddress, Subscriber
    from watchpost.embedded import free_port

    port = free_port()
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "watchpost", "right"], check=True)
    conf = tmp_path / "mosquitto.conf"
    # As root, mosquitto drops to its own user, which cannot read pytest's private tmp dir.
    run_as = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{run_as}listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: _listening(port), timeout=10)
        sub = Subscriber(
            BrokerAddress("127.0.0.1", port, username="watchpost", password="wrong"),
            client_id="wp-auth-test",
            filters=["x/#"],
            on_message=lambda m: None,
        ).start()
        assert wait_for(lambda: sub.state is LinkState.REFUSED, timeout=10), (sub.state, sub.detail)
        assert "Not authorized" in sub.detail or "Bad user name or password" in sub.detail
        time.sleep(2.5)  # longer than the first reconnect delay: still refused, never connected
        assert sub.state is LinkState.REFUSED and not sub.connected.is_set()
        sub.stop()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    attempts = err.decode(errors="replace").count("wp-auth-test")
    assert attempts <= 2, f"the client kept knocking: {attempts} attempts logged"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_worker_killed_mid_stream_and_restarted_loses_nothing(config, database_url, mosquitto_url, db, tmp_path):
    """SIGKILL of a `watchpost ingest` process mid-stream; restarted, it resumes its session and stores all, once."""
    cfg = write_config(config, tmp_path / "config.yaml")
    broker = BrokerAddress.parse(mosquitto_url)
    env = {
        **os.environ,
        "WATCHPOST_DATABASE_URL": database_url,
        "WATCHPOST_MQTT_URL": mosquitto_url,
        "WATCHPOST_CONFIG": str(cfg),
        "WATCHPOST_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "watchpost.cli", "ingest", "--worker-id", "kill-me"]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = proc.stdout.readline().decode()
        assert "consuming" in line, line
        time.sleep(0.5)  # subscribed (the session may already exist from a previous run)
        return proc

    n = 5000
    proc = start()
    try:
        publisher = threading.Thread(target=lambda: _publish_paced(broker, config, n, per_second=2500))
        publisher.start()
        assert wait_for(lambda: count(database_url) >= 800, timeout=30)
        proc.kill()  # SIGKILL: no goodbye, acks of the batch in hand never sent
        proc.wait(10)
        killed_at = count(database_url)
        publisher.join(30)
        proc = start()
        assert wait_for(lambda: count(database_url) >= n, timeout=60), count(database_url)
        time.sleep(1.0)
        assert count(database_url) == n
        assert count(database_url, "SELECT count(DISTINCT event_id) FROM events") == n
        assert killed_at < n, "the kill must land mid-stream"
    finally:
        proc.kill()
        proc.wait(10)


def _publish_paced(broker, config, n: int, *, per_second: float) -> None:
    with Publisher(broker) as pub:
        started = time.monotonic()
        for i in range(n):
            pub.publish(topic_for(config, "lotus-gate-s"), canonical(i))
            ahead = started + (i + 1) / per_second - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)


def test_committed_messages_are_acknowledged_and_not_redelivered(config, database_url, mosquitto_url, db):
    """After a batch commits its acks reach the broker: a restarted session gets nothing again."""
    broker = BrokerAddress.parse(mosquitto_url)
    n = 3000
    first = IngestWorker(config=config, database_url=database_url, broker=broker, worker_id="acks").start()
    try:
        assert first.wait_ready(15)
        publish_all(broker, [(topic_for(config, "lotus-gate-s"), canonical(i)) for i in range(n)])
        assert wait_for(lambda: first.health().stored >= n, timeout=60), first.health()
        time.sleep(0.5)  # the last acks leave the socket
    finally:
        first.stop()
    again = IngestWorker(config=config, database_url=database_url, broker=broker, worker_id="acks").start()
    try:
        assert again.wait_ready(15)
        assert "session_present=True" in again.subscriber.detail
        time.sleep(2.0)
        assert again.health().duplicates == 0 and again.health().stored == 0
        assert count(database_url) == n
    finally:
        again.stop()


def test_writer_process_killed_mid_stream_is_restarted_and_loses_nothing(config, database_url, broker, db):
    """SIGKILL of a worker's writer process: a new one takes the unacknowledged batches; all stored once."""
    worker = IngestWorker(config=config, database_url=database_url, broker=broker, worker_id="wkill").start()
    try:
        assert worker.wait_ready(15)
        first = worker._process
        n = 4000
        publisher = threading.Thread(target=lambda: _publish_paced(broker, config, n, per_second=2000))
        publisher.start()
        assert wait_for(lambda: count(database_url) >= 500, timeout=30)
        os.kill(first.pid, signal.SIGKILL)
        killed_at = count(database_url)
        publisher.join(30)
        assert wait_for(lambda: count(database_url) >= n, timeout=60), count(database_url)
        time.sleep(0.5)
        assert count(database_url) == n
        assert killed_at < n, "the kill must land mid-stream"
        assert worker._process is not first and worker._process.is_alive()
        assert worker.health().database_ok
    finally:
        worker.stop()
