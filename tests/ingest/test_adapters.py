"""Vendor payload adapters: real samples, quirks, normalisers and hostile input."""

from __future__ import annotations

import json
import math
import random
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ingest import samples
from ingest.adapters import ADAPTERS, parse
from ingest.adapters._common import (
    MAX_DEPTH,
    dms_to_decimal,
    normalise_confidence,
    normalise_plate,
    parse_time,
    split_multipart,
)
from watchpost.model import AdaptError, DeadReason, EventKind, Reading, event_key

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FORMATS = FIXTURES / "formats"
MALFORMED = FIXTURES / "malformed"
CST = timezone(timedelta(hours=8))


def load(name: str) -> bytes:
    return (FORMATS / name).read_bytes()


def one(payload: bytes, topic: str = "watchpost/site-1/dev-1", **kwargs: Any) -> Reading:
    readings = parse(payload, topic=topic, **kwargs)
    assert len(readings) == 1, readings
    return readings[0]


def reason_of(payload: bytes, topic: str = "watchpost/site-1/dev-1", **kwargs: Any) -> DeadReason:
    with pytest.raises(AdaptError) as caught:
        parse(payload, topic=topic, **kwargs)
    return caught.value.reason


def edit_json(name: str, change: Any) -> bytes:
    data = json.loads(load(name))
    change(data)
    return json.dumps(data, ensure_ascii=False).encode()


# --------------------------------------------------------------------------- registry and selection


def test_registry_holds_every_vendor() -> None:
    """ADAPTERS names the five adapters, each with a name, a content sniff and an adapt function."""
    assert set(ADAPTERS) == {"canonical", "hikvision", "dahua", "gat1400", "frigate"}
    for name, adapter in ADAPTERS.items():
        assert adapter.name == name
        assert callable(adapter.detect) and callable(adapter.adapt)


def test_explicit_format_wins_over_content() -> None:
    """An explicit format is used even when the content sniff would pick another adapter."""
    assert reason_of(load("hikvision_access_face_pass.json"), format="frigate") is DeadReason.SCHEMA


def test_unknown_format_name_is_refused() -> None:
    """A format name with no adapter is UNKNOWN_FORMAT, naming the known ones."""
    with pytest.raises(AdaptError) as caught:
        parse(load("canonical_single.json"), topic="a/b", format="axis")
    assert caught.value.reason is DeadReason.UNKNOWN_FORMAT
    assert "hikvision" in caught.value.detail


def test_topic_segment_selects_the_adapter() -> None:
    """A topic segment equal to an adapter name selects it, so a mismatched payload is SCHEMA, not sniffed."""
    assert one(load("hikvision_anpr.xml"), topic="watchpost/site-1/lpr-01/hikvision").plate == "KH35192"
    assert reason_of(load("canonical_single.json"), topic="watchpost/site-1/lpr-01/hikvision") is DeadReason.SCHEMA


def test_frigate_topics_select_frigate_and_the_message_kind() -> None:
    """frigate/events and frigate/reviews topics pick the Frigate adapter and the event/review reading."""
    assert one(load("frigate_events.json"), topic="frigate/events").code == "update"
    assert one(load("frigate_review.json"), topic="frigate/reviews").code == "review_alert"
    assert one(load("frigate_review.json"), topic="gateway-3/frigate/reviews").code == "review_alert"


def test_content_detection_without_topic_hint() -> None:
    """With a neutral topic every sample is recognised by content alone."""
    expected = {
        "hikvision_anpr.xml": "hikvision",
        "hikvision_face_capture.json": "hikvision",
        "hikvision_person_density_pdc_multipart.bin": "hikvision",
        "dahua_traffic_junction.json": "dahua",
        "dahua_text_parts.txt": "dahua",
        "gat1400_face.json": "gat1400",
        "frigate_events.json": "frigate",
        "frigate_review.json": "frigate",
        "canonical_list.json": "canonical",
    }
    for name, source in expected.items():
        assert {r.source_format for r in parse(load(name), topic="in")} == {source}, name


def test_byte_order_mark_is_accepted() -> None:
    """A UTF-8 byte-order mark before the payload is ignored."""
    assert one(b"\xef\xbb\xbf" + load("canonical_single.json")).code == "forced_open"


# --------------------------------------------------------------------------- Hikvision


def test_hikvision_anpr_sample() -> None:
    """The ISAPI ANPR XML sample gives a plate read with UTC time, 0-1 confidence, GPS and picture refs."""
    reading = one(load("hikvision_anpr.xml"))
    assert reading.kind is EventKind.PLATE_READ and reading.code == "plate"
    assert reading.plate == "KH35192"
    assert reading.device_time == datetime(2023, 8, 11, 12, 49, tzinfo=UTC)
    assert reading.confidence == 1.0
    assert reading.device_ref == "bc:5e:33:62:2a:5c"
    assert reading.ref == "20230811134901822007gWpiNIuI14ikdwfKR5eDCzuV45RubEmi88qaD5w0YTq"
    assert reading.repeat is False and reading.source_format == "hikvision"
    attributes = reading.attributes
    assert attributes["lane"] == 1 and attributes["direction"] == "forward"
    assert attributes["vehicle_color"] == "white" and attributes["channel"] == 1
    assert attributes["lat"] == pytest.approx(58 + 6 / 60 + 22.3 / 3600)
    assert attributes["lon"] == pytest.approx(7 + 56 / 60 + 9 / 3600)
    assert [p["pid"] for p in attributes["images"]] == [
        "2023081113490182400fSXqc8CQHtdNG",
        "2023081113490182400EgqBZCXSSOD9V",
    ]


