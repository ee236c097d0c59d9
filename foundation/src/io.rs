//! Output as a command-line tool should write it: a reader that went away (`| head -1`) ends
//! the output; it is neither an error nor a panic (Rust ignores SIGPIPE, so the write fails
//! with `BrokenPipe`, and `print!` would panic on it).

use std::io::{ErrorKind, Write};

/// Writes `bytes` to stdout and flushes; a closed pipe is success, other errors are returned.
pub fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
