"""People counting per frame and per zone with a calibrated camera model.

The count is a linear model of perspective-weighted cell features (see ``features``); a
second linear model, with weights that vary smoothly over the frame and trained on where the
labelled people stood, says how the count is spread over the frame. The spread is rescaled
to the count, so zone counts always add up to the frame's count and a zone's count is the
sum of the density inside its polygon.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.crowd.camera import CameraModel
from detectors.crowd.features import Background, cell_pool, extract_features

__all__ = ["Counter", "FrameCount", "Zone", "ZoneCount", "cell_weights", "expand_features", "zone_mask"]

# A pixel this close to the background (colour levels) and in a cell where nobody is counted
# may be blended into the background.
_ADAPT_CHANGE = 10
# A cell is occupied when the density there amounts to this share of one person's area.
_OCCUPIED_SHARE = 0.15


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon in image pixels (of the model's frame size); ``area_m2`` enables density thresholds."""

    name: str
    polygon: tuple[tuple[float, float], ...]
    area_m2: float | None = None

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.name!r}: a polygon needs at least 3 points")
        if self.area_m2 is not None and self.area_m2 <= 0:
            raise ValueError(f"zone {self.name!r}: area_m2 must be positive")

    @classmethod
    def parse(cls, text: str, *, name: str = "zone", area_m2: float | None = None) -> Zone:
        """``"x1,y1 x2,y2 x3,y3 ..."`` -> Zone."""
        points = []
        for token in text.split():
            m = re.fullmatch(r"(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)", token)
            if not m:
                raise ValueError(f"zone {name!r}: {token!r} is not x,y")
            points.append((float(m.group(1)), float(m.group(2))))
        return cls(name=name, polygon=tuple(points), area_m2=area_m2)

    def contains(self, x: float, y: float) -> bool:
        """Whether the point is inside the polygon or on its edge."""
        contour = np.array(self.polygon, np.float32).reshape(-1, 1, 2)
        return cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0


@dataclass(frozen=True, slots=True)
class ZoneCount:
    """People counted inside one zone in one frame."""

    zone: str
    count: float


@dataclass(frozen=True, slots=True, eq=False)
class FrameCount:
    """People counted in one frame: the total, each zone, and the density per cell."""

    time: float
    total: float
    zones: tuple[ZoneCount, ...]
    density: np.ndarray  # float32 (rows, cols): people per cell; sums to ``total``

    def zone(self, name: str) -> float:
        """The count of the named zone."""
        for z in self.zones:
            if z.zone == name:
                return z.count
        raise KeyError(name)


def cell_weights(model_roi: np.ndarray, perspective: np.ndarray, cell: int) -> np.ndarray:
    """Mean perspective weight of the counted part of each cell (0 outside the ROI)."""
    roi_f = model_roi.astype(np.float32)
    inside = cell_pool(roi_f, cell)
    return np.where(inside > 0, cell_pool(perspective * roi_f, cell) / np.maximum(inside, 1e-6), 0.0).astype(np.float32)


_SPREAD_NODES = (3, 4)  # rows x columns of the grid over which the spread model's weights vary


def _tents(nodes: int, size: int) -> np.ndarray:
    """Piecewise-linear ("tent") weights of ``nodes`` evenly spaced nodes at ``size`` positions; columns sum to 1."""
    pos = (np.arange(size, dtype=np.float32) + 0.5) / size * (nodes - 1)
    return np.stack([np.maximum(0.0, 1.0 - np.abs(pos - k)) for k in range(nodes)])


