"""Device simulator: realistic traffic in every vendor format for the configured devices.

Each configured device reports like its kind does (gates pass people and now and then are
forced, LPR cameras read plates and sometimes a hotlisted one, cameras count crowds,
buttons send heartbeats and rarely a press, trackers move) in the format its gateway
forwards, on the topic ingest subscribes to. ``watchpost simulate`` publishes it; the
benchmarks use :func:`traffic` for a repeatable mixed stream.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest import samples
from ingest.mqtt import BrokerAddress, Publisher
from watchpost.config import DeviceConfig, WatchpostConfig

__all__ = ["Simulator", "device_topic", "traffic"]

log = logging.getLogger("watchpost.simulator")

# Relative message rates by device kind (an LPR camera at a busy gate reports far more
# often than an emergency button).
_WEIGHT = {
    "lpr": 6.0,
    "checkpoint": 5.0,
    "gate": 5.0,
    "face_capture": 4.0,
    "camera": 2.0,
    "rfid_reader": 3.0,
    "gps_tracker": 3.0,
    "alarm_button": 0.5,
}


def device_topic(config: WatchpostConfig, device: DeviceConfig) -> str:
    """The topic a gateway publishes ``device``'s payloads on under ``config``'s routes."""
    if device.format == "frigate":
        for route in config.ingest.routes:
            if route.format == "frigate" and "{device}" not in route.topic and route.topic.endswith("events"):
                return route.topic
    for route in config.ingest.routes:
        if "{device}" in route.topic:
            return route.topic.replace("{device}", device.id).replace("+", "gw").replace("#", "events")
    raise ValueError("no route names a {device} level: the simulator cannot address devices")


@dataclass
class _DeviceState:
    device: DeviceConfig
    topic: str
    mac: str
    serial: int = 0
    crowd: float = 8.0
    lat: float = 0.0
    lon: float = 0.0


def traffic(
    config: WatchpostConfig,
    *,
    seed: int | None = None,
    start: datetime | None = None,
    step: timedelta | None = None,
    exclude: Collection[str] = (),
    alarm_scale: float = 1.0,
) -> Iterator[tuple[str, bytes]]:
    """An endless, repeatable stream of ``(topic, payload)`` across every configured device.

    ``alarm_scale`` multiplies how often devices alarm (forced doors, buttons, hotlist hits,
    vibration): 1 is the benchmark mix, the demo uses less so that its few units keep up.

    Every payload is a distinct event (distinct ids and times), so a stream of N messages
    should become at least N stored events. Devices in ``exclude`` send nothing (the trackers
    of units whose positions the patrol-terminal simulator reports).
    """
    rng = random.Random(seed)
    now = start or datetime.now(UTC)
    step = step or timedelta(milliseconds=10)
    states = [
        _state(config, d, rng)
        for d in config.devices
        if (d.format is not None or d.kind == "camera") and d.id not in exclude
    ]
    if not states:
        raise ValueError("no configured devices to simulate")
    weights = list(itertools.accumulate(_WEIGHT.get(s.device.kind, 1.0) for s in states))
    hot_plates = [e.value for e in config.hotlists.plates]
    hot_tags = [e.value for e in config.hotlists.rfid_tags]
    zones = {s.device.id: config.zone_of(s.device) for s in states}
    for seq in itertools.count(1):
        state = rng.choices(states, cum_weights=weights)[0]
        when = now + step * seq
        local = when.astimezone(zones[state.device.id]).replace(tzinfo=None)  # for formats without a zone
        yield state.topic, _payload(state, rng, when, local, seq, hot_plates, hot_tags, alarm_scale)


def _state(config: WatchpostConfig, device: DeviceConfig, rng: random.Random) -> _DeviceState:
    mac = next((a.lower() for a in device.aliases if a.count(":") == 5), None)
    mac = mac or samples.random_mac(rng)
    pos = device.position or config.site_index[device.site].position
    return _DeviceState(device=device, topic=device_topic(config, device), mac=mac, lat=pos.lat, lon=pos.lon)


def _alias(device: DeviceConfig, default: str) -> str:
    return device.aliases[0] if device.aliases else default


def _payload(
    s: _DeviceState,
    rng: random.Random,
    when: datetime,
    local: datetime,
    seq: int,
    hot_plates: list[str],
    hot_tags: list[str],
    scale: float = 1.0,
) -> bytes:
    d = s.device
    s.serial += 1
    fmt = d.format or "canonical"
    plate = rng.choice(hot_plates) if hot_plates and rng.random() < 0.03 * scale else samples.random_plate(rng)
    if rng.random() < 0.02:
        plate = None  # no read: dirty or missing plate
    if d.kind in ("lpr", "checkpoint"):
        if fmt == "hikvision":
            return samples.hikvision_anpr_xml(
                plate=plate,
                when=when,
                mac=s.mac,
                uuid=f"sim{seq:012d}{s.serial:08d}",
                confidence=rng.randint(60, 100),
                rng=rng,
            )
        if fmt == "dahua":
            return samples.dahua_traffic_junction_json(
                plate=plate, real_utc=when, event_id=seq, group_id=s.serial, machine_name=_alias(d, d.id), rng=rng
            )
        if fmt == "gat1400":
            dev = _alias(d, "33029902001210000118")
            return samples.gat1400_motor_vehicle_json(
                plate=plate,
                pass_time=local,
                device_id=dev,
                vehicle_id=f"{dev}02{seq:026d}",
                reliability=rng.randint(60, 99),
                rng=rng,
            )
        return samples.canonical_json(
            kind="plate_read",
            code="plate" if plate else "no_read",
            time=when,
            id=f"sim-{seq}",
            plate=plate,
            confidence=round(rng.uniform(0.6, 1), 2),
        )
    if d.kind == "gate":
        roll = rng.random()
        minor = 0x1B if roll < 0.01 * scale else 0x1C if roll < 0.02 * scale else 0x4B if roll < 0.4 else 0x01
        if fmt == "hikvision":
            return samples.hikvision_access_json(minor=minor, when=when, mac=s.mac, serial_no=s.serial)
        code = {0x1B: "forced_open", 0x1C: "held_open", 0x4B: "face_pass", 0x01: "card_pass"}[minor]
        return samples.canonical_json(kind="access", code=code, time=when, id=f"sim-{seq}")
    if d.kind == "face_capture":
        if fmt == "gat1400":
            dev = _alias(d, "34020000001110000001")
            return samples.gat1400_face_json(
                face_id=f"{dev}06{seq:026d}", device_id=dev, shot_time=local, image_id=f"{dev}02{seq:021d}"
            )
        if fmt == "hikvision":
            return samples.hikvision_face_capture_json(
                when=when, mac=s.mac, uid=f"sim{seq:020d}", face_id=seq, face_score=rng.randint(40, 99), rng=rng
            )
        return samples.canonical_json(kind="face_capture", code="capture", time=when, id=f"sim-{seq}")
    if d.kind == "camera":
        # A slow random walk with a daily swell: the square fills up in the evening.
        swell = 10 * max(0.0, math.sin((local.hour - 12) / 12 * math.pi))
        s.crowd = max(0.0, s.crowd + rng.gauss(0, 1.5) + (swell - s.crowd) * 0.05)
        count = round(s.crowd)
        if fmt == "hikvision":
            return samples.hikvision_density_json(
                count=count, when=when, mac=s.mac, trigger=count >= 20, uuid=f"sim-{seq}"
            )
        if fmt == "dahua":
            return samples.dahua_rioter_text(
                action="Start" if count >= 15 else "Stop", real_utc=when, event_id=seq, people=count
            )
        if fmt == "frigate":
            kind = rng.choice(("new", "update", "update", "end"))
            start = when.timestamp() - rng.uniform(0, 30)
            return samples.frigate_event_json(
                kind,
                event_id=f"{start:.6f}-sim{seq}",
                camera=_alias(d, d.id),
                frame_time=when.timestamp(),
                start_time=start,
                end_time=when.timestamp() if kind == "end" else None,
                rng=rng,
            )
        return samples.canonical_json(kind="crowd_count", code="periodic", time=when, id=f"sim-{seq}", count=count)
    if d.kind == "alarm_button":
        pressed = rng.random() < 0.02 * scale
        if fmt == "dahua":
            return samples.dahua_alarm_local_text(action="Start" if pressed else "Stop", local_time=local, event_id=seq)
        return samples.canonical_json(
            kind="alarm_button" if pressed else "device_status",
            code="press" if pressed else "heartbeat",
            time=when,
            id=f"sim-{seq}",
        )
    if d.kind == "rfid_reader":
        tag = (
            rng.choice(hot_tags)
            if hot_tags and rng.random() < 0.02 * scale
            else f"E28011606000{rng.getrandbits(48):012X}"
        )
        return samples.canonical_json(
            kind="rfid_read",
            code="tag",
            time=when,
            id=f"sim-{seq}",
            attributes={"tag": tag, "antenna": rng.randint(1, 4)},
        )
    if d.kind == "gps_tracker":
        s.lat += rng.gauss(0, 0.0002)
        s.lon += rng.gauss(0, 0.0002)
        code = "vibration" if rng.random() < 0.01 * scale else "position"
        return samples.canonical_json(
            kind="gps_position" if code == "position" else "device_status",
            code=code,
            time=when,
            id=f"sim-{seq}",
            lat=round(s.lat, 6),
            lon=round(s.lon, 6),
            attributes={"speed_kmh": round(abs(rng.gauss(12, 5)), 1)},
        )
    return samples.canonical_json(kind="device_status", code="heartbeat", time=when, id=f"sim-{seq}")


class Simulator:
    """Publishes :func:`traffic` for ``config``'s devices at a steady rate."""

    def __init__(
        self,
        *,
        config: WatchpostConfig,
        broker: BrokerAddress,
        rate: float,
        seed: int | None = None,
        exclude: Collection[str] = (),
        alarm_scale: float = 1.0,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.config = config
        self.broker = broker
        self.rate = rate
        self.seed = seed
        self.exclude = frozenset(exclude)
        self.alarm_scale = alarm_scale

    def run(self, *, duration: float = 60.0, stop: threading.Event | None = None) -> int:
        """Publish for ``duration`` seconds (0: until ``stop`` is set); return how many were sent."""
        stop = stop or threading.Event()
        sent = 0
        with Publisher(self.broker, client_id="") as publisher:
            started = time.monotonic()
            stream = traffic(
                self.config,
                seed=self.seed,
                start=datetime.now(UTC),
                step=timedelta(seconds=1 / self.rate),
                exclude=self.exclude,
                alarm_scale=self.alarm_scale,
            )
            for topic, payload in stream:
                if stop.is_set() or (duration and time.monotonic() - started >= duration):
                    break
                publisher.publish(topic, payload)
                sent += 1
                ahead = started + sent / self.rate - time.monotonic()
                if ahead > 0 and stop.wait(ahead):
                    break
        log.info("simulator stopped: sent=%d", sent)
        return sent
