"""``watchpost bench gathering``: how soon a crowd that forms reaches the console, and its end after it leaves.

The duty officer's question about a gathering (the seed case: youths gathering in a street at
night) is how long after it forms the alert is on the console, to send a unit in time. A rule
"N people for D seconds" cannot raise before D seconds: that dwell is the floor. Everything else
is Watchpost's: the moving average's lag (it reaches the threshold once enough of its window
holds the crowd), the wait for the next sample, counting, storing the alert and the live stream.

As deployed, each in its own process: the crowd worker (``crowd run``) counting the demo camera
from JPEG frames over MQTT (the synthetic scene, its model calibrated at start) and the API; this
process publishes the frames, as a camera's gateway would, and reads the console's stream. A few
passers-by walk about; then, ``trials`` times, twelve people join them until the alert is raised
and leave until it is cleared. Beside the measured times the same run gives what the rule alone
implies: the dwell, plus the moving average's lag computed from the zone counts the worker stored
in the same run (the mean count before and with the crowd), plus at most one sampling interval.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from detectors.crowd import synthetic as syn
from detectors.crowd.snapshot import encode_jpeg
from ingest.mqtt import BrokerAddress, Publisher
from watchpost import store
from watchpost.config import ApiKeyConfig, WatchpostConfig
from watchpost.embedded import free_port, service_processes

__all__ = ["Trial", "run_gathering_bench"]

_CAMERA = "lotus-cam-square"  # the demo's counting camera, its square zone drawn on a 1920x1080 picture
_ZONE = "square"
_THRESHOLD, _RELEASE = 9.0, 6.0  # the demo zone's rule: 9 people raise, under 6 clear
# twelve people well inside the square zone and two passers-by (the scene's pixels, with a colour each)
_CROWD = [(110 + 22 * (i % 6), 80 + 30 * (i // 6), 30 + 20 * (i % 3)) for i in range(12)]
_PASSERS = [(60, 70, 220), (250, 150, 40)]
_GROWTH_MIN = 5.0  # growth alarms from this many people on (the detector's default)
_FRAME_FPS = 5.0  # the camera sends faster than the worker samples, as MQTT cameras do


@dataclass(frozen=True, slots=True)
class Trial:
    """One gathering: seconds from the crowd's first frame to its alert on the console, and from its last to
    the alert's clearing there; the raising frame's receipt to the console (ms)."""

    raised_s: float
    cleared_s: float | None
    stream_ms: float  # the alert's first sighting (the raising frame's receipt) -> on the console's stream
    reason: str  # which rule raised it: threshold or growth


def run_gathering_bench(
    *,
    config: WatchpostConfig,
    database_url: str,
    broker_url: str,
    dwell_s: float = 20.0,
    release_s: float = 20.0,
    smooth_s: float = 5.0,
    sample_fps: float = 2.0,
    trials: int = 3,
    growth: float | None = None,
    as_json: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the trials, print the figures (or one JSON object) and return them. With ``growth`` the zone's rule
    also raises when the crowd grows by that factor within a minute (from 5 people on), as the seed case's
    gathering would."""
    out = (lambda _line: None) if as_json else (say or (lambda line: print(line, flush=True)))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    tag = uuid.uuid4().hex[:8]
    key = secrets.token_urlsafe(24)
    cfg = _config(
        config, tag, key, dwell_s=dwell_s, release_s=release_s, smooth_s=smooth_s, sample_fps=sample_fps, growth=growth
    )
    crowd = cfg.device_index[_CAMERA].crowd
    assert crowd is not None
    topic = crowd.topic_for(_CAMERA)
    out(
        f"bench gathering: camera {_CAMERA} over MQTT (the synthetic scene, {_FRAME_FPS:g} frames a second sent,"
        f" {sample_fps:g} counted); rule: {_THRESHOLD:g} people for {dwell_s:g} s, cleared under {_RELEASE:g} for"
        f" {release_s:g} s, moving average over {smooth_s:g} s"
        f"{f', or grown {growth:g}x within 60 s' if growth else ''}; {trials} gatherings of {len(_CROWD)} people beside"
        f" {len(_PASSERS)} passers-by"
    )
    port = free_port()
    frames = _Frames(BrokerAddress.parse(broker_url), topic)
    with (
        store.scratch_database(database_url, config=cfg, prefix="watchpost_bench_gathering") as db_url,
        store.connect(db_url) as conn,  # one connection for the run: the readiness wait polls it every 20 ms
    ):
        store.sync_configuration(conn, config=cfg)
        commands = {"crowd": ["crowd", "run", "--processes", "1", "--name", f"bench-{tag}"], "api": ["api"]}
        with service_processes(cfg, db_url, broker_url, port, commands), frames:
            stream = _Stream(port, key)
            stream.start()
            try:
                out("bench gathering: waiting for the worker (it calibrates the synthetic scene's model at start) ...")
                frames.show(_PASSERS)
                started = time.time()
                _wait(lambda: _zone_counts(conn, started, time.time()), 180, "the worker stored no count")
                time.sleep(smooth_s + 2.0)
                done: list[Trial] = []
                quiet: list[tuple[float, float]] = []
                busy: list[tuple[float, float]] = []
                for i in range(trials):
                    quiet_from = time.time()
                    time.sleep(smooth_s + 1.0)  # passers-by alone fill the moving average
                    formed = frames.show(_PASSERS + _CROWD)
                    quiet.append((quiet_from, formed))
                    alert_id, arrived, stream_ms, reason = _wait(
                        lambda since=formed: stream.raised_after(since), dwell_s + smooth_s + 60, "no alert raised"
                    )
                    time.sleep(1.0)  # the crowd stays a moment after the alarm
                    left = frames.show(_PASSERS)
                    busy.append((formed, left))
                    cleared = _wait(
                        lambda a=alert_id: stream.cleared(a), release_s + smooth_s + 60, "the gathering never cleared"
                    )
                    trial = Trial(
                        raised_s=round(arrived - formed, 2),
                        cleared_s=round(cleared - left, 2),
                        stream_ms=round(stream_ms, 1),
                        reason=reason,
                    )
                    done.append(trial)
                    out(
                        f"bench gathering:   {i + 1}: raised ({reason}) {trial.raised_s:.1f} s after the crowd formed,"
                        f" cleared {trial.cleared_s:.1f} s after it left"
                    )
            finally:
                stream.stop()
            people_quiet = _mean_count(conn, quiet)
            people_crowd = _mean_count(conn, busy)
    # What the rule implies: the moving average reaches the threshold once this share of its window holds
    # the crowd (counts step from people_quiet to people_crowd), then the dwell, then the next sample.
    step = max(people_crowd - people_quiet, 1e-6)

    def lag(level: float) -> float:
        return max(0.0, min(1.0, (level - people_quiet) / step)) * smooth_s

    lag_raise, lag_clear = lag(_THRESHOLD), max(0.0, min(1.0, (people_crowd - _RELEASE) / step)) * smooth_s
    rule_raise = dwell_s + lag_raise
    growth_level = max(_GROWTH_MIN, growth * max(people_quiet, 1.0)) if growth else None
    if growth_level is not None and growth_level <= people_crowd:
        rule_raise = min(rule_raise, lag(growth_level))
    raised = [t.raised_s for t in done]
    cleared_all = [t.cleared_s for t in done if t.cleared_s is not None]
    stream_all = sorted(t.stream_ms for t in done)
    figures: dict[str, Any] = {
        "trials": [asdict(t) for t in done],
        "dwell_s": dwell_s,
        "release_s": release_s,
        "smooth_s": smooth_s,
        "sample_fps": sample_fps,
        "zone_people_quiet": round(people_quiet, 2),
        "zone_people_crowd": round(people_crowd, 2),
        "raised_median_s": round(statistics.median(raised), 2),
        "raised_max_s": max(raised),
        "rule_raise_s": round(rule_raise, 2),  # the dwell and the moving average's lag (or growth's lag alone)
        "growth": growth,
        "cleared_median_s": round(statistics.median(cleared_all), 2) if cleared_all else None,
        "rule_clear_s": round(release_s + lag_clear, 2),
        "sample_interval_s": round(1.0 / sample_fps, 3),
        "stream_ms_median": round(statistics.median(stream_all), 1),
        "stream_ms_max": stream_all[-1],
    }
    out("")
    out(
        f"crowd formed -> alert on the console : {figures['raised_median_s']:.2f} s median, at most"
        f" {figures['raised_max_s']:.2f} s ({len(done)} gatherings)"
    )
    if growth_level is not None and rule_raise < dwell_s:
        out(
            f"  the rule itself                    : {rule_raise:.2f} s for the {smooth_s:g} s moving average to reach"
            f" {growth_level:.1f}, {growth:g}x the {people_quiet:.1f} before (growth raises at once; the floor),"
            f" + up to {1.0 / sample_fps:.2f} s to the next sample"
        )
    else:
        out(
            f"  the rule itself                    : {rule_raise:.2f} s = the dwell {dwell_s:g} s (the floor: no"
            f" 'for {dwell_s:g} s' rule raises sooner) + {lag_raise:.2f} s for the {smooth_s:g} s moving average to"
            f" reach {_THRESHOLD:g} (zone count {people_quiet:.1f} before, {people_crowd:.1f} with the crowd), + up"
            f" to {1.0 / sample_fps:.2f} s to the next sample"
        )
    out(
        f"  raising frame -> console stream    : {figures['stream_ms_median']:.0f} ms median, at most"
        f" {figures['stream_ms_max']:.0f} ms (counting, storing the alert and its snapshot, the live stream)"
    )
    if cleared_all:
        out(
            f"crowd gone -> cleared on the console : {figures['cleared_median_s']:.2f} s median; the rule itself:"
            f" {figures['rule_clear_s']:.2f} s (release {release_s:g} s + {lag_clear:.2f} s for the average to fall"
            f" under {_RELEASE:g})"
        )
    if as_json:
        print(json.dumps(figures))
    return figures


