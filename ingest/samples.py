"""Realistic device payloads in every accepted format, for the simulator and the benchmarks.

Each generator is shaped on the real samples in ``shared/formats/`` and takes every value
that identifies the event (time, ids, plate, counts) explicitly, so the same arguments give
the same bytes. Cosmetic fields (vehicle colour, boxes, JPEG filler) are fixed unless a
``random.Random`` is passed as ``rng``. Every output parses back through
``ingest.adapters.parse`` to the values put in (see tests/ingest/test_samples.py).

Times: pass an aware datetime where the format carries a zone or an absolute epoch
(Hikvision, Dahua ``RealUTC``, Frigate, canonical), a naive local wall time where it does not
(GA/T 1400; Hikvision and canonical accept naive too and then omit the zone).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple
from xml.sax.saxutils import escape

__all__ = [
    "HIKVISION_NAMESPACE",
    "ISAPI_NAMESPACE",
    "PROVINCES",
    "Sample",
    "canonical_json",
    "dahua_alarm_local_text",
    "dahua_rioter_text",
    "dahua_text_part",
    "dahua_traffic_junction_json",
    "frigate_event_json",
    "frigate_review_json",
    "gat1400_face_json",
    "gat1400_motor_vehicle_json",
    "hikvision_access_json",
    "hikvision_anpr_xml",
    "hikvision_density_json",
    "hikvision_face_capture_json",
    "hikvision_heartbeat_xml",
    "hikvision_intrusion_xml",
    "hikvision_multipart",
    "random_device_id",
    "random_mac",
    "random_plate",
    "random_sample",
]

# Province abbreviations on Chinese plates (GA 36): the first character of every civil plate.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # I and O are not used on plates (confused with 1 and 0)
_ALNUM = "0123456789" + _LETTERS
ISAPI_NAMESPACE = "http://www.isapi.org/ver20/XMLSchema"
HIKVISION_NAMESPACE = "http://www.hikvision.com/ver20/XMLSchema"
_COLOURS = ("white", "black", "gray", "blue", "red", "silver", "brown")
_DAHUA_COLOURS = ("White", "Black", "Gray", "Blue", "Red", "Silver", "Yellow")
_JPEG_HEAD = bytes.fromhex("ffd8ffe000104a46494600010100000100010000")


def _pick(rng: random.Random | None, choices: Sequence[Any], default: Any) -> Any:
    return rng.choice(choices) if rng is not None else default


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1).encode()


# --------------------------------------------------------------------------- identities


def random_plate(rng: random.Random) -> str:
    """A civil plate: province, issuing-office letter, five letters/digits (浙BY6H39)."""
    return rng.choice(PROVINCES) + rng.choice(_LETTERS) + "".join(rng.choice(_ALNUM) for _ in range(5))


def random_mac(rng: random.Random) -> str:
    """A MAC address in a Hikvision OUI, lower case as devices print it."""
    return "bc:5e:33:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


def random_device_id(rng: random.Random, *, kind: str = "121") -> str:
    """A 20-digit GA/T 1400 device id: 8-digit area + industry + type + serial."""
    area = rng.choice(("33010602", "44030501", "11010802", "51010403"))
    return f"{area}00{kind}{rng.randrange(10**7):07d}"


def _jpeg(size: int, rng: random.Random | None) -> bytes:
    filler = bytes(rng.randrange(256) for _ in range(size)) if rng else bytes(range(256)) * (size // 256 + 1)
    return _JPEG_HEAD + filler[:size] + b"\xff\xd9"


# --------------------------------------------------------------------------- Hikvision


def _hik_time(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _hik_envelope(
    *,
    ip: str,
    mac: str,
    when: datetime,
    event_type: str,
    state: str,
    description: str,
    channel: int,
    active_post_count: int,
    retransmission: bool,
    channel_name: str = "Camera 01",
    port: int = 80,
) -> dict[str, Any]:
    return {
        "ipAddress": ip,
        "portNo": port,
        "protocol": "HTTP",
        "macAddress": mac,
        "channelID": channel,
        "dateTime": _hik_time(when),
        "activePostCount": active_post_count,
        "isDataRetransmission": retransmission,
        "eventType": event_type,
        "eventState": state,
        "eventDescription": description,
        "channelName": channel_name,
    }


def _xml_elements(items: Iterable[tuple[str, Any]], indent: str = "  ") -> str:
    lines = []
    for name, value in items:
        if isinstance(value, list):
            inner = "".join(_xml_elements(entry, indent + "  ") for entry in value)
            lines.append(f"{indent}<{name}>\n{inner}{indent}</{name}>\n")
        elif isinstance(value, bool):
            lines.append(f"{indent}<{name}>{'true' if value else 'false'}</{name}>\n")
        else:
            lines.append(f"{indent}<{name}>{escape(str(value))}</{name}>\n")
    return "".join(lines)


def _xml_alert(elements: Iterable[tuple[str, Any]], namespace: str | None) -> bytes:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    body = _xml_elements(elements)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<EventNotificationAlert version="2.0"{xmlns}>\n{body}'
        "</EventNotificationAlert>\n"
    ).encode()


def _dms(value: float) -> list[tuple[str, Any]]:
    value = abs(value)
    degree = int(value)
    minute = int((value - degree) * 60)
    second = (value - degree - minute / 60) * 3600
    return [("degree", degree), ("minute", minute), ("sec", f"{second:.6f}")]


def hikvision_anpr_xml(
    *,
    plate: str | None,
    when: datetime,
    mac: str,
    uuid: str,
    confidence: int = 95,
    ip: str = "10.2.124.188",
    channel: int = 1,
    lane: int = 1,
    direction: str = "forward",
    lat: float | None = None,
    lon: float | None = None,
    active_post_count: int = 1,
    retransmission: bool = False,
    namespace: str | None = HIKVISION_NAMESPACE,
    rng: random.Random | None = None,
) -> bytes:
    """ISAPI ``ANPR`` alert as XML (a None plate is the camera's "unknown" no-read)."""
    abs_time = when.strftime("%Y%m%d%H%M%S") + f"{when.microsecond // 1000:03d}"
    stamp = when.strftime("%Y%m%d%H%M%S")
    pictures = [
        [
            ("fileName", "licensePlatePicture.jpg"),
            ("type", "licensePlatePicture"),
            ("dataType", 0),
            ("absTime", abs_time),
            ("pId", f"{stamp}82400{uuid[-12:]}P"),
        ],
        [
            ("fileName", "vehiclePicture.jpg"),
            ("type", "vehiclePicture"),
            ("dataType", 0),
            ("absTime", abs_time),
            ("pId", f"{stamp}82400{uuid[-12:]}V"),
        ],
    ]
    anpr: list[tuple[str, Any]] = [
        ("country", 3),
        ("licensePlate", plate if plate is not None else "unknown"),
        ("line", lane),
        ("direction", direction),
        ("confidenceLevel", confidence),
        ("plateType", "92TypeCivil"),
        ("plateColor", _pick(rng, ("blue", "yellow", "green"), "blue")),
        ("vehicleType", "vehicle"),
        ("vehicleInfo", [[("index", 39), ("colorDepth", 2), ("color", _pick(rng, _COLOURS, "white"))]]),
        ("pictureInfoList", [[("pictureInfo", [picture])] for picture in pictures]),
        ("originalLicensePlate", plate if plate is not None else "unknown"),
        ("vehicleListName", "otherList"),
    ]
    elements: list[tuple[str, Any]] = list(
        _hik_envelope(
            ip=ip,
            mac=mac,
            when=when,
            event_type="ANPR",
            state="active",
            description="ANPR",
            channel=channel,
            active_post_count=active_post_count,
            retransmission=retransmission,
        ).items()
    )
    elements.append(("ANPR", [anpr]))
    elements.append(("UUID", uuid))
    elements.append(("picNum", 2))
    if lat is not None and lon is not None:
        elements.append(
            (
                "DeviceGPSInfo",
                [
                    [
                        ("longitudeType", "E" if lon >= 0 else "W"),
                        ("latitudeType", "N" if lat >= 0 else "S"),
                        ("Longitude", [_dms(lon)]),
                        ("Latitude", [_dms(lat)]),
                    ]
                ],
            )
        )
    return _xml_alert(elements, namespace)


def hikvision_access_json(
    *,
    minor: int,
    when: datetime,
    mac: str,
    serial_no: int,
    major: int = 5,
    ip: str = "192.168.1.64",
    door: int = 1,
    device_name: str = "Access Controller",
    active_post_count: int = 1,
    retransmission: bool = False,
) -> bytes:
    """ISAPI ``AccessControllerEvent`` (major 5 minor 0x1b forced door, 0x1c held open, 0x4b face pass...)."""
    alert = _hik_envelope(
        ip=ip,
        mac=mac,
        when=when,
        event_type="AccessControllerEvent",
        state="active",
        description="Access Controller Event",
        channel=1,
        active_post_count=active_post_count,
        retransmission=retransmission,
        port=4000,
    )
    alert["AccessControllerEvent"] = {
        "deviceName": device_name,
        "majorEventType": major,
        "subEventType": minor,
        "cardReaderKind": 1,
        "cardReaderNo": 1,
        "doorNo": door,
        "serialNo": serial_no,
        "currentVerifyMode": "cardOrFace",
        "frontSerialNo": serial_no - 1,
    }
    return _json(alert)


def hikvision_density_json(
    *,
    count: int,
    when: datetime,
    mac: str,
    region: str = "Area1",
    region_id: int = 1,
    trigger: bool = False,
    uuid: str | None = None,
    ip: str = "192.168.60.64",
) -> bytes:
    """ISAPI ``personDensityDetection``: periodic count (dataSource PDC) or alarm (trigger)."""
    alert = _hik_envelope(
        ip=ip,
        mac=mac,
        when=when,
        event_type="personDensityDetection",
        state="active",
        description="Person Density Detection",
        channel=1,
        active_post_count=1,
        retransmission=False,
        port=4000,
    )
    if uuid is not None:
        alert["UUID"] = uuid
    alert["personDensityResult"] = {
        "Target": [
            {
                "recognitionType": "human",
                "TargetInfo": {
                    "recognition": "personDensityDetection",
                    "dataSource": "trigger" if trigger else "PDC",
                    "framesPeopleCounting_number": count,
                    "regionName": region,
                    "regionID": region_id,
                },
            }
        ],
        "contentID": "background_image",
    }
    alert["densityBackgroundImageResolution"] = {"height": 1136, "width": 1920}
    return _json(alert)


def hikvision_multipart(
    part: bytes,
    *,
    jpeg_size: int = 2048,
    content_type: str = "application/json",
    rng: random.Random | None = None,
) -> bytes:
    """An alert as the camera pushes it over HTTP: the alert part beside a JPEG part."""
    jpeg = _jpeg(jpeg_size, rng)
    return (
        b'--boundary\r\nContent-Type: %s; charset="UTF-8"\r\nContent-Length: %d\r\n\r\n'
        % (content_type.encode(), len(part))
        + part
        + b"\r\n--boundary\r\nContent-Disposition: form-data;"
        b' name="background_image"; filename="background_image.jpg"'
        b"\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nContent-ID: background_image\r\n\r\n"
        % len(jpeg)
        + jpeg
        + b"\r\n--boundary--\r\n"
    )


def hikvision_face_capture_json(
    *,
    when: datetime,
    mac: str,
    uid: str,
    face_id: int,
    face_score: int,
    stay_ms: int = 2500,
    face_pid: str = "2026081923342255100gyuEgvVVi0cBT",
    background_pid: str = "20260819233422551006SaRwF7S6igl4",
    ip: str = "192.168.101.215",
    rng: random.Random | None = None,
) -> bytes:
    """ISAPI ``faceCapture`` with one face: rectangle, score, dwell time, image pIds."""
    alert = _hik_envelope(
        ip=ip,
        mac=mac,
        when=when,
        event_type="faceCapture",
        state="active",
        description="faceCapture",
        channel=1,
        active_post_count=1,
        retransmission=False,
        port=8855,
    )
    x = round(rng.uniform(0.05, 0.8), 3) if rng else 0.575
    alert["faceCapture"] = [
        {
            "targetAttrs": {
                "deviceName": "IP CAMERA",
                "deviceChannel": 1,
                "faceTime": _hik_time(when),
                "contentID": "backgroundImage",
                "pId": background_pid,
            },
            "faces": [
                {
                    "faceId": face_id,
                    "faceRect": {"height": 0.194, "width": 0.087, "x": x, "y": 0.4},
                    "contentID": "faceImage",
                    "pId": face_pid,
                    "stayDuration": stay_ms,
                    "faceScore": face_score,
                    "captureEndMark": False,
                }
            ],
            "uid": uid,
        }
    ]
    return _json(alert)


def hikvision_intrusion_xml(
    *,
    when: datetime,
    mac: str,
    active: bool = True,
    event_type: str = "fielddetection",
    region_id: int = 1,
    uuid: str | None = None,
    target: str = "human",
    ip: str = "192.168.1.65",
    active_post_count: int = 1,
    namespace: str | None = ISAPI_NAMESPACE,
) -> bytes:
    """ISAPI smart event (fielddetection, linedetection, regionEntrance...) as XML."""
    elements: list[tuple[str, Any]] = list(
        _hik_envelope(
            ip=ip,
            mac=mac,
            when=when,
            event_type=event_type,
            state="active" if active else "inactive",
            description=f"{event_type} alarm",
            channel=1,
            active_post_count=active_post_count,
            retransmission=False,
        ).items()
    )
    corners = ((260, 401), (711, 398), (702, 95), (255, 104))
    elements.append(
        (
            "DetectionRegionList",
            [
                [
                    (
                        "DetectionRegionEntry",
                        [
                            [
                                ("regionID", region_id),
                                ("sensitivityLevel", 50),
                                (
                                    "RegionCoordinatesList",
                                    [
                                        [("RegionCoordinates", [[("positionX", x), ("positionY", y)]])]
                                        for x, y in corners
                                    ],
                                ),
                                ("detectionTarget", target),
                            ]
                        ],
                    )
                ]
            ],
        )
    )
    if uuid is not None:
        elements.append(("UUID", uuid))
    return _xml_alert(elements, namespace)


def hikvision_heartbeat_xml(*, when: datetime, mac: str, ip: str = "10.20.1.31") -> bytes:
    """The ISAPI keep-alive: ``videoloss`` with eventState inactive, no namespace (older firmware)."""
    elements = _hik_envelope(
        ip=ip,
        mac=mac,
        when=when,
        event_type="videoloss",
        state="inactive",
        description="videoloss alarm",
        channel=1,
        active_post_count=0,
        retransmission=False,
    )
    return _xml_alert(elements.items(), None)


# --------------------------------------------------------------------------- Dahua


def _dahua_times(real_utc: datetime, utc_offset_hours: float) -> dict[str, Any]:
    real = real_utc.astimezone(UTC)
    wall = real.replace(tzinfo=None) + timedelta(hours=utc_offset_hours)
    return {
        "LocaleTime": wall.strftime("%Y-%m-%d %H:%M:%S"),
        "RealUTC": int(real.timestamp()),
        "UTC": int((wall - datetime(1970, 1, 1)).total_seconds()),  # wall time as if UTC: Dahua's quirk
        "UTCMS": real.microsecond // 1000,
    }


def dahua_traffic_junction_json(
    *,
    plate: str | None,
    real_utc: datetime,
    event_id: int,
    group_id: int,
    machine_name: str,
    utc_offset_hours: float = 8,
    lane: int = 1,
    vehicle_confidence: int = 160,
    object_confidence: int = 0,
    request_id: int = 3143,
    rng: random.Random | None = None,
) -> bytes:
    """RPC2 ``client.notifyEventStream`` carrying one ``TrafficJunction`` plate read."""
    times = _dahua_times(real_utc, utc_offset_hours)
    data = {
        "Action": "Pulse",
        "Class": "Traffic",
        "Code": "TrafficJunction",
        "EventID": event_id,
        "GroupID": group_id,
        "JunctionDirection": "Obverse",
        "Lane": lane,
        "LocaleTime": times["LocaleTime"],
        "Name": "TrafficTollGate0",
        "Object": {
            "Confidence": object_confidence,
            "ObjectType": "Plate",
            "Text": plate if plate is not None else "",
        },
        "RealUTC": times["RealUTC"],
        "TimeZone": 13,
        "TrafficCar": {
            "DrivingDirection": ["Approach", "Car come in", "Car go out"],
            "MachineName": machine_name,
            "PlateColor": _pick(rng, ("Blue", "Yellow", "Green"), "Blue"),
            "PlateNumber": plate if plate is not None else "",
            "PlateType": "Normal",
            "UTC": times["UTC"],
            "VehicleColor": _pick(rng, _DAHUA_COLOURS, "White"),
        },
        "UTC": times["UTC"],
        "UTCMS": times["UTCMS"],
        "Vehicle": {"Category": "Motor", "Confidence": vehicle_confidence},
    }
    message = {
        "id": request_id,
        "method": "client.notifyEventStream",
        "params": {"SID": 513, "eventList": [{"Action": "Pulse", "Code": "TrafficJunction", "Data": data}]},
        "session": "537478f7285075076ff055201d96d1a4",
    }
    return _json(message)


def dahua_text_part(
    code: str,
    action: str,
    data: Mapping[str, Any] | None = None,
    *,
    index: int = 0,
    boundary: str | None = "myboundary",
) -> bytes:
    """One eventManager stream part: ``Code=..;action=..;index=..;data={...}``, framed by
    ``--boundary`` and ``Content-Type: text/plain`` unless ``boundary`` is None."""
    line = f"Code={code};action={action};index={index}"
    if data is not None:
        # Dahua pretty-prints data with three-space indents and " : " separators.
        line += ";data=" + json.dumps(data, ensure_ascii=False, indent=3, separators=(",", " : "))
    body = line.encode()
    if boundary is None:
        return body + b"\r\n"
    return b"--%s\r\nContent-Type: text/plain\r\nContent-Length:%d\r\n\r\n%s\r\n" % (
        boundary.encode(),
        len(body),
        body,
    )


def dahua_rioter_text(
    *,
    action: str,
    real_utc: datetime,
    event_id: int,
    people: int,
    name: str = "PlazaGathering",
    utc_offset_hours: float = 8,
    index: int = 0,
    boundary: str | None = "myboundary",
) -> bytes:
    """A ``RioterDetection`` (people gathering) Start/Stop text part with the tracked object ids."""
    times = _dahua_times(real_utc, utc_offset_hours)
    data = {
        "Class": "Normal",
        "EventID": event_id,
        "GroupID": event_id,
        "LocaleTime": times["LocaleTime"],
        "Name": name,
        "ObjectIDs": [100 + number for number in range(people)],
        "RealUTC": times["RealUTC"],
        "UTC": times["UTC"],
    }
    return dahua_text_part("RioterDetection", action, data, index=index, boundary=boundary)


def dahua_alarm_local_text(
    *,
    action: str,
    local_time: datetime,
    index: int = 0,
    event_id: int | None = None,
    boundary: str | None = "myboundary",
) -> bytes:
    """An ``AlarmLocal`` part (alarm input: how emergency buttons wired to an NVR report),
    with only the local wall time (no ``RealUTC``), as older firmware sends it."""
    wall = local_time.replace(tzinfo=None)
    data: dict[str, Any] = {
        "LocaleTime": wall.strftime("%Y-%m-%d %H:%M:%S"),
        "UTC": int((wall - datetime(1970, 1, 1)).total_seconds()),
    }
    if event_id is not None:
        data["EventID"] = event_id
    return dahua_text_part("AlarmLocal", action, data, index=index, boundary=boundary)


# --------------------------------------------------------------------------- GA/T 1400


def _gat_time(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


def gat1400_motor_vehicle_json(
    *,
    plate: str | None,
    pass_time: datetime,
    device_id: str,
    vehicle_id: str,
    reliability: int | None = 90,
    storage_url: str | None = None,
    lane: int = 1,
    image_data: bytes | None = None,
    rng: random.Random | None = None,
) -> bytes:
    """``MotorVehicleListObject`` push with one vehicle; ``pass_time`` is local wall time."""
    shot = _gat_time(pass_time)
    sub_image: dict[str, Any] = {
        "ImageID": f"{device_id}02{shot}00001",
        "EventSort": 5,
        "DeviceID": device_id,
        "Type": "02",
        "FileFormat": "Jpeg",
        "ShotTime": shot,
        "Width": 1920,
        "Height": 1080,
    }
    if image_data is not None:
        sub_image["Data"] = base64.b64encode(image_data).decode()
    vehicle: dict[str, Any] = {
        "MotorVehicleID": vehicle_id,
        "InfoKind": 1,
        "SourceID": f"{device_id}02{shot}00001",
        "TollgateID": device_id,
        "DeviceID": device_id,
        "LeftTopX": 0,
        "LeftTopY": 0,
        "RightBtmX": 0,
        "RightBtmY": 0,
        "LaneNo": lane,
        "HasPlate": "1" if plate else "0",
        "PlateClass": "02",
        "PlateColor": _pick(rng, ("2", "1", "5"), "2"),
        "PlateNo": plate if plate else "",
        "Speed": rng.randrange(10, 60) if rng else 35,
        "Direction": "1",
        "VehicleClass": "K33",
        "VehicleColor": _pick(rng, ("A", "B", "C", "J"), "A"),
        "PassTime": shot,
        "PlateReliability": "" if reliability is None else str(reliability),
        "SubImageList": {"SubImageInfoObject": [sub_image]},
        "InOut": "in",
    }
    if storage_url is not None:
        vehicle["StorageUrl1"] = storage_url
    return _json({"MotorVehicleListObject": {"MotorVehicleObject": [vehicle]}})


def gat1400_face_json(
    *,
    face_id: str,
    device_id: str,
    shot_time: datetime,
    image_id: str,
    appear_time: datetime | None = None,
    image_data: bytes | None = None,
) -> bytes:
    """``FaceListObject`` push with one face and its scene image (Type 14); local times."""
    sub_image: dict[str, Any] = {
        "ImageID": image_id,
        "EventSort": 2,
        "DeviceID": device_id,
        "Type": "14",
        "FileFormat": "Jpeg",
        "ShotTime": _gat_time(shot_time),
        "Width": 1920,
        "Height": 1080,
    }
    if image_data is not None:
        sub_image["FileSize"] = len(image_data)
        sub_image["Data"] = base64.b64encode(image_data).decode()
    face: dict[str, Any] = {
        "FaceID": face_id,
        "InfoKind": 0,
        "SourceID": image_id,
        "DeviceID": device_id,
        "LeftTopX": 163,
        "LeftTopY": 726,
        "RightBtmX": 334,
        "RightBtmY": 897,
    }
    if appear_time is not None:
        face["FaceAppearTime"] = _gat_time(appear_time)
    face["SubImageList"] = {"SubImageInfoObject": [sub_image]}
    return _json({"FaceListObject": {"FaceObject": [face]}})


# --------------------------------------------------------------------------- Frigate


def frigate_event_json(
    type: str,
    *,
    event_id: str,
    camera: str,
    frame_time: float,
    start_time: float,
    label: str = "person",
    score: float = 0.84,
    top_score: float = 0.91,
    zones: Sequence[str] = (),
    plate: str | None = None,
    plate_score: float | None = None,
    end_time: float | None = None,
    rng: random.Random | None = None,
) -> bytes:
    """``frigate/events`` message (type new/update/end) with before/after object states."""
    x = rng.randrange(0, 1500) if rng else 424

    def state(frame: float, current_score: float, current_zones: Sequence[str]) -> dict[str, Any]:
        return {
            "id": event_id,
            "camera": camera,
            "frame_time": frame,
            "snapshot": None,
            "label": label,
            "sub_label": None,
            "top_score": top_score,
            "false_positive": False,
            "start_time": start_time,
            "end_time": end_time if type == "end" else None,
            "score": current_score,
            "box": [x, 500, x + 112, 712],
            "area": 23744,
            "ratio": 0.53,
            "region": [264, 450, 667, 853],
            "current_zones": list(current_zones),
            "entered_zones": list(zones),
            "thumbnail": None,
            "has_snapshot": type == "end",
            "has_clip": type == "end",
            "active": type != "end",
            "stationary": False,
            "motionless_count": 0,
            "position_changes": 1,
            "attributes": {},
            "current_attributes": [],
            "recognized_license_plate": plate,
            "recognized_license_plate_score": plate_score,
        }

    after = state(frame_time, score, zones)
    message: dict[str, Any] = {"type": type, "before": None, "after": after}
    if type != "new":
        message["before"] = state(round(frame_time - 0.2, 6), round(score * 0.9, 6), zones[:1])
    return _json(message)


def frigate_review_json(
    type: str,
    *,
    review_id: str,
    camera: str,
    start_time: float,
    severity: str = "alert",
    end_time: float | None = None,
    objects: Sequence[str] = ("person",),
    zones: Sequence[str] = (),
    detections: Sequence[str] = (),
) -> bytes:
    """``frigate/reviews`` message (type new/update/end) for one review item."""

    def state(current_detections: Sequence[str], current_end: float | None) -> dict[str, Any]:
        return {
            "id": review_id,
            "camera": camera,
            "start_time": start_time,
            "end_time": current_end,
            "severity": severity,
            "thumb_path": f"/media/frigate/clips/review/thumb-{camera}-{review_id}.webp",
            "data": {
                "detections": list(current_detections),
                "objects": list(objects),
                "sub_labels": [],
                "zones": list(zones),
                "audio": [],
            },
        }

    after = state(detections, end_time if type == "end" else None)
    before = None if type == "new" else state(detections[:-1] if type == "update" else detections, None)
    return _json({"type": type, "before": before, "after": after})


# --------------------------------------------------------------------------- canonical


def canonical_json(
    *,
    kind: str,
    code: str,
    time: datetime | float | None = None,
    device: str | None = None,
    id: str | None = None,
    plate: str | None = None,
    confidence: float | None = None,
    zone: str | None = None,
    count: int | None = None,
    state: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> bytes:
    """A canonical Watchpost event; fields left None are omitted."""
    event: dict[str, Any] = {"device": device, "kind": kind, "code": code}
    event["time"] = time.isoformat() if isinstance(time, datetime) else time
    for key, value in (
        ("id", id),
        ("plate", plate),
        ("confidence", confidence),
        ("zone", zone),
        ("count", count),
        ("state", state),
        ("lat", lat),
        ("lon", lon),
    ):
        event[key] = value
    if attributes:
        event["attributes"] = dict(attributes)
    return json.dumps({key: value for key, value in event.items() if value is not None}, ensure_ascii=False).encode()


# --------------------------------------------------------------------------- variety


class Sample(NamedTuple):
    """One generated payload and the adapter that reads it."""

    format: str
    name: str  # which generator made it
    payload: bytes
    topic_suffix: str  # e.g. "frigate/events" for Frigate, else the format name


def random_sample(rng: random.Random, *, when: datetime, zone_hours: float = 8) -> Sample:
    """A random payload of any generator, with plausible values, for load simulation.

    ``when`` is the aware event time; formats without a zone get its wall time at
    ``zone_hours`` from UTC.
    """
    local = when.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=zone_hours)
    aware_local = when.astimezone(timezone(timedelta(hours=zone_hours)))
    mac = random_mac(rng)
    token = f"{rng.getrandbits(64):016x}"
    choice = rng.randrange(12)
    if choice == 0:
        payload = hikvision_anpr_xml(
            plate=random_plate(rng),
            when=aware_local,
            mac=mac,
            uuid=f"{local:%Y%m%d%H%M%S}{token}",
            confidence=rng.randrange(60, 101),
            lane=rng.randrange(1, 4),
            rng=rng,
        )
        return Sample("hikvision", "hikvision_anpr_xml", payload, "hikvision")
    if choice == 1:
        minor = rng.choice((0x01, 0x4B, 0x4B, 0x4B, 0x1B, 0x1C, 0x09, 0x4C))
        payload = hikvision_access_json(minor=minor, when=aware_local, mac=mac, serial_no=rng.randrange(1, 10**6))
        return Sample("hikvision", "hikvision_access_json", payload, "hikvision")
    if choice == 2:
        payload = hikvision_density_json(
            count=rng.randrange(0, 60),
            when=aware_local,
            mac=mac,
            trigger=rng.random() < 0.1,
            uuid=token if rng.random() < 0.5 else None,
        )
        if rng.random() < 0.3:
            payload = hikvision_multipart(payload, jpeg_size=rng.randrange(512, 4096), rng=rng)
        return Sample("hikvision", "hikvision_density_json", payload, "hikvision")
    if choice == 3:
        payload = hikvision_face_capture_json(
            when=aware_local,
            mac=mac,
            uid=f"{local:%Y%m%d%H%M%S}{token}",
            face_id=rng.randrange(1, 10**5),
            face_score=rng.randrange(30, 100),
            stay_ms=rng.randrange(200, 30000),
            rng=rng,
        )
        return Sample("hikvision", "hikvision_face_capture_json", payload, "hikvision")
    if choice == 4:
        payload = hikvision_intrusion_xml(
            when=aware_local,
            mac=mac,
            active=rng.random() < 0.7,
            event_type=rng.choice(("fielddetection", "linedetection", "regionEntrance")),
            uuid=token,
        )
        return Sample("hikvision", "hikvision_intrusion_xml", payload, "hikvision")
    if choice == 5:
        return Sample(
            "hikvision",
            "hikvision_heartbeat_xml",
            hikvision_heartbeat_xml(when=aware_local, mac=mac),
            "hikvision",
        )
    if choice == 6:
        payload = dahua_traffic_junction_json(
            plate=random_plate(rng) if rng.random() < 0.95 else None,
            real_utc=when,
            event_id=rng.randrange(1, 10**5),
            group_id=rng.randrange(1, 10**9),
            machine_name=f"8M0{rng.randrange(10**11):011d}",
            utc_offset_hours=zone_hours,
            lane=rng.randrange(1, 4),
            vehicle_confidence=rng.randrange(80, 256),
            rng=rng,
        )
        return Sample("dahua", "dahua_traffic_junction_json", payload, "dahua")
    if choice == 7:
        payload = dahua_rioter_text(
            action=rng.choice(("Start", "Stop")),
            real_utc=when,
            event_id=rng.randrange(1, 10**5),
            people=rng.randrange(5, 40),
            utc_offset_hours=zone_hours,
        )
        return Sample("dahua", "dahua_rioter_text", payload, "dahua")
    if choice == 8:
        payload = gat1400_motor_vehicle_json(
            plate=random_plate(rng),
            pass_time=local,
            device_id=random_device_id(rng),
            vehicle_id=f"{token}{rng.getrandbits(64):016x}",
            reliability=rng.randrange(60, 100),
            rng=rng,
        )
        return Sample("gat1400", "gat1400_motor_vehicle_json", payload, "gat1400")
    if choice == 9:
        device_id = random_device_id(rng, kind="119")
        payload = gat1400_face_json(
            face_id=f"{device_id}{token}",
            device_id=device_id,
            shot_time=local,
            image_id=f"{device_id}02{local:%Y%m%d%H%M%S}",
        )
        return Sample("gat1400", "gat1400_face_json", payload, "gat1400")
    if choice == 10:
        epoch = when.timestamp()
        kind = rng.choice(("new", "update", "update", "end"))
        payload = frigate_event_json(
            kind,
            event_id=f"{epoch - 3:.6f}-{token[:6]}",
            camera=rng.choice(("front_gate", "plaza", "car_park")),
            frame_time=epoch,
            start_time=round(epoch - 3, 6),
            label=rng.choice(("person", "car", "bicycle")),
            score=round(rng.uniform(0.5, 0.99), 4),
            top_score=round(rng.uniform(0.7, 0.99), 4),
            zones=rng.choice(((), ("entrance",), ("entrance", "lawn"))),
            end_time=epoch if kind == "end" else None,
            rng=rng,
        )
        return Sample("frigate", "frigate_event_json", payload, "frigate/events")
    payload = canonical_json(
        kind="alarm_button",
        code="press",
        time=when,
        device=f"btn-{rng.randrange(1, 50):02d}",
        id=token,
        state="pulse",
    )
    return Sample("canonical", "canonical_json", payload, "canonical")
