//! `skiff image pull` on the built binary: the kubelet's InvalidImageName text (exit 2), and
//! a registry that is not there (exit 1, the image named, the store still consistent).
//! Pulls from a real registry are in crates/skiff-image/tests/registry.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{finish, spawn, Outcome, TestDir};

fn image(t: &TestDir, args: &[&str]) -> Outcome {
    let data = t.file("data");
    let mut all = vec!["image", "--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    finish(spawn(&all), Duration::from_secs(60))
}

#[test]
fn invalid_name_is_bad_input_with_the_kubelet_message() {
    let t = TestDir::new("image-pull-cli");
    let o = image(&t, &["pull", "BusyBox"]);
    assert_eq!(o.code, Some(2), "{o:?}");
    assert!(
        o.stderr.contains(
            "Failed to apply default image tag \"BusyBox\": couldn't parse image name \"BusyBox\": \
             invalid reference format: repository name (library/BusyBox) must be lowercase"
        ),
        "{o:?}"
    );
}

#[test]
fn unreachable_registry_names_the_image() {
    let t = TestDir::new("image-pull-cli");
    let o = image(&t, &["pull", "-q", "127.0.0.1:1/busybox"]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(
        o.stderr.contains("failed to pull image \"127.0.0.1:1/busybox:latest\": registry 127.0.0.1:1 is unavailable"),
        "{o:?}"
    );
    let o = image(&t, &["check"]);
    assert_eq!(o.code, Some(0), "{o:?}");
}
