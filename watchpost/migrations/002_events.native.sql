-- Events as native PostgreSQL range partitions by day (no TimescaleDB here). Partitions are
-- created ahead of need by the store and dropped past retention by the maintenance job.
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
) PARTITION BY RANGE (occurred_at);
CREATE INDEX events_device_time ON events (device_id, occurred_at DESC);
CREATE INDEX events_site_kind_time ON events (site_id, kind, occurred_at DESC);
CREATE INDEX events_plate ON events (plate, occurred_at DESC) WHERE plate IS NOT NULL;
CREATE INDEX events_event_id ON events (event_id);
