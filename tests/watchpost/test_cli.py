"""The command line: `watchpost parse` prints normalised events or the dead-letter reason with exit 2;
`watchpost crowd run` counts a camera's frames, in one process or split over several."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

from detectors.crowd.simulator import FrameSimulator
from ingest.mqtt import BrokerAddress
from tests.conftest import FIXTURES, write_config
from tests.support import wait_for
from watchpost import store
from watchpost.cli import main
from watchpost.config import WatchpostConfig


def _parse(capsys, *args: str) -> tuple[int, list[dict], str]:
    code = main(["parse", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_parse_prints_one_json_line_per_event_with_utc_times(capsys):
    """A GA/T 1400 push with a zone-less PassTime is read in Asia/Shanghai and printed in UTC."""
    code, events, _ = _parse(capsys, str(FIXTURES / "formats" / "gat1400_motor_vehicle.json"))
    assert code == 0
    (event,) = events
    assert event["plate"] == "浙BY6H39" and event["kind"] == "plate_read"
    assert event["device_time"] == "2021-04-11T09:13:37Z"
    assert event["device_id"] == "bamboo-checkpoint"  # found by the DeviceID alias


def test_parse_with_device_uses_its_format_and_topic(capsys):
    """--device reads the payload as that device's and names it in the event."""
    sample = FIXTURES / "formats" / "dahua_traffic_junction.json"
    code, events, _ = _parse(capsys, str(sample), "--device", "bamboo-lpr-e")
    assert code == 0
    assert events[0]["device_id"] == "bamboo-lpr-e"
    assert events[0]["device_time"] == "2024-01-30T07:34:55Z"  # RealUTC, not the local-as-epoch UTC
    assert events[0]["topic"] == "watchpost/devices/bamboo-lpr-e/events"


def test_parse_of_a_bad_payload_exits_2_with_the_reason(capsys, tmp_path):
    """A malformed payload prints the dead-letter reason on stderr and exits with status 2."""
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"kind": "access", "time": ')
    code, events, err = _parse(capsys, str(bad))
    assert code == 2 and events == []
    assert err.startswith("dead letter: malformed_json:")


