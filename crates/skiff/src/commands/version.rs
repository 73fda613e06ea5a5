//! `skiff version` (and `skiff --version`): skiff's own version and the Kubernetes API version
//! it implements, like `kubectl version` prints the client's and the server's.

use serde::Serialize;

use crate::exit;
use crate::output::{self, Format};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the versions as JSON or YAML (`kubectl version -o json` style).
    #[arg(short = 'o', long = "output", value_enum)]
    output: Option<Format>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    skiff_version: String,
    kubernetes_api_version: ApiVersion,
}

/// The fields of kubectl's `version.Info` that apply.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiVersion {
    major: String,
    minor: String,
    git_version: String,
}

/// `Skiff Version: v0.1.0` and `Kubernetes API: v1.37`, one per line.
pub fn text() -> String {
    format!(
        "Skiff Version: v{}\nKubernetes API: {}\n",
        env!("CARGO_PKG_VERSION"),
        skiff_model::api_version::version()
    )
}

pub fn run(args: &Args) -> u8 {
    let Some(format) = args.output else {
        print!("{}", text());
        return 0;
    };
    let v = Versions {
        skiff_version: format!("v{}", env!("CARGO_PKG_VERSION")),
        kubernetes_api_version: ApiVersion {
            major: skiff_model::KUBERNETES_MAJOR.to_string(),
            minor: skiff_model::KUBERNETES_MINOR.to_string(),
            git_version: skiff_model::api_version::version(),
        },
    };
    match output::render(&v, format) {
        Ok(s) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FAILURE
        }
    }
}
