"""Hikvision ISAPI ``EventNotificationAlert`` pushes, as XML (any namespace) or JSON.

XML is turned into the same dict shape as the JSON form (see ``_common.load_xml``), so one
code path reads both; XML leaves are strings, hence the tolerant field readers.

Privacy boundary: face captures keep image references, score and dwell time only; every
face attribute (age, gender, glasses, mask, expression...) and every person identifier of
access events (card number, employee number, name) is dropped here, never stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from watchpost.model import AdaptError, DeadReason, EventKind, Reading

from ._common import (
    Adapter,
    DeviceTime,
    Document,
    as_list,
    check_count,
    dms_to_decimal,
    get_bool,
    get_str,
    make_reading,
    normalise_confidence,
    normalise_plate,
    parse_time,
    put,
    require_int,
    schema_error,
)

__all__ = ["ACCESS_CODES", "ADAPTER", "EVENT_TYPES"]

SOURCE = "hikvision"
_ENVELOPE_KEYS = ("dateTime", "ipAddress", "macAddress", "activePostCount", "channelID")
_STATES = {"active": "start", "inactive": "stop"}


def detect(doc: Document) -> bool:
    """An ``EventNotificationAlert`` XML root, or a JSON object with its envelope fields."""
    if doc.syntax == "xml":
        return doc.root == "EventNotificationAlert"
    data = doc.data
    if doc.syntax != "json" or not isinstance(data, dict):
        return False
    if isinstance(data.get("EventNotificationAlert"), dict):
        return True
    return "eventType" in data and any(key in data for key in _ENVELOPE_KEYS)


class _Envelope(NamedTuple):
    """The fields every ISAPI alert carries, read once per message."""

    event_type: str
    device_ref: str | None
    when: DeviceTime
    raw_time: str | None
    repeat: bool
    uuid: str | None
    state: str | None  # "start" / "stop" from eventState
    base: Mapping[str, Any]  # attributes shared by every reading of the message

    def attributes(self) -> dict[str, Any]:
        return dict(self.base)

    def ref(self, *parts: Any) -> str | None:
        """The vendor UUID, qualified by the state so a stop is not a replay of its start."""
        if self.uuid:
            return f"{self.uuid}:{self.state}" if self.state else self.uuid
        return ":".join(str(part) for part in parts) if parts else None


def adapt(doc: Document) -> list[Reading]:
    """Readings of one ISAPI alert; an unknown ``eventType`` is UNSUPPORTED_EVENT."""
    alert = _alert(doc)
    env = _envelope(alert, doc)
    handler = EVENT_TYPES.get(env.event_type.lower())
    if handler is None:
        raise AdaptError(DeadReason.UNSUPPORTED_EVENT, f"Hikvision eventType {env.event_type!r} is not handled")
    return handler(alert, env)


def _alert(doc: Document) -> Mapping[str, Any]:
    if doc.syntax == "xml":
        if doc.root != "EventNotificationAlert":
            raise schema_error(f"XML root is <{doc.root}>, expected <EventNotificationAlert>")
        if not isinstance(doc.data, dict):
            raise schema_error("<EventNotificationAlert> has no child elements")
        return doc.data
    if doc.syntax == "json" and isinstance(doc.data, dict):
        inner = doc.data.get("EventNotificationAlert")
        return inner if isinstance(inner, dict) else doc.data
    raise schema_error("expected an ISAPI EventNotificationAlert as XML or as a JSON object")


def _envelope(alert: Mapping[str, Any], doc: Document) -> _Envelope:
    event_type = get_str(alert, "eventType")
    if event_type is None:
        raise schema_error("EventNotificationAlert.eventType is missing")
    mac = get_str(alert, "macAddress")
    ip = get_str(alert, "ipAddress")
    base: dict[str, Any] = {"event_type": event_type}
    put(base, "channel", _loose_int(alert.get("channelID")))
    put(base, "channel_name", get_str(alert, "channelName"))
    if mac and ip:
        base["ip_address"] = ip
    # Retransmission markers stay out of attributes: for a reading without a ref the
    # attributes enter the idempotency key, and a repeat must map to the same key.
    post_count = _loose_int(alert.get("activePostCount"))
    base.update(doc.media)
    state_text = (get_str(alert, "eventState") or "").lower()
    raw_time = get_str(alert, "dateTime")
    return _Envelope(
        event_type=event_type,
        device_ref=mac.lower() if mac else ip,
        when=parse_time(raw_time),
        raw_time=raw_time,
        repeat=(post_count or 0) > 1 or get_bool(alert, "isDataRetransmission"),
        uuid=get_str(alert, "UUID"),
        state=_STATES.get(state_text),
        base=base,
    )


def _loose_int(value: Any) -> int | None:
    """Envelope counters: a device that sends garbage there loses the counter, not the event."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit() and value.isascii():
        return int(value)
    return None


