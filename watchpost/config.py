"""One validated configuration tree: sites, zones, devices, patrol units, hotlists, ingest.

The YAML lives in ``configs/``: a single file, or a folder whose ``*.yaml`` files are merged
by top-level key. A wrong file fails at start with the file, the line and what is wrong
(:class:`ConfigError`). Built once in the entry point and passed down.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from watchpost.ground import GroundError, GroundPlane

__all__ = [
    "ConfigError",
    "CrowdCameraConfig",
    "GatheringConfig",
    "DeviceConfig",
    "DeviceKind",
    "IngestConfig",
    "MapConfig",
    "Route",
    "SiteConfig",
    "StorageConfig",
    "UnitConfig",
    "WatchpostConfig",
    "ReloadError",
    "load_config",
    "zone_changes",
]

DeviceKind = Literal[
    "gate", "lpr", "face_capture", "checkpoint", "camera", "alarm_button", "rfid_reader", "gps_tracker"
]
PayloadFormat = Literal["canonical", "hikvision", "dahua", "gat1400", "frigate"]
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Position(_Model):
    """A point on the map, WGS 84."""

    lat: float = Field(ge=-90, le=90, description="Latitude in decimal degrees")
    lon: float = Field(ge=-180, le=180, description="Longitude in decimal degrees")


Severity = Literal["critical", "major", "minor", "info"]
SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "info")


class NightWindow(_Model):
    """Hours (local time of the site) in which a rule's alerts take another severity."""

    start: str = Field(default="22:00", pattern=r"^\d{2}:\d{2}$", description="Start, HH:MM local time")
    end: str = Field(default="06:00", pattern=r"^\d{2}:\d{2}$", description="End, HH:MM (may be past midnight)")
    severity: Severity = Field(description="Severity during these hours")

    def contains(self, hhmm: str) -> bool:
        """Whether a local HH:MM falls in the window (windows may wrap midnight)."""
        if self.start <= self.end:
            return self.start <= hhmm < self.end
        return hhmm >= self.start or hhmm < self.end


class GatheringConfig(_Model):
    """When the people counted in one camera zone are a gathering (see detectors/crowd/gathering.py).

    Raises when the smoothed count stays at or above ``threshold`` (or ``density_per_m2`` times
    the zone's ``area_m2``, whichever is lower) for ``dwell_s``, or grows by ``growth_factor``
    within ``growth_window_s``; clears after ``release_s`` below the release level.
    """

    threshold: float | None = Field(default=None, gt=0, description="People (smoothed) that make a gathering")
    dwell_s: float = Field(default=30, ge=0, le=3600, description="Seconds at or above the threshold before raising")
    release_threshold: float | None = Field(
        default=None, gt=0, description="Below this it may clear (hysteresis); default 80 % of the raise level"
    )
    release_s: float = Field(default=30, ge=0, le=3600, description="Seconds below the release level before clearing")
    cooldown_s: float = Field(default=60, ge=0, le=86400, description="No new alarm this long after one cleared")
    smooth_s: float = Field(default=5, ge=0, le=600, description="Moving-average window of the count, seconds")
    growth_factor: float | None = Field(
        default=None, gt=1, description="Also raise when the crowd grows by this factor (2 = doubles) ..."
    )
    growth_window_s: float = Field(default=60, gt=0, le=3600, description="... within this many seconds")
    growth_min_count: float = Field(default=5, ge=1, description="Growth alarms only from this many people on")
    density_per_m2: float | None = Field(
        default=None,
        gt=0,
        le=10,
        description="People per square metre that make a gathering (needs the zone's area_m2 or the camera's ground)",
    )
    release_density_per_m2: float | None = Field(
        default=None, gt=0, le=10, description="Density below which it may clear; default 80 % of density_per_m2"
    )
    severity: Severity | None = Field(default=None, description="Overrides the alert type's severity")
    night: NightWindow | None = Field(default=None, description="Another severity at night (local time of the site)")

    @model_validator(mode="after")
    def _some_rule(self) -> GatheringConfig:
        if self.threshold is None and self.density_per_m2 is None and self.growth_factor is None:
            raise ValueError("a gathering rule needs a threshold, a density_per_m2 or a growth_factor")
        if (
            self.threshold is not None
            and self.release_threshold is not None
            and self.release_threshold > self.threshold
        ):
            raise ValueError("release_threshold must not exceed threshold (it is the lower level of the hysteresis)")
        if (
            self.density_per_m2 is not None
            and self.release_density_per_m2 is not None
            and self.release_density_per_m2 > self.density_per_m2
        ):
            raise ValueError("release_density_per_m2 must not exceed density_per_m2")
        return self


class ZoneConfig(_Model):
    """A polygon on a site map (lat/lon) or in a camera image (pixels)."""

    id: str = Field(pattern=_ID, description="Zone id, unique within its site or camera")
    name: str = Field(default="", description="Human name shown on the console")
    polygon: list[tuple[float, float]] = Field(
        min_length=3, description="Vertices: [lat, lon] on a site, [x, y] pixels on a camera"
    )
    area_m2: float | None = Field(
        default=None,
        gt=0,
        description="Ground area of a camera zone in square metres (for density thresholds); default from the"
        " camera's ground points (crowd.ground) when it has them",
    )
    gathering: GatheringConfig | None = Field(
        default=None, description="Crowd gathering rule of a camera zone (the camera needs a crowd source)"
    )


class SiteConfig(_Model):
    """A community, enterprise or unit that has zones, devices and posts."""

    id: str = Field(pattern=_ID, description="Site id used in topics, events and the API")
    name: str = Field(description="Display name, e.g. 荷花社区")
    kind: Literal["community", "village", "enterprise", "school", "unit", "street"] = Field(
        default="community", description="What sort of place this is"
    )
    position: Position = Field(description="Centre of the site")
    timezone: str | None = Field(default=None, description="IANA zone; defaults to the global one")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Map zones of the site")

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        return _check_zone(value)


