//! `skiff image ls|rm|inspect|import|prune|check`: the image store under
//! `<data dir>/images` (skiff_image), with docker's and podman's habits: `ls` prints
//! `podman images`' columns, `rm` refuses an image a container uses unless `--force`,
//! `inspect` prints JSON, `import` takes an OCI layout dir, a docker-archive tar or (with
//! `--from-dir`) a plain directory. `pull` comes from the registry client (see
//! [`Sub`]'s comment).

use std::path::PathBuf;

use anyhow::Context;
use skiff_image::gc::short_id;
use skiff_image::import::{self, DirImageConfig};
use skiff_image::{ContentStore, StoreError, StoredImage};

use crate::exit;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    sub: Sub,
    /// Where skiff keeps its data; images are under `<DIR>/images` (default: /var/lib/skiff
    /// as root, else $XDG_DATA_HOME/skiff; `SKIFF_DATA_DIR` overrides).
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Pull an image from a registry: fetched and verified into the store, then unpacked.
    /// Credentials come from the Docker config ($DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json, `auths`).
    Pull {
        #[arg(value_name = "IMAGE")]
        image: String,
        /// A registry (host[:port]) spoken to in plain HTTP; loopback registries always
        /// are. Repeatable; SKIFF_INSECURE_REGISTRIES (comma-separated) adds more.
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure: Vec<String>,
        /// Print only the image ID (no progress).
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images (as `podman images`).
    #[command(alias = "list")]
    Ls {
        /// Print image IDs only.
        #[arg(short, long)]
        quiet: bool,
        /// Output format: json (the default is a table).
        #[arg(short = 'o', long = "output", value_parser = ["json", "table"])]
        output: Option<String>,
        /// Full image IDs.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Remove images by name or ID (an image a container uses only with --force).
    #[command(alias = "rmi")]
    Rm {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
        /// Remove even if a container uses it.
        #[arg(short, long)]
        force: bool,
    },
    /// Print images' details as JSON.
    Inspect {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Import an OCI layout directory or a docker-archive tar (`docker save`); with
    /// --from-dir, pack a directory as a one-layer image.
    Import {
        /// The OCI layout dir, the archive, or (with --from-dir) the root filesystem dir.
        path: PathBuf,
        /// The image's name (required when the input does not name it).
        #[arg(long, value_name = "REF")]
        name: Option<String>,
        /// PATH is a directory to pack as the image's root filesystem.
        #[arg(long)]
        from_dir: bool,
        /// With --from-dir: the image's Cmd (repeat for each argument).
        #[arg(long = "cmd", value_name = "ARG", allow_hyphen_values = true)]
        cmd: Vec<String>,
        /// With --from-dir: the image's Entrypoint (repeat for each argument).
        #[arg(long = "entrypoint", value_name = "ARG", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// With --from-dir: an environment variable K=V (repeatable).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// With --from-dir: the working directory.
        #[arg(long, value_name = "DIR")]
        workdir: Option<String>,
        /// With --from-dir: the user (uid, name, uid:gid).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Remove blobs and layers no image or container needs; with --all, also every image
    /// no container uses.
    Prune {
        #[arg(short, long)]
        all: bool,
    },
    /// Verify the store: every blob's digest, every image's blobs, every unpacked layer.
    Check,
}

pub fn run(args: &Args) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e.chain().any(|c| {
                c.downcast_ref::<StoreError>().is_some_and(|s| {
                    matches!(
                        s,
                        StoreError::Invalid(_)
                            | StoreError::BadDigest(_)
                            | StoreError::DigestMismatch { .. }
                            | StoreError::SizeMismatch { .. }
                            | StoreError::TooLarge { .. }
                            | StoreError::Unsupported(_)
                    )
                })
            });
            if bad_input {
                exit::BAD_INPUT
            } else {
                exit::FAILURE
            }
        }
    }
}

/// The store of the data dir (created if missing).
pub fn open_store(data_dir: Option<&PathBuf>) -> anyhow::Result<ContentStore> {
    let dir = match data_dir {
        Some(d) => d.clone(),
        None => skiff_node::store::default_data_dir()?,
    };
    skiff_node::store::prepare_data_dir(&dir)?;
    let root = dir.join("images");
    ContentStore::open(&root).with_context(|| format!("opening the image store {}", root.display()))
}

