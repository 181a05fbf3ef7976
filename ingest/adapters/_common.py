"""Shared machinery of the vendor adapters: decoding, safe parsing and normalisation.

Everything here is on the hot path (one call per MQTT message at >10k msg/s): no pydantic,
no regex compiled per call, no tree walks unless a payload could need one.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple
from xml.etree.ElementTree import Element, ParseError
from xml.etree.ElementTree import fromstring as _fast_xml

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from watchpost.model import AdaptError, DeadReason, EventKind, Reading

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_PAYLOAD_BYTES",
    "NO_TIME",
    "ZERO_TIME",
    "Adapter",
    "DeviceTime",
    "Document",
    "Part",
    "as_list",
    "check_count",
    "clean_json",
    "clean_scalar",
    "decode_text",
    "dms_to_decimal",
    "first_text",
    "get_bool",
    "get_int",
    "get_str",
    "load_json",
    "load_xml",
    "make_reading",
    "normalise_confidence",
    "normalise_plate",
    "parse_time",
    "prepare_document",
    "put",
    "require_int",
    "schema_error",
    "split_multipart",
    "wall_time_from_epoch",
]

MAX_DEPTH = 64  # deeper JSON/XML is refused as SCHEMA: no device nests like that, attackers do
MAX_ITEMS = 1000  # events in one canonical batch / objects in one GA/T 1400 list
# The pipeline may enforce a smaller limit; this one only keeps a hostile message from
# costing unbounded CPU here. A Hikvision multipart push with a 4K JPEG stays well below.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MIN_YEAR = 2000  # a device clock earlier than this is a reset / placeholder date, not a time

_BOM = "\ufeff"
_BOM_BYTES = b"\xef\xbb\xbf"
_MISSING = object()


# --------------------------------------------------------------------------- documents


@dataclass(slots=True)
class Document:
    """A payload decoded once and shared by every adapter's ``detect`` and ``adapt``."""

    topic: str
    syntax: str  # "json", "xml", "text" or "empty"
    text: str  # the decoded main text (the JSON/XML part of a multipart body)
    data: Any = None  # the parsed JSON value, or the XML root element as nested dicts
    root: str | None = None  # local name of the XML root element
    parts: tuple[str, ...] = ()  # decoded text parts of a multipart body, in order
    media: Mapping[str, int] = field(default_factory=dict)  # image part count and bytes


@dataclass(frozen=True, slots=True)
class Adapter:
    """One vendor format: a name, a cheap content sniff and the conversion to readings."""

    name: str
    detect: Callable[[Document], bool]
    adapt: Callable[[Document], list[Reading]]
    priority: int = 100  # lower sniffs first; the sniffs are disjoint, the order only saves time


def decode_text(payload: bytes, *, where: str = "payload") -> str:
    """Decode strictly as UTF-8, dropping one leading byte-order mark."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdaptError(
            DeadReason.INVALID_UTF8,
            f"{where} is not valid UTF-8: byte 0x{payload[exc.start]:02x} at offset {exc.start} ({exc.reason})",
        ) from None
    if text.startswith(_BOM):
        text = text[1:]
    return text


def prepare_document(payload: bytes, *, topic: str) -> Document:
    """Decode and parse a payload once: JSON, XML, plain text, or a MIME multipart body."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise AdaptError(DeadReason.OVERSIZE, f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}")
    head = (payload[3:] if payload.startswith(_BOM_BYTES) else payload).lstrip()
    # Multipart bodies carry JPEG parts that are not UTF-8, so they are split as bytes first.
    if head[:2] == b"--":
        return _prepare_multipart(head, topic)
    return _document_from_text(decode_text(payload), topic)


