//! `skiff timeline POD`: a pod's life drawn — in the terminal, or as SVG, HTML or JSON. The
//! record comes from, in this order: the API server of `--kubeconfig` (a `skiff serve` on
//! another machine: its pods' `timeline` subresource), the `skiff serve` running on the data
//! dir (same subresource over its socket), or the pod's directory that `skiff run` wrote.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use skiff_node::store;
use skiff_timeline::Timeline;

use crate::exit;
use crate::store::DataDirArg;
use crate::style::Style;

/// How wide the drawing is when stdout is no terminal and `--width` is not given.
const DEFAULT_WIDTH: usize = 100;
/// The narrowest drawing (bars need room).
const MIN_WIDTH: usize = 60;
/// A timeline answer larger than this is refused (the recorder's bounds keep it far smaller).
const MAX_TIMELINE_BYTES: usize = 64 * 1024 * 1024;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pod: NAME or pod/NAME.
    #[arg(value_name = "POD")]
    pod: String,
    /// Namespace of the pod.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Output format: text (the terminal drawing), svg, html (SVG with hover details), json.
    #[arg(short = 'o', long, default_value = "text", value_parser = ["text", "svg", "html", "json"])]
    output: String,
    /// Columns of the text drawing (default: the terminal's width, else 100).
    #[arg(long, value_name = "N")]
    width: Option<usize>,
    /// Read the pod from the API server of this kubeconfig (a `skiff serve` elsewhere: see
    /// `skiff kubeconfig`) instead of this machine's data dir.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (with --kubeconfig).
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    context: Option<String>,
    #[command(flatten)]
    data: DataDirArg,
}

struct Failure {
    message: String,
    code: u8,
}

fn failure(message: impl Into<String>) -> Failure {
    Failure {
        message: format!("error: {}", message.into()),
        code: exit::FAILURE,
    }
}

pub fn run(args: &Args) -> u8 {
    match timeline(args) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("{}", f.message);
            f.code
        }
    }
}

fn timeline(args: &Args) -> Result<(), Failure> {
    let name = match args.pod.split_once('/') {
        None => args.pod.as_str(),
        Some((t, n)) if crate::commands::get::is_pod_resource(t) => n,
        Some(_) => {
            return Err(Failure {
                message: format!(
                    "error: skiff timeline draws pods only: {:?} is not pod/NAME",
                    args.pod
                ),
                code: exit::BAD_INPUT,
            })
        }
    };
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/timeline",
        super::client::encode(&args.namespace),
        super::client::encode(name)
    );
    let tl = if let Some(kc) = &args.kubeconfig {
        from_kubeconfig(kc, args.context.as_deref(), &path)?
    } else {
        let data_dir = args.data.resolve().map_err(|e| failure(format!("{e:#}")))?;
        match super::client::DaemonClient::connect(&data_dir) {
            Ok(Some(client)) => client
                .get_json::<Timeline>(&path)
                .map_err(|e| failure(e.to_string()))?,
            Ok(None) => from_data_dir(&data_dir, &args.namespace, name)?,
            Err(e) => return Err(failure(e.to_string())),
        }
    };
    let out = render(&tl, &args.output, args.width)?;
    print!("{out}");
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The drawing of `tl` in `format` for stdout (`text` at `width` columns, else the
/// terminal's, coloured per stdout's policy).
fn render(tl: &Timeline, format: &str, width: Option<usize>) -> Result<String, Failure> {
    match format {
        "json" => serde_json::to_string_pretty(tl)
            .map(|s| s + "\n")
            .map_err(|e| failure(format!("encoding the timeline: {e}"))),
        "svg" | "html" => {
            // The picture's width in pixels follows --width columns (8 px each), else 1200.
            let opts = skiff_timeline::render::svg::SvgOptions {
                width: width
                    .and_then(|w| u32::try_from(w.saturating_mul(8)).ok())
                    .unwrap_or(1200),
            };
            Ok(if format == "svg" {
                skiff_timeline::render::svg::render(tl, &opts)
            } else {
                skiff_timeline::render::html::render(tl, &opts)
            })
        }
        _ => {
            let out = std::io::stdout();
            let width = width
                .map(|w| w.max(MIN_WIDTH))
                .unwrap_or_else(|| terminal_width_of(out.is_terminal(), &out));
            render_text(tl, width, Style::stdout())
        }
    }
}

/// The terminal drawing at `width` columns.
fn render_text(tl: &Timeline, width: usize, style: Style) -> Result<String, Failure> {
    let opts = skiff_timeline::render::text::TextOptions {
        width,
        color: style.color(),
        unicode: unicode_terminal(),
    };
    Ok(skiff_timeline::render::text::render(tl, &opts))
}

/// Box-drawing glyphs unless the terminal is `dumb` or the locale (the first of `LC_ALL`,
/// `LC_CTYPE`, `LANG` that is set) is not UTF-8; then ASCII.
fn unicode_terminal() -> bool {
    if std::env::var_os("TERM").is_some_and(|t| t == "dumb") {
        return false;
    }
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    locale.is_none_or(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("utf-8") || l.contains("utf8")
    })
}

