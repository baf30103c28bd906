//! A real PostgreSQL for the tests: `initdb` into a temporary directory and `postgres` on
//! a free loopback port (as `nobody` when the tests run as root, which PostgreSQL
//! refuses), killed with the test process. Each test gets a database of its own.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running server.
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// Where Debian's PostgreSQL binaries are (the newest version installed).
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

/// The shared server, started on first use; `None` (with a notice) only where PostgreSQL
/// is not installed and CI is not set.
pub fn server() -> Option<&'static Postgres> {
    static SERVER: OnceLock<Option<Postgres>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let Some(bin) = bin_dir() else {
                assert!(
                    std::env::var("CI").is_err(),
                    "PostgreSQL is not installed (.ci/run installs Debian's postgresql)"
                );
                eprintln!(
                    "SKIPPED: PostgreSQL backend tests: no /usr/lib/postgresql/*/bin (apt-get install postgresql)"
                );
                return None;
            };
            Some(start(&bin))
        })
        .as_ref()
}

/// Runs a PostgreSQL binary, as `nobody` when we are root.
fn pg_command(bin: &Path, program: &str) -> Command {
    if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            // The server ends with the thread that started it (see `start`).
            "--pdeathsig=KILL",
        ])
        .arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

/// The temporary directories' prefix; the test process's id follows.
const PREFIX: &str = "wasmhost-pg-";

/// Removes the directories of servers whose test process is gone: the shared server lives
/// in a static, which is never dropped, so its directory outlives the process.
fn remove_stale_servers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether the tests run as root (`/proc/self` belongs to the process's user).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn start(bin: &Path) -> Postgres {
    remove_stale_servers();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir()
        .expect("temp dir");
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(dir.path())
            .status()
            .expect("chown runs");
        assert!(status.success());
    }
    let data = dir.path().join("data");
    let out = pg_command(bin, "initdb")
        .args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .expect("initdb runs");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (data2, sockets, bin) = (data.clone(), dir.path().to_owned(), bin.to_owned());
    let (tx, rx) = std::sync::mpsc::channel();
    // This thread lives as long as the test process: the server dies with it.
    std::thread::spawn(move || {
        let child = pg_command(&bin, "postgres")
            .arg("-D")
            .arg(&data2)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "max_connections=300"])
            .arg("-k")
            .arg(&sockets)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let _ = tx.send(child.is_ok());
        if let Ok(mut child) = child {
            let _ = child.wait();
        }
    });
    assert!(rx.recv().unwrap_or(false), "postgres did not start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = Postgres { port, _dir: dir };
    // Accepting connections comes a moment after listening.
    while server.psql("postgres", "SELECT 1").is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres did not accept connections"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

impl Postgres {
    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs one statement with `psql`; its output, or why it failed.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let bin = bin_dir().ok_or("no psql")?;
        let out = Command::new(bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url(db))
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Locks `tables` of database `db` against every other session, reads included, until
    /// the returned lock is released or dropped: the store's queries on them wait.
    pub fn lock_tables(&self, db: &str, tables: &[&str]) -> TableLock {
        let bin = bin_dir().expect("psql");
        let mut session = Command::new(bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg(self.url(db))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("psql runs");
        let list = tables.join(", ");
        let stdin = session.stdin.as_mut().expect("psql's stdin");
        writeln!(stdin, "BEGIN; LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE;").expect("to psql");
        let names = tables
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let held = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname IN ({names}) AND l.mode = 'AccessExclusiveLock' AND l.granted"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.psql(db, &held).ok() != Some(tables.len().to_string()) {
            assert!(Instant::now() < deadline, "the tables were not locked");
            std::thread::sleep(Duration::from_millis(20));
        }
        TableLock { session }
    }

    /// How many sessions of database `db` wait for a lock.
    pub fn waiting_for_locks(&self, db: &str) -> usize {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND wait_event_type = 'Lock'"
        );
        self.psql("postgres", &sql)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(&name)
    }
}

/// Tables locked by a session of their own (see [`Postgres::lock_tables`]).
pub struct TableLock {
    session: std::process::Child,
}

impl TableLock {
    /// Ends the lock's transaction, and with it the lock.
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(mut stdin) = self.session.stdin.take() {
            let _ = writeln!(stdin, "COMMIT;");
        }
        let _ = self.session.wait();
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.end();
    }
}