def _document_from_text(
    text: str, topic: str, parts: tuple[str, ...] = (), media: Mapping[str, int] | None = None
) -> Document:
    media = media or {}
    body = text.strip()
    if not body:
        return Document(topic, "empty", "", parts=parts, media=media)
    first = body[0]
    if first in "{[":
        return Document(topic, "json", body, load_json(body), parts=parts, media=media)
    if first == "<":
        root, tree = load_xml(body)
        return Document(topic, "xml", body, tree, root=root, parts=parts, media=media)
    if first in '-"0123456789' or body in ("null", "true", "false"):
        # A bare JSON scalar parses, and no adapter accepts it: that gives a clearer
        # "unknown format: a JSON number" than calling "12 apples" malformed JSON.
        try:
            return Document(topic, "json", body, json.loads(body), parts=parts, media=media)
        except ValueError:
            pass
    return Document(topic, "text", body, parts=parts, media=media)


# --------------------------------------------------------------------------- multipart

_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*[ \t]*:")
_MEDIA_TYPES = (b"image/", b"video/", b"audio/", b"application/octet-stream")
_MEDIA_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8")


class Part(NamedTuple):
    """One part of a multipart body."""

    headers: Mapping[str, str]  # lower-case names
    body: bytes


def split_multipart(payload: bytes) -> list[Part]:
    """Split a MIME multipart body that starts with its ``--boundary`` line.

    Tolerates what cameras send: LF or CRLF, a missing blank line after the headers, a
    missing closing delimiter, ``Content-Length`` with or without a space.
    """
    end = payload.find(b"\n")
    delimiter = (payload if end < 0 else payload[:end]).rstrip(b"\r")
    if not delimiter.startswith(b"--") or len(delimiter) < 3 or len(delimiter) > 200:
        raise AdaptError(DeadReason.UNKNOWN_FORMAT, "multipart body does not start with a --boundary line")
    parts: list[Part] = []
    for chunk in payload.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        parts.append(_split_part(chunk))
    return parts


def _split_part(chunk: bytes) -> Part:
    lines = chunk.split(b"\n")
    headers: dict[str, str] = {}
    index = 1 if lines and not lines[0].strip() else 0  # the newline that ended the delimiter
    while index < len(lines):
        line = lines[index].rstrip(b"\r")
        if not line:
            index += 1
            break
        if not _HEADER_LINE.match(line):
            break
        name, _, value = line.partition(b":")
        headers[name.strip().decode("ascii", "replace").lower()] = value.strip().decode("latin-1")
        index += 1
    body = b"\n".join(lines[index:])
    length = headers.get("content-length", "").strip()
    if length.isdigit() and int(length) <= len(body):
        body = body[: int(length)]
    else:
        body = body.rstrip(b"\r\n")
    return Part(headers, body)


def _prepare_multipart(payload: bytes, topic: str) -> Document:
    texts: list[str] = []
    media_parts = media_bytes = 0
    for number, part in enumerate(split_multipart(payload), start=1):
        content_type = part.headers.get("content-type", "").lower().encode("latin-1", "replace")
        if content_type.startswith(_MEDIA_TYPES) or part.body.startswith(_MEDIA_MAGIC):
            media_parts += 1
            media_bytes += len(part.body)
            continue
        text = decode_text(part.body, where=f"multipart part {number}").strip()
        if text:
            texts.append(text)
    media = {"image_parts": media_parts, "image_bytes": media_bytes} if media_parts else {}
    for text in texts:
        if text[0] in "{<":
            return _document_from_text(text, topic, tuple(texts), media)
    if not texts:
        raise AdaptError(DeadReason.UNKNOWN_FORMAT, "multipart body has no text part (only images or nothing)")
    return Document(topic, "text", "\n".join(texts), parts=tuple(texts), media=media)


# --------------------------------------------------------------------------- JSON and XML

