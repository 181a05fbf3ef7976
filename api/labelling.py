"""``watchpost crowd label``: a local page to click the heads in a camera's frames, writing labels.json.

Calibration (``watchpost crowd calibrate``) learns a camera from frames with the people's head
positions. This serves one folder of JPEG (or PNG) frames on the engineer's own machine (127.0.0.1 unless
told otherwise; no credential, so do not expose it: the frames show people) with a page to click
each head, and writes ``labels.json`` in the calibration format
(``{"frames": [{"frame", "count", "heads"}]}``) after every change, atomically, so that
stopping at any moment loses nothing and starting again resumes. Frames already in the file but
not in the folder are kept as they were.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from api.routes.console import ASSETS, PAGES
from detectors.crowd.capture import IMAGE_SUFFIXES, DirectorySource, FrameError
from detectors.crowd.labels import load_labels

__all__ = ["LabelBook", "create_labelling_app"]

_MAX_HEADS = 5000

FrameName = Annotated[str, PathParam(description="File name of a frame in the folder")]


class HeadsBody(BaseModel):
    """A frame's head positions, in the frame's pixels."""

    model_config = ConfigDict(extra="forbid")
    heads: list[tuple[float, float]] = Field(max_length=_MAX_HEADS, description="[x, y] of every head in the frame")


class LabelBook:
    """The frames of a folder and their labels, kept in ``labels`` (a labels.json) after every change."""

    def __init__(self, folder: Path, labels: Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"no such folder: {self.folder}")
        self.path = Path(labels)
        self.frames = sorted(p.name for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.frames:
            raise ValueError(f"{self.folder}: no frames (.jpg, .jpeg, .png) to label")
        self._source = DirectorySource(self.folder)
        self._sizes: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        # frame -> {"count", "heads"} for every labelled frame, in the file's order
        self.labels: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for lf in load_labels(self.path):  # a damaged file stops here, before anything is overwritten
                self.labels[lf.frame] = {"count": lf.count, "heads": [list(h) for h in lf.heads]}

    def size(self, frame: str) -> tuple[int, int]:
        """(width, height) of a frame; FrameError when it cannot be decoded."""
        if frame not in self._sizes:
            image = self._source.read(frame)
            self._sizes[frame] = (int(image.shape[1]), int(image.shape[0]))
        return self._sizes[frame]

    def set(self, frame: str, heads: list[tuple[float, float]]) -> int:
        """Label a frame with these heads (none: nobody in it) and save; returns the count."""
        with self._lock:
            self.labels[frame] = {"count": len(heads), "heads": [[round(x, 1), round(y, 1)] for x, y in heads]}
            self._save()
        return len(heads)

    def forget(self, frame: str) -> None:
        """Unlabel a frame and save."""
        with self._lock:
            self.labels.pop(frame, None)
            self._save()

    def _save(self) -> None:
        order = {name: i for i, name in enumerate(self.frames)}
        items = sorted(self.labels.items(), key=lambda kv: (kv[0] not in order, order.get(kv[0], 0)))
        doc = {"frames": [{"frame": name, **label} for name, label in items]}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)  # a reader (or a crash) sees the old file or the new one, never half


def create_labelling_app(book: LabelBook) -> FastAPI:
    """The labelling page and its small JSON API over ``book``."""
    app = FastAPI(title="Watchpost crowd labelling", docs_url=None, redoc_url=None, openapi_url=None)

    def known(frame: str) -> str:
        if frame not in book.frames:  # only the folder's own files: no path leaves it
            raise HTTPException(404, f"no frame {frame!r} in {book.folder}")
        return frame

    def size_of(frame: str) -> tuple[int, int]:
        try:
            return book.size(frame)
        except FrameError as exc:
            raise HTTPException(422, f"frame {frame!r} cannot be used: {exc}") from None

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGES / "label.html", media_type="text/html; charset=utf-8")

    @app.get("/api/frames")
    def frames() -> dict[str, Any]:
        return {
            "folder": str(book.folder),
            "labels": str(book.path),
            "frames": [
                {"frame": f, "labelled": f in book.labels, "count": book.labels.get(f, {}).get("count")}
                for f in book.frames
            ],
        }

    @app.get("/api/frames/{frame}")
    def frame(frame: FrameName) -> dict[str, Any]:
        known(frame)
        width, height = size_of(frame)
        label = book.labels.get(frame)
        return {
            "frame": frame,
            "width": width,
            "height": height,
            "labelled": label is not None,
            "count": label["count"] if label else None,
            "heads": label["heads"] if label else [],
        }

    @app.get("/api/frames/{frame}/image")
    def image(frame: FrameName) -> Response:
        known(frame)
        media = "image/png" if frame.lower().endswith(".png") else "image/jpeg"
        return FileResponse(book.folder / frame, media_type=media)

    @app.put("/api/frames/{frame}")
    def label(frame: FrameName, body: HeadsBody) -> dict[str, Any]:
        known(frame)
        width, height = size_of(frame)
        for i, (x, y) in enumerate(body.heads):
            if not (0 <= x <= width and 0 <= y <= height):
                raise HTTPException(422, f"heads[{i}]: ({x:g}, {y:g}) is outside the {width}x{height} frame")
        count = book.set(frame, body.heads)
        return {"frame": frame, "count": count, "labelled": len(book.labels)}

    @app.delete("/api/frames/{frame}")
    def unlabel(frame: FrameName) -> dict[str, Any]:
        known(frame)
        book.forget(frame)
        return {"frame": frame, "labelled": len(book.labels)}

    app.mount("/assets", StaticFiles(directory=ASSETS), name="assets")
    return app
