"""The idempotency key: same report, same key; different reports, different keys."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from watchpost.model import EventKind, Reading, event_key

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _reading(**fields) -> Reading:
    base = {"kind": EventKind.PLATE_READ, "code": "plate", "device_time": NOW, "source_format": "hikvision"}
    return Reading(**{**base, **fields})


def test_retransmission_markers_do_not_change_the_key():
    """A vendor repeat (flagged repeat) of the same event has the key of the original."""
    first = _reading(ref="UUID-1", plate="浙A12345")
    assert event_key("cam", first, received_at=NOW) == event_key(
        "cam", replace(first, repeat=True), received_at=NOW + timedelta(seconds=30)
    )


def test_vendor_id_decides_when_present_and_facts_when_not():
    """With a vendor id the id decides; without one, time and facts do."""
    a, b = _reading(ref="1"), _reading(ref="2")
    assert event_key("cam", a, received_at=NOW) != event_key("cam", b, received_at=NOW)
    c, d = _reading(plate="A"), _reading(plate="B")
    assert event_key("cam", c, received_at=NOW) != event_key("cam", d, received_at=NOW)
    assert event_key("cam", c, received_at=NOW) == event_key("cam", c, received_at=NOW + timedelta(hours=1))
    assert event_key("cam-1", c, received_at=NOW) != event_key("cam-2", c, received_at=NOW)


def test_field_boundaries_cannot_collide():
    """Moving characters between the code and the vendor id gives a different key."""
    a = _reading(code="ab", ref="c", source_format="canonical")
    b = _reading(code="a", ref="bc", source_format="canonical")
    assert event_key("dev", a, received_at=NOW) != event_key("dev", b, received_at=NOW)


def test_reading_without_time_or_id_is_keyed_by_its_receive_time():
    """Two identical time-less reports (heartbeats) received apart are two events."""
    beat = _reading(kind=EventKind.DEVICE_STATUS, code="heartbeat", device_time=None)
    assert event_key("btn", beat, received_at=NOW) != event_key("btn", beat, received_at=NOW + timedelta(minutes=1))
    assert event_key("btn", beat, received_at=NOW).version == 5
