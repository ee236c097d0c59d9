//! The lab as separate processes: ca-mock, policy-module and ndes-proxy binaries started from
//! configuration files, for scale-out and fault (`kill -9`) tests.
//!
//! [`Cluster::start`] writes a configuration directory with [`scep_lab::services::prepare`]
//! (from the committed samples) in a temporary directory, spawns every process, and returns once
//! each answers `GET /healthz`. [`Cluster::kill`] sends SIGKILL and reaps; [`Cluster::restart`]
//! starts a service again with the same configuration and port. Dropping the cluster kills every
//! process it started, also when the test panics (the drop runs while unwinding). Each
//! process's stdout and stderr go to a log file ([`Cluster::log`]) that survives restarts.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use scep_lab_tests::processes::{Cluster, ClusterOptions, Role, ServiceId};
//! let Some(pg) = testkit::pg::PgCluster::start()? else { return Ok(()) }; // skipped
//! let mut cluster = Cluster::start(ClusterOptions::postgres(&pg, 2, 2)?).await?;
//! let ndes = ServiceId::new(Role::Ndes, 1);
//! cluster.kill(ndes)?;                 // kill -9
//! cluster.restart(ndes).await?;        // same config and port; returns once healthy
//! println!("{}", cluster.scep_url(1)); // http://127.0.0.1:PORT/certsrv/mscep/mscep.dll
//! # Ok(()) }
//! ```
//!
//! The binaries come from [`binaries`]: `$SCEP_LAB_BIN_DIR` when set (e.g. a release build),
//! else `cargo build --workspace --bins --tests --examples` into the test's own target
//! directory, which after `cargo test --workspace` has nothing left to do (the same targets
//! with the same features, so nothing is rebuilt).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use scep_lab::services::{Postgres, ServicesLayout, ServicesOptions, prepare};

/// Longest a service may take to answer `/healthz` after it is spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The three service binaries.
#[derive(Debug)]
pub struct Binaries {
    /// `ca-mock`.
    pub ca_mock: PathBuf,
    /// `policy-module`.
    pub policy_module: PathBuf,
    /// `ndes-proxy`.
    pub ndes_proxy: PathBuf,
    /// `scep-lab` (the all-in-one command; for README and CLI checks).
    pub scep_lab: PathBuf,
    /// The `in_your_tests` example of the `scep-lab` package (quoted by the README); with
    /// `$SCEP_LAB_BIN_DIR` it is looked for under `examples/` there and may be missing.
    pub lab_example: PathBuf,
}

/// The service binaries, located (or built) once per test process; see the module docs.
pub fn binaries() -> Result<&'static Binaries> {
    static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| locate_binaries().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("service binaries: {e}"))
}

fn locate_binaries() -> Result<Binaries> {
    if let Some(dir) = std::env::var_os("SCEP_LAB_BIN_DIR") {
        let dir = PathBuf::from(dir);
        let bins = Binaries {
            ca_mock: dir.join("ca-mock"),
            policy_module: dir.join("policy-module"),
            ndes_proxy: dir.join("ndes-proxy"),
            scep_lab: dir.join("scep-lab"),
            lab_example: dir.join("examples/in_your_tests"),
        };
        for b in [
            &bins.ca_mock,
            &bins.policy_module,
            &bins.ndes_proxy,
            &bins.scep_lab,
        ] {
            if !b.is_file() {
                bail!("{} not found (SCEP_LAB_BIN_DIR)", b.display());
            }
        }
        return Ok(bins);
    }
    // The test executable is <target>/<profile dir>/deps/<name>: build into the same place.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("locating the target directory")?;
    let target = profile_dir
        .parent()
        .context("locating the target directory")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--locked",
        "--workspace",
        "--bins",
        "--tests",
        "--examples",
    ])
    .arg("--message-format=json-render-diagnostics")
    .arg("--manifest-path")
    .arg(&manifest)
    .arg("--target-dir")
    .arg(target);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "cargo build failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut found = std::collections::HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin" || k == "example"));
        let test = msg["profile"]["test"].as_bool().unwrap_or(false);
        if let (true, false, Some(exe)) = (is_bin, test, msg["executable"].as_str()) {
            found.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    let mut take = |name: &str| {
        found
            .remove(name)
            .with_context(|| format!("cargo build did not report the {name} binary"))
    };
    Ok(Binaries {
        ca_mock: take("ca-mock")?,
        policy_module: take("policy-module")?,
        ndes_proxy: take("ndes-proxy")?,
        scep_lab: take("scep-lab")?,
        lab_example: take("in_your_tests")?,
    })
}