def expand_features(values: np.ndarray) -> np.ndarray:
    """Features times a smooth basis over the frame (bilinear tents on a 3 x 4 grid of nodes).

    Gives the spread model weights that vary smoothly across the picture: the same amount of
    change means more people under the far shop fronts than on the near floor, and the
    perspective map alone does not capture all of it.
    """
    rows, cols, k = values.shape[-3:]
    ty, tx = _tents(_SPREAD_NODES[0], rows), _tents(_SPREAD_NODES[1], cols)
    basis = (ty[:, :, None, None] * tx[None, None, :, :]).transpose(0, 2, 1, 3)  # ny, nx, rows, cols
    basis = basis.reshape(-1, rows, cols)
    out = values[..., None, :, :, :] * basis[..., :, :, None] if values.ndim == 4 else values[None] * basis[..., None]
    # -> (..., nodes, rows, cols, k) -> (..., rows, cols, nodes * k)
    out = np.moveaxis(out, -4, -2)
    return out.reshape(*out.shape[:-2], -1)


def zone_mask(zone: Zone, width: int, height: int, cell: int) -> np.ndarray:
    """Share of each cell inside the zone's polygon (float32, rows x cols)."""
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(np.array(zone.polygon)).astype(np.int32)], 1)
    return cell_pool(mask.astype(np.float32), cell)


class Counter:
    """Counts people in successive frames of one camera.

    Keeps the background: every ``adapt_every`` frames it blends the frame in at ``adapt_rate``,
    only at pixels that look like the background and lie in cells where nobody is counted, so
    lighting drift is followed while people who stay put (a gathering) stay in the count.
    """

    def __init__(
        self, model: CameraModel, zones: Sequence[Zone] = (), *, adapt_rate: float = 0.1, adapt_every: int = 5
    ) -> None:
        self.model = model
        self.zones = tuple(zones)
        self._adapt_rate = adapt_rate
        self._adapt_every = max(1, adapt_every)
        self._background = Background(model.background)
        self._roi = (model.roi > 0).astype(np.uint8)
        self._cell_weight = cell_weights(self._roi, model.perspective, model.cell)
        self._masks = [zone_mask(z, model.width, model.height, model.cell) for z in self.zones]
        # density above this (people per cell) marks a cell as occupied, for the background update
        cells_per_person = model.person_area / (np.maximum(self._cell_weight, 1e-6) * model.cell**2)
        self._occupied = (_OCCUPIED_SHARE / np.maximum(cells_per_person, 1e-6)).astype(np.float32)
        self._frames = 0

    @property
    def background(self) -> np.ndarray:
        """The current background (uint8 BGR), e.g. to check what the counter sees as empty."""
        return self._background.image

    def count(self, image: np.ndarray, time: float = 0.0) -> FrameCount:
        """Count people in a BGR uint8 frame (resized to the model's size if it differs)."""
        m = self.model
        if image.shape[:2] != (m.height, m.width):
            image = cv2.resize(image, (m.width, m.height), interpolation=cv2.INTER_AREA)
        grid = extract_features(image, self._background, self._roi, self._cell_weight, m.cell)
        total = max(float(grid.values.reshape(-1, grid.values.shape[2]).sum(axis=0) @ m.total_weights), 0.0)
        spread = np.maximum(expand_features(grid.values) @ m.shape_weights, 0.0).astype(np.float32)
        mass = float(spread.sum())
        density = spread * (total / mass) if mass > 1e-9 else np.zeros_like(spread)
        zones = tuple(
            ZoneCount(zone=z.name, count=float((density * mask).sum()))
            for z, mask in zip(self.zones, self._masks, strict=True)
        )
        self._frames += 1
        if self._adapt_rate > 0 and self._frames % self._adapt_every == 0:
            self._adapt(image, grid.change, grid.gain, density)
        return FrameCount(time=time, total=total, zones=zones, density=density)

    def _adapt(self, image: np.ndarray, change: np.ndarray, gain: float, density: np.ndarray) -> None:
        m = self.model
        occupied = cv2.dilate((density > self._occupied).astype(np.uint8), np.ones((3, 3), np.uint8))
        free_cells = cv2.resize(1 - occupied, (m.width, m.height), interpolation=cv2.INTER_NEAREST)
        free = (free_cells > 0) & (change < _ADAPT_CHANGE)
        self._background.update(image, gain, free, self._adapt_rate)
