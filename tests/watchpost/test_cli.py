"""The command line: `watchpost parse` prints normalised events or the dead-letter reason with exit 2."""

from __future__ import annotations

import json

from tests.conftest import FIXTURES
from watchpost.cli import main


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
    """check-config on a broken file exits 2 and names the file and line."""
    bad = tmp_path / "cfg.yaml"
    bad.write_text("timezone: Asia/Shanghai\ningest:\n  batch_max: 0\n", encoding="utf-8")
    assert main(["--config", str(bad), "check-config"]) == 2
    assert f"{bad}:3: ingest.batch_max" in capsys.readouterr().err
    assert main(["check-config"]) == 0
    assert "20 devices" in capsys.readouterr().out
