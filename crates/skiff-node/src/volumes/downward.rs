//! The downward API on this node: the values themselves are computed in
//! [`skiff_model::downward`] (pure, shared with an API server); what needs the machine, the
//! node's allocatable, is measured here.

use std::path::Path;

pub use skiff_model::downward::{
    container_resource_value, find_container, format_map, pod_metadata_field, NodeAllocatable,
};

/// Measures [`NodeAllocatable`] on this machine (an extension trait: the type lives in the
/// model, which does no I/O).
pub trait DetectNodeAllocatable {
    /// The machine's values, as the node module measures them for admission.
    fn detect(data_dir: &Path) -> NodeAllocatable;
}

impl DetectNodeAllocatable for NodeAllocatable {
    /// The machine's values, the same the node module uses for admission (`machine`).
    fn detect(data_dir: &Path) -> NodeAllocatable {
        NodeAllocatable {
            cpu_millis: crate::machine::milli_cpus(),
            memory_bytes: crate::machine::memory_bytes(),
            ephemeral_storage_bytes: crate::machine::fs_size(data_dir),
        }
    }
}
