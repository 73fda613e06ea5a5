//! The deployment controller (see the crate docs). Filled in by its owner.
