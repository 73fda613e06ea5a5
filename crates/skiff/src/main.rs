//! `skiff`: run Kubernetes Pods on one Linux machine with the kubelet's exact lifecycle
//! semantics. This binary is the thin edge: argument parsing, reading files, printing, and
//! mapping outcomes to exit codes. Everything else lives in the library crates.

// First: its print macros shadow the standard ones in every module below (output never
// panics skiff; see `output`).
#[macro_use]
mod output;
mod commands;
mod input;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes shared by every subcommand.
pub mod exit {
    /// The pod ran and failed, or an unexpected error.
    pub const FAILURE: u8 = 1;
    /// Bad input: unreadable or invalid manifest, wrong flags. Nothing was changed.
    pub const BAD_INPUT: u8 = 2;
}

#[derive(Parser, Debug)]
#[command(
    name = "skiff",
    version,
    about = "Run Kubernetes Pods on one Linux machine with the kubelet's exact semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decode, default and validate manifests exactly as the Kubernetes API server would.
    Validate(commands::validate::Args),
    /// Run one pod to completion on this machine, with the kubelet's lifecycle semantics.
    Run(commands::run::Args),
    /// Print a pod's effective requests, limits and QoS class (and, with -o wide, its cgroup values).
    Resources(commands::resources::Args),
    /// Print the logs of a container of a pod `skiff run` ran or runs (as kubectl logs).
    Logs(commands::logs::Args),
    /// List the pods `skiff run` ran or runs (as kubectl get pods).
    Get(commands::get::Args),
}

fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(exit::BAD_INPUT),
            };
        }
    };
    // A panic unwinds through the command (dropping the pod's sandbox tears it down: volumes
    // unmounted, cgroup and record removed) and ends here as a plain failure.
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cli.command {
        Command::Validate(args) => commands::validate::run(&args),
        Command::Resources(args) => commands::resources::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Logs(args) => commands::logs::run(&args),
        Command::Get(args) => commands::get::run(&args),
    }))
    .unwrap_or_else(|_| {
        eprintln!("skiff: internal error (panic); whatever skiff had set up was torn down");
        exit::FAILURE
    });
    ExitCode::from(code)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SKIFF_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| output::StderrWriter)
        .log_internal_errors(false)
        .try_init();
}