/// Which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// ca-mock.
    Ca,
    /// policy-module.
    Policy,
    /// ndes-proxy.
    Ndes,
}

/// One process of the cluster: a role and a 0-based instance index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceId {
    /// The service.
    pub role: Role,
    /// Its instance, from 0.
    pub index: usize,
}

impl ServiceId {
    /// Instance `index` (from 0) of `role`.
    pub fn new(role: Role, index: usize) -> Self {
        Self { role, index }
    }
}

impl std::fmt::Display for ServiceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.role {
            Role::Ca => "ca-mock",
            Role::Policy => "policy-module",
            Role::Ndes => "ndes-proxy",
        };
        write!(f, "{name}#{}", self.index)
    }
}

/// How many instances, on which database.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// policy-module processes.
    pub policy_instances: usize,
    /// ndes-proxy processes (instance i calls policy-module i modulo the policy count).
    pub ndes_instances: usize,
    /// Shared PostgreSQL; `None`: SQLite, one instance of each.
    pub postgres: Option<Postgres>,
    /// The outbox poll interval, milliseconds (short, so revocations show up quickly).
    pub outbox_poll_ms: u64,
}

impl ClusterOptions {
    /// One of each service on SQLite.
    pub fn sqlite() -> Self {
        Self {
            policy_instances: 1,
            ndes_instances: 1,
            postgres: None,
            outbox_poll_ms: 200,
        }
    }

    /// `policy` policy-module and `ndes` ndes-proxy processes (and one ca-mock) sharing the
    /// server `pg`, in three fresh databases (one per service).
    pub fn postgres(pg: &testkit::pg::PgCluster, policy: usize, ndes: usize) -> Result<Self> {
        Ok(Self {
            policy_instances: policy,
            ndes_instances: ndes,
            postgres: Some(Postgres {
                ca: pg.fresh_database()?,
                policy: pg.fresh_database()?,
                pending: pg.fresh_database()?,
            }),
            outbox_poll_ms: 200,
        })
    }
}

struct Process {
    id: ServiceId,
    program: PathBuf,
    config: PathBuf,
    addr: SocketAddr,
    log: PathBuf,
    /// Where stdout and stderr go instead of `log` (e.g. `/dev/full`), and at which level.
    output: Option<(PathBuf, String)>,
    child: Option<Child>,
}