@pytest.mark.parametrize(
    "declaration",
    [
        "",
        ' xmlns="http://www.isapi.org/ver20/XMLSchema"',
        ' xmlns="http://www.hikvision.com/ver20/XMLSchema"',
        ' xmlns="http://www.std-cgi.com/ver20/XMLSchema"',
    ],
    ids=["none", "isapi", "hikvision", "std-cgi"],
)
def test_hikvision_xml_namespace_variants(declaration: str) -> None:
    """Elements are matched by local name whatever default namespace the firmware declares."""
    text = (
        load("hikvision_anpr.xml").decode().replace('\n  xmlns="http://www.hikvision.com/ver20/XMLSchema"', declaration)
    )
    reading = one(text.encode())
    assert reading == one(load("hikvision_anpr.xml"))


def test_hikvision_prefixed_namespace_fixture() -> None:
    """A prefixed namespace, a CJK plate with separators, a zone-less time and a retransmission flag."""
    reading = one(load("hikvision_anpr_prefixed.xml"))
    assert reading.plate == "京A12345"
    assert reading.device_time == datetime(2024, 6, 1, 7, 58, 31)  # naive: the pipeline applies the device zone
    assert reading.confidence == pytest.approx(0.87)
    assert reading.repeat is True
    assert reading.device_ref == "bc:ba:c2:5d:01:7f"
    assert reading.attributes["vehicle_list"] == "blackList"


def test_hikvision_anpr_json_form_and_no_read() -> None:
    """ANPR as JSON reads the same fields; a placeholder plate is a no-read."""
    payload = {
        "macAddress": "bc:5e:33:62:2a:5c",
        "dateTime": "2024-06-01T08:00:00+08:00",
        "eventType": "ANPR",
        "ANPR": {"licensePlate": "无车牌", "confidenceLevel": 0, "line": 2},
    }
    reading = one(json.dumps(payload, ensure_ascii=False).encode())
    assert reading.kind is EventKind.PLATE_READ and reading.code == "no_read" and reading.plate is None
    assert reading.device_time == datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
    assert reading.attributes["lane"] == 2


def test_hikvision_original_plate_when_plate_is_placeholder() -> None:
    """licensePlate "unknown" with a read in originalLicensePlate uses the original read."""
    payload = {
        "macAddress": "bc:5e:33:62:2a:5c",
        "dateTime": "2024-06-01T08:00:00+08:00",
        "eventType": "ANPR",
        "ANPR": {"licensePlate": "unknown", "originalLicensePlate": "川A5G7K2", "confidenceLevel": 64},
    }
    reading = one(json.dumps(payload, ensure_ascii=False).encode())
    assert (reading.code, reading.plate, reading.confidence) == ("plate", "川A5G7K2", 0.64)


def test_hikvision_face_capture_sample() -> None:
    """faceCapture gives one capture per face: score as confidence, dwell time and image refs."""
    reading = one(load("hikvision_face_capture.json"))
    assert reading.kind is EventKind.FACE_CAPTURE and reading.code == "capture"
    assert reading.confidence == 0.5
    assert reading.device_time == datetime(2026, 8, 19, 15, 34, 19, tzinfo=UTC)
    assert reading.ref == "2026081923342255200ch70DGElR1XkQEvlDGPFri9ualogF3SBGo8x5PTIHRoq:1960"
    assert reading.attributes["stay_duration_ms"] == 25000
    assert {image["pid"] for image in reading.attributes["images"]} == {
        "2026081923342255100gyuEgvVVi0cBT",
        "20260819233422551006SaRwF7S6igl4",
    }


def test_hikvision_face_attributes_never_kept() -> None:
    """Age, gender, glasses, mask and similar face attributes are dropped (privacy boundary)."""

    def add_attributes(data: dict[str, Any]) -> None:
        face = data["faceCapture"][0]["faces"][0]
        face.update(
            {
                "age": {"value": 34, "ageGroup": "middle"},
                "gender": {"value": "male"},
                "glass": {"value": "yes"},
                "mask": {"value": "no"},
                "smile": {"value": "yes"},
            }
        )
        data["faceCapture"][0]["faces"].append(dict(face, faceId=1961))

    readings = parse(edit_json("hikvision_face_capture.json", add_attributes), topic="in")
    assert len(readings) == 2
    allowed = {
        "event_type",
        "channel",
        "channel_name",
        "ip_address",
        "face_id",
        "stay_duration_ms",
        "capture_end",
        "images",
    }
    for reading in readings:
        assert set(reading.attributes) <= allowed
        text = json.dumps(dict(reading.attributes))
        for value in ('"male"', '"middle"', ": 34", '"yes"', "0.194"):
            assert value not in text


def test_hikvision_access_face_pass_sample() -> None:
    """AccessControllerEvent major 5 minor 0x4b is an ACCESS face_pass with a serial-based ref."""
    reading = one(load("hikvision_access_face_pass.json"))
    assert reading.kind is EventKind.ACCESS and reading.code == "face_pass"
    assert reading.device_time == datetime(2025, 10, 22, 5, 43, 48, tzinfo=UTC)
    assert reading.ref == "acs:139:2025-10-22T13:43:48+08:00"
    assert reading.attributes["minor_hex"] == "0x4b" and reading.attributes["door"] == 1
    assert reading.attributes["access_result"] == "granted"


def test_hikvision_forced_door_fixture() -> None:
    """Minor 0x1b (XML, isapi.org namespace, upper-case MAC) is ACCESS forced_open, MAC lower-cased."""
    reading = one(load("hikvision_access_forced_open.xml"))
    assert (reading.kind, reading.code) == (EventKind.ACCESS, "forced_open")
    assert reading.device_ref == "a4:d5:c2:10:7e:31"
    assert reading.device_time == datetime(2024, 3, 4, 18, 17, 9, tzinfo=UTC)


def test_hikvision_held_open_fixture_is_repeat_without_person_data() -> None:
    """Minor 0x1c is held_open; activePostCount 2 marks a repeat; card, name and temperature are dropped."""
    reading = one(load("hikvision_access_held_open.json"))
    assert (reading.kind, reading.code, reading.repeat) == (EventKind.ACCESS, "held_open", True)
    text = json.dumps(dict(reading.attributes))
    for secret in ("3051129847", "10023", "Zhang", "36.4", "mask"):
        assert secret not in text


