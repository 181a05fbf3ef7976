"""Payload generators: every generator's output parses back to the values put in."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ingest import samples
from ingest.adapters import parse
from watchpost.model import EventKind, Reading

CST = timezone(timedelta(hours=8))
WHEN = datetime(2024, 5, 18, 21, 3, 11, tzinfo=CST)  # aware device time (UTC+8)
WHEN_UTC = datetime(2024, 5, 18, 13, 3, 11, tzinfo=UTC)
MAC = "bc:5e:33:0a:1b:2c"


def one(payload: bytes, topic: str = "watchpost/site-1/dev-1", **kwargs: Any) -> Reading:
    readings = parse(payload, topic=topic, **kwargs)
    assert len(readings) == 1, readings
    return readings[0]


def test_random_identities_have_real_shapes() -> None:
    """Plates are province + letter + 5 alnum without I/O; device ids 20 digits; MACs lower-case hex."""
    rng = random.Random(5)
    for _ in range(200):
        plate = samples.random_plate(rng)
        assert re.fullmatch(f"[{samples.PROVINCES}][A-HJ-NP-Z][0-9A-HJ-NP-Z]{{5}}", plate), plate
        assert re.fullmatch(r"\d{20}", samples.random_device_id(rng))
        assert re.fullmatch(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}", samples.random_mac(rng))


def test_generators_are_deterministic() -> None:
    """The same explicit arguments give the same bytes; an rng only varies cosmetic fields."""
    args: dict[str, Any] = {"plate": "浙BY6H39", "when": WHEN, "mac": MAC, "uuid": "u-1", "confidence": 88}
    assert samples.hikvision_anpr_xml(**args) == samples.hikvision_anpr_xml(**args)
    varied = samples.hikvision_anpr_xml(**args, rng=random.Random(3))
    assert (one(varied).plate, one(varied).device_time, one(varied).ref) == ("浙BY6H39", WHEN_UTC, "u-1")


@pytest.mark.parametrize("namespace", [samples.HIKVISION_NAMESPACE, samples.ISAPI_NAMESPACE, None])
def test_hikvision_anpr_round_trip(namespace: str | None) -> None:
    """ANPR XML reads back plate, UTC time, MAC, UUID, confidence, lane, GPS and repeat flags."""
    payload = samples.hikvision_anpr_xml(
        plate="京A·12345",
        when=WHEN,
        mac=MAC.upper(),
        uuid="20240518210311abc",
        confidence=87,
        lane=3,
        lat=30.2741,
        lon=120.1551,
        active_post_count=2,
        namespace=namespace,
    )
    reading = one(payload)
    assert (reading.kind, reading.code, reading.plate) == (EventKind.PLATE_READ, "plate", "京A12345")
    assert reading.device_time == WHEN_UTC
    assert (reading.device_ref, reading.ref, reading.repeat) == (MAC, "20240518210311abc", True)
    assert reading.confidence == pytest.approx(0.87)
    assert reading.attributes["lane"] == 3
    assert reading.attributes["lat"] == pytest.approx(30.2741, abs=1e-6)
    assert reading.attributes["lon"] == pytest.approx(120.1551, abs=1e-6)


def test_hikvision_anpr_no_read_and_local_time() -> None:
    """A None plate is the camera's "unknown" (a no-read); a naive time stays naive."""
    reading = one(samples.hikvision_anpr_xml(plate=None, when=datetime(2024, 5, 18, 21, 3, 11), mac=MAC, uuid="u"))
    assert (reading.code, reading.plate) == ("no_read", None)
    assert reading.device_time == datetime(2024, 5, 18, 21, 3, 11)


@pytest.mark.parametrize(
    ("minor", "code"), [(0x1B, "forced_open"), (0x1C, "held_open"), (0x01, "card_pass"), (0x4B, "face_pass")]
)
def test_hikvision_access_round_trip(minor: int, code: str) -> None:
    """Access events read back their code, serial-based ref, door and retransmission flag."""
    payload = samples.hikvision_access_json(minor=minor, when=WHEN, mac=MAC, serial_no=512, door=2, retransmission=True)
    reading = one(payload)
    assert (reading.kind, reading.code, reading.device_time) == (EventKind.ACCESS, code, WHEN_UTC)
    assert reading.ref == f"acs:512:{WHEN.isoformat()}"
    assert (reading.attributes["door"], reading.repeat) == (2, True)


