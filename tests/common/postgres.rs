//! A private PostgreSQL cluster per test: its own data directory in a tempdir (on tmpfs
//! when there is room, see `proc::scratch_dir`), its own free port on 127.0.0.1, a
//! `vigil` database owned by a `vigil` role.
//!
//! `initdb` costs about a second, so it runs once: the initialised cluster is kept as a
//! template under Cargo's target tmpdir (shared by every test process, keyed by server
//! version and user) and each instance starts from a `cp -a` of it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tempfile::TempDir;

use super::free_port;
use super::proc::{
    chown_to, command_as, current_uid, instance_dir, log_says_port_in_use, log_tail, run,
    run_or_panic,
};

/// Bump when the template's contents change, so old cached templates are not reused.
const TEMPLATE_REVISION: u32 = 2;
/// How many fresh ports to try when another process takes ours before the server binds it.
const START_ATTEMPTS: u32 = 5;
/// Seconds pg_ctl waits for start-up or shutdown.
const PG_CTL_WAIT_SECS: &str = "60";

/// Settings every instance shares. fsync is off for speed: the tests kill servers, never
/// the machine, so durability across an OS crash is not under test. synchronous_commit
/// stays on (the default), as vigil's ack-after-commit relies on it.
const TEMPLATE_SETTINGS: &str = "\
listen_addresses = '127.0.0.1'
fsync = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
# Port and socket directory differ per instance.
include_if_exists = 'instance.conf'
";

/// Run in single-user mode on the template: the role and database tests connect as.
const TEMPLATE_SQL: &str = "\
CREATE ROLE vigil LOGIN PASSWORD 'vigil' CREATEDB;
CREATE DATABASE vigil OWNER vigil;
";

/// A running (or stopped) private PostgreSQL; dropping it stops the server and deletes
/// its data.
pub struct Postgres {
    /// Holds `data/` (the cluster) and `run/` (socket directory and `postgres.log`).
    dir: TempDir,
    /// Fixed for the instance's life, so `start_again` comes back where clients expect it.
    port: u16,
    /// Whether we believe the server is up (Drop and `stop` act only then).
    running: bool,
}

impl Postgres {
    /// Starts a fresh cluster with a `vigil` database, ready for connections on return.
    pub async fn start() -> Postgres {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .expect("Postgres::start panicked")
    }

    fn start_blocking() -> Postgres {
        let template = template();
        let dir = instance_dir("vigil-pg-");
        let data = dir.path().join("data");
        run_or_panic(
            "copy the PostgreSQL template cluster",
            Command::new("cp").arg("-a").arg(template).arg(&data),
        );
        let run_dir = dir.path().join("run");
        fs::create_dir(&run_dir).expect("create the socket directory");
        chown_to("postgres", &run_dir);

        let mut pg = Postgres {
            dir,
            port: 0,
            running: false,
        };
        for attempt in 1..=START_ATTEMPTS {
            pg.port = free_port();
            // A fresh log per attempt, so the port-in-use check reads this attempt only.
            let _ = fs::remove_file(pg.log_path());
            match pg.try_start() {
                Ok(()) => {
                    pg.running = true;
                    return pg;
                }
                Err(e) if attempt < START_ATTEMPTS && log_says_port_in_use(&pg.log_path()) => {
                    eprintln!("PostgreSQL: port {} taken, retrying: {e}", pg.port);
                }
                Err(e) => {
                    pg.stop_quietly();
                    panic!(
                        "PostgreSQL did not start: {e}\n{}",
                        log_tail(&pg.log_path(), 30)
                    )
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Writes this instance's port and socket directory, then `pg_ctl start -w`.
    fn try_start(&self) -> Result<(), String> {
        let conf = format!(
            "port = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.run_dir().display().to_string().replace('\'', "''")
        );
        // Root-owned 0644 is fine: the server only reads it.
        fs::write(self.data_dir().join("instance.conf"), conf)
            .map_err(|e| format!("write instance.conf: {e}"))?;
        run(command_as("postgres", pg_bin().join("pg_ctl"))
            .args(["start", "-w", "-t", PG_CTL_WAIT_SECS, "-D"])
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path()))
    }

    /// URL of the test's database, as the `vigil` role (password auth over TCP).
    pub fn url(&self) -> String {
        format!("postgres://vigil:vigil@127.0.0.1:{}/vigil", self.port)
    }

    /// URL of the `postgres` database as the superuser, for test set-up that needs it.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres:postgres@127.0.0.1:{}/postgres",
            self.port
        )
    }

    /// The TCP port, the same across `stop` / `start_again`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.run_dir().join("postgres.log")
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Stops the server (`pg_ctl stop -m fast`: open transactions roll back, clients are
    /// disconnected) and waits until it is down. Blocks the calling thread (~0.1 s).
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    /// Stops the server like a crash (`-m immediate`: no shutdown checkpoint, recovery
    /// runs on the next start). Blocks the calling thread.
    pub fn kill(&mut self) {
        self.pg_ctl_stop("immediate");
    }

    /// Best-effort immediate stop (a server pg_ctl gave up waiting for may still be up).
    fn stop_quietly(&mut self) {
        let _ = run(command_as("postgres", pg_bin().join("pg_ctl"))
            .args([
                "stop",
                "-w",
                "-t",
                PG_CTL_WAIT_SECS,
                "-m",
                "immediate",
                "-D",
            ])
            .arg(self.data_dir()));
        self.running = false;
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let result = run(command_as("postgres", pg_bin().join("pg_ctl"))
            .args(["stop", "-w", "-t", PG_CTL_WAIT_SECS, "-m", mode, "-D"])
            .arg(self.data_dir()));
        self.running = false;
        if let Err(e) = result {
            panic!(
                "PostgreSQL did not stop: {e}\n{}",
                log_tail(&self.log_path(), 30)
            );
        }
    }

    /// Starts the server again on the same data directory and port; returns once it
    /// accepts connections. Blocks the calling thread (~0.2 s).
    pub fn start_again(&mut self) {
        assert!(!self.running, "Postgres::start_again called while running");
        if let Err(e) = self.try_start() {
            self.stop_quietly();
            panic!(
                "PostgreSQL did not start again on port {}: {e}\n{}",
                self.port,
                log_tail(&self.log_path(), 30)
            );
        }
        self.running = true;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            // Immediate: nothing to keep, and it is the fastest way down.
            self.stop_quietly();
        }
    }
}

/// The newest PostgreSQL server bin directory (`$PG_BIN` overrides).
fn pg_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("PG_BIN") {
            return PathBuf::from(dir);
        }
        let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .collect();
        found.sort();
        match found.pop() {
            Some((_, bin)) => bin,
            None => panic!(
                "PostgreSQL server binaries not found under /usr/lib/postgresql/<version>/bin \
                 (set PG_BIN to use others): run scripts/setup.sh"
            ),
        }
    })
}