/// The width of the terminal `fd` (if it is one; `COLUMNS` first, as shells export it), else
/// [`DEFAULT_WIDTH`]; at least [`MIN_WIDTH`].
fn terminal_width_of(is_terminal: bool, fd: impl std::os::fd::AsFd) -> usize {
    let cols = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .or_else(|| {
            is_terminal
                .then(|| rustix::termios::tcgetwinsize(fd).ok())
                .flatten()
                .map(|w| usize::from(w.ws_col))
                .filter(|&c| c > 0)
        })
        .unwrap_or(DEFAULT_WIDTH);
    cols.max(MIN_WIDTH)
}

/// The timeline `skiff run` left in the pod's directory.
fn from_data_dir(
    data_dir: &std::path::Path,
    namespace: &str,
    name: &str,
) -> Result<Timeline, Failure> {
    let pods = store::list(data_dir)
        .map_err(|e| failure(format!("reading {}: {e}", data_dir.display())))?;
    let Some(pod) = store::newest_per_name(
        pods.into_iter()
            .filter(|p| p.namespace() == namespace && p.name() == name)
            .collect(),
    )
    .pop() else {
        return Err(failure_not_found(name));
    };
    let mut tl = store::read_timeline(&pod.dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            failure(format!(
                "pod {name} has no timeline (it ran with a skiff older than the timeline)"
            ))
        } else {
            failure(format!("reading the timeline of pod {name}: {e}"))
        }
    })?;
    // A pod that still runs: its file is at most a few seconds old, and nothing changed since
    // it was written (it is written when something does), so what ran still runs now.
    if !tl.finished && pod.running() {
        let now = skiff_node::worker::now().millis();
        tl.end_ms = tl.end_ms.max(now.saturating_sub(tl.origin_unix_ms));
    }
    Ok(tl)
}

fn failure_not_found(name: &str) -> Failure {
    Failure {
        message: format!("Error from server (NotFound): pods \"{name}\" not found"),
        code: exit::FAILURE,
    }
}

/// GET `path` from the API server of the kubeconfig `file` (its CA, its credentials).
fn from_kubeconfig(
    file: &std::path::Path,
    context: Option<&str>,
    path: &str,
) -> Result<Timeline, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failure(format!("starting the client: {e}")))?;
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(file)
            .map_err(|e| failure(format!("reading {}: {e}", file.display())))?;
        let opts = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .map_err(|e| failure(format!("{}: {e}", file.display())))?;
        let client = kube::Client::try_from(config)
            .map_err(|e| failure(format!("{}: {e}", file.display())))?;
        let req = hyper::Request::get(path)
            .body(Vec::new())
            .map_err(|e| failure(e.to_string()))?;
        let text =
            tokio::time::timeout(std::time::Duration::from_secs(60), client.request_text(req))
                .await
                .map_err(|_| failure("the API server did not answer within 60s"))?
                .map_err(|e| match e {
                    kube::Error::Api(s) => Failure {
                        message: format!("Error from server ({}): {}", s.reason, s.message),
                        code: exit::FAILURE,
                    },
                    e => failure(e.to_string()),
                })?;
        if text.len() > MAX_TIMELINE_BYTES {
            return Err(failure("the timeline answer is too large"));
        }
        serde_json::from_str(&text).map_err(|e| failure(format!("decoding the timeline: {e}")))
    })
}

/// `skiff run --timeline`: the drawing on stderr, at its width and in its colours.
pub fn draw_on_stderr(tl: &Timeline) {
    let width = terminal_width_of(std::io::stderr().is_terminal(), std::io::stderr());
    match render_text(tl, width, Style::stderr()) {
        Ok(text) => {
            eprint!("{text}");
        }
        Err(e) => eprintln!("{}", e.message),
    }
}
