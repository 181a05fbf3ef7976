"""Patrol terminals, simulated: the demo's units answer their assignments as crews would.

Without anyone playing the units, the demo's alerts pile up with every unit dispatched and
nobody arriving. This plays each unit that has a demo API key (``wp_demo_terminal_<unit>``,
configured by its SHA-256 in ``access.api_keys``) through the same doors a real terminal uses:

- it hears its assignments on its MQTT topic (``dispatch.unit_topic``), and asks the API for
  its open assignments now and then in case it missed one;
- after a few seconds it accepts over HTTP (``POST /assignments/{id}/accept``);
- it drives towards the alert at its speed, publishing GPS positions to
  ``dispatch.unit_position_topic`` every tick, so the dispatcher marks it on scene by GPS
  (a fixed post, or an alert without a location, reports on scene over HTTP instead);
- after a while on scene it clears with an outcome (mostly handled, some false alarms);
- a share of crews never arrive (a flat tyre, a wrong turn): they accept, stay where they are,
  the tier deadline passes and the dispatcher escalates; later they clear with ``no_action``;
- stood down (reassigned, or the alert resolved by the console), it returns to its base.

What a crew does with one assignment is a pure function of the seed and the assignment id
(:func:`plan`), so a test with a seed sees the same crews every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.mqtt import BrokerAddress, Publisher, Subscriber
from watchpost.config import UnitConfig, WatchpostConfig
from watchpost.geo import distance_m
from watchpost.model import ReceivedMessage

__all__ = ["Crew", "Plan", "PatrolTerminals", "demo_key", "demo_keys", "plan"]

log = logging.getLogger("watchpost.terminals")

DEMO_KEY_PREFIX = "wp_demo_terminal_"
_OUTCOMES = (("handled", 0.8), ("false_alarm", 0.15), ("no_action", 0.05))
_OPEN = ("assigned", "accepted", "on_scene")


def demo_key(unit_id: str) -> str:
    """The demo terminal key of a unit (published in the README: development only)."""
    return DEMO_KEY_PREFIX + unit_id.replace("-", "_")


def demo_keys(config: WatchpostConfig) -> dict[str, str]:
    """Units whose demo terminal key is configured for them, with the key."""
    configured = {(k.unit, k.key_sha256) for k in config.access.api_keys if k.role == "patrol"}
    out = {}
    for unit in config.units:
        key = demo_key(unit.id)
        if (unit.id, hashlib.sha256(key.encode()).hexdigest()) in configured:
            out[unit.id] = key
    return out


@dataclass(frozen=True, slots=True)
class Crew:
    """How the simulated crews behave; the defaults suit a demo, tests make them quick."""

    accept_after_s: tuple[float, float] = (2.0, 6.0)
    dwell_s: tuple[float, float] = (15.0, 45.0)
    report_on_scene_after_s: tuple[float, float] = (5.0, 20.0)  # posts, and alerts without a location
    no_show_share: float = 0.15
    give_up_after_s: float = 180.0
    speed_factor: float = 1.0
    tick_s: float = 1.0
    idle_fix_s: float = 30.0
    reconcile_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What one crew will do with one assignment."""

    accept_after_s: float
    dwell_s: float
    report_after_s: float
    no_show: bool
    outcome: str


def plan(seed: int | None, assignment_id: int, crew: Crew) -> Plan:
    """The crew's behaviour for an assignment: the same for the same seed and assignment."""
    rng = random.Random(f"{seed}:{assignment_id}")
    return Plan(
        accept_after_s=rng.uniform(*crew.accept_after_s),
        dwell_s=rng.uniform(*crew.dwell_s),
        report_after_s=rng.uniform(*crew.report_on_scene_after_s),
        no_show=rng.random() < crew.no_show_share,
        outcome=rng.choices([o for o, _ in _OUTCOMES], weights=[w for _, w in _OUTCOMES])[0],
    )


@dataclass
class _Job:
    assignment_id: int
    lat: float | None
    lon: float | None
    state: str
    plan: Plan
    taken_at: float
    accepted_at: float | None = None
    arrived_at: float | None = None


@dataclass
class _Terminal:
    unit: UnitConfig
    key: str
    speed_mps: float
    lat: float
    lon: float
    job: _Job | None = None
    last_fix: float = 0.0
    ready: bool = False


@dataclass
class _Stats:
    accepted: int = 0
    arrived: int = 0
    cleared: int = 0
    no_shows: int = 0
    errors: list[str] = field(default_factory=list)


