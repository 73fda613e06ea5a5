//! [`ImageService`] over skiff's image store (`skiff_image`): what the worker's image step
//! and the OCI runtime ask of images on this node.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use skiff_image::auth::{self, Keyring, SecretPayload};
use skiff_image::reference::ImageRef;
use skiff_image::registry::{Puller, RegistryConfig};
use skiff_image::{ContentStore, StoreError};

use super::{ImageError, ImageInfo, ImageService, PullSecret, PullSecrets};
use crate::spec::ImageRootfs;

/// The node's images: the content store under `<data dir>/images`.
#[derive(Clone)]
pub struct StoreImages {
    store: Arc<ContentStore>,
    /// One puller per node: concurrent pulls of one image share its work.
    puller: Puller,
}

impl std::fmt::Debug for StoreImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreImages")
            .field("root", &self.store.root())
            .finish()
    }
}

impl StoreImages {
    /// Opens (creating) the store of the data dir `data_dir`.
    /// Registries configured as insecure come from `SKIFF_INSECURE_REGISTRIES`; the node's
    /// own credentials from the user's Docker config (unreadable → none, with a warning).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let store = ContentStore::open(&data_dir.join("images"))?;
        let node_keyring = auth::docker_config_keyring().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the Docker config's credentials");
            Keyring::new()
        });
        let puller = Puller::new(
            store.clone(),
            RegistryConfig::default().with_env(),
            node_keyring,
        );
        Ok(Self {
            store: Arc::new(store),
            puller,
        })
    }

    /// The store itself (for pulls and the CLI).
    pub fn store(&self) -> &Arc<ContentStore> {
        &self.store
    }
}

fn store_error(image: &str, e: StoreError) -> ImageError {
    ImageError::Store(format!("image {image:?}: {e}"))
}

/// The reference as the kubelet parses it; the error carries only the parser's reason (the
/// worker writes the kubelet's `Failed to apply default image tag …` around it).
fn parse(image: &str) -> Result<ImageRef, ImageError> {
    ImageRef::parse(image).map_err(|e| ImageError::InvalidName(e.reason))
}

fn info(img: skiff_image::StoredImage) -> ImageInfo {
    ImageInfo {
        repo_digest: img.repo_digests().into_iter().next(),
        id: img.id,
        size: img.size,
    }
}

impl ImageService for StoreImages {
    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>, ImageError> {
        let reference = parse(image)?;
        let found = self
            .store
            .resolve(&reference.canonical())
            .map_err(|e| store_error(image, e))?;
        Ok(found.map(info))
    }

    fn pull_image(
        &self,
        image: &str,
        secrets: &PullSecrets,
    ) -> impl Future<Output = Result<ImageInfo, ImageError>> + Send + 'static {
        let reference = parse(image);
        let payloads: Vec<SecretPayload<'_>> = secrets
            .0
            .iter()
            .map(|s| match s {
                PullSecret::DockerConfigJson(b) => SecretPayload::DockerConfigJson(b),
                PullSecret::DockerCfg(b) => SecretPayload::DockerCfg(b),
            })
            .collect();
        // A malformed secret is the kubelet's pull error too (its keyring fails to build).
        let keyring = auth::secrets_keyring(&payloads).map_err(|e| ImageError::Pull(e.to_string()));
        let puller = self.puller.clone();
        let store = self.store.clone();
        let image = image.to_string();
        async move {
            let reference = reference?;
            let keyring = keyring?;
            let outcome = puller
                .pull(&reference, &keyring, None)
                .await
                .map_err(|e| ImageError::Pull(e.to_string()))?;
            match store.resolve(&outcome.name) {
                Ok(Some(img)) => Ok(info(img)),
                Ok(None) => Err(ImageError::Store(format!(
                    "image {image:?}: pulled as {} but not in the store",
                    outcome.name
                ))),
                Err(e) => Err(store_error(&image, e)),
            }
        }
    }

    fn rootfs(&self, image: &str, holder: &str) -> Result<ImageRootfs, ImageError> {
        let r = self
            .store
            .rootfs(image, holder)
            .map_err(|e| store_error(image, e))?;
        Ok(ImageRootfs {
            image_id: r.image_id,
            config: r.config,
            lower_dirs: r.lower_dirs,
        })
    }

    fn release(&self, holder: &str) {
        if let Err(e) = self.store.release(holder) {
            tracing::warn!(holder, error = %e, "releasing the container's image");
        }
    }
}
