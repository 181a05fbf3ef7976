"""Fit a camera model from frames with known counts and head positions.

- the **density model** (see ``density``): boosted trees that learn the labelled heads in
  each cell from the cell's features and its neighbourhood, for frames with head positions;
- a **linear density**: frame count ~ features summed over the frame, a ridge regression
  through the origin (no people, no change, no count) on unit-variance columns, closed-form.
  It counts when the labels have counts but no head positions (or fewer than 10 frames have
  them), its fit is reported beside the density model's, and from 10-19 frames with heads it
  gives each frame's total that the trees spread.

The background is the per-pixel median of up to 200 calibration frames spread over the set,
leaving out where the labels put people: someone who sat on a bench through half the frames
would otherwise become part of the "empty" scene and be missing from later counts. (Measured
on Mall over five forward splits: mean MAE 2.42 with this against 2.52 with the plain median.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace

import cv2
import numpy as np

from detectors.crowd.camera import CameraModel
from detectors.crowd.counting import cell_weights, counted_cells
from detectors.crowd.density import DensityModel, below_cells, design, keep_total, row_profile
from detectors.crowd.features import AREA_FEATURES, Background, extract_features, saturation_of, shrink
from detectors.crowd.labels import LabelledFrame

__all__ = ["MAX_WIDTH", "METHODS", "CalibrationError", "calibrate", "person_height", "working_size"]

METHODS = ("auto", "linear", "trees")
MAX_WIDTH = 640  # frames wider than this are counted at this width by default: the features' cost is per pixel

_BACKGROUND_FRAMES = 200
_COLOURFUL = 20.0  # median saturation of a colour picture (an infrared one has about none)
_RIDGE = 1.0
_MAX_DENSITY_ROWS = 2_000_000  # cells (of all frames) the density model trains on; more frames are thinned
_FOLDS = 4  # blocks of consecutive frames held out in turn when choosing the model
_MIN_TO_CHOOSE = 20  # frames with heads "auto" needs to hold a quarter out; with fewer (from _MIN_TREES) the trees
# spread the linear density's total (see density)
_MIN_TREES = 10


class CalibrationError(Exception):
    """Calibration cannot go ahead; the message says why."""


def person_height(person_area: float, weight: np.ndarray | float) -> np.ndarray:
    """Height in pixels of a person where the perspective weight is ``weight`` (a person is 0.35 h wide)."""
    return np.sqrt(person_area / (0.35 * np.asarray(weight, np.float64)))


def working_size(width: int, height: int, cell: int, *, max_width: int = MAX_WIDTH) -> tuple[int, int]:
    """The size a camera of ``width`` x ``height`` is counted at: at most ``max_width`` wide, never
    enlarged, the aspect kept, each side rounded to whole cells (a 1920x1080 camera: 640x352)."""
    if width <= 0 or height <= 0:
        raise CalibrationError(f"frame size {width}x{height}: expected positive")
    scale = min(1.0, max_width / width)
    return (max(cell, round(width * scale / cell) * cell), max(cell, round(height * scale / cell) * cell))


def _fit_to(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """``image`` resized to ``size`` (width, height) unless it already has that size."""
    if image.shape[1::-1] == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST) if nearest else shrink(image, size)


def calibrate(
    labels: Sequence[LabelledFrame],
    read: Callable[[LabelledFrame], np.ndarray],
    *,
    roi: np.ndarray | None = None,
    perspective: np.ndarray | None = None,
    person_height_px: float | None = None,
    cell: int = 16,
    size: tuple[int, int] | None = None,
    ridge: float = _RIDGE,
    rounds: int | None = None,
    threads: int = 0,
    method: str = "auto",
    progress: Callable[[str, int, int], None] | None = None,
) -> CameraModel:
    """Fit a :class:`CameraModel`.

    ``read`` decodes a labelled frame to BGR uint8 (all of one size). ``person_height_px`` is a
    person's height where the perspective weight is 1 (default: 26 % of the frame height).
    The density model learns from the frames with head positions (at least 10 are needed; else
    the linear density counts); ``rounds`` sets its boosting rounds (default 150) and
    ``threads`` its training threads (0: all cores). ``method`` is ``auto`` (the better of the
    linear density and the trees on held-out frames, see :func:`_choose`), ``linear`` or ``trees``.
    """
    if method not in METHODS:
        raise CalibrationError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    if len(labels) < 10:
        raise CalibrationError(f"calibration needs at least 10 labelled frames, got {len(labels)}")
    step = max(1, len(labels) // _BACKGROUND_FRAMES)
    sample: list[np.ndarray] = []
    for i, lf in enumerate(labels[::step]):
        image = read(lf)
        if not sample:
            source_height, source_width = image.shape[:2]
            width, height = size or working_size(source_width, source_height, cell)
            if height % cell or width % cell or width <= 0 or height <= 0:
                raise CalibrationError(f"size {width}x{height} is not a whole number of {cell}-pixel cells")
        elif image.shape[:2] != (source_height, source_width):
            raise CalibrationError("calibration frames differ in size")
        sample.append(_fit_to(image, (width, height)))  # a sample of 1080p frames at full size would take 1.2 GB
        if progress:
            progress("background", i + 1, len(labels[::step]))
    _one_light(sample, labels[::step])
    sx, sy = width / source_width, height / source_height
    given = [m for m in (roi, perspective) if m is not None]
    for m in given:
        if m.shape[:2] not in ((source_height, source_width), (height, width)):
            raise CalibrationError(
                f"ROI/perspective size {m.shape[1]}x{m.shape[0]} differs from the frames {source_width}x{source_height}"
            )
    counted_px = np.ones((height, width), np.uint8) if roi is None else (roi > 0).astype(np.uint8)
    roi_mask = _fit_to(counted_px, (width, height), nearest=True)
    weight_map = (
        np.ones((height, width), np.float32)
        if perspective is None
        else _fit_to(perspective.astype(np.float32), (width, height))
    )
    if person_height_px is not None:
        person_height_px *= sy
    person_area = 0.35 * (person_height_px or 0.26 * height) ** 2
    if (sx, sy) != (1.0, 1.0):
        labels = [replace(lf, heads=tuple((x * sx, y * sy) for x, y in lf.heads)) for lf in labels]
    sampled = labels[::step]
    if all(lf.heads or lf.count == 0 for lf in sampled):
        masks = [_people_mask(lf, weight_map, person_area) for lf in sampled]
        background = _median_without(sample, masks)
    else:
        background = np.median(np.stack(sample), axis=0).astype(np.uint8)
    del sample

    bg = Background(background)
    cw = cell_weights(roi_mask, weight_map, cell)
    counted = counted_cells(roi_mask, cell)
    below = below_cells(person_height_px or 0.26 * height, cell)
    located = [i for i, lf in enumerate(labels) if lf.heads or lf.count == 0]
    if method == "trees" and len(located) < _MIN_TREES:
        raise CalibrationError(
            f"density trees need at least {_MIN_TREES} frames with head positions, got {len(located)}"
        )
    with_heads = method == "trees" or (method == "auto" and len(located) >= _MIN_TREES)
    handful = method == "auto" and len(located) < _MIN_TO_CHOOSE  # too few to hold some out
    thin = max(1, -(-len(located) * int(counted.sum()) // _MAX_DENSITY_ROWS))
    learn = set(located[::thin]) if with_heads else set()
    totals, counts, inputs, heads, values, kept = [], [], [], [], [], []
    # The outline features weighted by the square root of the perspective weight instead (see AREA_FEATURES):
    # the held-out quarters choose between the two when they choose the density model.
    choose_edges = with_heads and not handful
    to_sqrt = np.where(cw > 0, 1.0 / np.sqrt(np.maximum(cw, 1e-12)), 0.0).astype(np.float32)[:, :, None]
    totals_s, inputs_s, values_s = [], [], []
    for i, lf in enumerate(labels):
        image = read(lf)
        if image.shape[:2] != (source_height, source_width):
            raise CalibrationError(
                f"{lf.frame}: size {image.shape[1]}x{image.shape[0]}, expected {source_width}x{source_height}"
            )
        image = _fit_to(image, (width, height))
        grid = extract_features(image, bg, roi_mask, cw, cell, texture=i in learn)
        totals.append(grid.values.reshape(-1, grid.values.shape[2]).sum(axis=0))
        kept.append(grid.outlines_kept)
        counts.append(float(lf.count))
        if choose_edges:
            rooted = grid.values.copy()
            rooted[:, :, AREA_FEATURES:] *= to_sqrt
            totals_s.append(rooted.reshape(-1, rooted.shape[2]).sum(axis=0))
        if i in learn:
            inputs.append(design(grid.values, grid.texture, cw, below))
            values.append(grid.values)
            heads.append(_heads_per_cell(lf, roi_mask.shape, cell))
            if choose_edges:
                inputs_s.append(design(rooted, grid.texture, cw, below))
                values_s.append(rooted)
        if progress:
            progress("features", i + 1, len(labels))
    x_total = np.stack(totals).astype(np.float64)
    y = np.array(counts)
    total_weights = _ridge(x_total, y, ridge)
    why = (
        "asked for"
        if method == "linear"
        else f"too few frames with heads ({len(located)}) for the trees; 50-100 labelled frames count better"
    )
    fit: dict[str, object] = {"method": "linear density", "chosen_by": why}
    fitted = x_total @ total_weights
    edge_weight = "weight"
    density = None
    kept_profile: np.ndarray | None = None
    spread = False  # the trees spread the linear density's count (CameraModel.linear_total)
    if with_heads:
        inputs_a, heads_a, values_a = np.stack(inputs), np.stack(heads), np.stack(values)
        del inputs, values
        picked = sorted(learn)
        profile: np.ndarray | None = None
        if handful:
            spread = True
            choice: dict[str, object] = {
                "method": "density trees",
                "chosen_by": f"{len(located)} frames with heads, too few to hold some out: the trees place the"
                " people, the linear density counts each frame; 50-100 labelled frames count better",
            }
        else:
            # the cross-validation runs when the trees are asked for too: it measures their row profile; once per
            # weighting of the outline features, the lower held-out error kept
            variants = {
                "weight": (inputs_a, values_a, x_total),
                "sqrt": (np.stack(inputs_s), np.stack(values_s), np.stack(totals_s).astype(np.float64)),
            }
            del inputs_s, values_s
            chosen = {
                name: _choose(
                    v_inputs,
                    heads_a,
                    v_values,
                    v_total[picked],
                    y[picked],
                    counted,
                    ridge=ridge,
                    rounds=rounds,
                    threads=threads,
                    progress=progress,
                )
                for name, (v_inputs, v_values, v_total) in variants.items()
            }
            scored = {name: _best_score(c, method) for name, (c, _) in chosen.items()}
            edge_weight = min(scored, key=scored.__getitem__)  # "weight" on a tie: listed first
            choice, profile = chosen[edge_weight]
            if edge_weight != "weight":
                inputs_a, values_a, x_total = variants[edge_weight]
                total_weights = _ridge(x_total, y, ridge)
                fitted = x_total @ total_weights
            del variants
            choice["edge_weight_held_out"] = {k: round(v, 4) for k, v in scored.items()}
            spread = bool(choice.pop("linear_total"))
        if method == "trees":
            choice = {**choice, "method": "density trees", "chosen_by": "asked for"}
            spread = False
        fit.update(choice)
        if choice["method"] == "density trees":
            base = values_a @ total_weights
            model = DensityModel.train(
                inputs_a, heads_a, base, counted, rounds=rounds, threads=threads, progress=progress
            )
            model.linear_total = spread
            density = model.to_text()
            fitted = np.array([float(model.predict(x, b).sum()) for x, b in zip(inputs_a, base, strict=True)])
            y = y[picked]
            kept_profile = profile
            if profile is not None:
                fit["row_profile"] = [round(float(v), 3) for v in profile]
    residual = fitted - y
    return CameraModel(
        width=width,
        height=height,
        cell=cell,
        background=background,
        roi=roi_mask,
        perspective=weight_map,
        total_weights=total_weights,
        person_area=float(person_area),
        density=density,
        below=below,
        row_profile=kept_profile,
        linear_total=spread,
        edge_weight=edge_weight,
        fit={
            **fit,
            "edge_weight": edge_weight,
            "frames": len(labels),
            "ridge": ridge,
            "train_mae": round(float(np.abs(residual).mean()), 4),
            "train_rmse": round(float(np.sqrt((residual**2).mean())), 4),
            "source_size": [source_width, source_height],
            # how much of the empty scene's outlines the calibration frames keep: the run-time view check's reference
            "view": {"outlines_kept_p5": round(float(np.percentile(kept, 5)), 4)},
            "first_frame": labels[0].frame,
            "last_frame": labels[-1].frame,
        },
    )


def _one_light(sample: list[np.ndarray], labels: Sequence[LabelledFrame]) -> None:
    """Refuse calibration frames of two lights (infrared night pictures or dark ones among day ones):
    their median would be neither scene. Night frames make the camera's night model."""
    saturation = np.array([saturation_of(image) for image in sample])
    brightness = np.array([float(image[::8, ::8].mean()) + 1.0 for image in sample])
    colourful = saturation >= _COLOURFUL
    odd: list[int] = []
    what = ""
    if colourful.sum() >= len(sample) / 2:
        odd = [i for i in range(len(sample)) if saturation[i] < 0.2 * float(np.median(saturation[colourful]))]
        what = "have no colour (infrared night pictures?) among colour ones"
    if not odd:
        odd = [i for i in range(len(sample)) if brightness[i] < 0.4 * float(np.median(brightness))]
        what = "are under 0.4x the others' brightness (night?)"
    if odd:
        names = ", ".join(labels[i].frame for i in odd[:3]) + (" ..." if len(odd) > 3 else "")
        raise CalibrationError(
            f"{len(odd)} of the {len(sample)} frames sampled for the background {what}: {names}."
            " One model is one light: calibrate those frames apart as the camera's night model"
            " (crowd.night_model) and leave them out of this one"
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


def _choose(
    inputs: np.ndarray,
    heads: np.ndarray,
    values: np.ndarray,
    x_total: np.ndarray,
    y: np.ndarray,
    counted: np.ndarray,
    *,
    ridge: float,
    rounds: int | None,
    threads: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[dict[str, object], np.ndarray]:
    """Linear density, density trees, or the trees spreading the linear density's count of each frame
    (``linear_total`` in the answer) for this camera, by measurement on its own frames, and the trees'
    row profile (:func:`~detectors.crowd.density.row_profile`) from the same held-out frames.

    Blocked cross-validation: each quarter of the frames (in their order, consecutive frames
    being alike) is held out in turn, both are fitted on the other three quarters and scored
    on it (the third from the same two fits); the score over all the held-out frames is the
    error of the frame count plus the mean error of the counts in a 4 x 4 grid of regions (where
    zones are drawn). The best one is then fitted on every frame. Trees need a scene whose crowds
    the linear density gets wrong (people overlapping near the camera); on well-separated people
    the linear density generalises better.

    One held-out quarter is not enough: on Mall 1-600 the last quarter alone scored the linear
    density 2.90 against 2.96 for the trees, and the linear density then counted 601-800 with
    MAE 2.46 against 1.70; over the four quarters it is 4.27 against 2.84.

    Needs ``_MIN_TO_CHOOSE`` frames; with fewer (from ``_MIN_TREES``), :func:`calibrate` fits
    the trees to spread the linear density's frame total: on Mall, 12 or 19 frames spread over
    1-600 count 601-800 with MAE 2.1 linear against 2.6-2.8 for the trees (2.0 against 1.9 from
    40 frames), but the linear density's zone counts are far off (see ``density``).
    """
    n = len(y)
    bounds = [(k * n) // _FOLDS for k in range(_FOLDS + 1)]
    linear, tree_density = [], []
    for k in range(_FOLDS):
        held = np.arange(bounds[k], bounds[k + 1])
        fit = np.setdiff1d(np.arange(n), held)
        weights = _ridge(x_total[fit], y[fit], ridge)
        held_linear = values[held] @ weights

        def report(_what: str, done: int, total: int, k: int = k) -> None:
            assert progress is not None
            progress(f"choosing the model ({k + 1}/{_FOLDS})", done, total)

        trees = DensityModel.train(
            inputs[fit],
            heads[fit],
            values[fit] @ weights,
            counted,
            rounds=rounds,
            threads=threads,
            progress=report if progress else None,
        )
        linear.append(held_linear)
        tree_density.append(np.stack([trees.predict(x, b) for x, b in zip(inputs[held], held_linear, strict=True)]))
    truth = heads
    linear_a, trees_a = np.concatenate(linear), np.concatenate(tree_density)
    mask = counted.astype(bool)
    spread = np.stack([keep_total(t, float(b[mask].sum())) for t, b in zip(trees_a, linear_a, strict=True)])
    scores = {
        "linear density": _held_out_error(linear_a, truth),
        "density trees": _held_out_error(trees_a, truth),
        "spread": _held_out_error(spread, truth),
    }
    best = min(scores, key=scores.get)
    profile = row_profile(trees_a, truth)
    return {
        "method": "density trees" if best == "spread" else best,
        "chosen_by": f"held-out error, each quarter of the {n} frames with heads held out in turn"
        " (count MAE + 4x4 region MAE)"
        + ("; the trees spread the linear density's count of each frame" if best == "spread" else ""),
        "held_out_linear": round(scores["linear density"], 4),
        "held_out_trees": round(scores["density trees"], 4),
        "held_out_spread": round(scores["spread"], 4),
        "linear_total": best == "spread",
    }, profile


def _best_score(choice: dict[str, object], method: str) -> float:
    """The held-out error of what :func:`_choose` would keep (the trees' when they are asked for)."""
    if method == "trees":
        return float(choice["held_out_trees"])  # type: ignore[arg-type]
    return min(float(choice[k]) for k in ("held_out_linear", "held_out_trees", "held_out_spread"))  # type: ignore[arg-type]


def _held_out_error(density: np.ndarray, truth: np.ndarray) -> float:
    """Count MAE plus the mean absolute error of the counts in a 4 x 4 grid of regions."""
    count = float(np.abs(density.sum(axis=(1, 2)) - truth.sum(axis=(1, 2))).mean())
    rows = np.array_split(np.arange(density.shape[1]), 4)
    cols = np.array_split(np.arange(density.shape[2]), 4)
    region = [
        np.abs(density[:, r][:, :, c].sum(axis=(1, 2)) - truth[:, r][:, :, c].sum(axis=(1, 2))).mean()
        for r in rows
        for c in cols
    ]
    return count + float(np.mean(region))


def _heads_per_cell(lf: LabelledFrame, shape: tuple[int, int], cell: int) -> np.ndarray:
    """How many labelled heads fall in each cell (rows x cols); heads off the frame are dropped."""
    height, width = shape
    rows, cols = height // cell, width // cell
    out = np.zeros((rows, cols), np.float32)
    for x, y in lf.heads:
        r, c = int(y // cell), int(x // cell)
        if 0 <= r < rows and 0 <= c < cols:
            out[r, c] += 1.0
    return out
