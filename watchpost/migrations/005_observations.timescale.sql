-- Observations: measured values over time; here the people counted in each camera zone, one row
-- per zone per sample (the crowd worker). A TimescaleDB hypertable with daily chunks; the
-- retention policy is added by the store from `storage.observation_retention_days`.
CREATE TABLE observations (
    at        timestamptz NOT NULL,
    device_id text NOT NULL,
    zone      text NOT NULL,
    people    real NOT NULL
);
CREATE INDEX observations_device_zone_at ON observations (device_id, zone, at DESC);
SELECT create_hypertable('observations', 'at', chunk_time_interval => INTERVAL '1 day');
