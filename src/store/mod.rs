//! PostgreSQL: connections, migrations and the batched writer.

pub mod batch;
pub mod copy;
pub mod dead_letter;
pub mod retention;
pub mod writer;

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::DatabaseConfig;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connection options from `database.url`, quiet about every statement.
pub fn connect_options(cfg: &DatabaseConfig) -> Result<PgConnectOptions, sqlx::Error> {
    use sqlx::ConnectOptions as _;
    Ok(PgConnectOptions::from_str(&cfg.url)?
        .application_name("vigil")
        .log_statements(tracing::log::LevelFilter::Trace))
}

/// A pool for queries and health checks. Connects lazily: vigil starts (and reports
/// not-ready) while the database is down.
pub fn pool(cfg: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    Ok(PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(cfg.connect_timeout)
        .connect_lazy_with(connect_options(cfg)?))
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
