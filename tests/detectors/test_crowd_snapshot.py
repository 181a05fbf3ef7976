"""The alert snapshot: zones and counts drawn on the frame, encoded as a JPEG."""

from __future__ import annotations

import numpy as np

from detectors.crowd import synthetic as syn
from detectors.crowd.capture import decode_jpeg
from detectors.crowd.counting import FrameCount, Zone, ZoneCount
from detectors.crowd.snapshot import draw_snapshot, encode_jpeg


def _counted() -> FrameCount:
    return FrameCount(
        time=0.0, total=14.0, zones=(ZoneCount(zone="square", count=9.0),), density=np.zeros((15, 20), np.float32)
    )


def test_snapshot_outlines_the_zone_in_red_when_alarmed():
    """An alarmed zone's outline is drawn in red on a copy; the input frame is left untouched."""
    frame = syn.background()
    zone = Zone.parse("40,60 200,60 200,200 40,200", name="square")
    out = draw_snapshot(frame, [zone], _counted(), alarmed={"square"})
    assert out.shape == frame.shape and not np.shares_memory(out, frame)
    edge = out[130, 38:43].astype(int)  # across the left edge of the polygon
    assert (edge[:, 2] > 200).any() and (edge[:, 0] < 60).any()
    assert np.array_equal(frame, syn.background())


def test_snapshot_encodes_to_a_jpeg_that_decodes():
    """The snapshot's JPEG bytes pass the same safe decoder and keep the frame size."""
    zone = Zone.parse("40,60 200,60 200,200 40,200", name="square")
    data = encode_jpeg(draw_snapshot(syn.background(), [zone], _counted()))
    assert data[:3] == b"\xff\xd8\xff"
    assert decode_jpeg(data).shape == (syn.HEIGHT, syn.WIDTH, 3)
