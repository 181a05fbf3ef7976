"""Choosing units: ETA from distance and speed, fixed posts at their own site, best first."""

from __future__ import annotations

import pytest

from dispatch.planner import Target, eta, rank_units
from watchpost.geo import distance_m, inside
from watchpost.model import UnitState, UnitStatus


def _unit(unit_id: str, kind: str, lat: float, lon: float, *, speed: float = 18.0, site: str | None = "lotus"):
    return UnitState(
        unit_id=unit_id,
        name=unit_id,
        kind=kind,
        site_id=site,
        speed_kmh=speed,
        lat=lat,
        lon=lon,
        fix_at=None,
        status=UnitStatus.AVAILABLE,
    )


def test_great_circle_distance_matches_a_known_length():
    """One hundredth of a degree of latitude is about 1,112 m."""
    assert distance_m(30.0, 120.0, 30.01, 120.0) == pytest.approx(1111.9, abs=1)


def test_point_in_polygon_follows_the_even_odd_rule():
    """A point inside a square is inside; one beside it is not."""
    square = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
    assert inside((0.5, 0.5), square) and not inside((1.5, 0.5), square)


def test_eta_is_route_distance_over_speed():
    """1,112 m at 18 km/h with route factor 1.3 takes about 289 s."""
    pick = eta(_unit("e", "ebike", 30.0, 120.0), Target("lotus", 30.01, 120.0), route_factor=1.3)
    assert pick is not None and pick.eta_s == pytest.approx(1111.9 * 1.3 / 5.0, rel=1e-3)


def test_a_fixed_post_is_at_once_at_its_own_site_and_never_elsewhere():
    """A post has ETA 0 for an alert at its site and is not a candidate for another site."""
    post = _unit("p", "post", 30.0, 120.0)
    assert eta(post, Target("lotus", 30.005, 120.0), route_factor=1.3).eta_s == 0.0
    assert eta(post, Target("bamboo", 30.0, 120.0), route_factor=1.3) is None


def test_units_rank_by_eta_then_own_site_and_busy_ones_are_left_out():
    """The car far away loses to the e-bike nearby; an excluded unit is not offered."""
    target = Target("lotus", 30.0, 120.0)
    units = [
        _unit("car-far", "car", 30.03, 120.0, speed=30),
        _unit("bike-near", "ebike", 30.002, 120.0),
        _unit("foot-near-other-site", "foot", 30.0005, 120.0, speed=5, site="bamboo"),
        _unit("busy", "ebike", 30.0, 120.0),
    ]
    ranked = [p.unit_id for p in rank_units(units, target, route_factor=1.3, exclude=["busy"])]
    assert ranked == ["foot-near-other-site", "bike-near", "car-far"]


def test_an_alert_without_a_location_still_gets_units_with_unknown_eta():
    """No position: units are offered (own site first) with ETA unknown."""
    picks = rank_units(
        [_unit("a", "foot", 30.0, 120.0, site="bamboo"), _unit("b", "foot", 30.0, 120.0)],
        Target("lotus", None, None),
        route_factor=1.3,
    )
    assert [(p.unit_id, p.eta_s) for p in picks] == [("b", None), ("a", None)]