# NaN / Infinity are not JSON; devices that send them mean "no value".
_DECODER = json.JSONDecoder(parse_constant=lambda _name: None)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def load_json(text: str, *, where: str = "payload") -> Any:
    """Parse JSON; malformed input and hostile nesting become ``AdaptError``."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise AdaptError(
            DeadReason.MALFORMED_JSON, f"{where}: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise AdaptError(DeadReason.SCHEMA, f"{where}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # an integer beyond Python's digit limit
        raise AdaptError(DeadReason.MALFORMED_JSON, f"{where}: {exc}") from None
    # Fewer brackets than the limit cannot nest deeper than it: skip the walk (the usual case).
    if text.count("{") + text.count("[") > MAX_DEPTH:
        _check_depth(value, where)
    # json turns an escaped lone surrogate into a str that cannot be encoded to UTF-8 later.
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        value = _scrub_surrogates(value)
    return value


def _check_depth(value: Any, where: str) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AdaptError(DeadReason.SCHEMA, f"{where}: JSON nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def _scrub_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_scrub_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_scrub_surrogates(key): _scrub_surrogates(item) for key, item in value.items()}
    return value


def load_xml(text: str) -> tuple[str, Any]:
    """Parse XML safely and return the root's local name and its content as nested dicts.

    Namespaces are dropped (devices and docs disagree on them); an element with children
    becomes a dict, a repeated child a list, a leaf its stripped text. DTDs, entity
    declarations and external references are refused before anything is expanded.
    """
    try:
        if "<!" in text:
            # A DTD, and with it every entity declaration, can only start with "<!": such
            # documents (and, conservatively, comments / CDATA) go through defusedxml.
            root = safe_xml.fromstring(text, forbid_dtd=True)
        else:
            # No "<!": nothing to declare an entity with. The C-accelerated parser is 3x
            # faster than defusedxml's Python subclass, which matters at 10k msg/s. The
            # text is a str, so expat reads it as UTF-8 whatever encoding it declares.
            root = _fast_xml(text)
    except DefusedXmlException as exc:
        raise AdaptError(
            DeadReason.FORBIDDEN_XML,
            f"XML with a DTD or entity declaration is refused ({type(exc).__name__})",
        ) from None
    except ParseError as exc:
        raise AdaptError(DeadReason.MALFORMED_XML, f"XML is not well-formed: {exc}") from None
    if len(root) == 0:
        return _local(root.tag), (root.text or "").strip()
    return _local(root.tag), _element_tree(root, 1)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _element_tree(element: Element, depth: int) -> dict[str, Any]:
    if depth >= MAX_DEPTH:
        raise AdaptError(DeadReason.SCHEMA, f"XML nested deeper than {MAX_DEPTH} levels")
    out: dict[str, Any] = {}
    for child in element:
        tag = child.tag
        name = tag.rpartition("}")[2] if tag[0] == "{" else tag
        # Leaves are most elements: handled inline, without a call.
        value = _element_tree(child, depth + 1) if len(child) else (child.text or "").strip()
        previous = out.get(name, _MISSING)
        if previous is _MISSING:
            out[name] = value
        elif isinstance(previous, list):  # only repetition makes lists in XML
            previous.append(value)
        else:
            out[name] = [previous, value]
    return out


# --------------------------------------------------------------------------- field access


def schema_error(detail: str) -> AdaptError:
    """A recognised envelope with a missing or mistyped field."""
    return AdaptError(DeadReason.SCHEMA, detail)


def as_list(value: Any) -> list[Any]:
    """A repeated field as a list: XML gives a dict for one element, JSON may too."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def get_str(data: Mapping[str, Any], key: str) -> str | None:
    """A text field; numbers are accepted as their decimal text, empty text is absent."""
    value = data.get(key)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def get_int(data: Mapping[str, Any], key: str, *, where: str, required: bool = False) -> int | None:
    """An integer field given as a JSON number or decimal / 0x-hex text."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise schema_error(f"{where}.{key} is missing")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text[:2].lower() == "0x" else int(text)
        except ValueError:
            pass
    raise schema_error(f"{where}.{key} must be an integer, got {_show(value)}")


def require_int(data: Mapping[str, Any], key: str, *, where: str) -> int:
    """An integer field that must be present."""
    value = get_int(data, key, where=where, required=True)
    if value is None:  # get_int(required=True) raises first; this keeps the type exact
        raise schema_error(f"{where}.{key} is missing")
    return value


def get_bool(data: Mapping[str, Any], key: str) -> bool:
    """A flag given as JSON true/false or XML "true"/"false"; anything else is false."""
    value = data.get(key)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and value == 1)


def clean_scalar(value: Any) -> Any:
    """A JSON-safe scalar for ``attributes``: non-finite floats and containers become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return None


