//! `scep-console` as its own process, as the README runs it: `sample-config`, `hash-password`,
//! `serve --config`; and the command-line surface every binary shares (issue 17).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scep-console");

fn run(args: &[&str], stdin: Option<&[u8]>) -> testkit::cmd::CmdOutput {
    testkit::cmd::run(BIN, args, stdin, Duration::from_secs(60)).unwrap()
}

/// One HTTP/1.1 GET over loopback; the status line and the body.
fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

fn secret(dir: &Path, name: &str, value: &str) {
    let path = dir.join("secrets").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, value).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn completion_survives_a_closed_pipe_and_logs_json_or_plain_text() {
    let bin = Path::new(BIN);
    testkit::cli_surface::assert_completion_survives_closed_pipe(bin, "scep-console");
    testkit::cli_surface::assert_log_formats(bin, &["completion", "bash"]);
}

/// The README's three commands: the sample configuration parses and serves (its token files
/// relative to the configuration's directory), and a hashed password verifies.
#[test]
fn sample_config_hash_password_and_serve_as_the_readme_shows() {
    let sample = run(&["sample-config"], None);
    assert!(sample.success(), "{}", sample.stderr_str());
    let sample = sample.stdout_str();
    assert!(sample.contains("[login]"), "{sample}");

    let hashed = run(&["hash-password"], Some(b"a long password\n"));
    assert!(hashed.success(), "{}", hashed.stderr_str());
    let line = hashed.stdout_str().trim().to_owned();
    let hash = scep_console::auth::PasswordHash::parse(&line).expect("a PBKDF2 hash");
    assert!(hash.verify("a long password") && !hash.verify("another password"));
    assert!(!line.contains("a long password"));
    let empty = run(&["hash-password"], Some(b""));
    assert!(!empty.success() && empty.stderr_str().contains("no password"));

    let dir = tempfile::tempdir().unwrap();
    for name in [
        "policy-admin.token",
        "ca-policy.token",
        "ndes-admin.token",
        "mscep-admin.token",
        "console-readonly.token",
    ] {
        secret(dir.path(), name, "service-token-for-the-test");
    }
    secret(dir.path(), "console-admin.token", "console-admin-secret");
    let port = testkit::free_port().unwrap();
    let config = sample.replace("127.0.0.1:8380", &format!("127.0.0.1:{port}"))
        + &format!(
            "\n[[login.users]]\nname = \"alice\"\nrole = \"read-only\"\npassword_hash = \"{line}\"\n"
        );
    std::fs::write(dir.path().join("console.toml"), config).unwrap();

    // Run in the configuration's own directory with a relative path, as the README does.
    let mut child = Command::new(BIN)
        .args(["serve", "--config", "console.toml"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        match get(port, "/login") {
            Ok(page) => break page,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                child.kill().unwrap();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "scep-console never answered: {e}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    };
    let unauthenticated = get(port, "/").unwrap();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<form"), "{page}");
    assert!(!page.contains("console-admin-secret"));
    assert!(
        unauthenticated.starts_with("HTTP/1.1 303"),
        "{unauthenticated}"
    );
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(
        banner.contains(&format!("http://127.0.0.1:{port}")),
        "{banner}"
    );
}