@pytest.mark.parametrize(
    ("trigger", "kind", "code"),
    [(False, EventKind.CROWD_COUNT, "periodic"), (True, EventKind.CROWD_ALARM, "density")],
)
def test_hikvision_density_round_trip(trigger: bool, kind: EventKind, code: str) -> None:
    """Person density reads back count, region and periodic / alarm kind."""
    payload = samples.hikvision_density_json(
        count=17, when=WHEN, mac=MAC, region="Gate Square", trigger=trigger, uuid="d1"
    )
    reading = one(payload)
    assert (reading.kind, reading.code, reading.count, reading.zone) == (kind, code, 17, "Gate Square")
    assert reading.device_time == WHEN_UTC


def test_hikvision_multipart_round_trip() -> None:
    """The multipart wrapper keeps the JSON part readable and reports the JPEG part's size."""
    inner = samples.hikvision_density_json(count=9, when=WHEN, mac=MAC)
    reading = one(samples.hikvision_multipart(inner, jpeg_size=4000, rng=random.Random(1)))
    assert reading.count == 9
    assert reading.attributes["image_parts"] == 1 and reading.attributes["image_bytes"] == 4000 + 22


def test_hikvision_face_capture_round_trip() -> None:
    """faceCapture reads back score, uid:faceId ref, dwell time and the image pIds."""
    payload = samples.hikvision_face_capture_json(
        when=WHEN,
        mac=MAC,
        uid="uid-77",
        face_id=4,
        face_score=73,
        stay_ms=1800,
        face_pid="F1",
        background_pid="B1",
        rng=random.Random(2),
    )
    reading = one(payload)
    assert (reading.kind, reading.ref, reading.device_time) == (EventKind.FACE_CAPTURE, "uid-77:4", WHEN_UTC)
    assert reading.confidence == pytest.approx(0.73)
    assert reading.attributes["stay_duration_ms"] == 1800
    assert {image["pid"] for image in reading.attributes["images"]} == {"F1", "B1"}


@pytest.mark.parametrize(
    ("event_type", "code"),
    [
        ("fielddetection", "field_detection"),
        ("linedetection", "line_crossing"),
        ("regionEntrance", "region_entrance"),
    ],
)
def test_hikvision_intrusion_round_trip(event_type: str, code: str) -> None:
    """Smart events read back their code, region zone and start/stop state."""
    start = one(samples.hikvision_intrusion_xml(when=WHEN, mac=MAC, event_type=event_type, region_id=4, uuid="i1"))
    stop = one(
        samples.hikvision_intrusion_xml(when=WHEN, mac=MAC, event_type=event_type, region_id=4, uuid="i1", active=False)
    )
    assert (start.kind, start.code, start.zone, start.state) == (EventKind.INTRUSION, code, "4", "start")
    assert stop.state == "stop" and stop.ref != start.ref


def test_hikvision_heartbeat_round_trip() -> None:
    """The videoloss-inactive keep-alive reads back as a heartbeat."""
    reading = one(samples.hikvision_heartbeat_xml(when=WHEN, mac=MAC))
    assert (reading.kind, reading.code, reading.device_time) == (
        EventKind.DEVICE_STATUS,
        "heartbeat",
        WHEN_UTC,
    )


def test_dahua_traffic_junction_round_trip() -> None:
    """TrafficJunction reads back plate, RealUTC time, ids, machine name and 0-255 confidence."""
    payload = samples.dahua_traffic_junction_json(
        plate="苏E·88K21",
        real_utc=WHEN,
        event_id=77,
        group_id=901,
        machine_name="8M049B2PAJF3085",
        utc_offset_hours=8,
        lane=3,
        vehicle_confidence=200,
        rng=random.Random(4),
    )
    reading = one(payload)
    assert (reading.plate, reading.device_time, reading.ref) == ("苏E88K21", WHEN_UTC, "77:901")
    assert reading.device_ref == "8M049B2PAJF3085" and reading.attributes["lane"] == 3
    assert reading.confidence == pytest.approx(200 / 255)


def test_dahua_traffic_junction_no_plate() -> None:
    """An empty Dahua plate text is a no-read."""
    payload = samples.dahua_traffic_junction_json(plate=None, real_utc=WHEN, event_id=1, group_id=2, machine_name="M")
    assert one(payload).code == "no_read"


