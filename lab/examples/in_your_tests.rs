//! `scep_lab::Lab` in your own test suite: every service in process, on free 127.0.0.1 ports,
//! in a temporary directory. The README quotes the lines between the two markers, and
//! `tests/tests/readme.rs` runs this example, so the quote always compiles and works.
//!
//! `cargo run -p scep-lab --example in_your_tests`

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // README begin
    let dir = tempfile::tempdir()?;
    let lab = scep_lab::Lab::start(scep_lab::LabOptions::new(dir.path())).await?;
    // What a SCEP client asks first: the server's capabilities.
    let url = format!("{}?operation=GetCACaps", lab.scep_url());
    let caps = reqwest::get(url).await?.text().await?;
    assert!(caps.contains("POSTPKIOperation"), "{caps}");
    // lab.policy(): profiles, devices, lifecycle (in process, no token needed)
    // lab.ca(): certificate records, CRL, OCSP;  lab.tokens(): the HTTP APIs' tokens
    // lab.policy_url(), lab.ca_url(), lab.mscep_admin_url(), lab.root_fingerprint()
    let root = lab.root_fingerprint();
    println!("SCEP at {} (root {root})", lab.scep_url());
    lab.shutdown().await;
    // README end
    Ok(())
}
