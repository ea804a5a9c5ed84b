-- TimescaleDB, when the server has it: readings become a hypertable with compression.
-- On plain PostgreSQL this migration does nothing and readings stay a plain table.
--
-- "Has it" means installed and preloaded. shared_preload_libraries is unreadable for a
-- role that is not superuser, and CREATE EXTENSION without the preload ends the session
-- (an error no exception block catches); timescaledb.max_background_workers is created
-- by the preloaded loader only, and pg_settings shows it to every role.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       OR NOT EXISTS (SELECT 1 FROM pg_settings
                      WHERE name = 'timescaledb.max_background_workers') THEN
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
