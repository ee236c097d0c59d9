//! A throwaway PostgreSQL cluster for tests: its own temp dir, a free port on 127.0.0.1, trust auth.
//!
//! ```no_run
//! # fn main() -> Result<(), testkit::pg::PgError> {
//! let Some(pg) = testkit::pg::PgCluster::start()? else {
//!     return Ok(()); // skipped (message printed); under CI=true start() errs instead
//! };
//! let url = pg.create_database("policy")?; // postgres://postgres@127.0.0.1:PORT/policy
//! # let _ = url; Ok(()) }
//! ```
//!
//! - Many tests in one binary: share [`shared()`] (started once, ~1.5 s) and give each test its
//!   own [`PgCluster::fresh_database`] (~0.1-0.3 s). Fault tests that [`PgCluster::kill`],
//!   [`PgCluster::stop`] or [`PgCluster::restart`] the server start their own cluster.
//! - Binaries: `$SCEPLAB_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
//!   Missing binaries give `Ok(None)` (with a "skipped" line on stderr) unless `CI=true`, where
//!   they are an error, so CI never skips silently.
//! - As root the server runs as the `postgres` user (via `setpriv`), because PostgreSQL refuses
//!   to run as root.
//! - Defaults favour speed: `fsync=off` (a SIGKILL of the server still loses nothing committed;
//!   only an OS crash would), `max_connections=200`. Use [`PgCluster::start_with`] and
//!   [`PgOptions`] for durable settings, e.g. in benchmarks.
//! - Cleanup: `Drop` stops the server (immediate mode) and removes the directory. A watchdog
//!   process does the same if the test process dies first or the cluster lives in a `static`
//!   (see [`shared`]), so no server outlives its test binary.

mod host;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use std::{fs, io, thread};

use crate::cmd::{self, CmdError, CmdOutput, wait_until};
use host::{find_bin_dir, free_port, is_root, postgres_ids, spawn_watchdog};

/// Env var naming a directory that holds `initdb`, `postgres`, `pg_ctl`, `pg_isready`, `psql`
/// and `createdb`.
pub const BIN_ENV: &str = "SCEPLAB_PG_BIN";

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a cluster could not be set up or driven.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "PostgreSQL binaries not found (looked in {searched}); install Debian's postgresql \
         (scripts/setup.sh) or set {BIN_ENV}"
    )]
    BinariesMissing { searched: String },
    #[error(
        "{BIN_ENV}={0} does not hold all of initdb, postgres, pg_ctl, pg_isready, psql, createdb"
    )]
    BadBinDir(PathBuf),
    #[error("running as root but there is no `postgres` user to run the server as")]
    NoPostgresUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} failed ({status}): {stderr}")]
    Command {
        what: String,
        status: String,
        stderr: String,
    },
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error(
        "PostgreSQL did not start on 127.0.0.1:{port}: {reason}\n--- server log tail ---\n{log_tail}"
    )]
    Start {
        port: u16,
        reason: String,
        log_tail: String,
    },
    #[error("invalid database name {0:?}: use 1 to 63 of [a-z0-9_], not starting with a digit")]
    BadName(String),
    #[error("the PostgreSQL server is not running")]
    NotRunning,
    #[error("the shared cluster could not start: {0}")]
    Shared(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> PgError {
    let what = what.into();
    move |source| PgError::Io { what, source }
}

/// Server settings; `Default` is the fast throwaway profile.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `fsync`; off by default (tests), on for anything that measures durability costs.
    pub fsync: bool,
    pub max_connections: u32,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
    /// Bound on initdb and on each wait for the server to accept connections.
    pub start_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            max_connections: 200,
            settings: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// A running (or deliberately stopped/killed) throwaway cluster; see the module docs.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    /// `Some((uid, gid))` of `postgres` when we are root and must drop privileges.
    run_as: Option<(u32, u32)>,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    port: u16,
    opts: PgOptions,
    postmaster: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    next_db: AtomicU32,
}

impl PgCluster {
    /// Starts a cluster with [`PgOptions::default`]. `Ok(None)`: binaries missing, CI not true.
    pub fn start() -> Result<Option<Self>, PgError> {
        Self::start_with(PgOptions::default())
    }

