//! One logging set-up for every binary (`--log-format json|text`), so the services and tools
//! log alike: to stderr, filtered by `RUST_LOG` (else the binary's default level), colour only
//! when stderr is a terminal (a redirected log file gets no ANSI codes).

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

impl LogFormat {
    /// The spellings `--log-format` accepts, for a CLI's possible values.
    pub const NAMES: [&'static str; 2] = ["text", "json"];
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Installs the global subscriber for binary `name` (once, first in `main`); `default_level`
/// applies when `RUST_LOG` is unset or invalid. A debug line names the binary and version.
pub fn init(name: &str, version: &str, format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // A log line that cannot be written (full disk, closed pipe) is dropped: tracing-subscriber
    // would report it with eprintln!, which panics when stderr fails too (F10).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    // try_init: a second call (tests composing binaries in one process) keeps the first.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    tracing::debug!(binary = name, version, log_format = %format, "logging started");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip_and_unknown_is_refused() {
        for name in LogFormat::NAMES {
            assert_eq!(
                name.parse::<LogFormat>().map(|f| f.to_string()),
                Ok(name.to_owned())
            );
        }
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
