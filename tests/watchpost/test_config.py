"""Configuration: the demo tree validates, and a wrong file fails with its file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchpost.config import ConfigError, ReloadError, Route, WatchpostConfig, load_config, zone_changes

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo"


def _demo_copy(tmp_path: Path) -> Path:
    target = tmp_path / "cfg"
    target.mkdir()
    for f in DEMO.glob("*.yaml"):
        (target / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    return target


def test_demo_configuration_has_every_device_kind_and_two_communities():
    """The demo config has two communities and every device kind, with units and hotlists."""
    config = load_config(DEMO)
    assert len(config.sites) == 2
    kinds = {d.kind for d in config.devices}
    assert kinds == {
        "gate",
        "lpr",
        "face_capture",
        "checkpoint",
        "camera",
        "alarm_button",
        "rfid_reader",
        "gps_tracker",
    }
    assert {d.site for d in config.devices} == {s.id for s in config.sites}
    assert config.units and config.hotlists.plates
    assert config.timezone == "Asia/Shanghai"


def test_unknown_field_is_reported_with_file_and_line(tmp_path):
    """A misspelt field names the file, its line and the path of the field."""
    cfg = _demo_copy(tmp_path)
    devices = cfg / "devices.yaml"
    text = devices.read_text(encoding="utf-8").replace(
        "    heartbeat_s: 300\n", "    heartbeat_s: 300\n    colour: red\n", 1
    )
    devices.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    colour: red") + 1
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.problems == [f"{devices}:{line}: devices.0.colour: unknown field (a typo?)"]


def test_device_on_unknown_site_is_reported_at_its_site_line(tmp_path):
    """A device naming a site that does not exist fails at that device's site line."""
    cfg = _demo_copy(tmp_path)
    devices = cfg / "devices.yaml"
    text = devices.read_text(encoding="utf-8").replace(
        "    site: bamboo\n    format: gat1400", "    site: bambo\n    format: gat1400", 1
    )
    devices.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    site: bambo") + 1
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    (problem,) = err.value.problems
    assert problem.startswith(f"{devices}:{line}: devices.")
    assert "unknown site 'bambo'" in problem


