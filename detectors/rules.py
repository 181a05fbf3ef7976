"""Rule detectors over events, run inside the ingest transaction that stores the events.

:class:`RuleEngine` sees each batch's *new* events (a replay or redelivery is not new, so it
raises nothing twice), keeps the state its rules need in the database (door states, event
rates, unit positions: shared by every worker, kept across restarts) and raises alerts in the
same transaction: an event and the alert it causes commit together or not at all.

Rules come from the configuration (``rules:``); each kind of rule is one class with a
``type`` key, as the configuration's discriminated union has it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from detectors.hotlist import HotlistIndex
from watchpost import store
from watchpost.config import (
    DeviceCountRule,
    EventRule,
    GeofenceRule,
    HotlistRule,
    RepeatRule,
    SurgeRule,
    WatchpostConfig,
)
from watchpost.geo import inside
from watchpost.model import AlertDraft, Event, EventKind, Severity

__all__ = ["RuleEngine", "draft_for", "severity_for"]

log = logging.getLogger("watchpost.detectors")

_SEVERITY_RANK = {Severity.INFO: 0, Severity.MINOR: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}
_DOOR_STATE = {
    "door_open": "open",
    "forced_open": "open",
    "held_open": "open",
    "always_open": "open",
    "door_close": "closed",
    "always_close": "closed",
    "lock_close": "closed",
}


def severity_for(
    config: WatchpostConfig, rule: Any, *, site_id: str | None, at: datetime, override: str | None = None
) -> Severity:
    """The severity a rule's alert takes: the rule's or the type's, or the night one in night hours."""
    name = override or rule.severity or config.alerts.types[rule.alert].severity
    if rule.night is not None:
        site = config.site_index.get(site_id) if site_id else None
        zone = ZoneInfo(site.timezone) if site and site.timezone else config.zone_of(None)
        if rule.night.contains(at.astimezone(zone).strftime("%H:%M")):
            name = rule.night.severity
    return Severity(name)


def draft_for(
    config: WatchpostConfig,
    rule: Any,
    *,
    device_id: str | None,
    site_id: str | None,
    at: datetime,
    key: str,
    events: Sequence[Event] = (),
    zone: str | None = None,
    detail: dict[str, Any] | None = None,
    severity: str | None = None,
    position: tuple[float, float] | None = None,
) -> AlertDraft:
    """An alert draft for ``rule`` at a device (its position, its site's) or a site."""
    kind = config.alerts.types[rule.alert]
    device = config.device_index.get(device_id) if device_id else None
    site = config.site_index.get(site_id) if site_id else None
    where = device.name or device.id if device else site.name if site else ""
    if position is None:
        if device is not None and device.position is not None:
            position = (device.position.lat, device.position.lon)
        elif site is not None:
            position = (site.position.lat, site.position.lon)
    return AlertDraft(
        type=rule.alert,
        severity=severity_for(config, rule, site_id=site_id, at=at, override=severity),
        title=f"{kind.title} · {where}" if where else kind.title,
        dedup_key=f"{rule.alert}:{key}",
        site_id=site_id,
        occurred_at=at,
        rule=rule.name,
        device_id=device_id,
        zone=zone,
        lat=position[0] if position else None,
        lon=position[1] if position else None,
        source_events=tuple((e.event_id, e.occurred_at) for e in events),
        detail=detail or {},
    )


