"""What the API accepts and answers: pydantic request bodies (unknown fields refused) and response models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from watchpost.model import Outcome

__all__ = [
    "AlertDetailOut",
    "AlertOut",
    "AlertTypeOut",
    "AssignBody",
    "AssignmentOut",
    "CandidateOut",
    "ClearBody",
    "ComplianceRow",
    "ConsoleSettingsOut",
    "DeviceHealthRow",
    "ErrorOut",
    "HotlistEntryBody",
    "HotlistEntryOut",
    "HotlistEntryPatch",
    "CameraOut",
    "CameraPictureOut",
    "CameraStatusOut",
    "CameraZoneOut",
    "ManualAlertBody",
    "MeOut",
    "NoteBody",
    "ObservationPoint",
    "ObservationSeries",
    "ObservationsOut",
    "PositionBody",
    "ReassignBody",
    "ResolveBody",
    "SiteOut",
    "StatusBody",
    "TokenOut",
    "UnitOut",
    "AlertCountRow",
    "ZeroCaseRow",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Why a request was refused."""

    detail: str = Field(description="What is wrong, for a person to read")
    errors: list[dict[str, Any]] | None = Field(default=None, description="Each invalid field (422 only)")


# --- access -------------------------------------------------------------------------------------


class TokenOut(BaseModel):
    """A sign-in token: send it as `Authorization: Bearer <access_token>`."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the token is valid")
    role: str
    unit: str | None = Field(description="The unit a patrol user is")


class MeOut(BaseModel):
    """The caller as the API sees them."""

    name: str
    role: str
    unit: str | None
    may: list[str] = Field(description="What the role may do")


# --- alerts -------------------------------------------------------------------------------------


class TierOut(BaseModel):
    """One 1-3-5 tier clock of an alert."""

    tier: int = Field(description="1 (60 s), 2 (180 s) or 3 (300 s)")
    needed: int = Field(description="Units this tier needs on scene")
    deadline_at: datetime
    state: str = Field(description="pending, met, missed or void (the alert ended before anyone was needed)")
    met_at: datetime | None
    missed_at: datetime | None
    arrived_at: datetime | None = Field(description="When help arrived, also late after a miss")
    escalations: int
    next_check_at: datetime | None


class AlertAssignmentOut(BaseModel):
    """A unit sent to the alert."""

    assignment_id: int
    unit_id: str
    unit_name: str
    unit_kind: str
    tier: int | None
    reason: str = Field(description="dispatch, escalation or manual")
    state: str = Field(description="assigned, accepted, on_scene, cleared or cancelled")
    eta_s: float | None
    distance_m: float | None
    assigned_at: datetime
    assigned_by: str
    accepted_at: datetime | None
    on_scene_at: datetime | None
    on_scene_by: str | None = Field(description="api or gps")
    cleared_at: datetime | None
    outcome: str | None
    note: str | None


class AlertOut(BaseModel):
    """An alert as the console shows it: its lifecycle, tier clocks and assignments."""

    alert_id: int
    type: str
    severity: str = Field(description="critical, major, minor or info")
    state: str = Field(description="new, dispatched, acknowledged, on_scene, resolved or cancelled")
    rule: str = Field(description="The rule that raised it, or 'manual'")
    title: str
    site_id: str | None
    zone: str | None
    device_id: str | None
    lat: float | None
    lon: float | None
    count: int = Field(description="Sightings folded into this alert")
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    created_by: str
    updated_at: datetime
    dispatched_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    on_scene_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None = Field(description="handled, false_alarm, duplicate or no_action once resolved")
    resolution_note: str | None
    escalations: int
    detail: dict[str, Any] = Field(description="What the rule found (match quality, counts, the reporter's note...)")
    tiers: list[TierOut]
    assignments: list[AlertAssignmentOut] = Field(description="For a patrol caller: its own only")


class TransitionOut(BaseModel):
    """One step of an alert's timeline."""

    transition_id: int
    at: datetime
    action: str
    from_state: str | None
    to_state: str
    actor: str
    detail: dict[str, Any]


class SourceEventOut(BaseModel):
    """An event the alert was raised from."""

    event_id: str
    occurred_at: datetime
    received_at: datetime
    device_id: str
    site_id: str
    kind: str
    code: str
    source_format: str
    plate: str | None
    confidence: float | None
    zone: str | None
    count: int | None
    state: str | None
    attributes: dict[str, Any]