def clean_json(value: Any) -> Any:
    """A JSON-safe copy of a parsed JSON value (non-finite floats become None)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): clean_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_json(item) for item in value]
    return value


def put(attributes: dict[str, Any], key: str, value: Any) -> None:
    """Set an attribute when the payload carried a usable scalar value for it."""
    value = clean_scalar(value)
    if value is not None and value != "":
        attributes[key] = value.strip() if isinstance(value, str) else value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- times


class DeviceTime(NamedTuple):
    """A device time as read from a payload.

    ``time`` is aware UTC when the payload had a zone or an absolute epoch, naive (local
    wall time) when it had none, None when absent, placeholder or unreadable.
    """

    time: datetime | None
    zero_date: bool = False  # the device sent a zero / placeholder date
    raw: str | None = None  # the value as sent, when it could not be read


NO_TIME = DeviceTime(None)
ZERO_TIME = DeviceTime(None, True)
_EPOCH_MS_FROM = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973: larger values are ms


def parse_time(value: Any) -> DeviceTime:
    """Read a device time: ISO 8601 (zone optional), compact GA/T 1400 / Hikvision digits,
    ``YYYY-MM-DD hh:mm:ss`` or an epoch in seconds or milliseconds (number or text)."""
    if value is None or value == "":
        return NO_TIME
    if isinstance(value, bool):
        return DeviceTime(None, False, str(value))
    if isinstance(value, int | float):
        return _from_epoch(value, value)
    if not isinstance(value, str):
        return DeviceTime(None, False, _show(value))
    text = value.strip()
    if not text:
        return NO_TIME
    if text.isascii() and text.isdigit():
        return _from_digits(text)
    if text.count(".") == 1 and text.replace(".", "", 1).isdigit() and text.isascii():
        return _from_epoch(float(text), text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return ZERO_TIME if text.startswith(("0000", "0001-01-01", "00-00")) else DeviceTime(None, False, text[:64])
    return _checked(parsed)


def _from_digits(text: str) -> DeviceTime:
    length = len(text)
    if length in (14, 17):  # YYYYMMDDhhmmss[fff], local wall time
        if text[:4] == "0000" or text.strip("0") == "":
            return ZERO_TIME
        try:
            parsed = datetime(
                int(text[0:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:14]),
                int(text[14:17]) * 1000 if length == 17 else 0,
            )
        except ValueError:
            return DeviceTime(None, False, text)
        return _checked(parsed)
    if 1 <= length <= 13:
        return _from_epoch(int(text), text)
    return DeviceTime(None, False, text[:64])


def _from_epoch(number: float, raw: Any) -> DeviceTime:
    if not isinstance(number, int) and not math.isfinite(number):
        return DeviceTime(None, False, str(raw)[:64])
    if number <= 0:
        return ZERO_TIME
    seconds = number / 1000 if number >= _EPOCH_MS_FROM else number
    try:
        parsed = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return DeviceTime(None, False, str(raw)[:64])
    return _checked(parsed)


def _checked(parsed: datetime) -> DeviceTime:
    if parsed.year < MIN_YEAR:
        return ZERO_TIME
    if parsed.tzinfo is None:
        return DeviceTime(parsed)
    try:
        return DeviceTime(parsed.astimezone(UTC))
    except OverflowError:  # 9999-12-31T23:00-05:00
        return DeviceTime(None, False, parsed.isoformat())


def wall_time_from_epoch(value: Any) -> DeviceTime:
    """An epoch that encodes local wall time (Dahua ``UTC``): a naive datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return parse_time(value)
    parsed = parse_time(value)
    if parsed.time is None:
        return parsed
    return DeviceTime(parsed.time.replace(tzinfo=None))


