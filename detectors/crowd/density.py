"""The density model: people per cell from a cell's features and its neighbourhood, learnt per camera.

At calibration, gradient-boosted trees with linear leaves (LightGBM) learn the number of
labelled heads in each cell from that cell's features (the change against the background
and the frame's own texture, see ``features``), the same features averaged over the 3 x 3
and 7 x 7 cells around it and over the cells below it (where a head's body is), and the
cell's perspective weight. Counting sums the predicted density: the frame's count is its
sum, a zone's count the sum inside its polygon, and both follow the heads, which is how
labelled zone counts are defined.

Why trees over the neighbourhood rather than one linear model of the features: near the
camera people overlap, and the changed area stops growing with their number, so a linear
density compresses zone counts towards their mean on frames it did not see (measured on
Mall, held out: the centre zone's predicted count had 0.55-0.60 of the true spread; with
this model its slope against the truth is 0.9-1.1). Linear leaves keep the trees able to
count past the largest crowd of the calibration frames.

The trees' zone counts hold a bias by depth (on Mall, held out: the band where people sit on
benches counted low, the far shop fronts high) that the frame's total does not show. Calibration
measures it on the frames each cross-validation fold held out (:func:`row_profile`) and the
counter moves people between rows of cells by it, keeping each frame's total
(:func:`spread_by_rows`): zone counts get closer, the frame's count is unchanged.

From a handful of frames (10-19 with heads, too few to hold some out) the trees still place
people better than the linear density but count the frame worse, so such a model keeps the
linear density's total for each frame and spreads it as the trees do (``linear_total``). On
Mall, calibrated on 10 or 15 frames spread over 1-600 and counting 601-800 (six draws), over a
4 x 4 grid of regions the counts' MAE was 0.77-0.88 spread so, 0.78-0.92 for the trees alone and
1.19-1.41 for the linear density; the frame's 1.8-3.8 (the linear density's) against 2.4-5.5 for
the trees alone (biased +1 to +5); the centre zone's 1.4-2.2, 1.0-1.3 and 3.3-4.6 (the linear
density put that zone's people elsewhere). From 30 frames on, the linear density's total runs
low (-1 to -2.5) and the trees alone are better.

The trees are kept as LightGBM's own text format inside the camera model file: no pickle.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["DensityModel", "below_cells", "design", "keep_total", "row_profile", "spread_by_rows"]


def _lightgbm():
    """The lightgbm module, or an ImportError that says what to install."""
    try:
        import lightgbm
    except OSError as exc:  # the wheel is there but its OpenMP runtime is not
        raise ImportError(f"lightgbm cannot load ({exc}): install OpenMP (Debian: apt-get install libgomp1)") from exc
    return lightgbm


# 150 rounds at rate 0.1 rather than 300 at 0.05 (2026-12-03, Mall, --method trees, splits 1-600 / 1-500 /
# 1-400): count MAE 1.83 / 1.81 / 1.83 against 1.76 / 1.76 / 1.80, the same gathering F1, and half the
# prediction time (counting 601-800 with decoding: 38 fps on one core against 30, in the same run).
_ROUNDS = 150
_PARAMS = {
    "objective": "regression",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "linear_tree": True,
    "linear_lambda": 1.0,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


# The row profile (2026-12-03, Mall, calibrated on 1-600 / 1-500 / 1-400, the rest held out): mean zone MAE
# over 12 zones 1.43 -> 1.33, 1.64 -> 1.50, 1.51 -> 1.44, mean gathering F1 over 24 zone/threshold cases
# 0.58 -> 0.64, 0.55 -> 0.58, 0.64 -> 0.68, the frame's count unchanged. A row with few heads (the prior)
# stays near 1; no row moves by more than a quarter (before the scaling that keeps the total).
_PROFILE_PRIOR = 20.0  # heads
_PROFILE_RANGE = (0.8, 1.25)


def row_profile(predicted: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Per row of cells, the factor by which the trees' density should be scaled there: labelled heads
    over predicted people on frames the trees did not learn from ((frames, rows, cols) each), smoothed
    over neighbouring rows, at most a quarter either way, and scaled so it moves people between rows
    without adding any to those frames."""
    p = np.clip(predicted, 0.0, None).sum(axis=(0, 2))
    t = heads.sum(axis=(0, 2))
    f = (t + _PROFILE_PRIOR) / (p + _PROFILE_PRIOR)
    f = np.convolve(np.pad(f, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    f = np.clip(f, *_PROFILE_RANGE)
    moved = float((p * f).sum())
    if moved > 0:
        f *= float(p.sum()) / moved
    return f.astype(np.float32)


def spread_by_rows(density: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """``density`` (rows, cols) with its people moved between rows by ``profile``, the total kept.

    Each cell's people (its positive density) are scaled by its row's factor less the frame's mean
    factor: a frame whose people all stand in one row band, as a single large gathering does, is
    left as it is; an empty frame too.
    """
    people = np.clip(density, 0.0, None)
    total = float(people.sum())
    if total <= 0:
        return density
    factor = profile[:, None]
    mean = float((people * factor).sum()) / total
    return (density + people * (factor - mean)).astype(np.float32)


def keep_total(density: np.ndarray, total: float) -> np.ndarray:
    """``density`` (rows, cols) scaled to sum to ``total`` (at least 0): where the trees put people, as many as
    the linear density counts. A density summing to under one person is left as it is (its layout is noise
    not worth scaling up)."""
    have = float(density.sum())
    if have < 1.0:
        return density
    return (density * (max(total, 0.0) / have)).astype(np.float32)


def below_cells(person_height_px: float, cell: int) -> int:
    """Cells below a head that its body covers where people are largest (three quarters of their height)."""
    return int(np.clip(round(0.75 * person_height_px / cell), 2, 12))


def _box(a: np.ndarray, rows: int, cols: int, anchor: tuple[int, int] = (-1, -1)) -> np.ndarray:
    out = cv2.blur(a, (cols, rows), anchor=anchor, borderType=cv2.BORDER_CONSTANT)
    return out.reshape(a.shape)


def design(values: np.ndarray, texture: np.ndarray, cell_weight: np.ndarray, below: int) -> np.ndarray:
    """The density model's inputs for every cell of one frame: (rows, cols, inputs) float32.

    ``values`` and ``texture`` are a :class:`~detectors.crowd.features.FeatureGrid`'s maps,
    ``cell_weight`` the perspective weight per cell, ``below`` from :func:`below_cells`.
    """
    parts = [
        values,
        _box(values, 3, 3),
        _box(values, 7, 7),
        _box(values, below, 3, anchor=(1, 0)),  # this cell's row and the ones below it
        texture,
        _box(texture, 3, 3),
        cell_weight[:, :, None],
    ]
    return np.concatenate(parts, axis=2, dtype=np.float32)


class DensityModel:
    """Boosted trees over :func:`design` inputs; ``counted`` marks the cells that may hold people."""

    def __init__(
        self, booster, counted: np.ndarray, profile: np.ndarray | None = None, linear_total: bool = False
    ) -> None:
        self._booster = booster  # lightgbm.Booster
        self.counted = counted.astype(bool)
        self.profile = profile  # see row_profile; None: the density as the trees give it
        self.linear_total = linear_total  # each frame's total is the linear density's (see the module's notes)

    @classmethod
    def train(
        cls,
        inputs: np.ndarray,
        heads: np.ndarray,
        base: np.ndarray,
        counted: np.ndarray,
        *,
        rounds: int | None = None,
        threads: int = 0,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> DensityModel:
        """Fit on ``inputs`` (frames, rows, cols, inputs) against ``heads`` (frames, rows, cols) per cell.

        The trees learn what the linear density ``base`` (frames, rows, cols) misses: where it
        already counts right (well-separated people) they add little, and they never have to
        learn the count from nothing. ``rounds`` defaults to 150.
        """
        lgb = _lightgbm()
        rounds = rounds or _ROUNDS
        mask = counted.astype(bool)
        x = inputs[:, mask].reshape(-1, inputs.shape[-1])
        y = heads[:, mask].ravel().astype(np.float32)
        b = base[:, mask].ravel().astype(np.float64)
        # small calibration sets (a few dozen frames) still get leaves: at most 1/50 of the cells in one
        min_leaf = int(np.clip(len(y) // 50, 20, 200))
        params = {**_PARAMS, "min_data_in_leaf": min_leaf, "num_threads": threads}
        callbacks = []
        if progress:

            def report(env) -> None:
                progress("density model", env.iteration + 1, rounds)

            callbacks.append(report)
        data = lgb.Dataset(x, y, init_score=b, free_raw_data=True)
        booster = lgb.train(params, data, num_boost_round=rounds, callbacks=callbacks)
        return cls(booster, mask)

    def predict(self, inputs: np.ndarray, base: np.ndarray) -> np.ndarray:
        """People per cell (rows, cols) float32: ``base`` (the linear density) plus the trees.

        Zero outside the counted cells.

        Not clipped at zero: where nobody is, the trees answer a little above or below it, and
        clipping every cell would add those small errors up into a count of people who are not
        there (+1 on a Mall frame of 900 cells). Sums over a zone are clipped instead.
        """
        out = np.zeros(self.counted.shape, np.float32)
        rows = inputs[self.counted]
        if len(rows):
            out[self.counted] = base[self.counted] + self._booster.predict(rows, num_threads=1)
        if self.profile is not None:
            out = spread_by_rows(out, self.profile)
        if self.linear_total:
            out = keep_total(out, float(base[self.counted].sum()))
        return out

    def to_text(self) -> str:
        """The trees in LightGBM's text format."""
        return self._booster.model_to_string()

    @classmethod
    def from_text(
        cls, text: str, counted: np.ndarray, profile: np.ndarray | None = None, linear_total: bool = False
    ) -> DensityModel:
        """Trees from :meth:`to_text` (and the camera's row profile, and whether each frame keeps the linear
        density's total); ``ValueError`` when the text is not a LightGBM model or the profile does not have a
        factor per row."""
        lgb = _lightgbm()
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise ValueError(f"density model: {exc}") from exc
        if profile is not None and profile.shape != (counted.shape[0],):
            raise ValueError(f"density model: a row profile of {profile.shape} for {counted.shape[0]} rows")
        return cls(booster, counted, profile, linear_total)
