//! Run an external program with a deadline: tests must never hang on a stuck child.

use std::ffi::OsStr;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long `openssl` may take before it is killed; generous for a loaded 2-core CI machine.
pub const OPENSSL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished program printed, and how it exited.
#[derive(Clone)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout as text (lossy), for assertions and messages.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (lossy), for assertions and messages.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl fmt::Debug for CmdOutput {
    // Text rather than byte arrays, so a failed assertion is readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmdOutput")
            .field("status", &self.status)
            .field("stdout", &self.stdout_str())
            .field("stderr", &self.stderr_str())
            .finish()
    }
}

/// Why a program could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {timeout:?} and was killed")]
    Timeout { program: String, timeout: Duration },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `program args` with `stdin` (or an empty stdin), killing it after `timeout`.
pub fn run<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: &[S],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<CmdOutput, CmdError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_command(&mut cmd, stdin, timeout)
}

/// Runs a prepared [`Command`] (stdio is overridden) with a deadline.
pub fn run_command(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<CmdOutput, CmdError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CmdError::Spawn {
            program: program.clone(),
            source,
        })?;

    // Readers and the writer run on threads so a child that fills one pipe cannot deadlock us.
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    for (is_out, pipe) in [
        (
            true,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
        (
            false,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            let _ = tx.send((is_out, buf));
        });
    }
    drop(tx);
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        let input = input.to_vec();
        // A child that exits without reading gives EPIPE here; its exit status tells the story.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }

    let deadline = Instant::now() + timeout;
    let status = wait_until(&mut child, deadline).map_err(|source| CmdError::Wait {
        program: program.clone(),
        source,
    })?;
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CmdError::Timeout { program, timeout });
    };

    // A grandchild may still hold the pipes open; do not wait for it past the deadline.
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match rx.recv_timeout(left) {
            Ok((true, buf)) => stdout = buf,
            Ok((false, buf)) => stderr = buf,
            Err(_) => break,
        }
    }
    Ok(CmdOutput {
        status,
        stdout,
        stderr,
    })
}

/// Polls `child` until it exits (Some) or `deadline` passes (None); the child is left running.
pub(crate) fn wait_until(
    child: &mut Child,
    deadline: Instant,
) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Finds an executable named `name` on `PATH` (or checks `name` itself when it contains a `/`).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