class AlertDetailOut(BaseModel):
    """An alert with its timeline and the events it was raised from."""

    alert: AlertOut
    timeline: list[TransitionOut]
    sources: list[SourceEventOut] = Field(description="Source events still within event retention")


class CandidateOut(BaseModel):
    """A free unit that could be sent to an alert, with how long it needs."""

    unit_id: str
    name: str
    kind: str
    site_id: str | None
    lat: float
    lon: float
    eta_s: float | None = Field(description="None: the alert has no location")
    distance_m: float | None
    in_time_for: list[int] = Field(description="Pending tiers whose deadline the unit can still make")


class ManualAlertBody(_Body):
    """An alert reported by a person (a phoned-in theft, a fight seen on a camera wall)."""

    type: str = Field(description="An alert type of the catalogue (GET /alert-types), e.g. theft")
    site_id: str = Field(description="Site it happened at")
    severity: Literal["critical", "major", "minor", "info"] | None = Field(
        default=None, description="Default: the type's severity"
    )
    title: str | None = Field(default=None, max_length=200, description="Default: the type's title")
    zone: str | None = Field(default=None, description="A zone of the site")
    lat: float | None = Field(default=None, ge=-90, le=90, description="Where; default: the site's centre")
    lon: float | None = Field(default=None, ge=-180, le=180)
    occurred_at: datetime | None = Field(default=None, description="When it happened (with a zone); default: now")
    note: str = Field(default="", max_length=2000, description="What was reported")


class NoteBody(_Body):
    """A note for the timeline."""

    note: str = Field(default="", max_length=2000)


class AssignBody(_Body):
    """Send a particular unit."""

    unit_id: str
    tier: Literal[1, 2, 3] | None = Field(default=None, description="The tier the unit fills, if any")


class ReassignBody(_Body):
    """Hand an assignment to another unit."""

    unit_id: str


class ResolveBody(_Body):
    """Close an alert with an outcome."""

    outcome: Outcome
    note: str = Field(default="", max_length=2000)


class ClearBody(_Body):
    """A unit is done with its assignment."""

    outcome: Outcome
    note: str = Field(default="", max_length=2000)


# --- assignments and units ----------------------------------------------------------------------


class AssignmentOut(BaseModel):
    """A unit's assignment with the alert it is for."""

    assignment_id: int
    alert_id: int
    unit_id: str
    tier: int | None
    reason: str
    state: str = Field(description="assigned, accepted, on_scene, cleared or cancelled")
    eta_s: float | None
    distance_m: float | None
    assigned_at: datetime
    assigned_by: str
    accepted_at: datetime | None
    on_scene_at: datetime | None
    on_scene_by: str | None
    cleared_at: datetime | None
    outcome: str | None
    note: str | None
    alert_type: str
    severity: str
    title: str
    alert_state: str
    site_id: str | None
    zone: str | None
    lat: float | None
    lon: float | None
    alert_created_at: datetime
    deadline_at: datetime | None = Field(description="The deadline of the tier the unit fills")


class UnitOut(BaseModel):
    """A patrol unit or fixed post."""

    unit_id: str
    name: str
    kind: str = Field(description="foot, ebike, car or post")
    site_id: str | None
    speed_kmh: float
    tracker: str | None
    status: str = Field(description="available, dispatched, on_scene or off_duty")
    status_at: datetime | None
    status_by: str | None
    configured: bool = Field(description="False once the unit left the configuration")
    lat: float
    lon: float
    fix_at: datetime | None = Field(description="Time of the last position fix; None: home position")
    fix_source: str = Field(description="api, tracker:<device>, mqtt or home")
    active_assignment_id: int | None


