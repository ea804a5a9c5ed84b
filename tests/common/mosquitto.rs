//! A private Mosquitto per test: the repository's `config/mosquitto.conf` plus a listener
//! on a free port of 127.0.0.1 and a persistence directory in the instance's tempdir.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;
use super::proc::{
    chown_to, find_binary, instance_dir, log_says_port_in_use, log_tail, port_accepts,
};

/// The broker settings vigil ships; every instance uses them unchanged.
const BASE_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/mosquitto.conf");
/// How many fresh ports to try when another process takes ours before the broker binds it.
const START_ATTEMPTS: u32 = 5;
/// Start-up (including loading the persistence file) must finish within this.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// A graceful stop writes the persistence file; it must finish within this.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// A running (or stopped) private Mosquitto; dropping it kills the broker and deletes
/// its files.
pub struct Mosquitto {
    /// Holds `mosquitto.conf`, `mosquitto.log` (appended across restarts) and `data/`
    /// (the persistence location).
    dir: TempDir,
    /// Fixed for the instance's life, so `start_again` comes back where clients expect it.
    port: u16,
    /// The broker process while it runs.
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts a broker and returns once it accepts connections.
    pub fn start() -> Mosquitto {
        let dir = instance_dir("vigil-mosquitto-");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("create Mosquitto's persistence directory");
        // Started as root, Mosquitto drops to its own user before it saves persistence.
        chown_to(service_user(), &data);

        let mut broker = Mosquitto {
            dir,
            port: 0,
            child: None,
        };
        for attempt in 1..=START_ATTEMPTS {
            broker.port = free_port();
            // A fresh log per attempt, so the port-in-use check reads this attempt only.
            let _ = fs::remove_file(broker.log_path());
            broker.write_conf();
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(e) if attempt < START_ATTEMPTS && broker.port_was_taken() => {
                    eprintln!("Mosquitto: port {} taken, retrying: {e}", broker.port);
                }
                Err(e) => panic!(
                    "Mosquitto did not start: {e}\n{}",
                    log_tail(&broker.log_path(), 30)
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// The broker's TCP port on 127.0.0.1, the same across `stop` / `start_again`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`, the form `VIGIL_MQTT_URL` takes.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's log (appended to across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    /// The generated configuration file.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    /// Stops the broker gracefully (SIGTERM) and waits for it to exit, so its
    /// persistence file (sessions, queued messages) is written. Blocks the calling thread.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The shell's built-in kill: no libc, and no dependency on procps' kill binary.
        let sent = Command::new("sh")
            .args(["-c", "kill -TERM \"$1\"", "sh"])
            .arg(child.id().to_string())
            .status();
        if !matches!(sent, Ok(s) if s.success()) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("could not send SIGTERM to Mosquitto: {sent:?}");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => sleep(POLL),
                other => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "Mosquitto did not exit within {STOP_TIMEOUT:?} of SIGTERM ({other:?})\n{}",
                        log_tail(&self.log_path(), 30)
                    );
                }
            }
        }
    }

    /// Kills the broker (SIGKILL): nothing since the last autosave is written.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again with the same port and persistence directory; returns
    /// once it accepts connections. Blocks the calling thread.
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "Mosquitto::start_again called while running"
        );
        if let Err(e) = self.spawn_and_wait() {
            panic!(
                "Mosquitto did not start again on port {}: {e}\n{}",
                self.port,
                log_tail(&self.log_path(), 30)
            );
        }
    }

    fn write_conf(&self) {
        let base =
            fs::read_to_string(BASE_CONF).unwrap_or_else(|e| panic!("read {BASE_CONF}: {e}"));
        let conf = format!(
            "{base}\n# --- appended by tests/common/mosquitto.rs ---\n\
             listener {} 127.0.0.1\npersistence_location {}/\n",
            self.port,
            self.dir.path().join("data").display()
        );
        fs::write(self.conf_path(), conf).expect("write mosquitto.conf");
    }

    /// Spawns the broker and waits until it has logged "running" (listeners open,
    /// persistence loaded) and accepts a TCP connection.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let stderr = log
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let mut child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(self.conf_path())
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", mosquitto_bin().display()))?;

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("mosquitto exited during start-up ({status})"));
            }
            if logged_since(&log_path, log_start, " running") && port_accepts(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not accepting connections after {START_TIMEOUT:?}"));
            }
            sleep(POLL);
        }
    }

    fn port_was_taken(&self) -> bool {
        log_says_port_in_use(&self.log_path())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when the log, from byte `offset` on, contains `needle`.
fn logged_since(path: &Path, offset: u64, needle: &str) -> bool {
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return false;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).is_ok() && text.contains(needle)
}

fn mosquitto_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        find_binary("mosquitto", &["/usr/sbin", "/usr/local/sbin"])
            .expect("mosquitto not found on PATH or in /usr/sbin: run scripts/setup.sh")
    })
}

/// The user Mosquitto drops to when started as root (`nobody` if `mosquitto` is absent).
fn service_user() -> &'static str {
    static USER: OnceLock<&'static str> = OnceLock::new();
    USER.get_or_init(|| {
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        if passwd.lines().any(|line| line.starts_with("mosquitto:")) {
            "mosquitto"
        } else {
            "nobody"
        }
    })
}
