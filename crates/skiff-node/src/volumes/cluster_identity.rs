//! What a cluster gives every pod and skiff gives it instead (issue 8 item 3): the
//! `kube-root-ca.crt` ConfigMap that the root-CA publisher puts in every namespace, and the
//! service-account tokens the kubelet asks the API server for (`TokenRequest`) when it writes a
//! projected `serviceAccountToken` (`pkg/volume/projected/projected.go`).
//!
//! Both come from keys of skiff's own, made once per data directory and kept under
//! `<data-dir>/pki/` (directory 0700; `ca.key` and `sa.key` 0600):
//! * `ca.crt`: a self-signed CA certificate (ECDSA P-256, 10 years), the `ca.crt` of
//!   `kube-root-ca.crt`. It signs nothing; it exists so that pods that read the file find a
//!   well-formed CA, as on a cluster.
//! * `sa.key`: the token signer. Tokens are JWTs signed with ES256, with the claims the API
//!   server puts in a pod-bound token (`pkg/serviceaccount/claims.go`): issuer
//!   [`ISSUER`], subject `system:serviceaccount:<ns>:<sa>`, the projection's audience (else
//!   the issuer, as `--api-audiences` defaults to it), `exp` = now + `expirationSeconds`, and
//!   `kubernetes.io` claims naming the namespace, pod, service account and node.
//!
//! **No cluster accepts these tokens**: the issuer is a `.invalid` name and the key is skiff's.
//! They let software that reads its token file start, nothing more.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::PublicKeyData;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The ConfigMap every namespace of a cluster has.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The `iss` of skiff's tokens: a name that resolves nowhere (RFC 2606).
pub const ISSUER: &str = "https://skiff.invalid";
/// Key files are a few hundred bytes; anything larger in `pki/` is not skiff's.
const MAX_KEY_FILE: u64 = 64 * 1024;
/// Validity of the CA certificate (kubeadm's CA lifetime).
const CA_DAYS: i64 = 3650;

/// skiff's CA and token signer for one data directory.
pub struct ClusterIdentity {
    ca_pem: String,
    signer: EcdsaKeyPair,
    /// `kid` header: base64url(SHA-256(SubjectPublicKeyInfo DER)), as the API server's
    /// `keyIDFromPublicKey` computes it.
    key_id: String,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// What a token is issued for (the kubelet's `TokenRequest` for one projection).
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    pub namespace: &'a str,
    pub service_account: &'a str,
    /// The projection's `audience`; empty for the default audience.
    pub audience: &'a str,
    pub expiration_seconds: i64,
    pub pod_name: &'a str,
    pub pod_uid: &'a str,
    pub node_name: &'a str,
    pub now: SystemTime,
}

impl ClusterIdentity {
    /// Loads `<data_dir>/pki/`, creating it first if it does not exist.
    pub fn load_or_create(data_dir: &Path) -> Result<ClusterIdentity, String> {
        let dir = data_dir.join("pki");
        if !dir.exists() {
            create(data_dir, &dir)?;
        }
        Self::load(&dir)
    }

