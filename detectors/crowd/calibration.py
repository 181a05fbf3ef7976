"""Fit a camera model from frames with known counts and head positions.

Two ridge regressions, both closed-form in numpy:

- the **count**: frame count ~ features summed over the frame, through the origin (no people,
  no change, no count), each feature scaled to unit variance before the penalty;
- the **spread**: the same features times a smooth basis over the frame (so that the weights
  may differ between the far and the near part), fitted to the people inside 5 x 5-cell
  blocks (each person's body spread around the point below their head) plus the frame
  totals; it only says where the count lies, so zones get their share.

The background is the per-pixel median of up to 200 calibration frames spread over the set,
leaving out where the labels put people: someone who sat on a bench through half the frames
would otherwise become part of the "empty" scene and be missing from later counts. (Measured
on Mall over five forward splits: mean MAE 2.42 with this against 2.52 with the plain median.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from detectors.crowd.camera import CameraModel
from detectors.crowd.counting import cell_weights, expand_features
from detectors.crowd.features import Background, extract_features
from detectors.crowd.labels import LabelledFrame

__all__ = ["CalibrationError", "calibrate", "person_height"]

_BACKGROUND_FRAMES = 200
_BLOCK = 5  # cells per side of a block for the spread model
_TOTAL_WEIGHT = 0.3  # weight of frame totals beside the blocks in the spread fit
_RIDGE = 1.0


class CalibrationError(Exception):
    """Calibration cannot go ahead; the message says why."""


def person_height(person_area: float, weight: np.ndarray | float) -> np.ndarray:
    """Height in pixels of a person where the perspective weight is ``weight`` (a person is 0.35 h wide)."""
    return np.sqrt(person_area / (0.35 * np.asarray(weight, np.float64)))


def calibrate(
    labels: Sequence[LabelledFrame],
    read: Callable[[LabelledFrame], np.ndarray],
    *,
    roi: np.ndarray | None = None,
    perspective: np.ndarray | None = None,
    person_height_px: float | None = None,
    cell: int = 16,
    ridge: float = _RIDGE,
    progress: Callable[[str, int, int], None] | None = None,
) -> CameraModel:
    """Fit a :class:`CameraModel`.

    ``read`` decodes a labelled frame to BGR uint8 (all of one size). ``person_height_px`` is a
    person's height where the perspective weight is 1 (default: 26 % of the frame height).
    """
    if len(labels) < 10:
        raise CalibrationError(f"calibration needs at least 10 labelled frames, got {len(labels)}")
    step = max(1, len(labels) // _BACKGROUND_FRAMES)
    sample = []
    for i, lf in enumerate(labels[::step]):
        sample.append(read(lf))
        if progress:
            progress("background", i + 1, len(labels[::step]))
    height, width = sample[0].shape[:2]
    if any(im.shape != sample[0].shape for im in sample):
        raise CalibrationError("calibration frames differ in size")
    if height % cell or width % cell:
        raise CalibrationError(f"frame size {width}x{height} is not a multiple of the {cell}-pixel cell")
    roi_mask = np.ones((height, width), np.uint8) if roi is None else (roi > 0).astype(np.uint8)
    weight_map = np.ones((height, width), np.float32) if perspective is None else perspective.astype(np.float32)
    if roi_mask.shape != (height, width) or weight_map.shape != (height, width):
        raise CalibrationError(f"ROI/perspective size {roi_mask.shape[::-1]} differs from the frames {width}x{height}")
    person_area = 0.35 * (person_height_px or 0.26 * height) ** 2
    sampled = labels[::step]
    if all(lf.heads or lf.count == 0 for lf in sampled):
        masks = [_people_mask(lf, weight_map, person_area) for lf in sampled]
        background = _median_without(sample, masks)
    else:
        background = np.median(np.stack(sample), axis=0).astype(np.uint8)
    del sample

    bg = Background(background)
    cw = cell_weights(roi_mask, weight_map, cell)
    grids, counts, spreads = [], [], []
    for i, lf in enumerate(labels):
        image = read(lf)
        if image.shape[:2] != (height, width):
            raise CalibrationError(f"{lf.frame}: size {image.shape[1]}x{image.shape[0]}, expected {width}x{height}")
        grids.append(extract_features(image, bg, roi_mask, cw, cell).values)
        counts.append(float(lf.count))
        spreads.append(_spread_target(lf, roi_mask, weight_map, person_area, cell) if lf.heads else None)
        if progress:
            progress("features", i + 1, len(labels))
    values = np.stack(grids).astype(np.float64)  # frames, rows, cols, features
    y = np.array(counts)
    totals = values.sum(axis=(1, 2))
    total_weights = _ridge(totals, y, ridge)
    fitted = totals @ total_weights

    with_heads = [i for i, s in enumerate(spreads) if s is not None]
    if with_heads:
        expanded = np.stack([expand_features(values[i]) for i in with_heads])
        blocks_x = _blocks(expanded)
        blocks_y = _blocks(np.stack([spreads[i] for i in with_heads])[..., None])[:, 0]
        x = np.concatenate([blocks_x, _TOTAL_WEIGHT * expanded.sum(axis=(1, 2))])
        t = np.concatenate([blocks_y, _TOTAL_WEIGHT * y[with_heads]])
        shape_weights = _ridge(x, t, ridge)
    else:
        # no head positions: spread the count like the count model does (the basis sums to 1)
        nodes = expand_features(values[0]).shape[-1] // values.shape[-1]
        shape_weights = np.tile(total_weights, nodes)
    residual = fitted - y
    return CameraModel(
        width=width,
        height=height,
        cell=cell,
        background=background,
        roi=roi_mask,
        perspective=weight_map,
        total_weights=total_weights,
        shape_weights=shape_weights,
        person_area=float(person_area),
        fit={
            "frames": len(labels),
            "frames_with_heads": len(with_heads),
            "ridge": ridge,
            "train_mae": round(float(np.abs(residual).mean()), 4),
            "train_rmse": round(float(np.sqrt((residual**2).mean())), 4),
            "first_frame": labels[0].frame,
            "last_frame": labels[-1].frame,
        },
    )


def _people_mask(lf: LabelledFrame, weight_map: np.ndarray, person_area: float) -> np.ndarray:
    """Where the labelled people of a frame are (bool, H x W), generously: body, bags and shadow."""
    height, width = weight_map.shape
    mask = np.zeros((height, width), np.uint8)
    for x, y in lf.heads:
        r = min(max(int(y), 0), height - 1)
        c = min(max(int(x), 0), width - 1)
        h = float(person_height(person_area, weight_map[r, c]))
        centre = (int(round(x)), int(round(y + 0.45 * h)))
        cv2.ellipse(mask, centre, (max(2, int(0.35 * h)), max(3, int(0.65 * h))), 0, 0, 360, 1, -1)
    return mask > 0


def _median_without(frames: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel median over the frames where no labelled person covers the pixel.

    A pixel covered in every frame (someone sat there throughout) takes the plain median.
    Worked in bands of rows to keep the float stack small.
    """
    height = frames[0].shape[0]
    out = np.empty(frames[0].shape, np.uint8)
    band = 32
    for r0 in range(0, height, band):
        stack = np.stack([f[r0 : r0 + band] for f in frames]).astype(np.float32)
        covered = np.stack([m[r0 : r0 + band] for m in masks])
        plain = np.median(stack, axis=0)
        stack[covered] = np.nan
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: handled below
            free = np.nanmedian(stack, axis=0)
        free = np.where(np.isnan(free), plain, free)
        out[r0 : r0 + band] = np.clip(free + 0.5, 0, 255).astype(np.uint8)
    return out


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge regression through the origin on unit-variance columns; weights for the raw columns."""
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = x / scale
    w = np.linalg.solve(z.T @ z + penalty * np.eye(z.shape[1]), z.T @ y)
    return w / scale


def _blocks(values: np.ndarray) -> np.ndarray:
    """Sum (frames, rows, cols, k) over _BLOCK x _BLOCK cells -> (frames * blocks, k); short edges join a block."""
    n, rows, cols, k = values.shape
    row_edges = _edges(rows)
    col_edges = _edges(cols)
    out = np.add.reduceat(np.add.reduceat(values, row_edges, axis=1), col_edges, axis=2)
    return out.reshape(-1, k)


def _edges(n: int) -> np.ndarray:
    edges = list(range(0, n, _BLOCK))
    if len(edges) > 1 and n - edges[-1] < _BLOCK:
        edges.pop()  # a short last block joins the one before
    return np.array(edges)


def _spread_target(
    lf: LabelledFrame, roi: np.ndarray, weight_map: np.ndarray, person_area: float, cell: int
) -> np.ndarray:
    """Where the frame's people are, per cell: each body as a Gaussian below its head, summing to 1 each."""
    height, width = roi.shape
    rows, cols = height // cell, width // cell
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    yy = (yy + 0.5) * cell
    xx = (xx + 0.5) * cell
    inside = roi.reshape(rows, cell, cols, cell).mean(axis=(1, 3))
    target = np.zeros((rows, cols))
    for x, y in lf.heads:
        r = min(max(int(y), 0), height - 1)
        c = min(max(int(x), 0), width - 1)
        h = float(person_height(person_area, weight_map[r, c]))
        sx, sy = max(0.2 * h, cell / 2), max(0.35 * h, cell / 2)
        g = np.exp(-0.5 * (((xx - x) / sx) ** 2 + ((yy - (y + 0.4 * h)) / sy) ** 2)) * inside
        s = g.sum()
        if s > 0:
            target += g / s
    return target
