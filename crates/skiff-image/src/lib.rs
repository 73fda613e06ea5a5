//! Container images for skiff: a content-addressed store in OCI-layout form ([`store`]),
//! safe layer unpacking ([`unpack`]), layers unpacked once per chain ID and held in use by
//! containers ([`layers`]), import of OCI layouts and docker archives ([`import`]), and
//! garbage collection ([`gc`]). It knows images, not pods: a container's use of an image
//! is a *holder* string the caller chooses.

pub mod auth;
pub mod digest;
pub mod gc;
pub mod import;
pub mod layers;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use layers::{Rootfs, RootfsConfig};
pub use store::{ContentStore, Ingest, StoreError, StoredImage};
