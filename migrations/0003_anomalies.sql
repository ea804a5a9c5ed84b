-- Anomaly events raised by the detector: one row per episode, at the reading that
-- started it. The unique key makes a re-detection (after a restart) store nothing new.
CREATE TABLE IF NOT EXISTS anomalies (
    id          bigserial        PRIMARY KEY,
    device_id   text             NOT NULL,
    metric      text             NOT NULL,
    ts          timestamptz      NOT NULL,
    value       double precision NOT NULL,
    score       double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    detector    text             NOT NULL,
    explanation text             NOT NULL,
    detected_at timestamptz      NOT NULL DEFAULT now(),
    UNIQUE (device_id, metric, ts, detector)
);

-- GET /api/v1/anomalies lists newest first: across every series by this index, for one
-- device or one series by the unique key's index (device_id, metric, ts, ...).
CREATE INDEX IF NOT EXISTS anomalies_ts ON anomalies (ts DESC);