class GroundPoint(_Model):
    """A point on the ground: where it is in the camera's picture and where it is on the ground."""

    pixel: tuple[float, float] = Field(description="[x, y] in the camera's picture (the pixels its zones are drawn in)")
    metres: tuple[float, float] = Field(
        description="[x, y] on the ground in metres, on any flat grid (a tape from one corner, a site plan)"
    )


class CrowdCameraConfig(_Model):
    """Where a camera's frames come from and how they are counted (the crowd worker)."""

    source: str = Field(
        min_length=1,
        description="rtsp:// or http(s):// stream URL, a video file path, or 'mqtt' for JPEG frames published"
        " to `topic`",
    )
    topic: str = Field(
        default="watchpost/cameras/{device}/frame",
        description="With source 'mqtt': the topic the JPEG frames arrive on; {device} is this camera's id",
    )
    sample_fps: float = Field(default=1.0, gt=0, le=30, description="Frames counted per second (the rest skipped)")
    model: str | None = Field(
        default=None,
        description="Calibrated model file from `watchpost crowd calibrate` (relative to the working folder), or"
        " 'synthetic' for the demo's synthetic scene; without one the camera reports counts as unavailable",
    )
    night_model: str | None = Field(
        default=None,
        description="A second model, calibrated on the camera's night pictures (infrared or dark): when frames fail"
        " the model's view check and pass this one's, they are counted with it (and back with `model` at dawn);"
        " its frames must have the size of `model`'s",
    )
    frame_size: tuple[int, int] | None = Field(
        default=None,
        description="[width, height] of the picture the zones are drawn on; default the size of the frames the"
        " model was calibrated from",
    )
    alert: str = Field(default="crowd_gathering", description="Alert type a gathering raises (alerts.types)")
    view_alert: str | None = Field(
        default="device_fault",
        description="Alert type raised when the picture stops showing the calibrated scene (the camera turned, its"
        " lens covered or fogged, too dark, infrared at night) and the counts are held; null: only the camera's"
        " health says so",
    )
    max_pixels: int = Field(
        default=4096 * 3072, ge=64 * 64, description="Frames declaring more pixels are refused (pixel bombs)"
    )
    max_frame_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="Larger JPEG frames are refused")
    reconnect_initial_s: float = Field(default=1.0, gt=0, le=60, description="First wait after a lost stream")
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600, description="Longest wait between reconnections")
    dead_after: int = Field(
        default=5, ge=1, description="Failed connections in a row after which the stream is reported dead"
    )
    retry_dead_s: float = Field(default=60.0, gt=0, le=3600, description="A dead stream is tried again this often")
    silent_after_s: float = Field(
        default=30.0, gt=0, description="An MQTT camera with no frame for this long is reported silent"
    )
    stall_timeout_s: float = Field(
        default=10.0,
        ge=1,
        le=300,
        description="A stream (or a connection to one) that gives no frame for this long is lost and reconnected;"
        " without it a camera that stops sending but keeps the connection open hangs the reader for 30 s",
    )
    snapshot_quality: int = Field(default=85, ge=30, le=100, description="JPEG quality of alert snapshots")
    picture: bool = Field(
        default=True,
        description="Keep the camera's empty scene (its model's background) for drawing zones on in the console;"
        " false keeps none (a person who stood still through every calibration frame may be in it)",
    )
    snapshot: bool = Field(
        default=False,
        description="`source` is a still-image URL fetched at `sample_fps` (Hikvision ISAPI .../picture, Dahua"
        " /cgi-bin/snapshot.cgi, Axis /axis-cgi/jpg/image.cgi), not a video stream; user:password@ in the URL"
        " answers digest or basic authentication",
    )
    ground: list[GroundPoint] | None = Field(
        default=None,
        min_length=4,
        description="Four or more points on the ground (paving corners, kerb ends) in the picture and in metres: the"
        " ground plane, from which each zone without an area_m2 gets its area (for density_per_m2 rules)",
    )
    enabled: bool = Field(default=True, description="Off switch")

    @cached_property
    def ground_plane(self) -> GroundPlane | None:
        """The homography of ``ground``, or None without one (checked when the configuration loads)."""
        if self.ground is None:
            return None
        return GroundPlane.fit([p.pixel for p in self.ground], [p.metres for p in self.ground])

    @model_validator(mode="after")
    def _snapshot_is_http(self) -> CrowdCameraConfig:
        if self.snapshot and not self.source.startswith(("http://", "https://")):
            raise ValueError("snapshot: true needs an http:// or https:// source (a camera's still-image URL)")
        if self.night_model is not None and self.model is None:
            raise ValueError("night_model needs model (the day model, which also gives the picture's size)")
        return self

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        if any(c in value.replace("{device}", "") for c in "+#{}") or not value or value.startswith("$"):
            raise ValueError("a frame topic is a plain topic name ({device} allowed, no wildcards)")
        return value

    @property
    def from_mqtt(self) -> bool:
        """Whether frames arrive over MQTT."""
        return self.source == "mqtt"

    def topic_for(self, device_id: str) -> str:
        """The frame topic of ``device_id``."""
        return self.topic.replace("{device}", device_id)


