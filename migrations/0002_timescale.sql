-- TimescaleDB, when the server has it: readings become a hypertable with compression.
-- On plain PostgreSQL this migration does nothing and readings stay a plain table.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       OR current_setting('shared_preload_libraries') NOT LIKE '%timescaledb%' THEN
        RAISE NOTICE 'TimescaleDB not available: readings stays a plain table';
        RETURN;
    END IF;
    CREATE EXTENSION IF NOT EXISTS timescaledb;
    PERFORM create_hypertable('readings', by_range('ts', INTERVAL '1 day'),
                              if_not_exists => true, migrate_data => true);
    ALTER TABLE readings SET (
        timescaledb.compress,
        timescaledb.compress_segmentby = 'device_id, metric',
        timescaledb.compress_orderby = 'ts'
    );
    PERFORM add_compression_policy('readings', INTERVAL '7 days', if_not_exists => true);
END
$$;
