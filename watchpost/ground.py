"""A camera's ground plane: where a pixel of its picture lies on the ground, in metres.

Four or more points on the ground (paving corners, kerb ends, the marks of a court), each
located in the picture and measured on the ground (a tape, a site plan, a map), fix the
homography that takes the picture's ground to the ground itself. With it a zone drawn on the
picture has an area in square metres, so "3 people per square metre" needs no one to measure
the zone on site, and a zone redrawn in the console keeps a true area.

A straight line on the ground is straight in the picture too, so a zone's corners mapped to the
ground give its outline there exactly (as long as the zone lies on the ground, below the
horizon). Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

__all__ = ["PERSON_HEIGHT_M", "GroundError", "GroundPlane", "polygon_area"]

PERSON_HEIGHT_M = 1.7  # an adult standing, for a person's height in pixels from the ground's scale
# The perspective weight is 1 where the ground's scale is at this percentile of the picture's: near the bottom, as
# in the maps the counting defaults were measured with (Mall's is 1 at about its 84th percentile row, the synthetic
# scene's at its bottom row); the weights' overall scale moves the linear count model's ridge penalty.
_REFERENCE_PERCENTILE = 90.0

# Three points closer to one line than this share of the points' spread make the homography
# unstable (and exactly on one line, undefined).
_MIN_SPREAD = 0.02
# With more than four points, the worst point may miss its measured place by this much.
_MAX_MISS_SHARE = 0.05  # of the points' extent on the ground
_MAX_MISS_M = 0.5


class GroundError(ValueError):
    """The points do not define a ground plane, or a place is not on it."""


def polygon_area(points: Sequence[tuple[float, float]]) -> float:
    """Area of a simple polygon (shoelace), whatever its winding."""
    p = np.asarray(points, np.float64)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _normaliser(points: np.ndarray) -> np.ndarray:
    """Hartley's normalisation: centroid to the origin, mean distance sqrt(2)."""
    centre = points.mean(axis=0)
    spread = np.sqrt(((points - centre) ** 2).sum(axis=1)).mean()
    s = np.sqrt(2) / spread
    return np.array([[s, 0, -s * centre[0]], [0, s, -s * centre[1]], [0, 0, 1]])


def _check_spread(points: np.ndarray, what: str) -> None:
    """The points are not all one point and, when there are four, no three of them lie on one line
    (with more, the fit itself says whether they fix a plane)."""
    extent = float(np.ptp(points, axis=0).max())
    if extent <= 0:
        raise GroundError(f"the {what} points are all the same point")
    if len(points) != 4:
        return
    for i, j, k in combinations(range(4), 3):
        a, b, c = points[i], points[j], points[k]
        twice_area = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
        longest = max(np.hypot(*(b - a)), np.hypot(*(c - a)), np.hypot(*(c - b)))
        if twice_area / max(longest, 1e-12) < _MIN_SPREAD * extent:
            raise GroundError(
                f"{what} points {i + 1}, {j + 1} and {k + 1} lie on one line: four points on the ground need no three"
                " in a row (take the corners of a rectangle, such as a square of paving)"
            )