def test_dahua_text_part_round_trip() -> None:
    """A text part carries code, action, index and data, framed or bare."""
    data = {
        "EventID": 31,
        "Name": "Fence",
        "Direction": "Enter",
        "RealUTC": int(WHEN_UTC.timestamp()),
        "Object": {"ObjectType": "Human"},
    }
    for boundary in ("myboundary", None):
        reading = one(samples.dahua_text_part("CrossRegionDetection", "Start", data, index=2, boundary=boundary))
        assert (reading.kind, reading.code, reading.state, reading.zone) == (
            EventKind.INTRUSION,
            "region_intrusion",
            "start",
            "Fence",
        )
        assert reading.attributes["channel"] == 2 and reading.device_time == WHEN_UTC


def test_dahua_rioter_round_trip() -> None:
    """RioterDetection reads back people count, rule zone, action and RealUTC time."""
    reading = one(samples.dahua_rioter_text(action="Stop", real_utc=WHEN, event_id=5, people=12, name="East Plaza"))
    assert (reading.kind, reading.count, reading.zone, reading.state) == (
        EventKind.CROWD_ALARM,
        12,
        "East Plaza",
        "stop",
    )
    assert reading.device_time == WHEN_UTC


def test_dahua_alarm_local_round_trip() -> None:
    """AlarmLocal with only local time reads back as a naive-time button press on its input."""
    reading = one(samples.dahua_alarm_local_text(action="Start", local_time=datetime(2024, 5, 18, 21, 3, 11), index=4))
    assert (reading.kind, reading.code, reading.state) == (EventKind.ALARM_BUTTON, "press", "start")
    assert reading.device_time == datetime(2024, 5, 18, 21, 3, 11)
    assert reading.attributes["alarm_input"] == 4


def test_gat1400_motor_vehicle_round_trip() -> None:
    """MotorVehicleObject reads back plate, local PassTime, DeviceID, id, reliability and image size."""
    local = datetime(2024, 6, 1, 8, 0, 4)
    payload = samples.gat1400_motor_vehicle_json(
        plate="浙BY6H39",
        pass_time=local,
        device_id="33029902001210000118",
        vehicle_id="330299020012100001180220240601080004000010200001",
        reliability=91,
        storage_url="http://viid/pic/1.jpg",
        image_data=b"\xff\xd8" + b"x" * 98,
        rng=random.Random(6),
    )
    reading = one(payload)
    assert (reading.plate, reading.device_time, reading.device_ref, reading.ref) == (
        "浙BY6H39",
        local,
        "33029902001210000118",
        "330299020012100001180220240601080004000010200001",
    )
    assert reading.confidence == pytest.approx(0.91)
    assert reading.attributes["images"][0] == {"url": "http://viid/pic/1.jpg"}
    assert reading.attributes["images"][1]["data_bytes"] == 100
    assert "device_id_invalid" not in reading.attributes
    no_plate = samples.gat1400_motor_vehicle_json(
        plate=None, pass_time=local, device_id="33029902001210000118", vehicle_id="mv-2", reliability=None
    )
    assert (one(no_plate).code, one(no_plate).confidence) == ("no_read", None)


def test_gat1400_face_round_trip() -> None:
    """FaceObject reads back FaceID, DeviceID and FaceAppearTime (else the image ShotTime)."""
    shot = datetime(2024, 6, 1, 8, 0, 4)
    payload = samples.gat1400_face_json(
        face_id="340200000011900000010620240601080004000010600001",
        device_id="34020000001190000001",
        shot_time=shot,
        image_id="img-1",
        image_data=b"z" * 30,
    )
    reading = one(payload)
    assert (reading.kind, reading.ref, reading.device_ref, reading.device_time) == (
        EventKind.FACE_CAPTURE,
        "340200000011900000010620240601080004000010600001",
        "34020000001190000001",
        shot,
    )
    assert reading.attributes["images"][0]["data_bytes"] == 30
    appear = shot - timedelta(seconds=3)
    assert (
        one(
            samples.gat1400_face_json(
                face_id="f",
                device_id="34020000001190000001",
                shot_time=shot,
                image_id="i",
                appear_time=appear,
            )
        ).device_time
        == appear
    )


