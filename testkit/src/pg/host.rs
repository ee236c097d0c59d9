//! What the host provides to a cluster: the binaries, the `postgres` user, a port, a watchdog.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::{fs, io};

use super::{BIN_ENV, PgError, io_err};
use crate::cmd::{self, is_executable};

/// The tools a cluster needs, all from one directory.
const TOOLS: [&str; 6] = [
    "initdb",
    "postgres",
    "pg_ctl",
    "pg_isready",
    "psql",
    "createdb",
];

/// Where Debian installs each major version as `<major>/bin`.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// `Ok(Ok(dir))` when found, `Ok(Err(where we looked))` when absent, `Err` when misconfigured.
pub(super) fn find_bin_dir() -> Result<Result<PathBuf, String>, PgError> {
    let on_path = cmd::find_on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf));
    locate(std::env::var_os(BIN_ENV), Path::new(DEBIAN_ROOT), on_path)
}

/// The lookup order: an explicit `$SCEPLAB_PG_BIN` (which must be complete), the newest complete
/// `<debian_root>/<major>/bin`, then the directory of `initdb` on `PATH`.
fn locate(
    explicit: Option<OsString>,
    debian_root: &Path,
    on_path: Option<PathBuf>,
) -> Result<Result<PathBuf, String>, PgError> {
    let complete = |dir: &Path| TOOLS.iter().all(|t| is_executable(&dir.join(t)));
    if let Some(dir) = explicit {
        let dir = PathBuf::from(dir);
        return if complete(&dir) {
            Ok(Ok(dir))
        } else {
            Err(PgError::BadBinDir(dir))
        };
    }
    let newest = fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let major: u32 = name.split('.').next()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .max();
    if let Some((_, bin)) = newest {
        return Ok(Ok(bin));
    }
    if let Some(dir) = on_path.filter(|dir| complete(dir)) {
        return Ok(Ok(dir));
    }
    Ok(Err(format!(
        "${BIN_ENV}, {}/*/bin, PATH",
        debian_root.display()
    )))
}

pub(super) fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// uid and gid of the `postgres` user: PostgreSQL refuses to run as root.
pub(super) fn postgres_ids() -> Result<(u32, u32), PgError> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(io_err("reading /etc/passwd"))?;
    user_ids(&passwd, "postgres").ok_or(PgError::NoPostgresUser)
}

fn user_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
}

pub(super) fn free_port() -> Result<u16, PgError> {
    crate::free_port().map_err(io_err("finding a free port"))
}

/// Stops the server and removes `root` once our end of its stdin closes, i.e. when this
/// process exits by any means (a panic=abort, a SIGKILL, a cluster in a `static`). `Drop`
/// kills it first when it cleans up itself. Our end is close-on-exec, so no other child
/// inherits it and keeps the watchdog waiting.
pub(super) fn spawn_watchdog(root: &Path) -> Result<(Child, ChildStdin), PgError> {
    const SCRIPT: &str = r#"trap '' INT TERM HUP
cat > /dev/null
pidfile="$1/data/postmaster.pid"
if [ -f "$pidfile" ]; then
    pid=$(head -n 1 "$pidfile")
    kill -QUIT "$pid" 2> /dev/null
    i=0
    while kill -0 "$pid" 2> /dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2> /dev/null
fi
rm -rf "$1""#;
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "sceplab-pg-watchdog"])
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err("spawning the cleanup watchdog"))?;
    let stdin = child.stdin.take().ok_or_else(|| PgError::Io {
        what: "the cleanup watchdog's stdin".to_owned(),
        source: io::Error::other("not piped"),
    })?;
    Ok((child, stdin))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_bin(dir: &Path, tools: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for tool in tools {
            let path = dir.join(tool);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn the_newest_complete_debian_version_wins() {
        let root = tempfile::tempdir().unwrap();
        fake_bin(&root.path().join("13/bin"), &TOOLS);
        fake_bin(&root.path().join("16/bin"), &TOOLS);
        fake_bin(&root.path().join("17/bin"), &TOOLS[..5]); // no createdb: incomplete
        fake_bin(&root.path().join("9.6/bin"), &TOOLS);
        let found = locate(None, root.path(), None).unwrap().unwrap();
        assert_eq!(found, root.path().join("16/bin"));
    }

    #[test]
    fn nothing_found_is_a_miss_not_an_error() {
        let root = tempfile::tempdir().unwrap();
        let searched = locate(None, &root.path().join("absent"), None)
            .unwrap()
            .unwrap_err();
        assert!(searched.contains(BIN_ENV), "{searched}");
    }

    #[test]
    fn path_is_the_last_resort_and_must_be_complete() {
        let root = tempfile::tempdir().unwrap();
        let on_path = root.path().join("usr/bin");
        fake_bin(&on_path, &TOOLS[1..]); // initdb missing
        assert!(
            locate(None, &root.path().join("none"), Some(on_path.clone()))
                .unwrap()
                .is_err()
        );
        fake_bin(&on_path, &TOOLS);
        assert_eq!(
            locate(None, &root.path().join("none"), Some(on_path.clone()))
                .unwrap()
                .unwrap(),
            on_path
        );
    }

    #[test]
    fn an_explicit_incomplete_dir_is_an_error_even_outside_ci() {
        let root = tempfile::tempdir().unwrap();
        fake_bin(&root.path().join("16/bin"), &TOOLS);
        let explicit = Some(root.path().join("empty").into_os_string());
        assert!(matches!(
            locate(explicit, root.path(), None),
            Err(PgError::BadBinDir(_))
        ));
        let explicit = Some(root.path().join("16/bin").into_os_string());
        assert_eq!(
            locate(explicit, Path::new("/nonexistent"), None)
                .unwrap()
                .unwrap(),
            root.path().join("16/bin")
        );
    }

    #[test]
    fn passwd_lines_give_uid_and_gid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104:PostgreSQL,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(user_ids(passwd, "postgres"), Some((101, 104)));
        assert_eq!(user_ids(passwd, "nobody"), None);
        assert_eq!(user_ids("postgres:x:bad:104::/:/bin/sh", "postgres"), None);
    }
}
