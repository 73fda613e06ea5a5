//! Reading manifests from files, directories or stdin and turning them into prepared
//! (defaulted and validated) pods, reporting every problem on stderr.
//!
//! Paths follow kubectl's rules (k8s.io/cli-runtime `Builder.Path`,
//! `ExpandPathsToFileVisitors`): `-f` is repeatable; a directory contributes its `.json`,
//! `.yaml` and `.yml` files in lexical order, its subdirectories only with `-R`; a file named
//! on the command line is read whatever its name. Symlinked directories inside a directory
//! are not followed (Go's `filepath.Walk`), so a symlink loop costs one error line.

use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use skiff_model::manifest::{self, Object, ObjectInvalid};

/// The extensions kubectl reads in a directory (`resource.FileExtensions`), case-sensitive.
const EXTENSIONS: [&str; 3] = ["json", "yaml", "yml"];
/// Most files read for one command (a directory tree is user input too).
const MAX_FILES: usize = 10_000;
/// Most bytes read for one command, over all files (each is also held to
/// `manifest::MAX_MANIFEST_BYTES`).
const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Deepest directory nesting walked with `-R`.
const MAX_DIR_DEPTH: usize = 64;

/// The `-f` files of a command.
#[derive(clap::Args, Debug)]
pub struct Manifests {
    /// Manifest file or directory (YAML or JSON, multi-document); `-` reads stdin. Repeatable.
    /// A directory contributes its .json, .yaml and .yml files.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// Process the directories given with -f recursively.
    #[arg(short = 'R', long = "recursive")]
    pub recursive: bool,
    /// Namespace for objects that name none; an object naming another is an error (kubectl's
    /// `-n`). Without it, such objects are in "default".
    #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// One object and the file it came from.
#[derive(Debug)]
pub struct Item {
    pub source: String,
    pub object: Object,
}

/// Every object, prepared: what each prints as (`-o`), and the pods among them (pods, and
/// the pods of workloads), in input order.
pub struct Prepared {
    pub items: Vec<Item>,
    /// The object to print for each item: a Pod defaulted, a workload with its template
    /// defaulted, anything else as decoded.
    pub outputs: Vec<Value>,
    /// (index into `items`, the pod).
    pub pods: Vec<(usize, Pod)>,
}

impl Manifests {
    /// Every object of the files and the prepared pods among them, or `None` after printing
    /// every problem.
    pub fn load_and_prepare(&self) -> Option<(Vec<Object>, Vec<Pod>)> {
        let p = self.load_prepared()?;
        let pods = p.pods.into_iter().map(|(_, pod)| pod).collect();
        Some((p.items.into_iter().map(|i| i.object).collect(), pods))
    }

    /// Loads and prepares everything, or `None` after printing every problem.
    pub fn load_prepared(&self) -> Option<Prepared> {
        prepare(self.load()?)
    }

    /// The objects of all given files, or `None` after printing every problem.
    pub fn load(&self) -> Option<Vec<Item>> {
        let mut failed = false;
        let mut sources = Vec::new();
        for file in &self.files {
            if let Err(e) = expand(file, self.recursive, &mut sources) {
                eprintln!("error: {e}");
                failed = true;
            }
        }
        if sources.len() > MAX_FILES {
            eprintln!(
                "error: {} files given, more than the {MAX_FILES} skiff reads",
                sources.len()
            );
            return None;
        }
        let mut items = Vec::new();
        let mut budget = MAX_TOTAL_BYTES;
        for source in &sources {
            let name = source.name();
            let loaded = read(source, &mut budget)
                .map_err(|message| {
                    vec![manifest::LoadError::Io {
                        source_name: name.clone(),
                        message,
                    }]
                })
                .and_then(|bytes| manifest::load(&name, &bytes));
            match loaded {
                Ok(objs) => {
                    for mut object in objs {
                        if let Some(ns) = &self.namespace {
                            if let Err(message) = object.apply_namespace(ns) {
                                eprintln!("error: {name}: {}: {message}", object.reference());
                                failed = true;
                            }
                        }
                        items.push(Item {
                            source: name.clone(),
                            object,
                        });
                    }
                }
                Err(errs) => {
                    failed = true;
                    for e in errs {
                        eprintln!("error: {e}");
                    }
                }
            }
        }
        (!failed).then_some(items)
    }

    /// The one pod `skiff run` runs (index into `items`, pod), or why there is not exactly one,
    /// naming the files and what was found.
    pub fn one_pod(
        &self,
        items: &[Item],
        mut pods: Vec<(usize, Pod)>,
    ) -> Result<(usize, Pod), String> {
        let verb = if self.files.len() > 1 { "have" } else { "has" };
        match pods.len() {
            1 => Ok(pods.remove(0)),
            0 => Err(format!(
                "skiff run runs exactly one Pod; {} {verb} none",
                self.names()
            )),
            n => {
                let which: Vec<String> = pods
                    .iter()
                    .map(|(i, _)| {
                        format!("{} in {}", items[*i].object.reference(), items[*i].source)
                    })
                    .collect();
                Err(format!(
                    "skiff run runs exactly one Pod; {} {verb} {n}: {}",
                    self.names(),
                    which.join(", ")
                ))
            }
        }
    }

