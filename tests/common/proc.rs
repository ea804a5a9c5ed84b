//! Process plumbing shared by the PostgreSQL and Mosquitto harnesses: who we run as,
//! where the binaries are, running commands with readable failures, and log tails.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Where instances keep their data: `$VIGIL_TEST_TMPDIR` if set, else `/dev/shm` when it
/// is a writable tmpfs with room (PostgreSQL's data directory is ~1,300 small files;
/// copying them onto a busy ext4 took 1-1.5 s, onto tmpfs 0.1 s), else the system tempdir.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("VIGIL_TEST_TMPDIR") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        if free_kib(shm).is_some_and(|kib| kib >= SHM_MIN_FREE_KIB) && writable(shm) {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// /dev/shm is memory: use it only with this much free (2 GiB).
const SHM_MIN_FREE_KIB: u64 = 2 * 1024 * 1024;

/// Free space on the filesystem holding `dir`, from `df -Pk` (no libc for statvfs).
fn free_kib(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Second line: filesystem, 1024-blocks, used, available, capacity, mount point.
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

fn writable(dir: &Path) -> bool {
    tempfile::tempdir_in(dir).is_ok()
}

/// A fresh directory for one instance under [`scratch_dir`], traversable by the service
/// users (tempdirs are created 0700); removed when dropped.
pub fn instance_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_dir())
        .unwrap_or_else(|e| panic!("create a tempdir in {}: {e}", scratch_dir().display()));
    make_traversable(dir.path());
    dir
}

/// True when the test process runs as root (then servers run as their service users,
/// because `initdb`/`postgres` refuse root and Mosquitto drops to `mosquitto`).
pub fn is_root() -> bool {
    current_uid() == 0
}

/// The process's effective uid: /proc/self belongs to it (saves a dependency on libc).
pub fn current_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .expect("stat /proc/self")
}

/// The first executable `name` on PATH or in `extra_dirs` (/usr/sbin is not on an
/// ordinary user's PATH on Debian).
pub fn find_binary(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A command that runs as `user` when we are root (through `runuser`), else as ourselves.
pub fn command_as(user: &str, program: impl AsRef<Path>) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--"]).arg(program.as_ref());
        cmd
    } else {
        Command::new(program.as_ref())
    }
}

/// Runs `cmd` to completion; on failure returns its exit status and output, for a panic
/// message that says what went wrong.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    // A cwd the service user cannot enter (root's home, say) makes some tools warn or fail.
    cmd.current_dir("/");
    let out = cmd
        .output()
        .map_err(|e| format!("could not run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Like [`run`], panicking with `what` and the command's output on failure.
pub fn run_or_panic(what: &str, cmd: &mut Command) {
    if let Err(e) = run(cmd) {
        panic!("{what}: {e}");
    }
}

/// Gives `path` (recursively) to `user` when we are root; a no-op otherwise.
pub fn chown_to(user: &str, path: &Path) {
    if is_root() {
        run_or_panic(
            &format!("chown {} to {user}", path.display()),
            Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:"))
                .arg(path),
        );
    }
}

/// Lets other users (the service users) traverse into `dir` (tempdirs are created 0700).
pub fn make_traversable(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 0755 {}: {e}", dir.display()));
}

/// The last `lines` lines of a log file (at most its last 64 KiB), for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    format!("--- last lines of {} ---\n{tail}\n---", path.display())
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True when a server log says its port was taken (another test grabbed the same free
/// port between our probe and the server's bind): worth retrying on a new port.
pub fn log_says_port_in_use(path: &Path) -> bool {
    fs::read_to_string(path)
        .map(|log| log.contains("Address already in use"))
        .unwrap_or(false)
}
