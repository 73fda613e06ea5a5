//! Registry pulls against real registries (scripts/test-registry.sh: docker-registry with
//! OCI, schema2, zstd, index variants and an htpasswd instance) and against a hostile
//! HTTP server written here (oversized manifest, endless blob, wrong blob, truncated blob,
//! a registry that stalls).
//!
//! The fixture is started here (and stopped by PID at the end) unless
//! `SKIFF_TEST_REGISTRY`/`SKIFF_TEST_AUTH_REGISTRY` name running ones. Without the fixture's
//! tools the fixture test is skipped with a message, except under `CI`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use skiff_image::auth::{secrets_keyring, Keyring, SecretPayload};
use skiff_image::reference::ImageRef;
use skiff_image::registry::{PullErrorKind, PullOutcome, Puller, RegistryConfig};
use skiff_image::ContentStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The running fixture; stops what it started when dropped.
struct Fixture {
    anon: String,
    auth: String,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = Command::new(workspace().join("scripts/test-registry.sh"))
                .arg("stop")
                .arg(d.path())
                .status();
        }
    }
}

fn fixture() -> Option<Fixture> {
    if let (Ok(a), Ok(b)) = (
        std::env::var("SKIFF_TEST_REGISTRY"),
        std::env::var("SKIFF_TEST_AUTH_REGISTRY"),
    ) {
        return Some(Fixture {
            anon: a,
            auth: b,
            dir: None,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(workspace().join("scripts/test-registry.sh"))
        .arg("start")
        .arg(dir.path())
        .output()
        .unwrap();
    if out.status.code() == Some(3) && std::env::var_os("CI").is_none() {
        eprintln!(
            "SKIPPED: registry fixture tools missing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let port: u16 = std::fs::read_to_string(dir.path().join("port"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "fixture did not start: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success(),
        "fixture: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Fixture {
        anon: format!("127.0.0.1:{port}"),
        auth: format!("127.0.0.1:{}", port + 1),
        dir: Some(dir),
    })
}

fn puller(store: &Path, cfg: RegistryConfig) -> Puller {
    Puller::new(ContentStore::open(store).unwrap(), cfg, Keyring::new())
}

async fn pull(p: &Puller, image: &str, secrets: &Keyring) -> Result<PullOutcome, PullErrorKind> {
    let r = ImageRef::parse(image).unwrap();
    p.pull(&r, secrets, None).await.map_err(|e| {
        assert_eq!(e.image, r.canonical(), "the error names the image");
        e.kind
    })
}

fn assert_consistent(store: &ContentStore) {
    let problems = store.check().unwrap();
    assert!(problems.is_empty(), "store check: {problems:?}");
    let ingest = store.root().join("ingest");
    if let Ok(rd) = std::fs::read_dir(&ingest) {
        let left: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "partial files left: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_from_a_real_registry() {
    let Some(fx) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let p = puller(tmp.path(), RegistryConfig::default());
    let none = Keyring::new();
    let r = &fx.anon;

    // Every variant pulls, is tagged by its full name, and its layers unpack.
    let mut ids = Vec::new();
    for tag in ["latest", "v2s2", "zstd", "multi"] {
        let image = format!("{r}/busybox:{tag}");
        let o = pull(&p, &image, &none)
            .await
            .unwrap_or_else(|e| panic!("{image}: {e}"));
        assert_eq!(o.name, image);
        assert!(o.unpack_elapsed.is_some());
        let img = p.store().resolve(&o.name).unwrap().expect("tagged");
        assert_eq!(img.id, o.image_id);
        let layers = p.store().rootfs_layers(&img).unwrap();
        assert!(!layers.is_empty());
        assert!(
            layers.iter().any(|d| d.join("bin/busybox").is_file()),
            "{image}: busybox in {layers:?}"
        );
        ids.push(o);
    }
    // The index's amd64 entry shares the plain image's layer: only its config was fetched.
    assert!(
        ids[3].fetched < 4096,
        "index pull fetched {}",
        ids[3].fetched
    );
    assert_ne!(
        ids[3].digest, ids[3].manifest_digest,
        "an index names the image"
    );
    // Again: everything is present, nothing fetched.
    let again = pull(&p, &format!("{r}/busybox:latest"), &none)
        .await
        .unwrap();
    assert_eq!(again.fetched, 0);
    // By digest (the name it is then stored under is name@digest).
    let by_digest = format!("{r}/busybox@{}", ids[0].digest);
    assert_eq!(pull(&p, &by_digest, &none).await.unwrap().name, by_digest);
    assert_consistent(p.store());

    // Faults, each naming what happened.
    let e = pull(&p, &format!("{r}/nosuchimage:latest"), &none)
        .await
        .unwrap_err();
    assert!(matches!(e, PullErrorKind::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("not found"), "{e}");
    let e = pull(&p, &format!("{r}/busybox:nosuchtag"), &none)
        .await
        .unwrap_err();
    assert!(matches!(e, PullErrorKind::NotFound { .. }), "{e}");
    let zero = format!("{r}/busybox@sha256:{}", "0".repeat(64));
    let e = pull(&p, &zero, &none).await.unwrap_err();
    assert!(matches!(e, PullErrorKind::NotFound { .. }), "{e}");
    let e = pull(&p, &format!("{r}/armonly:latest"), &none)
        .await
        .unwrap_err();
    assert!(matches!(e, PullErrorKind::NoPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/arm64"), "{e}");

    // Credentials: none → 401; wrong → 401; right (a pull secret) → pulled.
    let private = format!("{}/private/busybox:latest", fx.auth);
    let e = pull(&p, &private, &none).await.unwrap_err();
    assert!(matches!(e, PullErrorKind::Unauthorized(_)), "{e}");
    let bad = format!(
        r#"{{"auths":{{"{}":{{"username":"skiff","password":"nope"}}}}}}"#,
        fx.auth
    );
    let bad = secrets_keyring(&[SecretPayload::DockerConfigJson(bad.as_bytes())]).unwrap();
    let e = pull(&p, &private, &bad).await.unwrap_err();
    assert!(matches!(e, PullErrorKind::Unauthorized(_)), "{e}");
    let good = format!(
        r#"{{"auths":{{"{}":{{"auth":"c2tpZmY6c2tpZmYtcHc="}}}}}}"#,
        fx.auth
    );
    let good = secrets_keyring(&[SecretPayload::DockerConfigJson(good.as_bytes())]).unwrap();
    pull(&p, &private, &good).await.unwrap();

    // Concurrent pulls of one image share one pull.
    let tmp2 = tempfile::tempdir().unwrap();
    let p2 = puller(tmp2.path(), RegistryConfig::default());
    let big = format!("{r}/big:latest");
    let (a, b) = tokio::join!(pull(&p2, &big, &none), pull(&p2, &big, &none));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "one shared outcome");
    assert!(a.fetched >= 50_000_000, "fetched {}", a.fetched);
    assert_consistent(p2.store());

    // A registry that is not there.
    let e = pull(&p, "127.0.0.1:1/busybox:latest", &none)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PullErrorKind::RegistryUnavailable { .. }),
        "{e}"
    );
    assert_consistent(p.store());
    drop(fx);
}

// ------------------------------------------------------------------ a hostile registry

#[derive(Clone, Copy, PartialEq)]
enum Blob {
    /// Serves the right bytes.
    Good,
    /// Never ends.
    Endless,
    /// The right size, other bytes.
    Wrong,
    /// Half the bytes with the full Content-Length, then closes.
    Truncated,
    /// Some bytes, then nothing.
    Stall,
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(b);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A one-layer image and a server that misbehaves as told; returns its address.
async fn hostile(manifest_oversized: bool, blob: Blob) -> (String, String) {
    let layer: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let ld = sha(&layer);
    // An uncompressed layer: its diff ID is its digest.
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{ld}"]}}}}"#
    )
    .into_bytes();
    let cd = sha(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = Arc::new((layer, config, manifest, ld.clone(), cd));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let st = state.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut req = Vec::new();
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if req.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let (layer, config, manifest, ld, cd) = &*st;
                let head = |len: usize, ct: &str| {
                    format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
                };
                if path == "/v2/" {
                    let _ = sock.write_all(head(2, "application/json").as_bytes()).await;
                    let _ = sock.write_all(b"{}").await;
                } else if path.contains("/manifests/") {
                    if manifest_oversized {
                        let n = 5 << 20;
                        let _ = sock
                            .write_all(
                                head(n, "application/vnd.oci.image.manifest.v1+json").as_bytes(),
                            )
                            .await;
                        let _ = sock.write_all(&vec![b' '; n]).await;
                    } else {
                        let _ = sock
                            .write_all(
                                head(manifest.len(), "application/vnd.oci.image.manifest.v1+json")
                                    .as_bytes(),
                            )
                            .await;
                        let _ = sock.write_all(manifest.as_bytes()).await;
                    }
                } else if path.ends_with(cd.as_str()) {
                    let _ = sock
                        .write_all(head(config.len(), "application/octet-stream").as_bytes())
                        .await;
                    let _ = sock.write_all(config).await;
                } else if path.ends_with(ld.as_str()) {
                    match blob {
                        Blob::Good => {
                            let _ = sock
                                .write_all(head(layer.len(), "application/octet-stream").as_bytes())
                                .await;
                            let _ = sock.write_all(layer).await;
                        }
                        Blob::Wrong => {
                            let _ = sock
                                .write_all(head(layer.len(), "application/octet-stream").as_bytes())
                                .await;
                            let _ = sock.write_all(&vec![7u8; layer.len()]).await;
                        }
                        Blob::Truncated => {
                            let _ = sock
                                .write_all(head(layer.len(), "application/octet-stream").as_bytes())
                                .await;
                            let _ = sock.write_all(&layer[..layer.len() / 2]).await;
                        }
                        Blob::Endless => {
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                                .await;
                            let chunk = vec![1u8; 65536];
                            loop {
                                let hdr = format!("{:x}\r\n", chunk.len());
                                if sock.write_all(hdr.as_bytes()).await.is_err()
                                    || sock.write_all(&chunk).await.is_err()
                                    || sock.write_all(b"\r\n").await.is_err()
                                {
                                    return;
                                }
                            }
                        }
                        Blob::Stall => {
                            let _ = sock
                                .write_all(head(layer.len(), "application/octet-stream").as_bytes())
                                .await;
                            let _ = sock.write_all(&layer[..1000]).await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                    }
                } else {
                    let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
                    let _ = sock
                        .write_all(
                            format!("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .await;
                    let _ = sock.write_all(body).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, ld)
}

async fn hostile_case(
    oversized: bool,
    blob: Blob,
) -> (Result<PullOutcome, PullErrorKind>, ContentStore, String) {
    let (addr, ld) = hostile(oversized, blob).await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.keep();
    let cfg = RegistryConfig {
        stall_timeout: Duration::from_secs(1),
        unpack: false,
        ..RegistryConfig::default()
    };
    let p = puller(&root, cfg);
    let r = pull(&p, &format!("{addr}/h:latest"), &Keyring::new()).await;
    (r, p.store().clone(), ld)
}

fn cleanup(store: &ContentStore) {
    let _ = std::fs::remove_dir_all(store.root());
}

#[tokio::test]
async fn a_good_image_from_the_test_server_pulls() {
    let (r, store, ld) = hostile_case(false, Blob::Good).await;
    r.unwrap();
    assert!(store.has_blob(&ld));
    assert_consistent(&store);
    cleanup(&store);
}

#[tokio::test]
async fn hostile_registries_leave_nothing_behind() {
    for (oversized, blob, want) in [
        (true, Blob::Good, "larger"),
        (false, Blob::Endless, "more than"),
        (false, Blob::Wrong, "digest mismatch"),
        (false, Blob::Truncated, "truncated"),
        (false, Blob::Stall, "no data from the registry for 1s"),
    ] {
        let (r, store, ld) = hostile_case(oversized, blob).await;
        let e = r.expect_err("a hostile registry must fail the pull");
        let msg = e.to_string();
        assert!(
            msg.contains(want) || (oversized && msg.contains("more than")),
            "{want}: got {msg}"
        );
        assert!(
            !store.has_blob(&ld),
            "{want}: the bad layer must not be stored"
        );
        assert!(store.list().unwrap().is_empty(), "{want}: nothing tagged");
        assert_consistent(&store);
        cleanup(&store);
    }
}
