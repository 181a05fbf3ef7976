"""Domain objects that cross stage boundaries: received messages, readings, events, dead letters.

Everything here is a frozen, slotted dataclass with named fields. Nothing in this module
imports paho, psycopg or OpenCV; every other layer may import it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "OPEN_STATES",
    "TOTAL_ZONE",
    "Conflict",
    "NotFound",
    "AdaptError",
    "AlertDraft",
    "AlertState",
    "AssignmentState",
    "CameraPicture",
    "CameraStatus",
    "Observation",
    "Outcome",
    "Severity",
    "UnitState",
    "UnitStatus",
    "ClockStatus",
    "DeadLetter",
    "DeadReason",
    "Event",
    "EventKind",
    "Reading",
    "ReceivedMessage",
    "event_key",
]


class EventKind(StrEnum):
    """What kind of thing a device reported, independent of vendor."""

    PLATE_READ = "plate_read"  # LPR camera or checkpoint read a vehicle (plate may be None: no read)
    FACE_CAPTURE = "face_capture"  # a face was captured (counted and referenced only, never identified)
    ACCESS = "access"  # gate / door controller: pass, forced open, held open, failed verification...
    CROWD_COUNT = "crowd_count"  # periodic people count reported by a device
    CROWD_ALARM = "crowd_alarm"  # a device-side gathering / density alarm
    INTRUSION = "intrusion"  # field detection, line crossing, region entrance...
    OBJECT = "object"  # a generic object detection (Frigate)
    ALARM_BUTTON = "alarm_button"  # one-button emergency alarm
    RFID_READ = "rfid_read"  # e-bike RFID tag read
    GPS_POSITION = "gps_position"  # tracker or patrol unit position fix
    DEVICE_STATUS = "device_status"  # heartbeat, tamper, vibration, power cut, video loss...


class ClockStatus(StrEnum):
    """How far the device's own clock can be trusted for this event."""

    OK = "ok"
    NO_TIME = "no_time"  # the payload carried no usable time: occurred_at is the receive time
    ZERO_DATE = "zero_date"  # the device sent a zero / epoch date: occurred_at is the receive time
    AHEAD = "ahead"  # device time is later than the receive time beyond tolerance
    BEHIND = "behind"  # device time is earlier than the receive time beyond tolerance


class DeadReason(StrEnum):
    """Why a message could not become events. Stable codes: they label metrics."""

    OVERSIZE = "oversize"
    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    MALFORMED_XML = "malformed_xml"
    FORBIDDEN_XML = "forbidden_xml"  # DTDs, entities: entity bombs and external entity attacks
    UNKNOWN_FORMAT = "unknown_format"
    UNKNOWN_DEVICE = "unknown_device"
    SCHEMA = "schema"  # the format was recognised but a required field is missing or wrong
    UNSUPPORTED_EVENT = "unsupported_event"  # a recognised envelope carrying an event type we do not handle


