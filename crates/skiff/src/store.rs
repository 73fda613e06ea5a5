//! The data dir as the commands see it: where it is, what `skiff run` keeps there (and, with
//! `--rm`, removes) and how many finished pods it keeps; the store itself is
//! `skiff_node::store`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use skiff_node::store::{self, Retention};

/// The data dir flag of `skiff get` and `skiff logs`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDirArg {
    /// Where `skiff run` keeps pods (default: /var/lib/skiff as root, else
    /// $XDG_DATA_HOME/skiff; `SKIFF_DATA_DIR` overrides).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    /// The data dir to read; a warning when it is not skiff's own (read anyway).
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => store::default_data_dir()?,
        };
        match store::check_data_dir(&dir) {
            Ok(()) => {}
            Err(store::StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("warning: {e}"),
        }
        Ok(dir)
    }
}

/// `skiff run`'s flags about what stays of the pod.
#[derive(clap::Args, Debug, Clone)]
pub struct RunStoreArgs {
    /// Keep the pod's logs and final status here, under
    /// `pods/<ns>_<name>_<uid>/` (default: /var/lib/skiff as root, else $XDG_DATA_HOME/skiff;
    /// `SKIFF_DATA_DIR` overrides). Read back with `skiff get pods` and `skiff logs`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Remove the pod's logs and status when it ends (as `docker run --rm`).
    #[arg(long)]
    pub rm: bool,
    /// Keep at most this many finished pods in the data dir (the most recently finished);
    /// older ones are removed when a run starts and ends.
    #[arg(long, value_name = "N", default_value_t = Retention::default().keep)]
    pub keep_pods: usize,
    /// Remove finished pods that ended longer ago than this (Go duration: 168h, 90m, 1h30m).
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = parse_go_duration)]
    pub keep_for: Duration,
}

impl RunStoreArgs {
    fn retention(&self) -> Retention {
        Retention {
            keep: self.keep_pods,
            keep_for: self.keep_for,
        }
    }

    /// The data dir, for admission's filesystem size before it exists.
    pub fn admission_dir(&self) -> PathBuf {
        match &self.data_dir {
            Some(d) => d.clone(),
            None => store::default_data_dir().unwrap_or_else(|_| std::env::temp_dir()),
        }
    }

    /// The data dir, created and checked (skiff's own, writable by nobody else), with the
    /// finished pods beyond the bound removed.
    pub fn prepare(&self) -> anyhow::Result<PathBuf> {
        let dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => store::default_data_dir()?,
        };
        store::prepare_data_dir(&dir)?;
        self.prune(&dir);
        Ok(dir)
    }

    /// At the end of a run: `--rm` removes the pod's directory; the bound is applied again.
    pub fn finish(&self, data_dir: &Path, pod: &Pod) {
        if self.rm {
            let dir = pod_dir(data_dir, pod);
            if let Err(e) = store::remove_pod_dir(&dir) {
                eprintln!("warning: --rm: removing {}: {e}", dir.display());
            }
        }
        self.prune(data_dir);
    }

    /// Records a pod rejected at admission (it never ran) as a finished pod, unless `--rm`.
    pub fn record_rejected(&self, pod: &Pod) {
        if self.rm {
            return;
        }
        let res = self.prepare().and_then(|dir| {
            store::record_final(&dir, &dir_name(pod), pod)
                .with_context(|| format!("recording the pod in {}", dir.display()))
        });
        if let Err(e) = res {
            tracing::warn!("{e:#}");
        }
    }

    fn prune(&self, data_dir: &Path) {
        let removed = store::prune(data_dir, self.retention(), SystemTime::now());
        if !removed.is_empty() {
            tracing::info!(
                count = removed.len(),
                "removed finished pods beyond the bound"
            );
        }
    }
}

/// `<ns>_<name>_<uid>`, the pod's directory name.
fn dir_name(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or("")
    )
}

fn pod_dir(data_dir: &Path, pod: &Pod) -> PathBuf {
    store::pods_dir(data_dir).join(dir_name(pod))
}

/// The wall clock as a timestamp (k8s-openapi's jiff is built without its clock).
pub fn now() -> k8s_openapi::jiff::Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    // subsec_nanos < 1e9 fits an i32.
    k8s_openapi::jiff::Timestamp::new(secs, i32::try_from(d.subsec_nanos()).unwrap_or(0))
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// Go's `time.ParseDuration` (kubectl's `--since`, and skiff's duration flags): a sequence of
/// decimal numbers with a unit each (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `1h30m`,
/// `1.5h`, `300ms`; `0` alone needs no unit. Negative durations are refused here (no flag
/// takes one).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let nanos = crate::duration::parse_go(s)?;
    let nanos =
        u64::try_from(nanos).map_err(|_| format!("{s:?}: a negative duration is not allowed"))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        let ok = |s: &str| parse_go_duration(s).unwrap();
        assert_eq!(ok("168h"), Duration::from_secs(168 * 3600));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("2m3.5s"), Duration::from_millis(123_500));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("1µs"), Duration::from_micros(1));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        for bad in [
            "",
            "5",
            "h",
            "1d",
            "-5s",
            "1..5s",
            "1.2.3s",
            ".s",
            "99999999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
