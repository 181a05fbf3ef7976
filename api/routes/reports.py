"""Sites and statistics: the map, 1-3-5 compliance, alerts per period, the zero-case board, device health.

Periods are local calendar periods in the configured time zone (``timezone`` in the
configuration): "this week" starts on Monday at 00:00 there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query

from api.auth import Action, Principal, require
from api.dependencies import Config, Conn
from api.routes.common import aware, invalid, responses
from api.schemas import AlertCountRow, ComplianceRow, DeviceHealthRow, SiteOut, ZeroCaseRow
from watchpost import store
from watchpost.model import Severity

__all__ = ["period_bounds", "router"]

router = APIRouter()

Period = Literal["week", "month", "quarter", "year"]
Bucket = Literal["day", "week", "month", "quarter"]


def period_bounds(now: datetime, period: Period, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local calendar period containing ``now``: [start, end) as aware datetimes."""
    day = now.astimezone(zone).date()
    if period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif period == "month":
        start = day.replace(day=1)
        end = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    elif period == "quarter":
        first = 3 * ((day.month - 1) // 3) + 1
        start = date(day.year, first, 1)
        end = date(day.year + (first + 3 > 12), (first + 2) % 12 + 1, 1)
    else:
        start, end = date(day.year, 1, 1), date(day.year + 1, 1, 1)
    return datetime.combine(start, time(), tzinfo=zone), datetime.combine(end, time(), tzinfo=zone)


def _range(config: Any, since: datetime | None, until: datetime | None, default: Period) -> tuple[datetime, datetime]:
    start, end = period_bounds(datetime.now(UTC), default, ZoneInfo(config.timezone))
    since, until = aware("since", since) or start, aware("until", until) or end
    if since >= until:
        raise invalid(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    return since, until


# --- sites --------------------------------------------------------------------------------------


@router.get(
    "/sites",
    response_model=list[SiteOut],
    tags=["sites"],
    summary="Sites with their zones and current response level",
    description="From the configuration, with each site's response level (0 normal, 2 raised, 1 highest) as the"
    " response-level rule last declared it.",
    responses=responses(403),
)
def sites(
    conn: Conn, config: Config, principal: Annotated[Principal, require(Action.READ_SITES)]
) -> list[dict[str, Any]]:
    levels = store.site_levels(conn)
    out = []
    for site in config.sites:
        level = levels.get(site.id) or {"level": 0, "since": None, "until": None, "reason": None}
        out.append(
            {
                "id": site.id,
                "name": site.name,
                "kind": site.kind,
                "lat": site.position.lat,
                "lon": site.position.lon,
                "timezone": site.timezone or config.timezone,
                "zones": [z.model_dump() for z in site.zones],
                "devices": sum(1 for d in config.devices if d.site == site.id),
                "units": sum(1 for u in config.units if u.site == site.id),
                "response_level": level,
            }
        )
    return out


# --- statistics ---------------------------------------------------------------------------------


@router.get(
    "/stats/compliance",
    response_model=list[ComplianceRow],
    tags=["statistics"],
    summary="1-3-5 compliance per tier, period, site and severity",
    description="For alerts created in [since, until) (default: this local week). `share_met` is met / (met +"
    " missed): tiers still pending and void ones (the alert ended before anyone was needed) count neither way."
    " Example: `?severity=critical&bucket=week` is the share of critical alerts with a unit on scene within"
    " each tier's deadline, per site, this week.",
    responses=responses(403, 422),
)
def compliance(
    conn: Conn,
    config: Config,
    principal: Annotated[Principal, require(Action.READ_STATS)],
    since: Annotated[datetime | None, Query(description="Default: start of this local week")] = None,
    until: Annotated[datetime | None, Query(description="Default: end of this local week")] = None,
    bucket: Annotated[Bucket, Query(description="Period of each row")] = "week",
    site: Annotated[str | None, Query(description="Only this site")] = None,
    severity: Annotated[Severity | None, Query(description="Only this severity")] = None,
    by_site: Annotated[bool, Query(description="One row per site (false: all sites together)")] = True,
) -> list[dict[str, Any]]:
    since, until = _range(config, since, until, "week")
    return store.compliance(
        conn,
        since=since,
        until=until,
        bucket=bucket,
        timezone=config.timezone,
        site_id=site,
        severity=severity.value if severity else None,
        by_site=by_site,
    )


@router.get(
    "/stats/alerts",
    response_model=list[AlertCountRow],
    tags=["statistics"],
    summary="Alerts per type, site and period",
    description="Alerts created in [since, until) (default: this local month), cancelled ones excluded, with how"
    " many ended as false alarms.",
    responses=responses(403, 422),
)
def alert_counts(
    conn: Conn,
    config: Config,
    principal: Annotated[Principal, require(Action.READ_STATS)],
    since: Annotated[datetime | None, Query(description="Default: start of this local month")] = None,
    until: Annotated[datetime | None, Query(description="Default: end of this local month")] = None,
    bucket: Annotated[Bucket, Query(description="Period of each row")] = "day",
    site: Annotated[str | None, Query(description="Only this site")] = None,
) -> list[dict[str, Any]]:
    since, until = _range(config, since, until, "month")
    return store.alert_counts(conn, since=since, until=until, bucket=bucket, timezone=config.timezone, site_id=site)


@router.get(
    "/stats/zero-case",
    response_model=list[ZeroCaseRow],
    tags=["statistics"],
    summary="The zero-case board: per site, days since its last case",
    description="Case types are the catalogue's types with a `case` category (theft, robbery, fraud, violence...);"
    " `case` narrows them. Sites with no case in the current local period come first.",
    responses=responses(403, 422),
)
def zero_case(
    conn: Conn,
    config: Config,
    principal: Annotated[Principal, require(Action.READ_STATS)],
    period: Annotated[Period, Query(description="The current local period that counts")] = "month",
    case: Annotated[list[str] | None, Query(description="Case categories; repeat for several (default all)")] = None,
) -> list[dict[str, Any]]:
    categories = {t.case for t in config.alerts.types.values() if t.case}
    unknown = set(case or ()) - categories
    if unknown:
        raise invalid(f"case: unknown categories {sorted(unknown)}; known: {sorted(categories)}")
    wanted = set(case) if case else categories
    types = [name for name, t in config.alerts.types.items() if t.case in wanted]
    now = datetime.now(UTC)
    since, _ = period_bounds(now, period, ZoneInfo(config.timezone))
    return store.zero_case_board(conn, case_types=types, now=now, timezone=config.timezone, since=since)


@router.get(
    "/stats/devices",
    response_model=list[DeviceHealthRow],
    tags=["statistics"],
    summary="Device health",
    description="Per configured device: when it was last heard from, whether it is silent past its heartbeat,"
    " and its open alerts.",
    responses=responses(403),
)
def device_health(conn: Conn, principal: Annotated[Principal, require(Action.READ_STATS)]) -> list[dict[str, Any]]:
    return store.device_health(conn, now=datetime.now(UTC))