def test_hikvision_repeat_keeps_the_ref() -> None:
    """A retransmission has the same ref as the first post: the markers never enter the ref."""
    first = samples.hikvision_access_json(
        minor=0x1C, when=datetime(2024, 3, 5, 2, 19, 40, tzinfo=CST), mac="a4:d5:c2:10:7e:31", serial_no=4822
    )
    again = samples.hikvision_access_json(
        minor=0x1C,
        when=datetime(2024, 3, 5, 2, 19, 40, tzinfo=CST),
        mac="a4:d5:c2:10:7e:31",
        serial_no=4822,
        active_post_count=3,
        retransmission=True,
    )
    assert (one(first).repeat, one(again).repeat) == (False, True)
    assert one(first).ref == one(again).ref


def test_hikvision_repeat_without_ref_has_the_same_event_key() -> None:
    """A periodic count with no UUID, posted again as a retransmission, gets the same idempotency key."""
    first = one(load("hikvision_person_density_pdc.json"))
    again = one(
        edit_json(
            "hikvision_person_density_pdc.json",
            lambda d: d.update(activePostCount=4, isDataRetransmission=True),
        )
    )
    assert first.ref is None and again.repeat is True
    received = datetime(2024, 1, 1, tzinfo=UTC)
    assert event_key("cam-1", first, received_at=received) == event_key("cam-1", again, received_at=received)


@pytest.mark.parametrize(
    ("major", "minor", "kind", "code", "state"),
    [
        (5, 0x01, EventKind.ACCESS, "card_pass", None),
        (5, 0x4B, EventKind.ACCESS, "face_pass", None),
        (5, 0x1B, EventKind.ACCESS, "forced_open", None),
        (5, 0x1C, EventKind.ACCESS, "held_open", None),
        (5, 0x09, EventKind.ACCESS, "invalid_card", None),
        (5, 0x4C, EventKind.ACCESS, "face_fail", None),
        (5, 0x19, EventKind.ACCESS, "door_open", None),
        (1, 0x40A, EventKind.ACCESS, "duress", None),
        (1, 0x404, EventKind.DEVICE_STATUS, "tamper", "start"),
        (1, 0x41C, EventKind.ALARM_BUTTON, "press", "start"),
        (2, 0x405, EventKind.DEVICE_STATUS, "mains_lost", "start"),
        (3, 0x400, EventKind.ACCESS, "remote_open", None),
        (5, 0x3FF, EventKind.ACCESS, "event_5_3ff", None),
        (2, 0x999, EventKind.DEVICE_STATUS, "event_2_999", None),
    ],
)
def test_hikvision_access_codes(major: int, minor: int, kind: EventKind, code: str, state: str | None) -> None:
    """Major/minor access codes map to kinds and codes; unlisted minors are kept as event_<major>_<hex>."""
    payload = samples.hikvision_access_json(
        minor=minor, major=major, when=datetime(2024, 1, 1, tzinfo=CST), mac="a4:d5:c2:10:7e:31", serial_no=7
    )
    reading = one(payload)
    assert (reading.kind, reading.code, reading.state) == (kind, code, state)


def test_hikvision_access_minor_as_hex_text() -> None:
    """subEventType given as "0x1b" text (as some XML firmware does) reads as 27."""
    payload = edit_json(
        "hikvision_access_face_pass.json", lambda d: d["AccessControllerEvent"].update(subEventType="0x1b")
    )
    assert one(payload).code == "forced_open"


def test_hikvision_person_density_periodic_sample() -> None:
    """personDensityDetection with dataSource PDC is a periodic CROWD_COUNT for the region."""
    reading = one(load("hikvision_person_density_pdc.json"))
    assert (reading.kind, reading.code, reading.count, reading.zone) == (
        EventKind.CROWD_COUNT,
        "periodic",
        4,
        "Area1",
    )
    assert reading.device_time == datetime(2018, 12, 31, 16, 44, 42, tzinfo=UTC)
    assert reading.state is None


def test_hikvision_person_density_trigger_fixture() -> None:
    """dataSource trigger is a CROWD_ALARM density with count, zone and start state."""
    reading = one(load("hikvision_person_density_trigger.json"))
    assert (reading.kind, reading.code, reading.count, reading.zone) == (
        EventKind.CROWD_ALARM,
        "density",
        23,
        "Square",
    )
    assert reading.state == "start"
    assert reading.ref == "2024051821031000142e8f0c6b5d4f8aa1d2:start"


def test_hikvision_multipart_json_beside_jpeg() -> None:
    """A multipart push: the JSON part is read, the JPEG part only counted and measured."""
    reading = one(load("hikvision_person_density_pdc_multipart.bin"))
    plain = one(load("hikvision_person_density_pdc.json"))
    assert (reading.kind, reading.count, reading.device_time) == (plain.kind, plain.count, plain.device_time)
    assert reading.attributes["image_parts"] == 1
    assert reading.attributes["image_bytes"] == 534


def test_hikvision_multipart_xml_part_lf_only() -> None:
    """A multipart body with LF line ends and an XML alert part is read like the bare XML."""
    body = samples.hikvision_multipart(load("hikvision_anpr.xml").strip(), content_type="application/xml")
    body = body.replace(b"\r\n", b"\n")
    assert one(body).plate == "KH35192"


def test_hikvision_fielddetection_fixture_and_stop() -> None:
    """fielddetection is INTRUSION field_detection; active/inactive give start/stop with distinct refs."""
    start = one(load("hikvision_fielddetection.xml"))
    assert (start.kind, start.code, start.state, start.zone) == (
        EventKind.INTRUSION,
        "field_detection",
        "start",
        "2",
    )
    assert start.attributes["targets"] == ["human"]
    stop = one(load("hikvision_fielddetection.xml").replace(b">active<", b">inactive<"))
    assert stop.state == "stop" and stop.ref != start.ref


