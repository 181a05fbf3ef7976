"""The alert snapshot: a frame with the zones and the people counts drawn on it, as JPEG bytes."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import cv2
import numpy as np

from detectors.crowd.counting import FrameCount, Zone

__all__ = ["draw_snapshot", "encode_jpeg"]

_ZONE = (0, 200, 255)  # BGR amber
_ALARM = (0, 0, 255)  # red


def draw_snapshot(
    image: np.ndarray, zones: Sequence[Zone], counted: FrameCount, *, alarmed: Collection[str] = ()
) -> np.ndarray:
    """A copy of ``image`` with each zone outlined and labelled with its count; alarmed zones in red."""
    out = image.copy()
    scale = max(out.shape[0] / 480.0, 0.5)
    for zone in zones:
        colour = _ALARM if zone.name in alarmed else _ZONE
        pts = np.round(np.array(zone.polygon)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], isClosed=True, color=colour, thickness=max(2, round(2 * scale)))
        x, y = pts[:, 0, 0].min(), pts[:, 0, 1].min()
        _label(
            out, f"{zone.name}: {counted.zone(zone.name):.0f}", (int(x) + 4, int(y) + round(20 * scale)), colour, scale
        )
    _label(out, f"people: {counted.total:.0f}", (8, round(24 * scale)), (255, 255, 255), scale)
    return out


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    # a dark outline keeps the text readable on any background
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale
    cv2.putText(image, text, origin, font, size, (0, 0, 0), max(2, round(4 * scale)), cv2.LINE_AA)
    cv2.putText(image, text, origin, font, size, colour, max(1, round(1.5 * scale)), cv2.LINE_AA)


def encode_jpeg(image: np.ndarray, *, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR uint8 image."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
