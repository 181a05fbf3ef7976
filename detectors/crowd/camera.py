"""A calibrated camera: what calibration learnt and what counting needs, in one file.

The file is an ``.npz`` archive of plain arrays plus one JSON document (``meta``), loaded with
``allow_pickle=False``: a model file can be inspected with numpy alone and cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT_VERSION", "CameraModel", "ModelFileError", "load_roi"]

FORMAT_VERSION = 2  # 1: linear spread model (before 2026-12); such files are refused with a way forward


class ModelFileError(Exception):
    """A camera model or ROI file that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True, eq=False)
class CameraModel:
    """Everything the counter needs for one camera.

    ``perspective`` is a weight per pixel inversely proportional to the image area a person
    covers there (1 near the camera, larger far away), as in the Mall dataset's map.
    """

    width: int
    height: int
    cell: int  # side of a feature cell in pixels
    background: np.ndarray  # uint8 (H, W, 3): the empty scene
    roi: np.ndarray  # uint8 (H, W): 1 where people are counted
    perspective: np.ndarray  # float32 (H, W)
    total_weights: np.ndarray  # float64 (features,): linear density per cell = features @ total_weights
    person_area: float  # image area of a person, in pixels, where the perspective weight is 1
    density: str | None = None  # the density model's trees (LightGBM text, see density); None: the linear density
    below: int = 0  # cells below a head in the density model's inputs (see density.below_cells)
    fit: dict[str, Any] = field(default_factory=dict)  # calibration figures, for people to read
    row_profile: np.ndarray | None = None  # float32 (rows,): the trees' depth correction (density.row_profile)
    linear_total: bool = False  # the trees spread the linear density's frame total (a handful of frames)
    edge_weight: str = "weight"  # outline features weighted by the perspective weight, or by its square root ("sqrt")

    def edge_weights(self, cell_weight: np.ndarray) -> np.ndarray | None:
        """The weights of the outline features per cell (None: the cell weights, as the area features)."""
        return np.sqrt(cell_weight).astype(np.float32) if self.edge_weight == "sqrt" else None

    def save(self, path: Path) -> None:
        """Write the model to ``path`` (npz, whatever the suffix)."""
        meta = {
            "format": "watchpost-crowd-camera",
            "version": FORMAT_VERSION,
            "width": self.width,
            "height": self.height,
            "cell": self.cell,
            "person_area": self.person_area,
            "below": self.below,
            "linear_total": self.linear_total,
            "edge_weight": self.edge_weight,
            "fit": self.fit,
        }
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh,
                meta=np.array(json.dumps(meta)),
                background=self.background,
                roi=self.roi,
                perspective=self.perspective.astype(np.float32),
                total_weights=self.total_weights,
                **({"density": np.array(self.density)} if self.density is not None else {}),
                **({"row_profile": self.row_profile.astype(np.float32)} if self.row_profile is not None else {}),
            )

    @classmethod
    def load(cls, path: Path) -> CameraModel:
        """Read a model written by :meth:`save`; :class:`ModelFileError` says what is wrong."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise ModelFileError(f"{path}: not a camera model ({exc})") from exc
        try:
            meta = json.loads(str(arrays["meta"]))
            if meta.get("format") != "watchpost-crowd-camera":
                raise ModelFileError(f"{path}: not a camera model (format {meta.get('format')!r})")
            if meta.get("version") != FORMAT_VERSION:
                raise ModelFileError(
                    f"{path}: camera model format v{meta.get('version')}, this Watchpost reads v{FORMAT_VERSION}:"
                    " calibrate the camera again (watchpost crowd calibrate)"
                )
            model = cls(
                width=int(meta["width"]),
                height=int(meta["height"]),
                cell=int(meta["cell"]),
                background=arrays["background"],
                roi=arrays["roi"],
                perspective=arrays["perspective"],
                total_weights=arrays["total_weights"],
                person_area=float(meta["person_area"]),
                density=str(arrays["density"]) if "density" in arrays else None,
                below=int(meta.get("below", 0)),
                fit=dict(meta.get("fit", {})),
                row_profile=arrays.get("row_profile"),  # absent from files calibrated before 2026-12-03
                linear_total=bool(meta.get("linear_total", False)),  # absent before 2026-12-04
                edge_weight=str(meta.get("edge_weight", "weight")),  # absent before 2026-12-04 (evening)
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{path}: incomplete camera model (missing {exc})") from exc
        expected = (model.height, model.width)
        shapes = (model.background.shape, model.roi.shape, model.perspective.shape)
        if shapes != ((*expected, 3), expected, expected):
            raise ModelFileError(f"{path}: arrays do not match the model size {model.width}x{model.height}")
        if model.edge_weight not in ("weight", "sqrt"):
            raise ModelFileError(f"{path}: edge_weight {model.edge_weight!r} is neither 'weight' nor 'sqrt'")
        if model.row_profile is not None and model.row_profile.shape != (model.height // model.cell,):
            raise ModelFileError(f"{path}: row_profile {model.row_profile.shape} does not match the model's cell rows")
        return model


def load_roi(path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(roi_mask, perspective)`` from an npz with either or both keys (Mall's ``perspective_roi.npz``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            roi = z["roi_mask"].astype(np.uint8) if "roi_mask" in z.files else None
            perspective = z["perspective"].astype(np.float32) if "perspective" in z.files else None
    except (OSError, ValueError, EOFError) as exc:
        raise ModelFileError(f"{path}: not an ROI file ({exc})") from exc
    if roi is None and perspective is None:
        raise ModelFileError(f"{path}: has neither 'roi_mask' nor 'perspective'")
    if roi is not None and perspective is not None and roi.shape != perspective.shape:
        raise ModelFileError(f"{path}: roi_mask {roi.shape} and perspective {perspective.shape} differ in size")
    if perspective is not None and not (np.isfinite(perspective).all() and (perspective > 0).all()):
        raise ModelFileError(f"{path}: perspective must be finite and positive")
    return roi, perspective
