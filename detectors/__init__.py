"""Detectors turn stored events and video frames into alerts (rules, crowd counting)."""
