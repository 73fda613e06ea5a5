//! Reading manifests from files or stdin and turning them into prepared (defaulted and
//! validated) pods, reporting every problem on stderr.

use std::io::Read;

use k8s_openapi::api::core::v1::Pod;
use skiff_model::manifest::{self, Object};

/// The `-f` files of a command.
#[derive(clap::Args, Debug)]
pub struct Manifests {
    /// Manifest file (YAML or JSON, multi-document); `-` reads stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

impl Manifests {
    /// Every object of the files and the prepared pods among them, or `None` after printing
    /// every problem.
    pub fn load_and_prepare(&self) -> Option<(Vec<Object>, Vec<Pod>)> {
        let objects = load_all(&self.files)?;
        let pods = prepare_pods(&objects)?;
        Some((objects, pods))
    }
}

/// The objects of all given files, or `None` after printing every load error.
pub fn load_all(files: &[String]) -> Option<Vec<Object>> {
    let mut objects = Vec::new();
    let mut failed = false;
    for file in files {
        match read(file)
            .map_err(|e| vec![e])
            .and_then(|bytes| manifest::load(display_name(file), &bytes))
        {
            Ok(mut objs) => objects.append(&mut objs),
            Err(errs) => {
                failed = true;
                for e in errs {
                    eprintln!("error: {e}");
                }
            }
        }
    }
    (!failed).then_some(objects)
}

fn display_name(file: &str) -> &str {
    if file == "-" {
        "<stdin>"
    } else {
        file
    }
}

fn read(file: &str) -> Result<Vec<u8>, manifest::LoadError> {
    let io_err = |e: std::io::Error| manifest::LoadError::Io {
        source_name: display_name(file).to_string(),
        message: e.to_string(),
    };
    let mut buf = Vec::new();
    // Read one byte past the limit so oversized input is reported, not truncated.
    let limit = (manifest::MAX_MANIFEST_BYTES + 1) as u64;
    if file == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(io_err)?;
    } else {
        std::fs::File::open(file)
            .map_err(io_err)?
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(io_err)?;
    }
    Ok(buf)
}

/// Defaults and validates every pod; prints `The Pod "x" is invalid: ...` for each bad one.
pub fn prepare_pods(objects: &[Object]) -> Option<Vec<Pod>> {
    let mut pods = Vec::new();
    let mut failed = false;
    for obj in objects {
        if let Object::Pod(pod) = obj {
            match skiff_model::prepare_pod(pod.as_ref().clone()) {
                Ok(p) => pods.push(p),
                Err(invalid) => {
                    failed = true;
                    // kubectl prints the API server's message with a leading "The ".
                    eprintln!("The {invalid}");
                }
            }
        }
    }
    (!failed).then_some(pods)
}