def _config(
    config: WatchpostConfig,
    tag: str,
    key: str,
    *,
    dwell_s: float,
    release_s: float,
    smooth_s: float,
    sample_fps: float,
    growth: float | None,
) -> WatchpostConfig:
    """The demo camera alone on a topic of this run, its zone's rule with the growth alarm only when asked for
    (twelve people arriving together raise it at once: without it this measures the dwell's path); an operator
    API key; every gathering its own alert."""
    doc = config.model_dump(mode="json")
    devices = []
    for device in doc["devices"]:
        if device.get("crowd") is not None and device["id"] != _CAMERA:
            continue
        if device["id"] == _CAMERA:
            device["crowd"].update(
                source="mqtt", topic=f"bench{tag}/cameras/{{device}}/frame", sample_fps=sample_fps, model="synthetic"
            )
            device["zones"] = [
                {
                    **next(z for z in device["zones"] if z["id"] == _ZONE),
                    "gathering": {
                        "threshold": _THRESHOLD,
                        "release_threshold": _RELEASE,
                        "dwell_s": dwell_s,
                        "release_s": release_s,
                        "smooth_s": smooth_s,
                        "cooldown_s": 0,
                        **(
                            {"growth_factor": growth, "growth_window_s": 60, "growth_min_count": _GROWTH_MIN}
                            if growth
                            else {}
                        ),
                    },
                }
            ]
        devices.append(device)
    doc["devices"] = devices
    doc["access"]["api_keys"] = [
        *doc["access"]["api_keys"],
        ApiKeyConfig(name="bench", role="operator", key_sha256=hashlib.sha256(key.encode()).hexdigest()).model_dump(
            mode="json"
        ),
    ]
    doc["alerts"]["dedup_window_s"] = 0
    return WatchpostConfig.model_validate(doc)


