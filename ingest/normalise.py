"""From a received message to events or a dead letter: route, adapt, resolve the device, stamp time.

Pure and deterministic for a given configuration: the same message always yields the same
events (and so the same idempotency keys). Used by the ingest pipeline and ``watchpost parse``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ingest.adapters import parse
from watchpost.config import DeviceConfig, Route, WatchpostConfig
from watchpost.model import AdaptError, ClockStatus, DeadLetter, DeadReason, Event, Reading, ReceivedMessage, event_key

__all__ = ["Normaliser", "Outcome"]

_OVERSIZE_KEEP = 64 * 1024  # bytes of an oversize payload kept in its dead letter


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one message became: events, and a dead letter when (part of) it could not be used."""

    events: list[Event] = field(default_factory=list)
    dead: DeadLetter | None = None


class Normaliser:
    """Turns received messages into events under one configuration."""

    def __init__(self, config: WatchpostConfig, *, require_device: bool = True) -> None:
        self.config = config
        self.require_device = require_device  # `watchpost parse` without --device does not
        self._tolerance = timedelta(seconds=config.ingest.clock_tolerance_s)
        self._max_age = timedelta(days=config.ingest.max_event_age_days)
        self._zones = {d.id: config.zone_of(d) for d in config.devices}
        self._default_zone = config.zone_of(None)

    def route(self, topic: str) -> tuple[Route | None, str | None]:
        """The first route whose pattern matches ``topic``, and the device id it names."""
        for route in self.config.ingest.routes:
            matched, device = route.match(topic)
            if matched:
                return route, device
        return None, None

    def normalise(self, message: ReceivedMessage, *, device_id: str | None = None) -> Outcome:
        """Adapt ``message``; every failure becomes a dead letter with a reason, never an exception."""
        payload = message.payload
        if len(payload) > self.config.ingest.max_payload_bytes:
            return self._dead(
                message,
                DeadReason.OVERSIZE,
                f"payload is {len(payload)} bytes, the limit is {self.config.ingest.max_payload_bytes}"
                f" (first {_OVERSIZE_KEEP} bytes kept)",
                keep=payload[:_OVERSIZE_KEEP],
            )
        route, topic_device = self.route(message.topic)
        named = device_id or topic_device
        device: DeviceConfig | None = None
        if named is not None:
            device = self.config.device_index.get(named) or self.config.alias_index.get(named.lower())
            if device is None and self.require_device:
                return self._dead(
                    message, DeadReason.UNKNOWN_DEVICE, f"device {named!r} named by the topic is not configured"
                )
        fmt = (route.format if route else None) or (device.format if device else None)
        try:
            readings = self._parse(payload, topic=message.topic, fmt=fmt)
        except AdaptError as exc:
            return self._dead(message, exc.reason, exc.detail, device=device)

        events: list[Event] = []
        unknown: list[str] = []
        for reading in readings:
            owner = device or self._resolve(reading)
            if owner is None and self.require_device:
                unknown.append(reading.device_ref or "(none)")
                continue
            events.append(self._stamp(message, reading, owner))
        dead = None
        if unknown:
            dead = self._dead(
                message,
                DeadReason.UNKNOWN_DEVICE,
                f"{len(unknown)} of {len(readings)} readings name no configured device"
                f" (identities in the payload: {', '.join(sorted(set(unknown))[:10])})",
            ).dead
        return Outcome(events=events, dead=dead)

    def _parse(self, payload: bytes, *, topic: str, fmt: str | None) -> list[Reading]:
        if fmt is None:
            return parse(payload, topic=topic)
        try:
            return parse(payload, topic=topic, format=fmt)
        except AdaptError as first:
            # The configured format is a hint; a gateway may forward another. Detection by
            # content decides, and the first, more specific, error stands if it fails too.
            try:
                return parse(payload, topic=topic)
            except AdaptError:
                raise first from None

    def _resolve(self, reading: Reading) -> DeviceConfig | None:
        if reading.device_ref is None:
            return None
        return self.config.alias_index.get(reading.device_ref.lower())

    def _stamp(self, message: ReceivedMessage, reading: Reading, device: DeviceConfig | None) -> Event:
        received = message.received_at
        device_time = reading.device_time
        if device_time is not None and device_time.tzinfo is None:
            zone = self._zones.get(device.id, self._default_zone) if device else self._default_zone
            device_time = device_time.replace(tzinfo=zone)
        if device_time is not None:
            device_time = device_time.astimezone(UTC)

        occurred, clock = received, ClockStatus.OK
        if reading.zero_date:
            clock = ClockStatus.ZERO_DATE
        elif device_time is None:
            clock = ClockStatus.NO_TIME
        else:
            skew = device_time - received
            if skew > self._tolerance:
                clock = ClockStatus.AHEAD  # a future time would corrupt every time query: use ours
            elif -skew > self._max_age:
                clock = ClockStatus.BEHIND
            else:
                occurred = device_time
                if -skew > self._tolerance:
                    clock = ClockStatus.BEHIND  # late or slow clock: kept at the device time, flagged

        if device is not None:
            device_id, site_id = device.id, device.site
        else:
            device_id, site_id = reading.device_ref or "unknown", ""
        return Event(
            event_id=event_key(device_id, reading, received_at=received),
            device_id=device_id,
            site_id=site_id,
            kind=reading.kind,
            code=reading.code,
            occurred_at=occurred,
            received_at=received,
            device_time=device_time,
            clock=clock,
            source_format=reading.source_format,
            topic=message.topic,
            ref=reading.ref,
            plate=reading.plate,
            confidence=reading.confidence,
            repeat=reading.repeat,
            zone=reading.zone,
            count=reading.count,
            state=reading.state,
            attributes=reading.attributes,
        )

    def _dead(
        self,
        message: ReceivedMessage,
        reason: DeadReason,
        detail: str,
        *,
        device: DeviceConfig | None = None,
        keep: bytes | None = None,
    ) -> Outcome:
        return Outcome(
            dead=DeadLetter(
                topic=message.topic,
                payload=message.payload if keep is None else keep,
                reason=reason,
                detail=detail,
                received_at=message.received_at,
                device_id=device.id if device else None,
            )
        )

    @staticmethod
    def now() -> datetime:
        """The receive time for sources that are not MQTT (files, tests)."""
        return datetime.now(UTC)
