//! Third-party SCEP peers, driven through the scripts in the repository's `peers/` folder:
//! one runner for every suite that points micromdm `scepclient` at a server.

use std::path::Path;
use std::time::Duration;

/// How long one scepclient run (enrollment, and renewal unless turned off) may take.
pub const SCEPCLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// What a `peers/client-micromdm.sh` run left behind.
#[derive(Debug, Clone)]
pub struct ScepclientRun {
    /// The script's exit status was success (every step it ran passed).
    pub success: bool,
    /// `results.tsv`: one line per step (`name`, `enroll`/`renew`, `PASS`/`FAIL`, ...).
    pub results: String,
    /// Everything a failure message needs: the script's output, the results and the tail of
    /// scepclient's log (or why it did not run).
    pub report: String,
}

impl ScepclientRun {
    /// The results line of `step` (`enroll`, `renew`), or an empty string.
    pub fn step(&self, step: &str) -> &str {
        self.results
            .lines()
            .find(|l| l.split('\t').nth(1) == Some(step))
            .unwrap_or("")
    }
}

/// Runs micromdm `scepclient` through `peers/client-micromdm.sh` against `url` with
/// `challenge`, keeping its files in `out`; `env` sets the script's knobs
/// (`MICROMDM_SELECT`, `MICROMDM_RENEW`, ...). Never panics: a script that could not run or
/// timed out is a failed run whose report says so.
pub async fn micromdm_scepclient(
    url: &str,
    challenge: &str,
    out: &Path,
    cn: &str,
    env: &[(&str, &str)],
) -> ScepclientRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../peers/client-micromdm.sh");
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(&script)
        .args([url, challenge, &out.to_string_lossy(), cn])
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let failed = |why: String| ScepclientRun {
        success: false,
        results: String::new(),
        report: why,
    };
    let output = match tokio::time::timeout(SCEPCLIENT_TIMEOUT, command.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return failed(format!("scepclient did not run: {e}")),
        Err(_) => return failed("scepclient timed out".into()),
    };
    let results = std::fs::read_to_string(out.join("results.tsv")).unwrap_or_default();
    let log = std::fs::read_to_string(out.join("log.txt")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(25).collect();
    let report = format!(
        "{}\n{}\n{results}\nscepclient log (last lines):\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    ScepclientRun {
        success: output.status.success(),
        results,
        report,
    }
}