def test_wrong_value_types_and_zones_are_each_reported(tmp_path):
    """Several problems are all listed, each with its own line: a bad zone, a negative number."""
    cfg = _demo_copy(tmp_path)
    (cfg / "watchpost.yaml").write_text("timezone: Mars/Olympus\ningest:\n  batch_max: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    text = "\n".join(err.value.problems)
    assert f"{cfg / 'watchpost.yaml'}:1: timezone: unknown time zone 'Mars/Olympus'" in text
    assert f"{cfg / 'watchpost.yaml'}:3: ingest.batch_max: Input should be greater than or equal to 1" in text


def test_yaml_syntax_error_names_the_line(tmp_path):
    """Broken YAML is reported with the file and line, not a traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - id: a\n    name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert err.value.problems[0].startswith(f"{bad}:")
    assert "YAML syntax" in err.value.problems[0]


def test_section_defined_twice_across_files_is_refused(tmp_path):
    """Two files of one folder may not both define a section."""
    cfg = _demo_copy(tmp_path)
    (cfg / "zz-extra.yaml").write_text("units: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.problems == [f"{cfg / 'zz-extra.yaml'}:1: section 'units' is also defined in another file"]


def test_duplicate_alias_across_devices_is_refused(tmp_path):
    """One payload identity may not name two devices."""
    cfg = _demo_copy(tmp_path)
    devices = cfg / "devices.yaml"
    text = devices.read_text(encoding="utf-8").replace(
        'aliases: ["bc:5e:33:62:2a:5c"]', 'aliases: ["A4:D5:C2:24:DD:74"]'
    )
    devices.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "already belongs to device 'lotus-gate-n'" in err.value.problems[0]


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("watchpost/devices/{device}/#", "watchpost/devices/gate-1/events", (True, "gate-1")),
        ("watchpost/devices/{device}/#", "watchpost/devices/gate-1", (True, "gate-1")),
        ("watchpost/devices/{device}/#", "watchpost/other/gate-1/x", (False, None)),
        ("frigate/events", "frigate/events", (True, None)),
        ("frigate/events", "frigate/events/x", (False, None)),
        ("hik/+/{device}/alarm", "hik/site9/cam.7/alarm", (True, "cam.7")),
    ],
)
def test_route_matches_topics_and_extracts_the_device(pattern, topic, expected):
    """A route matches MQTT topics like its filter does and yields the {device} level."""
    assert Route(topic=pattern).match(topic) == expected


def test_route_refuses_wildcards_inside_a_level():
    """A route with '#' in the middle or a partial wildcard is refused."""
    with pytest.raises(ValueError):
        Route(topic="a/#/b")
    with pytest.raises(ValueError):
        Route(topic="a/dev+/b")


def test_route_subscription_replaces_the_device_level_and_widens_exact_topics():
    """{device} subscribes as '+', and an exact topic as 'topic/#' (which matches the topic itself)."""
    assert Route(topic="watchpost/devices/{device}/#").subscription == "watchpost/devices/+/#"
    assert Route(topic="frigate/events").subscription == "frigate/events/#"
    assert Route(topic="frigate/events").match("frigate/events/extra") == (False, None)


def test_the_demo_camera_counts_people_with_a_gathering_rule_on_its_square():
    """The demo's square camera takes MQTT frames, uses the synthetic model and has a gathering rule."""
    config = load_config(DEMO)
    camera = config.device_index["lotus-cam-square"]
    assert camera.crowd is not None and camera.crowd.from_mqtt and camera.crowd.model == "synthetic"
    assert camera.crowd.topic_for(camera.id) == "watchpost/cameras/lotus-cam-square/frame"
    (zone,) = camera.zones
    assert zone.gathering is not None and zone.gathering.threshold == 9
    assert zone.area_m2 is None and camera.zone_area_m2(zone) == pytest.approx(600), "the area is the ground's"


_GROUND = """      ground:                      # the square's corners on the picture and paced out on the ground
        - {pixel: [120, 1060], metres: [0, 0]}
        - {pixel: [1800, 1060], metres: [16, 0]}
        - {pixel: [1800, 200], metres: [24, 25]}
        - {pixel: [120, 200], metres: [-8, 25]}
"""
_NO_RULE = [("          threshold: 9 ", "          # "), ("          growth_factor: 2.5\n", "")]
_NO_AREA = [
    ("          threshold: 9 ", "          density_per_m2: 0.5\n          threshold: 9 "),
    (_GROUND, ""),
]


def test_a_zones_own_area_wins_over_the_ground_planes(tmp_path):
    """A zone given area_m2 keeps it; without ground points and area a zone has none."""
    cfg = _demo_copy(tmp_path)
    devices = cfg / "devices.yaml"
    text = devices.read_text(encoding="utf-8")
    polygon = "polygon: [[120, 200], [1800, 200], [1800, 1060], [120, 1060]]"
    devices.write_text(text.replace(polygon, polygon + "\n        area_m2: 450"), encoding="utf-8")
    camera = load_config(cfg).device_index["lotus-cam-square"]
    assert camera.zone_area_m2(camera.zones[0]) == 450
    devices.write_text(text.replace(_GROUND, ""), encoding="utf-8")
    camera = load_config(cfg).device_index["lotus-cam-square"]
    assert camera.crowd.ground_plane is None and camera.zone_area_m2(camera.zones[0]) is None


@pytest.mark.parametrize(
    ("edits", "where", "message"),
    [
        (_NO_RULE, "gathering", "a gathering rule needs a threshold, a density_per_m2 or a growth_factor"),
        (_NO_AREA, "gathering.density_per_m2", "a density needs the zone's area_m2, or the camera's ground points"),
        (
            [("[1800, 200], metres: [24, 25]", "[960, 1060], metres: [8, 0]")],
            "crowd.ground",
            "points 1, 2 and 3 lie on one line",
        ),
        (  # the far corners 25 m on seen at y = 700, not 200: the ground's horizon comes down to y = 340
            [("pixel: [1800, 200]", "pixel: [1800, 700]"), ("pixel: [120, 200]", "pixel: [120, 700]")],
            "zones.0.polygon",
            "zone 'square': (120, 200) is at or above the horizon",
        ),
        (
            [("      source: mqtt\n", "      source: mqtt\n      alert: crowd_gatherng\n")],
            "crowd.alert",
            "unknown alert",
        ),
        (
            [("      model: synthetic\n", "      night_model: configs/site/models/night.model\n")],
            "crowd",
            "night_model needs model",
        ),
        (
            [("      source: mqtt\n", "      source: mqtt\n      view_alert: camera_fault\n")],
            "crowd.view_alert",
            "unknown alert type 'camera_fault'",
        ),
        (
            [("      source: mqtt\n", "      source: mqtt\n      topic: watchpost/devices/{device}/frame\n")],
            "crowd.topic",
            "falls under the ingest route",
        ),
        ([("release_threshold: 6\n", "release_threshold: 12\n")], "gathering", "must not exceed threshold"),
        ([("      sample_fps: 2\n", "      sample_fps: 0\n")], "crowd.sample_fps", "greater than 0"),
        (
            [("      source: mqtt\n", "      source: rtsp://cam/1\n      snapshot: true\n")],
            "crowd",
            "snapshot: true needs an http:// or https:// source",
        ),
    ],
)
def test_camera_crowd_mistakes_are_reported_at_their_line(tmp_path, edits, where, message):
    """A wrong crowd or gathering setting fails with the file, the line and the reason."""
    cfg = _demo_copy(tmp_path)
    devices = cfg / "devices.yaml"
    text = devices.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new, 1)
    devices.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    (problem,) = err.value.problems
    assert problem.startswith(f"{devices}:") and f".{where}:" in problem and message in problem, problem


