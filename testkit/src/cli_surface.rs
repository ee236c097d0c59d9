//! What every binary's command line must do alike (issue 17): a completion script that
//! survives a reader that went away (`| head -1`), and `--log-format json|text` on stderr with
//! no ANSI codes when stderr is not a terminal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{self, CmdOutput};

/// How long one run of a CLI command may take on a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `bin args` with `env`, stdout and stderr captured, within [`TIMEOUT`].
pub fn run(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
    let mut command = Command::new(bin);
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    match cmd::run_command(&mut command, None, TIMEOUT) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// `bin completion bash` prints a script naming `name`, and exits 0 without a panic when its
/// stdout is a pipe whose reader is already gone (deterministic `| head -1`).
pub fn assert_completion_survives_closed_pipe(bin: &Path, name: &str) {
    let out = run(bin, &["completion", "bash"], &[]);
    assert!(out.success(), "{out:?}");
    let script = out.stdout_str();
    assert!(
        script.contains(name) && script.contains("complete"),
        "not a completion script for {name}"
    );

    let (reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
    drop(reader);
    let stderr_file = tempfile::tempfile().unwrap_or_else(|e| panic!("tempfile: {e}"));
    let mut child = Command::new(bin)
        .args(["completion", "bash"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(
            stderr_file
                .try_clone()
                .unwrap_or_else(|e| panic!("dup: {e}")),
        )
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
    let status = cmd::wait_until(&mut child, Instant::now() + TIMEOUT)
        .unwrap_or_else(|e| panic!("waiting: {e}"));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{name} completion hung on a closed pipe");
    };
    let stderr = read_all(stderr_file);
    assert!(
        status.success() && !stderr.contains("panicked"),
        "{name} completion on a closed pipe: {status}\n{stderr}"
    );
}

/// `bin --log-format json args` (RUST_LOG=debug) writes only JSON objects on stderr, at least
/// one; `--log-format text` writes text lines without ANSI escape codes (stderr is a pipe).
pub fn assert_log_formats(bin: &Path, args: &[&str]) {
    let with = |format: &str| {
        let mut all = vec!["--log-format", format];
        all.extend_from_slice(args);
        run(bin, &all, &[("RUST_LOG", "debug")])
    };
    let json = with("json");
    let lines: Vec<String> = json
        .stderr_str()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert!(!lines.is_empty(), "no log line: {json:?}");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}\n{json:?}"));
        assert!(
            value.get("level").is_some() && value.get("fields").is_some(),
            "{line}"
        );
    }

    let text = with("text");
    let err = text.stderr_str();
    assert!(err.contains("DEBUG"), "no text log line: {text:?}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI codes off a terminal: {err:?}"
    );
    assert!(
        !err.trim_start().starts_with('{'),
        "text logs look like JSON"
    );
}

fn read_all(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut text);
    text
}
