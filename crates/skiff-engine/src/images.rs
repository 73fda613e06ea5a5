//! The kubelet's image manager as pure policy (pkg/kubelet/images/image_manager.go
//! `EnsureImageExists`, `shouldPullImage`, the image back-off): which pull policy a container
//! has (D2), whether an image must be pulled, the texts of the image events and waiting
//! messages, and the name and ID a container status shows for its image (ST3).
//!
//! The pod worker carries the step out (it asks the node's image service and pulls); what it
//! learns goes back to the engine as [`crate::Input::ImagePulling`], [`crate::Input::ImageReady`]
//! or a [`crate::StartFailure`], and the engine makes the events and statuses.

/// `imagePullPolicy` (SEMANTICS D2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The container's policy: the one its spec names, else the API server's default (D2:
    /// `Always` when the tag is `latest` — an image with neither tag nor digest counts as
    /// `latest` —, else `IfNotPresent`; a digest reference without a tag is `IfNotPresent`, and
    /// `name:latest@digest` is `Always`). An unknown value (validation rejects it) is treated
    /// as the default.
    pub fn for_container(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Never") => PullPolicy::Never,
            _ if skiff_model::defaults::image_tag(image) == "latest" => PullPolicy::Always,
            _ => PullPolicy::IfNotPresent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// What the image step does once the node said whether the image is present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageStep {
    /// Use the image on the node (`Pulled`: "already present").
    UsePresent,
    /// Pull it (subject to the image back-off).
    Pull,
    /// Absent under `Never`: `ErrImageNeverPull`.
    NeverPull,
}

/// image_manager.go `shouldPullImage` with the outcome of the lookup.
pub fn image_step(policy: PullPolicy, present: bool) -> ImageStep {
    match (policy, present) {
        (PullPolicy::Always, _) | (PullPolicy::IfNotPresent, false) => ImageStep::Pull,
        (PullPolicy::Never, false) => ImageStep::NeverPull,
        (PullPolicy::IfNotPresent | PullPolicy::Never, true) => ImageStep::UsePresent,
    }
}

/// The image step of one start, as the engine hands it to the pod worker with
/// [`crate::Action::StartContainer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImagePlan {
    /// The image as the spec names it (every event and message quotes it so).
    pub image: String,
    pub policy: PullPolicy,
    /// The pod's image back-off for this image is running: a pull that is needed must not
    /// happen now; the worker reports [`crate::StartFailure::ImagePullBackOff`] instead.
    pub pull_backoff: bool,
}

/// How long a pull took, for the `Pulled` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullStats {
    /// The pull itself (the image service's work).
    pub pull_ms: i64,
    /// From the pull's request to its end, waiting for the node's pull queue included.
    pub total_ms: i64,
    /// The image's size in bytes.
    pub size: u64,
}

/// The image a container is about to start from, as the node resolved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The status's `imageID`: the repo digest (`docker.io/library/busybox@sha256:…`), or the
    /// image ID (`sha256:…`) for an image that has none (containerd's `ContainerStatus`).
    pub image_id: String,
    /// `None`: it was already present; `Some`: it was pulled just now.
    pub pulled: Option<PullStats>,
}

impl ResolvedImage {
    /// The `imageID` of an image with ID `id` and `repo_digest` (containerd: the first repo
    /// digest, else the ID).
    pub fn image_id(id: &str, repo_digest: Option<&str>) -> String {
        repo_digest
            .filter(|d| !d.is_empty())
            .unwrap_or(id)
            .to_string()
    }
}

/// `Pulling` (Normal).
pub fn pulling_message(image: &str) -> String {
    format!("Pulling image {image:?}")
}

/// `Pulled` (Normal) for an image already on the node. Since KubeletEnsureSecretPulledImages
/// (KEP-2535; on by default since 1.35) the kubelet adds "and can be accessed by the pod".
pub fn present_message(image: &str) -> String {
    format!("Container image {image:?} already present on machine and can be accessed by the pod")
}

/// `Pulled` (Normal) after a pull: both durations truncated to milliseconds, Go's
/// `time.Duration` text.
pub fn pulled_message(image: &str, stats: &PullStats) -> String {
    format!(
        "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {} bytes.",
        crate::go_duration(stats.pull_ms.max(0)),
        crate::go_duration(stats.total_ms.max(0)),
        stats.size
    )
}

/// `Failed` (Warning) after a failed pull.
pub fn pull_failed_message(image: &str, error: &str) -> String {
    format!("Failed to pull image {image:?}: {error}")
}

