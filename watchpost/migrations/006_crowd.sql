-- The crowd detector's other tables: alert snapshots and camera health.

-- The annotated picture of a crowd alert (zones and counts drawn on it): the only frames ever
-- stored. Written in the transaction that raises (or folds into) the alert, under the alert
-- lock; the newest one of an alert is what GET /alerts/{id}/snapshot serves. Kept for
-- `storage.snapshot_retention_days`.
CREATE TABLE alert_snapshots (
    snapshot_id bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    taken_at    timestamptz NOT NULL,
    device_id   text NOT NULL,
    zone        text,
    width       integer NOT NULL,
    height      integer NOT NULL,
    jpeg        bytea NOT NULL
);
CREATE INDEX alert_snapshots_alert ON alert_snapshots (alert_id, snapshot_id DESC);
CREATE INDEX alert_snapshots_taken ON alert_snapshots (taken_at);

-- Each counting camera's health as its crowd worker last reported it (every few seconds and on
-- every change), so that any API process can show it. Written without the alert lock.
CREATE TABLE camera_status (
    device_id     text PRIMARY KEY,
    worker        text NOT NULL,
    state         text NOT NULL,
    reason        text,
    source        text NOT NULL,
    last_frame_at timestamptz,
    frames        bigint NOT NULL DEFAULT 0,
    errors        bigint NOT NULL DEFAULT 0,
    reconnects    integer NOT NULL DEFAULT 0,
    people        real,
    last_error    text,
    last_error_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