@pytest.mark.parametrize(
    ("event_type", "kind", "code"),
    [
        ("linedetection", EventKind.INTRUSION, "line_crossing"),
        ("regionEntrance", EventKind.INTRUSION, "region_entrance"),
        ("regionExiting", EventKind.INTRUSION, "region_exiting"),
        ("loitering", EventKind.INTRUSION, "loitering"),
        ("group", EventKind.CROWD_ALARM, "gathering"),
        ("IO", EventKind.ALARM_BUTTON, "press"),
        ("tamperdetection", EventKind.DEVICE_STATUS, "tamper"),
        ("shelteralarm", EventKind.DEVICE_STATUS, "tamper"),
        ("heartBeat", EventKind.DEVICE_STATUS, "heartbeat"),
    ],
)
def test_hikvision_smart_and_status_events(event_type: str, kind: EventKind, code: str) -> None:
    """Intrusion, gathering, alarm-input and status eventTypes map to their kinds and codes."""
    payload = {
        "macAddress": "44:19:b6:8e:25:0c",
        "dateTime": "2024-03-05T23:41:12+08:00",
        "eventType": event_type,
        "eventState": "active",
    }
    reading = one(json.dumps(payload).encode())
    assert (reading.kind, reading.code) == (kind, code)


def test_hikvision_videoloss_heartbeat_fixture() -> None:
    """videoloss inactive (no namespace, old firmware) is the keep-alive: DEVICE_STATUS heartbeat."""
    reading = one(load("hikvision_videoloss_heartbeat.xml"))
    assert (reading.kind, reading.code, reading.state) == (EventKind.DEVICE_STATUS, "heartbeat", None)
    active = one(load("hikvision_videoloss_heartbeat.xml").replace(b">inactive<", b">active<"))
    assert (active.code, active.state) == ("video_loss", "start")


def test_hikvision_zero_and_unreadable_dates() -> None:
    """A placeholder date sets zero_date; an unreadable one keeps the event with raw_time."""
    zero = one(load("hikvision_access_face_pass.json").replace(b"2025-10-22T13:43:48+08:00", b"1970-01-01T00:00:00"))
    assert zero.device_time is None and zero.zero_date is True
    bad = one(load("hikvision_access_face_pass.json").replace(b"2025-10-22T13:43:48+08:00", b"22/10/2025 13:43"))
    assert bad.device_time is None and bad.zero_date is False
    assert bad.attributes["raw_time"] == "22/10/2025 13:43"


# --------------------------------------------------------------------------- Dahua


def test_dahua_traffic_junction_sample() -> None:
    """TrafficJunction: plate from Object.Text, time from RealUTC, Vehicle.Confidence 160 on a 0-255 scale."""
    reading = one(load("dahua_traffic_junction.json"))
    assert (reading.kind, reading.code, reading.plate) == (EventKind.PLATE_READ, "plate", "AB12CDE")
    assert reading.device_time == datetime(2024, 1, 30, 7, 34, 55, tzinfo=UTC)
    assert reading.confidence == pytest.approx(160 / 255)
    assert reading.ref == "516:175706653"
    assert reading.device_ref == "8M049B2PAJF3085"
    assert reading.state == "pulse"
    assert reading.attributes["lane"] == 2 and reading.attributes["vehicle_color"] == "Blue"


def test_dahua_utc_without_realutc_is_local_wall_time() -> None:
    """Without RealUTC, Dahua's UTC field is local wall time and comes back naive."""
    payload = edit_json("dahua_traffic_junction.json", lambda d: d["params"]["eventList"][0]["Data"].pop("RealUTC"))
    assert one(payload).device_time == datetime(2024, 1, 30, 14, 34, 55)

    def only_locale(data: dict[str, Any]) -> None:
        event = data["params"]["eventList"][0]["Data"]
        del event["RealUTC"], event["UTC"]

    assert one(edit_json("dahua_traffic_junction.json", only_locale)).device_time == datetime(2024, 1, 30, 14, 34, 55)


def test_dahua_zero_confidence_means_not_reported() -> None:
    """Confidence 0 on every Dahua confidence field gives None, not 0.0."""

    def zero(data: dict[str, Any]) -> None:
        data["params"]["eventList"][0]["Data"]["Vehicle"]["Confidence"] = 0

    assert one(edit_json("dahua_traffic_junction.json", zero)).confidence is None


def test_dahua_text_parts_fixture() -> None:
    """Several Code=... lines give one reading each; state-only info lines are skipped."""
    line, alarm = parse(load("dahua_text_parts.txt"), topic="in")
    assert (line.kind, line.code, line.state, line.zone) == (
        EventKind.INTRUSION,
        "line_crossing",
        "start",
        "WestWall",
    )
    assert line.device_time == datetime(2024, 5, 18, 2, 11, 40)
    assert line.ref == "3321:0:start" and line.attributes["channel"] == 1
    assert (alarm.kind, alarm.code, alarm.state) == (EventKind.ALARM_BUTTON, "press", "start")
    assert alarm.attributes["alarm_input"] == 2


def test_dahua_rioter_detection_multipart() -> None:
    """A --myboundary stream with a heartbeat and RioterDetection gives a heartbeat and a gathering alarm."""
    heartbeat, gathering = parse(load("dahua_rioter_detection.txt"), topic="in")
    assert (heartbeat.kind, heartbeat.code) == (EventKind.DEVICE_STATUS, "heartbeat")
    assert (gathering.kind, gathering.code, gathering.state) == (EventKind.CROWD_ALARM, "gathering", "start")
    assert gathering.count == 7 and gathering.zone == "PlazaGathering"
    assert gathering.device_time == datetime(2024, 5, 18, 21, 3, 11)
    assert gathering.ref == "10242:10242:start"


