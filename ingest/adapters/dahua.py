"""Dahua events: RPC2 ``client.notifyEventStream`` JSON and ``eventManager`` text parts.

Text parts look like ``Code=TrafficJunction;action=Pulse;index=0;data={...json...}``, one or
more per message, possibly inside ``--myboundary`` multipart framing with ``Content-Type:
text/plain`` headers (split off by ``_common``). A bare ``Heartbeat`` part is a keep-alive.

Times: ``RealUTC`` is true UTC; ``UTC`` is the local wall time written as if it were an
epoch (a device at UTC+7 reports 14:34 as 14:34Z), so it becomes a naive local time, as
does ``LocaleTime``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from watchpost.model import AdaptError, DeadReason, EventKind, Reading

from ._common import (
    NO_TIME,
    Adapter,
    DeviceTime,
    Document,
    as_list,
    check_count,
    first_text,
    get_str,
    load_json,
    make_reading,
    normalise_confidence,
    normalise_plate,
    parse_time,
    put,
    schema_error,
    wall_time_from_epoch,
)

__all__ = ["ADAPTER", "EVENT_CODES"]

SOURCE = "dahua"
_EVENT_START = re.compile(r"(?m)^[ \t]*Code=")
_STATES = {"start": "start", "stop": "stop", "pulse": "pulse"}
_RPC_METHOD = "client.notifyEventStream"


_Handler = Callable[["_Event", dict[str, Any]], tuple[EventKind, str, dict[str, Any]]]


class _Event(NamedTuple):
    """One Dahua event, from either wire form."""

    code: str
    action: str | None
    index: int | None
    data: Mapping[str, Any]
    where: str  # where it sits in the payload, for error details


def detect(doc: Document) -> bool:
    """RPC2 notifyEventStream JSON, a single ``{"Code", "Action", "Data"}`` object, or text parts."""
    if doc.syntax == "text":
        return _EVENT_START.search(doc.text) is not None or _is_heartbeat(doc.text)
    data = doc.data
    if doc.syntax != "json" or not isinstance(data, dict):
        return False
    if data.get("method") == _RPC_METHOD:
        return True
    params = data.get("params")
    if isinstance(params, dict) and "eventList" in params:
        return True
    return isinstance(data.get("Code"), str) and ("Action" in data or "Data" in data)


def adapt(doc: Document) -> list[Reading]:
    """Readings of every event in the message; UNSUPPORTED_EVENT only if none is handled."""
    readings: list[Reading] = []
    seen: list[str] = []
    for event in _events(doc):
        reading = _reading(event)
        if reading is None:
            seen.append(event.code)
        else:
            readings.append(reading)
    if not readings:
        if not seen:
            raise schema_error("Dahua payload carries no events")
        raise AdaptError(
            DeadReason.UNSUPPORTED_EVENT, f"Dahua event code(s) not handled: {', '.join(sorted(set(seen)))}"
        )
    return readings


# --------------------------------------------------------------------------- wire forms


def _events(doc: Document) -> Iterator[_Event]:
    if doc.syntax == "text":
        yield from _text_events(doc)
        return
    data = doc.data
    if doc.syntax != "json" or not isinstance(data, dict):
        raise schema_error("expected Dahua event-stream text parts or an RPC2 notifyEventStream JSON object")
    params = data.get("params")
    if isinstance(data.get("Code"), str) and params is None:
        yield _json_event(data, "event")
        return
    if not isinstance(params, dict):
        raise schema_error("notifyEventStream.params is missing or not an object")
    events = params.get("eventList")
    if not isinstance(events, list):
        raise schema_error("notifyEventStream.params.eventList is missing or not a list")
    for number, entry in enumerate(events):
        if not isinstance(entry, dict):
            raise schema_error(f"params.eventList[{number}] must be an object")
        yield _json_event(entry, f"params.eventList[{number}]")


def _json_event(entry: Mapping[str, Any], where: str) -> _Event:
    data = entry.get("Data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise schema_error(f"{where}.Data must be an object")
    code = get_str(entry, "Code") or get_str(data, "Code")
    if code is None:
        raise schema_error(f"{where}.Code is missing")
    index = entry.get("Index", data.get("Index"))
    return _Event(
        code=code,
        action=get_str(entry, "Action") or get_str(data, "Action"),
        index=index if isinstance(index, int) and not isinstance(index, bool) else None,
        data=data,
        where=where,
    )


def _is_heartbeat(text: str) -> bool:
    return text.strip().lower() == "heartbeat"


def _text_events(doc: Document) -> Iterator[_Event]:
    chunks = doc.parts or (doc.text,)
    number = 0
    for chunk in chunks:
        starts = [match.start() for match in _EVENT_START.finditer(chunk)]
        if not starts:
            if _is_heartbeat(chunk):
                yield _Event("Heartbeat", None, None, {}, f"part {number}")
                number += 1
            continue
        for begin, end in zip(starts, [*starts[1:], len(chunk)], strict=True):
            yield _text_event(chunk[begin:end].strip(), f"event {number}")
            number += 1


def _text_event(text: str, where: str) -> _Event:
    head, has_data, data_text = text.partition(";data=")
    fields: dict[str, str] = {}
    for item in head.split(";"):
        key, _, value = item.partition("=")
        fields[key.strip().lower()] = value.strip()
    code = fields.get("code", "")
    if not code:
        raise schema_error(f"Dahua {where}: Code= is empty")
    data: Any = {}
    data_text = data_text.strip()
    if has_data and data_text.startswith("{"):
        data = load_json(data_text, where=f"Dahua {code} data")
        if not isinstance(data, dict):
            raise schema_error(f"Dahua {where} ({code}): data must be a JSON object")
    index_text = fields.get("index", "")
    return _Event(
        code=code,
        action=fields.get("action") or None,
        index=int(index_text) if index_text.isdigit() and index_text.isascii() and len(index_text) < 10 else None,
        data=data,
        where=where,
    )


# --------------------------------------------------------------------------- readings


def _time(data: Mapping[str, Any]) -> DeviceTime:
    real = data.get("RealUTC")
    if real not in (None, "", 0, "0") and not isinstance(real, bool):
        return parse_time(real)
    wall = data.get("UTC")
    if wall not in (None, "", 0, "0") and not isinstance(wall, bool):
        return wall_time_from_epoch(wall)
    locale = data.get("LocaleTime")
    return parse_time(locale) if locale else NO_TIME


def _ref(event: _Event, state: str | None) -> str | None:
    event_id = get_str(event.data, "EventID")
    group_id = get_str(event.data, "GroupID")
    if event_id is None and group_id is None:
        return None
    ref = ":".join(part for part in (event_id, group_id) if part is not None)
    # Start and Stop of one event share its EventID: keep them apart.
    return f"{ref}:{state}" if state in ("start", "stop") else ref


def _base(event: _Event) -> dict[str, Any]:
    attributes: dict[str, Any] = {"event_code": event.code}
    put(attributes, "channel", event.index)
    put(attributes, "rule", get_str(event.data, "Name"))
    put(attributes, "utc_ms", event.data.get("UTCMS") if isinstance(event.data.get("UTCMS"), int) else None)
    return attributes


def _rule_event(kind: EventKind, code: str) -> _Handler:
    """A rule event (line, region, loitering): the rule name is the zone."""

    def handle(event: _Event, attributes: dict[str, Any]) -> tuple[EventKind, str, dict[str, Any]]:
        obj = event.data.get("Object")
        if isinstance(obj, dict):
            put(attributes, "object_type", get_str(obj, "ObjectType"))
        put(attributes, "direction", get_str(event.data, "Direction"))
        return kind, code, {"zone": get_str(event.data, "Name")}

    return handle


def _motion(event: _Event, attributes: dict[str, Any]) -> tuple[EventKind, str, dict[str, Any]]:
    names = [name for name in as_list(event.data.get("RegionName")) if isinstance(name, str) and name]
    if names:
        attributes["regions"] = names
    if event.code.startswith("SmartMotion"):
        attributes["object_type"] = event.code.removeprefix("SmartMotion").lower()
    return EventKind.INTRUSION, "motion", {"zone": names[0] if names else None}


def _gathering(event: _Event, attributes: dict[str, Any]) -> tuple[EventKind, str, dict[str, Any]]:
    data = event.data
    count = None
    for key in ("Count", "PeopleCount", "HumanCount", "Number"):
        if data.get(key) not in (None, ""):
            count = check_count(data.get(key), where=f"Dahua {event.where} ({event.code}) data.{key}")
            break
    else:
        for key in ("Objects", "ObjectIDs"):
            if isinstance(data.get(key), list):
                count = len(data[key])
                break
    return EventKind.CROWD_ALARM, "gathering", {"zone": get_str(data, "Name"), "count": count}


def _alarm_input(event: _Event, attributes: dict[str, Any]) -> tuple[EventKind, str, dict[str, Any]]:
    put(attributes, "alarm_input", event.index)
    return EventKind.ALARM_BUTTON, "press", {"zone": get_str(event.data, "Name")}


def _face(event: _Event, attributes: dict[str, Any]) -> tuple[EventKind, str, dict[str, Any]]:
    # Only how many faces and which object: never the face attributes Dahua adds
    # (Sex, Age, Glasses, Mask, Emotion...), which would categorise people.
    faces = event.data.get("Faces")
    if isinstance(faces, list):
        attributes["faces"] = len(faces)
    obj = event.data.get("Object")
    if isinstance(obj, dict):
        put(attributes, "object_id", obj.get("ObjectID") if isinstance(obj.get("ObjectID"), int) else None)
    return EventKind.FACE_CAPTURE, "capture", {}


def _traffic(event: _Event, attributes: dict[str, Any]) -> tuple[EventKind, str, dict[str, Any]]:
    data = event.data
    obj = data.get("Object") if isinstance(data.get("Object"), dict) else {}
    car = data.get("TrafficCar") if isinstance(data.get("TrafficCar"), dict) else {}
    vehicle = data.get("Vehicle") if isinstance(data.get("Vehicle"), dict) else {}
    plate = normalise_plate(first_text((obj.get("Text"), car.get("PlateNumber"))))
    put(attributes, "lane", _int(data.get("Lane")) if "Lane" in data else _int(car.get("Lane")))
    put(attributes, "direction", get_str(data, "JunctionDirection"))
    driving = car.get("DrivingDirection")
    if isinstance(driving, list) and driving and isinstance(driving[0], str):
        put(attributes, "driving_direction", driving[0])
    put(attributes, "vehicle_color", get_str(car, "VehicleColor"))
    put(attributes, "plate_color", get_str(car, "PlateColor"))
    put(attributes, "plate_type", get_str(car, "PlateType"))
    put(attributes, "vehicle_category", get_str(vehicle, "Category"))
    put(attributes, "speed", _int(car.get("Speed")))
    confidence = None
    for value in (obj.get("Confidence"), vehicle.get("Confidence"), car.get("Confidence")):
        confidence = normalise_confidence(value)
        if confidence:  # 0 means "not reported" on Dahua, not "certainly wrong"
            break
    return (
        EventKind.PLATE_READ,
        "plate" if plate else "no_read",
        {
            "plate": plate,
            "confidence": confidence or None,
            "device_ref": get_str(car, "MachineName") or get_str(data, "MachineName"),
        },
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _status(code: str) -> _Handler:
    def handle(event: _Event, attributes: dict[str, Any]) -> tuple[EventKind, str, dict[str, Any]]:
        return EventKind.DEVICE_STATUS, code, {}

    return handle


# Dahua event Code -> handler. Other Traffic* codes that carry a plate are plate reads too.
EVENT_CODES: dict[str, _Handler] = {
    "TrafficJunction": _traffic,
    "TrafficGate": _traffic,
    "TrafficParking": _traffic,
    "TrafficParkingSpaceParking": _traffic,
    "TrafficManualSnap": _traffic,
    "RioterDetection": _gathering,
    "CrossLineDetection": _rule_event(EventKind.INTRUSION, "line_crossing"),
    "CrossRegionDetection": _rule_event(EventKind.INTRUSION, "region_intrusion"),
    "WanderDetection": _rule_event(EventKind.INTRUSION, "loitering"),
    "VideoMotion": _motion,
    "SmartMotionHuman": _motion,
    "SmartMotionVehicle": _motion,
    "AlarmLocal": _alarm_input,
    "FaceDetection": _face,
    "VideoLoss": _status("video_loss"),
    "VideoBlind": _status("tamper"),
    "VideoAbnormalDetection": _status("scene_change"),
    "StorageNotExist": _status("storage_fault"),
    "StorageFailure": _status("storage_fault"),
    "StorageLowSpace": _status("storage_low"),
    "Heartbeat": _status("heartbeat"),
}


def _handler(event: _Event) -> _Handler | None:
    handler = EVENT_CODES.get(event.code)
    if handler is None and event.code.startswith("Traffic"):
        data = event.data
        obj = data.get("Object")
        if isinstance(data.get("TrafficCar"), dict) or (isinstance(obj, dict) and obj.get("ObjectType") == "Plate"):
            return _traffic
    return handler


def _reading(event: _Event) -> Reading | None:
    handler = _handler(event)
    if handler is None:
        return None
    state = _STATES.get((event.action or "").lower())
    attributes = _base(event)
    kind, code, fields = handler(event, attributes)
    if kind is EventKind.DEVICE_STATUS and event.code == "Heartbeat":
        state = None
    return make_reading(
        kind,
        code,
        _time(event.data),
        SOURCE,
        attributes,
        device_ref=fields.get("device_ref"),
        ref=_ref(event, state),
        plate=fields.get("plate"),
        confidence=fields.get("confidence"),
        zone=fields.get("zone"),
        count=fields.get("count"),
        state=state,
    )


ADAPTER = Adapter(name=SOURCE, detect=detect, adapt=adapt, priority=30)
