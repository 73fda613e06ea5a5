//! The pod worker's side of the kubelet's image manager: the node's pull queue
//! (`serializeImagePulls`, pkg/kubelet/images/puller.go), the pod's `imagePullSecrets`
//! (kubelet.go `getPullSecretsForPod`), and the image service of a runtime that runs no images
//! ([`NoImages`], the `host` class). The policy (pull or not, back-off, events, statuses) is
//! the engine's (`skiff_engine::images`).

use std::future::Future;
use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cri::{ImageError, ImageInfo, ImageService, PullSecret, PullSecrets};
use crate::spec::ImageRootfs;
use crate::volumes::{secret_data, PodObjects};

/// The image service of a runtime whose containers run from the host's filesystem: every
/// image is "present" with an empty ID, which tells the worker that there is no image step at
/// all (no lookup, pull, event or `imageID`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoImages;

impl NoImages {
    fn info() -> ImageInfo {
        ImageInfo {
            id: String::new(),
            repo_digest: None,
            size: 0,
        }
    }
}

impl ImageService for NoImages {
    fn image_status(&self, _image: &str) -> Result<Option<ImageInfo>, ImageError> {
        Ok(Some(Self::info()))
    }

    fn pull_image(
        &self,
        _image: &str,
        _secrets: &PullSecrets,
    ) -> impl Future<Output = Result<ImageInfo, ImageError>> + Send + 'static {
        std::future::ready(Ok(Self::info()))
    }

    fn rootfs(&self, image: &str, _holder: &str) -> Result<ImageRootfs, ImageError> {
        Err(ImageError::Store(format!(
            "image {image:?}: this runtime class runs containers from the host's filesystem, not from images"
        )))
    }

    fn release(&self, _holder: &str) {}
}

/// Whether an image service answer means "no image step" ([`NoImages`]).
pub fn runs_without_images(info: &ImageInfo) -> bool {
    info.id.is_empty()
}

/// The node's pull queue. The kubelet's default (`serializeImagePulls: true`) pulls one image
/// at a time for the whole node, in request order; `parallel` lets every pull go at once
/// (`serializeImagePulls: false` without `maxParallelImagePulls`).
#[derive(Debug, Clone)]
pub struct PullQueue(Option<Arc<Semaphore>>);

impl PullQueue {
    /// One pull at a time, first come first served (tokio's semaphore is fair).
    pub fn serial() -> Self {
        PullQueue(Some(Arc::new(Semaphore::new(1))))
    }

    /// No limit.
    pub fn parallel() -> Self {
        PullQueue(None)
    }

    /// The queue every pod of this process shares (what `run_pod` uses): serial, like the
    /// kubelet's default.
    pub fn node() -> Self {
        static NODE: OnceLock<PullQueue> = OnceLock::new();
        NODE.get_or_init(PullQueue::serial).clone()
    }

    /// Waits for this pull's turn; the turn lasts as long as the permit is held.
    pub async fn turn(&self) -> Option<OwnedSemaphorePermit> {
        match &self.0 {
            // The semaphore is never closed, so acquiring only fails if it were.
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        }
    }
}

/// `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret.
const DOCKER_CONFIG_JSON: (&str, &str) = ("kubernetes.io/dockerconfigjson", ".dockerconfigjson");
/// `.dockercfg` of a `kubernetes.io/dockercfg` Secret.
const DOCKER_CFG: (&str, &str) = ("kubernetes.io/dockercfg", ".dockercfg");

/// The pod's `imagePullSecrets`, in spec order, and the names of those that could not be
/// found (kubelet.go `getPullSecretsForPod`: entries with an empty name are skipped; a
/// missing Secret is only a warning, [`missing_secrets_message`]). Like the kubelet's
/// `MakeDockerKeyring`, a Secret found but of another type, or without its key, gives
/// nothing.
pub fn pull_secrets(pod: &Pod, objects: &PodObjects) -> (PullSecrets, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref());
    for r in refs.into_iter().flatten() {
        if r.name.is_empty() {
            continue;
        }
        let Some(secret) = objects.secrets.get(&r.name) else {
            missing.push(r.name.clone());
            continue;
        };
        let type_ = secret.type_.as_deref().unwrap_or("");
        let mut data = secret_data(secret);
        let payload = |(t, key): (&str, &str), data: &mut std::collections::BTreeMap<_, _>| {
            (type_ == t)
                .then(|| data.remove(key))
                .flatten()
                .filter(|v: &Vec<u8>| !v.is_empty())
        };
        if let Some(v) = payload(DOCKER_CONFIG_JSON, &mut data) {
            found.push(PullSecret::DockerConfigJson(v));
        } else if let Some(v) = payload(DOCKER_CFG, &mut data) {
            found.push(PullSecret::DockerCfg(v));
        }
    }
    (PullSecrets(found), missing)
}

/// The Warning `FailedToRetrieveImagePullSecret` for the pod (kubelet.go).
pub fn missing_secrets_message(missing: &[String]) -> String {
    format!(
        "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
        missing.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;

    fn secret(type_: &str, key: &str, value: &str) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn secrets_in_spec_order_missing_named_others_ignored() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [], "imagePullSecrets": [
                {"name": "b"}, {"name": ""}, {"name": "gone"}, {"name": "a"},
                {"name": "opaque"}, {"name": "gone2"}
            ]}
        }))
        .unwrap();
        let mut objects = PodObjects::default();
        objects.secrets.insert(
            "a".into(),
            secret("kubernetes.io/dockercfg", ".dockercfg", "{}"),
        );
        objects.secrets.insert(
            "b".into(),
            secret(
                "kubernetes.io/dockerconfigjson",
                ".dockerconfigjson",
                "{\"auths\":{}}",
            ),
        );
        objects
            .secrets
            .insert("opaque".into(), secret("Opaque", ".dockerconfigjson", "x"));
        let (s, missing) = pull_secrets(&pod, &objects);
        assert_eq!(
            s,
            PullSecrets(vec![
                PullSecret::DockerConfigJson(b"{\"auths\":{}}".to_vec()),
                PullSecret::DockerCfg(b"{}".to_vec()),
            ])
        );
        assert_eq!(missing, vec!["gone".to_string(), "gone2".to_string()]);
        assert_eq!(
            missing_secrets_message(&missing),
            "Unable to retrieve some image pull secrets (gone, gone2); attempting to pull the image may not succeed."
        );
    }

    #[test]
    fn no_images_is_present_without_id() {
        let info = NoImages.image_status("anything").unwrap().unwrap();
        assert!(runs_without_images(&info));
        assert!(NoImages.rootfs("x", "h").is_err());
    }
}
