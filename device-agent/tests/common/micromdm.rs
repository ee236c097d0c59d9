//! micromdm `scepserver` on 127.0.0.1 through `peers/micromdm-server.sh`, stopped on drop.

use std::path::PathBuf;
use std::process::Command;

pub struct Micromdm {
    dir: tempfile::TempDir,
    pub url: String,
    script: PathBuf,
}

impl Micromdm {
    /// `None` when scepserver is missing and CI is not true (testkit decides; under CI the
    /// lookup panics, so the test fails instead of skipping).
    pub fn start(challenge: &str) -> Option<Self> {
        testkit::binary("scepserver")?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../peers/micromdm-server.sh");
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = testkit::free_port().unwrap();
            let out = Command::new("bash")
                .arg(&script)
                .args(["start"])
                .arg(dir.path())
                .args([port.to_string(), challenge.to_string()])
                .env("TRAFFIC_LOG", "0")
                .env("SERVER_DEBUG", "0")
                .output()
                .unwrap();
            if out.status.success() {
                return Some(Self {
                    url: format!("http://127.0.0.1:{port}/scep"),
                    dir,
                    script,
                });
            }
            eprintln!(
                "micromdm start failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("micromdm scepserver did not start");
    }

    /// The CA certificate (PEM) the server signs with.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("depot/ca.pem")).unwrap()
    }
}

impl Drop for Micromdm {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
