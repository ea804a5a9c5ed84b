-- The relation users and Grafana query. The primary key makes writes idempotent: a
-- redelivered reading (same device, metric and time) does not create a second row.
CREATE TABLE IF NOT EXISTS readings (
    device_id text             NOT NULL,
    metric    text             NOT NULL,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (device_id, metric, ts)
);

-- Time-range scans across devices (dashboards); BRIN costs almost nothing to maintain on
-- append-mostly data.
CREATE INDEX IF NOT EXISTS readings_ts_brin ON readings USING brin (ts);

-- The device registry: first and last reading, retained metadata, presence.
CREATE TABLE IF NOT EXISTS devices (
    device_id         text        PRIMARY KEY,
    first_seen        timestamptz NOT NULL DEFAULT now(),
    last_seen         timestamptz,
    meta              jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status            text        CHECK (status IN ('online', 'offline')),
    status_changed_at timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Input vigil refused, with the reason. The fingerprint (a hash of source, topic, payload,
-- item and reason) makes a redelivered bad message give one row, not two.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial   PRIMARY KEY,
    fingerprint bytea       NOT NULL UNIQUE,
    received_at timestamptz NOT NULL,
    source      text        NOT NULL,
    topic       text        NOT NULL,
    payload     text        NOT NULL,
    reason      text        NOT NULL,
    detail      text        NOT NULL,
    item_index  integer
);
CREATE INDEX IF NOT EXISTS dead_letters_received_at ON dead_letters (received_at);
