"""The demo's camera: publishes the synthetic :class:`~detectors.crowd.synthetic.DemoScene` as JPEG frames.

For every camera whose frames come over MQTT and whose model is ``synthetic`` (the demo's), a
frame of the scene is published to the camera's frame topic at its sampling rate, as an edge
gateway would forward a camera's snapshots. Started by ``watchpost run`` with the simulator.
"""

from __future__ import annotations

import logging
import threading
import time

from detectors.crowd.snapshot import encode_jpeg
from detectors.crowd.synthetic import DemoScene
from ingest.mqtt import BrokerAddress, Publisher
from watchpost.config import WatchpostConfig

__all__ = ["FrameSimulator", "simulated_cameras"]

log = logging.getLogger("watchpost.crowd.simulator")


def simulated_cameras(config: WatchpostConfig) -> list[str]:
    """Ids of the cameras the simulator feeds: MQTT frames and the synthetic demo model."""
    return [
        d.id
        for d in config.devices
        if d.crowd is not None and d.crowd.enabled and d.crowd.from_mqtt and d.crowd.model == "synthetic"
    ]


class FrameSimulator:
    """Publish demo frames until ``stop`` is set (``run`` blocks; start it in a thread)."""

    def __init__(self, *, config: WatchpostConfig, broker: BrokerAddress, seed: int = 11) -> None:
        self.config = config
        self.broker = broker
        self.cameras = simulated_cameras(config)
        self._scenes = {cam: DemoScene(seed=seed + i) for i, cam in enumerate(self.cameras)}

    def run(self, stop: threading.Event) -> int:
        """Publish frames until ``stop``; returns how many were published."""
        if not self.cameras:
            return 0
        sent = 0
        started = time.monotonic()
        due = {cam: started for cam in self.cameras}
        with Publisher(self.broker, client_id="") as publisher:
            while not stop.is_set():
                now = time.monotonic()
                for cam in self.cameras:
                    if now < due[cam]:
                        continue
                    crowd = self.config.device_index[cam].crowd
                    assert crowd is not None
                    due[cam] = now + 1.0 / crowd.sample_fps
                    frame = self._scenes[cam].frame(now - started)
                    publisher.publish(crowd.topic_for(cam), encode_jpeg(frame.image, quality=85), qos=0)
                    sent += 1
                stop.wait(max(0.01, min(due.values()) - time.monotonic()))
        log.info("frame simulator stopped: frames=%d", sent)
        return sent