class _Frames:
    """Publishes the scene's frames at ``_FRAME_FPS`` in a thread; :meth:`show` changes who is in them."""

    def __init__(self, broker: BrokerAddress, topic: str) -> None:
        self._broker, self._topic = broker, topic
        self._rng = np.random.default_rng(5)
        self._background = syn.background()
        self._people: list[tuple[float, float, int]] = []
        self._changed = threading.Event()
        self._shown_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-frames", daemon=True)

    def __enter__(self) -> _Frames:
        self._publisher = Publisher(self._broker).connect()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._publisher.close()

    def show(self, people: list[tuple[float, float, int]]) -> float:
        """From the next frame on, these people; returns when that frame was published (epoch seconds)."""
        with self._lock:
            self._people = list(people)
            self._changed.clear()
        if not self._changed.wait(10):
            raise RuntimeError("the bench's frames are not being published")
        return self._shown_at

    def _frame(self, people: list[tuple[float, float, int]]) -> bytes:
        image = self._background.copy()
        syn.draw_people(image, people)
        return encode_jpeg(syn.finish(image, self._rng), quality=90)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                people, fresh = self._people, not self._changed.is_set()
            payload = self._frame(people)
            at = time.time()
            self._publisher.publish(self._topic, payload, qos=1).wait_for_publish(5)
            if fresh:
                self._shown_at = at
                self._changed.set()
            due += 1.0 / _FRAME_FPS
            self._stop.wait(max(0.0, due - time.monotonic()))