class DeviceConfig(_Model):
    """A registered device: what it is, where it is, and how its payloads arrive."""

    id: str = Field(pattern=_ID, description="Device id; the {device} part of its MQTT topic")
    kind: DeviceKind = Field(description="What the device is")
    site: str = Field(description="Id of the site the device belongs to")
    format: PayloadFormat | None = Field(
        default=None, description="Payload format its gateway forwards; detected by content when unset"
    )
    name: str = Field(default="", description="Display name")
    position: Position | None = Field(default=None, description="Where the device is")
    timezone: str | None = Field(
        default=None, description="IANA zone of the device clock; defaults to its site's, then the global one"
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="Identities found inside payloads (MAC, IP, GA/T 1400 DeviceID, Frigate camera name)",
    )
    heartbeat_s: int | None = Field(default=None, gt=0, description="Expected silence limit, seconds")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Image zones of a camera")
    crowd: CrowdCameraConfig | None = Field(
        default=None, description="People counting on this camera's frames (cameras only)"
    )

    def zone_area_m2(self, zone: ZoneConfig) -> float | None:
        """The zone's ground area: its ``area_m2``, else from the camera's ground plane, else None."""
        if zone.area_m2 is not None:
            return zone.area_m2
        plane = self.crowd.ground_plane if self.crowd is not None else None
        return round(plane.area_m2(zone.polygon), 2) if plane is not None else None

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        return _check_zone(value)


class UnitConfig(_Model):
    """A patrol unit or a fixed post."""

    id: str = Field(pattern=_ID, description="Unit id")
    name: str = Field(default="", description="Call sign or display name")
    kind: Literal["foot", "ebike", "car", "post"] = Field(description="How the unit moves")
    site: str | None = Field(default=None, description="Home site, if any")
    speed_kmh: float | None = Field(
        default=None, gt=0, le=200, description="Travel speed; defaults by kind (foot 5, ebike 18, car 30)"
    )
    position: Position = Field(description="Home or current position")
    tracker: str | None = Field(default=None, description="Id of the GPS tracker device it carries")


class HotlistEntry(_Model):
    """A plate or tag on a watch list."""

    value: str = Field(min_length=1, description="Plate (province character kept) or RFID tag id")
    reason: Literal["stolen", "wanted", "expired_registration", "suspect", "other"] = Field(
        description="Why it is listed"
    )
    owner: str = Field(default="", description="Who put it on the list")
    expires: str | None = Field(default=None, description="ISO date after which the entry lapses")


class Hotlists(_Model):
    """Plates and e-bike RFID tags that must raise an alert when seen."""

    plates: list[HotlistEntry] = Field(default_factory=list, description="Vehicle plates")
    rfid_tags: list[HotlistEntry] = Field(default_factory=list, description="E-bike RFID tags")


class Route(_Model):
    """A topic pattern to subscribe to; ``{device}`` marks the segment that names the device."""

    topic: str = Field(description="MQTT topic filter; {device} stands for one level, # may end it")
    format: PayloadFormat | None = Field(default=None, description="Payload format on this topic")

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, value: str) -> str:
        levels = value.split("/")
        for i, level in enumerate(levels):
            if level == "#" and i != len(levels) - 1:
                raise ValueError("'#' may only be the last level of a topic filter")
            if level not in ("+", "#", "{device}") and any(c in level for c in "+#{}"):
                raise ValueError(f"level {level!r}: wildcards must fill a whole level")
        if levels.count("{device}") > 1:
            raise ValueError("{device} may appear at most once")
        return value

    @cached_property
    def subscription(self) -> str:
        """The MQTT filter to subscribe to (``{device}`` becomes ``+``).

        An exact topic is subscribed as ``topic/#``, which matches the topic itself too: the
        embedded broker (rumqttd) crashes on a shared subscription without a wildcard.
        Deeper topics that this adds match no route and are dead-lettered, never dropped.
        """
        levels = self.topic.split("/")
        if not any(level in ("+", "#", "{device}") for level in levels):
            return f"{self.topic}/#"
        return self.topic.replace("{device}", "+")

    @cached_property
    def _matcher(self) -> re.Pattern[str]:
        parts = []
        for level in self.topic.split("/"):
            if level == "#":
                parts.append("(?:/.*)?" if parts else ".*")
                continue
            piece = "(?P<device>[^/]+)" if level == "{device}" else "[^/]+" if level == "+" else re.escape(level)
            parts.append(("/" if parts else "") + piece)
        return re.compile("".join(parts) + r"\Z")

    def match(self, topic: str) -> tuple[bool, str | None]:
        """Whether ``topic`` falls under this route, and the device id it names if any."""
        m = self._matcher.match(topic)
        if m is None:
            return False, None
        return True, m.groupdict().get("device")


class IngestConfig(_Model):
    """How ingest subscribes, batches and judges device clocks."""

    routes: list[Route] = Field(
        default_factory=lambda: [
            Route(topic="watchpost/devices/{device}/#"),
            Route(topic="frigate/events", format="frigate"),
            Route(topic="frigate/reviews", format="frigate"),
        ],
        min_length=1,
        description="Topics to subscribe to, first match wins",
    )
    share_group: str = Field(default="watchpost", pattern=r"^[A-Za-z0-9_-]+$", description="Shared subscription group")
    client_id: str = Field(default="watchpost-ingest", description="Prefix of the MQTT client id")
    session_expiry_s: int = Field(
        default=3600, ge=0, description="How long the broker keeps our session and its messages offline"
    )
    receive_maximum: int = Field(
        default=10000, ge=1, le=65535, description="Unacknowledged messages the broker may send us at once"
    )
    batch_max: int = Field(default=2000, ge=1, le=100000, description="Most messages committed at once")
    batch_linger_ms: int = Field(default=5, ge=0, le=5000, description="Wait for more messages this long")
    max_payload_bytes: int = Field(
        default=1_048_576, ge=1024, description="Larger payloads are dead-lettered as oversize"
    )
    clock_tolerance_s: int = Field(
        default=300, ge=1, description="Device time this far from the receive time is flagged"
    )
    max_event_age_days: int = Field(
        default=30, ge=1, description="Older device times are flagged and stored at the receive time"
    )


