//! `skiff image` on the built binary: import a directory, list, inspect, check, remove,
//! prune, and bad input.
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

/// A tiny root filesystem: one script and a symlink.
fn rootfs(t: &TestDir) -> String {
    let root = t.file("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
    std::os::unix::fs::symlink("hello", root.join("bin/hi")).unwrap();
    root.to_str().unwrap().to_string()
}

#[test]
fn import_from_dir_ls_inspect_check_rm() {
    let t = TestDir::new("image-cli");
    let root = rootfs(&t);
    let o = image(
        &t,
        &[
            "import",
            "--from-dir",
            &root,
            "--name",
            "hello:1",
            "--cmd",
            "/bin/hello",
            "--env",
            "A=b",
        ],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stdout.starts_with("docker.io/library/hello:1 sha256:"),
        "{}",
        o.stdout
    );
    let id = o.stdout.split_whitespace().nth(1).unwrap().to_string();

    let o = image(&t, &["ls"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    let head: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(head, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert!(
        lines[1].starts_with("docker.io/library/hello"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(&id[7..19]));
    assert!(lines[1].ends_with(" kB"), "{}", lines[1]);

    let o = image(&t, &["ls", "-q"]);
    assert_eq!(o.stdout.trim(), &id[7..19]);
    let o = image(&t, &["ls", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["Names"][0], "docker.io/library/hello:1");

    let o = image(&t, &["inspect", "hello:1"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["Config"]["Cmd"][0], "/bin/hello");
    assert_eq!(v[0]["Config"]["Env"][1], "A=b");
    assert_eq!(v[0]["Os"], "linux");

    let o = image(&t, &["check"]);
    assert_eq!(o.code, Some(0), "{} {}", o.stdout, o.stderr);

    // In use by a container (a holder file, as the runtime records it): rm refuses.
    let data = t.file("data");
    let store = skiff_image::ContentStore::open(&data.join("images")).unwrap();
    store.rootfs("hello:1", "test-holder").unwrap();
    let o = image(&t, &["rm", "hello:1"]);
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("in use"), "{}", o.stderr);
    store.release("test-holder").unwrap();
    let o = image(&t, &["rm", "hello:1"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("Untagged: docker.io/library/hello:1"));
    let o = image(&t, &["ls", "-q"]);
    assert_eq!(o.stdout.trim(), "");
    // Everything went: no blob, no layer left.
    assert_eq!(
        std::fs::read_dir(data.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(data.join("images/layers/l"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn bad_input_is_exit_2_and_unknown_images_exit_1() {
    let t = TestDir::new("image-cli-bad");
    let junk = t.file("junk.tar");
    std::fs::write(&junk, b"not an archive").unwrap();
    let o = image(&t, &["import", junk.to_str().unwrap()]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("error:"), "{}", o.stderr);
    let root = rootfs(&t);
    let o = image(&t, &["import", "--from-dir", &root]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("--name"), "{}", o.stderr);
    let o = image(&t, &["rm", "nothing-here"]);
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("image not known"), "{}", o.stderr);
    let o = image(&t, &["inspect", "nothing-here"]);
    assert_eq!(o.code, Some(1));
    let o = image(&t, &["prune", "--all"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}
