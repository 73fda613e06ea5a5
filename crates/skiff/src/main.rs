//! `skiff`: run Kubernetes Pods on one Linux machine with the kubelet's exact lifecycle
//! semantics. This binary is the thin edge: argument parsing, reading files, printing, and
//! mapping outcomes to exit codes. Everything else lives in the library crates.

// First: its print macros shadow the standard ones in every module below (output never
// panics skiff; see `output`).
#[macro_use]
mod output;
mod commands;
mod duration;
mod events;
mod input;
mod jsonpath;
mod serve;
mod store;
mod style;

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
    /// Print a shell completion script (`source <(skiff completion bash)`), as kubectl does.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print skiff's version and the Kubernetes API version it implements.
    Version(commands::version::Args),
    /// Print the logs of a container of a pod `skiff run` ran or runs, or of `skiff serve`'s
    /// pods when it runs on the data dir (as kubectl logs).
    Logs(commands::logs::Args),
    /// List the pods `skiff run` ran or runs, or `skiff serve`'s when it runs on the data dir
    /// (as kubectl get pods).
    Get(commands::get::Args),
    /// Draw a pod's life: one row per container instance with its starts, probes, hooks,
    /// signals and exits, and what gated what (-o text|svg|html|json).
    Timeline(commands::timeline::Args),
    /// Manage container images: ls, rm, inspect, import, prune, check.
    Image(commands::image::Args),
    /// Print a kubeconfig for the `skiff serve` of the data dir (its TLS address, CA, token).
    Kubeconfig(commands::kubeconfig::Args),
    /// Run this machine as a single-node Kubernetes that kubectl drives (API server + kubelet).
    Serve(commands::serve::Args),
}

fn main() -> ExitCode {
    // The pod keeper (started by `run`, see skiff_node::keeper): not a user command.
    let mut argv = std::env::args_os().skip(1);
    if argv.next().as_deref() == Some(std::ffi::OsStr::new(skiff_node::keeper::KEEPER_COMMAND)) {
        init_tracing();
        let Some(pod_dir) = argv.next() else {
            return ExitCode::from(exit::BAD_INPUT);
        };
        return match skiff_node::keeper::run(std::path::Path::new(&pod_dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keeper: {e}");
                ExitCode::from(exit::FAILURE)
            }
        };
    }
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => {
            // `--version`: the same two lines as `skiff version`.
            print!("{}", commands::version::text());
            return ExitCode::SUCCESS;
        }
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
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "skiff",
                &mut script,
            );
            print!("{}", String::from_utf8_lossy(&script));
            0
        }
        Command::Version(args) => commands::version::run(&args),
        Command::Logs(args) => commands::logs::run(&args),
        Command::Get(args) => commands::get::run(&args),
        Command::Timeline(args) => commands::timeline::run(&args),
        Command::Image(args) => commands::image::run(&args),
        Command::Kubeconfig(args) => commands::kubeconfig::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
    }))
    .unwrap_or_else(|_| {
        eprintln!("skiff: internal error (panic); whatever skiff had set up was torn down");
        exit::FAILURE
    });
    ExitCode::from(code)
}

/// skiff's own warnings and errors (tracing) read like its other notices: `skiff: warning:
/// text key=value`, on stderr, coloured only per the colour policy ([`style`]), without module
/// paths except at debug/trace level (`SKIFF_LOG=debug`), where they help.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SKIFF_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let style = style::Style::stderr();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| output::StderrWriter)
        .with_ansi(style.color())
        .log_internal_errors(false)
        .event_format(NoticeFormat { style })
        .try_init();
}

struct NoticeFormat {
    style: style::Style,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for NoticeFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing::Level;
        let meta = event.metadata();
        let (word, code) = match *meta.level() {
            Level::ERROR => ("error", style::sgr::RED),
            Level::WARN => ("warning", style::sgr::YELLOW),
            Level::INFO => ("info", style::sgr::GREEN),
            Level::DEBUG => ("debug", style::sgr::BLUE),
            Level::TRACE => ("trace", style::sgr::MAGENTA),
        };
        write!(writer, "skiff: {}: ", self.style.paint(code, word))?;
        if *meta.level() >= Level::DEBUG {
            write!(writer, "{}: ", meta.target())?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
