//! Prints the scenario library's timelines as the terminal drawing (a look at the renderer):
//! `cargo run -p skiff-timeline --example show [WIDTH]`.
use skiff_timeline::render::text::{render, TextOptions};
use skiff_timeline::scenario::library;

fn main() {
    let width = std::env::args()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or(100);
    let opts = TextOptions {
        width,
        color: std::env::var_os("COLOR").is_some(),
        unicode: true,
    };
    for tl in [
        library::init_sidecar_app(),
        library::sidecar_crash_loop(),
        library::job_completion(),
        library::liveness_kill(),
        library::timeout_stop(),
    ] {
        println!("{}", render(&tl, &opts));
    }
}