# --------------------------------------------------------------------------- confidence


def normalise_confidence(value: Any) -> float | None:
    """A vendor confidence as 0..1.

    Rule (the scale is inferred from the value, vendors do not say which they use):
    values in [0, 1] are kept as they are; (1, 100] are percentages and divided by 100;
    (100, 255] are byte scales (Dahua reports e.g. 160) and divided by 255. Negative,
    above 255, NaN, booleans and non-numbers give None (no usable confidence). Note the
    ambiguity this resolves toward 0..1: a value of exactly 1 is read as 1.0, not 1 %.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().rstrip("%")
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    else:
        return None
    if not number >= 0:  # also rejects NaN
        return None
    if number <= 1:
        return number
    if number <= 100:
        return number / 100
    if number <= 255:
        return number / 255
    return None


# --------------------------------------------------------------------------- plates

# Separators cameras print between the province / letter and the number: 京A·12345.
_PLATE_DROP = str.maketrans("", "", " \t\r\n-·•.・_\u3000")
_NO_PLATE = frozenset(
    {
        "UNKNOWN",
        "NOPLATE",
        "NONE",
        "NULL",
        "N/A",
        "无车牌",
        "未识别",
        "车牌",
        "无牌",
        "未知",
        "无",
        "无牌车",
        "未检测",
    }
)


def normalise_plate(value: Any) -> str | None:
    """A plate as stored: separators removed, Latin letters upper-cased, CJK kept.

    ``浙by6h39`` -> ``浙BY6H39``, ``京A·12345`` -> ``京A12345``. Placeholders that mean
    "nothing was read" ("unknown", "无车牌", "-", "????", "") give None.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    if not value.isascii():
        value = unicodedata.normalize("NFKC", value)  # full-width Ａ１ -> A1
    plate = value.translate(_PLATE_DROP).upper()
    if not plate or plate in _NO_PLATE or not plate.strip("?*"):
        return None
    return plate


# --------------------------------------------------------------------------- readings


def make_reading(
    kind: EventKind,
    code: str,
    when: DeviceTime,
    source: str,
    attributes: dict[str, Any],
    *,
    device_ref: str | None = None,
    ref: str | None = None,
    plate: str | None = None,
    confidence: float | None = None,
    repeat: bool = False,
    zone: str | None = None,
    count: int | None = None,
    state: str | None = None,
) -> Reading:
    """A ``Reading`` with the device time split into time / zero-date / raw-time attribute."""
    if when.raw is not None:
        attributes["raw_time"] = when.raw
    return Reading(
        kind=kind,
        code=code,
        device_time=when.time,
        source_format=source,
        device_ref=device_ref,
        ref=ref,
        plate=plate,
        confidence=confidence,
        repeat=repeat,
        zone=zone,
        count=count,
        state=state,
        zero_date=when.zero_date,
        attributes=attributes,
    )


def dms_to_decimal(degree: Any, minute: Any, second: Any, hemisphere: str | None) -> float | None:
    """Degrees/minutes/seconds and N/S/E/W as signed decimal degrees (None if unreadable)."""
    try:
        value = float(degree) + float(minute or 0) / 60 + float(second or 0) / 3600
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(value):
        return None
    if hemisphere and hemisphere.strip().upper()[:1] in ("S", "W"):
        value = -value
    return round(value, 7)


def check_count(value: Any, *, where: str) -> int:
    """A people / object count: a non-negative integer that fits a database column."""
    if isinstance(value, str) and value.strip().isdigit() and value.isascii():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise schema_error(f"{where} must be a non-negative integer, got {_show(value)}")
    if not 0 <= value <= 2**31 - 1:
        raise schema_error(f"{where} must be between 0 and 2147483647, got {_show(value)}")
    return value


def first_text(values: Iterable[Any]) -> str | None:
    """The first non-empty string of several candidate fields."""
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