class StorageConfig(_Model):
    """Retention of what is stored."""

    event_retention_days: int = Field(default=90, ge=1, description="Events older than this are dropped")
    dead_letter_retention_days: int = Field(default=30, ge=1, description="Dead letters kept this long")
    compress_after_days: int = Field(
        default=14, ge=1, description="TimescaleDB compresses chunks this old (after plates are pseudonymised)"
    )
    feed_retention_days: int = Field(
        default=30, ge=1, description="Live-stream entries and sent unit messages are kept this long for resuming"
    )
    rate_retention_days: int = Field(
        default=7, ge=1, description="Per-minute event counts (surge baselines) are kept this long"
    )
    observation_retention_days: int = Field(
        default=30, ge=1, description="Camera zone counts (observations) are kept this long"
    )
    snapshot_retention_days: int = Field(
        default=30, ge=1, description="Alert snapshots (the only frames ever stored) are kept this long"
    )


# --------------------------------------------------------------------------- alerts and rules

EventKindName = Literal[
    "plate_read",
    "face_capture",
    "access",
    "crowd_count",
    "crowd_alarm",
    "intrusion",
    "object",
    "alarm_button",
    "rfid_read",
    "gps_position",
    "device_status",
]


class AlertTypeConfig(_Model):
    """One type of alert: how serious it is by default and how it is shown and counted."""

    severity: Severity = Field(description="Default severity; a rule may raise or lower it")
    title: str = Field(description="Title shown on the console (Chinese)")
    title_en: str = Field(default="", description="Title shown on the console (English)")
    case: Literal["theft", "robbery", "fraud", "violence", "other"] | None = Field(
        default=None,
        description="Case category: case-type alerts feed the site response level and the zero-case board",
    )


def _default_alert_types() -> dict[str, AlertTypeConfig]:
    t = AlertTypeConfig
    return {
        "emergency_button": t(severity="critical", title="一键报警", title_en="Emergency button"),
        "duress": t(severity="critical", title="胁迫报警", title_en="Duress code"),
        "hotlist_plate": t(severity="major", title="布控车辆", title_en="Hotlisted vehicle"),
        "hotlist_rfid": t(severity="major", title="布控电动车", title_en="Hotlisted e-bike"),
        "gate_forced": t(severity="major", title="门禁强行闯入", title_en="Gate forced open"),
        "gate_held_open": t(severity="minor", title="门长时间未关", title_en="Gate held open"),
        "gate_failed_verifications": t(
            severity="minor", title="多次验证失败", title_en="Repeated failed verifications"
        ),
        "gate_intrusion": t(
            severity="major", title="尾随/逆行/翻越", title_en="Tailgating, reverse passage or climbing"
        ),
        "tracker_vibration": t(severity="major", title="车辆震动报警", title_en="Tracker vibration"),
        "tracker_geofence_exit": t(severity="major", title="越界报警", title_en="Tracker left its geofence"),
        "tracker_power_cut": t(severity="major", title="断电报警", title_en="Tracker power cut"),
        "device_offline": t(severity="minor", title="设备离线", title_en="Device offline"),
        "device_fault": t(severity="info", title="设备故障", title_en="Device fault"),
        "intrusion": t(severity="minor", title="区域入侵", title_en="Intrusion"),
        "crowd_gathering": t(severity="major", title="人员聚集", title_en="Crowd gathering"),
        "face_capture_surge": t(severity="minor", title="人流异常增加", title_en="Unusual surge at an entrance"),
        "response_level": t(severity="major", title="社区响应等级", title_en="Site response level"),
        "theft": t(severity="major", title="盗窃警情", title_en="Theft reported", case="theft"),
        "robbery": t(severity="critical", title="抢劫警情", title_en="Robbery reported", case="robbery"),
        "fraud": t(severity="minor", title="诈骗警情", title_en="Fraud reported", case="fraud"),
        "fight": t(severity="critical", title="打架斗殴", title_en="Fight reported", case="violence"),
    }


class AlertsConfig(_Model):
    """The alert catalogue and how repeats fold into an open alert."""

    dedup_window_s: int = Field(
        default=300,
        ge=0,
        description="A repeat of the same type from the same source within this many seconds of the open"
        " alert's last sighting updates it (count, last seen) instead of raising a new one",
    )
    types: dict[str, AlertTypeConfig] = Field(
        default_factory=_default_alert_types, description="Alert types by id; replaces the built-in catalogue"
    )


class _Rule(_Model):
    name: str = Field(pattern=_ID, description="Rule name, unique; shown on the alerts it raises")
    alert: str = Field(description="Alert type it raises (a key of alerts.types)")
    severity: Severity | None = Field(default=None, description="Overrides the alert type's severity")
    night: NightWindow | None = Field(default=None, description="Another severity at night")
    enabled: bool = Field(default=True, description="Off switch")


class EventRule(_Rule):
    """Raise an alert for every event of the given kinds and codes."""

    type: Literal["event"] = "event"
    kinds: list[EventKindName] = Field(min_length=1, description="Event kinds that match")
    codes: list[str] = Field(default_factory=list, description="Event codes that match; empty = any code")
    device_kinds: list[DeviceKind] = Field(default_factory=list, description="Only from these device kinds")
    devices: list[str] = Field(default_factory=list, description="Only from these devices; empty = any")
    ignore_states: list[Literal["start", "stop", "pulse"]] = Field(
        default_factory=lambda: ["stop"], description="Event states that do not raise (the end of an alarm)"
    )
    min_count: int | None = Field(default=None, ge=0, description="Only when the event's count is at least this")