class PatrolTerminals:
    """Plays the units that have demo keys until :meth:`stop` (or ``stop`` given to :meth:`run`)."""

    def __init__(
        self,
        *,
        config: WatchpostConfig,
        broker: BrokerAddress,
        api_url: str,
        keys: dict[str, str] | None = None,
        seed: int | None = None,
        crew: Crew | None = None,
    ) -> None:
        self.config = config
        self.broker = broker
        self.api_url = api_url.rstrip("/")
        self.seed = seed
        self.crew = crew or Crew()
        keys = demo_keys(config) if keys is None else keys
        d = config.dispatch
        self.terminals = {
            unit.id: _Terminal(
                unit=unit,
                key=keys[unit.id],
                speed_mps=(unit.speed_kmh or d.speeds_kmh.get(unit.kind, 5.0)) / 3.6,  # type: ignore[call-overload]
                lat=unit.position.lat,
                lon=unit.position.lon,
            )
            for unit in config.units
            if unit.id in keys
        }
        self.stats = _Stats()
        self._inbox: queue.SimpleQueue[ReceivedMessage] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> PatrolTerminals:
        self._thread = threading.Thread(target=self.run, name="watchpost-terminals", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, stop: threading.Event | None = None) -> None:
        """Play the units until ``stop`` (or :meth:`stop`)."""
        stop = stop or self._stop
        if not self.terminals:
            log.info("no unit has a demo terminal key: nothing to simulate")
            return
        d = self.config.dispatch
        tag = f"{self.seed if self.seed is not None else 'x'}-{id(self) % 100000}"
        subscriber = Subscriber(
            self.broker,
            client_id=f"watchpost-terminals-{tag}",
            filters=[d.unit_topic.replace("{unit}", "+")],
            on_message=self._inbox.put,
            session_expiry_s=0,
        ).start()
        publisher = Publisher(self.broker, client_id=f"watchpost-terminals-{tag}-gps")
        try:
            publisher.connect()
            log.info("patrol terminals simulated: units=%s", ",".join(sorted(self.terminals)))
            next_reconcile = 0.0
            while not stop.is_set() and not self._stop.is_set():
                now = time.monotonic()
                self._drain(subscriber, now)
                if now >= next_reconcile:
                    self._reconcile(now)
                    next_reconcile = now + self.crew.reconcile_s
                for terminal in self.terminals.values():
                    try:
                        self._step(terminal, publisher, now)
                    except Exception:  # the loop boundary: one crew's trouble stops no other
                        log.exception("terminal step failed: unit=%s", terminal.unit.id)
                stop.wait(self.crew.tick_s)
        finally:
            subscriber.stop()
            publisher.close(timeout=2)

    # -- what the terminal hears --

    def _drain(self, subscriber: Subscriber, now: float) -> None:
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return
            subscriber.ack(message)  # a terminal's copy: nothing to keep once read
            try:
                body = json.loads(message.payload)
                assignment = body["assignment"]
                terminal = self.terminals.get(assignment["unit_id"])
            except (ValueError, KeyError, TypeError):
                continue
            if terminal is None:
                continue
            if body.get("type") == "assignment":
                self._take(terminal, assignment, now)
            elif (
                body.get("type") == "stand_down"
                and terminal.job
                and terminal.job.assignment_id == assignment.get("assignment_id")
            ):
                terminal.job = None

    def _reconcile(self, now: float) -> None:
        """Ask the API for each unit's open assignments: a missed message or a restart loses nothing."""
        for terminal in self.terminals.values():
            status, rows = self._call("GET", "/assignments?state=assigned&state=accepted&state=on_scene", terminal)
            if status != 200 or not isinstance(rows, list):
                continue
            if not terminal.ready:
                _, unit = self._call("GET", f"/units/{terminal.unit.id}", terminal)
                if isinstance(unit, dict):
                    terminal.lat, terminal.lon = unit["lat"], unit["lon"]
                terminal.ready = True
            open_ids = {r["assignment_id"] for r in rows}
            if terminal.job and terminal.job.assignment_id not in open_ids:
                terminal.job = None
            if terminal.job is None and rows:
                self._take(terminal, rows[-1], now)

    def _take(self, terminal: _Terminal, assignment: dict[str, Any], now: float) -> None:
        if terminal.job and terminal.job.assignment_id == assignment["assignment_id"]:
            return
        state = assignment.get("state", "assigned")
        if state not in _OPEN:
            return
        job = _Job(
            assignment_id=int(assignment["assignment_id"]),
            lat=assignment.get("lat"),
            lon=assignment.get("lon"),
            state=state,
            plan=plan(self.seed, int(assignment["assignment_id"]), self.crew),
            taken_at=now,
        )
        if state != "assigned":
            job.accepted_at = now
        if state == "on_scene":
            job.arrived_at = now
        terminal.job = job
        log.info(
            "terminal has an assignment: unit=%s assignment=%s no_show=%s",
            terminal.unit.id,
            job.assignment_id,
            job.plan.no_show,
        )

    # -- what the crew does --

    def _step(self, terminal: _Terminal, publisher: Publisher, now: float) -> None:
        job = terminal.job
        if job is None:
            self._go_home(terminal, publisher, now)
            return
        p = job.plan
        if job.state == "assigned":
            if now - job.taken_at >= p.accept_after_s:
                self._act(terminal, job, "accept", None, now)
            return
        if job.state == "accepted":
            if p.no_show:
                if now - (job.accepted_at or now) >= self.crew.give_up_after_s:
                    note = "could not reach the scene"
                    self._act(terminal, job, "clear", {"outcome": "no_action", "note": note}, now)
                return
            if terminal.unit.kind == "post" or job.lat is None or job.lon is None:
                if now - (job.accepted_at or now) >= p.report_after_s:
                    self._act(terminal, job, "on-scene", None, now)
                return
            radius = self.config.dispatch.on_scene_radius_m
            if self._move(terminal, job.lat, job.lon, publisher, now, stop_within=radius / 2):
                job.state, job.arrived_at = "on_scene", now  # the dispatcher marks it on scene by GPS
                self.stats.arrived += 1
            return
        if job.state == "on_scene":
            if job.arrived_at is None:
                job.arrived_at = now
            if now - job.arrived_at >= p.dwell_s:
                self._act(terminal, job, "clear", {"outcome": p.outcome, "note": "cleared by the crew"}, now)

    def _act(self, terminal: _Terminal, job: _Job, action: str, body: dict[str, Any] | None, now: float) -> None:
        status, answer = self._call("POST", f"/assignments/{job.assignment_id}/{action}", terminal, body)
        if status == 200:
            if action == "accept":
                job.state, job.accepted_at = "accepted", now
                self.stats.accepted += 1
                self.stats.no_shows += int(job.plan.no_show)
            elif action == "on-scene":
                job.state, job.arrived_at = "on_scene", now
                self.stats.arrived += 1
            else:
                terminal.job = None
                self.stats.cleared += 1
        elif status in (404, 409):
            # Stood down, reassigned or resolved from the console meanwhile: nothing left to do.
            log.info("terminal action refused: unit=%s action=%s status=%s", terminal.unit.id, action, status)
            if action == "clear" or not isinstance(answer, dict) or answer.get("state") not in _OPEN:
                terminal.job = None
        elif status:
            self.stats.errors.append(f"{action} {job.assignment_id}: {status} {answer}")

    def _go_home(self, terminal: _Terminal, publisher: Publisher, now: float) -> None:
        if terminal.unit.kind == "post" or not terminal.ready:
            return
        home = terminal.unit.position
        if distance_m(terminal.lat, terminal.lon, home.lat, home.lon) > 5:
            self._move(terminal, home.lat, home.lon, publisher, now, stop_within=5)
        elif now - terminal.last_fix >= self.crew.idle_fix_s:
            self._publish(terminal, publisher, now)

    def _move(
        self, terminal: _Terminal, lat: float, lon: float, publisher: Publisher, now: float, *, stop_within: float
    ) -> bool:
        """One tick of driving towards (lat, lon); True once within ``stop_within`` metres."""
        left = distance_m(terminal.lat, terminal.lon, lat, lon)
        if left <= stop_within:
            self._publish(terminal, publisher, now)  # the dispatcher sees the unit there by its GPS
            return True
        step = terminal.speed_mps * self.crew.speed_factor * self.crew.tick_s / self.config.dispatch.route_factor
        share = min(1.0, step / left) if left else 1.0
        if left - step <= stop_within:
            share = min(1.0, (left - stop_within * 0.5) / left)
        terminal.lat += (lat - terminal.lat) * share
        terminal.lon += (lon - terminal.lon) * share
        self._publish(terminal, publisher, now)
        return distance_m(terminal.lat, terminal.lon, lat, lon) <= stop_within

    def _publish(self, terminal: _Terminal, publisher: Publisher, now: float) -> None:
        topic = self.config.dispatch.unit_position_topic.replace("{unit}", terminal.unit.id)
        fix = {"lat": round(terminal.lat, 7), "lon": round(terminal.lon, 7), "time": datetime.now(UTC).isoformat()}
        publisher.publish(topic, json.dumps(fix).encode(), qos=1)
        terminal.last_fix = now

    # -- HTTP --

    def _call(self, method: str, path: str, terminal: _Terminal, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, JSON answer); status 0 when the API cannot be reached (tried again next tick)."""
        request = urllib.request.Request(
            self.api_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {terminal.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"null")
            except ValueError:
                return exc.code, None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.debug("API not reachable: path=%s error=%s", path, exc)
            return 0, None
