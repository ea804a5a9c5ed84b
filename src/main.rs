//! The `vigil` command: parse the CLI, start logging, call the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use vigil::config::{LogFormat, Settings};

/// Real-time IoT ingestion and monitoring: MQTT to PostgreSQL, losslessly.
#[derive(Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// TOML settings file (defaults are in config/default.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the settings, print them as resolved, and exit.
    CheckConfig {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Replay the live anomaly detector over a CSV file (`timestamp,value`) and write
    /// `timestamp,value,anomaly_score`; the `[detect]` settings apply.
    Detect {
        /// Input CSV (`-` for stdin).
        #[arg(long, short)]
        input: PathBuf,
        /// Output CSV; stdout when absent.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match &cli.command {
        Command::Serve { config }
        | Command::Migrate { config }
        | Command::CheckConfig { config }
        | Command::Detect { config, .. } => config.clone(),
    };
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig { .. } = cli.command {
        print!("{}", settings.to_toml());
        eprintln!("vigil: configuration is valid");
        return ExitCode::SUCCESS;
    }
    if let Command::Detect { input, output, .. } = &cli.command {
        return detect(&settings, input, output.as_deref());
    }
    init_tracing(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { .. } => serve(settings).await,
            Command::Migrate { .. } => migrate(settings).await,
            Command::CheckConfig { .. } | Command::Detect { .. } => {
                unreachable!("handled before the runtime starts")
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("vigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn detect(settings: &Settings, input: &Path, output: Option<&Path>) -> ExitCode {
    match vigil::detect::replay::run(settings.detect.params(), input, output) {
        Ok(summary) => {
            eprintln!(
                "vigil: scored {} readings, {} anomaly events (threshold {})",
                summary.rows, summary.events, settings.detect.threshold
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil: {}: {e}", input.display());
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = vigil::app::start(settings).await?;
    shutdown_signal().await;
    app.shutdown();
    app.wait().await;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let options = vigil::store::connect_options(&settings.database).context("database.url")?;
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .context("cannot connect to the database (database.url)")?;
    vigil::store::MIGRATOR
        .run(&mut conn)
        .await
        .context("migrations failed")?;
    eprintln!("vigil: database schema is up to date");
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler works on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_tracing(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