def test_dahua_start_and_stop_are_distinct_events() -> None:
    """Start and Stop of one Dahua event share an EventID but get different refs."""
    when = datetime(2024, 5, 18, 13, 3, 11, tzinfo=UTC)
    start = one(samples.dahua_rioter_text(action="Start", real_utc=when, event_id=9, people=5))
    stop = one(samples.dahua_rioter_text(action="Stop", real_utc=when + timedelta(minutes=2), event_id=9, people=2))
    assert (start.state, stop.state) == ("start", "stop")
    assert start.ref != stop.ref
    assert start.device_time == when


def test_dahua_single_event_object_and_unknown_neighbours() -> None:
    """A bare {Code, Action, Data} object is read; unknown codes beside known ones are ignored."""
    reading = one(
        json.dumps(
            {
                "Code": "AlarmLocal",
                "Action": "Stop",
                "Index": 3,
                "Data": {"LocaleTime": "2024-05-18 02:11:41"},
            }
        ).encode()
    )
    assert (reading.kind, reading.state, reading.attributes["alarm_input"]) == (
        EventKind.ALARM_BUTTON,
        "stop",
        3,
    )
    text = b'Code=NewFile;action=Pulse;index=0;data={"File": "/a.dav"}\nCode=VideoBlind;action=Start;index=0\n'
    assert one(text).code == "tamper"


def test_dahua_face_detection_keeps_no_face_attributes() -> None:
    """FaceDetection is a FACE_CAPTURE without Dahua's sex / age / glasses attributes."""
    data = {
        "EventID": 77,
        "Faces": [{"Sex": "Man", "Age": 30, "Glasses": 1}],
        "Object": {"ObjectID": 12, "Sex": "Man", "Age": 30},
        "RealUTC": 1716037391,
    }
    reading = one(samples.dahua_text_part("FaceDetection", "Pulse", data))
    assert (reading.kind, reading.code) == (EventKind.FACE_CAPTURE, "capture")
    assert reading.attributes["faces"] == 1
    assert "Man" not in json.dumps(dict(reading.attributes)) and "Age" not in json.dumps(dict(reading.attributes))


# --------------------------------------------------------------------------- GA/T 1400


def test_gat1400_motor_vehicle_sample() -> None:
    """MotorVehicleObject: plate, naive PassTime, 20-digit DeviceID, image refs without the base64 data."""
    reading = one(load("gat1400_motor_vehicle.json"))
    assert (reading.kind, reading.code, reading.plate) == (EventKind.PLATE_READ, "plate", "浙BY6H39")
    assert reading.device_time == datetime(2021, 4, 11, 17, 13, 37)
    assert reading.device_ref == "33029902001210000118"
    # MotorVehicleID repeats the DeviceID here: not an event id, or every read would be one event.
    assert reading.ref is None
    assert reading.confidence is None  # PlateReliability ""
    assert "device_id_invalid" not in reading.attributes
    images = reading.attributes["images"]
    assert images[0]["url"].endswith("4151-58659-0.jpg")
    assert images[1]["data_bytes"] == 10
    assert "/9j/" not in json.dumps(dict(reading.attributes))


def test_gat1400_face_sample() -> None:
    """FaceObject: one capture, time from the scene image ShotTime, no image data."""
    reading = one(load("gat1400_face.json"))
    assert (reading.kind, reading.code) == (EventKind.FACE_CAPTURE, "capture")
    assert reading.device_time == datetime(2020, 5, 10, 20, 4, 8)
    assert reading.ref == "340200000011100000010220200510200408000010600001"
    assert reading.device_ref == "34020000001110000001"
    assert "/9j/" not in json.dumps(dict(reading.attributes))


def test_gat1400_notification_flags_bad_device_id() -> None:
    """A subscription notification is unwrapped; a 19-digit DeviceID is kept but flagged."""
    reading = one(load("gat1400_notification.json"))
    assert reading.plate == "浙B2Q7M5" and reading.confidence == pytest.approx(0.92)
    assert reading.device_ref == "3302990200121000011"
    assert reading.attributes["device_id_invalid"] is True
    assert reading.attributes["lane"] == 3 and reading.attributes["speed"] == 38


def test_gat1400_single_objects_no_plate_and_non_motor() -> None:
    """Single-object forms are read; HasPlate 0 is a no-read; a plateless non-motor vehicle is an OBJECT."""
    vehicle = {
        "MotorVehicleID": "v1",
        "DeviceID": "33029902001210000118",
        "HasPlate": "0",
        "PlateNo": "浙BY6H39",
        "PassTime": "20240601080004",
    }
    reading = one(json.dumps({"MotorVehicleObject": vehicle}, ensure_ascii=False).encode())
    assert (reading.code, reading.plate) == ("no_read", None)
    bike = {"NonMotorVehicleID": "b1", "DeviceID": "33029902001210000118", "AppearTime": "20240601080004"}
    reading = one(json.dumps({"NonMotorVehicleListObject": {"NonMotorVehicleObject": [bike]}}).encode())
    assert (reading.kind, reading.code) == (EventKind.OBJECT, "non_motor_vehicle")


def test_gat1400_face_person_fields_dropped() -> None:
    """GA/T 1400 person fields (gender, age, ID number, name) never reach the reading."""
    face = {
        "FaceID": "f1",
        "DeviceID": "34020000001110000001",
        "FaceAppearTime": "20200510200408",
        "GenderCode": "1",
        "AgeUpLimit": 40,
        "IDNumber": "330102199001011234",
        "Name": "张三",
    }
    reading = one(json.dumps({"FaceListObject": {"FaceObject": [face]}}, ensure_ascii=False).encode())
    text = json.dumps(dict(reading.attributes), ensure_ascii=False)
    for secret in ("Gender", "Age", "330102199001011234", "张三"):
        assert secret not in text


