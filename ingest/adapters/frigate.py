"""Frigate NVR MQTT messages: ``frigate/events`` (tracked objects) and ``frigate/reviews``.

Both are ``{"type": "new" | "update" | "end", "before": {...}, "after": {...}}``; the reading
describes ``after`` (``before`` when ``after`` is absent). Times are float epoch seconds (UTC).

Privacy boundary: ``sub_label`` is Frigate's face recognition result (a person's name) and
review ``data.sub_labels`` lists them; both are dropped. So are ``attributes`` /
``current_attributes`` (face boxes and scores).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchpost.model import AdaptError, DeadReason, EventKind, Reading

from ._common import (
    NO_TIME,
    Adapter,
    DeviceTime,
    Document,
    get_bool,
    make_reading,
    normalise_confidence,
    normalise_plate,
    parse_time,
    put,
    schema_error,
)

__all__ = ["ADAPTER", "PLATE_LABELS"]

SOURCE = "frigate"
_TYPES = ("new", "update", "end")
_STATES = {"new": "start", "end": "stop"}
# Labels whose recognized_license_plate is a vehicle's plate (Frigate's LPR runs on these).
PLATE_LABELS = frozenset({"car", "motorcycle", "bus", "truck", "license_plate"})


def detect(doc: Document) -> bool:
    """``{"type": new|update|end, "before"/"after": {...}}``."""
    data = doc.data
    if doc.syntax != "json" or not isinstance(data, dict) or data.get("type") not in _TYPES:
        return False
    return isinstance(data.get("after"), dict) or isinstance(data.get("before"), dict)


def adapt(doc: Document) -> list[Reading]:
    """One OBJECT reading for an event or a review message."""
    data = doc.data
    if doc.syntax != "json" or not isinstance(data, dict):
        raise schema_error("expected a Frigate event/review JSON object with type, before and after")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise schema_error("Frigate message .type is missing or not a string")
    if kind not in _TYPES:
        raise AdaptError(DeadReason.UNSUPPORTED_EVENT, f"Frigate message type {kind!r} is not new/update/end")
    body = data.get("after")
    side = "after"
    if body is None:
        body, side = data.get("before"), "before"
    if not isinstance(body, dict):
        raise schema_error("Frigate message has no 'after' (or 'before') object")
    if _is_review(doc, body):
        return [_review(kind, body, side)]
    return [_event(kind, body, side)]


def _is_review(doc: Document, body: Mapping[str, Any]) -> bool:
    last = doc.topic.rstrip("/").rpartition("/")[2]
    if last in ("reviews", "events"):
        return last == "reviews"
    return "severity" in body and "label" not in body


def _text(body: Mapping[str, Any], key: str, side: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if isinstance(value, str) and value:
        return value
    if value is None and not required:
        return None
    raise schema_error(f"Frigate {side}.{key} must be a non-empty string, got {value!r:.40}")


def _epoch(body: Mapping[str, Any], key: str, side: str) -> DeviceTime:
    value = body.get(key)
    if value is None:
        return NO_TIME
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise schema_error(f"Frigate {side}.{key} must be epoch seconds (a number), got {value!r:.40}")
    return parse_time(value)


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _event(kind: str, body: Mapping[str, Any], side: str) -> Reading:
    event_id = _text(body, "id", side)
    camera = _text(body, "camera", side)
    label = _text(body, "label", side, required=False)
    when = _epoch(body, "frame_time", side)
    if when.time is None and not when.zero_date:
        when = _epoch(body, "start_time", side)
    zones = _strings(body.get("current_zones"))
    attributes: dict[str, Any] = {"camera": camera}
    put(attributes, "label", label)
    put(attributes, "score", body.get("score") if isinstance(body.get("score"), float | int) else None)
    put(
        attributes,
        "top_score",
        body.get("top_score") if isinstance(body.get("top_score"), float | int) else None,
    )
    for key in ("start_time", "end_time"):
        value = body.get(key)
        put(attributes, key, value if isinstance(value, float | int) and not isinstance(value, bool) else None)
    if zones:
        attributes["current_zones"] = zones
    entered = _strings(body.get("entered_zones"))
    if entered:
        attributes["entered_zones"] = entered
    for key in ("false_positive", "stationary", "has_snapshot", "has_clip"):
        if key in body:
            attributes[key] = get_bool(body, key)
    confidence = normalise_confidence(body.get("top_score"))
    if confidence is None:
        confidence = normalise_confidence(body.get("score"))
    plate = None
    if label in PLATE_LABELS:
        plate = normalise_plate(body.get("recognized_license_plate"))
        if plate is not None:
            confidence = normalise_confidence(body.get("recognized_license_plate_score"))
    frame = body.get("frame_time")
    ref = f"{event_id}:update:{frame}" if kind == "update" else f"{event_id}:{kind}"
    return make_reading(
        EventKind.OBJECT,
        kind,
        when,
        SOURCE,
        attributes,
        device_ref=camera,
        ref=ref,
        plate=plate,
        confidence=confidence,
        repeat=kind == "update",
        zone=zones[0] if zones else None,
        state=_STATES.get(kind),
    )


def _review(kind: str, body: Mapping[str, Any], side: str) -> Reading:
    review_id = _text(body, "id", side)
    camera = _text(body, "camera", side)
    severity = _text(body, "severity", side)
    if severity not in ("alert", "detection"):
        raise schema_error(f"Frigate review {side}.severity must be 'alert' or 'detection', got {severity!r:.40}")
    data = body.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise schema_error(f"Frigate review {side}.data must be an object")
    start = _epoch(body, "start_time", side)
    end = _epoch(body, "end_time", side)
    when = end if kind == "end" and (end.time is not None or end.zero_date) else start
    objects = _strings(data.get("objects"))
    zones = _strings(data.get("zones"))
    detections = _strings(data.get("detections"))
    attributes: dict[str, Any] = {"camera": camera, "severity": severity, "objects": objects, "zones": zones}
    attributes["detections"] = len(detections)
    for key in ("start_time", "end_time"):
        value = body.get(key)
        put(attributes, key, value if isinstance(value, float | int) and not isinstance(value, bool) else None)
    put(attributes, "thumb_path", body.get("thumb_path") if isinstance(body.get("thumb_path"), str) else None)
    # Reviews carry no frame time: an update is told apart by what it adds.
    ref = (
        f"{review_id}:update:{len(detections)}:{len(objects)}:{len(zones)}"
        if kind == "update"
        else f"{review_id}:{kind}"
    )
    return make_reading(
        EventKind.OBJECT,
        f"review_{severity}",
        when,
        SOURCE,
        attributes,
        device_ref=camera,
        ref=ref,
        repeat=kind == "update",
        zone=zones[0] if zones else None,
        state=_STATES.get(kind),
    )


ADAPTER = Adapter(name=SOURCE, detect=detect, adapt=adapt, priority=50)
