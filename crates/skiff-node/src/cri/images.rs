//! [`ImageService`] over skiff's image store (`skiff_image`): what the worker's image step
//! and the OCI runtime ask of images on this node.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use skiff_image::{ContentStore, StoreError};

use super::{ImageError, ImageInfo, ImageService, PullSecrets};
use crate::spec::{ImageProcessConfig, ImageRootfs};

/// The node's images: the content store under `<data dir>/images`.
#[derive(Clone)]
pub struct StoreImages {
    store: Arc<ContentStore>,
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
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            store: Arc::new(ContentStore::open(&data_dir.join("images"))?),
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

impl ImageService for StoreImages {
    fn image_status(&self, image: &str) -> Result<Option<ImageInfo>, ImageError> {
        let found = self
            .store
            .resolve(image)
            .map_err(|e| store_error(image, e))?;
        Ok(found.map(|img| ImageInfo {
            repo_digest: img.repo_digests().into_iter().next(),
            id: img.id,
            size: img.size,
        }))
    }

    fn pull_image(
        &self,
        image: &str,
        _secrets: &PullSecrets,
    ) -> impl Future<Output = Result<ImageInfo, ImageError>> + Send + 'static {
        let image = image.to_string();
        async move {
            Err(ImageError::Pull(format!(
                "pulling {image:?}: this build has no registry client yet"
            )))
        }
    }

    fn rootfs(&self, image: &str, holder: &str) -> Result<ImageRootfs, ImageError> {
        let r = self
            .store
            .rootfs(image, holder)
            .map_err(|e| store_error(image, e))?;
        Ok(ImageRootfs {
            image_id: r.image_id,
            config: ImageProcessConfig {
                entrypoint: r.config.entrypoint,
                cmd: r.config.cmd,
                env: r.config.env,
                working_dir: r.config.working_dir,
                user: r.config.user,
                stop_signal: r.config.stop_signal,
            },
            lower_dirs: r.lower_dirs,
        })
    }

    fn release(&self, holder: &str) {
        if let Err(e) = self.store.release(holder) {
            tracing::warn!(holder, error = %e, "releasing the container's image");
        }
    }
}
