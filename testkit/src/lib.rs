//! Test-only helpers shared by the workspace: throwaway PostgreSQL, CLI oracles, ports, a test
//! PKI, hand-built SCEP messages and a recording SCEP transport.
//!
//! Third-party tools are optional on a developer's machine and mandatory in CI: when one is
//! missing, tests skip with a printed reason unless `CI=true`, where they fail.
//!
//! - [`pg`]: a throwaway PostgreSQL cluster on a free loopback port.
//! - [`binary`] / [`unavailable`]: find a third-party program or skip (fail under CI).
//! - [`openssl`]: run the `openssl` CLI as an oracle, with a timeout.
//! - [`cmd`]: run any program with a timeout.
//! - [`cli_surface`]: what every binary does alike: completions, `--log-format`, closed pipes.
//! - [`cms_oracle`]: open a CertRep with the `openssl cms` command line.
//! - [`fuzz_corpus`]: replay the committed fuzz corpora as regression tests.
//! - [`pki`]: keys, names, CA/RA/device certificates and the NDES-shaped RA hierarchy.
//! - [`scep_msg`]: SCEP messages, CMS and CSRs no correct client sends.
//! - [`der`] / [`greedy`]: a small DER writer, and the extensions a greedy CSR asks for.
//! - [`fault_classes`]: the error contract's input classes as labelled tables (envelope
//!   faults, OIDs past the bounds, OIDs at each place a CSR carries one).
//! - `transport` (feature `transport`): a device-agent SCEP transport that records traffic.
//! - `peers` (feature `peers`): micromdm `scepclient` driven through `peers/client-micromdm.sh`.

pub mod cli_surface;
pub mod cmd;
pub mod cms_oracle;
pub mod der;
pub mod fault_classes;
pub mod fuzz_corpus;
pub mod greedy;
#[cfg(feature = "peers")]
pub mod peers;
pub mod pg;
pub mod pki;
pub mod scep_msg;
#[cfg(feature = "transport")]
pub mod transport;

use std::path::PathBuf;

pub use cmd::{CmdError, CmdOutput};

/// True when `CI=true`: missing tools are failures, not skips.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports that `what` is unavailable: panics under `CI=true`, else prints a "skipped" line.
/// The caller returns early from its test after this.
pub fn unavailable(what: &str) {
    assert!(
        !ci(),
        "{what}, and CI=true makes a missing dependency a failure"
    );
    eprintln!("skipped: {what} (set CI=true to make this a failure)");
}

/// The path of program `name` on `PATH`. `None` (with a "skipped" line on stderr) when it is
/// absent and CI is not true; panics when it is absent under `CI=true`.
///
/// ```no_run
/// let Some(scepclient) = testkit::binary("scepclient") else { return };
/// # let _ = scepclient;
/// ```
pub fn binary(name: &str) -> Option<PathBuf> {
    let found = cmd::find_on_path(name);
    if found.is_none() {
        unavailable(&format!("`{name}` not found on PATH"));
    }
    found
}

/// Runs `openssl args` with optional stdin, killed after [`cmd::OPENSSL_TIMEOUT`].
/// A non-zero exit is returned as output (check [`CmdOutput::success`]), not as an error.
pub fn openssl<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    stdin: Option<&[u8]>,
) -> Result<CmdOutput, CmdError> {
    cmd::run("openssl", args, stdin, cmd::OPENSSL_TIMEOUT)
}

/// A free TCP port on 127.0.0.1 at the time of the call (it may be taken before you bind it;
/// prefer binding `127.0.0.1:0` yourself when you can).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
