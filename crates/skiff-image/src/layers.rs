//! Layers unpacked once per chain ID.

use std::path::PathBuf;

/// The process config of an image, as the OCI runtime needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootfsConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

/// An image ready to be a container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    pub image_id: String,
    pub config: RootfsConfig,
    /// Unpacked layer dirs, top-most first.
    pub lower_dirs: Vec<PathBuf>,
}