# --------------------------------------------------------------------------- Frigate


def test_frigate_event_sample() -> None:
    """frigate/events update: OBJECT reading of 'after', update ref with frame time, sub_label dropped."""
    reading = one(load("frigate_events.json"), topic="frigate/events")
    assert (reading.kind, reading.code, reading.repeat) == (EventKind.OBJECT, "update", True)
    assert reading.ref == "1607123955.475377-mxklsc:update:1607123962.082975"
    assert reading.device_ref == "front_door" and reading.zone == "yard"
    assert reading.device_time == datetime.fromtimestamp(1607123962.082975, tz=UTC)
    assert reading.confidence == pytest.approx(0.958984375)
    assert reading.attributes["label"] == "person"
    assert reading.plate is None  # a person's "plate" is not a vehicle plate
    assert "John Smith" not in json.dumps(dict(reading.attributes))


def test_frigate_car_with_recognised_plate() -> None:
    """A car with recognized_license_plate fills plate and takes the plate score as confidence."""
    payload = edit_json(
        "frigate_events.json", lambda d: d["after"].update(label="car", recognized_license_plate="abc-12345")
    )
    reading = one(payload, topic="frigate/events")
    assert (reading.kind, reading.plate) == (EventKind.OBJECT, "ABC12345")
    assert reading.confidence == pytest.approx(0.933451)


def test_frigate_new_end_and_before_fallback() -> None:
    """new and end give start/stop with type refs; a message without 'after' reads 'before'."""
    new = one(samples.frigate_event_json("new", event_id="e1", camera="gate", frame_time=1.7e9, start_time=1.7e9))
    end = one(
        samples.frigate_event_json(
            "end", event_id="e1", camera="gate", frame_time=1.7e9 + 9, start_time=1.7e9, end_time=1.7e9 + 9
        )
    )
    assert (new.state, new.ref, new.repeat) == ("start", "e1:new", False)
    assert (end.state, end.ref) == ("stop", "e1:end")
    only_before = edit_json("frigate_events.json", lambda d: d.pop("after"))
    assert one(only_before, topic="frigate/events").device_time == datetime.fromtimestamp(1607123961.837752, tz=UTC)


def test_frigate_review_fixture() -> None:
    """frigate/reviews: review_<severity>, first zone, object labels; sub_labels (names) dropped."""
    reading = one(load("frigate_review.json"), topic="frigate/reviews")
    assert (reading.kind, reading.code, reading.zone) == (EventKind.OBJECT, "review_alert", "front_yard")
    assert reading.attributes["objects"] == ["person", "car"] and reading.attributes["detections"] == 2
    assert reading.device_time == datetime.fromtimestamp(1718987129.308396, tz=UTC)
    assert reading.repeat is True
    assert "Bob" not in json.dumps(dict(reading.attributes))


# --------------------------------------------------------------------------- canonical


def test_canonical_single_fixture() -> None:
    """A canonical object maps field for field; lat/lon go to attributes."""
    reading = one(load("canonical_single.json"))
    assert (reading.kind, reading.code, reading.device_ref, reading.ref) == (
        EventKind.ACCESS,
        "forced_open",
        "gate-01",
        "evt-17",
    )
    assert reading.device_time == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert (reading.zone, reading.state) == ("north gate", "start")
    assert reading.attributes == {"door": 1, "lat": 30.2741, "lon": 120.1551}


def test_canonical_list_fixture() -> None:
    """A canonical list gives one reading per item: naive time, epoch time, percent confidence, CJK plate."""
    plate, crowd, button = parse(load("canonical_list.json"), topic="in")
    assert plate.plate == "粤B12345警" and plate.confidence == pytest.approx(0.93)
    assert plate.device_time == datetime(2024, 5, 1, 8, 0, 3)
    assert crowd.count == 41 and crowd.device_time == datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    assert (button.kind, button.state) == (EventKind.ALARM_BUTTON, "pulse")


def test_canonical_events_wrapper_and_no_read() -> None:
    """{"events": [...]} is accepted; a plate_read whose plate is a placeholder becomes no_read."""
    payload = {"events": [{"kind": "plate_read", "code": "plate", "plate": "unknown", "time": "2024-05-01T08:00:00Z"}]}
    reading = one(json.dumps(payload).encode())
    assert (reading.code, reading.plate) == ("no_read", None)


def test_canonical_errors_name_field_and_index() -> None:
    """Canonical SCHEMA errors say which item and field is wrong, and list allowed kinds."""
    with pytest.raises(AdaptError) as caught:
        parse(load("canonical_list.json").replace(b'"count": 41', b'"count": 4.5'), topic="in")
    assert caught.value.reason is DeadReason.SCHEMA and "events[1].count" in caught.value.detail
    with pytest.raises(AdaptError) as caught:
        parse(b'{"kind": "door", "code": "x"}', topic="in")
    assert "plate_read" in caught.value.detail and "'door'" in caught.value.detail


def test_canonical_batch_limit() -> None:
    """More than 1000 events in one message is SCHEMA."""
    batch = [{"kind": "device_status", "code": "heartbeat"}] * 1001
    assert reason_of(json.dumps(batch).encode()) is DeadReason.SCHEMA
    assert len(parse(json.dumps(batch[:1000]).encode(), topic="in")) == 1000


def test_canonical_nan_and_infinity_are_not_values() -> None:
    """NaN / Infinity read as null (devices mean "no value"): no confidence or count, JSON-safe attributes."""
    reading = one(b'{"kind": "object", "code": "x", "confidence": NaN, "attributes": {"a": Infinity, "b": 1e999}}')
    assert reading.confidence is None
    assert reading.attributes == {"a": None, "b": None}
    assert one(b'{"kind": "crowd_count", "code": "periodic", "count": NaN}').count is None