/// `BackOff` (Normal) while the image back-off runs.
pub fn backoff_message(image: &str) -> String {
    format!("Back-off pulling image {image:?}")
}

/// The message of `ErrImageNeverPull` (event and waiting message).
pub fn never_pull_message(image: &str) -> String {
    format!("Container image {image:?} is not present with pull policy of Never")
}

/// The message of `InvalidImageName` (`InspectFailed` event and waiting message):
/// `applyDefaultImageTag`'s error, `detail` being the parser's.
pub fn invalid_name_message(image: &str, detail: &str) -> String {
    format!("Failed to apply default image tag {image:?}: {detail}")
}

/// The message of `ImageInspectError` (`InspectFailed` event and waiting message). The kubelet
/// quotes the (empty) image ref it failed to get here; skiff quotes the image the spec names.
pub fn inspect_failed_message(image: &str, detail: &str) -> String {
    format!("Failed to inspect image {image:?}: {detail}")
}

/// The `image` a container status shows for a container created from an image the node
/// resolved: containerd reports the image's first repo tag, normalized as the docker
/// reference library does (`busybox` → `docker.io/library/busybox:latest`); an image named by
/// digest has no tag, so its repo digest (`docker.io/library/busybox@sha256:…`). `None` for a
/// string that is not a plain reference (the spec's text is shown then).
pub fn normalized_name(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    // A tag is a `:` after the last `/` (a `:` before it is a registry port).
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (name, None),
    };
    if repo.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    // docker/distribution `splitDockerDomain`: the first component is a registry only if it
    // has a `.` or `:`, is `localhost`, or has upper case letters.
    let (domain, path) = match repo.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest.to_string())
        }
        _ => ("docker.io", repo.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    Some(match (tag, digest) {
        (_, Some(d)) => format!("{domain}/{path}@{d}"),
        (Some(t), None) => format!("{domain}/{path}:{t}"),
        (None, None) => format!("{domain}/{path}:latest"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d2_policy_defaults_like_the_api_server() {
        for (image, want) in [
            ("busybox", PullPolicy::Always),
            ("busybox:latest", PullPolicy::Always),
            ("busybox:1.36", PullPolicy::IfNotPresent),
            ("localhost:5000/busybox", PullPolicy::Always),
            ("localhost:5000/busybox:v1", PullPolicy::IfNotPresent),
            ("busybox@sha256:abcd", PullPolicy::IfNotPresent),
            ("busybox:latest@sha256:abcd", PullPolicy::Always),
        ] {
            assert_eq!(PullPolicy::for_container(None, image), want, "{image}");
        }
        assert_eq!(
            PullPolicy::for_container(Some("Never"), "busybox"),
            PullPolicy::Never
        );
    }

    #[test]
    fn should_pull_image_table() {
        use ImageStep::*;
        assert_eq!(image_step(PullPolicy::Always, true), Pull);
        assert_eq!(image_step(PullPolicy::Always, false), Pull);
        assert_eq!(image_step(PullPolicy::IfNotPresent, true), UsePresent);
        assert_eq!(image_step(PullPolicy::IfNotPresent, false), Pull);
        assert_eq!(image_step(PullPolicy::Never, true), UsePresent);
        assert_eq!(image_step(PullPolicy::Never, false), NeverPull);
    }

    #[test]
    fn normalized_names_as_containerd_shows_them() {
        for (image, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("bitnami/nginx", "docker.io/bitnami/nginx:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("localhost:5000/busybox:v1", "localhost:5000/busybox:v1"),
            ("localhost/busybox", "localhost/busybox:latest"),
            ("ghcr.io/a/b:c", "ghcr.io/a/b:c"),
            ("busybox@sha256:ab", "docker.io/library/busybox@sha256:ab"),
            (
                "busybox:1.36@sha256:ab",
                "docker.io/library/busybox@sha256:ab",
            ),
        ] {
            assert_eq!(normalized_name(image).as_deref(), Some(want), "{image}");
        }
        assert_eq!(normalized_name(""), None);
        assert_eq!(normalized_name("a b"), None);
    }

    #[test]
    fn pulled_text_truncates_to_milliseconds() {
        let s = PullStats {
            pull_ms: 1_234,
            total_ms: 61_500,
            size: 4_269_694,
        };
        assert_eq!(
            pulled_message("busybox", &s),
            "Successfully pulled image \"busybox\" in 1.234s (1m1.5s including waiting). Image size: 4269694 bytes."
        );
    }
}
