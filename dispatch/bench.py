"""``watchpost bench alerts``: from a device's MQTT publish to the alert on the console's stream
and to the assigned unit's MQTT topic, under a background of ordinary events; and dispatch of
one alert among 1,000 units.

Everything runs as it is deployed, each in its own process: an ingest worker (rules in its
transaction), the dispatcher, the API, and a publisher of background traffic; this process
publishes the probes (emergency-button presses), reads the Server-Sent Events stream and
listens on the units' topics. Beside each figure, the same run measures its floor: one bare
MQTT hop on the same broker (a probe's path has two: device to ingest, dispatcher to unit),
and for dispatch the ranking of 1,000 units without the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import httpx

from dispatch import actions
from dispatch.planner import Target, rank_units
from ingest.bench import _bench_config, _corpus, _publisher
from ingest.mqtt import BrokerAddress, Publisher, Subscriber
from ingest.normalise import Normaliser
from watchpost import store
from watchpost.config import ApiKeyConfig, EventRule, UnitConfig, WatchpostConfig
from watchpost.embedded import free_port, service_processes
from watchpost.model import AlertDraft, Outcome, ReceivedMessage, Severity, UnitStatus

__all__ = ["run_alerts_bench"]

_PROBE_DEVICE = "lotus-sos-1"
_BENCH_UNITS = 60  # enough free units that every probe gets its three tiers


def run_alerts_bench(
    *,
    config: WatchpostConfig,
    database_url: str,
    broker_url: str,
    background_rate: float,
    probes: int,
    probe_interval: float,
    as_json: bool,
) -> int:
    """Measure, print the figures (or one JSON object); return the exit status."""
    say = (lambda *_: None) if as_json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    tag = uuid.uuid4().hex[:8]
    key = secrets.token_urlsafe(24)
    cfg = _config(config, tag, key)
    broker = BrokerAddress.parse(broker_url)
    with store.scratch_database(database_url, config=cfg) as db_url:
        with store.connect(db_url) as conn:
            store.sync_configuration(conn, config=cfg)
        say(f"bench: broker {broker}; scratch database; {len(cfg.units)} units; probe = emergency button press")
        say("bench: floor: one MQTT hop on the same broker (publish -> subscriber), 200 messages...")
        hop_p50, hop_p99 = _mqtt_hop(broker, tag)
        say(f"bench:   p50 {hop_p50:.1f} ms, p99 {hop_p99:.1f} ms")
        say(f"bench: {probes} probes every {probe_interval}s over {background_rate:,.0f} msg/s of ordinary events...")
        sse, unit, offered = _end_to_end(cfg, db_url, broker_url, key, background_rate, probes, probe_interval, say)
        say("bench: dispatch of one critical alert among 1,000 units (database transaction), 50 runs...")
        dispatch_ms, rank_ms = _dispatch_1000(cfg, db_url)
    sse_p50, sse_p99 = _percentiles(sse)
    unit_p50, unit_p99 = _percentiles(unit)
    report = {
        "sse_p50_ms": round(sse_p50, 2),
        "sse_p99_ms": round(sse_p99, 2),
        "unit_mqtt_p50_ms": round(unit_p50, 2),
        "unit_mqtt_p99_ms": round(unit_p99, 2),
        "background_msgs_per_s": round(offered, 1),
        "dispatch_1000_units_ms": round(dispatch_ms, 2),
        "rank_1000_units_ms": round(rank_ms, 3),
        "mqtt_hop_p50_ms": round(hop_p50, 2),
        "mqtt_hop_p99_ms": round(hop_p99, 2),
        "probes": len(sse),
        "broker": str(broker),
    }
    if as_json:
        print(json.dumps(report))
    else:
        print(
            f"publish -> alert on the SSE stream      : p50 {sse_p50:6.1f} ms, p99 {sse_p99:6.1f} ms"
            f"  ({len(sse)} probes; goal p99 < 100 ms)\n"
            f"publish -> assignment on unit's topic   : p50 {unit_p50:6.1f} ms, p99 {unit_p99:6.1f} ms\n"
            f"  floor, one bare MQTT hop (path has 2) : p50 {hop_p50:6.1f} ms, p99 {hop_p99:6.1f} ms\n"
            f"background load, ordinary events        : {offered:8,.0f} msg/s offered (goal 2,000)\n"
            f"dispatch among 1,000 units, DB included : {dispatch_ms:6.2f} ms median (goal < 5 ms)\n"
            f"  floor, ranking 1,000 units in memory  : {rank_ms:6.3f} ms"
        )
    return 0


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --- configuration ------------------------------------------------------------------------------


def _config(config: WatchpostConfig, tag: str, key: str) -> WatchpostConfig:
    """Own topics; every press a new alert (no folding); many units; an operator API key."""
    cfg = _bench_config(config, tag)
    rng = random.Random(7)
    units = list(cfg.units)
    for i in range(_BENCH_UNITS):
        site = cfg.sites[i % len(cfg.sites)]
        units.append(
            UnitConfig(
                id=f"bench-{i:03d}",
                kind=("foot", "ebike", "car")[i % 3],
                site=site.id,
                position={
                    "lat": site.position.lat + rng.uniform(-0.004, 0.004),
                    "lon": site.position.lon + rng.uniform(-0.004, 0.004),
                },
            )
        )
    dispatch = cfg.dispatch.model_copy(
        update={
            "unit_topic": f"bench{tag}/units/{{unit}}/assignments",
            "unit_position_topic": f"bench{tag}/units/{{unit}}/position",
            "unit_status_topic": f"bench{tag}/units/{{unit}}/status",
        }
    )
    access = cfg.access.model_copy(
        update={
            "api_keys": [
                *cfg.access.api_keys,
                ApiKeyConfig(name="bench", role="operator", key_sha256=hashlib.sha256(key.encode()).hexdigest()),
            ]
        }
    )
    alerts = cfg.alerts.model_copy(update={"dedup_window_s": 0})
    return cfg.model_copy(update={"units": units, "dispatch": dispatch, "access": access, "alerts": alerts})


def _ordinary(cfg: WatchpostConfig, n: int) -> list[tuple[str, bytes]]:
    """Background traffic that raises no alert: the simulator's mix without alarms, hits and doors."""
    alerting = {(k, c) for r in cfg.rules if isinstance(r, EventRule) for k in r.kinds for c in (r.codes or ["*"])}
    hot = {e.value for e in cfg.hotlists.plates} | {e.value.upper() for e in cfg.hotlists.rfid_tags}
    normaliser = Normaliser(cfg)
    now = datetime.now(UTC)
    out: list[tuple[str, bytes]] = []
    seed = 11
    while len(out) < n:
        for topic, payload in _corpus(cfg, n, seed=seed):
            events = normaliser.normalise(ReceivedMessage(topic=topic, payload=payload, received_at=now)).events
            if any(
                (e.kind.value, e.code) in alerting
                or (e.kind.value, "*") in alerting
                or e.plate in hot
                or str(e.attributes.get("tag", "")).upper() in hot
                or e.attributes.get("access_result") == "denied"
                or e.code in ("door_open", "forced_open", "held_open", "always_open")
                or e.kind.value == "gps_position"
                for e in events
            ):
                continue
            out.append((topic, payload))
            if len(out) == n:
                break
        seed += 1
    return out


