//! `lab-node DATA CA_PORT POLICY_PORT SCEP_PORT`: the whole lab as one child process, for
//! fault tests that `kill -9` it mid-load and start it again on the same data and ports.
//! Prints `ready` on stdout once every service accepts connections; runs until killed.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, ca, policy, scep] = args.as_slice() else {
        bail!("usage: lab-node DATA CA_PORT POLICY_PORT SCEP_PORT");
    };
    let mut options = scep_lab::LabOptions::new(&PathBuf::from(data));
    options.ports = [
        ca.parse().context("CA_PORT")?,
        policy.parse().context("POLICY_PORT")?,
        scep.parse().context("SCEP_PORT")?,
    ];
    options.outbox_poll = std::time::Duration::from_millis(200);
    let lab = scep_lab::Lab::start(options).await?;
    println!("ready");
    std::future::pending::<()>().await;
    lab.shutdown().await;
    Ok(())
}
