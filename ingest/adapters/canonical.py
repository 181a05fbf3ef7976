"""Watchpost's own JSON event, for gateways that normalise before publishing.

One event::

    {"device": "gate-01", "kind": "access", "code": "forced_open",
     "time": "2024-05-01T08:00:00+08:00", "id": "evt-17", "zone": "north gate",
     "plate": null, "confidence": 0.93, "count": null, "state": "start",
     "lat": 30.27, "lon": 120.15, "repeat": false, "attributes": {"door": 1}}

Only ``kind`` and ``code`` are required. A message may also be a JSON list of such objects or
``{"events": [...]}`` (at most ``MAX_ITEMS``). ``time`` is ISO 8601 with or without a zone
(without: local wall time of the device) or epoch seconds / milliseconds. Unknown keys are
refused so that a typo ("confidance") is reported instead of silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from watchpost.model import EventKind, Reading

from ._common import (
    MAX_ITEMS,
    Adapter,
    Document,
    check_count,
    clean_json,
    make_reading,
    normalise_confidence,
    normalise_plate,
    parse_time,
    schema_error,
)

__all__ = ["ADAPTER", "FIELDS"]

SOURCE = "canonical"
_KINDS = {kind.value: kind for kind in EventKind}
_ALLOWED_KINDS = ", ".join(sorted(_KINDS))
_STATES = frozenset({"start", "stop", "pulse"})
FIELDS = frozenset(
    {
        "device",
        "kind",
        "code",
        "time",
        "id",
        "plate",
        "confidence",
        "zone",
        "count",
        "state",
        "lat",
        "lon",
        "repeat",
        "attributes",
    }
)
_MAX_TEXT = 256


def detect(doc: Document) -> bool:
    """An object with a ``kind`` and a ``code`` or ``time``, a list of them, or ``{"events": [...]}``."""
    data = doc.data
    if doc.syntax != "json":
        return False
    if isinstance(data, list):
        return bool(data) and _looks_canonical(data[0])
    if isinstance(data, dict):
        events = data.get("events")
        if isinstance(events, list) and len(data) == 1:
            return not events or _looks_canonical(events[0])
        return _looks_canonical(data)
    return False


def _looks_canonical(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("kind"), str) and ("code" in item or "time" in item)


def adapt(doc: Document) -> list[Reading]:
    """One reading per event object; the first bad field fails the whole message."""
    data = doc.data
    if doc.syntax != "json":
        raise schema_error('expected a canonical JSON event object, a list of them or {"events": [...]}')
    if isinstance(data, dict) and "events" in data and "kind" not in data:
        data = data["events"]
    prefix = "events"
    if isinstance(data, dict):
        return [_reading(data, "event")]
    if not isinstance(data, list):
        raise schema_error(f"canonical payload must be an object or a list of objects, got {type(data).__name__}")
    if not data:
        raise schema_error("canonical event list is empty")
    if len(data) > MAX_ITEMS:
        raise schema_error(f"canonical event list has {len(data)} items, the limit is {MAX_ITEMS}")
    return [_reading(item, f"{prefix}[{number}]") for number, item in enumerate(data)]


def _reading(item: Any, where: str) -> Reading:
    if not isinstance(item, dict):
        raise schema_error(f"{where} must be an object, got {type(item).__name__}")
    unknown = item.keys() - FIELDS
    if unknown:
        raise schema_error(
            f"{where} has unknown field(s) {', '.join(sorted(map(str, unknown)))}; allowed: {', '.join(sorted(FIELDS))}"
        )
    kind_value = item.get("kind")
    kind = _KINDS.get(kind_value) if isinstance(kind_value, str) else None
    if kind is None:
        raise schema_error(f"{where}.kind must be one of {_ALLOWED_KINDS}, got {kind_value!r:.40}")
    code = _text(item, "code", where)
    if code is None:
        raise schema_error(f"{where}.code is required (a short snake_case sub-type, e.g. forced_open)")
    code = code.lower()
    time_value = item.get("time")
    if time_value is not None and (isinstance(time_value, bool) or not isinstance(time_value, str | int | float)):
        raise schema_error(f"{where}.time must be an ISO 8601 string or epoch seconds, got {time_value!r:.40}")
    ref = item.get("id")
    if ref is not None:
        if isinstance(ref, bool) or not isinstance(ref, str | int):
            raise schema_error(f"{where}.id must be a string or an integer, got {ref!r:.40}")
        ref = str(ref)[:_MAX_TEXT] or None
    plate = None
    if item.get("plate") is not None:
        raw_plate = _text(item, "plate", where)
        plate = normalise_plate(raw_plate)
        if plate is None and kind is EventKind.PLATE_READ and code == "plate":
            code = "no_read"
    confidence = _confidence(item.get("confidence"), where)
    count = None if item.get("count") is None else check_count(item["count"], where=f"{where}.count")
    state = item.get("state")
    if state is not None and not (isinstance(state, str) and state in _STATES):
        raise schema_error(f"{where}.state must be one of pulse, start, stop or null, got {state!r:.40}")
    repeat = item.get("repeat", False)
    if not isinstance(repeat, bool):
        raise schema_error(f"{where}.repeat must be true or false, got {repeat!r:.40}")
    attributes = _attributes(item.get("attributes"), where)
    for key, low, high in (("lat", -90.0, 90.0), ("lon", -180.0, 180.0)):
        value = item.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise schema_error(f"{where}.{key} must be a number, got {value!r:.40}")
        if not low <= value <= high:
            raise schema_error(f"{where}.{key} must be between {low:g} and {high:g}, got {value!r:.40}")
        attributes[key] = float(value)
    if ("lat" in attributes) != ("lon" in attributes):
        raise schema_error(f"{where}: lat and lon must be given together")
    return make_reading(
        kind,
        code,
        parse_time(time_value),
        SOURCE,
        attributes,
        device_ref=_text(item, "device", where),
        ref=ref,
        plate=plate,
        confidence=confidence,
        repeat=repeat,
        zone=_text(item, "zone", where),
        count=count,
        state=state,
    )


def _text(item: Mapping[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise schema_error(f"{where}.{key} must be a non-empty string, got {value!r:.40}")
    if len(value) > _MAX_TEXT:
        raise schema_error(f"{where}.{key} is longer than {_MAX_TEXT} characters")
    return value.strip()


def _confidence(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise schema_error(f"{where}.confidence must be a number (0..1, or 0..100), got {value!r:.40}")
    return normalise_confidence(value)


def _attributes(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise schema_error(f"{where}.attributes must be an object, got {type(value).__name__}")
    return {str(key): clean_json(item) for key, item in value.items()}


ADAPTER = Adapter(name=SOURCE, detect=detect, adapt=adapt, priority=10)