def _section(alert: Mapping[str, Any], name: str, env: _Envelope) -> Mapping[str, Any]:
    section = alert.get(name)
    if not isinstance(section, dict):
        raise schema_error(f"EventNotificationAlert.{name} is missing or not an object (eventType {env.event_type})")
    return section


# --------------------------------------------------------------------------- ANPR


def _anpr(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
    anpr = _section(alert, "ANPR", env)
    # Some firmware puts "unknown" in licensePlate and the read in originalLicensePlate.
    plate = normalise_plate(anpr.get("licensePlate")) or normalise_plate(anpr.get("originalLicensePlate"))
    attributes = env.attributes()
    put(attributes, "lane", _loose_int(anpr.get("line")))
    put(attributes, "direction", get_str(anpr, "direction"))
    put(attributes, "plate_color", get_str(anpr, "plateColor"))
    put(attributes, "plate_type", get_str(anpr, "plateType"))
    put(attributes, "vehicle_type", get_str(anpr, "vehicleType"))
    put(attributes, "vehicle_list", get_str(anpr, "vehicleListName"))
    put(attributes, "country", get_str(anpr, "country"))
    vehicle = anpr.get("vehicleInfo")
    if isinstance(vehicle, dict):
        put(attributes, "vehicle_color", get_str(vehicle, "color"))
    pictures = _pictures(anpr)
    if pictures:
        attributes["images"] = pictures
    position = _gps(alert.get("DeviceGPSInfo"))
    if position:
        attributes["lat"], attributes["lon"] = position
    when = env.when
    if when.time is None and not when.zero_date:  # no usable dateTime: the capture time will do
        abs_time = next((t for t in (get_str(p, "absTime") for p in _picture_list(anpr)) if t), None)
        if abs_time:
            when = parse_time(abs_time)
    first_pid = pictures[0].get("pid") if pictures else None
    return [
        make_reading(
            EventKind.PLATE_READ,
            "plate" if plate else "no_read",
            when,
            SOURCE,
            attributes,
            device_ref=env.device_ref,
            ref=env.uuid or (f"anpr:{first_pid}" if first_pid else None),
            plate=plate,
            confidence=normalise_confidence(anpr.get("confidenceLevel")),
            repeat=env.repeat,
        )
    ]


def _picture_list(anpr: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    holder = anpr.get("pictureInfoList")
    items = as_list(holder.get("pictureInfo")) if isinstance(holder, dict) else as_list(holder)
    return [item for item in items if isinstance(item, dict)]


def _pictures(anpr: Mapping[str, Any]) -> list[dict[str, Any]]:
    pictures = []
    for item in _picture_list(anpr):
        picture: dict[str, Any] = {}
        put(picture, "file", get_str(item, "fileName"))
        put(picture, "type", get_str(item, "type"))
        put(picture, "pid", get_str(item, "pId"))
        if picture:
            pictures.append(picture)
    return pictures


def _gps(info: Any) -> tuple[float, float] | None:
    if not isinstance(info, dict):
        return None
    lat = _coordinate(info.get("Latitude") or info.get("latitude"), get_str(info, "latitudeType"))
    lon = _coordinate(info.get("Longitude") or info.get("longitude"), get_str(info, "longitudeType"))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    if lat == 0 and lon == 0:
        return None  # no fix: devices report 0/0 rather than leaving the block out
    return lat, lon


def _coordinate(value: Any, hemisphere: str | None) -> float | None:
    if isinstance(value, dict):
        return dms_to_decimal(value.get("degree"), value.get("minute"), value.get("sec"), hemisphere)
    if isinstance(value, int | float | str) and not isinstance(value, bool) and value != "":
        return dms_to_decimal(value, 0, 0, hemisphere)
    return None


# --------------------------------------------------------------------------- faceCapture


def _faces(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
    entries = as_list(alert.get("faceCapture"))
    if not entries:
        raise schema_error("EventNotificationAlert.faceCapture is missing or empty (eventType faceCapture)")
    readings: list[Reading] = []
    for index, entry in enumerate(entries):
        where = f"faceCapture[{index}]"
        if not isinstance(entry, dict):
            raise schema_error(f"{where} must be an object")
        target = entry.get("targetAttrs")
        target = target if isinstance(target, dict) else {}
        face_time = get_str(target, "faceTime")
        when = parse_time(face_time) if face_time else env.when
        uid = get_str(entry, "uid")
        background: dict[str, Any] = {}
        put(background, "content_id", get_str(target, "contentID"))
        put(background, "pid", get_str(target, "pId"))
        faces = entry.get("faces")
        if isinstance(faces, dict) and "face" in faces:  # XML: <faces><face>...</face></faces>
            faces = faces["face"]
        for number, face in enumerate(as_list(faces)):
            if not isinstance(face, dict):
                raise schema_error(f"{where}.faces[{number}] must be an object")
            readings.append(_face(face, env, when, uid, background, number))
    if not readings:
        raise schema_error("faceCapture carries no faces")
    return readings


def _face(
    face: Mapping[str, Any],
    env: _Envelope,
    when: DeviceTime,
    uid: str | None,
    background: dict[str, Any],
    number: int,
) -> Reading:
    attributes = env.attributes()
    raw_id = face.get("faceId")
    face_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else get_str(face, "faceId")
    put(attributes, "face_id", face_id)
    put(attributes, "stay_duration_ms", _loose_int(face.get("stayDuration")))
    if "captureEndMark" in face:
        attributes["capture_end"] = get_bool(face, "captureEndMark")
    image: dict[str, Any] = {}
    put(image, "content_id", get_str(face, "contentID"))
    put(image, "pid", get_str(face, "pId"))
    images = [item for item in (image, background) if item]
    if images:
        attributes["images"] = images
    if uid:
        ref = f"{uid}:{face_id if face_id is not None else number}"
    else:
        ref = f"face:{image['pid']}" if image.get("pid") else env.ref()
    return make_reading(
        EventKind.FACE_CAPTURE,
        "capture",
        when,
        SOURCE,
        attributes,
        device_ref=env.device_ref,
        ref=ref,
        confidence=normalise_confidence(face.get("faceScore")),
        repeat=env.repeat,
    )


# --------------------------------------------------------------------------- access control

# (majorEventType, subEventType) -> kind, code, state, access result. Codes from the
# HCNetSDK / ISAPI ACS event tables (MINOR_* constants). Majors: 1 alarm, 2 exception,
# 3 operation, 5 event. Unlisted minors become "event_<major>_<minor hex>", not dropped.
_A = EventKind.ACCESS
_S = EventKind.DEVICE_STATUS
_B = EventKind.ALARM_BUTTON
ACCESS_CODES: dict[tuple[int, int], tuple[EventKind, str, str | None, str | None]] = {
    # major 5: events
    (5, 0x01): (_A, "card_pass", None, "granted"),
    (5, 0x02): (_A, "card_password_pass", None, "granted"),
    (5, 0x03): (_A, "card_password_fail", None, "denied"),
    (5, 0x04): (_A, "card_password_timeout", None, "denied"),
    (5, 0x06): (_A, "card_no_right", None, "denied"),
    (5, 0x07): (_A, "card_invalid_period", None, "denied"),
    (5, 0x08): (_A, "card_expired", None, "denied"),
    (5, 0x09): (_A, "invalid_card", None, "denied"),
    (5, 0x0A): (_A, "anti_passback_fail", None, "denied"),
    (5, 0x13): (_A, "always_open", "start", None),
    (5, 0x14): (_A, "always_open", "stop", None),
    (5, 0x15): (_A, "lock_open", None, None),
    (5, 0x16): (_A, "lock_close", None, None),
    (5, 0x17): (_A, "exit_button", None, None),
    (5, 0x19): (_A, "door_open", None, None),
    (5, 0x1A): (_A, "door_close", None, None),
    (5, 0x1B): (_A, "forced_open", None, None),
    (5, 0x1C): (_A, "held_open", None, None),
    (5, 0x1F): (_A, "always_close", "start", None),
    (5, 0x20): (_A, "always_close", "stop", None),
    (5, 0x25): (_A, "doorbell", None, None),
    (5, 0x26): (_A, "fingerprint_pass", None, "granted"),
    (5, 0x27): (_A, "fingerprint_fail", None, "denied"),
    (5, 0x3C): (_A, "face_card_pass", None, "granted"),
    (5, 0x3D): (_A, "face_card_fail", None, "denied"),
    (5, 0x4B): (_A, "face_pass", None, "granted"),
    (5, 0x4C): (_A, "face_fail", None, "denied"),
    (5, 0x50): (_A, "face_not_recognised", None, "denied"),
    (5, 0x83): (_S, "heartbeat", None, None),
    (5, 0x85): (_A, "tailgating", None, None),
    (5, 0x86): (_A, "reverse_pass", None, None),
    (5, 0x87): (_A, "forced_pass", None, None),
    (5, 0x88): (_A, "climb_over", None, None),
    (5, 0x89): (_A, "passing_timeout", None, None),
    (5, 0x8A): (_A, "gate_intrusion", None, None),
    (5, 0x97): (_A, "password_mismatch", None, "denied"),
    (5, 0x98): (_A, "employee_not_found", None, "denied"),
    # major 1: alarms
    (1, 0x400): (_S, "alarm_input_fault", "start", None),  # zone short circuit
    (1, 0x401): (_S, "alarm_input_fault", "start", None),  # zone broken circuit
    (1, 0x402): (_S, "alarm_input_fault", "start", None),
    (1, 0x403): (_S, "alarm_input_fault", "stop", None),
    (1, 0x404): (_S, "tamper", "start", None),  # controller housing opened
    (1, 0x405): (_S, "tamper", "stop", None),
    (1, 0x406): (_S, "tamper", "start", None),  # card reader removed
    (1, 0x407): (_S, "tamper", "stop", None),
    (1, 0x408): (_A, "case_sensor", "start", None),  # event input (door sensor loop)
    (1, 0x409): (_A, "case_sensor", "stop", None),
    (1, 0x40A): (_A, "duress", None, None),  # duress card / code: a silent call for help
    (1, 0x40C): (_A, "auth_fail_limit", None, "denied"),
    (1, 0x418): (_B, "fire_button", "start", None),
    (1, 0x419): (_B, "fire_button", "stop", None),
    (1, 0x41C): (_B, "press", "start", None),  # emergency button
    (1, 0x41D): (_B, "press", "stop", None),
    # major 2: exceptions
    (2, 0x27): (_S, "network_lost", None, None),
    (2, 0x400): (_S, "power_on", None, None),
    (2, 0x401): (_S, "power_off", None, None),
    (2, 0x402): (_S, "watchdog_reset", None, None),
    (2, 0x403): (_S, "low_battery", "start", None),
    (2, 0x404): (_S, "low_battery", "stop", None),
    (2, 0x405): (_S, "mains_lost", "start", None),
    (2, 0x406): (_S, "mains_lost", "stop", None),
    (2, 0x407): (_S, "network_restored", None, None),
    (2, 0x409): (_S, "reader_offline", "start", None),
    (2, 0x40A): (_S, "reader_offline", "stop", None),
    (2, 0x421): (_S, "camera_offline", "start", None),
    (2, 0x422): (_S, "camera_offline", "stop", None),
    # major 3: operations
    (3, 0x7B): (_S, "remote_reboot", None, None),
    (3, 0x400): (_A, "remote_open", None, None),
    (3, 0x401): (_A, "remote_close", None, None),
    (3, 0x402): (_A, "remote_always_open", None, None),
    (3, 0x403): (_A, "remote_always_close", None, None),
    (3, 0x41C): (_A, "remote_close", None, None),
    (3, 0x41D): (_A, "remote_open", None, None),
}
_UNLISTED_KIND = {1: _A, 2: _S, 3: _S, 5: _A}


def _access(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
    where = "AccessControllerEvent"
    acs = _section(alert, where, env)
    major = require_int(acs, "majorEventType", where=where)
    minor = require_int(acs, "subEventType", where=where)
    if major < 0 or minor < 0:
        raise schema_error(f"{where}: negative majorEventType/subEventType {major}/{minor}")
    kind, code, state, result = ACCESS_CODES.get(
        (major, minor), (_UNLISTED_KIND.get(major, _A), f"event_{major}_{minor:x}", None, None)
    )
    attributes = env.attributes()
    attributes["major"] = major
    attributes["minor"] = minor
    attributes["minor_hex"] = f"0x{minor:x}"
    put(attributes, "access_result", result)
    put(attributes, "door", _loose_int(acs.get("doorNo")))
    put(attributes, "card_reader", _loose_int(acs.get("cardReaderNo")))
    put(attributes, "verify_mode", get_str(acs, "currentVerifyMode"))
    put(attributes, "user_type", get_str(acs, "userType"))
    put(attributes, "device_name", get_str(acs, "deviceName"))
    serial = _loose_int(acs.get("serialNo"))
    put(attributes, "serial_no", serial)
    # serialNo numbers events per controller; the event time guards against the counter
    # restarting after a reset (a repeat carries the time of the original event).
    ref = env.uuid or (f"acs:{serial}:{env.raw_time or ''}" if serial is not None else None)
    return [
        make_reading(
            kind,
            code,
            env.when,
            SOURCE,
            attributes,
            device_ref=env.device_ref,
            ref=ref,
            repeat=env.repeat,
            state=state,
        )
    ]


# --------------------------------------------------------------------------- people density


def _density(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
    result = _section(alert, "personDensityResult", env)
    targets = as_list(result.get("Target"))
    if not targets:
        raise schema_error("personDensityResult.Target is missing or empty")
    readings = []
    for index, target in enumerate(targets):
        where = f"personDensityResult.Target[{index}].TargetInfo"
        info = target.get("TargetInfo") if isinstance(target, dict) else None
        if not isinstance(info, dict):
            raise schema_error(f"{where} is missing or not an object")
        source = get_str(info, "dataSource")
        periodic = (source or "").lower() in ("pdc", "timing")
        raw_count = info.get("framesPeopleCounting_number")
        if raw_count is None or raw_count == "":
            if periodic:
                raise schema_error(f"{where}.framesPeopleCounting_number is missing (dataSource {source})")
            count = None
        else:
            count = check_count(raw_count, where=f"{where}.framesPeopleCounting_number")
        attributes = env.attributes()
        put(attributes, "data_source", source)
        region_id = get_str(info, "regionID")
        put(attributes, "region_id", region_id)
        readings.append(
            make_reading(
                EventKind.CROWD_COUNT if periodic else EventKind.CROWD_ALARM,
                "periodic" if periodic else "density",
                env.when,
                SOURCE,
                attributes,
                device_ref=env.device_ref,
                ref=env.ref() if not periodic else env.uuid,
                repeat=env.repeat,
                zone=get_str(info, "regionName") or region_id,
                count=count,
                state=None if periodic else env.state,
            )
        )
    return readings


# --------------------------------------------------------------------------- smart events and status


def _regions(alert: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    holder = alert.get("DetectionRegionList")
    items = as_list(holder.get("DetectionRegionEntry")) if isinstance(holder, dict) else as_list(holder)
    return [item for item in items if isinstance(item, dict)]


def _smart(kind: EventKind, code: str) -> Callable[[Mapping[str, Any], _Envelope], list[Reading]]:
    """A region / line rule event (intrusion, gathering): zone from the first region."""

    def handle(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
        regions = _regions(alert)
        attributes = env.attributes()
        region_ids = [rid for rid in (get_str(region, "regionID") for region in regions) if rid]
        if region_ids:
            attributes["region_ids"] = region_ids
        targets = [t for t in (get_str(region, "detectionTarget") for region in regions) if t]
        if targets:
            attributes["targets"] = targets
        zone = next((name for name in (get_str(r, "regionName") for r in regions) if name), None)
        return [
            make_reading(
                kind,
                code,
                env.when,
                SOURCE,
                attributes,
                device_ref=env.device_ref,
                ref=env.ref(),
                repeat=env.repeat,
                zone=zone or (region_ids[0] if region_ids else None),
                state=env.state,
            )
        ]

    return handle


def _status(code: str, *, stateful: bool = True) -> Callable[[Mapping[str, Any], _Envelope], list[Reading]]:
    def handle(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
        return [
            make_reading(
                EventKind.DEVICE_STATUS,
                code,
                env.when,
                SOURCE,
                env.attributes(),
                device_ref=env.device_ref,
                ref=env.ref() if stateful else env.uuid,
                repeat=env.repeat,
                state=env.state if stateful else None,
            )
        ]

    return handle


def _video_loss(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
    # ISAPI devices send "videoloss" with eventState inactive as their keep-alive.
    if env.state == "stop":
        return _status("heartbeat", stateful=False)(alert, env)
    return _status("video_loss")(alert, env)


def _alarm_input(alert: Mapping[str, Any], env: _Envelope) -> list[Reading]:
    # An alarm input wired to a camera / NVR: how one-button emergency alarms usually arrive.
    attributes = env.attributes()
    put(attributes, "input_port", get_str(alert, "inputIOPortID") or get_str(alert, "dynInputIOPortID"))
    return [
        make_reading(
            EventKind.ALARM_BUTTON,
            "press",
            env.when,
            SOURCE,
            attributes,
            device_ref=env.device_ref,
            ref=env.ref(),
            repeat=env.repeat,
            state=env.state,
        )
    ]


_Handler = Callable[[Mapping[str, Any], _Envelope], list[Reading]]
# eventType (lower case) -> handler. Public so the mapping can be listed and tested.
EVENT_TYPES: dict[str, _Handler] = {
    "anpr": _anpr,
    "facecapture": _faces,
    "accesscontrollerevent": _access,
    "persondensitydetection": _density,
    "fielddetection": _smart(EventKind.INTRUSION, "field_detection"),
    "linedetection": _smart(EventKind.INTRUSION, "line_crossing"),
    "regionentrance": _smart(EventKind.INTRUSION, "region_entrance"),
    "regionexiting": _smart(EventKind.INTRUSION, "region_exiting"),
    "loitering": _smart(EventKind.INTRUSION, "loitering"),
    "vmd": _smart(EventKind.INTRUSION, "motion"),
    "group": _smart(EventKind.CROWD_ALARM, "gathering"),
    "groupdetection": _smart(EventKind.CROWD_ALARM, "gathering"),
    "peoplegathering": _smart(EventKind.CROWD_ALARM, "gathering"),
    "io": _alarm_input,
    "videoloss": _video_loss,
    "heartbeat": _status("heartbeat", stateful=False),
    "tamperdetection": _status("tamper"),
    "shelteralarm": _status("tamper"),
    "scenechangedetection": _status("scene_change"),
    "diskfull": _status("disk_full"),
    "diskerror": _status("disk_error"),
    "nicbroken": _status("network_lost"),
    "ipconflict": _status("ip_conflict"),
    "illaccess": _status("illegal_access"),
}

ADAPTER = Adapter(name=SOURCE, detect=detect, adapt=adapt, priority=20)
