-- Rollups of readings for history queries: one row per series and minute, and per series
-- and hour, holding the count, sum and both extremes at their real timestamps (so a
-- downsampled answer shows real readings, peaks included).
--
-- How rollups stay right:
-- * rollup_state.rolled_up: the rollups are complete for every bucket before it; queries
--   read raw readings after it. The rollup task advances it a chunk at a time.
-- * rollup_state.watermark (>= rolled_up): a reading stored with ts < watermark is "late"
--   (its minute may be rolled up already); a trigger on readings records its minute in
--   rollup_dirty, in the same transaction as the reading, and the rollup task recomputes
--   those minutes (and their hours) from the raw readings.
-- * The trigger takes a shared advisory lock; the rollup task takes it exclusively to move
--   the watermark, so no transaction that read the old watermark is still open when the
--   task scans the range it just closed. Writers never wait on each other.
--
-- Buckets are cut with date_bin from the Unix epoch: independent of the session time zone.

CREATE TABLE IF NOT EXISTS readings_1m (
    device_id text             NOT NULL,
    metric    text             NOT NULL,
    bucket    timestamptz      NOT NULL,
    n         bigint           NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    min_ts    timestamptz      NOT NULL,
    max       double precision NOT NULL,
    max_ts    timestamptz      NOT NULL,
    PRIMARY KEY (device_id, metric, bucket)
);
CREATE INDEX IF NOT EXISTS readings_1m_bucket ON readings_1m (bucket);

CREATE TABLE IF NOT EXISTS readings_1h (LIKE readings_1m INCLUDING ALL);

CREATE TABLE IF NOT EXISTS rollup_state (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark timestamptz NOT NULL,
    rolled_up timestamptz NOT NULL,
    CHECK (rolled_up <= watermark)
);

-- Start where the data starts (one scan of an existing table, once), or now when empty.
INSERT INTO rollup_state (watermark, rolled_up)
SELECT b, b FROM (
    SELECT date_bin('1 minute', COALESCE(min(ts), now()), TIMESTAMPTZ '1970-01-01 00:00:00+00') AS b
    FROM readings
) s
ON CONFLICT DO NOTHING;

-- Minutes holding late readings, waiting to be recomputed. No unique key: concurrent
-- writers append without waiting for each other; the task deduplicates.
CREATE TABLE IF NOT EXISTS rollup_dirty (
    device_id text        NOT NULL,
    metric    text        NOT NULL,
    bucket    timestamptz NOT NULL
);

-- 0x76696769 = 'vigi': the advisory lock key shared with src/history/rollup.rs.
CREATE OR REPLACE FUNCTION vigil_mark_late_readings() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    w timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1986619241);
    SELECT watermark INTO w FROM rollup_state;
    INSERT INTO rollup_dirty (device_id, metric, bucket)
    SELECT DISTINCT device_id, metric,
           date_bin('1 minute', ts, TIMESTAMPTZ '1970-01-01 00:00:00+00')
    FROM vigil_new_readings
    WHERE ts < w;
    RETURN NULL;
END
$$;

-- Row by row, for TimescaleDB hypertables (they have no transition tables).
CREATE OR REPLACE FUNCTION vigil_mark_late_reading() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1986619241);
    IF NEW.ts < (SELECT watermark FROM rollup_state) THEN
        INSERT INTO rollup_dirty (device_id, metric, bucket)
        VALUES (NEW.device_id, NEW.metric,
                date_bin('1 minute', NEW.ts, TIMESTAMPTZ '1970-01-01 00:00:00+00'));
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    hypertable boolean := false;
BEGIN
    -- Dynamic SQL: on plain PostgreSQL the Timescale view does not exist at all.
    IF to_regclass('timescaledb_information.hypertables') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables '
                'WHERE hypertable_name = ''readings'')' INTO hypertable;
    END IF;
    DROP TRIGGER IF EXISTS readings_mark_late ON readings;
    IF hypertable THEN
        CREATE TRIGGER readings_mark_late AFTER INSERT ON readings
            FOR EACH ROW EXECUTE FUNCTION vigil_mark_late_reading();
    ELSE
        CREATE TRIGGER readings_mark_late AFTER INSERT ON readings
            REFERENCING NEW TABLE AS vigil_new_readings
            FOR EACH STATEMENT EXECUTE FUNCTION vigil_mark_late_readings();
    END IF;
END
$$;
