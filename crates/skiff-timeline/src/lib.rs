//! skiff-timeline: a pod's life as a picture.
//!
//! The node records, per container instance, what the lifecycle engine decided and what
//! happened ([`Recorder`], fed the engine's inputs and actions with the time they happened);
//! the record is plain data ([`Timeline`], also the `-o json` format) that renders to the
//! terminal, SVG and HTML. Everything here is pure: no I/O, no clock.

pub mod model;
mod recorder;
pub mod render;
pub mod scenario;

pub use model::*;
pub use recorder::{Recorder, RecorderLimits};