    /// The files as messages name them: `pod.yaml`, `a.yaml, b.yaml`.
    pub fn names(&self) -> String {
        self.files
            .iter()
            .map(|f| display_name(f))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where bytes come from.
enum Source {
    Stdin,
    File(PathBuf),
    /// Found in a directory: read only if a regular file (never block on a FIFO).
    Found(PathBuf),
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".into(),
            Source::File(p) | Source::Found(p) => p.display().to_string(),
        }
    }
}

fn display_name(file: &str) -> &str {
    if file == "-" {
        "<stdin>"
    } else {
        file
    }
}

/// The files `path` stands for, in kubectl's order.
fn expand(path: &str, recursive: bool, out: &mut Vec<Source>) -> Result<(), String> {
    if path == "-" {
        out.push(Source::Stdin);
        return Ok(());
    }
    let p = Path::new(path);
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("the path {path:?} does not exist"))
        }
        Ok(m) if m.is_dir() => {
            let before = out.len();
            walk(p, recursive, 0, out)?;
            if out.len() == before {
                return Err(format!(
                    "{path}: no .json, .yaml or .yml files{}",
                    if recursive {
                        ""
                    } else {
                        " (-R reads subdirectories)"
                    }
                ));
            }
            Ok(())
        }
        // Anything else named on the command line is read as given (a FIFO or
        // `<(…)` included), errors reported when reading.
        _ => {
            out.push(Source::File(p.to_path_buf()));
            Ok(())
        }
    }
}

/// A directory's manifest files, sorted by name; subdirectories when `recursive`.
fn walk(dir: &Path, recursive: bool, depth: usize, out: &mut Vec<Source>) -> Result<(), String> {
    if depth > MAX_DIR_DEPTH {
        return Err(format!(
            "{}: directories nested deeper than {MAX_DIR_DEPTH} levels",
            dir.display()
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut entries: Vec<_> = entries
        .map(|e| e.map_err(|e| format!("{}: {e}", dir.display())))
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() > MAX_FILES {
            return Ok(()); // the caller reports the count
        }
        let path = entry.path();
        // The entry itself, not a symlink's target (filepath.Walk uses Lstat).
        let file_type = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if file_type.is_dir() {
            if recursive {
                walk(&path, recursive, depth + 1, out)?;
            }
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if EXTENSIONS.contains(&ext) {
            out.push(Source::Found(path));
        }
    }
    Ok(())
}

/// The bytes of one source, at most one past the manifest limit (so oversized input is
/// reported, not truncated), charged to the command's `budget`.
fn read(source: &Source, budget: &mut u64) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let limit = (manifest::MAX_MANIFEST_BYTES as u64 + 1).min(budget.saturating_add(1));
    match source {
        Source::Stdin => {
            std::io::stdin()
                .lock()
                .take(limit)
                .read_to_end(&mut buf)
                .map_err(|e| e.to_string())?;
        }
        Source::File(p) | Source::Found(p) => {
            if let Source::Found(_) = source {
                // Follows a symlink: a loop or a dangling link is this file's error.
                let meta = std::fs::metadata(p).map_err(|e| e.to_string())?;
                if !meta.is_file() {
                    return Err(if meta.is_dir() {
                        "is a directory (a symlink to one: directories are walked only where they are)".into()
                    } else {
                        "not a regular file".into()
                    });
                }
            }
            std::fs::File::open(p)
                .and_then(|f| f.take(limit).read_to_end(&mut buf))
                .map_err(|e| e.to_string())?;
        }
    }
    let n = buf.len() as u64;
    if n > *budget {
        return Err(format!(
            "the files given hold more than the {MAX_TOTAL_BYTES} bytes skiff reads for one command"
        ));
    }
    *budget -= n;
    Ok(buf)
}

/// Defaults and validates every pod and workload; prints each bad object as kubectl prints
/// the API server's Invalid error, naming its file.
pub fn prepare(items: Vec<Item>) -> Option<Prepared> {
    let mut failed = false;
    let mut outputs = Vec::with_capacity(items.len());
    let mut pods = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prepared = match &item.object {
            Object::Pod(pod) => skiff_model::prepare_pod(pod.as_ref().clone())
                .map(|p| (serde_json::to_value(&p).unwrap_or(Value::Null), Some(p)))
                .map_err(ObjectInvalid::from),
            Object::Workload(w) => w.prepare().map(|p| (w.with_template(&p), Some(p))),
            other => Ok((other.to_json(), None)),
        };
        match prepared {
            Ok((out, pod)) => {
                outputs.push(out);
                if let Some(p) = pod {
                    pods.push((i, p));
                }
            }
            Err(invalid) => {
                failed = true;
                eprintln!("{}: {}", item.source, invalid.kubectl_message());
            }
        }
    }
    (!failed).then_some(Prepared {
        items,
        outputs,
        pods,
    })
}

/// What `skiff validate` says of a valid object.
pub fn valid_line(object: &Object) -> String {
    match object {
        Object::Workload(w) if w.kind == "Job" => {
            format!(
                "{} valid (run runs it with the Job controller)",
                w.reference()
            )
        }
        Object::Workload(w) => match &w.scale {
            Some(scale) => format!(
                "{} valid (run runs its pod template as pod {:?}; {scale} — skiff runs one)",
                w.reference(),
                w.name
            ),
            None => format!(
                "{} valid (run runs its pod template as pod {:?})",
                w.reference(),
                w.name
            ),
        },
        Object::Skipped(s) => format!(
            "{} valid (skipped by run: skiff runs pods only)",
            s.reference()
        ),
        other => format!("{} valid", other.reference()),
    }
}

/// What `skiff run` says of an object it does not run as given (stderr lines).
pub fn run_note(object: &Object) -> Option<String> {
    match object {
        Object::Workload(w) => Some(match &w.scale {
            Some(scale) => format!(
                "{}: running its pod template as pod {:?} ({scale} — skiff runs one)",
                w.reference(),
                w.name
            ),
            None => format!(
                "{}: running its pod template as pod {:?}",
                w.reference(),
                w.name
            ),
        }),
        Object::Skipped(s) => Some(format!("skipping {}: skiff runs pods only", s.reference())),
        _ => None,
    }
}
