//! The recorder on the real engine (scenario player): what each scenario's record holds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use crate::model::*;
use crate::scenario::library;

fn row<'a>(tl: &'a Timeline, container: &str, attempt: i32) -> &'a Instance {
    tl.instances
        .iter()
        .find(|i| i.container == container && i.attempt == attempt)
        .unwrap_or_else(|| panic!("no {container}#{attempt} in {tl:#?}"))
}

#[test]
fn dump() {
    for tl in [
        library::init_sidecar_app(),
        library::sidecar_crash_loop(),
        library::job_completion(),
        library::liveness_kill(),
        library::timeout_stop(),
    ] {
        println!("{}", serde_json::to_string_pretty(&tl).unwrap());
    }
    let _ = row;
}
