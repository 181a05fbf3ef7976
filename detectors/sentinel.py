"""Rules that fire on the clock rather than on an event: a device gone silent, a gate left
open, a site's response level. Run periodically by the dispatcher; every check reads its
facts from the database, so a restarted or replaced dispatcher carries on where it was.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import psycopg

from detectors.rules import draft_for
from watchpost import store
from watchpost.config import HeldOpenRule, OfflineRule, ResponseLevelRule, WatchpostConfig
from watchpost.model import AlertState, Outcome

__all__ = ["Sentinel"]

log = logging.getLogger("watchpost.detectors.sentinel")

_LEVEL_EVERY = timedelta(seconds=60)


class Sentinel:
    """The clock-driven rules of ``config``; call :meth:`check` every few seconds."""

    def __init__(self, config: WatchpostConfig) -> None:
        self.config = config
        rules = [r for r in config.rules if r.enabled]
        self.offline = [r for r in rules if isinstance(r, OfflineRule)]
        self.held_open = [r for r in rules if isinstance(r, HeldOpenRule)]
        self.levels = [r for r in rules if isinstance(r, ResponseLevelRule)]
        self.case_types = sorted(name for name, t in config.alerts.types.items() if t.case)
        self._next_level_check: datetime | None = None

    def check(self, conn: psycopg.Connection, *, now: datetime) -> int:
        """Run every due check, each in its own transaction; return how many alerts were raised."""
        raised = 0
        for rule in self.offline:
            with conn.transaction():
                raised += self._offline(conn, rule, now)
        for rule in self.held_open:
            with conn.transaction():
                raised += self._held_open(conn, rule, now)
        if self.levels and (self._next_level_check is None or now >= self._next_level_check):
            self._next_level_check = now + _LEVEL_EVERY
            for rule in self.levels:
                with conn.transaction():
                    raised += self.response_levels(conn, rule, now)
        return raised

    # -- devices --

    def _offline(self, conn: psycopg.Connection, rule: OfflineRule, now: datetime) -> int:
        raised = 0
        for device in store.silent_devices(conn, now=now, grace=rule.grace):
            draft = draft_for(
                self.config,
                rule,
                device_id=device["device_id"],
                site_id=device["site_id"],
                at=now,
                key=device["device_id"],
                detail={"last_received": device["last_received"].isoformat(), "heartbeat_s": device["heartbeat_s"]},
            )
            result = store.raise_alert(conn, draft=draft, window_s=None, actor=f"rule:{rule.name}", fold=False)
            raised += result.created
        # A device heard from again closes its own offline alert: nobody needs to go.
        for alert_id, device_id, last, first_seen in store.open_offline_alerts(conn):
            if last is not None and last > first_seen - timedelta(seconds=1):
                store.finish_alert(
                    conn,
                    alert_id=alert_id,
                    state=AlertState.RESOLVED,
                    outcome=Outcome.NO_ACTION,
                    note=f"device {device_id} reported again at {last.isoformat()}",
                    actor=f"rule:{rule.name}",
                )
                store.append_feed(conn, kind="resolved", alert_id=alert_id)
        return raised

    def _held_open(self, conn: psycopg.Connection, rule: HeldOpenRule, now: datetime) -> int:
        raised = 0
        for device_id, door, since in store.open_doors(conn, opened_before=now - timedelta(seconds=rule.limit_s)):
            device = self.config.device_index.get(device_id)
            if device is None:
                continue
            detail = {"door": door, "open_since": since.isoformat(), "limit_s": rule.limit_s}
            draft = draft_for(
                self.config,
                rule,
                device_id=device_id,
                site_id=device.site,
                at=since,
                key=f"{device_id}:{door}",
                detail=detail,
            )
            raised += store.raise_alert(conn, draft=draft, window_s=None, actor=f"rule:{rule.name}", fold=False).created
        return raised

    # -- site response level --

    def response_levels(self, conn: psycopg.Connection, rule: ResponseLevelRule, now: datetime) -> int:
        """Declare each site's level: 1 on a serious event, 2 on a third of its control number in a
        week with a 10 % rise on the week before, or half of it; otherwise normal (0)."""
        week = timedelta(days=7)
        counts = store.case_counts(
            conn, case_types=self.case_types, windows=[(now - week, now), (now - 2 * week, now - week)]
        )
        serious = store.case_counts(
            conn, case_types=rule.level1_types, windows=[(now - timedelta(days=rule.hold_days), now)]
        )
        raised = 0
        for site in self.config.sites:
            this_week, last_week = counts.get(site.id, [0, 0])
            control = rule.control.get(site.id, rule.default_control)
            detail: dict[str, Any] = {"cases_7d": this_week, "cases_prev_7d": last_week, "control_monthly": control}
            level, reason, until = 0, "normal", None
            if serious.get(site.id, [0])[0]:
                level, reason = 1, f"serious event ({', '.join(rule.level1_types)}) within {rule.hold_days} days"
                until = now + timedelta(days=rule.hold_days)
            elif this_week * 2 >= control:
                level, reason = 2, f"{this_week} cases in 7 days reach half the monthly control number {control}"
            elif this_week * 3 >= control and this_week >= last_week * (1 + rule.rise) and this_week > last_week:
                level, reason = (
                    2,
                    (
                        f"{this_week} cases in 7 days reach a third of the monthly control number"
                        f" {control}, up from {last_week}"
                    ),
                )
            previous = store.set_site_level(
                conn, site_id=site.id, level=level, reason=reason, detail=detail, until=until
            )
            if previous is None:
                continue
            store.append_feed(
                conn,
                kind="site_level",
                alert_id=None,
                body={"site_id": site.id, "level": level, "previous": previous, "reason": reason, **detail},
            )
            if level and (previous == 0 or level < previous):
                severity = "critical" if level == 1 else "major"
                draft = draft_for(
                    self.config,
                    rule,
                    device_id=None,
                    site_id=site.id,
                    at=now,
                    key=f"{site.id}:{level}",
                    detail={"level": level, "reason": reason, **detail},
                    severity=severity,
                )
                raised += store.raise_alert(
                    conn, draft=draft, window_s=None, actor=f"rule:{rule.name}", fold=False
                ).created
        return raised