fn run_inner(args: &Args) -> anyhow::Result<u8> {
    let store = open_store(args.data_dir.as_ref())?;
    match &args.sub {
        Sub::Ls {
            quiet,
            output,
            no_trunc,
        } => ls(&store, *quiet, output.as_deref() == Some("json"), *no_trunc),
        Sub::Rm { images, force } => {
            let mut code = 0;
            for i in images {
                match store.remove_image(i, *force) {
                    Ok(names) => {
                        for n in names {
                            println!("Untagged: {n}");
                        }
                    }
                    Err(StoreError::NotFound(_)) => {
                        eprintln!("error: {i}: image not known");
                        code = exit::FAILURE;
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        code = exit::FAILURE;
                    }
                }
            }
            // Blobs and layers nothing reaches any more go now (as `podman rmi`).
            let r = store.prune(false)?;
            if r.blobs > 0 {
                println!("Deleted: {} blobs, {} layers", r.blobs, r.layers);
            }
            Ok(code)
        }
        Sub::Inspect { images } => {
            let mut out = Vec::new();
            let mut code = 0;
            for i in images {
                match store.resolve(i)? {
                    Some(img) => out.push(inspect_json(&store, &img)),
                    None => {
                        eprintln!("error: {i}: image not known");
                        code = exit::FAILURE;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(code)
        }
        Sub::Import {
            path,
            name,
            from_dir,
            cmd,
            entrypoint,
            env,
            workdir,
            user,
        } => {
            if *from_dir {
                let Some(name) = name else {
                    eprintln!("error: --from-dir needs --name REF");
                    return Ok(exit::BAD_INPUT);
                };
                if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
                    eprintln!("error: --env {bad:?}: expected K=V");
                    return Ok(exit::BAD_INPUT);
                }
                let cfg = DirImageConfig {
                    entrypoint: entrypoint.clone(),
                    cmd: cmd.clone(),
                    env: env.clone(),
                    working_dir: workdir.clone(),
                    user: user.clone(),
                };
                let (n, id) = import::import_dir(&store, path, name, &cfg)?;
                println!("{n} {id}");
            } else {
                if !cmd.is_empty()
                    || !entrypoint.is_empty()
                    || !env.is_empty()
                    || workdir.is_some()
                    || user.is_some()
                {
                    eprintln!("error: --cmd, --entrypoint, --env, --workdir and --user go with --from-dir");
                    return Ok(exit::BAD_INPUT);
                }
                for (n, id) in import::import_path(&store, path, name.as_deref())? {
                    println!("{n} {id}");
                }
            }
            Ok(0)
        }
        Sub::Prune { all } => {
            let r = store.prune(*all)?;
            for n in &r.untagged {
                println!("Untagged: {n}");
            }
            println!(
                "Deleted {} blobs and {} layers; reclaimed {}",
                r.blobs,
                r.layers,
                human_size(r.bytes)
            );
            Ok(0)
        }
        Sub::Pull {
            image,
            insecure,
            quiet,
        } => pull(store, image, insecure, *quiet),
        Sub::Check => {
            let problems = store.check()?;
            if problems.is_empty() {
                println!(
                    "ok: the image store at {} is consistent",
                    store.root().display()
                );
                Ok(0)
            } else {
                for p in &problems {
                    println!("{p}");
                }
                eprintln!("error: {} problems found", problems.len());
                Ok(exit::FAILURE)
            }
        }
    }
}

/// `skiff image pull`: progress bars on a terminal, event lines otherwise, the image ID
/// on stdout (as `podman pull`).
fn pull(store: ContentStore, image: &str, insecure: &[String], quiet: bool) -> anyhow::Result<u8> {
    use skiff_image::progress;
    use skiff_image::registry::{Puller, RegistryConfig};
    use std::io::IsTerminal;
    let reference = match skiff_image::reference::ImageRef::parse(image) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::BAD_INPUT);
        }
    };
    let mut config = RegistryConfig::default().with_env();
    config.insecure.extend(insecure.iter().cloned());
    let node = skiff_image::auth::docker_config_keyring().context("reading the Docker config")?;
    let watcher = if quiet {
        None
    } else if std::io::stderr().is_terminal() {
        Some(progress::terminal_bars())
    } else {
        Some(progress::plain_lines(|line| eprintln!("{line}")))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let puller = Puller::new(store, config, node);
    let secrets = skiff_image::auth::Keyring::new();
    match rt.block_on(puller.pull(&reference, &secrets, watcher)) {
        Ok(o) => {
            if !quiet {
                let mb = o.fetched as f64 / 1e6;
                let secs = o.elapsed.as_secs_f64();
                eprintln!(
                    "pulled {} ({}): fetched {mb:.1} MB in {secs:.2}s ({:.1} MB/s){}",
                    o.name,
                    o.digest,
                    if secs > 0.0 { mb / secs } else { 0.0 },
                    o.unpack_elapsed
                        .map(|u| format!(", unpacked in {:.2}s", u.as_secs_f64()))
                        .unwrap_or_default()
                );
            }
            println!("{}", o.image_id.trim_start_matches("sha256:"));
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::FAILURE)
        }
    }
}

