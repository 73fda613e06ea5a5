//! skiff-node: the effects layer for the `host` runtime class.
pub mod expand;
pub mod launch;
pub mod logs;
pub mod probe;
pub mod reaper;
pub mod runtime;
mod spawn;
pub mod termination;
pub mod timefmt;
pub mod tracker;
