//! Issue 7 item 6: each tmpfs is in the pod's record before it is mounted and leaves it only
//! once unmounted; a volume set dropped without teardown (a panic) unmounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::downward::NodeAllocatable;
use super::{MountJournal, PodObjects, PodVolumes};

/// A journal that, at each call, looks whether the path is a mount point right now.
#[derive(Debug, Default)]
struct FakeJournal {
    calls: std::sync::Mutex<Vec<(&'static str, PathBuf, bool)>>,
    fail: bool,
}

fn is_mount_point(p: &Path) -> bool {
    crate::mountinfo::is_mount_point(p)
}

impl MountJournal for FakeJournal {
    fn before_mount(&self, path: &Path) -> Result<(), String> {
        let mounted = is_mount_point(path);
        self.calls
            .lock()
            .unwrap()
            .push(("before", path.to_path_buf(), mounted));
        if self.fail {
            return Err("disk full".into());
        }
        Ok(())
    }
    fn after_unmount(&self, path: &Path) {
        let mounted = is_mount_point(path);
        self.calls
            .lock()
            .unwrap()
            .push(("after", path.to_path_buf(), mounted));
    }
}

fn secret_pod() -> (Pod, PodObjects) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "s", "secret": {"secretName": "s"}}]}
    }))
    .unwrap();
    let mut objects = PodObjects::default();
    objects.secrets.insert(
        "s".into(),
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
        )
        .unwrap(),
    );
    (pod, objects)
}

const NODE: NodeAllocatable = NodeAllocatable {
    cpu_millis: 1000,
    memory_bytes: 1 << 30,
    ephemeral_storage_bytes: 1 << 40,
};

#[test]
fn issue7_item6_tmpfs_is_recorded_before_mount_and_cleared_after_unmount() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (tmpfs)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pod_dir = t.path().join("pods/default_p_u1");
    let (pod, objects) = secret_pod();
    let journal = std::sync::Arc::new(FakeJournal::default());
    let mut vols =
        PodVolumes::setup_journaled(&pod, &pod_dir, &objects, &NODE, Some(journal.clone()))
            .unwrap();
    let secret = pod_dir.join("volumes/kubernetes.io~secret/s");
    assert!(is_mount_point(&secret));
    assert_eq!(
        *journal.calls.lock().unwrap(),
        vec![("before", secret.clone(), false)],
        "recorded before (not yet mounted)"
    );
    vols.teardown();
    assert!(!is_mount_point(&secret));
    assert_eq!(
        journal.calls.lock().unwrap()[1],
        ("after", secret.clone(), false),
        "cleared only once unmounted"
    );
}

#[test]
fn issue7_item6_no_mount_without_a_record() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (tmpfs)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pod_dir = t.path().join("pods/default_p_u1");
    let (pod, objects) = secret_pod();
    let journal = std::sync::Arc::new(FakeJournal {
        fail: true,
        ..Default::default()
    });
    let e = PodVolumes::setup_journaled(&pod, &pod_dir, &objects, &NODE, Some(journal.clone()))
        .unwrap_err();
    assert!(e.message.contains("disk full"), "{e}");
    let secret = pod_dir.join("volumes/kubernetes.io~secret/s");
    assert!(!is_mount_point(&secret));
    assert!(
        !pod_dir.join("volumes").exists(),
        "setup failure leaves nothing"
    );
}

#[test]
fn issue7_item6_dropping_volumes_unmounts() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (tmpfs)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let pod_dir = t.path().join("pods/default_p_u1");
    let (pod, objects) = secret_pod();
    let journal = std::sync::Arc::new(FakeJournal::default());
    let secret = pod_dir.join("volumes/kubernetes.io~secret/s");
    // A panic unwinding through the owner of the volumes.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _vols =
            PodVolumes::setup_journaled(&pod, &pod_dir, &objects, &NODE, Some(journal.clone()))
                .unwrap();
        assert!(is_mount_point(&secret));
        panic!("boom");
    }));
    assert!(r.is_err());
    assert!(!is_mount_point(&secret), "tmpfs left after a panic");
    assert_eq!(journal.calls.lock().unwrap().len(), 2);
}
