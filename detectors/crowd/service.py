"""The crowd worker: frames -> people per zone -> observations, gathering alerts and camera health.

One thread per counting camera (``crowd:`` in its device configuration) captures frames at the
camera's sampling rate (a stream through :mod:`detectors.crowd.capture`, or JPEG frames
published over MQTT, received through :mod:`ingest.mqtt`), counts the people in each zone
with the camera's calibrated model and runs each zone's gathering rule. One recorder thread
owns the database connection and writes what the cameras produce:

- the zone counts as observations (one row per zone per sample, and the whole frame as zone
  ``_total``);
- a gathering alarm as a ``crowd_gathering`` alert (count, trend, reason) raised through
  :func:`watchpost.store.raise_alert` (so the dispatcher sends units and the console hears of
  it), with the annotated snapshot stored in the same transaction;
- a gathering that ends as a note on the open alert's timeline (never a silent resolve);
- a camera whose picture stops showing the scene it was calibrated on (turned, covered, fogged,
  too dark, infrared at night) has its counts held (no observations, no gathering judged) and
  raises its ``view_alert`` (``device_fault``) with a snapshot, noted when the view is back;
- each camera's health, every few seconds;
- each camera's picture of its empty scene (its model's background, as it adapts) at start
  and every few minutes, for drawing zones on in the console.

Frames are never stored, except the snapshot of an alert; nothing about a person but the
count is kept. Bad frames, dead streams and database outages are reported and retried; they
never stop the worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from detectors.crowd.camera import CameraModel, ModelFileError
from detectors.crowd.capture import (
    CameraHealth,
    Frame,
    FrameInbox,
    HealthState,
    SnapshotSource,
    StreamSource,
    redact_url,
)
from detectors.crowd.counting import Counter, FrameCount, ViewCheck, Zone
from detectors.crowd.features import shrink
from detectors.crowd.gathering import GatheringAlarm, GatheringCleared, GatheringDetector, GatheringRule
from detectors.crowd.snapshot import draw_snapshot, encode_jpeg
from detectors.rules import draft_for
from ingest.mqtt import BrokerAddress, Subscriber
from watchpost import store
from watchpost.config import (
    CrowdCameraConfig,
    DeviceConfig,
    GatheringConfig,
    NightWindow,
    WatchpostConfig,
    zone_changes,
)
from watchpost.model import TOTAL_ZONE, AlertDraft, CameraPicture, CameraStatus, Observation, ReceivedMessage

__all__ = [
    "TOTAL_ZONE",
    "CrowdHealth",
    "CrowdWorker",
    "check_cameras",
    "counting_cameras",
    "gathering_rule",
    "synthetic_model",
]

log = logging.getLogger("watchpost.crowd")

_STATUS_EVERY_S = 5.0
_PICTURE_EVERY_S = 600.0  # the empty-scene picture follows the adapting background this often
_PICTURE_QUALITY = 85
_RETENTION_EVERY_S = 3600.0
_MAX_PENDING_OBSERVATIONS = 100_000  # while the database is away; the oldest go first beyond this
_OBSERVATION_BATCH = 5000
_VIEW_FRAMES = 5  # frames in a row that fail (or pass) the view check before the counts are held (or resumed)
_BEHIND_S = 5.0  # a stream read this far behind its own clock is reported: the worker does not keep up


# --- what the cameras hand the recorder --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RuleRef:
    """What :func:`detectors.rules.draft_for` needs of a rule: its name, alert type and severities."""

    name: str
    alert: str
    severity: str | None
    night: NightWindow | None


@dataclass(frozen=True, slots=True)
class _Gathered:
    """A zone's gathering started: raise (or fold into) its alert with the snapshot."""

    device_id: str
    zone: str
    zone_name: str
    rule: _RuleRef
    alarm: GatheringAlarm
    threshold: float | None
    snapshot: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class _Dispersed:
    """A zone's gathering ended: note it on the open alert."""

    device_id: str
    zone: str
    alert_type: str
    cleared: GatheringCleared
    peak: float


@dataclass(frozen=True, slots=True)
class _NoPicture:
    """The camera keeps no picture (``crowd.picture: false``): forget any stored one."""

    device_id: str


@dataclass(frozen=True, slots=True)
class _ViewLost:
    """The picture stopped showing the calibrated scene: the counts are held; raise the camera's fault."""

    device_id: str
    alert_type: str | None
    view: ViewCheck  # its problem says why
    at: float
    snapshot: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class _ViewBack:
    """The calibrated scene is back: counting resumed; note it on the fault alert."""

    device_id: str
    alert_type: str | None
    at: float
    held_s: float


_Item = _Gathered | _Dispersed | CameraPicture | _NoPicture | _ViewLost | _ViewBack  # what a camera hands the recorder


@dataclass(frozen=True, slots=True)
class CrowdHealth:
    """What the API reports about a crowd worker."""

    name: str
    database_ok: bool
    detail: str
    broker: str  # connected, reconnecting, refused... or none (no MQTT camera)
    cameras: tuple[CameraStatus, ...]
    dropped_observations: int

    @property
    def healthy(self) -> bool:
        """The worker can do its job: database reachable, broker connected when it needs one."""
        return self.database_ok and self.broker in ("connected", "none")