@pytest.mark.parametrize(
    ("kind", "state", "repeat"), [("new", "start", False), ("update", None, True), ("end", "stop", False)]
)
def test_frigate_event_round_trip(kind: str, state: str | None, repeat: bool) -> None:
    """frigate/events messages read back type code, refs, camera, zone, time and score."""
    frame = WHEN_UTC.timestamp() + 0.25
    payload = samples.frigate_event_json(
        kind,
        event_id="1716037388.1-abc",
        camera="front_gate",
        frame_time=frame,
        start_time=frame - 3,
        label="person",
        score=0.8,
        top_score=0.92,
        zones=("entrance", "lawn"),
        end_time=frame if kind == "end" else None,
        rng=random.Random(8),
    )
    reading = one(payload, topic="frigate/events")
    assert (reading.kind, reading.code, reading.state, reading.repeat) == (
        EventKind.OBJECT,
        kind,
        state,
        repeat,
    )
    assert reading.ref == (f"1716037388.1-abc:update:{frame}" if kind == "update" else f"1716037388.1-abc:{kind}")
    assert (reading.device_ref, reading.zone) == ("front_gate", "entrance")
    assert reading.device_time == datetime.fromtimestamp(frame, tz=UTC)
    assert reading.confidence == pytest.approx(0.92)


def test_frigate_event_with_plate_round_trip() -> None:
    """A car with a recognised plate reads back the normalised plate and its score."""
    payload = samples.frigate_event_json(
        "update",
        event_id="e",
        camera="car_park",
        frame_time=1.7e9,
        start_time=1.7e9 - 1,
        label="car",
        plate="粤b12345",
        plate_score=0.81,
    )
    reading = one(payload, topic="frigate/events")
    assert (reading.plate, reading.confidence) == ("粤B12345", pytest.approx(0.81))


def test_frigate_review_round_trip() -> None:
    """frigate/reviews messages read back severity code, zone, objects and detections."""
    payload = samples.frigate_review_json(
        "end",
        review_id="r-1",
        camera="plaza",
        start_time=1.7e9,
        end_time=1.7e9 + 40,
        severity="detection",
        objects=("car",),
        zones=("road",),
        detections=("d1", "d2"),
    )
    reading = one(payload, topic="frigate/reviews")
    assert (reading.code, reading.zone, reading.state, reading.ref) == (
        "review_detection",
        "road",
        "stop",
        "r-1:end",
    )
    assert reading.device_time == datetime.fromtimestamp(1.7e9 + 40, tz=UTC)
    assert reading.attributes["detections"] == 2 and reading.attributes["objects"] == ["car"]


def test_canonical_round_trip() -> None:
    """A canonical event reads back every field it was given."""
    payload = samples.canonical_json(
        kind="gps_position",
        code="fix",
        time=WHEN,
        device="unit-7",
        id="g-1",
        zone="beat 3",
        confidence=0.9,
        lat=30.25,
        lon=120.17,
        attributes={"speed_kmh": 12},
    )
    reading = one(payload)
    assert (reading.kind, reading.code, reading.device_ref, reading.ref, reading.zone) == (
        EventKind.GPS_POSITION,
        "fix",
        "unit-7",
        "g-1",
        "beat 3",
    )
    assert reading.device_time == WHEN_UTC and reading.confidence == pytest.approx(0.9)
    assert reading.attributes == {"speed_kmh": 12, "lat": 30.25, "lon": 120.17}
    plate = one(samples.canonical_json(kind="plate_read", code="plate", plate="京A12345", count=None))
    assert plate.plate == "京A12345" and plate.device_time is None


def test_random_sample_covers_every_format_and_parses() -> None:
    """random_sample is deterministic per seed, spans all formats, and parses by topic and by content."""
    first_rng, again_rng = random.Random(11), random.Random(11)
    first = [samples.random_sample(first_rng, when=WHEN) for _ in range(5)]
    assert first == [samples.random_sample(again_rng, when=WHEN) for _ in range(5)]
    assert len({sample.payload for sample in first}) == 5
    rng = random.Random(12)
    formats: Counter[str] = Counter()
    for _ in range(400):
        sample = samples.random_sample(rng, when=WHEN)
        by_topic = parse(sample.payload, topic=f"watchpost/site-1/dev-1/{sample.topic_suffix}")
        assert by_topic == parse(sample.payload, topic="in", format=sample.format)
        assert {reading.source_format for reading in by_topic} == {sample.format}
        formats[sample.format] += 1
    assert set(formats) == {"hikvision", "dahua", "gat1400", "frigate", "canonical"}
