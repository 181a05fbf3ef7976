"""Shared fixtures: a real PostgreSQL and a real MQTT broker.

The servers named by WATCHPOST_DATABASE_URL / WATCHPOST_MQTT_URL are used, or the ones on
127.0.0.1:5432 / 127.0.0.1:1883 when they answer; otherwise embedded ones are started
(pgserver, the iotcore broker), so the suite passes on a fresh machine too.
WATCHPOST_TEST_EMBEDDED=1 forces the embedded ones.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from ingest.mqtt import BrokerAddress, probe
from watchpost import store
from watchpost.config import Route, WatchpostConfig, load_config
from watchpost.embedded import EmbeddedServices, start_broker, start_mosquitto, start_postgres

# The running-API fixtures (servers, credentials) serve the end-to-end scenarios too.
pytest_plugins = ["tests.api_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FORCE_EMBEDDED = os.environ.get("WATCHPOST_TEST_EMBEDDED") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServices]:
    services = EmbeddedServices()
    yield services
    services.stop()


@pytest.fixture(scope="session")
def server_url(embedded: EmbeddedServices, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL server where the suite may create databases."""
    url = os.environ.get("WATCHPOST_DATABASE_URL")
    if url and not FORCE_EMBEDDED:
        return url
    if not FORCE_EMBEDDED and _reachable("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    return start_postgres(tmp_path_factory.mktemp("pg") / "data", embedded)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    name = f"watchpost_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    with store.connect(url) as conn:
        store.migrate(conn, storage=load_config(ROOT / "configs" / "demo").storage)
    yield url
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def db(database_url: str, config: WatchpostConfig) -> Iterator[psycopg.Connection]:
    """A connection to the session database, emptied of events and dead letters for this test."""
    with store.connect(database_url) as conn:
        conn.execute(
            "TRUNCATE events, event_keys, dead_letters, alerts, alert_events, alert_transitions, alert_tiers,"
            " assignments, feed, outbox, device_seen, door_states, event_rates, unit_fixes, unit_positions,"
            " site_levels, site_level_changes, hotlist_entries, alert_snapshots, observations, camera_status,"
            " camera_pictures"
        )
        conn.execute("UPDATE units SET status = 'available'")
        store.sync_configuration(conn, config=config)
        yield conn


@pytest.fixture(scope="session")
def broker_url(embedded: EmbeddedServices, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An MQTT 5 broker."""
    url = os.environ.get("WATCHPOST_MQTT_URL")
    if url and not FORCE_EMBEDDED:
        return url
    if not FORCE_EMBEDDED and probe(BrokerAddress("127.0.0.1", 1883)):
        return "mqtt://127.0.0.1:1883"
    return start_broker(tmp_path_factory.mktemp("broker"), embedded)


@pytest.fixture(scope="session")
def durable_broker_url(embedded: EmbeddedServices, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A broker configured like production (deploy/mosquitto): it holds a large backlog for an absent worker.

    A stock Mosquitto keeps only 1,000 queued messages per offline session and drops the rest,
    so fault tests run against a private Mosquitto started from the deployment's own settings
    (queue limits, persistence), or the embedded broker where Mosquitto is not installed.
    """
    folder = tmp_path_factory.mktemp("durable-broker")
    url = (
        None
        if FORCE_EMBEDDED
        else start_mosquitto(folder, embedded, production_conf=ROOT / "deploy" / "mosquitto" / "mosquitto.conf")
    )
    return url or start_broker(folder, embedded)


@pytest.fixture(scope="session")
def mosquitto_url(durable_broker_url: str) -> str:
    """A broker that keeps the session of a disconnected client (Mosquitto), or skip.

    The embedded broker (rumqttd) neither holds messages for an absent persistent session
    nor resumes one reliably, so the worker-restart tests need a real Mosquitto.
    """
    if FORCE_EMBEDDED or not shutil.which("mosquitto"):
        pytest.skip("needs Mosquitto: the embedded broker does not keep sessions of disconnected clients")
    return durable_broker_url


@pytest.fixture
def broker(broker_url: str) -> BrokerAddress:
    return BrokerAddress.parse(broker_url)


@pytest.fixture
def demo_config() -> WatchpostConfig:
    return load_config(ROOT / "configs" / "demo")


@pytest.fixture
def config(demo_config: WatchpostConfig) -> WatchpostConfig:
    """The demo configuration on topics and a share group of this test's own."""
    tag = uuid.uuid4().hex[:8]
    ingest = demo_config.ingest.model_copy(
        update={
            "routes": [
                Route(topic=f"t{tag}/devices/{{device}}/#"),
                Route(topic=f"t{tag}/frigate/events", format="frigate"),
                Route(topic=f"t{tag}/frigate/reviews", format="frigate"),
            ],
            "share_group": f"g{tag}",
            "client_id": f"wp-test-{tag}",
            "batch_linger_ms": 5,
        }
    )
    return demo_config.model_copy(update={"ingest": ingest})


def topic_for(config: WatchpostConfig, device: str, suffix: str = "events") -> str:
    """The topic a gateway publishes ``device``'s payloads to under ``config``."""
    return config.ingest.routes[0].topic.replace("{device}", device).replace("#", suffix)


def write_config(config: WatchpostConfig, path: Path) -> Path:
    """Write ``config`` as one YAML file (for commands run as subprocesses)."""
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    return path
