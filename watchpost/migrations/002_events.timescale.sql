-- Events as a TimescaleDB hypertable with daily chunks; retention and compression policies
-- are added by the store from the configured windows.
CREATE TABLE events (
    occurred_at   timestamptz NOT NULL,
    event_id      uuid NOT NULL,
    received_at   timestamptz NOT NULL,
    device_time   timestamptz,
    clock         text NOT NULL,
    device_id     text NOT NULL,
    site_id       text NOT NULL,
    kind          text NOT NULL,
    code          text NOT NULL,
    source_format text NOT NULL,
    topic         text NOT NULL,
    ref           text,
    plate         text,
    confidence    real,
    repeat        boolean NOT NULL DEFAULT false,
    zone          text,
    count         integer,
    state         text,
    attributes    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_device_time ON events (device_id, occurred_at DESC);
CREATE INDEX events_site_kind_time ON events (site_id, kind, occurred_at DESC);
CREATE INDEX events_plate ON events (plate, occurred_at DESC) WHERE plate IS NOT NULL;
CREATE INDEX events_event_id ON events (event_id);
SELECT create_hypertable('events', 'occurred_at', chunk_time_interval => INTERVAL '1 day');
ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id',
                        timescaledb.compress_orderby = 'occurred_at DESC');
