"""Prometheus metrics shared by ingest and the API (one registry per process)."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from watchpost.model import DeadReason

__all__ = [
    "REGISTRY",
    "ALERTS_RAISED",
    "DETECTOR_ERRORS",
    "BATCH_SIZE",
    "BROKER_CONNECTED",
    "COMMIT_SECONDS",
    "CONSUMER_LAG",
    "DATABASE_UP",
    "DEAD_LETTERS",
    "DUPLICATES",
    "QUEUE_DEPTH",
    "RECEIVED",
    "STORED",
]

RECEIVED = Counter("watchpost_messages_received", "MQTT messages taken off the broker", ["worker"])
STORED = Counter("watchpost_events_stored", "Events committed to the database (new ones only)", ["worker"])
DUPLICATES = Counter(
    "watchpost_events_duplicate", "Events already stored (replays, retransmissions): nothing inserted", ["worker"]
)
DEAD_LETTERS = Counter("watchpost_dead_letters", "Messages dead-lettered, by reason", ["reason"])
BATCH_SIZE = Histogram(
    "watchpost_batch_size", "Messages per committed batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000)
)
COMMIT_SECONDS = Histogram(
    "watchpost_commit_seconds",
    "Time to write and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_LAG = Gauge(
    "watchpost_consumer_lag_seconds", "Age of the oldest message of the last committed batch", ["worker"]
)
QUEUE_DEPTH = Gauge("watchpost_queue_depth", "Messages received but not yet committed", ["worker"])
DATABASE_UP = Gauge("watchpost_database_up", "1 when the last write reached the database", ["worker"])
BROKER_CONNECTED = Gauge("watchpost_broker_connected", "1 while connected to the MQTT broker", ["worker"])

ALERTS_RAISED = Counter(
    "watchpost_alerts_raised", "Alerts raised or updated by the rule detectors in ingest transactions", ["worker"]
)
DETECTOR_ERRORS = Counter(
    "watchpost_detector_errors", "Batches whose events were stored but whose rule detectors failed", ["worker"]
)

for _reason in DeadReason:  # every reason shows from the start, at zero
    DEAD_LETTERS.labels(reason=_reason.value)