    /// Starts a cluster with the given options. `Ok(None)`: binaries missing, CI not true.
    pub fn start_with(opts: PgOptions) -> Result<Option<Self>, PgError> {
        let bin = match find_bin_dir()? {
            Ok(bin) => bin,
            Err(searched) if crate::ci() => return Err(PgError::BinariesMissing { searched }),
            Err(searched) => {
                crate::unavailable(&format!(
                    "PostgreSQL binaries not found (looked in {searched})"
                ));
                return Ok(None);
            }
        };
        let run_as = if is_root() {
            Some(postgres_ids()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("sceplab-pg-")
            .tempdir()
            .map_err(io_err("creating the cluster's temp dir"))?;
        let root = dir.path().to_path_buf();
        fs::create_dir(root.join("run")).map_err(io_err("creating the socket dir"))?;
        if let Some((uid, gid)) = run_as {
            for path in [root.clone(), root.join("run")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(io_err(format!("chown {} to postgres", path.display())))?;
            }
        }
        let mut cluster = Self {
            bin,
            run_as,
            dir: Some(dir),
            root,
            port: 0,
            opts,
            postmaster: None,
            watchdog: None,
            next_db: AtomicU32::new(1),
        };
        cluster.initdb()?;
        cluster.watchdog = Some(spawn_watchdog(&cluster.root)?);
        // A free port can be taken between probing and binding: retry with a new one.
        for attempt in 0.. {
            cluster.port = free_port()?;
            match cluster.launch() {
                Ok(()) => break,
                Err(PgError::Start { log_tail, .. })
                    if attempt < 3 && log_tail.contains("could not bind") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(cluster))
    }

    /// The URL of the default `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `name` (which need not exist yet).
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The directory of the PostgreSQL binaries in use (psql, pg_dump, ... for tests).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log (stdout and stderr of every start), for failure messages.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 0)
    }

    /// The postmaster's pid while this handle knows it to be running.
    pub fn pid(&self) -> Option<u32> {
        self.postmaster.as_ref().map(Child::id)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, PgError> {
        check_name(name)?;
        let out = self.client("createdb", &[name.to_owned()])?;
        ok_or_err(&format!("createdb {name}"), &out)?;
        Ok(self.url_for(name))
    }

    /// Creates a database with a name unique in this cluster (`test_1`, `test_2`, ...).
    pub fn fresh_database(&self) -> Result<String, PgError> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("test_{n}"))
    }