class DeviceCountRule(_Rule):
    """A gathering from the people counts devices report themselves (a Hikvision camera's PDC counts, a gateway's
    ``crowd_count`` events), judged as Watchpost judges its own counts: a zone whose reports stay at or above
    ``threshold`` for ``dwell_s`` raises; the first report under ``release_threshold`` after that notes the
    gathering's end on the open alert (which stays open: people decide when it is over)."""

    type: Literal["device_count"] = "device_count"
    kinds: list[EventKindName] = Field(
        default_factory=lambda: ["crowd_count"], min_length=1, description="Event kinds whose count is people"
    )
    devices: list[str] = Field(default_factory=list, description="Only from these devices; empty = any")
    threshold: int = Field(gt=0, description="People in a report that count towards a gathering")
    dwell_s: float = Field(
        default=0,
        ge=0,
        le=3600,
        description="Seconds the reports must have stayed at or above the threshold (0: the first such report)",
    )
    release_threshold: int | None = Field(
        default=None, gt=0, description="A report under this ends the gathering; default 80 % of the threshold"
    )
    max_gap_s: float = Field(
        default=900,
        gt=0,
        le=86400,
        description="Reports further apart than this are not one stretch (the device was off or unreachable)",
    )

    @model_validator(mode="after")
    def _release_below(self) -> DeviceCountRule:
        if self.release_threshold is not None and self.release_threshold > self.threshold:
            raise ValueError("release_threshold must not exceed threshold (it is the lower level of the hysteresis)")
        return self

    @property
    def release(self) -> float:
        """The level under which a report ends the gathering."""
        return float(self.release_threshold) if self.release_threshold is not None else 0.8 * self.threshold


class HotlistRule(_Rule):
    """Raise an alert when a read matches a hotlist entry, exactly or through OCR confusions."""

    type: Literal["hotlist"] = "hotlist"
    list: Literal["plates", "rfid_tags"] = Field(description="Which hotlist")
    max_confusions: int = Field(
        default=1, ge=0, le=3, description="OCR-confusable characters (0/O/D/Q, 1/I, 8/B, 2/Z, 5/S) allowed"
    )
    severity_by_reason: dict[str, Severity] = Field(
        default_factory=dict, description="Severity per hotlist reason (stolen, wanted...)"
    )


class RepeatRule(_Rule):
    """Raise an alert when one device reports matching events ``count`` times within a window."""

    type: Literal["repeat"] = "repeat"
    kinds: list[EventKindName] = Field(min_length=1, description="Event kinds that count")
    codes: list[str] = Field(default_factory=list, description="Event codes that count; empty = any")
    attribute: tuple[str, str] | None = Field(
        default=None, description="[key, value] the event's attributes must hold, e.g. [access_result, denied]"
    )
    count: int = Field(ge=2, description="How many within the window raise")
    window_s: int = Field(gt=0, description="Window length, seconds")


class SurgeRule(_Rule):
    """Raise an alert when a device's rate of events jumps above its own recent baseline."""

    type: Literal["surge"] = "surge"
    kinds: list[EventKindName] = Field(min_length=1, description="Event kinds that are counted")
    window_s: int = Field(default=300, ge=60, description="The recent window, seconds (whole minutes)")
    baseline_s: int = Field(default=3 * 3600, ge=600, description="The baseline before it, seconds")
    factor: float = Field(default=3.0, gt=1, description="Recent rate at least this times the baseline rate")
    min_count: int = Field(default=20, ge=1, description="...and at least this many events in the window")


class Geofence(_Model):
    """Where a tracker is allowed to be: a site zone or a polygon of [lat, lon]."""

    device: str = Field(description="GPS tracker device id")
    site: str | None = Field(default=None, description="Site whose zone is the fence")
    zone: str | None = Field(default=None, description="Zone id of that site")
    polygon: list[tuple[float, float]] | None = Field(default=None, description="Or a polygon of [lat, lon]")

    @model_validator(mode="after")
    def _one_shape(self) -> Geofence:
        if (self.polygon is None) == (self.zone is None):
            raise ValueError("give either a site zone (site, zone) or a polygon")
        return self


class GeofenceRule(_Rule):
    """Raise an alert when a tracker's position leaves its fence."""

    type: Literal["geofence"] = "geofence"
    fences: list[Geofence] = Field(min_length=1, description="One fence per tracker")


class HeldOpenRule(_Rule):
    """Raise an alert when a gate reports open and no close follows within a limit."""

    type: Literal["held_open"] = "held_open"
    limit_s: int = Field(default=120, gt=0, description="Open longer than this raises")


class OfflineRule(_Rule):
    """Raise an alert when a device is silent past its heartbeat interval."""

    type: Literal["offline"] = "offline"
    grace: float = Field(default=1.5, ge=1, description="Silent for heartbeat_s times this raises")


class ResponseLevelRule(_Rule):
    """Declare a site's response level from its case-type alerts against a monthly control number."""

    type: Literal["response_level"] = "response_level"
    control: dict[str, int] = Field(default_factory=dict, description="Monthly control number per site id")
    default_control: int = Field(default=10, ge=1, description="Control number of sites not listed")
    rise: float = Field(default=0.10, ge=0, description="Week-on-week rise that, with a third of it, declares 2")
    level1_types: list[str] = Field(
        default_factory=lambda: ["robbery"], description="Alert types that declare level 1 at once"
    )
    hold_days: int = Field(default=7, ge=1, description="Days a level 1 declared by a serious event holds")


