"""GA/T 1400 (公安视频图像信息应用系统 / 视图库) pushes: vehicles and faces as JSON.

Accepted shapes: ``MotorVehicleListObject``, ``NonMotorVehicleListObject``, ``FaceListObject``
(and their single-object forms), ``ImageListObject`` images that carry such objects, and
subscription notifications (``SubscribeNotificationListObject``) that wrap them.

Times (``PassTime``, ``ShotTime``, ``FaceAppearTime``) are ``YYYYMMDDhhmmss`` local time:
they stay naive for the pipeline to read in the device's zone.

Privacy boundary: a face keeps its id, time, device and image references only; GA/T 1400
face and person fields (gender, age, ethnicity, ID number, name, clothing...) and driver
behaviour fields (safety belt, phone use) are never copied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from watchpost.model import AdaptError, DeadReason, EventKind, Reading

from ._common import (
    MAX_ITEMS,
    NO_TIME,
    Adapter,
    DeviceTime,
    Document,
    as_list,
    get_str,
    make_reading,
    normalise_confidence,
    normalise_plate,
    parse_time,
    put,
    schema_error,
)

__all__ = ["ADAPTER"]

SOURCE = "gat1400"
_Handler = Callable[[Mapping[str, Any], str], Reading]


def detect(doc: Document) -> bool:
    """A JSON object whose keys are GA/T 1400 list or object names."""
    data = doc.data
    return doc.syntax == "json" and isinstance(data, dict) and any(key in _TOP_KEYS for key in data)


def adapt(doc: Document) -> list[Reading]:
    """One reading per vehicle / face object, wherever the push nests them."""
    if doc.syntax != "json" or not isinstance(doc.data, dict):
        raise schema_error("expected a GA/T 1400 JSON object (e.g. MotorVehicleListObject, FaceListObject)")
    readings = _collect(doc.data, "")
    if not readings:
        raise AdaptError(
            DeadReason.UNSUPPORTED_EVENT,
            "GA/T 1400 push carries no motor vehicle, non-motor vehicle or face object",
        )
    return readings


def _collect(container: Mapping[str, Any], prefix: str) -> list[Reading]:
    readings: list[Reading] = []
    for key, value in container.items():
        spec = _LISTS.get(key)
        if spec is not None:
            item_key, handler = spec
            if not isinstance(value, dict):
                raise schema_error(f"{prefix}{key} must be an object holding {item_key}")
            items = value.get(item_key)
            if isinstance(items, dict):
                items = [items]
            if not isinstance(items, list):
                raise schema_error(f"{prefix}{key}.{item_key} is missing or not a list")
            if not items and handler is not None:
                raise schema_error(f"{prefix}{key}.{item_key} is empty")
            if len(items) > MAX_ITEMS:
                raise schema_error(f"{prefix}{key}.{item_key} has {len(items)} items, the limit is {MAX_ITEMS}")
            for number, item in enumerate(items):
                where = f"{prefix}{key}.{item_key}[{number}]"
                if not isinstance(item, dict):
                    raise schema_error(f"{where} must be an object")
                if handler is None:  # a wrapper (notification, image): look inside it
                    readings.extend(_collect(item, where + "."))
                else:
                    readings.append(handler(item, where))
        elif key in _SINGLE:
            if not isinstance(value, dict):
                raise schema_error(f"{prefix}{key} must be an object")
            readings.append(_SINGLE[key](value, f"{prefix}{key}"))
    return readings


# --------------------------------------------------------------------------- objects


def _device(obj: Mapping[str, Any], attributes: dict[str, Any]) -> str | None:
    device_id = get_str(obj, "DeviceID")
    if device_id is not None and not (len(device_id) == 20 and device_id.isascii() and device_id.isdigit()):
        attributes["device_id_invalid"] = True  # kept: the pipeline may still know the device by it
    return device_id


def _first_time(obj: Mapping[str, Any], keys: tuple[str, ...], images: list[Mapping[str, Any]]) -> DeviceTime:
    unreadable = None
    for key in keys:
        if obj.get(key) not in (None, ""):
            when = parse_time(obj.get(key))
            if when.time is not None or when.zero_date:
                return when
            unreadable = unreadable or when
    for image in images:
        if image.get("shot_time"):
            when = parse_time(image["shot_time"])
            if when.time is not None:
                return when
    return unreadable or NO_TIME


def _images(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = []
    for number in range(1, 6):
        url = get_str(obj, f"StorageUrl{number}")
        if url:
            images.append({"url": url})
    holder = obj.get("SubImageList")
    items = as_list(holder.get("SubImageInfoObject")) if isinstance(holder, dict) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        image: dict[str, Any] = {}
        put(image, "image_id", get_str(item, "ImageID"))
        put(image, "type", get_str(item, "Type"))
        put(image, "url", get_str(item, "StoragePath"))
        put(image, "format", get_str(item, "FileFormat"))
        put(image, "shot_time", get_str(item, "ShotTime"))
        put(image, "width", _number(item.get("Width")))
        put(image, "height", _number(item.get("Height")))
        data = item.get("Data")
        if isinstance(data, str) and data:
            # Never the image itself: only how big it was (base64 is 4 chars per 3 bytes).
            image["data_bytes"] = len(data) * 3 // 4 - data.count("=", -2)
        if image:
            images.append(image)
    return images


def _number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    return None


def _vehicle_attributes(obj: Mapping[str, Any], attributes: dict[str, Any]) -> None:
    put(attributes, "lane", _number(obj.get("LaneNo")))
    put(attributes, "direction", get_str(obj, "Direction"))
    put(attributes, "plate_color", get_str(obj, "PlateColor"))
    put(attributes, "plate_class", get_str(obj, "PlateClass"))
    put(attributes, "vehicle_class", get_str(obj, "VehicleClass"))
    put(attributes, "vehicle_brand", get_str(obj, "VehicleBrand"))
    put(attributes, "vehicle_color", get_str(obj, "VehicleColor"))
    put(attributes, "speed", _number(obj.get("Speed")))
    put(attributes, "in_out", get_str(obj, "InOut"))
    put(attributes, "tollgate_id", get_str(obj, "TollgateID"))
    put(attributes, "info_kind", _number(obj.get("InfoKind")))


def _object_id(obj: Mapping[str, Any], key: str, device: str | None) -> str | None:
    """The object's own id, when it can identify one event.

    The standard id is 48 digits (device, type, time, sequence), but gateways in the field
    fill it with the 20-digit DeviceID or leave it empty (as in the public sample). Taken as
    the event id, such a value would make every read of that camera a replay of the first.
    """
    value = get_str(obj, key)
    if not value or value == device or len(value) <= 20:
        return None
    return value


def _plate(obj: Mapping[str, Any]) -> str | None:
    has_plate = obj.get("HasPlate")
    if has_plate in ("0", 0, False, "false"):
        return None
    return normalise_plate(obj.get("PlateNo"))


def _vehicle(
    obj: Mapping[str, Any], object_type: str
) -> tuple[dict[str, Any], str | None, list[dict[str, Any]], str | None]:
    """What motor and non-motor vehicle objects share: attributes, device, images, plate."""
    attributes: dict[str, Any] = {"object_type": object_type}
    device = _device(obj, attributes)
    _vehicle_attributes(obj, attributes)
    images = _images(obj)
    if images:
        attributes["images"] = images
    return attributes, device, images, _plate(obj)


def _motor_vehicle(obj: Mapping[str, Any], where: str) -> Reading:
    attributes, device, images, plate = _vehicle(obj, "motor_vehicle")
    return make_reading(
        EventKind.PLATE_READ,
        "plate" if plate else "no_read",
        _first_time(obj, ("PassTime", "MarkTime", "AppearTime"), images),
        SOURCE,
        attributes,
        device_ref=device,
        ref=_object_id(obj, "MotorVehicleID", device),
        plate=plate,
        confidence=normalise_confidence(obj.get("PlateReliability")),
    )


def _non_motor_vehicle(obj: Mapping[str, Any], where: str) -> Reading:
    # E-bikes and tricycles: a plate read when a plate was read, else just the object.
    attributes, device, images, plate = _vehicle(obj, "non_motor_vehicle")
    return make_reading(
        EventKind.PLATE_READ if plate else EventKind.OBJECT,
        "plate" if plate else "non_motor_vehicle",
        _first_time(obj, ("AppearTime", "MarkTime", "DisappearTime"), images),
        SOURCE,
        attributes,
        device_ref=device,
        ref=_object_id(obj, "NonMotorVehicleID", device),
        plate=plate,
        confidence=normalise_confidence(obj.get("PlateReliability")) if plate else None,
    )


def _face(obj: Mapping[str, Any], where: str) -> Reading:
    attributes: dict[str, Any] = {}
    device = _device(obj, attributes)
    put(attributes, "info_kind", _number(obj.get("InfoKind")))
    put(attributes, "source_id", get_str(obj, "SourceID"))
    images = _images(obj)
    if images:
        attributes["images"] = images
    return make_reading(
        EventKind.FACE_CAPTURE,
        "capture",
        _first_time(obj, ("FaceAppearTime", "LocationMarkTime", "FaceDisAppearTime"), images),
        SOURCE,
        attributes,
        device_ref=device,
        ref=_object_id(obj, "FaceID", device),
    )


# list key -> (item key, handler); a None handler is a wrapper whose items hold lists again.
_LISTS: dict[str, tuple[str, _Handler | None]] = {
    "MotorVehicleListObject": ("MotorVehicleObject", _motor_vehicle),
    "MotorVehicleObjectList": ("MotorVehicleObject", _motor_vehicle),
    "MotorVehicleList": ("MotorVehicleObject", _motor_vehicle),
    "NonMotorVehicleListObject": ("NonMotorVehicleObject", _non_motor_vehicle),
    "NonMotorVehicleObjectList": ("NonMotorVehicleObject", _non_motor_vehicle),
    "NonMotorVehicleList": ("NonMotorVehicleObject", _non_motor_vehicle),
    "FaceListObject": ("FaceObject", _face),
    "FaceObjectList": ("FaceObject", _face),
    "FaceList": ("FaceObject", _face),
    "ImageListObject": ("Image", None),
    "SubscribeNotificationListObject": ("SubscribeNotificationObject", None),
}
_SINGLE: dict[str, _Handler] = {
    "MotorVehicleObject": _motor_vehicle,
    "NonMotorVehicleObject": _non_motor_vehicle,
    "FaceObject": _face,
}
_TOP_KEYS = frozenset(
    key for key in (*_LISTS, *_SINGLE) if key not in ("MotorVehicleList", "NonMotorVehicleList", "FaceList")
)

ADAPTER = Adapter(name=SOURCE, detect=detect, adapt=adapt, priority=40)