class AdaptError(Exception):
    """A payload that cannot be turned into events; carries a stable reason and a human detail."""

    def __init__(self, reason: DeadReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One MQTT message as the transport handed it over, before any parsing."""

    topic: str
    payload: bytes
    received_at: datetime  # UTC, aware
    mid: int = 0  # MQTT packet id, needed to acknowledge; 0 for QoS 0 or non-MQTT sources
    qos: int = 0
    epoch: int = 0  # connection generation: an ack from an older connection must not be sent
    retain: bool = False
    duplicate: bool = False  # the broker flagged a redelivery


@dataclass(frozen=True, slots=True)
class Reading:
    """What an adapter extracts from one vendor payload, before the pipeline stamps it.

    ``device_time`` is aware when the payload carried a zone or an absolute epoch, and naive
    (local wall time) when it did not: the pipeline reads a naive time in the device's zone.
    """

    kind: EventKind
    code: str  # vendor-neutral sub-type, e.g. "plate", "forced_open", "periodic", "press"
    device_time: datetime | None
    source_format: str  # adapter name, e.g. "hikvision", "dahua", "gat1400", "frigate", "canonical"
    device_ref: str | None = None  # a device identity found in the payload (serial, DeviceID, camera)
    ref: str | None = None  # vendor event id, stable across retransmissions of the same event
    plate: str | None = None  # normalised plate; None when no plate was read
    confidence: float | None = None  # 0..1
    repeat: bool = False  # the vendor marked this a retransmission / update of an earlier event
    zone: str | None = None  # region / zone name as the device reports it
    count: int | None = None  # people counted, for crowd readings
    state: str | None = None  # "start", "stop", "pulse" where the vendor says so
    zero_date: bool = False  # the device sent a zero / placeholder date (device_time is then None)
    attributes: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe extras


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a device reported, normalised and ready to store."""

    event_id: uuid.UUID  # idempotency key: the same report always yields the same id
    device_id: str
    site_id: str
    kind: EventKind
    code: str
    occurred_at: datetime  # UTC; the device time when trustworthy, otherwise the receive time
    received_at: datetime  # UTC
    device_time: datetime | None  # UTC as the device reported it (None when it sent none or zero)
    clock: ClockStatus
    source_format: str
    topic: str
    ref: str | None = None
    plate: str | None = None
    confidence: float | None = None
    repeat: bool = False
    zone: str | None = None
    count: int | None = None
    state: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The event as JSON-ready values, times as ISO 8601 in UTC."""
        return {
            "event_id": str(self.event_id),
            "device_id": self.device_id,
            "site_id": self.site_id,
            "kind": self.kind.value,
            "code": self.code,
            "occurred_at": _iso(self.occurred_at),
            "received_at": _iso(self.received_at),
            "device_time": _iso(self.device_time),
            "clock": self.clock.value,
            "source_format": self.source_format,
            "topic": self.topic,
            "ref": self.ref,
            "plate": self.plate,
            "confidence": self.confidence,
            "repeat": self.repeat,
            "zone": self.zone,
            "count": self.count,
            "state": self.state,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be adapted, kept whole with the reason."""

    topic: str
    payload: bytes
    reason: DeadReason
    detail: str
    received_at: datetime
    device_id: str | None = None


_NAMESPACE = uuid.UUID("5f1d2c6e-8a43-4f0b-9a51-3c2b7d9e4a10")


def event_key(device_id: str, reading: Reading, *, received_at: datetime) -> uuid.UUID:
    """The idempotency key of a reading: stable across replays and vendor retransmissions.

    A vendor event id identifies the event when there is one; otherwise the device, kind,
    code, device time and the facts of the reading do. Retransmission markers
    (``activePostCount``, ``isDataRetransmission``) never enter the key, so a repeat of an
    event already stored inserts nothing.

    A reading with neither a vendor id nor a device time cannot be told apart from the next
    identical report (two heartbeats), so its receive time enters the key: such a report is
    never lost, at the price that a broker redelivery of it may be stored twice.
    """
    if reading.ref:
        # The common case, kept cheap: a few strings, each prefixed by its length so that no
        # choice of values can make two different tuples read the same.
        parts = (device_id, reading.source_format, reading.kind.value, reading.code, reading.ref)
        blob = "".join(f"{len(p)}:{p}" for p in parts).encode("utf-8", "surrogatepass")
    else:
        basis = [
            device_id,
            reading.kind.value,
            reading.code,
            reading.device_time.isoformat() if reading.device_time else received_at.isoformat(),
            reading.plate,
            reading.zone,
            reading.count,
            reading.state,
            reading.attributes,
        ]
        blob = json.dumps(basis, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
    digest = bytearray(hashlib.blake2b(_NAMESPACE.bytes + blob, digest_size=16).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # RFC 4122 version 5 (name-based), set by hand:
    digest[8] = (digest[8] & 0x3F) | 0x80  # uuid.UUID(version=...) costs more than the hash
    return uuid.UUID(bytes=bytes(digest))


# --------------------------------------------------------------------------- alerts


class NotFound(LookupError):
    """A named alert, assignment, unit or entry does not exist (or is not the caller's to see)."""


class Conflict(Exception):
    """The request cannot apply to the object's current state (e.g. resolving a resolved alert)."""


class Severity(StrEnum):
    """How urgent an alert is; decides which 1-3-5 tiers are requested."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


class AlertState(StrEnum):
    """Where an alert stands. States only move forward (``rank``); resolved and cancelled are final."""

    NEW = "new"
    DISPATCHED = "dispatched"
    ACKNOWLEDGED = "acknowledged"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        return _STATE_RANK[self]

    @property
    def final(self) -> bool:
        return self in (AlertState.RESOLVED, AlertState.CANCELLED)


_STATE_RANK = {
    AlertState.NEW: 0,
    AlertState.DISPATCHED: 1,
    AlertState.ACKNOWLEDGED: 2,
    AlertState.ON_SCENE: 3,
    AlertState.RESOLVED: 4,
    AlertState.CANCELLED: 4,
}
OPEN_STATES = tuple(s.value for s in AlertState if not s.final)


class Outcome(StrEnum):
    """How a resolved alert ended."""

    HANDLED = "handled"
    FALSE_ALARM = "false_alarm"
    DUPLICATE = "duplicate"
    NO_ACTION = "no_action"


class AssignmentState(StrEnum):
    """A unit's progress on one alert."""

    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    ON_SCENE = "on_scene"
    CLEARED = "cleared"
    CANCELLED = "cancelled"  # the alert ended, or the unit was reassigned, before it cleared


class UnitStatus(StrEnum):
    """Whether a unit can be sent."""

    AVAILABLE = "available"
    DISPATCHED = "dispatched"  # on its way to an alert
    ON_SCENE = "on_scene"
    OFF_DUTY = "off_duty"  # not to be dispatched (break, out of service)


@dataclass(frozen=True, slots=True)
class UnitState:
    """A unit as dispatch sees it: where it is (its last fix, else its home) and whether it is free."""

    unit_id: str
    name: str
    kind: str  # foot, ebike, car, post
    site_id: str | None
    speed_kmh: float
    lat: float
    lon: float
    fix_at: datetime | None  # None: the position is the configured home, not a fix
    status: UnitStatus


@dataclass(frozen=True, slots=True)
class AlertDraft:
    """What a detector proposes: an alert to raise, or to fold into the open one with the same key."""

    type: str
    severity: Severity
    title: str
    dedup_key: str  # same key within the deduplication window = the same alert
    site_id: str | None
    occurred_at: datetime  # when the source saw it (device time, UTC)
    rule: str
    device_id: str | None = None
    zone: str | None = None
    lat: float | None = None
    lon: float | None = None
    source_events: tuple[tuple[uuid.UUID, datetime], ...] = ()  # (event id, occurred_at)
    detail: Mapping[str, Any] = field(default_factory=dict)


TOTAL_ZONE = "_total"  # the observation of a camera's whole frame (configured zone ids cannot start with "_")


@dataclass(frozen=True, slots=True)
class Observation:
    """A measured value over time: the people counted in one camera zone at one sample."""

    at: datetime  # UTC, aware: when the frame was taken (received)
    device_id: str
    zone: str
    people: float


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A counting camera's health as its crowd worker sees it."""

    device_id: str
    worker: str
    state: str  # ok, waiting, silent, reconnecting, dead, unavailable (no model), error, held (view unlike calibration)
    reason: str | None
    source: str  # where frames come from (a URL's credentials removed)
    last_frame_at: datetime | None
    frames: int
    errors: int
    reconnects: int
    people: float | None  # the latest total count
    last_error: str | None = None  # the latest refused frame, dead stream or failure, kept until replaced
    last_error_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CameraPicture:
    """A counting camera's empty scene (its model's background), to draw zones on: never a live frame."""

    device_id: str
    taken_at: datetime
    width: int  # the JPEG's size (the counting size)
    height: int
    frame_width: int  # the size of the picture the camera's zones are drawn in (the camera's pixels)
    frame_height: int
    jpeg: bytes


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
