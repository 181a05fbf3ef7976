-- Observations: measured values over time; here the people counted in each camera zone, one row
-- per zone per sample (the crowd worker). Native daily range partitions, created ahead of need by
-- the store and dropped past `storage.observation_retention_days` by the crowd worker.
CREATE TABLE observations (
    at        timestamptz NOT NULL,
    device_id text NOT NULL,
    zone      text NOT NULL,
    people    real NOT NULL
) PARTITION BY RANGE (at);
CREATE INDEX observations_device_zone_at ON observations (device_id, zone, at DESC);
