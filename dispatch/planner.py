"""Choosing units: ETA by distance and speed, and the best available unit for each tier.

Pure functions over :class:`~watchpost.model.UnitState`; no database, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from watchpost.geo import distance_m
from watchpost.model import UnitState

__all__ = ["Pick", "Target", "eta", "rank_units"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where help is needed."""

    site_id: str | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class Pick:
    """A unit chosen for an alert, with how long it needs to get there."""

    unit_id: str
    eta_s: float | None  # None: the alert has no location, the ETA is unknown
    distance_m: float | None


def eta(unit: UnitState, target: Target, *, route_factor: float) -> Pick | None:
    """The unit's ETA to the target, or None when it cannot go there.

    A fixed post is at its own site: ETA 0 there, and it does not leave it. Everyone else
    covers the straight-line distance times ``route_factor`` at their speed.
    """
    if unit.kind == "post":
        if target.site_id is not None and unit.site_id == target.site_id:
            distance = None if target.lat is None else distance_m(unit.lat, unit.lon, target.lat, target.lon)
            return Pick(unit.unit_id, 0.0, distance)
        return None
    if target.lat is None or target.lon is None:
        return Pick(unit.unit_id, None, None)
    metres = distance_m(unit.lat, unit.lon, target.lat, target.lon)
    return Pick(unit.unit_id, metres * route_factor / (unit.speed_kmh / 3.6), metres)


def rank_units(
    units: Iterable[UnitState], target: Target, *, route_factor: float, exclude: Sequence[str] = ()
) -> list[Pick]:
    """Units that can go, best first: shortest ETA, then units of the alert's own site."""
    skip = set(exclude)
    ranked: list[tuple[float, int, str, Pick]] = []
    for unit in units:
        if unit.unit_id in skip:
            continue
        pick = eta(unit, target, route_factor=route_factor)
        if pick is None:
            continue
        own_site = 0 if unit.site_id == target.site_id else 1
        ranked.append((pick.eta_s if pick.eta_s is not None else float("inf"), own_site, unit.unit_id, pick))
    ranked.sort(key=lambda r: r[:3])
    return [r[3] for r in ranked]