# --- the floor: one MQTT hop --------------------------------------------------------------------


def _mqtt_hop(broker: BrokerAddress, tag: str, n: int = 200) -> tuple[float, float]:
    arrived: dict[int, float] = {}
    topic = f"bench{tag}/hop"

    def on(message: ReceivedMessage) -> None:
        arrived[int(message.payload)] = time.time()
        sub.ack(message)

    sub = Subscriber(broker, client_id=f"bench-{tag}-hop", filters=[topic], on_message=on, session_expiry_s=0)
    sub.start()
    try:
        if not sub.wait_ready(10):
            raise RuntimeError(f"cannot subscribe: {sub.detail}")
        sent: dict[int, float] = {}
        with Publisher(broker) as pub:
            for i in range(n):
                sent[i] = time.time()
                pub.publish(topic, str(i).encode())
                time.sleep(0.005)
        deadline = time.monotonic() + 10
        while len(arrived) < n and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sub.stop()
    return _percentiles([(arrived[i] - sent[i]) * 1000 for i in arrived])


# --- end to end ---------------------------------------------------------------------------------


def _services(
    cfg: WatchpostConfig, db_url: str, broker_url: str, port: int, tag: str
) -> contextlib.AbstractContextManager[dict[str, subprocess.Popen[bytes]]]:
    """The ingest worker, the dispatcher and the API, each in its own process, as deployed."""
    commands = {
        "ingest": ["ingest", "--worker-id", f"bench-{tag}"],
        "dispatch": ["dispatch", "--name", f"bench-{tag}"],
        "api": ["api"],
    }
    return service_processes(cfg, db_url, broker_url, port, commands)