# --- configuration helpers ---------------------------------------------------------------------


def counting_cameras(config: WatchpostConfig, only: Sequence[str] | None = None) -> list[DeviceConfig]:
    """The cameras with an enabled crowd source (``only``: these ids; an unknown one is a ValueError)."""
    cams = [d for d in config.devices if d.crowd is not None and d.crowd.enabled]
    if only:
        known = {d.id for d in cams}
        missing = [c for c in only if c not in known]
        if missing:
            raise ValueError(f"not counting cameras: {missing}; configured: {sorted(known)}")
        cams = [d for d in cams if d.id in set(only)]
    return cams


def camera_cost(device: DeviceConfig) -> float:
    """A camera's share of a worker, roughly: decoding its stream (every frame, sampled or not) about as
    much as counting two samples a second (``watchpost bench crowd``, a 640x360 H.264 sub-stream at
    25 fps: 2.1 ms a frame decoded, 24.5 ms a sample counted; a 1080p main stream decodes at 6.5 ms,
    about five samples' worth); MQTT frames and still images are decoded only when counted."""
    assert device.crowd is not None
    streamed = not (device.crowd.from_mqtt or device.crowd.snapshot)
    return (2.0 if streamed else 0.0) + device.crowd.sample_fps


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_processes() -> int:
    """Worker processes for ``crowd run --processes auto``: one per two cores (a process's counting threads
    share one interpreter lock, which lets about two cores' worth of cameras through: ``watchpost bench
    crowd``)."""
    return max(1, usable_cores() // 2)


def partition_cameras(cameras: Sequence[DeviceConfig], processes: int) -> list[list[str]]:
    """Camera ids in at most ``processes`` groups of about equal cost (the costliest first, each to the
    group that costs least so far); every camera in exactly one group, no group empty."""
    groups: list[tuple[float, int, list[str]]] = [(0.0, i, []) for i in range(max(1, min(processes, len(cameras))))]
    for device in sorted(cameras, key=lambda d: (-camera_cost(d), d.id)):
        cost, i, ids = min(groups)
        ids.append(device.id)
        groups[i] = (cost + camera_cost(device), i, ids)
    return [sorted(ids) for _cost, _i, ids in groups if ids]


def zone_frame_size(crowd: CrowdCameraConfig, model: CameraModel) -> tuple[int, int]:
    """The size of the picture a camera's zones are drawn on: configured, else the one the model was calibrated from."""
    if crowd.frame_size:
        return crowd.frame_size
    source = model.fit.get("source_size") or (model.width, model.height)
    return int(source[0]), int(source[1])


def check_cameras(config: WatchpostConfig) -> tuple[list[str], list[str]]:
    """What ``watchpost check-config`` says of the counting cameras: (notes, problems).

    A problem is a model file that cannot be read (the camera would count nothing) or a zone
    corner outside the picture its zones are drawn on (drawn on a picture of another size).
    """
    notes: list[str] = []
    problems: list[str] = []
    for device in counting_cameras(config):
        crowd = device.crowd
        assert crowd is not None
        size: tuple[int, int] | None = crowd.frame_size
        if crowd.model is None:
            notes.append(f"camera {device.id}: no model: counts unavailable (watchpost crowd calibrate)")
        elif crowd.model == "synthetic":
            notes.append(f"camera {device.id}: the demo's synthetic model (calibrated at start)")
        else:
            try:
                model = CameraModel.load(Path(crowd.model))
                Counter(model, [])  # reads the density trees too: a damaged model fails here, not in the worker
            except (ModelFileError, OSError, ValueError, ImportError) as exc:
                problems.append(f"camera {device.id}: crowd.model: {exc}")
                continue
            if crowd.night_model is not None:
                try:
                    night = _load_model(crowd.night_model)
                    Counter(night, [])
                except (ModelFileError, OSError, ValueError, ImportError) as exc:
                    problems.append(f"camera {device.id}: crowd.night_model: {exc}")
                    continue
                notes.append(f"camera {device.id}: night model {crowd.night_model} ({night.fit.get('method', '?')})")
            size = zone_frame_size(crowd, model)
            notes.append(
                f"camera {device.id}: model {crowd.model} ({model.fit.get('method', '?')}, counting at"
                f" {model.width}x{model.height}, zones in {size[0]}x{size[1]} pixels)"
            )
        plane = crowd.ground_plane
        if plane is not None:
            areas = []
            for z in device.zones:
                ground = plane.area_m2(z.polygon)
                given = f"{z.area_m2:g} m² given, the ground gives {ground:.0f}" if z.area_m2 is not None else ""
                areas.append(f"{z.id} {given or f'{ground:.0f} m²'}")
            notes.append(
                f"camera {device.id}: ground plane from {len(crowd.ground or [])} points (worst off by"
                f" {plane.worst_miss_m:.2f} m): " + ("; ".join(areas) or "no zones")
            )
        if size is None:
            continue
        w, h = size
        for z in device.zones:
            outside = [(x, y) for x, y in z.polygon if not (0 <= x <= w and 0 <= y <= h)]
            if outside:
                x, y = outside[0]
                problems.append(
                    f"camera {device.id}: zone {z.id}: corner [{x:g}, {y:g}] is outside its {w}x{h} picture"
                    " (drawn on a picture of another size? set crowd.frame_size to that size)"
                )
    return notes, problems


def gathering_rule(g: GatheringConfig) -> GatheringRule:
    """The detector's rule from a zone's configuration."""
    return GatheringRule(
        threshold=g.threshold,
        release=g.release_threshold,
        dwell_s=g.dwell_s,
        release_s=g.release_s,
        cooldown_s=g.cooldown_s,
        smooth_s=g.smooth_s,
        growth_factor=g.growth_factor,
        growth_window_s=g.growth_window_s,
        growth_min_count=g.growth_min_count,
        density_per_m2=g.density_per_m2,
        release_density_per_m2=g.release_density_per_m2,
    )


_synthetic_lock = threading.Lock()
_synthetic: CameraModel | None = None


def synthetic_model() -> CameraModel:
    """The demo scene's model, calibrated from generated frames once per process (a few seconds)."""
    global _synthetic
    with _synthetic_lock:
        if _synthetic is None:
            from detectors.crowd.synthetic import demo_model

            _synthetic = demo_model()
        return _synthetic


def _load_model(name: str) -> CameraModel:
    if name == "synthetic":
        return synthetic_model()
    return CameraModel.load(Path(name))


# --- one camera --------------------------------------------------------------------------------


class _Camera:
    """Capture, count and judge gatherings for one camera, in a thread of its own."""

    def __init__(
        self, worker: CrowdWorker, device: DeviceConfig, model: CameraModel | None, night: CameraModel | None = None
    ) -> None:
        assert device.crowd is not None
        self.worker = worker
        self.device = device
        self.crowd = device.crowd
        self.source_shown = (
            f"mqtt:{self.crowd.topic_for(device.id)}" if self.crowd.from_mqtt else redact_url(self.crowd.source)
        )
        self._model = model
        self._night_model = night
        self._inbox: FrameInbox | None = None
        self._stream: StreamSource | SnapshotSource | None = None
        self._state = HealthState.WAITING.value
        self._reason: str | None = "starting"
        self._people: float | None = None
        self._errors = 0
        self._reconnects = 0
        self._frames = 0
        self._last_frame: float | None = None
        self._thread: threading.Thread | None = None
        self._peaks: dict[str, float] = {}
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._next_picture = 0.0
        self._held: str | None = None  # why the counts are held (the view is not the calibrated scene)
        self._held_since = 0.0
        self._view_bad = self._view_good = 0  # frames in a row failing / passing the view check
        self._behind = False  # reading the stream lags its clock by _BEHIND_S or more
        self._pending: DeviceConfig | None = None  # new zones from a reload, for the camera's own thread
        self._pending_lock = threading.Lock()
        self.counters: list[tuple[Counter, list[Zone], CameraModel]] = []  # day model first (see _setup)
        if self.crowd.from_mqtt:
            self._inbox = FrameInbox(
                self.source_shown,
                sample_fps=self.crowd.sample_fps,
                max_pixels=self.crowd.max_pixels,
                max_bytes=self.crowd.max_frame_bytes,
                silent_after_s=self.crowd.silent_after_s,
                on_error=lambda exc: self._error(f"frame refused: {exc}"),
                tz=worker.config.zone_of(device),  # a capture time without an offset is the camera's local time
                max_skew_s=worker.config.ingest.clock_tolerance_s,
            )

    # -- lifecycle --

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"crowd-{self.device.id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._inbox is not None:
            self._inbox.stop()
        if self._stream is not None:
            self._stream.stop()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def push(self, message: ReceivedMessage) -> None:
        """A frame arrived over MQTT (the transport's thread: only hand it over)."""
        if self._inbox is not None:
            self._inbox.push(message.payload, message.received_at.timestamp())

    # -- health --

    def status(self) -> CameraStatus:
        state, reason = self._state, self._reason
        frames, errors, reconnects, last = self._frames, self._errors, self._reconnects, self._last_frame
        source_health = self.source_health
        if source_health is not None and state not in ("unavailable", "error"):
            state, reason = source_health.state.value, source_health.reason
            errors += source_health.errors
            reconnects += source_health.reconnects
        behind = source_health.behind_s if source_health is not None else 0.0
        if behind >= _BEHIND_S and not self._behind:
            log.warning("crowd camera falling behind its stream: device=%s behind_s=%.1f", self.device.id, behind)
        self._behind = behind >= _BEHIND_S
        if state == HealthState.OK.value and self._held is not None:
            state, reason = "held", f"counts held: {self._held}"
        elif state == HealthState.OK.value and self._behind:
            reason = (
                f"counting {behind:.0f} s behind the live stream: this worker has more cameras than it keeps up"
                " with (watchpost bench crowd; crowd run --processes, or a camera's sub-stream)"
            )
        elif state == HealthState.OK.value and self.counters and self.counter is not self.counters[0][0]:
            reason = "counting with the night model (crowd.night_model)"
        return CameraStatus(
            device_id=self.device.id,
            worker=self.worker.name,
            state=state,
            reason=reason,
            source=self.source_shown,
            last_frame_at=datetime.fromtimestamp(last, UTC) if last is not None else None,
            frames=frames,
            errors=errors,
            reconnects=reconnects,
            people=round(self._people, 2) if self._people is not None else None,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    @property
    def source_health(self) -> CameraHealth | None:
        """The frame source's own health now (frames decoded and given out), if it has started."""
        source = self._inbox if self._inbox is not None else self._stream
        return source.health if source is not None else None

    def _error(self, what: str) -> None:
        self._last_error, self._last_error_at = what, datetime.now(UTC)

    # -- the loop --

    def _run(self) -> None:
        stop = self.worker.stopping
        try:
            which = "camera model"
            model = self._model or self._prepare_model()
            which = "camera night model"
            night = self._night_model
            if model is not None and night is None and self.crowd.night_model is not None:
                night = _load_model(self.crowd.night_model)
            if model is not None:
                self._setup(model, night)  # reads the density trees: a damaged model fails here
        except (ModelFileError, OSError, ValueError, ImportError) as exc:
            self._state, self._reason = "error", f"{which}: {exc}"
            self._error(self._reason)
            log.error("crowd camera has no usable model: device=%s error=%s", self.device.id, exc)
            return
        if model is None:
            self._state = "unavailable"
            self._reason = "no calibrated model: counts unavailable (watchpost crowd calibrate, then crowd.model)"
            log.warning("crowd camera without a model: device=%s", self.device.id)
            return
        self._state, self._reason = HealthState.WAITING.value, "no frame received yet"
        while not stop.is_set():
            if self._inbox is not None:
                self._consume(self._inbox)
                return
            retry = {
                "sample_fps": self.crowd.sample_fps,
                "backoff_initial": self.crowd.reconnect_initial_s,
                "backoff_max": self.crowd.reconnect_max_s,
                "max_attempts": self.crowd.dead_after,
                "sleep": lambda s: stop.wait(s) and None,
            }
            stream: StreamSource | SnapshotSource
            if self.crowd.snapshot:
                stream = SnapshotSource(
                    self.crowd.source, max_bytes=self.crowd.max_frame_bytes, max_pixels=self.crowd.max_pixels, **retry
                )
            else:
                pace = "://" not in self.crowd.source or self.crowd.source.startswith("file://")
                stream = StreamSource(
                    self._stream_url(), pace=pace, stall_timeout_s=self.crowd.stall_timeout_s, **retry
                )
            self._stream = stream
            self._consume(stream)
            health = stream.health
            self._reconnects += health.reconnects
            if stop.is_set():
                return
            # The source gave up (dead): say why, and try again later; the worker goes on.
            self._stream = None
            self._state = HealthState.DEAD.value
            self._reason = f"{health.reason}; trying again in {self.crowd.retry_dead_s:g} s"
            self._error(f"stream dead: {health.reason}")
            log.error("crowd camera stream dead: device=%s reason=%s", self.device.id, self._reason)
            stop.wait(self.crowd.retry_dead_s)

    def _stream_url(self) -> str:
        src = self.crowd.source
        return src[len("file://") :] if src.startswith("file://") else src

    def _prepare_model(self) -> CameraModel | None:
        if self.crowd.model is None:
            return None
        self._reason = "loading the camera model"
        return _load_model(self.crowd.model)

    def _setup(self, model: CameraModel, night: CameraModel | None = None) -> None:
        self.frame_size = zone_frame_size(self.crowd, model)
        self.zone_names = {z.id: z.name or z.id for z in self.device.zones}
        # the day model first; the night one (if any) takes over the frames the day one's view check refuses
        self.counters = []
        for m in (model, night) if night is not None else (model,):
            zones = self._zones_for(m)
            self.counters.append((Counter(m, zones), zones, m))
        self.counter, self.zones, self.model = self.counters[0]
        self._fresh_detectors()
        if self.crowd.picture:
            self._picture()
        else:
            self.worker.recorder.record(_NoPicture(self.device.id))  # one kept from before it was turned off

    def _zones_for(self, model: CameraModel) -> list[Zone]:
        """The camera's zones in ``model``'s pixels (they are drawn in the camera's)."""
        width, height = self.frame_size
        sx, sy = model.width / width, model.height / height
        return [
            Zone(
                name=z.id,
                polygon=tuple((x * sx, y * sy) for x, y in z.polygon),
                area_m2=self.device.zone_area_m2(z),
            )
            for z in self.device.zones
        ]

    def _fresh_detectors(self, keep: dict[str, tuple[GatheringDetector, GatheringConfig]] | None = None) -> None:
        """Each zone's gathering rule from the start (no count history), but the detectors in ``keep``."""
        self.detectors: dict[str, tuple[GatheringDetector, GatheringConfig]] = {}
        for z, zc in zip(self.zones, self.device.zones, strict=True):
            if keep and z.name in keep:
                self.detectors[z.name] = keep[z.name]
            elif zc.gathering is not None:
                self.detectors[z.name] = (
                    GatheringDetector(z.name, gathering_rule(zc.gathering), area_m2=z.area_m2),
                    zc.gathering,
                )
        self._peaks = {name: peak for name, peak in self._peaks.items() if keep and name in keep}

    def reconfigure(self, device: DeviceConfig) -> None:
        """New zones (or gathering rules) for this camera, taken up at its next frame (any thread)."""
        with self._pending_lock:
            self._pending = device

    def _apply_zones(self, device: DeviceConfig) -> None:
        """Count ``device``'s zones from this frame on. The background and what the counter learnt stay;
        a zone drawn and ruled as before keeps its gathering state (an open gathering still clears);
        a new or changed zone starts afresh."""
        before = {z.id: z for z in self.device.zones}
        unchanged = {z.id for z in device.zones if before.get(z.id) == z}
        self.device = device
        self.zone_names = {z.id: z.name or z.id for z in device.zones}
        if not self.counters:  # not counting yet: _setup reads the new zones
            return
        counters = []
        for counter, _, m in self.counters:
            zones = self._zones_for(m)
            counter.set_zones(zones)
            counters.append((counter, zones, m))
            if counter is self.counter:
                self.zones = zones
        self.counters = counters
        self._fresh_detectors({name: d for name, d in self.detectors.items() if name in unchanged})
        log.info(
            "crowd camera zones reloaded: device=%s zones=%s kept=%s",
            device.id,
            [z.id for z in device.zones],
            sorted(unchanged),
        )

    def _picture(self) -> None:
        """Hand the recorder the empty scene as the counter now sees it (no person: the model's background)."""
        self._next_picture = time.monotonic() + _PICTURE_EVERY_S
        background = self.counter.background
        self.worker.recorder.record(
            CameraPicture(
                device_id=self.device.id,
                taken_at=datetime.now(UTC),
                width=int(background.shape[1]),
                height=int(background.shape[0]),
                frame_width=self.frame_size[0],
                frame_height=self.frame_size[1],
                jpeg=encode_jpeg(background, quality=_PICTURE_QUALITY),
            )
        )

    def _consume(self, frames: Any) -> None:
        for frame in frames:
            if self.worker.stopping.is_set():
                return
            try:
                self._process(frame)
            except Exception:  # the loop boundary: one frame's failure must not end the camera
                self._errors += 1
                self._error("counting failed on a frame (see the log)")
                log.exception("crowd frame failed: device=%s", self.device.id)

    def _process(self, frame: Frame) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._apply_zones(pending)
        counted = self.counter.count(frame.image, frame.time)
        self._frames += 1
        self._last_frame = frame.time
        if self._state != "ok":
            self._state, self._reason = "ok", None
        judged = self._judge_view(frame, counted)
        if judged is None:  # held
            self._people = None
            return
        counted = judged
        self._people = counted.total
        at = datetime.fromtimestamp(frame.time, UTC)
        rows = [Observation(at=at, device_id=self.device.id, zone=TOTAL_ZONE, people=round(counted.total, 2))]
        rows += [
            Observation(at=at, device_id=self.device.id, zone=z.zone, people=round(z.count, 2)) for z in counted.zones
        ]
        self.worker.recorder.observe(rows)
        if self.crowd.picture and time.monotonic() >= self._next_picture:
            self._picture()
        alarmed = [name for name, (d, _) in self.detectors.items() if d.active]
        for name, (detector, conf) in self.detectors.items():
            event = detector.update(frame.time, counted.zone(name))
            if detector.active:
                self._peaks[name] = max(self._peaks.get(name, 0.0), detector.smoothed)
            if isinstance(event, GatheringAlarm):
                alarmed.append(name)
                self._peaks[name] = event.smoothed
                self._raise(frame, counted, event, conf, alarmed)
            elif isinstance(event, GatheringCleared):
                self.worker.recorder.record(
                    _Dispersed(
                        device_id=self.device.id,
                        zone=name,
                        alert_type=self.crowd.alert,
                        cleared=event,
                        peak=round(self._peaks.pop(name, event.smoothed), 2),
                    )
                )

    def _judge_view(self, frame: Frame, counted: FrameCount) -> FrameCount | None:
        """The frame's counts to use, or None while they are held.

        When the view fails its check for ``_VIEW_FRAMES`` frames in a row, the camera's other model
        (day or night) counts the frame: if its view check passes, it counts from now on. Otherwise the
        counts are held until the view passes as many frames in a row: counts of a turned or covered
        camera, or of a night picture no model was calibrated on, are noise; better none, and a fault
        someone looks at.
        """
        view = counted.view
        problem = view.problem if view is not None else None
        if problem is None:
            self._view_bad, self._view_good = 0, self._view_good + 1
        else:
            self._view_bad, self._view_good = self._view_bad + 1, 0
        if problem is not None and len(self.counters) > 1 and self._view_bad % _VIEW_FRAMES == 0:
            switched = self._switch_model(frame)
            if switched is not None:
                if self._held is not None:
                    self._resume(frame)
                return switched
        if self._held is None and problem is not None and view is not None and self._view_bad >= _VIEW_FRAMES:
            self._held, self._held_since = problem, frame.time
            self._fresh_detectors()  # no dwell carried over the held frames
            image = frame.image
            if image.shape[1] > self.model.width:
                image = shrink(image, (self.model.width, self.model.height))
            self.worker.recorder.record(
                _ViewLost(
                    device_id=self.device.id,
                    alert_type=self.crowd.view_alert,
                    view=view,
                    at=frame.time,
                    snapshot=encode_jpeg(image, quality=self.crowd.snapshot_quality),
                    width=int(image.shape[1]),
                    height=int(image.shape[0]),
                )
            )
            log.warning("crowd counts held: device=%s problem=%s", self.device.id, problem)
        elif self._held is not None and problem is None and self._view_good >= _VIEW_FRAMES:
            self._resume(frame)
        elif self._held is not None and problem is not None:
            self._held = problem  # the latest reason (dark at dusk, then no colour)
        return None if self._held is not None else counted

    def _switch_model(self, frame: Frame) -> FrameCount | None:
        """Count the frame with each other model; the first whose view check passes counts from now on."""
        for counter, zones, model in self.counters:
            if counter is self.counter:
                continue
            counted = counter.count(frame.image, frame.time)
            if counted.view is not None and counted.view.problem is None:
                day = counter is self.counters[0][0]
                self.counter, self.zones, self.model = counter, zones, model
                self._view_bad, self._view_good = 0, 1
                log.info("crowd camera model switched: device=%s now=%s", self.device.id, "day" if day else "night")
                return counted
        return None

    def _resume(self, frame: Frame) -> None:
        held_s = frame.time - self._held_since
        self._held = None
        self._fresh_detectors()
        self.worker.recorder.record(
            _ViewBack(device_id=self.device.id, alert_type=self.crowd.view_alert, at=frame.time, held_s=held_s)
        )
        log.info("crowd counts resumed: device=%s held_s=%.0f", self.device.id, held_s)

    def _raise(
        self, frame: Frame, counted: Any, alarm: GatheringAlarm, conf: GatheringConfig, alarmed: list[str]
    ) -> None:
        image = frame.image
        m = self.model
        image = shrink(image, (m.width, m.height))
        picture = draw_snapshot(image, self.zones, counted, alarmed=alarmed)
        jpeg = encode_jpeg(picture, quality=self.crowd.snapshot_quality)
        self.worker.recorder.record(
            _Gathered(
                device_id=self.device.id,
                zone=alarm.zone,
                zone_name=self.zone_names.get(alarm.zone, alarm.zone),
                rule=_RuleRef(
                    name=f"crowd-{self.device.id}-{alarm.zone}"[:64],
                    alert=self.crowd.alert,
                    severity=conf.severity,
                    night=conf.night,
                ),
                alarm=alarm,
                threshold=conf.threshold,
                snapshot=jpeg,
                width=int(picture.shape[1]),
                height=int(picture.shape[0]),
            )
        )
        log.info(
            "crowd gathering: device=%s zone=%s people=%.1f reason=%s",
            self.device.id,
            alarm.zone,
            alarm.smoothed,
            alarm.reason.value,
        )


# --- the recorder: the one database connection -------------------------------------------------


class _Recorder:
    """Writes observations, alerts and camera health; rides out database outages with backoff."""

    def __init__(self, worker: CrowdWorker) -> None:
        self.worker = worker
        self._items: queue.Queue[_Item] = queue.Queue()
        self._observations: deque[Observation] = deque()
        self._obs_lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: list[_Item] = []
        self._partitions = store.PartitionCache()
        self.database_ok = False
        self.detail = "starting"
        self.dropped = 0
        self._next_status = 0.0
        self._next_retention = 0.0

    def observe(self, rows: Sequence[Observation]) -> None:
        with self._obs_lock:
            self._observations.extend(rows)
            over = len(self._observations) - _MAX_PENDING_OBSERVATIONS
            for _ in range(max(over, 0)):
                self._observations.popleft()
                self.dropped += 1
        self._wake.set()

    def record(self, item: _Item) -> None:
        self._items.put(item)
        self._wake.set()

    def run(self) -> None:
        delay = 0.5
        stop = self.worker.stopping
        while not stop.is_set():
            try:
                with store.connect(self.worker.database_url, application_name=f"watchpost-{self.worker.name}") as conn:
                    self.database_ok, self.detail = True, "ok"
                    delay = 0.5
                    while True:
                        self._pass(conn)
                        if stop.is_set():
                            break
                        self._wake.wait(0.5)
                        self._wake.clear()
                    self._pass(conn)  # what came in while stopping
                    return
            except psycopg.Error as exc:
                self.database_ok, self.detail = False, f"database: {exc}".strip()
                log.warning("crowd recorder lost the database, retrying in %.1fs: error=%s", delay, exc)
            except Exception as exc:  # the loop boundary: log, back off, try again
                self.database_ok, self.detail = False, f"{type(exc).__name__}: {exc}"
                log.exception("crowd recorder pass failed, retrying in %.1fs", delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def _pass(self, conn: psycopg.Connection) -> None:
        while True:
            try:
                self._pending.append(self._items.get_nowait())
            except queue.Empty:
                break
        while self._pending:
            item = self._pending[0]
            with conn.transaction():
                if isinstance(item, _Gathered):
                    self._raise(conn, item)
                elif isinstance(item, CameraPicture):
                    store.put_camera_picture(conn, picture=item)
                elif isinstance(item, _NoPicture):
                    store.drop_camera_picture(conn, item.device_id)
                elif isinstance(item, _ViewLost):
                    self._view_lost(conn, item)
                elif isinstance(item, _ViewBack):
                    self._view_back(conn, item)
                else:
                    self._disperse(conn, item)
            self._pending.pop(0)
        self._write_observations(conn)
        now = time.monotonic()
        if now >= self._next_status:
            self._next_status = now + self.worker.status_every_s
            with conn.transaction():
                store.upsert_camera_status(conn, statuses=[c.status() for c in self.worker.cameras])
        if now >= self._next_retention:
            self._next_retention = now + _RETENTION_EVERY_S
            dropped = store.drop_expired_crowd(conn, storage=self.worker.config.storage, now=datetime.now(UTC))
            if any(dropped.values()):
                log.info("crowd retention: %s", dropped)

    def _write_observations(self, conn: psycopg.Connection) -> None:
        while True:
            with self._obs_lock:
                batch = [self._observations[i] for i in range(min(_OBSERVATION_BATCH, len(self._observations)))]
            if not batch:
                return
            if self.worker.layout == "native":
                store.ensure_partitions(
                    conn, days={o.at.date() for o in batch}, cache=self._partitions, table="observations"
                )
            with conn.transaction():
                store.insert_observations(conn, observations=batch)
            with self._obs_lock:
                for _ in range(min(len(batch), len(self._observations))):
                    self._observations.popleft()

    def _raise(self, conn: psycopg.Connection, g: _Gathered) -> None:
        config = self.worker.config
        device = config.device_index[g.device_id]
        alarm = g.alarm
        at = datetime.fromtimestamp(alarm.time, UTC)
        trend = alarm.trend
        detail: dict[str, Any] = {
            "camera": g.device_id,
            "zone_name": g.zone_name,
            "people": round(alarm.smoothed, 1),
            "people_latest": round(alarm.count, 1),
            "reason": alarm.reason.value,
            "threshold": g.threshold,
            "since": datetime.fromtimestamp(alarm.since, UTC).isoformat().replace("+00:00", "Z"),
            "trend": {
                "slope_per_min": round(trend.slope_per_min, 2),
                "window_s": round(trend.window_s, 1),
                "counts": list(trend.counts),
            },
            "snapshot": True,
            "cleared_at": None,  # a gathering back while its alert is still open is no longer over
        }
        if alarm.density_per_m2 is not None:
            detail["density_per_m2"] = round(alarm.density_per_m2, 3)
        draft = draft_for(
            config,
            g.rule,
            device_id=g.device_id,
            site_id=device.site,
            at=at,
            key=f"{g.device_id}:{g.zone}",
            zone=g.zone,
            detail=detail,
        )
        draft = dataclasses.replace(draft, title=f"{draft.title} · {g.zone_name}")
        raised = self._raise_with_snapshot(conn, draft, g.zone, g.width, g.height, g.snapshot)
        log.info(
            "crowd alert: alert=%d created=%s device=%s zone=%s", raised.alert_id, raised.created, g.device_id, g.zone
        )

    def _raise_with_snapshot(
        self, conn: psycopg.Connection, draft: AlertDraft, zone: str | None, width: int, height: int, jpeg: bytes
    ) -> store.Raised:
        """Raise (or fold into) the draft's alert and keep its snapshot, in the caller's transaction."""
        assert draft.device_id is not None
        raised = store.raise_alert(
            conn, draft=draft, window_s=self.worker.config.alerts.dedup_window_s, actor=f"crowd:{self.worker.name}"
        )
        store.insert_snapshot(
            conn,
            alert_id=raised.alert_id,
            taken_at=draft.occurred_at,
            device_id=draft.device_id,
            zone=zone,
            width=width,
            height=height,
            jpeg=jpeg,
        )
        return raised

    def _view_lost(self, conn: psycopg.Connection, v: _ViewLost) -> None:
        if v.alert_type is None:
            return
        config = self.worker.config
        device = config.device_index[v.device_id]
        at = datetime.fromtimestamp(v.at, UTC)
        rule = _RuleRef(name=f"crowd-{v.device_id}-view"[:64], alert=v.alert_type, severity=None, night=None)
        detail: dict[str, Any] = {
            "camera": v.device_id,
            "reason": "view_unlike_calibration",
            "problem": v.view.problem,
            "counts_held": True,
            "gain": v.view.gain,
            "outlines_kept": v.view.outlines_kept,
            "colour": v.view.colour,
            "snapshot": True,
        }
        draft = draft_for(
            config, rule, device_id=v.device_id, site_id=device.site, at=at, key=f"{v.device_id}:view", detail=detail
        )
        raised = self._raise_with_snapshot(conn, draft, None, v.width, v.height, v.snapshot)
        log.info("crowd view alert: alert=%d created=%s device=%s", raised.alert_id, raised.created, v.device_id)

    def _view_back(self, conn: psycopg.Connection, v: _ViewBack) -> None:
        if v.alert_type is None:
            return
        at = datetime.fromtimestamp(v.at, UTC)
        store.note_open_alert(
            conn,
            dedup_key=f"{v.alert_type}:{v.device_id}:view",
            action="view_restored",
            actor=f"crowd:{self.worker.name}",
            detail={
                "counts_held": False,
                "restored_at": at.isoformat().replace("+00:00", "Z"),
                "held_s": round(v.held_s, 1),
            },
            seen_at=at,
        )

    def _disperse(self, conn: psycopg.Connection, d: _Dispersed) -> None:
        c = d.cleared
        at = datetime.fromtimestamp(c.time, UTC)
        alert_id = store.note_open_alert(
            conn,
            dedup_key=f"{d.alert_type}:{d.device_id}:{d.zone}",
            action="gathering_cleared",
            actor=f"crowd:{self.worker.name}",
            detail={
                "cleared_at": at.isoformat().replace("+00:00", "Z"),
                "people_at_clear": round(c.smoothed, 1),
                "peak_people": d.peak,
                "duration_s": round(c.duration_s, 1),
            },
            seen_at=at,
        )
        log.info("crowd gathering cleared: device=%s zone=%s alert=%s", d.device_id, d.zone, alert_id)


# --- the worker ----------------------------------------------------------------------------------


def _has_model(models: dict[str, CameraModel] | None, device_id: str) -> bool:
    return models is not None and device_id in models


class CrowdWorker:
    """Count people on the configured cameras; :meth:`start`, then :meth:`stop`.

    ``cameras`` limits the worker to some camera ids (run one worker per group of cameras: a
    camera's frames must all reach the same worker, so MQTT frames are not shared between
    workers). ``models`` (and ``night_models``) give models by camera id instead of loading them
    (tests); camera health is written every ``status_every_s``.
    """

    def __init__(
        self,
        *,
        config: WatchpostConfig,
        database_url: str,
        broker: BrokerAddress | None,
        name: str = "crowd-0",
        cameras: Sequence[str] | None = None,
        models: dict[str, CameraModel] | None = None,
        night_models: dict[str, CameraModel] | None = None,
        status_every_s: float = _STATUS_EVERY_S,
    ) -> None:
        self.config = config
        self.status_every_s = status_every_s
        self.database_url = database_url
        self.broker = broker
        self.name = name
        self.stopping = threading.Event()
        self.recorder = _Recorder(self)
        self.cameras = [
            _Camera(self, d, (models or {}).get(d.id), (night_models or {}).get(d.id))
            for d in counting_cameras(config, cameras)
        ]
        # A camera without a model counts nothing: it needs no frames.
        self._by_topic = {
            c.crowd.topic_for(c.device.id): c
            for c in self.cameras
            if c.crowd.from_mqtt and (c.crowd.model is not None or _has_model(models, c.device.id))
        }
        self.subscriber: Subscriber | None = None
        self.layout = "native"
        self._recorder_thread: threading.Thread | None = None

    def start(self) -> CrowdWorker:
        with store.connect(self.database_url, application_name=f"watchpost-{self.name}") as conn:
            self.layout = store.layout_of(conn)
        if self._by_topic:
            if self.broker is None:
                raise ValueError(f"cameras {sorted(c.device.id for c in self._by_topic.values())} need an MQTT broker")
            self.subscriber = Subscriber(
                self.broker,
                client_id=f"watchpost-{self.name}",
                filters=sorted(self._by_topic),
                on_message=self._on_frame,
                session_expiry_s=0,  # a frame that waited for us is stale: no backlog
                receive_maximum=16,
            ).start()
        self._recorder_thread = threading.Thread(target=self.recorder.run, name=f"{self.name}-recorder", daemon=True)
        self._recorder_thread.start()
        for camera in self.cameras:
            camera.start()
        log.info("crowd worker started: name=%s cameras=%s", self.name, [c.device.id for c in self.cameras])
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether the frame subscription stands (True at once without MQTT cameras)."""
        return self.subscriber is None or self.subscriber.wait_ready(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for camera in self.cameras:
            camera.stop()
        if self.subscriber is not None:
            self.subscriber.stop()
        for camera in self.cameras:
            camera.join(timeout)
        self.recorder._wake.set()
        if self._recorder_thread is not None:
            self._recorder_thread.join(timeout)

    def reload(self, config: WatchpostConfig) -> list[str]:
        """Take up ``config``'s camera zones and gathering rules without stopping; the cameras of this
        worker whose zones changed. :class:`~watchpost.config.ReloadError` (nothing applied) when
        anything else changed: that needs a restart."""
        changed = set(zone_changes(self.config, config))
        applied = []
        for camera in self.cameras:
            if camera.device.id in changed:
                camera.reconfigure(config.device_index[camera.device.id])
                applied.append(camera.device.id)
        self.config = config
        return applied

    def health(self) -> CrowdHealth:
        return CrowdHealth(
            name=self.name,
            database_ok=self.recorder.database_ok,
            detail=self.recorder.detail,
            broker=self.subscriber.state.value if self.subscriber is not None else "none",
            cameras=tuple(c.status() for c in self.cameras),
            dropped_observations=self.recorder.dropped,
        )

    def _on_frame(self, message: ReceivedMessage) -> None:
        camera = self._by_topic.get(message.topic)
        if camera is not None:
            camera.push(message)
        if self.subscriber is not None:
            self.subscriber.ack(message)
