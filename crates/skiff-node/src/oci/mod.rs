//! The OCI runtime classes: image containers run by an OCI runtime binary.
//!
//! * [`config`]: the bundle's config.json, built from scratch as the kubelet and containerd
//!   build it (pure); [`user`]: the container's user resolved in the image.
//! * [`runc`]: which runtime binary works here, and the commands skiff gives it.
//! * [`rootfs`]: the bundle directory, the overlayfs root filesystem, staged volume sources,
//!   the pod's hosts/hostname/resolv.conf files.
//! * [`cri`]: [`cri::OciCri`], the seam's `RuntimeService` for these classes.

pub mod config;
pub mod cri;
pub mod rootfs;
pub mod runc;
pub mod user;
