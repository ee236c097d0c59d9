//! `scep-lab`: the whole lab in one command.
//!
//! Until the services land (ca-mock, policy-module, ndes-proxy, device-agent), `demo` runs the
//! most complete flow available: one device enrolling over SCEP against an in-process RA/CA
//! built from the `scep` crate, with every step printed with what was checked.

mod demo;

use clap::{Parser, Subcommand};

/// The scep-lab command line.
#[derive(Debug, Parser)]
#[command(
    name = "scep-lab",
    version,
    about = "NDES + Intune style SCEP provisioning lab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one device through a SCEP enrollment, printing each step.
    Demo,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo => demo::run(&mut std::io::stdout()),
    }
}
