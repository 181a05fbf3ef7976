"""Labelled frames for calibration and evaluation: ``{"frames": [{"frame", "count", "heads"}]}``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabelError", "LabelledFrame", "load_labels", "parse_range", "select_range"]


class LabelError(Exception):
    """A labels file that cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class LabelledFrame:
    """One frame's file name, its people count and the head positions (pixels) of those people."""

    frame: str
    count: int
    heads: tuple[tuple[float, float], ...]


def load_labels(path: Path) -> tuple[LabelledFrame, ...]:
    """Read a labels file; a frame without ``heads`` has an empty tuple (its zone counts are unknown)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: cannot read labels ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise LabelError(f'{path}: expected {{"frames": [...]}}')
    out = []
    for i, item in enumerate(doc["frames"]):
        try:
            heads = tuple((float(x), float(y)) for x, y in item.get("heads", ()))
            count = int(item["count"]) if "count" in item else len(heads)
            out.append(LabelledFrame(frame=str(item["frame"]), count=count, heads=heads))
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelError(f"{path}: frames[{i}]: {exc!r}") from exc
    return tuple(out)


def parse_range(text: str) -> tuple[int, int]:
    """``"601-800"`` -> (601, 800): 1-based, inclusive positions in the labels file."""
    try:
        first, _, last = text.partition("-")
        lo, hi = int(first), int(last or first)
    except ValueError as exc:
        raise LabelError(f"range {text!r}: expected FIRST-LAST, e.g. 601-800") from exc
    if lo < 1 or hi < lo:
        raise LabelError(f"range {text!r}: expected 1 <= FIRST <= LAST")
    return lo, hi


def select_range(frames: Sequence[LabelledFrame], span: tuple[int, int] | None) -> tuple[LabelledFrame, ...]:
    """The frames at 1-based positions ``span`` (all of them when None)."""
    if span is None:
        return tuple(frames)
    lo, hi = span
    if lo > len(frames):
        raise LabelError(f"range {lo}-{hi}: the labels have only {len(frames)} frames")
    return tuple(frames[lo - 1 : hi])