def _end_to_end(
    cfg: WatchpostConfig,
    db_url: str,
    broker_url: str,
    key: str,
    background_rate: float,
    probes: int,
    probe_interval: float,
    say: Any,
) -> tuple[list[float], list[float], float]:
    tag = cfg.ingest.share_group
    port = free_port()
    broker = BrokerAddress.parse(broker_url)
    topic = cfg.ingest.routes[0].topic.replace("{device}", _PROBE_DEVICE).replace("#", "events")
    seconds = probes * probe_interval + 4
    background = _ordinary(cfg, int(background_rate * seconds))
    sse_seen: dict[str, tuple[int, float]] = {}  # alert first_seen -> (alert id, arrival)
    unit_seen: dict[int, float] = {}  # alert id -> first assignment arrival
    sent: dict[str, float] = {}  # probe time (ISO) -> publish time
    stop = threading.Event()

    def on_unit(message: ReceivedMessage) -> None:
        body = json.loads(message.payload)
        if body.get("type") == "assignment":
            unit_seen.setdefault(body["assignment"]["alert_id"], time.time())
        listener.ack(message)

    listener = Subscriber(
        broker,
        client_id=f"bench-{tag}-units",
        on_message=on_unit,
        session_expiry_s=0,
        filters=[cfg.dispatch.unit_topic.replace("{unit}", "+")],
    )
    with ExitStack() as stack:
        stack.enter_context(_services(cfg, db_url, broker_url, port, tag))
        listener.start()
        stack.callback(listener.stop)
        if not listener.wait_ready(10):
            raise RuntimeError(f"cannot subscribe to unit topics: {listener.detail}")
        reader = threading.Thread(target=_read_sse, args=(port, key, sse_seen, stop), daemon=True)
        reader.start()
        stack.callback(stop.set)
        time.sleep(1.0)
        with _publisher(broker, background, background_rate) as (go, sent_times), Publisher(broker) as pub:
            go()
            started = time.monotonic()
            for i in range(probes):
                ahead = started + 1.0 + i * probe_interval - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                at = datetime.now(UTC)
                payload = json.dumps(
                    {"kind": "alarm_button", "code": "press", "time": at.isoformat(), "id": f"probe-{tag}-{i}"}
                ).encode()
                sent[_iso(at)] = time.time()
                pub.publish(topic, payload)
                if i % 10 == 9:
                    say(f"bench:   {i + 1} probes sent")
                    _free_units(cfg, db_url)
            background_sent = sent_times()
        deadline = time.monotonic() + 10
        while (len(sse_seen) < probes or len(unit_seen) < probes) and time.monotonic() < deadline:
            time.sleep(0.05)
    offered = len(background_sent) / (background_sent[-1] - background_sent[0]) if len(background_sent) > 1 else 0.0
    sse, unit = [], []
    for first_seen, published in sent.items():
        if first_seen in sse_seen:
            alert_id, arrived = sse_seen[first_seen]
            sse.append((arrived - published) * 1000)
            if alert_id in unit_seen:
                unit.append((unit_seen[alert_id] - published) * 1000)
    if len(sse) < probes:
        say(f"bench:   warning: {probes - len(sse)} probes never reached the stream")
    return sse, unit, offered


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read_sse(port: int, key: str, seen: dict[str, tuple[int, float]], stop: threading.Event) -> None:
    """Read the console's stream; note when each new alert arrives, by its first sighting."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    try:
        _read_stream(port, headers, seen, stop)
    except httpx.HTTPError:
        if not stop.is_set():
            raise  # the API went away during the measurement, not at its end


def _read_stream(port: int, headers: dict[str, str], seen: dict[str, tuple[int, float]], stop: threading.Event) -> None:
    with httpx.stream("GET", f"http://127.0.0.1:{port}/stream", headers=headers, timeout=None) as response:
        response.raise_for_status()
        kind = ""
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "raised":
                arrived = time.time()
                alert = json.loads(line[5:])["alert"]
                first = datetime.fromisoformat(alert["first_seen"].replace("Z", "+00:00"))
                seen.setdefault(_iso(first), (alert["alert_id"], arrived))


def _free_units(cfg: WatchpostConfig, db_url: str) -> None:
    """Resolve the probes' alerts so that their units are free for the next ones (not measured)."""
    with store.connect(db_url) as conn:
        for alert in store.list_alerts(conn, states=["new", "dispatched", "acknowledged", "on_scene"], limit=1000):
            with conn.transaction():
                actions.resolve(
                    conn, config=cfg, alert_id=alert["alert_id"], outcome=Outcome.NO_ACTION, note="bench", actor="bench"
                )


