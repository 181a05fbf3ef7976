"""Per-cell appearance features of a frame against the camera's background.

Every feature is a map over a grid of square cells (16 px at 640x480): the share of each cell
that differs from the background at several strengths, how much the gradients changed, edges
that the background does not have, and those changes split by orientation. Features are
multiplied by the perspective weight of the cell, so a far (small) person and a near (large)
one weigh about the same and a linear model of the features is a density: its value per
cell is people in that cell, and its sum over a zone is the zone's count.

Beside them, ``texture`` describes the frame itself, whatever the background: the gradient
energy per cell in eight orientation bins (a coarse HOG). Bodies, heads and shoulders have
outlines that empty floor does not, and where people overlap near the camera the changed area
stops growing with their number while their outlines still do.

The background is the median of the calibration frames. It adapts slowly at run time, but
only where the counter sees nobody (see :class:`Background`): people who stand still, which a
gathering is, stay in the count.

Each frame is first brought to the background's brightness (its median ratio to it), so a
cloud, dusk or the camera's exposure does not scale people's contrast and texture away. Two
measures say whether the frame still shows the scene the camera was calibrated on: the share of
the background's outlines it keeps (a camera that was turned, covered or fogged keeps few) and
its colour (an infrared night picture has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

__all__ = [
    "AREA_FEATURES",
    "FEATURE_NAMES",
    "ORIENTATIONS",
    "Background",
    "FeatureGrid",
    "cell_pool",
    "extract_features",
    "saturation_of",
    "shrink",
]

FEATURE_NAMES: tuple[str, ...] = (
    "changed_12",  # share of the cell whose colour differs from the background by more than 12 levels
    "changed_20",
    "changed_35",
    "changed_60",
    "change_mean",  # mean colour difference (capped at 100), / 100
    "gradient_change",  # |gradient - background gradient| (capped at 300), / 300
    "new_gradient",  # gradient magnitude above the background's (capped at 300), / 300
    "new_edges",  # Canny edges not within a pixel of a background edge
    "gradient_change_horizontal",  # gradient_change x cos^2 of the frame's gradient angle
    "gradient_change_vertical",  # ... x sin^2
    "gradient_change_diagonal",  # ... x sin cos (signed)
)
AREA_FEATURES = 5  # FEATURE_NAMES[:5] measure area (a person's grows with the square of their size); the rest
# measure outlines, which grow with their size: weighted by the square root of the perspective weight when the
# camera's model says so (CameraModel.edge_weight)
ORIENTATIONS = 8  # bins of the frame's gradient direction (signed, 45 degrees each) in ``texture``
_THRESHOLDS = (12, 20, 35, 60)
_CANNY = (50, 120)
_NEAR = np.ones((3, 3), np.uint8)  # "within a pixel"


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` brought to ``size`` (width, height) by area averaging, as calibration and counting both see a
    frame; unchanged when it has that size. A whole factor goes first (1920x1080 to 640x360 averages 3 x 3
    pixels, which OpenCV does twice as fast as a fractional factor) and the few per cent left (360 rows to
    352) are interpolated: 3.1 ms a 1080p frame instead of 6.4 on this project's 2-core host."""
    h, w = image.shape[:2]
    width, height = size
    if (w, h) == (width, height):
        return image
    k = min(w // width, h // height)
    if k >= 2 and w % k == 0 and h % k == 0:
        image = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        if (w, h) == (width, height):
            return image
        if w < 1.5 * width and h < 1.5 * height:  # too little left to alias
            return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def cell_pool(image: np.ndarray, cell: int) -> np.ndarray:
    """Mean of ``image`` over each ``cell`` x ``cell`` square (any number of channels)."""
    h, w = image.shape[:2]
    return cv2.resize(image, (w // cell, h // cell), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True, slots=True)
class FeatureGrid:
    """Features of one frame: ``values[row, col, feature]``, already perspective-weighted."""

    values: np.ndarray  # float32, (rows, cols, len(FEATURE_NAMES))
    texture: np.ndarray | None  # float32 (rows, cols, ORIENTATIONS): the frame's mean gradient magnitude / 100 per
    # direction; None when not asked for (a linear density does not use it)
    change: np.ndarray  # uint8 (H, W): per-pixel colour difference to the background (for adaptation)
    gain: float  # global brightness of the frame relative to the background
    outlines_kept: float  # share of the background's outlines the frame still has (within a pixel)
    saturation: float  # the frame's median colour saturation (0-255)


class Background:
    """The empty scene and its derived maps, with a slow update gated by where people are."""

    def __init__(self, image: np.ndarray) -> None:
        self._image = image.astype(np.float32)
        self.outline: np.ndarray | None = None
        self._refresh()

    @property
    def image(self) -> np.ndarray:
        """The background as uint8 BGR."""
        return self._u8

    def _refresh(self) -> None:
        self._u8 = np.clip(self._image + 0.5, 0, 255).astype(np.uint8)
        gray = cv2.cvtColor(self._u8, cv2.COLOR_BGR2GRAY)
        self.gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        self.gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        self.magnitude = cv2.magnitude(self.gx, self.gy)
        self.not_edges = cv2.bitwise_not(cv2.dilate(cv2.Canny(gray, *_CANNY), _NEAR))
        # the scene's outlines for the view check: where its strongest tenth of gradients were at the
        # start (at most 20,000 of them), with their gradients as the background now has them
        flat = self.magnitude.ravel()
        if self.outline is None:
            outline = np.flatnonzero(flat > max(float(np.percentile(flat, 90)), 20.0))
            self.outline = outline[:: max(1, outline.size // 20000)]
        self.outline_g = (self.gx.ravel()[self.outline], self.gy.ravel()[self.outline], flat[self.outline])
        self.saturation = saturation_of(self._u8)
        self._roi_f: tuple[np.ndarray, np.ndarray] | None = None
        self._sample = self._u8[::8, ::8].reshape(-1, 3).sum(axis=1).astype(np.float32) + 1.0

    def roi_f(self, roi: np.ndarray) -> np.ndarray:
        """``roi`` as float32, cached."""
        if self._roi_f is None or self._roi_f[0] is not roi:
            self._roi_f = (roi, roi.astype(np.float32))
        return self._roi_f[1]

    def gain_of(self, frame: np.ndarray) -> float:
        """Brightness of ``frame`` relative to the background: the median ratio, so people barely move it."""
        sample = frame[::8, ::8].reshape(-1, 3).sum(axis=1).astype(np.float32) + 1.0
        return float(np.median(sample / self._sample))

    def update(self, frame: np.ndarray, gain: float, free: np.ndarray, rate: float) -> None:
        """Blend ``frame`` into the background where ``free`` (bool, H x W) says nobody is there."""
        if rate <= 0 or not free.any():
            return
        target = frame.astype(np.float32) * (1.0 / gain)
        blended = cv2.addWeighted(self._image, 1.0 - rate, target, rate, 0.0)
        np.copyto(self._image, blended, where=free[:, :, None])
        self._refresh()


def extract_features(
    frame: np.ndarray,
    background: Background,
    roi: np.ndarray,
    cell_weight: np.ndarray,
    cell: int,
    *,
    texture: bool = True,
    edge_weight: np.ndarray | None = None,
) -> FeatureGrid:
    """Features of a BGR uint8 ``frame``.

    ``roi`` is the counted region (uint8 0/1, H x W); ``cell_weight`` the mean perspective weight of the
    counted part of each cell (rows x cols). Maps are pooled per cell first and weighted after: the
    perspective barely changes within a cell, and it keeps the per-pixel work in OpenCV. ``edge_weight``
    (rows x cols) weighs the outline features instead of ``cell_weight`` (see :data:`AREA_FEATURES`).
    """
    # The frame is brought to the background's brightness before anything is measured: the
    # thresholds, gradients and texture are then in the calibration's units whether a cloud
    # passes or the lights dim (scaling the background instead leaves people's contrast scaled).
    gain = background.gain_of(frame)
    if abs(gain - 1.0) > 0.01:
        frame = cv2.convertScaleAbs(frame, alpha=1.0 / gain)
    b, g, r = cv2.split(cv2.absdiff(frame, background.image))
    change = cv2.multiply(cv2.max(cv2.max(b, g), r), roi)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.magnitude(gx, gy)
    roi_f = background.roi_f(roi)
    gradient_change = cv2.magnitude(cv2.subtract(gx, background.gx), cv2.subtract(gy, background.gy))
    gradient_change = cv2.multiply(cv2.min(gradient_change, 300.0), roi_f, scale=1.0 / 300.0)
    new_gradient = cv2.multiply(
        cv2.min(cv2.max(cv2.subtract(magnitude, background.magnitude), 0.0), 300.0), roi_f, scale=1.0 / 300.0
    )
    new_edges = cv2.bitwise_and(cv2.bitwise_and(cv2.Canny(gray, *_CANNY), background.not_edges), roi * 255)
    outlines_kept = _outlines_kept(gx, gy, background)
    # Orientation of the frame's gradient, weighted by how much it changed: cos^2, sin^2 and
    # sin*cos of its angle (the structure tensor), cheaper than atan2 bins and smooth.
    norm = cv2.add(cv2.multiply(magnitude, magnitude), 1e-3)
    weight = cv2.divide(gradient_change, norm)
    horizontal = cv2.multiply(cv2.multiply(gx, gx), weight)
    vertical = cv2.multiply(cv2.multiply(gy, gy), weight)
    diagonal = cv2.multiply(cv2.multiply(gx, gy), weight)
    # uint8 pooling rounds each cell mean to 1/255: far below the noise, and 3x cheaper than float.
    binary = cv2.merge([cv2.compare(change, t, cv2.CMP_GT) for t in _THRESHOLDS] + [change, new_edges])
    pooled_u8 = cell_pool(binary, cell).astype(np.float32) * (1.0 / 255.0)
    pooled_u8[:, :, 4] *= 255.0 / 100.0  # mean difference in units of 100 levels
    pooled_f = cell_pool(cv2.merge([gradient_change, new_gradient, horizontal, vertical, diagonal]), cell)
    values = np.concatenate([pooled_u8[:, :, :5], pooled_f[:, :, :2], pooled_u8[:, :, 5:6], pooled_f[:, :, 2:]], axis=2)
    values[:, :, :AREA_FEATURES] *= cell_weight[:, :, None]
    values[:, :, AREA_FEATURES:] *= (cell_weight if edge_weight is None else edge_weight)[:, :, None]
    energy = _orientation_energy(gx, gy, cell) if texture else None
    return FeatureGrid(
        values=values,
        texture=energy,
        change=change,
        gain=gain,
        outlines_kept=outlines_kept,
        saturation=saturation_of(frame),
    )


def _outlines_kept(gx: np.ndarray, gy: np.ndarray, background: Background) -> float:
    """Share of the empty scene's outlines the frame still has: a gradient there pointing the same way
    (within about 45 degrees) and at least half as strong. Over the whole picture people hide a few of
    them; a camera that was turned, a covered, fogged or defocused lens loses most."""
    index = background.outline
    if index is None or index.size == 0:
        return 1.0
    bx, by, bm = background.outline_g
    fx, fy = gx.ravel()[index], gy.ravel()[index]
    fm = np.sqrt(fx * fx + fy * fy)
    kept = (fx * bx + fy * by > 0.7 * fm * bm) & (fm > 0.5 * bm)
    return float(kept.mean())


def saturation_of(image: np.ndarray) -> float:
    """Median colour saturation (HSV S, 0-255) of a BGR image, from every eighth pixel."""
    sample = np.ascontiguousarray(image[::8, ::8])
    return float(np.median(cv2.cvtColor(sample, cv2.COLOR_BGR2HSV)[:, :, 1]))


@lru_cache(maxsize=8)
def _cell_index(height: int, width: int, cell: int) -> np.ndarray:
    """Per pixel, ``ORIENTATIONS`` x its cell's index (rows x cols of whole cells; the rest of the frame is dropped)."""
    rows, cols = height // cell, width // cell
    r = np.minimum(np.arange(height) // cell, rows)
    c = np.minimum(np.arange(width) // cell, cols)
    index = ((r[:, None] * (cols + 1) + c[None, :]) * ORIENTATIONS).astype(np.int64)
    index.setflags(write=False)
    return index


def _orientation_energy(gx: np.ndarray, gy: np.ndarray, cell: int) -> np.ndarray:
    """Mean gradient magnitude per cell and direction bin, / 100: (rows, cols, ORIENTATIONS)."""
    height, width = gx.shape
    rows, cols = height // cell, width // cell
    magnitude, angle = cv2.cartToPolar(gx, gy)
    bins = (angle * (ORIENTATIONS / (2 * np.pi))).astype(np.int64)
    np.minimum(bins, ORIENTATIONS - 1, out=bins)
    index = _cell_index(height, width, cell) + bins
    sums = np.bincount(index.ravel(), weights=magnitude.ravel(), minlength=(rows + 1) * (cols + 1) * ORIENTATIONS)
    grid = sums.reshape(rows + 1, cols + 1, ORIENTATIONS)[:rows, :cols]
    return (grid * (1.0 / (100.0 * cell * cell))).astype(np.float32)