    fn load(dir: &Path) -> Result<ClusterIdentity, String> {
        let ca_pem = read_small(&dir.join("ca.crt"))?;
        if !ca_pem.starts_with("-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "{}: not a PEM certificate",
                dir.join("ca.crt").display()
            ));
        }
        let sa_path = dir.join("sa.key");
        let sa = rcgen::KeyPair::from_pem(&read_small(&sa_path)?)
            .map_err(|e| format!("{}: {e}", sa_path.display()))?;
        let rng = ring::rand::SystemRandom::new();
        let signer =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &sa.serialize_der(), &rng)
                .map_err(|e| format!("{}: not an ECDSA P-256 key: {e}", sa_path.display()))?;
        let spki = sa.subject_public_key_info();
        let key_id = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        // The signer and rcgen must agree on the public key (same PKCS#8 document).
        if signer.public_key().as_ref() != sa.der_bytes() {
            return Err(format!("{}: public key mismatch", sa_path.display()));
        }
        Ok(ClusterIdentity {
            ca_pem,
            signer,
            key_id,
            rng,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `kube-root-ca.crt` of `namespace`: `data.ca.crt` = the CA.
    pub fn root_ca_config_map(&self, namespace: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA_CONFIG_MAP.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some([("ca.crt".to_string(), self.ca_pem.clone())].into()),
            ..Default::default()
        }
    }

    /// A signed token for `req` (compact JWS).
    pub fn token(&self, req: &TokenRequest<'_>) -> Result<String, String> {
        let iat = req
            .now
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let iat = i64::try_from(iat).map_err(|e| e.to_string())?;
        let audience = if req.audience.is_empty() {
            ISSUER
        } else {
            req.audience
        };
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&self.rng, &mut jti).map_err(|e| e.to_string())?;
        let header = serde_json::json!({"alg": "ES256", "kid": self.key_id});
        let claims = serde_json::json!({
            "aud": [audience],
            "exp": iat.saturating_add(req.expiration_seconds),
            "iat": iat,
            "iss": ISSUER,
            "jti": uuid_text(jti),
            "kubernetes.io": {
                "namespace": req.namespace,
                "node": {"name": req.node_name, "uid": name_uuid("node", req.node_name)},
                "pod": {"name": req.pod_name, "uid": req.pod_uid},
                "serviceaccount": {
                    "name": req.service_account,
                    "uid": name_uuid("serviceaccount", &format!("{}/{}", req.namespace, req.service_account)),
                },
            },
            "nbf": iat,
            "sub": format!("system:serviceaccount:{}:{}", req.namespace, req.service_account),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .signer
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|e| format!("signing the token: {e}"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// Checks a token of this identity's (tests; a caller that wants to trust one).
    pub fn verify(&self, token: &str) -> Result<serde_json::Value, String> {
        let (input, sig) = token.rsplit_once('.').ok_or("not a JWS")?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            self.signer.public_key().as_ref(),
        )
        .verify(input.as_bytes(), &sig)
        .map_err(|_| "bad signature".to_string())?;
        let (_, claims) = input.split_once('.').ok_or("not a JWS")?;
        let claims = URL_SAFE_NO_PAD.decode(claims).map_err(|e| e.to_string())?;
        serde_json::from_slice(&claims).map_err(|e| e.to_string())
    }
}

/// Makes the keys in a private directory beside `dir`, then renames it into place, so that
/// two skiffs starting at once on one data dir end up with the same, whole set.
fn create(data_dir: &Path, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    // Unique per call, not only per process: a daemon starts many pods at once, and each may
    // be the first to need the keys.
    static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp: PathBuf = data_dir.join(format!(".pki-{}-{attempt}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let made = (|| -> Result<(), String> {
        let ca_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skiff-ca");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now;
        params.not_after = now + time::Duration::days(CA_DAYS);
        let cert = params.self_signed(&ca_key).map_err(|e| e.to_string())?;
        let sa_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        write_new(&tmp.join("ca.crt"), cert.pem().as_bytes(), 0o644)?;
        write_new(
            &tmp.join("ca.key"),
            ca_key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_new(
            &tmp.join("sa.key"),
            sa_key.serialize_pem().as_bytes(),
            0o600,
        )?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, dir).is_err() {
        // Another skiff made it first (rename onto a non-empty directory fails): use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(format!("cannot create {}", dir.display()));
        }
    }
    Ok(())
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // The umask may have taken bits away from 0644.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read_small(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .take(MAX_KEY_FILE)
        .read_to_string(&mut s)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(s)
}

/// 16 bytes as a version-4 UUID text.
fn uuid_text(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A stable uid for an object skiff has no record of (service accounts, the node): the same
/// name gives the same uid on every run.
fn name_uuid(kind: &str, name: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{kind}/{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    uuid_text(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(now: SystemTime) -> TokenRequest<'static> {
        TokenRequest {
            namespace: "shop",
            service_account: "default",
            audience: "",
            expiration_seconds: 3607,
            pod_name: "web",
            pod_uid: "8c2d7e4f-1b3a-4f6e-9d8c-7a5b4c3d2e1f",
            node_name: "worker-2",
            now,
        }
    }

    /// A daemon starts many pods at once on a fresh data dir: every one gets the same keys
    /// (the staging directory was once named by PID only, and all but one start failed).
    #[test]
    fn pods_starting_at_once_in_one_process_share_one_set_of_keys() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pems: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| ClusterIdentity::load_or_create(d.path())))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| panic!("thread panicked"))
                        .unwrap_or_else(|e| panic!("{e}"))
                        .ca_pem()
                        .to_string()
                })
                .collect()
        });
        assert!(pems.iter().all(|p| p == &pems[0]));
    }

    #[test]
    fn keys_are_made_once_per_data_dir_and_kept_private() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = ClusterIdentity::load_or_create(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = ClusterIdentity::load_or_create(d.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.ca_pem(), b.ca_pem());
        assert_eq!(a.key_id, b.key_id);
        let mode = |f: &str| {
            std::fs::metadata(d.path().join("pki").join(f))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode("ca.key"), 0o600);
        assert_eq!(mode("sa.key"), 0o600);
        assert_eq!(mode("ca.crt"), 0o644);
        assert_eq!(
            std::fs::metadata(d.path().join("pki"))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0),
            0o700
        );
        assert!(a.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let cm = a.root_ca_config_map("shop");
        assert_eq!(cm.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(
            cm.data
                .as_ref()
                .and_then(|d| d.get("ca.crt"))
                .map(String::as_str),
            Some(a.ca_pem())
        );
        // A second identity in another dir has other keys.
        let d2 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = ClusterIdentity::load_or_create(d2.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a.ca_pem(), c.ca_pem());
    }

    #[test]
    fn tokens_carry_the_kubelet_requested_claims_and_verify() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let id = ClusterIdentity::load_or_create(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000);
        let t = id.token(&req(now)).unwrap_or_else(|e| panic!("{e}"));
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap_or(""))
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], id.key_id.as_str());
        let c = id.verify(&t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c["iss"], ISSUER);
        assert_eq!(c["sub"], "system:serviceaccount:shop:default");
        assert_eq!(c["aud"], serde_json::json!([ISSUER]));
        assert_eq!(c["iat"], 1_780_000_000);
        assert_eq!(c["exp"], 1_780_000_000 + 3607);
        assert_eq!(c["kubernetes.io"]["namespace"], "shop");
        assert_eq!(c["kubernetes.io"]["pod"]["name"], "web");
        assert_eq!(
            c["kubernetes.io"]["pod"]["uid"],
            "8c2d7e4f-1b3a-4f6e-9d8c-7a5b4c3d2e1f"
        );
        assert_eq!(c["kubernetes.io"]["serviceaccount"]["name"], "default");
        assert_eq!(c["kubernetes.io"]["node"]["name"], "worker-2");
        // An audience given by the projection replaces the default.
        let mut r = req(now);
        r.audience = "vault";
        let c = id
            .verify(&id.token(&r).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(c["aud"], serde_json::json!(["vault"]));
        // A token altered after signing fails.
        let mut bad = t.clone().into_bytes();
        let i = bad.len() - 5;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert!(id.verify(&String::from_utf8_lossy(&bad)).is_err());
    }

    #[test]
    fn uuids_are_well_formed_and_stable() {
        let u = name_uuid("serviceaccount", "shop/default");
        assert_eq!(u, name_uuid("serviceaccount", "shop/default"));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, name_uuid("serviceaccount", "shop/other"));
    }
}