# --- dispatch among 1,000 units -----------------------------------------------------------------


def _dispatch_1000(cfg: WatchpostConfig, db_url: str, runs: int = 50) -> tuple[float, float]:
    rng = random.Random(3)
    site = cfg.sites[0]
    units = [
        UnitConfig(
            id=f"k-{i:04d}",
            kind=("foot", "ebike", "car")[i % 3],
            site=cfg.sites[i % len(cfg.sites)].id,
            position={
                "lat": site.position.lat + rng.uniform(-0.05, 0.05),
                "lon": site.position.lon + rng.uniform(-0.05, 0.05),
            },
        )
        for i in range(1000)
    ]
    big = cfg.model_copy(update={"units": units})
    timings = []
    with store.connect(db_url) as conn:
        conn.execute("UPDATE units SET configured = false")
        store.sync_configuration(conn, config=big)
        for i in range(runs):
            draft = AlertDraft(
                type="emergency_button",
                severity=Severity.CRITICAL,
                title="bench",
                dedup_key=f"bench:{i}",
                site_id=site.id,
                occurred_at=datetime.now(UTC),
                rule="bench",
                lat=site.position.lat,
                lon=site.position.lon,
            )
            with conn.transaction():
                alert_id = store.raise_alert(conn, draft=draft, window_s=0, actor="bench").alert_id
            started = time.perf_counter()
            with conn.transaction():
                actions.dispatch_alert(conn, config=big, alert_id=alert_id, now=datetime.now(UTC))
            timings.append((time.perf_counter() - started) * 1000)
            with conn.transaction():
                actions.resolve(conn, config=big, alert_id=alert_id, outcome=Outcome.NO_ACTION, note="", actor="bench")
        states = store.unit_states(conn, status=UnitStatus.AVAILABLE)
    target = Target(site.id, site.position.lat, site.position.lon)
    ranks = []
    for _ in range(runs):
        started = time.perf_counter()
        rank_units(states, target, route_factor=cfg.dispatch.route_factor)
        ranks.append((time.perf_counter() - started) * 1000)
    assert len(states) >= 1000, len(states)
    return statistics.median(timings), statistics.median(ranks)
