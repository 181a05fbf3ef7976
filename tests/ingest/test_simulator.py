"""The simulator: realistic traffic for every configured device, accepted by ingest without dead letters."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

from ingest.normalise import Normaliser
from ingest.pipeline import IngestWorker
from ingest.simulator import Simulator, traffic
from tests.ingest.test_pipeline import count, wait_for
from watchpost.model import ReceivedMessage


def test_traffic_covers_every_device_and_format_and_all_of_it_adapts(demo_config):
    """3,000 simulated messages reach every configured device in every format, and none is dead-lettered."""
    normaliser = Normaliser(demo_config)
    devices, formats, dead = Counter(), Counter(), []
    for topic, payload in itertools.islice(traffic(demo_config, seed=7), 3000):
        outcome = normaliser.normalise(ReceivedMessage(topic=topic, payload=payload, received_at=datetime.now(UTC)))
        if outcome.dead:
            dead.append(outcome.dead)
        for event in outcome.events:
            devices[event.device_id] += 1
            formats[event.source_format] += 1
    assert dead == []
    assert set(devices) == {d.id for d in demo_config.devices}
    assert set(formats) == {"hikvision", "dahua", "gat1400", "frigate", "canonical"}


def test_traffic_leaves_out_the_devices_it_is_told_to(demo_config):
    """Excluded devices (the trackers of units the patrol-terminal simulator moves) send nothing; the rest do."""
    quiet = {u.tracker for u in demo_config.units if u.tracker}
    topics = [topic for topic, _ in itertools.islice(traffic(demo_config, seed=7, exclude=quiet), 2000)]
    assert quiet and not any(f"/{device}/" in topic for topic in topics for device in quiet)
    assert any("/lotus-tracker-ebike-7/" in topic for topic in topics)


def test_traffic_is_repeatable_for_a_seed(demo_config):
    """The same seed and start give the same bytes (benchmarks compare like with like)."""
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    a = list(itertools.islice(traffic(demo_config, seed=3, start=start), 200))
    b = list(itertools.islice(traffic(demo_config, seed=3, start=start), 200))
    assert a == b and len({p for _, p in a}) == 200


def test_simulate_publishes_through_the_broker_into_the_database(config, database_url, broker, db):
    """`Simulator.run` at 200 msg/s for 1.5 s: every published message is stored as events."""
    worker = IngestWorker(config=config, database_url=database_url, broker=broker, worker_id="sim").start()
    try:
        assert worker.wait_ready(15)
        sent = Simulator(config=config, broker=broker, rate=200, seed=11).run(duration=1.5)
        assert 250 <= sent <= 310
        assert wait_for(lambda: worker.health().stored >= sent, timeout=30), worker.health()
        assert count(database_url, "SELECT count(*) FROM dead_letters") == 0
        assert count(database_url, "SELECT count(DISTINCT device_id) FROM events") >= 10
    finally:
        worker.stop()