class _Stream:
    """Reads the console's live stream: when each crowd alert of the camera was raised, and cleared."""

    def __init__(self, port: int, key: str) -> None:
        self._url = f"http://127.0.0.1:{port}/stream"
        self._headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        self._raised: dict[int, tuple[float, float, str]] = {}  # alert id -> (arrival, ms after its first sighting,
        # the rule that raised it)
        self._cleared: dict[int, float] = {}
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="bench-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def raised_after(self, since: float) -> tuple[int, float, float, str] | None:
        """The first alert raised after ``since``: (id, arrival, ms from its first sighting to its arrival, the
        rule that raised it)."""
        self._check()
        for alert_id, (arrived, ms, reason) in sorted(self._raised.items(), key=lambda kv: kv[1][0]):
            if arrived > since:
                return alert_id, arrived, ms, reason
        return None

    def cleared(self, alert_id: int) -> float | None:
        """When the alert's gathering was reported cleared on the stream."""
        self._check()
        return self._cleared.get(alert_id)

    def _check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the console's stream failed: {self._error}") from self._error

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self._url, headers=self._headers, timeout=None) as response:
                response.raise_for_status()
                kind = ""
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:") and kind in ("raised", "updated"):
                        self._note(kind, json.loads(line[5:]), time.time())
        except Exception as exc:  # the reader's thread boundary: the bench says why
            if not self._stop.is_set():
                self._error = exc

    def _note(self, kind: str, message: dict[str, Any], arrived: float) -> None:
        alert = message.get("alert") or {}
        if alert.get("type") != "crowd_gathering" or alert.get("device_id") != _CAMERA:
            return
        alert_id = int(alert["alert_id"])
        if kind == "raised" and alert_id not in self._raised:
            first = datetime.fromisoformat(str(alert["first_seen"]).replace("Z", "+00:00")).astimezone(UTC)
            reason = str((alert.get("detail") or {}).get("reason", "?"))
            self._raised[alert_id] = (arrived, (arrived - first.timestamp()) * 1000, reason)
        elif kind == "updated" and message.get("change") == "gathering_cleared":
            self._cleared.setdefault(alert_id, arrived)


def _wait(probe: Callable[[], Any], timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"bench gathering: {why} within {timeout:.0f} s")


def _zone_counts(conn: Any, since: float, until: float) -> list[float]:
    rows = conn.execute(
        "SELECT people FROM observations WHERE device_id = %s AND zone = %s"
        " AND at >= to_timestamp(%s) AND at < to_timestamp(%s)",
        (_CAMERA, _ZONE, since, until),
    ).fetchall()
    return [float(r[0]) for r in rows]


def _mean_count(conn: Any, windows: list[tuple[float, float]]) -> float:
    """Mean stored zone count over the windows (each trimmed of its first second: the counts in between)."""
    counts = [c for a, b in windows for c in _zone_counts(conn, a + 1.0, b)]
    if not counts:
        raise RuntimeError("bench gathering: the worker stored no zone counts while measuring")
    return float(np.mean(counts))