def test_crowd_on_a_device_that_is_not_a_camera_is_refused(tmp_path):
    """Only a camera may have a crowd source; the error names the device's crowd line."""
    cfg = _demo_copy(tmp_path)
    devices = cfg / "devices.yaml"
    text = devices.read_text(encoding="utf-8").replace(
        "    heartbeat_s: 300\n", "    heartbeat_s: 300\n    crowd: {source: mqtt}\n", 1
    )
    devices.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    crowd: {source: mqtt}") + 1
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.problems == [
        f"{devices}:{line}: devices.0.crowd: only cameras count people; this device is a gate"
    ]


def _with(config, device_id: str, **changes):
    """``config`` with one device's fields replaced (re-validated)."""
    doc = config.model_dump(mode="json")
    for device in doc["devices"]:
        if device["id"] == device_id:
            device.update(changes)
    return WatchpostConfig.model_validate(doc)


def test_a_reload_takes_up_camera_zones_and_refuses_anything_else_naming_it():
    """zone_changes names the cameras whose zones or rules changed; any other change is a ReloadError saying what."""
    config = load_config(DEMO)
    square = config.device_index["lotus-cam-square"]
    zones = [z.model_dump(mode="json") for z in square.zones]
    entrance = {"id": "entrance", "polygon": [[0, 0], [400, 0], [400, 300], [0, 300]]}
    assert zone_changes(config, config) == []
    assert zone_changes(config, _with(config, "lotus-cam-square", zones=[*zones, entrance])) == ["lotus-cam-square"]
    zones[0]["gathering"]["threshold"] = 15
    assert zone_changes(config, _with(config, "lotus-cam-square", zones=zones)) == ["lotus-cam-square"]

    moved = _with(
        config, "lotus-cam-square", zones=zones, crowd={**square.crowd.model_dump(mode="json"), "sample_fps": 5}
    )
    with pytest.raises(ReloadError, match=r"restart to apply: device lotus-cam-square changed \(crowd\)"):
        zone_changes(config, moved)
    doc = config.model_dump(mode="json")
    doc["devices"] = doc["devices"][1:]
    doc["timezone"] = "UTC"
    with pytest.raises(ReloadError) as err:
        zone_changes(config, WatchpostConfig.model_validate(doc))
    assert "timezone changed" in str(err.value) and f"device {config.devices[0].id} removed" in str(err.value)