    /// Runs `sql` with psql in `database`, stopping at the first error; returns unaligned,
    /// tuples-only output (`|`-separated columns, one row a line).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, PgError> {
        let args = [
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ];
        let out = self.client("psql", &args.map(String::from))?;
        ok_or_err("psql", &out)?;
        Ok(out.stdout_str())
    }

    /// SIGKILLs the postmaster (a crash, for fault tests). Its backends exit on their own soon
    /// after; [`restart`](Self::restart) waits for them.
    pub fn kill(&mut self) -> Result<(), PgError> {
        let mut child = self.postmaster.take().ok_or(PgError::NotRunning)?;
        child.kill().map_err(io_err("killing the postmaster"))?;
        child.wait().map_err(io_err("reaping the postmaster"))?;
        Ok(())
    }

    /// Stops the server cleanly (fast mode: sessions are cut, a checkpoint is written).
    pub fn stop(&mut self) -> Result<(), PgError> {
        self.shutdown("fast")
    }

    /// Stops the server if it runs, then starts it again on the same data dir and port.
    pub fn restart(&mut self) -> Result<(), PgError> {
        if self.postmaster.is_some() {
            self.stop()?;
        }
        // After a kill, orphaned backends may hold the old shared memory for a moment.
        let deadline = Instant::now() + self.opts.start_timeout;
        loop {
            match self.launch() {
                Err(PgError::Start { log_tail, .. })
                    if Instant::now() < deadline
                        && (log_tail.contains("still in use")
                            || log_tail.contains("could not bind")) =>
                {
                    thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// `pg_ctl stop -m mode`, then reap our child; SIGKILL if it will not go.
    fn shutdown(&mut self, mode: &str) -> Result<(), PgError> {
        let mut child = self.postmaster.take().ok_or(PgError::NotRunning)?;
        let data = self.root.join("data");
        let mut cmd = self.server_command("pg_ctl");
        cmd.args(["stop", "-w", "-t", "30", "-m", mode, "-D"])
            .arg(&data);
        let stopped = cmd::run_command(&mut cmd, None, Duration::from_secs(40));
        let exited = wait_until(&mut child, Instant::now() + Duration::from_secs(10))
            .map_err(io_err("waiting for the postmaster"))?;
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        match stopped {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => ok_or_err(&format!("pg_ctl stop -m {mode}"), &out),
            Err(e) => Err(e.into()),
        }
    }

    fn initdb(&self) -> Result<(), PgError> {
        let mut cmd = self.server_command("initdb");
        cmd.arg("-D").arg(self.root.join("data"));
        cmd.args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"]);
        cmd.args(["--no-sync", "--no-instructions"]);
        let out = cmd::run_command(&mut cmd, None, self.opts.start_timeout)?;
        ok_or_err("initdb", &out)
    }

    /// Spawns the postmaster on `self.port` and waits until it accepts connections.
    fn launch(&mut self) -> Result<(), PgError> {
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("opening the server log"))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log.try_clone().map_err(io_err("opening the server log"))?;
        let mut cmd = self.server_command("postgres");
        cmd.arg("-D").arg(self.root.join("data"));
        cmd.arg("-p").arg(self.port.to_string());
        let mut settings = vec![
            ("listen_addresses".to_owned(), "127.0.0.1".to_owned()),
            (
                "unix_socket_directories".to_owned(),
                self.root.join("run").display().to_string(),
            ),
            (
                "max_connections".to_owned(),
                self.opts.max_connections.to_string(),
            ),
            (
                "fsync".to_owned(),
                if self.opts.fsync { "on" } else { "off" }.to_owned(),
            ),
        ];
        settings.extend(self.opts.settings.iter().cloned());
        for (name, value) in settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io_err("spawning postgres"))?;
        let fail = |port, reason: String| PgError::Start {
            port,
            reason,
            log_tail: log_tail(&log_path, log_start),
        };

        let deadline = Instant::now() + self.opts.start_timeout;
        loop {
            if let Some(status) = child.try_wait().map_err(io_err("waiting for postgres"))? {
                return Err(fail(self.port, format!("postgres exited ({status})")));
            }
            let ready = self.client("pg_isready", &["-t".to_owned(), "2".to_owned()]);
            if matches!(ready, Ok(ref out) if out.success()) {
                self.postmaster = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let timeout = self.opts.start_timeout;
                return Err(fail(
                    self.port,
                    format!("not accepting connections after {timeout:?}"),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A server-side tool (initdb, pg_ctl, postgres), as `postgres` when we are root.
    fn server_command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        let mut cmd = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups");
                c.arg("--").arg(program);
                c
            }
            None => Command::new(program),
        };
        // The postgres user may not be able to enter the test's working directory.
        cmd.current_dir(&self.root);
        cmd
    }

    /// A client tool (psql, createdb, pg_isready) pointed at this cluster over TCP.
    fn client(&self, tool: &str, args: &[String]) -> Result<CmdOutput, PgError> {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        cmd.args(args);
        for var in [
            "PGSERVICE",
            "PGOPTIONS",
            "PGSSLMODE",
            "PGPASSFILE",
            "PGPASSWORD",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PGCONNECT_TIMEOUT", "5").current_dir(&self.root);
        Ok(cmd::run_command(&mut cmd, None, CLIENT_TIMEOUT)?)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.postmaster.is_some() {
            let _ = self.shutdown("immediate");
        }
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// One cluster per test binary, started on first use and cleaned up by its watchdog when the
/// process exits. Tests share it through [`PgCluster::fresh_database`]; fault tests that kill or
/// restart the server need their own [`PgCluster::start`].
pub fn shared() -> Result<Option<&'static PgCluster>, PgError> {
    static SHARED: OnceLock<Result<Option<PgCluster>, String>> = OnceLock::new();
    match SHARED.get_or_init(|| PgCluster::start().map_err(|e| e.to_string())) {
        Ok(cluster) => Ok(cluster.as_ref()),
        Err(e) => Err(PgError::Shared(e.clone())),
    }
}

fn check_name(name: &str) -> Result<(), PgError> {
    let ok = (1..=63).contains(&name.len())
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PgError::BadName(name.to_owned()))
    }
}

fn ok_or_err(what: &str, out: &CmdOutput) -> Result<(), PgError> {
    if out.success() {
        return Ok(());
    }
    Err(PgError::Command {
        what: what.to_owned(),
        status: out.status.to_string(),
        stderr: out.stderr_str().trim().to_owned(),
    })
}

/// The last 40 lines of `path` from byte `from` on.
fn log_tail(path: &Path, from: u64) -> String {
    let Ok(bytes) = fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = String::new();
    for line in &lines[lines.len().saturating_sub(40)..] {
        let _ = writeln!(tail, "{line}");
    }
    tail
}
