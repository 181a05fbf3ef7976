"""Storage against a real PostgreSQL: migrations, idempotent batches, dead letters, retention."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from watchpost import store
from watchpost.model import ClockStatus, DeadLetter, DeadReason, Event, EventKind


def _event(at: datetime, *, device: str = "lotus-gate-n", code: str = "card_pass", **extra) -> Event:
    return Event(
        event_id=extra.pop("event_id", uuid.uuid4()),
        device_id=device,
        site_id="lotus",
        kind=EventKind.ACCESS,
        code=code,
        occurred_at=at,
        received_at=at,
        device_time=at,
        clock=ClockStatus.OK,
        source_format="canonical",
        topic="t/devices/lotus-gate-n/events",
        **extra,
    )


def _write(conn, events, letters=()):
    days = {e.occurred_at.date() for e in events}
    store.ensure_partitions(conn, days=days, cache=store.PartitionCache())
    with conn.transaction():
        n = store.insert_events(conn, events=events)
        store.insert_dead_letters(conn, letters=list(letters))
    return n


def test_migrate_twice_is_a_no_op_and_keeps_the_layout(db, demo_config):
    """Migrations run once; a second run changes nothing and reports the same layout."""
    before = db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    layout = store.migrate(db, storage=demo_config.storage)
    after = db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert before == after >= 2
    assert layout == store.layout_of(db) in ("native", "timescaledb")


def test_events_table_is_time_partitioned(db):
    """Events live in daily partitions (or hypertable chunks), not one heap."""
    if store.layout_of(db) == "timescaledb":
        row = db.execute("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name='events'")
        assert row.fetchone()[0] == 1
    else:
        kind = db.execute("SELECT relkind FROM pg_class WHERE relname = 'events'").fetchone()[0]
        assert kind == "p"
        today = datetime.now(UTC).date()
        names = {
            r[0]
            for r in db.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass")
        }
        assert f"events_p{today:%Y%m%d}" in names


def test_replayed_batch_inserts_nothing(db):
    """The same events written twice, and twice within one batch, are stored once."""
    now = datetime.now(UTC)
    events = [_event(now - timedelta(seconds=i)) for i in range(50)]
    assert _write(db, events + events[:10]) == 50
    assert _write(db, events) == 0
    assert store.count_events(db) == 50


def test_idempotency_holds_across_partitions_and_unusable_clocks(db):
    """An event id already stored is refused even when its occurred_at lands elsewhere."""
    now = datetime.now(UTC)
    first = _event(now)
    again = _event(now - timedelta(days=2), event_id=first.event_id)
    assert _write(db, [first]) == 1
    assert _write(db, [again]) == 0
    assert store.count_events(db) == 1


def test_attributes_and_unicode_round_trip(db):
    """Plates with province characters and JSON attributes come back as written."""
    now = datetime.now(UTC).replace(microsecond=0)
    e = _event(now, plate="浙BY6H39", confidence=0.93, attributes={"lane": 2, "colour": "白", "images": ["a.jpg"]})
    _write(db, [e])
    (row,) = store.recent_events(db, limit=5)
    assert row["plate"] == "浙BY6H39"
    assert row["attributes"] == {"lane": 2, "colour": "白", "images": ["a.jpg"]}
    assert row["occurred_at"] == now
    assert row["confidence"] == pytest.approx(0.93)


def test_dead_letter_replay_counts_up_instead_of_adding(db):
    """A dead letter seen again bumps times_seen and keeps the raw bytes and reason."""
    now = datetime.now(UTC)
    letter = DeadLetter(
        topic="t/x", payload=b"\xff\xfe<", reason=DeadReason.INVALID_UTF8, detail="byte 0xff", received_at=now
    )
    _write(db, [], [letter])
    _write(db, [], [letter])
    (row,) = store.list_dead_letters(db)
    assert row["times_seen"] == 2
    assert bytes(row["head"]) == b"\xff\xfe<"
    assert row["reason"] == "invalid_utf8"
    assert store.dead_letter_counts(db) == {"invalid_utf8": 2}


def test_retention_drops_old_partitions_keys_and_dead_letters(db, demo_config):
    """Past retention, partitions, idempotency keys and dead letters are removed; recent ones stay."""
    if store.layout_of(db) != "native":
        pytest.skip("TimescaleDB enforces retention with its own policy")
    now = datetime.now(UTC)
    old = now - timedelta(days=demo_config.storage.event_retention_days + 3)
    _write(db, [_event(old), _event(now)])
    stale = DeadLetter(
        topic="t",
        payload=b"x",
        reason=DeadReason.SCHEMA,
        detail="d",
        received_at=now - timedelta(days=demo_config.storage.dead_letter_retention_days + 1),
    )
    _write(db, [], [stale])
    dropped = store.drop_expired(db, storage=demo_config.storage, now=now)
    assert dropped["partitions"] >= 1 and dropped["event_keys"] == 1 and dropped["dead_letters"] == 1
    assert store.count_events(db) == 1
    assert db.execute("SELECT count(*) FROM event_keys").fetchone()[0] == 1


def test_device_counts_cover_configured_devices(db):
    """Per-device counts list every configured device, with events by kind and last receive time."""
    now = datetime.now(UTC)
    _write(db, [_event(now), _event(now, code="forced_open")])
    rows = {r["device_id"]: r for r in store.device_counts(db, since=now - timedelta(hours=1))}
    assert rows["lotus-gate-n"]["events"] == 2
    assert rows["lotus-gate-n"]["by_kind"] == {"access": 2}
    assert rows["lotus-sos-1"]["events"] == 0 and rows["lotus-sos-1"]["last_received"] is None


def test_retention_reaches_the_feed_sent_unit_messages_positions_and_rates(db, demo_config):
    """Old feed entries, sent unit messages, unit positions and minute rates go; recent and unsent ones stay."""
    now = datetime.now(UTC)
    old = now - timedelta(days=400)
    db.execute("INSERT INTO feed (at, kind, body) VALUES (%s, 'old', '{}'), (%s, 'new', '{}')", (old, now))
    db.execute(
        "INSERT INTO outbox (created_at, unit_id, topic, payload, sent_at) VALUES"
        " (%s, 'u', 't', '{}', %s), (%s, 'u', 't', '{}', NULL), (%s, 'u', 't', '{}', %s)",
        (old, old, old, now, now),
    )
    db.execute("INSERT INTO unit_positions VALUES ('u', %s, 1, 2, 't'), ('u', %s, 1, 2, 't')", (old, now))
    db.execute("INSERT INTO event_rates VALUES ('d', 'k', %s, 1), ('d', 'k', %s, 1)", (old, now))
    dropped = store.drop_expired(db, storage=demo_config.storage, now=now)
    assert (dropped["feed"], dropped["outbox"], dropped["unit_positions"], dropped["event_rates"]) == (1, 1, 1, 1)
    assert db.execute("SELECT kind FROM feed").fetchall() == [("new",)]
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2  # the unsent one waits for its broker