class PositionBody(_Body):
    """Where a unit is."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    time: datetime | None = Field(default=None, description="When the fix was taken (with a zone); default: now")


class StatusBody(_Body):
    """A unit going on or off duty (dispatch sets dispatched and on_scene itself)."""

    status: Literal["available", "off_duty"]


# --- hotlists -----------------------------------------------------------------------------------

HotlistReason = Literal["stolen", "wanted", "expired_registration", "suspect", "other"]


class HotlistEntryBody(_Body):
    """A plate or RFID tag to watch for."""

    value: str = Field(min_length=1, max_length=64, description="Plate (浙A12345) or tag (hex); normalised")
    reason: HotlistReason
    owner: str = Field(default="", max_length=200, description="Who asked for it")
    note: str = Field(default="", max_length=2000)
    expires: date | None = Field(default=None, description="Last day the entry applies")


class HotlistEntryPatch(_Body):
    """Fields of an entry to change (the value itself cannot change: delete and add)."""

    reason: HotlistReason | None = None
    owner: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)
    expires: date | None = None


class HotlistEntryOut(BaseModel):
    """A hotlist entry."""

    entry_id: int
    list: str = Field(description="plates or rfid_tags")
    value: str
    reason: str
    owner: str
    note: str
    expires: date | None
    source: str = Field(description="config or api")
    created_at: datetime
    created_by: str
    updated_at: datetime


# --- sites and catalogue ------------------------------------------------------------------------


class ZoneOut(BaseModel):
    """A polygon of the site map."""

    id: str
    name: str
    polygon: list[tuple[float, float]] = Field(description="[lat, lon] vertices")


class ResponseLevelOut(BaseModel):
    """A site's current response level (0: normal, 2: raised, 1: highest)."""

    level: int
    since: datetime | None
    until: datetime | None
    reason: str | None


class SiteOut(BaseModel):
    """A configured site with its zones and current response level."""

    id: str
    name: str
    kind: str
    lat: float
    lon: float
    timezone: str
    zones: list[ZoneOut]
    devices: int = Field(description="Configured devices at the site")
    units: int = Field(description="Units based at the site")
    response_level: ResponseLevelOut


class AlertTypeOut(BaseModel):
    """One type of the alert catalogue."""

    type: str
    severity: str
    title: str
    title_en: str
    case: str | None = Field(description="Case category (theft, robbery...) for the zero-case board, if any")


# --- statistics ---------------------------------------------------------------------------------


class ComplianceRow(BaseModel):
    """1-3-5 compliance of one tier in one period (and site) and severity."""

    period: date = Field(description="First local day of the period")
    site_id: str | None
    severity: str
    tier: int
    deadline_s: int | None
    requested: int
    met: int
    missed: int
    pending: int
    void: int
    share_met: float | None = Field(description="met / (met + missed); None when nothing is decided")
    median_arrival_s: float | None
    max_arrival_s: float | None


class AlertCountRow(BaseModel):
    """Alerts of one type at one site in one period."""

    period: date
    site_id: str | None
    type: str
    alerts: int
    sightings: int
    false_alarms: int


class ZeroCaseRow(BaseModel):
    """A site on the zero-case board."""

    site_id: str
    name: str
    kind: str
    last_case_at: datetime | None
    last_case_type: str | None
    cases_in_period: int
    days_since_case: int | None
    response_level: int
    zero_case: bool = Field(description="No case-type alert in the period")


class CameraStatusOut(BaseModel):
    """A counting camera's health, as its crowd worker last reported it."""

    worker: str = Field(description="The crowd worker counting on it")
    state: str = Field(
        description="ok, waiting (no frame yet), silent (MQTT frames stopped), reconnecting, dead (the stream gave"
        " up: retried later), unavailable (no calibrated model: no counts) or error (the model cannot be used)"
    )
    reason: str | None = Field(description="Why it is not ok")
    source: str = Field(description="Where its frames come from (no password)")
    last_frame_at: datetime | None
    frames: int = Field(description="Frames counted since the worker started")
    errors: int = Field(description="Frames refused (corrupt, too large, not JPEG) or failed")
    reconnects: int
    people: float | None = Field(description="People in the latest frame")
    last_error: str | None = Field(description="The latest refused frame, dead stream or failure")
    last_error_at: datetime | None
    updated_at: datetime = Field(description="When the worker last reported (every few seconds while it runs)")


class CameraPictureOut(BaseModel):
    """The camera's picture of its empty scene, served by GET /cameras/{device}/picture."""

    taken_at: datetime = Field(description="When the crowd worker took it from the counting model's background")
    width: int = Field(description="The JPEG's width (the camera's counting size)")
    height: int
    frame_width: int = Field(description="Width of the picture the zones are drawn in: zone pixels are of this size")
    frame_height: int


class CameraZoneOut(BaseModel):
    """A configured zone of a counting camera, with its latest count."""

    id: str
    name: str
    polygon: list[tuple[float, float]] = Field(description="Vertices [x, y] in the camera's pixels")
    area_m2: float | None = Field(description="Ground area in square metres: configured, else from the ground plane")
    area_from: Literal["configured", "ground"] | None = Field(
        description="Where area_m2 comes from: the zone's area_m2, or the camera's ground points (null: no area)"
    )
    gathering: dict[str, Any] | None = Field(description="The zone's gathering rule as configured (null: none)")
    people: float | None = Field(description="People counted in the zone in the latest sample (last 5 minutes)")
    counted_at: datetime | None


