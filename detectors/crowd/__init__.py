"""Crowd counting and gathering detection for video cameras (issue 4).

``capture`` owns OpenCV capture and JPEG decoding; ``features``, ``calibration`` and
``counting`` count people per frame and per zone with a per-camera model (``camera``);
``gathering`` turns zone counts into alarms; ``snapshot`` draws the alert picture;
``evaluation`` and ``cli`` measure a model on labelled frames.
"""