class RuleEngine:
    """The configured event rules; call :meth:`evaluate` with each committed batch's new events."""

    def __init__(self, config: WatchpostConfig) -> None:
        self.config = config
        rules = [r for r in config.rules if r.enabled]
        self.event_rules = [r for r in rules if isinstance(r, EventRule)]
        self.hotlist_rules = [r for r in rules if isinstance(r, HotlistRule)]
        self.repeat_rules = [r for r in rules if isinstance(r, RepeatRule)]
        self.surge_rules = [r for r in rules if isinstance(r, SurgeRule)]
        self.count_rules = [r for r in rules if isinstance(r, DeviceCountRule)]
        self.fences: dict[str, tuple[GeofenceRule, list[tuple[float, float]], str]] = {}
        for rule in rules:
            if isinstance(rule, GeofenceRule):
                for fence in rule.fences:
                    self.fences[fence.device] = (rule, *_fence_polygon(config, fence))
        self.trackers = {u.tracker for u in config.units if u.tracker}
        self.rate_kinds = {k for r in self.surge_rules for k in r.kinds}
        self._hotlist_version = -1
        self._hotlists_checked = False
        self._lists: dict[str, HotlistIndex] = {}

    # -- entry point --

    def evaluate(self, conn: psycopg.Connection, events: Sequence[Event]) -> list[store.Raised]:
        """Keep rule state for ``events`` and raise what they call for, in the caller's transaction."""
        if not events:
            return []
        self._keep_state(conn, events)
        self._hotlists_checked = False  # at most one look at the hotlist version per batch
        drafts: list[AlertDraft] = []
        for event in events:
            if event.repeat:
                continue  # a vendor's update of an event already judged
            drafts.extend(self._event_drafts(conn, event))
        drafts.extend(self._surges(conn, events))
        window = self.config.alerts.dedup_window_s
        # Repeats within one batch (a device alarming ten times in 50 ms) are one raise with
        # their count: the same outcome as one by one, without a round trip each.
        groups: dict[str, list[AlertDraft]] = {}
        for d in drafts:
            groups.setdefault(d.dedup_key, []).append(d)
        raised = []
        for group in groups.values():
            first = min(group, key=lambda d: d.occurred_at)
            merged = replace(
                first,
                source_events=tuple(e for d in group for e in d.source_events),
                severity=max((d.severity for d in group), key=_SEVERITY_RANK.__getitem__),
            )
            raised.append(
                store.raise_alert(
                    conn,
                    draft=merged,
                    window_s=window,
                    actor=f"rule:{first.rule}",
                    sightings=len(group),
                    last_seen=max(d.occurred_at for d in group),
                )
            )
        return raised

    # -- state written without the alert lock (before any alert is raised) --

    def _keep_state(self, conn: psycopg.Connection, events: Sequence[Event]) -> None:
        doors, rates, fixes = [], Counter[tuple[str, str, datetime]](), []
        for e in events:
            if e.kind is EventKind.ACCESS and e.code in _DOOR_STATE:
                door = e.attributes.get("door")
                doors.append((e.device_id, door if isinstance(door, int) else 1, _DOOR_STATE[e.code], e.occurred_at))
            if e.kind.value in self.rate_kinds:
                rates[(e.device_id, e.kind.value, e.occurred_at.replace(second=0, microsecond=0))] += 1
            if e.kind is EventKind.GPS_POSITION and e.device_id in self.trackers:
                lat, lon = e.attributes.get("lat"), e.attributes.get("lon")
                if isinstance(lat, float) and isinstance(lon, float):
                    fixes.append((e.device_id, lat, lon, e.occurred_at))
        store.set_door_states(conn, states=_latest_doors(doors))
        store.bump_rates(conn, counts=[(*k, n) for k, n in rates.items()])
        store.record_tracker_fixes(conn, fixes=fixes)

    # -- per-event rules --

    def _event_drafts(self, conn: psycopg.Connection, e: Event) -> list[AlertDraft]:
        device = self.config.device_index.get(e.device_id)
        device_kind = device.kind if device else None
        out = []
        for rule in self.event_rules:
            if e.kind.value not in rule.kinds or (rule.codes and e.code not in rule.codes):
                continue
            if rule.device_kinds and device_kind not in rule.device_kinds:
                continue
            if rule.devices and e.device_id not in rule.devices:
                continue
            if e.state is not None and e.state in rule.ignore_states:
                continue
            if rule.min_count is not None and (e.count is None or e.count < rule.min_count):
                continue
            detail: dict[str, Any] = {"code": e.code, "source_format": e.source_format}
            if e.count is not None:
                detail["count"] = e.count
            for key in ("door", "minor_hex", "rule", "object_type", "channel"):
                if key in e.attributes:
                    detail[key] = e.attributes[key]
            zone_key = f":{e.zone}" if e.zone else ""
            out.append(
                draft_for(
                    self.config,
                    rule,
                    device_id=e.device_id,
                    site_id=e.site_id,
                    at=e.occurred_at,
                    key=f"{e.device_id}{zone_key}",
                    events=[e],
                    zone=e.zone,
                    detail=detail,
                )
            )
        if e.plate and e.kind is EventKind.PLATE_READ:
            out.extend(self._hotlist(conn, e, "plates", e.plate))
        if e.kind is EventKind.RFID_READ:
            tag = next((e.attributes[k] for k in ("tag", "epc", "tag_id") if e.attributes.get(k)), None)
            if isinstance(tag, str):
                out.extend(self._hotlist(conn, e, "rfid_tags", tag))
        for rule in self.repeat_rules:
            if e.kind.value in rule.kinds and (not rule.codes or e.code in rule.codes):
                if rule.attribute is None or str(e.attributes.get(rule.attribute[0])) == rule.attribute[1]:
                    out.extend(self._repeat(conn, rule, e))
        fence = self.fences.get(e.device_id)
        if fence is not None and e.kind is EventKind.GPS_POSITION:
            out.extend(self._geofence(fence, e))
        for count_rule in self.count_rules:
            out.extend(self._device_count(conn, count_rule, e))
        return out

    def _device_count(self, conn: psycopg.Connection, rule: DeviceCountRule, e: Event) -> list[AlertDraft]:
        """A zone's reported people at or above the threshold for the dwell raises; the first report under the
        release level after one above it notes the end on the open alert. The reports are the stored events."""
        if e.count is None or e.kind.value not in rule.kinds or (rule.devices and e.device_id not in rule.devices):
            return []
        key = f"{e.device_id}:{e.zone}" if e.zone else e.device_id
        reports = store.count_reports(
            conn,
            device_id=e.device_id,
            zone=e.zone,
            kinds=rule.kinds,
            since=e.occurred_at - timedelta(seconds=rule.dwell_s + rule.max_gap_s),
            until=e.occurred_at,
        )
        if e.count >= rule.threshold:
            # the stretch of reports at or above the threshold that ends with this one
            start, later, reported, peak = e.occurred_at, e.occurred_at, 0, e.count
            for at, count in reversed(reports):
                if count is None or count < rule.threshold or (later - at).total_seconds() > rule.max_gap_s:
                    break
                start, later, reported, peak = at, at, reported + 1, max(peak, count)
            if (e.occurred_at - start).total_seconds() < rule.dwell_s:
                return []
            detail = {
                "people": e.count,
                "threshold": rule.threshold,
                "since": store.jsonable(start),
                "reports": max(reported, 1),
                "peak_people": peak,
                "dwell_s": rule.dwell_s,
                "counted_by": "device",
                "source_format": e.source_format,
                "cleared_at": None,  # a gathering back while its alert is still open is no longer over
            }
            return [
                draft_for(
                    self.config,
                    rule,
                    device_id=e.device_id,
                    site_id=e.site_id,
                    at=e.occurred_at,
                    key=key,
                    events=[e],
                    zone=e.zone,
                    detail=detail,
                )
            ]
        earlier = [count for at, count in reports if at < e.occurred_at]
        if e.count < rule.release and earlier and earlier[-1] is not None and earlier[-1] >= rule.release:
            store.note_open_alert(
                conn,
                dedup_key=f"{rule.alert}:{key}",
                action="gathering_cleared",
                actor=f"rule:{rule.name}",
                detail={"cleared_at": store.jsonable(e.occurred_at), "people_at_clear": e.count},
                seen_at=e.occurred_at,
            )
        return []

    def _hotlist(self, conn: psycopg.Connection, e: Event, list_name: str, value: str) -> list[AlertDraft]:
        rules = [r for r in self.hotlist_rules if r.list == list_name]
        if not rules:
            return []
        self._refresh_hotlists(conn)
        index = self._lists.get(list_name)
        if index is None or not len(index):
            return []
        out = []
        for rule in rules:
            match = index.match(value, on=e.occurred_at.date(), max_confusions=rule.max_confusions)
            if match is None:
                continue
            detail = {**match.as_detail(), "confidence": e.confidence, "device_id": e.device_id}
            severity = rule.severity_by_reason.get(match.entry.reason)
            out.append(
                draft_for(
                    self.config,
                    rule,
                    device_id=e.device_id,
                    site_id=e.site_id,
                    at=e.occurred_at,
                    key=f"{list_name}:{match.entry.value}",
                    events=[e],
                    detail=detail,
                    severity=severity,
                )
            )
        return out

    def _refresh_hotlists(self, conn: psycopg.Connection) -> None:
        if self._hotlists_checked:
            return
        self._hotlists_checked = True
        version = store.hotlist_version(conn)
        if version == self._hotlist_version:
            return
        entries = store.load_hotlists(conn)
        self._lists = {
            "plates": HotlistIndex([x for x in entries if x.list == "plates"], plates=True),
            "rfid_tags": HotlistIndex([x for x in entries if x.list == "rfid_tags"], plates=False),
        }
        self._hotlist_version = version

    def _repeat(self, conn: psycopg.Connection, rule: RepeatRule, e: Event) -> list[AlertDraft]:
        n = store.count_recent(
            conn,
            device_id=e.device_id,
            kinds=rule.kinds,
            codes=rule.codes,
            attribute=rule.attribute,
            since=e.occurred_at - timedelta(seconds=rule.window_s),
            until=e.occurred_at,
        )
        if n < rule.count:
            return []
        detail = {"code": e.code, "count_in_window": n, "window_s": rule.window_s}
        return [
            draft_for(
                self.config,
                rule,
                device_id=e.device_id,
                site_id=e.site_id,
                at=e.occurred_at,
                key=e.device_id,
                events=[e],
                detail=detail,
            )
        ]

    def _geofence(self, fence: tuple[GeofenceRule, list[tuple[float, float]], str], e: Event) -> list[AlertDraft]:
        rule, polygon, name = fence
        lat, lon = e.attributes.get("lat"), e.attributes.get("lon")
        if not isinstance(lat, float) or not isinstance(lon, float) or inside((lat, lon), polygon):
            return []
        detail = {"fence": name, "lat": lat, "lon": lon}
        return [
            draft_for(
                self.config,
                rule,
                device_id=e.device_id,
                site_id=e.site_id,
                at=e.occurred_at,
                key=e.device_id,
                events=[e],
                detail=detail,
                position=(lat, lon),
            )
        ]

    # -- rates --

    def _surges(self, conn: psycopg.Connection, events: Sequence[Event]) -> list[AlertDraft]:
        out = []
        for rule in self.surge_rules:
            latest: dict[str, Event] = {}
            for e in events:
                if e.kind.value in rule.kinds and (
                    e.device_id not in latest or latest[e.device_id].occurred_at < e.occurred_at
                ):
                    latest[e.device_id] = e
            for device_id, e in sorted(latest.items()):
                now = e.occurred_at
                recent_since = (now - timedelta(seconds=rule.window_s - 60)).replace(second=0, microsecond=0)
                baseline_since = recent_since - timedelta(seconds=rule.baseline_s)
                recent, baseline, first = store.rate_window(
                    conn,
                    device_id=device_id,
                    kinds=rule.kinds,
                    recent_since=recent_since,
                    baseline_since=baseline_since,
                    until=now,
                )
                # Judge a surge only against history: at least half the baseline must be on record.
                if first is None or first > baseline_since + timedelta(seconds=rule.baseline_s / 2):
                    continue
                expected = baseline * rule.window_s / rule.baseline_s
                if recent < rule.min_count or recent < rule.factor * max(expected, 1.0):
                    continue
                detail = {
                    "in_window": recent,
                    "window_s": rule.window_s,
                    "baseline_per_window": round(expected, 2),
                    "factor": round(recent / max(expected, 1.0), 2),
                }
                out.append(
                    draft_for(
                        self.config,
                        rule,
                        device_id=device_id,
                        site_id=e.site_id,
                        at=now,
                        key=device_id,
                        events=[e],
                        detail=detail,
                    )
                )
        return out


def _latest_doors(doors: list[tuple[str, int, str, datetime]]) -> list[tuple[str, int, str, datetime]]:
    latest: dict[tuple[str, int], tuple[str, int, str, datetime]] = {}
    for d in doors:
        key = (d[0], d[1])
        if key not in latest or latest[key][3] <= d[3]:
            latest[key] = d
    return list(latest.values())


def _fence_polygon(config: WatchpostConfig, fence: Any) -> tuple[list[tuple[float, float]], str]:
    if fence.polygon is not None:
        return list(fence.polygon), "polygon"
    site_id = fence.site or config.device_index[fence.device].site
    zone = next(z for z in config.site_index[site_id].zones if z.id == fence.zone)
    return list(zone.polygon), f"{site_id}/{zone.id}"
