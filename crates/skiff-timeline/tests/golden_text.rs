//! Golden tests of the terminal drawing (issue 13): fixed timelines from the scenario player
//! (the real engine, simulated clock), width 100, no colour, compared byte for byte with
//! `tests/golden/<name>.txt`. `UPDATE_GOLDEN=1 cargo test -p skiff-timeline --test golden_text`
//! rewrites them; read the diff before committing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::PathBuf;

use skiff_timeline::render::text::{render, TextOptions};
use skiff_timeline::scenario::library;
use skiff_timeline::Timeline;

fn check(name: &str, tl: &Timeline) {
    let opts = TextOptions {
        width: 100,
        color: false,
        unicode: true,
    };
    let got = render(tl, &opts);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert!(
        got == want,
        "{name}: the drawing changed (UPDATE_GOLDEN=1 to accept)\n--- want\n{want}\n--- got\n{got}"
    );
}

/// S1–S3: an init chain, a sidecar gated by its startup probe (two failures first), the app.
#[test]
fn golden_init_chain_sidecar_startup_probe_app() {
    check("init_sidecar_app", &library::init_sidecar_app());
}

/// R5: a sidecar crash loop; restarts with 10 s, 20 s, 40 s back-off while the app runs.
#[test]
fn golden_sidecar_crash_loop_with_back_off() {
    check("sidecar_crash_loop", &library::sidecar_crash_loop());
}

/// T4/T6: Job-style completion: the app exits 0, sidecars stop in reverse order, one after
/// its preStop hook.
#[test]
fn golden_job_completion_reverse_order_and_pre_stop() {
    check("job_completion", &library::job_completion());
}

/// P4/T2: a liveness kill: three failures, SIGTERM ignored, SIGKILL after the grace, restart.
#[test]
fn golden_liveness_kill() {
    check("liveness_kill", &library::liveness_kill());
}

/// T1: `skiff run --timeout`: SIGTERM at the timeout, SIGKILL after the grace, then the
/// sidecar.
#[test]
fn golden_timeout_stop() {
    check("timeout_stop", &library::timeout_stop());
}

/// The same drawing in ASCII for dumb terminals.
#[test]
fn golden_ascii_job_completion() {
    let got = render(
        &library::job_completion(),
        &TextOptions {
            width: 100,
            color: false,
            unicode: false,
        },
    );
    assert!(got.is_ascii());
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/job_completion_ascii.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    assert_eq!(got, std::fs::read_to_string(&path).unwrap());
}