@dataclass(frozen=True, slots=True)
class GroundPlane:
    """The homography from picture pixels to ground metres, and the side of the horizon the ground is on."""

    matrix: tuple[tuple[float, float, float], ...]  # 3 x 3, pixels -> metres (homogeneous)
    worst_miss_m: float  # how far the worst given point lands from its measured place (0 with four points)

    @classmethod
    def fit(cls, pixels: Sequence[tuple[float, float]], metres: Sequence[tuple[float, float]]) -> GroundPlane:
        """The plane through ``pixels[i]`` -> ``metres[i]`` (at least four pairs; least squares beyond four)."""
        src = np.asarray(pixels, np.float64).reshape(-1, 2)
        dst = np.asarray(metres, np.float64).reshape(-1, 2)
        if len(src) != len(dst):
            raise GroundError(f"{len(src)} picture points but {len(dst)} ground points")
        if len(src) < 4:
            raise GroundError(f"a ground plane needs at least 4 points, not {len(src)}")
        _check_spread(src, "picture")
        _check_spread(dst, "ground")
        ts, td = _normaliser(src), _normaliser(dst)
        s = (np.c_[src, np.ones(len(src))] @ ts.T)[:, :2]
        d = (np.c_[dst, np.ones(len(dst))] @ td.T)[:, :2]
        rows = []
        for (x, y), (u, v) in zip(s, d, strict=True):
            rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
            rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
        _, sv, vt = np.linalg.svd(np.asarray(rows))
        if len(sv) >= 8 and sv[7] < 1e-9 * sv[0]:
            raise GroundError("the points do not fix one ground plane (are several of them in a row?)")
        h = np.linalg.inv(td) @ vt[-1].reshape(3, 3) @ ts
        h /= h[2, 2] if abs(h[2, 2]) > 1e-12 else np.linalg.norm(h)
        w = np.c_[src, np.ones(len(src))] @ h.T
        if not (np.all(w[:, 2] > 0) or np.all(w[:, 2] < 0)):
            raise GroundError("the points put parts of the ground on both sides of the horizon: check their order")
        if w[0, 2] < 0:
            h = -h
        mapped = (np.c_[src, np.ones(len(src))] @ h.T)
        mapped = mapped[:, :2] / mapped[:, 2:]
        misses = np.hypot(*(mapped - dst).T)
        worst = int(np.argmax(misses))
        extent = float(np.ptp(dst, axis=0).max())
        if misses[worst] > max(_MAX_MISS_M, _MAX_MISS_SHARE * extent):
            raise GroundError(
                f"the points do not lie on one flat ground: point {worst + 1} (picture {tuple(src[worst])}) lands"
                f" {misses[worst]:.1f} m from its measured place; check it, or leave it out"
            )
        return cls(matrix=tuple(tuple(float(v) for v in row) for row in h), worst_miss_m=round(float(misses[worst]), 3))

    def to_ground(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """Ground metres of picture ``points``; a point at or beyond the horizon is refused."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        w = np.c_[p, np.ones(len(p))] @ np.asarray(self.matrix).T
        # the given points map to w > 0; a point where w reaches 0 is on the horizon, beyond it the sky
        for (x, y), scale in zip(p, w[:, 2], strict=True):
            if scale <= 1e-9:
                raise GroundError(f"({x:g}, {y:g}) is at or above the horizon of the ground plane: not on the ground")
        return [(float(u), float(v)) for u, v in w[:, :2] / w[:, 2:]]

    def area_m2(self, polygon: Sequence[tuple[float, float]]) -> float:
        """Ground area of a zone drawn on the picture, in square metres."""
        return polygon_area(self.to_ground(polygon))

    def row_scale(self, width: int, height: int) -> np.ndarray:
        """Pixels per metre along the picture's rows at each pixel of a ``width`` x ``height`` picture, as if the
        pixel were on the ground (float32, rows x cols; 0 at and above the horizon).

        Along a row the ground runs parallel to the picture, so this is also how many pixels a metre of anything
        upright standing there spans: a person of 1.7 m stands about 1.7 times it tall.
        """
        h = np.asarray(self.matrix, np.float64)
        x = np.arange(width, dtype=np.float64)[None, :]
        y = np.arange(height, dtype=np.float64)[:, None]
        u = h[0, 0] * x + h[0, 1] * y + h[0, 2]
        v = h[1, 0] * x + h[1, 1] * y + h[1, 2]
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        # d(ground)/dx of (u/w, v/w): metres a pixel step along the row moves on the ground
        with np.errstate(divide="ignore", invalid="ignore"):
            du = (h[0, 0] * w - u * h[2, 0]) / (w * w)
            dv = (h[1, 0] * w - v * h[2, 0]) / (w * w)
            scale = 1.0 / np.hypot(du, dv)
        scale = np.where((w > 1e-9) & np.isfinite(scale), scale, 0.0)
        return scale.astype(np.float32)

    def perspective(self, width: int, height: int) -> tuple[np.ndarray, float]:
        """The perspective weight of each pixel (float32, larger where people look smaller, 1 where they look as
        tall as at the picture's median ground scale) and that median scale in pixels per metre.

        A person's area in the picture goes with the square of the scale, so the weight is its inverse square;
        at and above the horizon (sky, walls: nobody stands there) it is the largest of the ground's, and it
        stays within a factor of 100 of 1 either way.
        """
        scale = self.row_scale(width, height)
        ground = scale > 0
        if not ground.any():
            raise GroundError("the whole picture is at or above the horizon of the ground points")
        reference = float(np.percentile(scale[ground], _REFERENCE_PERCENTILE))
        weight = np.ones_like(scale)
        weight[ground] = (reference / scale[ground]) ** 2
        np.clip(weight, 0.01, 100.0, out=weight)
        weight[~ground] = float(weight[ground].max())
        return weight.astype(np.float32), reference
