"""People counting per frame and per zone with a calibrated camera model.

Each frame's features (see ``features``) go through the camera's density model (see
``density``): people per cell, located at their heads. The frame's count is the sum of the
density, a zone's count the sum inside its polygon, so zone counts add up to the frame's and
follow the people whose heads are in the zone. A model calibrated from counts without head
positions has a linear density instead (features per cell times the count model's weights).

Every count carries a :class:`ViewCheck`: whether the frame still shows the calibrated scene
(not too dark or bright, the scene's outlines where they were, colour where there was colour).
A frame that fails it is not blended into the background; the camera's worker holds its counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from detectors.crowd.camera import CameraModel
from detectors.crowd.density import DensityModel, design
from detectors.crowd.features import Background, cell_pool, extract_features, shrink

__all__ = [
    "Counter",
    "FrameCount",
    "ViewCheck",
    "Zone",
    "ZoneCount",
    "cell_weights",
    "counted_cells",
    "zone_mask",
    "outline_limit",
]

# A pixel this close to the background (colour levels) and in a cell where nobody is counted
# may be blended into the background.
_ADAPT_CHANGE = 10
# A cell is occupied when the density there (people per cell) is above this; the body below the
# head is occupied too.
_OCCUPIED = 0.1
# Past these the frame is not the scene the model was calibrated on. Measured on Mall frames
# (2026-12-03): counts stay within about a person from 0.5x to 1.35x the brightness; the frames
# keep 80-90 % of the empty scene's outlines, a camera turned by 20 pixels or 5 degrees 10-15 %,
# a defocused lens 8 %, a covered one none.
_MIN_GAIN, _MAX_GAIN = 0.4, 2.5
_OUTLINES_KEPT_SHARE = 0.65  # of the calibration frames' 5th percentile of edges kept
_OUTLINES_KEPT_DEFAULT = 0.5  # for a model calibrated before edges were measured
_MIN_COLOUR = 0.2  # a frame with under this share of the empty scene's colour has lost it (infrared)
_COLOURFUL = 20.0  # the empty scene's median saturation from which colour is checked (a grey camera is not)


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


@dataclass(frozen=True, slots=True)
class ViewCheck:
    """Whether a frame shows the scene the camera was calibrated on: the counts are only as good as that."""

    gain: float  # brightness relative to the empty scene
    outlines_kept: float  # share of the empty scene's outlines still in the frame
    colour: float  # the frame's colour saturation relative to the empty scene's
    problem: str | None  # why the counts cannot be trusted, or None


@dataclass(frozen=True, slots=True, eq=False)
class FrameCount:
    """People counted in one frame: the total, each zone, the density per cell, and the view check."""

    time: float
    total: float
    zones: tuple[ZoneCount, ...]
    density: np.ndarray  # float32 (rows, cols): people per cell (a little below 0 where nobody is); sums to ``total``
    view: ViewCheck | None = None

    def zone(self, name: str) -> float:
        """The count of the named zone."""
        for z in self.zones:
            if z.zone == name:
                return z.count
        raise KeyError(name)


def outline_limit(model: CameraModel) -> float:
    """The share of the empty scene's outlines below which a frame's view is not the calibrated one."""
    kept = (model.fit.get("view") or {}).get("outlines_kept_p5")
    return _OUTLINES_KEPT_SHARE * float(kept) if isinstance(kept, int | float) and kept > 0 else _OUTLINES_KEPT_DEFAULT


def check_view(
    gain: float, outlines_kept: float, saturation: float, background_saturation: float, limit: float
) -> ViewCheck:
    """Judge a frame's view from its measures (see :class:`ViewCheck`)."""
    colour = saturation / background_saturation if background_saturation > 0 else 1.0
    problem = None
    if gain < _MIN_GAIN:
        problem = f"the picture is {gain:.2f}x as bright as the empty scene: too dark to count (night? lens covered?)"
    elif gain > _MAX_GAIN:
        problem = f"the picture is {gain:.1f}x as bright as the empty scene: glare or overexposure"
    elif outlines_kept < limit:
        problem = (
            f"only {outlines_kept:.0%} of the scene's outlines are where they were (calibrated: at least {limit:.0%}):"
            " the camera moved, or its lens is covered or out of focus"
        )
    elif background_saturation < _COLOURFUL and saturation >= max(_COLOURFUL, 3 * max(background_saturation, 5.0)):
        problem = "the picture has colour and the calibration frames had none (a day picture on a night model?)"
    elif background_saturation >= _COLOURFUL and colour < _MIN_COLOUR:
        problem = "the picture has lost its colour (infrared night mode?): calibrate crowd.night_model on such frames"
    return ViewCheck(
        gain=round(gain, 3), outlines_kept=round(outlines_kept, 3), colour=round(colour, 3), problem=problem
    )