/// Running service processes; see the module docs. Killed on drop.
pub struct Cluster {
    layout: ServicesLayout,
    processes: Vec<Process>,
    http: reqwest::Client,
    // Last: removed after the processes are gone.
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Writes the configuration, starts ca-mock, then the policy modules, then the ndes-proxies,
    /// each waited for until healthy.
    pub async fn start(options: ClusterOptions) -> Result<Self> {
        let bins = binaries()?;
        let dir = tempfile::Builder::new()
            .prefix("scep-lab-procs-")
            .tempdir()?;
        let ports =
            |n: usize| -> Result<Vec<u16>> { (0..n).map(|_| Ok(testkit::free_port()?)).collect() };
        let services = ServicesOptions {
            ca_port: testkit::free_port()?,
            policy_ports: ports(options.policy_instances)?,
            ndes_ports: ports(options.ndes_instances)?,
            postgres: options.postgres.clone(),
            outbox_poll_ms: Some(options.outbox_poll_ms),
            // Plain HTTP: the harness addresses every service by one port (`scep-lab services`
            // turns TLS on by default; tests/tests/deployments.rs runs that).
            tls: None,
        };
        let layout = prepare(&dir.path().join("services"), &services).await?;
        std::fs::create_dir_all(dir.path().join("logs"))?;
        let mut processes = Vec::new();
        let mut add = |id: ServiceId, program: &Path, config: &Path, addr: SocketAddr| {
            processes.push(Process {
                id,
                program: program.to_owned(),
                config: config.to_owned(),
                addr,
                log: dir.path().join("logs").join(format!("{id}.log")),
                output: None,
                child: None,
            });
        };
        add(
            ServiceId::new(Role::Ca, 0),
            &bins.ca_mock,
            &layout.ca_config,
            layout.ca_addr,
        );
        for (i, (c, a)) in layout
            .policy_configs
            .iter()
            .zip(&layout.policy_addrs)
            .enumerate()
        {
            add(ServiceId::new(Role::Policy, i), &bins.policy_module, c, *a);
        }
        for (i, (c, a)) in layout
            .ndes_configs
            .iter()
            .zip(&layout.ndes_addrs)
            .enumerate()
        {
            add(ServiceId::new(Role::Ndes, i), &bins.ndes_proxy, c, *a);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut cluster = Self {
            layout,
            processes,
            http,
            _dir: dir,
        };
        let ids: Vec<_> = cluster.processes.iter().map(|p| p.id).collect();
        for id in ids {
            cluster.restart(id).await?;
        }
        Ok(cluster)
    }

    /// What was written: configuration paths, addresses, root fingerprint, secrets.
    pub fn layout(&self) -> &ServicesLayout {
        &self.layout
    }

    /// Runs the reconciler (`scep-lab audit --configs`) over this cluster's stores, CRL file
    /// and OCSP; the processes may be running.
    pub async fn reconcile(&self) -> Result<scep_lab::reconcile::Report> {
        let l = &self.layout;
        let (policy, ndes) = (
            l.policy_configs.first().context("no policy-module")?,
            l.ndes_configs.first().context("no ndes-proxy")?,
        );
        let sources =
            scep_lab::reconcile::Sources::from_configs(&l.ca_config, policy, ndes).await?;
        let now = foundation::clock::unix_now();
        let report = scep_lab::reconcile::reconcile(&sources, now).await;
        sources.close().await;
        report
    }

    /// Every certificate in the CA's store (read through ca-mock's configuration, SQLite or
    /// PostgreSQL), by normalized serial; a serial recorded twice is an error.
    pub async fn ca_certificates(&self) -> Result<std::collections::HashMap<String, Vec<u8>>> {
        use ca_mock::store::{CertStore, ListFilter, SqlStore};
        let config = ca_mock::Config::load(&self.layout.ca_config)?;
        let store = SqlStore::connect(&config.database).await?;
        let mut out = std::collections::HashMap::new();
        let mut after = None;
        let result = loop {
            let filter = ListFilter {
                request_id: None,
                after: after.clone(),
                limit: 1000,
            };
            let page = match store.list(&filter).await {
                Ok(page) => page,
                Err(e) => break Err(anyhow!("listing the CA store: {e}")),
            };
            let Some(last) = page.last() else {
                break Ok(());
            };
            after = Some(last.cert.serial.clone());
            let full = page.len() == 1000;
            for r in page {
                let serial = crate::normalize_serial(&r.cert.serial);
                if out.insert(serial.clone(), r.cert.der).is_some() {
                    store.close().await;
                    bail!("serial {serial} recorded twice");
                }
            }
            if !full {
                break Ok(());
            }
        };
        store.close().await;
        result.map(|()| out)
    }

    /// The configuration file a service was started from (a test may edit it, then
    /// [`Cluster::restart`] the service).
    pub fn config(&self, id: ServiceId) -> &Path {
        &self.process(id).config
    }

    /// From the next (re)start on, the service writes stdout and stderr to `path` instead of
    /// its log file (e.g. `/dev/full`: every write fails), logging at `rust_log`.
    pub fn set_output(&mut self, id: ServiceId, path: &Path, rust_log: &str) {
        self.process_mut(id).output = Some((path.to_owned(), rust_log.to_owned()));
    }

    /// Every process's id, in start order.
    pub fn ids(&self) -> Vec<ServiceId> {
        self.processes.iter().map(|p| p.id).collect()
    }

    /// `http://127.0.0.1:PORT` of a service.
    pub fn url(&self, id: ServiceId) -> String {
        format!("http://{}", self.process(id).addr)
    }

    /// ca-mock's base URL.
    pub fn ca_url(&self) -> String {
        self.url(ServiceId::new(Role::Ca, 0))
    }

    /// policy-module instance `i`'s base URL.
    pub fn policy_url(&self, i: usize) -> String {
        self.url(ServiceId::new(Role::Policy, i))
    }

    /// ndes-proxy instance `i`'s SCEP URL (NDES's path).
    pub fn scep_url(&self, i: usize) -> String {
        format!(
            "{}/certsrv/mscep/mscep.dll",
            self.url(ServiceId::new(Role::Ndes, i))
        )
    }

    /// The process id while the service runs.
    pub fn pid(&self, id: ServiceId) -> Option<u32> {
        self.process(id).child.as_ref().map(Child::id)
    }

    /// Everything the service wrote to stdout and stderr, over all its starts.
    pub fn log(&self, id: ServiceId) -> String {
        std::fs::read(&self.process(id).log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Stops the service with SIGTERM (a clean shutdown) and returns its exit status, or
    /// `None` if it was not running. Gives up after `READY_TIMEOUT`, killing it.
    pub async fn terminate(&mut self, id: ServiceId) -> Result<Option<std::process::ExitStatus>> {
        let Some(mut child) = self.process_mut(id).child.take() else {
            return Ok(None);
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {id} failed: {status}");
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{id} did not exit within {READY_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9` the service and reap it. A service already stopped is left alone.
    pub fn kill(&mut self, id: ServiceId) -> Result<()> {
        let p = self.process_mut(id);
        if let Some(mut child) = p.child.take() {
            // std's Child::kill is SIGKILL on Unix.
            child.kill().with_context(|| format!("killing {id}"))?;
            child.wait().with_context(|| format!("reaping {id}"))?;
        }
        Ok(())
    }

    /// (Re)starts the service with its configuration and port, killing it first if it runs,
    /// and returns once it answers `GET /healthz` with 200.
    pub async fn restart(&mut self, id: ServiceId) -> Result<()> {
        self.kill(id)?;
        let p = self.process_mut(id);
        let (file, rust_log) = match &p.output {
            Some((path, level)) => (path.as_path(), level.as_str()),
            None => (p.log.as_path(), "info"),
        };
        let log = File::options()
            .create(true)
            .append(true)
            .open(file)
            .with_context(|| format!("opening {}", file.display()))?;
        let child = Command::new(&p.program)
            .arg("serve")
            .arg("--config")
            .arg(&p.config)
            .env("RUST_LOG", rust_log)
            // Plain text logs, so tests can search them.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {id} ({})", p.program.display()))?;
        p.child = Some(child);
        self.wait_ready(id).await
    }

    async fn wait_ready(&mut self, id: ServiceId) -> Result<()> {
        let url = format!("{}/healthz", self.url(id));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            let exited = match self.process_mut(id).child.as_mut() {
                Some(c) => c.try_wait()?,
                None => bail!("{id} is not running"),
            };
            if let Some(status) = exited {
                self.process_mut(id).child = None;
                bail!(
                    "{id} exited ({status}) before it was ready:\n{}",
                    self.log(id)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{id} not healthy after {READY_TIMEOUT:?}:\n{}",
                    self.log(id)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn process(&self, id: ServiceId) -> &Process {
        self.processes
            .iter()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("no {id} in this cluster"))
    }

    fn process_mut(&mut self, id: ServiceId) -> &mut Process {
        self.processes
            .iter_mut()
            .find(|p| p.id == id)
            .unwrap_or_else(|| panic!("no {id} in this cluster"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Reverse start order: front ends first, so nothing logs errors about a dead backend
        // it would otherwise retry against.
        for p in self.processes.iter_mut().rev() {
            if let Some(mut child) = p.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
