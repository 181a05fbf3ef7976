-- Each counting camera's picture of its empty scene, for drawing zones on in the console: the
-- background its counting model learnt (the median of the calibration frames, leaving out
-- where the labels put people) as the crowd worker last had it. One row per camera, replaced
-- when the worker starts and every few minutes as the background adapts. `frame_width` and
-- `frame_height` are the size of the picture the camera's zones are drawn in (its pixels),
-- `width` and `height` the JPEG's own (the counting size).
CREATE TABLE camera_pictures (
    device_id    text PRIMARY KEY,
    taken_at     timestamptz NOT NULL,
    width        integer NOT NULL,
    height       integer NOT NULL,
    frame_width  integer NOT NULL,
    frame_height integer NOT NULL,
    jpeg         bytea NOT NULL
);
