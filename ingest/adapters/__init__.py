"""Vendor payload adapters: raw MQTT payload bytes -> ``Reading`` objects.

Public contract (used by the pipeline and the ``watchpost parse`` command)::

    parse(payload: bytes, *, topic: str, format: str | None = None) -> list[Reading]

``format`` names an adapter ("canonical", "hikvision", "dahua", "gat1400", "frigate"); when it
is None the adapter is chosen from the topic (``frigate/events``, ``frigate/reviews``) and
then by content. Every failure raises ``watchpost.model.AdaptError`` with a stable reason.
Adapters register themselves by name in ``ADAPTERS``; adding a vendor is a one-file change.

Selection, in order: an explicit ``format``; a Frigate topic (``.../frigate/events`` or
``.../frigate/reviews``); a topic segment equal to an adapter name (``site/gate-01/hikvision``);
otherwise each adapter's content sniff. A successful ``parse`` returns at least one reading.

Registration: every public module of this package defines ``ADAPTER = Adapter(...)``; the
package imports them all at import time, so a new vendor is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil

from watchpost.model import AdaptError, DeadReason, Reading

from ._common import Adapter, Document, normalise_plate, prepare_document

__all__ = ["ADAPTERS", "Adapter", "normalise_plate", "parse"]


def _discover() -> dict[str, Adapter]:
    found: list[Adapter] = []
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        adapter = getattr(module, "ADAPTER", None)
        if isinstance(adapter, Adapter):
            found.append(adapter)
    found.sort(key=lambda adapter: (adapter.priority, adapter.name))
    return {adapter.name: adapter for adapter in found}


ADAPTERS: dict[str, Adapter] = _discover()


def parse(payload: bytes, *, topic: str, format: str | None = None) -> list[Reading]:
    """Turn one MQTT payload into readings, or raise ``AdaptError`` with a stable reason.

    This is the one boundary where any exception is caught: whatever the bytes, the caller
    gets readings or an ``AdaptError``, never a crash of its consume loop.
    """
    try:
        return _parse(payload, topic, format)
    except AdaptError:
        raise
    except RecursionError:
        raise AdaptError(DeadReason.SCHEMA, "payload is nested too deeply to read") from None
    except Exception as exc:  # the single boundary: a bug in one adapter must not stop ingest
        raise AdaptError(
            DeadReason.SCHEMA, f"payload could not be read ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _parse(payload: bytes, topic: str, format: str | None) -> list[Reading]:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise AdaptError(DeadReason.SCHEMA, f"payload must be bytes, got {type(payload).__name__}")
    adapter = _chosen(topic, format)
    doc = prepare_document(bytes(payload), topic=topic)
    if adapter is None:
        adapter = _sniff(doc)
    readings = adapter.adapt(doc)
    if not readings:  # adapters raise instead; this keeps the contract if one forgets
        raise AdaptError(DeadReason.UNSUPPORTED_EVENT, f"{adapter.name} payload produced no readings")
    return readings


def _chosen(topic: str, format: str | None) -> Adapter | None:
    if format is not None:
        adapter = ADAPTERS.get(format)
        if adapter is None:
            raise AdaptError(DeadReason.UNKNOWN_FORMAT, f"no adapter named {format!r}; known: {', '.join(ADAPTERS)}")
        return adapter
    segments = topic.split("/")
    if len(segments) >= 2 and segments[-2] == "frigate" and segments[-1] in ("events", "reviews"):
        return ADAPTERS.get("frigate")
    for segment in segments:
        adapter = ADAPTERS.get(segment)
        if adapter is not None:
            return adapter
    return None


def _sniff(doc: Document) -> Adapter:
    for adapter in ADAPTERS.values():
        if adapter.detect(doc):
            return adapter
    raise AdaptError(DeadReason.UNKNOWN_FORMAT, _describe(doc))


def _describe(doc: Document) -> str:
    if doc.syntax == "empty":
        return "payload is empty"
    if doc.syntax == "xml":
        return f"XML root <{doc.root}> is not a known device format"
    if doc.syntax == "json":
        data = doc.data
        if isinstance(data, dict):
            keys = ", ".join(sorted(map(str, data))[:8])
            return f"JSON object with keys [{keys}] matches no adapter ({', '.join(ADAPTERS)})"
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        return f"JSON top-level value is {kind}; device payloads are objects"
    return f"text payload {doc.text[:40]!r} matches no adapter ({', '.join(ADAPTERS)})"