class CameraOut(BaseModel):
    """A counting camera: its zones, their latest counts, its health and whether its picture is there."""

    device_id: str
    name: str
    site_id: str
    sample_fps: float
    has_model: bool = Field(description="A calibrated model is configured (no model: no counts)")
    frame_size: tuple[int, int] | None = Field(
        description="Size of the picture its zones are drawn in: configured, else the picture's, else unknown"
    )
    zones: list[CameraZoneOut]
    ground: list[list[float]] | None = Field(
        description="3 x 3 homography from the picture's pixels (as the zones) to metres on the ground, from the"
        " camera's ground points (null: none configured)"
    )
    people: float | None = Field(description="People in the whole frame in the latest sample (last 5 minutes)")
    picture: CameraPictureOut | None = Field(description="Null until a crowd worker has counted on the camera")
    camera: CameraStatusOut | None = Field(description="Its health, when a crowd worker reported it")


class ObservationPoint(BaseModel):
    """People counted in a zone during one bucket."""

    at: datetime = Field(description="Start of the bucket")
    mean: float
    min: float
    max: float
    samples: int = Field(description="Frames counted in the bucket")


class ObservationSeries(BaseModel):
    """One zone's counts over time (`_total`: the whole frame)."""

    zone: str
    zone_name: str
    points: list[ObservationPoint]


class ObservationsOut(BaseModel):
    """A camera's zone counts, bucketed for a chart."""

    device_id: str
    site_id: str
    since: datetime
    until: datetime
    bucket_s: int = Field(description="Length of each bucket, seconds")
    series: list[ObservationSeries]
    camera: CameraStatusOut | None = Field(description="The camera's health, when a crowd worker reported it")


class DeviceHealthRow(BaseModel):
    """A configured device's health."""

    device_id: str
    site_id: str
    kind: str
    name: str
    lat: float | None
    lon: float | None
    heartbeat_s: int | None
    last_received: datetime | None
    silent_s: float | None
    open_alerts: int
    status: str = Field(description="ok, silent (past its heartbeat) or never_seen")
    camera: CameraStatusOut | None = Field(
        default=None, description="For a counting camera: its capture and counting health"
    )


# --- console ------------------------------------------------------------------------------------


class MapSettingsOut(BaseModel):
    """How the console draws its map."""

    tile_url: str | None = Field(description="XYZ tile template; None: drawn offline from the coordinates")
    attribution: str
    max_zoom: int


class ConsoleSettingsOut(BaseModel):
    """What the console needs to know of the deployment besides the API's data."""

    timezone: str = Field(description="Local time zone of the command centre")
    tier_deadlines_s: list[int] = Field(description="Deadlines of tiers 1, 2, 3 (1-3-5 minutes)")
    severity_tiers: dict[str, list[int]] = Field(description="Tiers requested per severity")
    on_scene_radius_m: float
    outcomes: list[str] = Field(description="Outcomes an alert or assignment may close with")
    map: MapSettingsOut


# --- privacy ------------------------------------------------------------------------------------


class AuditEntryOut(BaseModel):
    """One look at personal data."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    query: dict[str, Any]
    purpose: str
    result_count: int
    prev_hash: str = Field(description="SHA-256 of the previous entry (hex)")
    hash: str = Field(description="SHA-256 of the previous hash and this entry's content (hex)")


class AuditChainOut(BaseModel):
    """Whether the chain of hashes is intact from the first entry to the last."""

    ok: bool
    rows: int
    first_broken_id: int | None
    reason: str


class AuditOut(BaseModel):
    """Audit entries, newest first, and the chain's state."""

    entries: list[AuditEntryOut]
    chain: AuditChainOut


# --- events -------------------------------------------------------------------------------------


class EventOut(BaseModel):
    """A stored event."""

    event_id: str
    occurred_at: datetime
    received_at: datetime
    device_time: datetime | None
    clock: str = Field(description="ok, no_time, zero_date, ahead or behind: how far the device clock is trusted")
    device_id: str
    site_id: str
    kind: str
    code: str
    source_format: str
    topic: str
    ref: str | None
    plate: str | None
    confidence: float | None
    repeat: bool
    zone: str | None
    count: int | None
    state: str | None
    attributes: dict[str, Any]