/// The initialised template cluster, created on first use (per machine, user and
/// PostgreSQL version) and then shared.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let version = server_version();
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let key = format!(
            "pg-template-r{TEMPLATE_REVISION}-{version}-uid{}",
            current_uid()
        );
        let final_dir = cache.join(&key);
        if final_dir.join("PG_VERSION").exists() {
            return final_dir;
        }
        fs::create_dir_all(cache).expect("create Cargo's target tmpdir");
        let built = build_template();
        // Copy beside the final name, then rename: atomic, so concurrent test processes
        // either see a complete template or none, and the loser of a race just uses the
        // winner's.
        let staging = cache.join(format!("{key}.staging-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        run_or_panic(
            "copy the PostgreSQL template into the cache",
            Command::new("cp")
                .arg("-a")
                .arg(built.path().join("data"))
                .arg(&staging),
        );
        if fs::rename(&staging, &final_dir).is_err() {
            let _ = fs::remove_dir_all(&staging);
            assert!(
                final_dir.join("PG_VERSION").exists(),
                "could not install the PostgreSQL template at {}",
                final_dir.display()
            );
        }
        final_dir
    })
}

/// `postgres --version`'s version number, e.g. "15.18", to key the template cache.
fn server_version() -> String {
    let out = Command::new(pg_bin().join("postgres"))
        .arg("--version")
        .output()
        .expect("run postgres --version");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("unknown")
        .to_string()
}

/// Runs initdb and the set-up SQL into a fresh tempdir; returns it (data in `data/`).
fn build_template() -> TempDir {
    let dir = instance_dir("vigil-pg-template-");
    let data = dir.path().join("data");
    fs::create_dir(&data).expect("create the template data directory");
    fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod the template data directory");
    let pwfile = dir.path().join("pwfile");
    fs::write(&pwfile, "postgres\n").expect("write the superuser password file");
    chown_to("postgres", &data);
    chown_to("postgres", &pwfile);

    // -N: no fsync of the new cluster; it is copied, and tests do not survive OS crashes.
    // 1 MiB WAL segments instead of 16: every instance copies the template, and the
    // initial segment was 40% of it.
    run_or_panic(
        "initdb (run as `postgres` when root)",
        command_as("postgres", pg_bin().join("initdb"))
            .args([
                "-N",
                "--wal-segsize=1",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data),
    );

    let conf = data.join("postgresql.conf");
    let mut text = fs::read_to_string(&conf).expect("read postgresql.conf");
    text.push_str("\n# --- vigil test harness ---\n");
    text.push_str(TEMPLATE_SETTINGS);
    fs::write(&conf, text).expect("append to postgresql.conf");

    // Single-user mode: no server, port or socket needed to create the role and database.
    let log = dir.path().join("single-user.log");
    let script = dir.path().join("setup.sql");
    fs::write(&script, TEMPLATE_SQL).expect("write the template SQL");
    let status = command_as("postgres", pg_bin().join("postgres"))
        .args(["--single", "-D"])
        .arg(&data)
        .arg("postgres")
        .current_dir("/")
        .stdin(fs::File::open(&script).expect("open the template SQL"))
        .stdout(fs::File::create(&log).expect("create the single-user log"))
        .stderr(fs::File::create(dir.path().join("single-user.err")).expect("create a log"))
        .status()
        .expect("run postgres --single");
    let err = fs::read_to_string(dir.path().join("single-user.err")).unwrap_or_default();
    assert!(
        status.success() && !err.contains("ERROR"),
        "creating the vigil role and database failed ({status}):\n{err}\n{}",
        log_tail(&log, 20)
    );
    dir
}