fn ls(store: &ContentStore, quiet: bool, json: bool, no_trunc: bool) -> anyhow::Result<u8> {
    let images = store.list()?;
    if json {
        let out: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "Id": i.id,
                    "Names": i.names,
                    "RepoDigests": i.repo_digests(),
                    "Created": i.created(),
                    "Size": i.size,
                    "Digest": i.target.digest().to_string(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    let id = |i: &StoredImage| {
        if no_trunc {
            i.id.clone()
        } else {
            short_id(&i.id).to_string()
        }
    };
    if quiet {
        for i in &images {
            println!("{}", id(i));
        }
        return Ok(0);
    }
    let now = crate::store::now();
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for i in &images {
        let created = i
            .created()
            .and_then(|c| c.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map_or_else(
                || "unknown".to_string(),
                |t| human_ago(now.as_second().saturating_sub(t.as_second())),
            );
        let names = if i.names.is_empty() {
            vec!["<none>".to_string()]
        } else {
            i.names.clone()
        };
        for n in names {
            let (repo, tag) = skiff_image::store::split_name(&n);
            let tag = if tag.is_empty() || tag.starts_with("sha256:") {
                "<none>"
            } else {
                tag
            };
            rows.push([
                repo.to_string(),
                tag.to_string(),
                id(i),
                created.clone(),
                human_size(i.size),
            ]);
        }
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (k, (c, w)) in r.iter().zip(widths).enumerate() {
            if k == 4 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", line.trim_end());
    }
    Ok(0)
}

fn inspect_json(store: &ContentStore, img: &StoredImage) -> serde_json::Value {
    let cfg = serde_json::to_value(&img.config).unwrap_or(serde_json::Value::Null);
    let chains = skiff_image::layers::chain_ids(&img.diff_ids);
    serde_json::json!({
        "Id": img.id.trim_start_matches("sha256:"),
        "Digest": img.target.digest().to_string(),
        "RepoTags": img.names,
        "RepoDigests": img.repo_digests(),
        "Created": img.created(),
        "Architecture": cfg.get("architecture"),
        "Os": cfg.get("os"),
        "Config": cfg.get("config"),
        "Size": img.size,
        "ManifestType": img.manifest.media_type().to_string(),
        "RootFS": {"Type": "layers", "Layers": img.diff_ids},
        "Layers": img.layers.iter().zip(&chains).map(|(l, c)| serde_json::json!({
            "Digest": l.digest().to_string(),
            "MediaType": l.media_type().to_string(),
            "Size": l.size(),
            "ChainID": c,
            "Unpacked": store.layer_dir(c),
        })).collect::<Vec<_>>(),
        "LastUsed": store.last_used(&img.id).map(|t| {
            let s = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            import::rfc3339(s)
        }),
    })
}

/// go-units `HumanSizeWithPrecision(size, 3)`, what `podman images` prints: decimal units,
/// three significant digits (`4.86 MB`, `12.3 kB`, `100 B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    // %.3g: three significant digits, no trailing zeros.
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s} {}", UNITS[u])
}

/// go-units `HumanDuration` + " ago", as podman's CREATED column.
pub fn human_ago(secs: i64) -> String {
    let s = secs.max(0);
    let m = s / 60;
    let h = m / 60;
    let text = if s < 1 {
        "Less than a second".to_string()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{} days", h / 24)
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", h / 24 / 365)
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_like_podman() {
        assert_eq!(human_size(100), "100 B");
        assert_eq!(human_size(12_345), "12.3 kB");
        assert_eq!(human_size(4_860_000), "4.86 MB");
        assert_eq!(human_size(1_000_000), "1 MB");
        assert_eq!(human_ago(0), "Less than a second ago");
        assert_eq!(human_ago(90), "About a minute ago");
        assert_eq!(human_ago(3 * 3600), "3 hours ago");
        assert_eq!(human_ago(3 * 86_400), "3 days ago");
        assert_eq!(human_ago(20 * 86_400), "2 weeks ago");
        assert_eq!(human_ago(800 * 86_400), "2 years ago");
    }
}