Rule = Annotated[
    EventRule
    | DeviceCountRule
    | HotlistRule
    | RepeatRule
    | SurgeRule
    | GeofenceRule
    | HeldOpenRule
    | OfflineRule
    | ResponseLevelRule,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- dispatch and access


class DispatchConfig(_Model):
    """The 1-3-5 response target: tier deadlines, who is sent for which severity, arrival and escalation."""

    tier_deadlines_s: list[int] = Field(
        default_factory=lambda: [60, 180, 300],
        min_length=3,
        max_length=3,
        description="Deadlines of tiers 1, 2, 3 from the alert's creation, seconds (1-3-5 minutes)",
    )
    severity_tiers: dict[Severity, list[Literal[1, 2, 3]]] = Field(
        default_factory=lambda: {"critical": [1, 2, 3], "major": [1, 2], "minor": [3], "info": []},
        description="Tiers requested per severity, one unit each; minor sends the nearest unit only",
    )
    speeds_kmh: dict[Literal["foot", "ebike", "car"], float] = Field(
        default_factory=lambda: {"foot": 5.0, "ebike": 18.0, "car": 30.0},
        description="Travel speed by unit kind when a unit sets none",
    )
    route_factor: float = Field(
        default=1.3, ge=1, le=3, description="Streets are longer than a straight line: distance times this"
    )
    on_scene_radius_m: float = Field(default=50, gt=0, description="A unit this close to the alert is on scene")
    position_max_age_s: int = Field(
        default=300, gt=0, description="A GPS fix older than this does not count for arrival or ETA"
    )
    escalation_grace_s: int = Field(
        default=30, ge=0, description="An escalated unit not on scene by its ETA plus this escalates again"
    )
    max_escalations: int = Field(
        default=3, ge=0, description="Escalations per tier before the console is told none is left"
    )
    unit_topic: str = Field(
        default="watchpost/units/{unit}/assignments", description="Where a unit's assignments are published"
    )
    unit_position_topic: str = Field(
        default="watchpost/units/{unit}/position",
        description='Where patrol terminals publish their position: {"lat", "lon", "time"?}',
    )
    unit_status_topic: str = Field(
        default="watchpost/units/{unit}/status",
        description='Where patrol terminals publish their status: {"status": "available" | "off_duty"}',
    )
    tick_s: float = Field(default=0.25, gt=0, le=5, description="How often deadlines and timers are checked")


class ApiLimits(_Model):
    """What one client may ask of an API process (each replica counts for itself)."""

    max_body_bytes: int = Field(default=262_144, ge=1024, description="Larger request bodies are refused (413)")
    requests_per_s: float = Field(default=20.0, gt=0, description="Sustained requests per credential (or address)")
    burst: int = Field(default=60, ge=1, description="Requests a credential may make at once before being slowed")
    sign_ins_per_minute: int = Field(
        default=10, ge=1, description="Sign-in attempts per address and user name, against password guessing"
    )


class MapConfig(_Model):
    """The console's map: drawn from the configured coordinates, over map tiles only when a tile server is set."""

    tile_url: str | None = Field(
        default=None,
        description="XYZ tile URL template with {z}, {x} and {y} (a tile server the console can reach, e.g. one"
        " inside the command centre's network); unset: no tiles, the map is drawn offline from the coordinates",
    )
    attribution: str = Field(default="", description="Credit line shown under the tiles")
    max_zoom: int = Field(default=19, ge=1, le=22, description="Highest zoom level the tile server has")

    @field_validator("tile_url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and not all(part in value for part in ("{z}", "{x}", "{y}")):
            raise ValueError("tile_url must contain {z}, {x} and {y}, e.g. http://tiles.local/{z}/{x}/{y}.png")
        return value


Role = Literal["operator", "patrol", "supervisor", "admin", "auditor"]


class UserConfig(_Model):
    """A person who signs in (console or patrol view)."""

    username: str = Field(pattern=_ID, description="Sign-in name")
    name: str = Field(default="", description="Display name")
    role: Role = Field(description="What the user may do")
    unit: str | None = Field(default=None, description="The unit a patrol user is (required for patrol)")
    password_hash: str = Field(description="scrypt hash from `watchpost hash-password`")


class ApiKeyConfig(_Model):
    """A machine credential (patrol terminal, integration)."""

    name: str = Field(pattern=_ID, description="Who holds the key")
    role: Role = Field(description="What the key may do")
    unit: str | None = Field(default=None, description="The unit a patrol key belongs to")
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex (never the key)")


class AccessConfig(_Model):
    """Credentials: users who sign in for a token, and API keys."""

    users: list[UserConfig] = Field(default_factory=list, description="People")
    api_keys: list[ApiKeyConfig] = Field(default_factory=list, description="Machine keys")
    token_ttl_s: int = Field(default=12 * 3600, ge=60, description="Lifetime of a sign-in token (one shift)")


class PrivacyConfig(_Model):
    """How long personal data stays readable."""

    plate_readable_days: int = Field(
        default=7, ge=1, description="Plates that hit no hotlist are replaced by a keyed hash after this many days"
    )
    key_period: Literal["day", "week", "month"] = Field(
        default="month", description="Each period's plates are hashed with a key of their own, destroyed after"
    )
    face_capture_retention_days: int = Field(
        default=30, ge=1, description="Face-capture events (counts and image references only) are deleted after this"
    )


class WatchpostConfig(_Model):
    """The whole configuration."""

    timezone: str = Field(default="Asia/Shanghai", description="Zone for device times that carry none")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="MQTT ingest")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Retention")
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="Plates and face captures")
    sites: list[SiteConfig] = Field(default_factory=list, description="Communities and units")
    devices: list[DeviceConfig] = Field(default_factory=list, description="Registered devices")
    units: list[UnitConfig] = Field(default_factory=list, description="Patrol units and fixed posts")
    hotlists: Hotlists = Field(default_factory=Hotlists, description="Watch lists")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert catalogue and deduplication")
    rules: list[Rule] = Field(default_factory=list, description="Rule detectors over events")
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig, description="1-3-5 dispatch")
    access: AccessConfig = Field(default_factory=AccessConfig, description="Who may use the API")
    map: MapConfig = Field(default_factory=MapConfig, description="The console's map")
    api: ApiLimits = Field(default_factory=ApiLimits, description="Request size and rate limits")

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        _check_zone(value)
        return value

    @model_validator(mode="after")
    def _cross_check(self) -> WatchpostConfig:
        site_ids = _unique("sites", [s.id for s in self.sites])
        _unique("devices", [d.id for d in self.devices])
        _unique("units", [u.id for u in self.units])
        for i, device in enumerate(self.devices):
            if device.site not in site_ids:
                raise _located(("devices", i, "site"), f"unknown site {device.site!r}; known: {sorted(site_ids)}")
        device_ids = {d.id for d in self.devices}
        for i, unit in enumerate(self.units):
            if unit.site is not None and unit.site not in site_ids:
                raise _located(("units", i, "site"), f"unknown site {unit.site!r}")
            if unit.tracker is not None and unit.tracker not in device_ids:
                raise _located(("units", i, "tracker"), f"unknown device {unit.tracker!r}")
        owner: dict[str, str] = {}
        for i, device in enumerate(self.devices):
            for alias in device.aliases:
                key = alias.lower()
                if key in owner and owner[key] != device.id:
                    raise _located(
                        ("devices", i, "aliases"), f"alias {alias!r} already belongs to device {owner[key]!r}"
                    )
                owner[key] = device.id
        self._check_rules(site_ids, device_ids)
        if self.storage.compress_after_days <= self.privacy.plate_readable_days:
            raise _located(
                ("storage", "compress_after_days"),
                f"must exceed privacy.plate_readable_days ({self.privacy.plate_readable_days}): plates are"
                " pseudonymised in place, which compressed chunks make slow",
            )
        self._check_cameras()
        unit_ids = {u.id for u in self.units}
        for section in ("users", "api_keys"):
            holders = getattr(self.access, section)
            if section == "users":
                _unique("access.users", [h.username for h in holders])
            for i, holder in enumerate(holders):
                if holder.role == "patrol" and holder.unit is None:
                    raise _located(("access", section, i, "unit"), "a patrol credential must name its unit")
                if holder.unit is not None and holder.unit not in unit_ids:
                    raise _located(("access", section, i, "unit"), f"unknown unit {holder.unit!r}")
        return self

    def _check_cameras(self) -> None:
        for i, site in enumerate(self.sites):
            for j, zone in enumerate(site.zones):
                if zone.gathering is not None:
                    raise _located(("sites", i, "zones", j, "gathering"), "gathering rules belong to camera zones")
        topics: dict[str, str] = {}
        for i, device in enumerate(self.devices):
            where = ("devices", i)
            _unique(f"devices.{i}.zones", [z.id for z in device.zones])
            crowd = device.crowd
            if crowd is not None and device.kind != "camera":
                raise _located((*where, "crowd"), f"only cameras count people; this device is a {device.kind}")
            for j, zone in enumerate(device.zones):
                g = zone.gathering
                if g is None:
                    continue
                if crowd is None:
                    raise _located(
                        (*where, "zones", j, "gathering"), "a gathering rule needs the camera's crowd source (crowd:)"
                    )
            if crowd is not None and crowd.ground is not None:
                try:
                    plane = crowd.ground_plane
                except GroundError as exc:
                    raise _located((*where, "crowd", "ground"), str(exc)) from None
                for j, zone in enumerate(device.zones):
                    try:
                        assert plane is not None
                        plane.to_ground(zone.polygon)
                    except GroundError as exc:
                        raise _located((*where, "zones", j, "polygon"), f"zone {zone.id!r}: {exc}") from None
            for j, zone in enumerate(device.zones):
                g = zone.gathering
                if g is not None and g.density_per_m2 is not None and device.zone_area_m2(zone) is None:
                    raise _located(
                        (*where, "zones", j, "gathering", "density_per_m2"),
                        "a density needs the zone's area_m2, or the camera's ground points (crowd.ground)",
                    )
            if crowd is None:
                continue
            if crowd.alert not in self.alerts.types:
                raise _located(
                    (*where, "crowd", "alert"),
                    f"unknown alert type {crowd.alert!r}; known: {sorted(self.alerts.types)}",
                )
            if crowd.view_alert is not None and crowd.view_alert not in self.alerts.types:
                raise _located(
                    (*where, "crowd", "view_alert"),
                    f"unknown alert type {crowd.view_alert!r}; known: {sorted(self.alerts.types)} (or null for none)",
                )
            if crowd.from_mqtt:
                topic = crowd.topic_for(device.id)
                if topic in topics:
                    raise _located((*where, "crowd", "topic"), f"topic {topic!r} is also camera {topics[topic]!r}'s")
                topics[topic] = device.id
                for route in self.ingest.routes:
                    if route.match(topic)[0]:
                        raise _located(
                            (*where, "crowd", "topic"),
                            f"frame topic {topic!r} falls under the ingest route {route.topic!r}"
                            " (frames are not events: give the camera a topic of its own)",
                        )
            elif (
                crowd.source.split("://", 1)[0] not in ("rtsp", "rtsps", "http", "https", "file")
                and "://" in crowd.source
            ):
                raise _located((*where, "crowd", "source"), "expected an rtsp:// or http(s):// URL, a file or 'mqtt'")

    def _check_rules(self, site_ids: set[str], device_ids: set[str]) -> None:
        types = self.alerts.types
        _unique("rules", [r.name for r in self.rules])
        for i, rule in enumerate(self.rules):
            if rule.alert not in types:
                raise _located(("rules", i, "alert"), f"unknown alert type {rule.alert!r}; known: {sorted(types)}")
            if isinstance(rule, EventRule | DeviceCountRule):
                for name in rule.devices:
                    if name not in device_ids:
                        raise _located(("rules", i, "devices"), f"unknown device {name!r}")
            if isinstance(rule, GeofenceRule):
                for j, fence in enumerate(rule.fences):
                    where = ("rules", i, "fences", j)
                    if fence.device not in device_ids:
                        raise _located((*where, "device"), f"unknown device {fence.device!r}")
                    if fence.zone is not None:
                        site = self.site_index.get(fence.site or self.device_index[fence.device].site)
                        if site is None or fence.zone not in {z.id for z in site.zones}:
                            raise _located((*where, "zone"), f"no zone {fence.zone!r} on site {fence.site!r}")
            if isinstance(rule, ResponseLevelRule):
                for site in rule.control:
                    if site not in site_ids:
                        raise _located(("rules", i, "control"), f"unknown site {site!r}")
                for name in rule.level1_types:
                    if name not in types:
                        raise _located(("rules", i, "level1_types"), f"unknown alert type {name!r}")

    @cached_property
    def unit_index(self) -> dict[str, UnitConfig]:
        """Units by id."""
        return {u.id: u for u in self.units}

    @cached_property
    def device_index(self) -> dict[str, DeviceConfig]:
        """Devices by id."""
        return {d.id: d for d in self.devices}

    @cached_property
    def alias_index(self) -> dict[str, DeviceConfig]:
        """Devices by every identity they may carry in a payload (ids too), lower-cased."""
        index = {d.id.lower(): d for d in self.devices}
        for d in self.devices:
            index.update({a.lower(): d for a in d.aliases})
        return index

    @cached_property
    def site_index(self) -> dict[str, SiteConfig]:
        """Sites by id."""
        return {s.id: s for s in self.sites}

    def zone_of(self, device: DeviceConfig | None) -> ZoneInfo:
        """The time zone a device's naive times are read in."""
        name = self.timezone
        if device is not None:
            site = self.site_index.get(device.site)
            name = device.timezone or (site.timezone if site else None) or self.timezone
        return _zoneinfo(name)


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` are 'file:line: path: message' lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class ReloadError(ValueError):
    """A new configuration that a running service cannot take without a restart; the message says what changed."""


def zone_changes(old: WatchpostConfig, new: WatchpostConfig) -> list[str]:
    """Ids of the cameras whose zones (or their gathering rules) differ from ``old`` to ``new``.

    A running service reloads only these: operators redraw zones while the cameras keep counting.
    Any other difference (a section, a device added, removed or changed apart from its zones)
    needs a restart: :class:`ReloadError` names each.
    """
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    others: list[str] = [
        f"{key} changed"
        for key in sorted(before.keys() | after.keys())
        if key != "devices" and before.get(key) != after.get(key)
    ]
    old_devices = {d["id"]: d for d in before["devices"]}
    new_devices = {d["id"]: d for d in after["devices"]}
    changed: list[str] = []
    for device_id in sorted(old_devices.keys() - new_devices.keys()):
        others.append(f"device {device_id} removed")
    for device_id in sorted(new_devices.keys() - old_devices.keys()):
        others.append(f"device {device_id} added")
    for device_id in sorted(old_devices.keys() & new_devices.keys()):
        a, b = dict(old_devices[device_id]), dict(new_devices[device_id])
        zones_a, zones_b = a.pop("zones"), b.pop("zones")
        if a != b:
            fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            others.append(f"device {device_id} changed ({', '.join(fields)})")
        elif zones_a != zones_b:
            changed.append(device_id)
    if others:
        raise ReloadError(
            "only camera zones and their gathering rules are reloaded; restart to apply: " + "; ".join(others)
        )
    return changed


@dataclass(frozen=True, slots=True)
class _Where:
    file: str
    line: int


class _LocatedError(ValueError):
    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def load_config(path: str | Path) -> WatchpostConfig:
    """Read, merge and validate the configuration at ``path`` (a YAML file or a folder of them)."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise ConfigError([f"{root}: no .yaml files in this folder"])
    elif root.is_file():
        files = [root]
    else:
        raise ConfigError([f"{root}: no such file or folder"])

    merged: dict[str, Any] = {}
    where: dict[tuple[Any, ...], _Where] = {}
    problems: list[str] = []
    for file in files:
        try:
            document, lines = _read_yaml(file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if document is None:
            continue
        if not isinstance(document, dict):
            problems.append(f"{file}:1: the top level must be a mapping of sections")
            continue
        for key, value in document.items():
            if key in merged:
                problems.append(f"{file}:{lines[(key,)].line}: section {key!r} is also defined in another file")
                continue
            merged[key] = value
        where.update(lines)
    if problems:
        raise ConfigError(problems)

    try:
        return WatchpostConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError([_describe(err, where, files[0]) for err in exc.errors()]) from None


def _read_yaml(file: Path) -> tuple[Any, dict[tuple[Any, ...], _Where]]:
    try:
        text = file.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8 text ({exc.reason})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}:{line}: YAML syntax: {problem}"]) from None
    if node is None:
        return None, {}
    lines: dict[tuple[Any, ...], _Where] = {}
    for loc, child in _walk(node, ()):
        lines[loc] = _Where(str(file), child.start_mark.line + 1)
    return yaml.safe_load(text), lines


def _walk(node: yaml.Node, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], yaml.Node]]:
    yield loc, node
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                yield (*loc, key.value), key
                yield from _walk(value, (*loc, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _walk(item, (*loc, i))


def _describe(err: Any, where: dict[tuple[Any, ...], _Where], default: Path) -> str:
    loc = tuple(err["loc"])
    message = err["msg"]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _LocatedError):
        loc, message = ctx_error.loc, str(ctx_error)
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        message = "unknown field (a typo?)"
    for n in range(len(loc), -1, -1):
        found = where.get(loc[:n])
        if found is not None:
            place = f"{found.file}:{found.line}"
            break
    else:
        place = f"{default}:1"
    path = ".".join(str(p) for p in loc) or "(top level)"
    return f"{place}: {path}: {message}"


def _unique(section: str, ids: list[str]) -> set[str]:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            raise _located((section, i, "id"), f"duplicate id {ident!r}")
        seen.add(ident)
    return seen


def _located(loc: tuple[Any, ...], message: str) -> _LocatedError:
    return _LocatedError(loc, message)


def _check_zone(value: str | None) -> str | None:
    if value is not None:
        _zoneinfo(value)
    return value


def _zoneinfo(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from None