def test_lone_surrogate_escape_is_scrubbed() -> None:
    """An escaped lone surrogate cannot reach storage as an unencodable string."""
    reading = one(b'{"kind": "object", "code": "x", "zone": "gate \\ud800", "attributes": {"\\udc00": "\\ud83d"}}')
    assert reading.zone is not None
    reading.zone.encode("utf-8")
    json.dumps(dict(reading.attributes), ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------- malformed corpus

MALFORMED_FILES = sorted(path.name for path in MALFORMED.iterdir())


@pytest.mark.parametrize("name", MALFORMED_FILES)
def test_malformed_corpus(name: str) -> None:
    """Each file in fixtures/malformed fails with the reason its name starts with (reason__what.ext)."""
    expected = DeadReason(name.split("__", 1)[0])
    topic = "frigate/events" if "frigate" in name else "watchpost/site-1/dev-1"
    with pytest.raises(AdaptError) as caught:
        parse((MALFORMED / name).read_bytes(), topic=topic)
    assert caught.value.reason is expected, caught.value.detail
    assert caught.value.detail


def test_billion_laughs_is_refused_fast() -> None:
    """An entity bomb is refused at its DTD, before any expansion: in milliseconds, not seconds."""
    payload = (MALFORMED / "forbidden_xml__billion_laughs.xml").read_bytes()
    started = time.perf_counter()
    assert reason_of(payload) is DeadReason.FORBIDDEN_XML
    assert time.perf_counter() - started < 0.5


def test_comment_in_xml_is_still_safe_and_read() -> None:
    """XML with a comment goes through defusedxml and is read normally."""
    payload = load("hikvision_anpr.xml").replace(b"<ANPR>", b"<!-- plate block --><ANPR>")
    assert one(payload).plate == "KH35192"


def test_deep_json_is_schema() -> None:
    """JSON nested beyond the depth limit (or beyond the recursion limit) is SCHEMA, never a crash."""
    assert reason_of(b"[" * 100_000 + b"]" * 100_000) is DeadReason.SCHEMA
    nested = '{"kind": "object", "code": "x", "attributes": ' + '{"a": ' * MAX_DEPTH + "1" + "}" * MAX_DEPTH + "}"
    assert reason_of(nested.encode()) is DeadReason.SCHEMA
    shallow = '{"kind": "object", "code": "x", "attributes": ' + '{"a": ' * 10 + "1" + "}" * 10 + "}"
    assert one(shallow.encode()).code == "x"


def test_deep_xml_is_schema() -> None:
    """XML nested beyond the depth limit is SCHEMA."""
    payload = "<EventNotificationAlert>" + "<a>" * 200 + "x" + "</a>" * 200 + "</EventNotificationAlert>"
    assert reason_of(payload.encode()) is DeadReason.SCHEMA


def test_huge_numbers() -> None:
    """An integer past Python's digit limit is MALFORMED_JSON; a count too big for storage is SCHEMA."""
    digits = b'{"kind": "crowd_count", "code": "periodic", "count": 1' + b"0" * 5000 + b"}"
    assert reason_of(digits) is DeadReason.MALFORMED_JSON
    assert (
        reason_of(b'{"kind": "crowd_count", "code": "periodic", "count": 100000000000000000000}') is DeadReason.SCHEMA
    )
    reading = one(b'{"kind": "object", "code": "x", "time": 1e300, "confidence": 1e300}')
    assert reading.device_time is None and reading.confidence is None and reading.attributes["raw_time"]


def test_oversize_payload() -> None:
    """A payload above the adapter size limit is OVERSIZE without being parsed."""
    assert reason_of(b" " * (16 * 1024 * 1024 + 1)) is DeadReason.OVERSIZE


def test_payload_must_be_bytes() -> None:
    """A str payload (a caller bug) is an AdaptError, not a TypeError."""
    with pytest.raises(AdaptError):
        parse("{}", topic="in")  # type: ignore[arg-type]


def _check_outcome(payload: bytes, topic: str) -> None:
    try:
        readings = parse(payload, topic=topic)
    except AdaptError as exc:
        assert isinstance(exc.reason, DeadReason) and exc.detail
        return
    assert readings and all(isinstance(reading, Reading) for reading in readings)
    for reading in readings:
        json.dumps(dict(reading.attributes), allow_nan=False, ensure_ascii=False).encode("utf-8")
        assert reading.confidence is None or 0.0 <= reading.confidence <= 1.0


def _mutate(value: Any, rng: random.Random) -> Any:
    """Replace random leaves of a parsed JSON document with values of the wrong type."""
    if isinstance(value, dict):
        return {key: _mutate(item, rng) for key, item in value.items()}
    if isinstance(value, list):
        return [_mutate(item, rng) for item in value]
    if rng.random() < 0.3:
        return rng.choice(
            [
                None,
                "",
                "x" * 50,
                -1,
                0,
                10**30,
                1e308,
                True,
                [],
                {},
                [1, "a"],
                {"k": None},
                "0x",
                "NaN",
                "00000000000000",
                "9999-99-99",
                "\u0000",
                "浙",
            ]
        )
    return value


def test_fuzz_never_raises_anything_but_adapt_error() -> None:
    """Random bytes, truncations, bit flips and type-mutated samples give readings or AdaptError only."""
    rng = random.Random(1400)
    fixtures = [(path.read_bytes(), "frigate/events" if "frigate" in path.name else "in") for path in FORMATS.iterdir()]
    for _ in range(300):
        _check_outcome(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200))), "in")
    for payload, topic in fixtures:
        for cut in range(0, len(payload), max(1, len(payload) // 40)):
            _check_outcome(payload[:cut], topic)
        for _ in range(40):
            flipped = bytearray(payload)
            for _ in range(rng.randrange(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            _check_outcome(bytes(flipped), topic)
        if payload.lstrip()[:1] in (b"{", b"["):
            data = json.loads(payload)
            for _ in range(40):
                _check_outcome(json.dumps(_mutate(data, rng), ensure_ascii=False).encode(), topic)
    for payload in (
        b"NaN",
        b"-Infinity",
        b"1e999",
        b"[]",
        b"{}",
        b'{"events": 5}',
        b"--",
        b"--x\r\n",
        b"--b\r\n\r\n\xff\xd8\xff\r\n--b--",
        b"<a/>",
        b"<?xml version='1.0'?>",
        b"Code=",
        b"Code=X;data={",
        b'{"type": "new", "after": {"id": "a", "camera": "c", "frame_time": "later"}}',
    ):
        _check_outcome(payload, "in")


# --------------------------------------------------------------------------- normalisers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-08-11T13:49:00+01:00", datetime(2023, 8, 11, 12, 49, tzinfo=UTC)),
        ("2023-08-11T13:49:00Z", datetime(2023, 8, 11, 13, 49, tzinfo=UTC)),
        ("2023-08-11T13:49:00.125+08:00", datetime(2023, 8, 11, 5, 49, 0, 125000, tzinfo=UTC)),
        ("2023-08-11T13:49:00", datetime(2023, 8, 11, 13, 49)),
        ("2023-08-11 13:49:00", datetime(2023, 8, 11, 13, 49)),
        ("20210411171337", datetime(2021, 4, 11, 17, 13, 37)),
        ("20230811134900555", datetime(2023, 8, 11, 13, 49, 0, 555000)),
        (1706600095, datetime(2024, 1, 30, 7, 34, 55, tzinfo=UTC)),
        (1706600095.5, datetime(2024, 1, 30, 7, 34, 55, 500000, tzinfo=UTC)),
        ("1706600095", datetime(2024, 1, 30, 7, 34, 55, tzinfo=UTC)),
        (1706600095250, datetime(2024, 1, 30, 7, 34, 55, 250000, tzinfo=UTC)),
        ("1706600095250", datetime(2024, 1, 30, 7, 34, 55, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time_formats(value: Any, expected: datetime) -> None:
    """Zoned and epoch times come back aware UTC; zone-less ones naive local wall time."""
    parsed = parse_time(value)
    assert parsed.time == expected and parsed.zero_date is False and parsed.raw is None
    assert (parsed.time.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize(
    "value",
    [
        "0000-00-00 00:00:00",
        "0000-00-00T00:00:00",
        "1970-01-01T00:00:00",
        "1970-01-01 08:00:00+08:00",
        "00000000000000",
        0,
        "0",
        86400,
        "1999-12-31T23:59:59Z",
    ],
)
def test_parse_time_placeholder_dates(value: Any) -> None:
    """Zero, epoch-0 and pre-2000 dates are placeholders: no time, zero_date set."""
    assert parse_time(value) == (None, True, None)


@pytest.mark.parametrize("value", ["yesterday", "2023-13-45T99:00:00", "20231345990000", math.nan, 1e20, True, [1]])
def test_parse_time_unreadable(value: Any) -> None:
    """An unreadable time gives no time, no zero flag, and the raw value for attributes."""
    parsed = parse_time(value)
    assert parsed.time is None and parsed.zero_date is False and parsed.raw


def test_parse_time_absent() -> None:
    """A missing or empty time is simply absent."""
    assert parse_time(None) == parse_time("") == parse_time("  ") == (None, False, None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.7, 0.7),
        (1, 1.0),
        (0, 0.0),
        (50, 0.5),
        (100, 1.0),
        ("87", 0.87),
        ("87%", 0.87),
        (160, 160 / 255),
        (255, 1.0),
        (256, None),
        (-1, None),
        (math.nan, None),
        (math.inf, None),
        ("abc", None),
        ("", None),
        (True, None),
        (None, None),
        (10**400, None),
        ([50], None),
    ],
)
def test_normalise_confidence(value: Any, expected: float | None) -> None:
    """[0,1] kept, (1,100] /100, (100,255] /255, anything else None."""
    result = normalise_confidence(value)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("浙BY6H39", "浙BY6H39"),
        ("浙by6h39", "浙BY6H39"),
        ("京A·12345", "京A12345"),
        ("京a•12345", "京A12345"),
        ("粤B12345警", "粤B12345警"),
        (" 沪 A-D1234 ", "沪AD1234"),
        ("京Ａ１２３４５", "京A12345"),
        ("kh.351 92", "KH35192"),
        ("unknown", None),
        ("Unknown", None),
        ("无车牌", None),
        ("未识别", None),
        ("车牌", None),
        ("noplate", None),
        ("none", None),
        ("NULL", None),
        ("-", None),
        ("", None),
        ("????", None),
        ("***", None),
        ("  ", None),
        (None, None),
        (3.5, None),
    ],
)
def test_normalise_plate(value: Any, expected: str | None) -> None:
    """Separators go, Latin letters are upper-cased, CJK stays; placeholders mean no plate."""
    assert normalise_plate(value) == expected


def test_dms_to_decimal() -> None:
    """Degrees/minutes/seconds become signed decimal degrees; S and W are negative."""
    assert dms_to_decimal(58, 6, 22.3, "N") == pytest.approx(58.1061944)
    assert dms_to_decimal("7", "56", "9.0", "W") == pytest.approx(-7.9358333)
    assert dms_to_decimal("x", 0, 0, "N") is None


def test_split_multipart_tolerates_camera_framing() -> None:
    """Parts without a blank line after headers, LF line ends and no closing delimiter still split."""
    body = (
        b"--myboundary\nContent-Length:37\nCode=AlarmLocal;action=Stop;index=1\n"
        b"--myboundary\nContent-Type: text/plain\n\nHeartbeat\n"
    )
    parts = split_multipart(body)
    assert [part.body for part in parts] == [b"Code=AlarmLocal;action=Stop;index=1", b"Heartbeat"]
    assert parts[1].headers["content-type"] == "text/plain"
