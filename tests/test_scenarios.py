"""Whole scenarios through every real part: devices publish over MQTT, an ingest worker raises
alerts in its transaction, the dispatcher sends units, the console reads the SSE stream, a
unit's GPS tracker reports it arriving, and the 1-3-5 statistics tell the truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from detectors.rules import RuleEngine
from dispatch.service import Dispatcher
from ingest.mqtt import BrokerAddress, Publisher
from ingest.pipeline import IngestWorker
from tests.api_fixtures import JWT_SECRET, KEYS
from tests.conftest import topic_for, write_config
from tests.support import canonical_payload, wait_for
from watchpost.config import NightWindow, WatchpostConfig

GATE = "lotus-gate-s"  # 30.2731, 120.1552
TRACKER = "lotus-gps-1"  # carried by lotus-ebike-1, ~110 m from the gate


class Stream:
    """The console's view: every SSE entry, in order, as (feed id, kind, body)."""

    def __init__(self, url: str, key: str) -> None:
        self.entries: list[tuple[int, str, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, key), daemon=True)
        self._thread.start()

    def _read(self, url: str, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with httpx.stream("GET", f"{url}/stream", params={"after": 0}, headers=headers, timeout=None) as r:
                entry: dict[str, str] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        if "data" in entry:
                            self.entries.append((int(entry["id"]), entry["event"], json.loads(entry["data"])))
                        entry = {}
                    elif not line.startswith(":"):
                        field, _, value = line.partition(":")
                        entry[field] = value.strip()
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise  # the server went away during the test, not at its end

    def first(self, kind: str, alert_id: int | None = None) -> dict | None:
        for _, k, body in list(self.entries):
            if k == kind and (alert_id is None or body.get("alert", {}).get("alert_id") == alert_id):
                return body
        return None

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def day_config(api_config: WatchpostConfig) -> WatchpostConfig:
    """Unit topics of this test's own and a fast dispatcher tick; the gate rule's night hours never now."""
    local = datetime.now(ZoneInfo(api_config.timezone))
    never = NightWindow(
        start=(local + timedelta(hours=2)).strftime("%H:%M"),
        end=(local + timedelta(hours=3)).strftime("%H:%M"),
        severity="critical",
    )
    rules = [r.model_copy(update={"night": never}) if r.name == "gate-forced" else r for r in api_config.rules]
    tag = uuid.uuid4().hex[:6]
    dispatch = api_config.dispatch.model_copy(
        update={
            "tick_s": 0.1,
            "unit_topic": f"s{tag}/units/{{unit}}/assignments",
            "unit_position_topic": f"s{tag}/units/{{unit}}/position",
            "unit_status_topic": f"s{tag}/units/{{unit}}/status",
        }
    )
    return api_config.model_copy(update={"rules": rules, "dispatch": dispatch})


@pytest.fixture
def scenario_config(day_config: WatchpostConfig) -> WatchpostConfig:
    """As day_config, but night now: a forced gate is critical."""
    local = datetime.now(ZoneInfo(day_config.timezone))
    night = NightWindow(
        start=(local - timedelta(hours=1)).strftime("%H:%M"),
        end=(local + timedelta(hours=1)).strftime("%H:%M"),
        severity="critical",
    )
    rules = [r.model_copy(update={"night": night}) if r.name == "gate-forced" else r for r in day_config.rules]
    return day_config.model_copy(update={"rules": rules})


def _services(cfg, database_url, broker_url, start_api, *, dispatcher: bool = True):
    worker = IngestWorker(
        config=cfg,
        database_url=database_url,
        broker=BrokerAddress.parse(broker_url),
        worker_id=f"scn-{uuid.uuid4().hex[:6]}",
        detector_factory=RuleEngine,
    ).start()
    assert worker.wait_ready(15), worker.subscriber.detail
    d = None
    if dispatcher:
        d = Dispatcher(
            config=cfg,
            database_url=database_url,
            broker=BrokerAddress.parse(broker_url),
            name=f"scn-{uuid.uuid4().hex[:6]}",
        ).start()
        assert d.leading.wait(10)
    api = start_api(config=cfg)
    return worker, d, api


def _publish(broker_url, cfg, device, payload):
    with Publisher(BrokerAddress.parse(broker_url)) as pub:
        pub.publish(topic_for(cfg, device), payload)


def _post_unmanned(api):
    """The north gate post is unmanned at night: the nearest mobile unit takes tier 1."""
    r = api.client("supervisor").post("/units/lotus-post-n/status", json={"status": "off_duty"})
    assert r.status_code == 200, r.text


def test_a_forced_gate_at_night_is_streamed_dispatched_reached_by_gps_resolved_and_counted_as_met(
    scenario_config, database_url, broker_url, db, start_api
):
    """Forced gate at night: critical alert on the SSE stream, the nearest unit on tier 1, its tracker
    reports it at the gate within 60 s, the unit clears, the operator resolves, compliance says met."""
    cfg = scenario_config
    worker, d, api = _services(cfg, database_url, broker_url, start_api)
    stream = Stream(api.url, KEYS["operator"])
    try:
        _post_unmanned(api)
        _publish(broker_url, cfg, GATE, canonical_payload("access", "forced_open", ref="night-1"))
        raised = wait_for(lambda: stream.first("raised"), timeout=10)
        assert raised, stream.entries
        alert = raised["alert"]
        assert (alert["type"], alert["severity"], alert["device_id"]) == ("gate_forced", "critical", GATE)
        alert_id = alert["alert_id"]
        dispatched = wait_for(lambda: stream.first("dispatched", alert_id), timeout=10)
        assert dispatched, stream.entries
        tier1 = next(a for a in dispatched["alert"]["assignments"] if a["tier"] == 1)
        assert tier1["unit_id"] == "lotus-ebike-1"
        gate = cfg.device_index[GATE].position
        for step, lat in enumerate((gate.lat + 0.0008, gate.lat + 0.0004, gate.lat + 0.0001)):
            _publish(
                broker_url,
                cfg,
                TRACKER,
                canonical_payload("gps_position", "position", lat=lat, lon=gate.lon, ref=f"fix-{step}"),
            )
            time.sleep(0.2)
        on_scene = wait_for(lambda: stream.first("on_scene", alert_id), timeout=10)
        assert on_scene, stream.entries
        seen = on_scene["alert"]
        took = datetime.fromisoformat(seen["on_scene_at"]) - datetime.fromisoformat(seen["created_at"])
        assert seen["state"] == "on_scene" and took < timedelta(seconds=60)
        ebike = api.client("patrol")
        r = ebike.post(f"/assignments/{tier1['assignment_id']}/clear", json={"outcome": "handled", "note": "door shut"})
        assert r.status_code == 200, r.text
        r = api.client("operator").post(f"/alerts/{alert_id}/resolve", json={"outcome": "handled", "note": "secured"})
        assert r.status_code == 200, r.text
        assert wait_for(lambda: stream.first("resolved", alert_id), timeout=10)
        rows = api.client("operator").get("/stats/compliance", params={"severity": "critical"}).json()
        tier1_row = next(r for r in rows if r["tier"] == 1 and r["site_id"] == "lotus")
        assert (tier1_row["met"], tier1_row["missed"], tier1_row["share_met"]) == (1, 0, 1.0)
    finally:
        stream.close()
        d.stop()
        worker.stop()


def test_a_unit_that_never_arrives_is_escalated_and_counted_as_a_miss(
    day_config, database_url, broker_url, db, start_api
):
    """A forced gate by day (major: tiers 1 and 2), tier 1 due at 3 s: nobody on scene, the stream shows
    the escalation to the next free unit, compliance counts a miss."""
    cfg = day_config.model_copy(
        update={
            "dispatch": day_config.dispatch.model_copy(
                update={"tier_deadlines_s": [3, 60, 90], "escalation_grace_s": 2}
            )
        }
    )
    worker, d, api = _services(cfg, database_url, broker_url, start_api)
    stream = Stream(api.url, KEYS["operator"])
    try:
        _post_unmanned(api)
        _publish(broker_url, cfg, GATE, canonical_payload("access", "forced_open", ref="day-2"))
        raised = wait_for(lambda: stream.first("raised"), timeout=10)
        assert raised, stream.entries
        alert_id = raised["alert"]["alert_id"]
        escalated = wait_for(lambda: stream.first("escalated", alert_id), timeout=15)
        assert escalated, stream.entries
        assert escalated["escalation"]["tier"] == 1 and escalated["escalation"]["unit_id"] == "bamboo-foot-1"
        tiers = {t["tier"]: t for t in escalated["alert"]["tiers"]}
        assert tiers[1]["state"] == "missed"
        rows = api.client("supervisor").get("/stats/compliance", params={"severity": "major"}).json()
        tier1_row = next(r for r in rows if r["tier"] == 1)
        assert (tier1_row["met"], tier1_row["missed"], tier1_row["share_met"]) == (0, 1, 0.0)
    finally:
        stream.close()
        d.stop()
        worker.stop()


def test_a_dispatcher_killed_mid_scenario_and_restarted_keeps_the_clocks_and_assignments(
    day_config, database_url, broker_url, db, start_api, tmp_path
):
    """SIGKILL of the dispatcher process after it sent the units: a new one escalates the missed tier on
    time, keeps the assignments it finds, and still marks the unit arriving later on scene by GPS."""
    cfg = day_config.model_copy(
        update={
            "dispatch": day_config.dispatch.model_copy(
                update={"tier_deadlines_s": [4, 60, 90], "escalation_grace_s": 30}
            )
        }
    )
    cfg_file = write_config(cfg, tmp_path / "cfg.yaml")
    env = {
        **os.environ,
        "WATCHPOST_DATABASE_URL": database_url,
        "WATCHPOST_MQTT_URL": broker_url,
        "WATCHPOST_LOG_LEVEL": "WARNING",
        "WATCHPOST_JWT_SECRET": JWT_SECRET,
    }

    def dispatcher(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "watchpost.cli", "--config", str(cfg_file), "dispatch", "--name", name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    worker, _, api = _services(cfg, database_url, broker_url, start_api, dispatcher=False)
    stream = Stream(api.url, KEYS["operator"])
    first = dispatcher("d-killed")
    second = None
    try:
        assert b"started" in first.stdout.readline()  # type: ignore[union-attr]
        _post_unmanned(api)
        _publish(broker_url, cfg, GATE, canonical_payload("access", "forced_open", ref="day-3"))
        dispatched = wait_for(lambda: stream.first("dispatched"), timeout=15)
        assert dispatched, stream.entries
        alert_id = dispatched["alert"]["alert_id"]
        before = {a["assignment_id"] for a in dispatched["alert"]["assignments"]}
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = dispatcher("d-restarted")
        escalated = wait_for(lambda: stream.first("escalated", alert_id), timeout=20)
        assert escalated, stream.entries
        after = {a["assignment_id"]: a for a in escalated["alert"]["assignments"]}
        assert before < set(after)  # the old assignments stand, one escalation added
        gate = cfg.device_index[GATE].position
        _publish(
            broker_url,
            cfg,
            TRACKER,
            canonical_payload("gps_position", "position", lat=gate.lat, lon=gate.lon, ref="late-fix"),
        )
        on_scene = wait_for(lambda: stream.first("on_scene", alert_id), timeout=15)
        assert on_scene, stream.entries
        tier1 = next(t for t in on_scene["alert"]["tiers"] if t["tier"] == 1)
        assert tier1["state"] == "missed" and tier1["arrived_at"] is not None
    finally:
        stream.close()
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(10)
        worker.stop()


def test_a_hotlisted_plate_read_through_mqtt_raises_and_a_clean_one_does_not(
    scenario_config, database_url, broker_url, db, start_api
):
    """A checkpoint reads 浙A1234S (stolen 浙A12345, one OCR confusion): an alert on the stream with the
    match quality; the clean plate read before it raised nothing."""
    cfg = scenario_config
    worker, d, api = _services(cfg, database_url, broker_url, start_api)
    stream = Stream(api.url, KEYS["operator"])
    try:
        _publish(
            broker_url,
            cfg,
            "bamboo-checkpoint",
            canonical_payload("plate_read", "plate", plate="浙A99999", ref="clean-1"),
        )
        _publish(
            broker_url,
            cfg,
            "bamboo-checkpoint",
            canonical_payload("plate_read", "plate", plate="浙A1234S", ref="hot-1"),
        )
        raised = wait_for(lambda: stream.first("raised"), timeout=10)
        assert raised, stream.entries
        detail = raised["alert"]["detail"]
        assert (raised["alert"]["type"], detail["listed"], detail["match_quality"]) == (
            "hotlist_plate",
            "浙A12345",
            "ocr_confusion",
        )
        time.sleep(0.5)
        assert [b["alert"]["type"] for _, k, b in stream.entries if k == "raised"] == ["hotlist_plate"]
        stored = db.execute("SELECT count(*) FROM events WHERE device_id = 'bamboo-checkpoint'").fetchone()[0]
        assert stored == 2
    finally:
        stream.close()
        d.stop()
        worker.stop()
