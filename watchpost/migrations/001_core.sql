-- Core tables that do not depend on TimescaleDB. Applied once, in order, under an advisory lock.

-- Idempotency keys of every stored event. Events are time-partitioned, and a partitioned
-- table cannot hold a unique key that leaves the partition column out; this small table can,
-- so a replay of any event (even one whose device time was unusable) inserts nothing.
CREATE TABLE event_keys (
    event_id    uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX event_keys_occurred_at ON event_keys (occurred_at);

-- Messages that could not become events, kept whole with the reason. The digest of topic and
-- payload makes a replay of the same bad message count up instead of adding a row.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    digest      bytea NOT NULL UNIQUE,
    received_at timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    times_seen  integer NOT NULL DEFAULT 1,
    topic       text NOT NULL,
    device_id   text,
    reason      text NOT NULL,
    detail      text NOT NULL,
    size        integer NOT NULL,
    payload     bytea NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at DESC);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at DESC);

-- The configuration's sites and devices, mirrored so that SQL can join and report on them.
CREATE TABLE sites (
    site_id  text PRIMARY KEY,
    name     text NOT NULL,
    kind     text NOT NULL,
    lat      double precision NOT NULL,
    lon      double precision NOT NULL,
    timezone text
);

CREATE TABLE devices (
    device_id   text PRIMARY KEY,
    site_id     text NOT NULL REFERENCES sites (site_id),
    kind        text NOT NULL,
    name        text NOT NULL,
    format      text,
    lat         double precision,
    lon         double precision,
    heartbeat_s integer
);