def test_parse_refuses_an_unknown_device_and_a_missing_file(capsys, tmp_path):
    """An unconfigured --device and an unreadable file are clear errors with status 2."""
    code, _, err = _parse(capsys, str(FIXTURES / "formats" / "hikvision_anpr.xml"), "--device", "nope")
    assert code == 2 and "unknown device 'nope'" in err
    code, _, err = _parse(capsys, str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err


def test_check_config_reports_file_and_line(capsys, tmp_path):
    """check-config on a broken file exits 2 and names the file and line; a good one says its cameras' zone areas."""
    bad = tmp_path / "cfg.yaml"
    bad.write_text("timezone: Asia/Shanghai\ningest:\n  batch_max: 0\n", encoding="utf-8")
    assert main(["--config", str(bad), "check-config"]) == 2
    assert f"{bad}:3: ingest.batch_max" in capsys.readouterr().err
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "20 devices" in out and "lotus-cam-square: ground plane from 4 points" in out and "square 600 m²" in out


def test_crowd_run_refuses_a_camera_that_does_not_count(capsys):
    """`crowd run --camera` naming a device without a crowd source exits 2 and lists the counting cameras."""
    assert main(["crowd", "run", "--camera", "bamboo-cam-market"]) == 2
    err = capsys.readouterr().err
    assert "not counting cameras: ['bamboo-cam-market']" in err and "lotus-cam-square" in err


@contextmanager
def _crowd_run(config: WatchpostConfig, path, database_url: str, broker_url: str, *extra: str):
    """`watchpost crowd run` as a process on ``config`` (written to ``path``), the demo cameras' frames published
    to it; at the end it gets SIGTERM and the returned dict its output (``out``)."""
    env = {**os.environ, "WATCHPOST_DATABASE_URL": database_url, "WATCHPOST_MQTT_URL": broker_url}
    command = [sys.executable, "-m", "watchpost.cli", "--config", str(write_config(config, path)), "crowd", "run"]
    command += extra
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop = threading.Event()
    frames = FrameSimulator(config=config, broker=BrokerAddress.parse(broker_url))
    threading.Thread(target=frames.run, args=(stop,), daemon=True).start()
    ended: dict[str, str] = {}
    try:
        yield proc, ended
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        ended["out"], _ = proc.communicate(timeout=30)


def test_crowd_run_counts_frames_published_to_the_camera_and_stops_on_sigterm(
    config, database_url, broker_url, db, tmp_path
):
    """The crowd worker command counts the demo camera's MQTT frames, reports its health, and stops cleanly."""
    doc = config.model_dump(mode="json")
    tag = config.ingest.share_group
    for device in doc["devices"]:
        if device.get("crowd"):
            device["crowd"]["topic"] = f"{tag}/cameras/{{device}}/frame"
    cfg = WatchpostConfig.model_validate(doc)
    with _crowd_run(cfg, tmp_path / "c.yaml", database_url, broker_url) as (proc, ended):
        status = wait_for(lambda: (store.camera_statuses(db).get("lotus-cam-square") or {}).get("frames", 0) > 0, 60)
        assert status, "the crowd worker counted no frame"
        assert db.execute("SELECT count(*) FROM observations").fetchone()[0] > 0
    out = ended["out"]
    assert proc.returncode == 0, out
    assert "crowd worker crowd-0 counting on lotus-cam-square" in out


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux)."""
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
        return [int(p) for p in f.read().split()]


def test_crowd_run_splits_its_cameras_over_processes_and_starts_a_killed_one_again(
    config, database_url, broker_url, db, tmp_path
):
    """`crowd run --processes 2` counts two cameras in two worker processes, each named and writing its own
    cameras' health; a process killed is started again and counts on, and SIGTERM stops them all."""
    doc = config.model_dump(mode="json")
    tag = config.ingest.share_group
    square = next(d for d in doc["devices"] if d["id"] == "lotus-cam-square")
    square["crowd"]["topic"] = f"{tag}/cameras/{{device}}/frame"
    doc["devices"].append({**square, "id": "lotus-cam-square-2", "aliases": [], "name": "广场全景 2"})
    cfg = WatchpostConfig.model_validate(doc)
    cameras = ("lotus-cam-square", "lotus-cam-square-2")

    def counted_since(since) -> set[str]:
        rows = db.execute("SELECT DISTINCT device_id FROM observations WHERE at > %s", (since,)).fetchall()
        return {d for (d,) in rows}

    with _crowd_run(cfg, tmp_path / "c.yaml", database_url, broker_url, "--processes", "2") as (proc, ended):
        statuses = wait_for(
            lambda: all((s := store.camera_statuses(db)).get(c, {}).get("frames", 0) > 0 for c in cameras) and s, 90
        )
        assert statuses, "the two cameras were not both counted"
        assert {statuses[c]["worker"] for c in cameras} == {"crowd-0-1", "crowd-0-2"}
        first = _children(proc.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        since = db.execute("SELECT now()").fetchone()[0]
        assert wait_for(lambda: len(set(_children(proc.pid)) - set(first)) == 1, 30), "the killed one not restarted"
        assert wait_for(lambda: counted_since(since) == set(cameras), 90), "a camera stopped counting"
        running = _children(proc.pid)
    out = ended["out"]
    assert proc.returncode == 0, out
    assert "crowd worker crowd-0: 2 processes" in out
    assert "ended (exit -9): starting it again in 1 s" in out
    assert not [p for p in running if os.path.exists(f"/proc/{p}") and "Z" not in _state(p)], "a process was left"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_crowd_run_takes_up_new_zones_on_sighup_and_refuses_a_broken_configuration(
    config, database_url, broker_url, db, tmp_path
):
    """SIGHUP makes `crowd run` read its configuration again: a zone added to the camera is counted without a
    restart; a file that does not validate is refused with the reason and counting goes on with the old zones."""
    doc = config.model_dump(mode="json")
    tag = config.ingest.share_group
    camera = next(d for d in doc["devices"] if d["id"] == "lotus-cam-square")
    camera["crowd"]["topic"] = f"{tag}/cameras/{{device}}/frame"
    path = tmp_path / "c.yaml"

    def zones() -> set[str]:
        rows = db.execute("SELECT DISTINCT zone FROM observations WHERE device_id = 'lotus-cam-square'").fetchall()
        return {z for (z,) in rows}

    with _crowd_run(WatchpostConfig.model_validate(doc), path, database_url, broker_url) as (proc, ended):
        assert wait_for(lambda: "square" in zones(), 60), "the crowd worker counted no frame"
        camera["zones"].append({"id": "gate-side", "polygon": [[0, 0], [960, 0], [960, 1080], [0, 1080]]})
        write_config(WatchpostConfig.model_validate(doc), path)
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "gate-side" in zones(), 30), "the reloaded zone was not counted"
        path.write_text("devices: [oops\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        since = db.execute("SELECT now()").fetchone()[0]
        counted_after = (
            "SELECT count(*) FROM observations WHERE device_id = 'lotus-cam-square' AND zone = 'gate-side' AND at > %s"
        )
        assert wait_for(lambda: db.execute(counted_after, (since,)).fetchone()[0] > 0, 30)
    out = ended["out"]
    assert proc.returncode == 0, out
    assert "crowd worker crowd-0: configuration reloaded: zones of lotus-cam-square taken up" in out
    assert "crowd worker crowd-0: configuration not reloaded: invalid configuration" in out


def _camera_config(
    config: WatchpostConfig, tmp_path, *, model: str, corner: tuple[int, int] = (1800, 1060), night: str | None = None
):
    doc = config.model_dump(mode="json")
    camera = next(d for d in doc["devices"] if d["id"] == "lotus-cam-square")
    camera["crowd"]["model"] = model
    camera["crowd"]["night_model"] = night
    camera["zones"][0]["polygon"][2] = list(corner)
    return write_config(WatchpostConfig.model_validate(doc), tmp_path / "c.yaml")


def test_check_config_reads_each_cameras_model_and_checks_its_zones_fit_the_picture(config, tmp_path, capsys):
    """A camera model (or night model) that cannot be read, or a zone corner outside the camera's picture, fails
    check-config (exit 2, saying which camera and why); readable models and fitting zones pass with a line each."""
    from detectors.crowd import synthetic as syn

    missing = _camera_config(config, tmp_path, model=str(tmp_path / "nope.model"))
    assert main(["--config", str(missing), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "camera lotus-cam-square: crowd.model:" in err and "not a camera model" in err
    path = tmp_path / "square.model"
    syn.demo_model(frames=30).save(path)
    good = _camera_config(config, tmp_path, model=str(path))
    assert main(["--config", str(good), "check-config"]) == 0
    out = capsys.readouterr().out
    assert f"camera lotus-cam-square: model {path}" in out and "zones in 1920x1080 pixels" in out
    wide = _camera_config(config, tmp_path, model=str(path), corner=(2400, 1060))
    assert main(["--config", str(wide), "check-config"]) == 2
    assert "zone square: corner [2400, 1060] is outside its 1920x1080 picture" in capsys.readouterr().err
    no_night = _camera_config(config, tmp_path, model=str(path), night=str(tmp_path / "night.model"))
    assert main(["--config", str(no_night), "check-config"]) == 2
    assert "camera lotus-cam-square: crowd.night_model:" in capsys.readouterr().err
    with_night = _camera_config(config, tmp_path, model=str(path), night=str(path))
    assert main(["--config", str(with_night), "check-config"]) == 0
    assert f"camera lotus-cam-square: night model {path}" in capsys.readouterr().out


def test_a_reload_reaches_every_service_of_the_process_even_when_one_fails(config):
    """Reloader hands a zones-only change to each target (one raising does not stop the next) and says so; a
    service without zones only says it read it; a change beyond zones reaches no target."""
    from watchpost.cli import Reloader

    doc = config.model_dump(mode="json")
    next(d for d in doc["devices"] if d["id"] == "lotus-cam-square")["zones"][0]["gathering"]["threshold"] = 30
    redrawn = WatchpostConfig.model_validate(doc)
    got: list[WatchpostConfig] = []

    def broken(_config: WatchpostConfig) -> list[str]:
        raise RuntimeError("this service cannot take it")

    reloader = Reloader(lambda: redrawn, config, [broken, got.append], service="test")
    assert reloader.reload() == "test: configuration reloaded: zones of lotus-cam-square taken up"
    assert got == [redrawn] and reloader.config is redrawn
    idle = Reloader(lambda: redrawn, config, [], service="ingest worker 0")
    assert idle.reload() == "ingest worker 0: configuration read; camera zones are not used here"
    doc["timezone"] = "UTC"
    moved = Reloader(lambda: WatchpostConfig.model_validate(doc), config, [got.append], service="api")
    assert moved.reload().startswith("api: configuration not reloaded: only camera zones")
    assert got == [redrawn] and moved.config is config