def cell_weights(model_roi: np.ndarray, perspective: np.ndarray, cell: int) -> np.ndarray:
    """Mean perspective weight of the counted part of each cell (0 outside the ROI)."""
    roi_f = model_roi.astype(np.float32)
    inside = cell_pool(roi_f, cell)
    return np.where(inside > 0, cell_pool(perspective * roi_f, cell) / np.maximum(inside, 1e-6), 0.0).astype(np.float32)


def counted_cells(model_roi: np.ndarray, cell: int) -> np.ndarray:
    """Cells that hold any of the counted region (bool, rows x cols): the density model's cells."""
    return cell_pool(model_roi.astype(np.float32), cell) > 0


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
        self.set_zones(zones)
        self._adapt_rate = adapt_rate
        self._adapt_every = max(1, adapt_every)
        self._background = Background(model.background)
        self._roi = (model.roi > 0).astype(np.uint8)
        self._cell_weight = cell_weights(self._roi, model.perspective, model.cell)
        self._edge_weight = model.edge_weights(self._cell_weight)
        counted = counted_cells(self._roi, model.cell)
        self._density = (
            DensityModel.from_text(model.density, counted, model.row_profile, model.linear_total)
            if model.density
            else None
        )
        # the body under a head: a cell is occupied when a head is up to this many cells above it
        self._body = max(model.below, 1)
        self._frames = 0
        self._outlines_limit = outline_limit(model)

    def set_zones(self, zones: Sequence[Zone]) -> None:
        """Count these zones from the next frame on (the background and everything learnt stay)."""
        m = self.model
        masks = [zone_mask(z, m.width, m.height, m.cell) for z in zones]
        self.zones, self._masks = tuple(zones), masks

    @property
    def background(self) -> np.ndarray:
        """The current background (uint8 BGR), e.g. to check what the counter sees as empty."""
        return self._background.image

    def count(self, image: np.ndarray, time: float = 0.0) -> FrameCount:
        """Count people in a BGR uint8 frame (resized to the model's size if it differs)."""
        m = self.model
        image = shrink(image, (m.width, m.height))
        trees = self._density
        grid = extract_features(
            image,
            self._background,
            self._roi,
            self._cell_weight,
            m.cell,
            texture=trees is not None,
            edge_weight=self._edge_weight,
        )
        density = (grid.values @ m.total_weights).astype(np.float32)
        if trees is not None:
            density = trees.predict(design(grid.values, grid.texture, self._cell_weight, m.below), density)
        total = max(float(density.sum()), 0.0)
        zones = tuple(
            ZoneCount(zone=z.name, count=max(float((density * mask).sum()), 0.0))
            for z, mask in zip(self.zones, self._masks, strict=True)
        )
        self._frames += 1
        bg = self._background
        view = check_view(grid.gain, grid.outlines_kept, grid.saturation, bg.saturation, self._outlines_limit)
        # a frame unlike the scene (a turned camera, night) must not be blended into the empty scene
        if self._adapt_rate > 0 and self._frames % self._adapt_every == 0 and view.problem is None:
            self._adapt(image, grid.change, grid.gain, density)
        return FrameCount(time=time, total=total, zones=zones, density=density, view=view)

    def _adapt(self, image: np.ndarray, change: np.ndarray, gain: float, density: np.ndarray) -> None:
        m = self.model
        heads = (density > _OCCUPIED).astype(np.uint8)
        # a head occupies its cell, the cells around it and its body below (a kernel reaching up from each cell)
        kernel = np.ones((self._body + 2, 3), np.uint8)
        occupied = cv2.dilate(heads, kernel, anchor=(1, self._body), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        free_cells = cv2.resize(1 - occupied, (m.width, m.height), interpolation=cv2.INTER_NEAREST)
        free = (free_cells > 0) & (change < _ADAPT_CHANGE)
        self._background.update(image, gain, free, self._adapt_rate)
