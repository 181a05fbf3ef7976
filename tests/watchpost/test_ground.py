"""A camera's ground plane from points in the picture and on the ground: areas, horizon, bad points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support import synthetic_ground
from watchpost.ground import GroundError, GroundPlane, polygon_area

# A pinhole camera 6 m up, pitched 25 degrees down, 1000 px focal length, 1920x1080 picture.
_F, _CX, _CY, _HEIGHT, _PITCH = 1000.0, 960.0, 540.0, 6.0, math.radians(25)


def _pixel(x_m: float, y_m: float) -> tuple[float, float]:
    """Where the ground point (x right, y ahead, metres from below the camera) appears in the picture."""
    v = np.array([x_m, y_m, -_HEIGHT])
    ahead = np.array([0.0, math.cos(_PITCH), -math.sin(_PITCH)])
    down = np.array([0.0, -math.sin(_PITCH), -math.cos(_PITCH)])
    depth = v @ ahead
    return (_F * v[0] / depth + _CX, _F * (v @ down) / depth + _CY)


def _plane(points_m) -> GroundPlane:
    return GroundPlane.fit([_pixel(*p) for p in points_m], points_m)


def test_four_points_give_the_true_ground_area_of_a_zone_drawn_in_perspective():
    """Fitted on a 10 x 8 m rectangle, a 3 x 4 m zone elsewhere on the ground measures 12 m², near or far."""
    plane = _plane([(-5, 8), (5, 8), (5, 16), (-5, 16)])
    assert plane.worst_miss_m == pytest.approx(0, abs=1e-6)
    near = [_pixel(x, y) for x, y in ((-2, 6), (1, 6), (1, 10), (-2, 10))]
    far = [_pixel(x, y) for x, y in ((2, 20), (5, 20), (5, 24), (2, 24))]
    assert plane.area_m2(near) == pytest.approx(12, rel=1e-6)
    assert plane.area_m2(far) == pytest.approx(12, rel=1e-6)
    assert polygon_area(far) < polygon_area(near) / 3, "the far zone is far smaller in the picture"
    back = plane.to_ground([_pixel(3.5, 30)])[0]
    assert back == pytest.approx((3.5, 30), abs=1e-6)


def test_more_points_are_fitted_by_least_squares_and_a_misplaced_one_is_named():
    """Six points measured to a few centimetres fit; one put 3 m off its place is refused by its number."""
    rng = np.random.default_rng(3)
    ground = [(-4, 7), (4, 7), (6, 14), (-6, 14), (0, 10), (2, 20)]
    pixels = [_pixel(*p) for p in ground]
    noisy = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(ground, rng.normal(0, 0.03, (6, 2)), strict=True)]
    plane = GroundPlane.fit(pixels, noisy)
    assert 0 < plane.worst_miss_m < 0.15
    zone = [_pixel(x, y) for x, y in ((-1, 9), (2, 9), (2, 13), (-1, 13))]
    assert plane.area_m2(zone) == pytest.approx(12, rel=0.03)
    wrong = list(ground)
    wrong[3] = (-6, 17)
    with pytest.raises(GroundError, match=r"point 4 .* lands .* m from its measured place"):
        GroundPlane.fit(pixels, wrong)


@pytest.mark.parametrize(
    ("pixels", "metres", "message"),
    [
        ([(0, 0), (100, 0), (0, 100)], [(0, 0), (1, 0), (0, 1)], "needs at least 4 points, not 3"),
        ([(0, 0), (100, 0), (200, 0), (0, 100)], [(0, 0), (1, 0), (2, 0), (0, 1)], "points 1, 2 and 3 lie on one line"),
        ([(0, 0), (100, 0), (100, 100), (0, 100)], [(0, 0)] * 4, "ground points are all the same point"),
        ([(0, 0), (100, 0), (100, 100), (0, 100)], [(0, 0), (1, 0), (1, 1)], "4 picture points but 3 ground points"),
        (
            [(0, 0), (100, 0), (100, 100), (0, 100)],
            [(0, 0), (1, 0), (0, 1), (1, 1)],  # the last two swapped: the ground's outline crosses itself
            "both sides of the horizon",
        ),
    ],
)
def test_points_that_fix_no_ground_plane_are_refused_with_the_reason(pixels, metres, message):
    """Too few points, three in a row, all one point, unequal lists or crossed corners: a clear error."""
    with pytest.raises(GroundError, match=message):
        GroundPlane.fit(pixels, metres)


def test_a_place_at_or_above_the_horizon_is_not_on_the_ground():
    """A zone corner in the sky (above the row the ground's horizon falls on) is refused, not given an area."""
    plane = _plane([(-5, 8), (5, 8), (5, 16), (-5, 16)])
    horizon_y = _CY - _F * math.tan(_PITCH)  # 73.7: where the ground meets the sky in this picture
    below = [(800, horizon_y + 40), (1100, horizon_y + 40), (1100, 600), (800, 600)]
    assert plane.area_m2(below) > 0
    with pytest.raises(GroundError, match="above the horizon"):
        plane.area_m2([(800, horizon_y - 5), (1100, horizon_y + 40), (1100, 600), (800, 600)])


def test_the_ground_points_give_the_scenes_perspective_and_a_persons_height_in_pixels():
    """Four ground points of the synthetic scene give its perspective map up to a constant, and a 1.7 m person's
    height at the top and bottom rows is the height the scene draws."""
    from detectors.crowd import synthetic as syn

    pixels = [(40, 60), (280, 60), (300, 230), (20, 230)]
    plane = GroundPlane.fit(pixels, [synthetic_ground(*p) for p in pixels])
    weight, reference = plane.perspective(syn.WIDTH, syn.HEIGHT)
    ratio = weight / syn.perspective()
    assert ratio.max() / ratio.min() == pytest.approx(1.0, abs=1e-4)
    tall = 1.7 * plane.row_scale(syn.WIDTH, syn.HEIGHT)
    assert tall[0, 160] == pytest.approx(syn.person_height(0), rel=1e-3)
    assert tall[-1, 5] == pytest.approx(syn.person_height(syn.HEIGHT - 1), rel=1e-3)
    assert syn.TOP_HEIGHT < 1.7 * reference < syn.BOTTOM_HEIGHT


def test_above_the_horizon_the_perspective_is_the_farthest_grounds():
    """Rows at and above the horizon (sky, walls) get the largest weight the ground has, not infinity."""
    plane = _plane([(-5, 8), (5, 8), (5, 16), (-5, 16)])
    weight, _ = plane.perspective(1920, 1080)
    horizon_row = int(_CY - _F * math.tan(_PITCH))
    assert np.isfinite(weight).all() and weight.max() <= 100.0
    assert (weight[: horizon_row - 1] == weight.max()).all()
    assert weight[horizon_row + 50, 960] > weight[700, 960] > weight[1079, 960]
