//! What TCP clients are trusted and checked with: a CA the daemon generates once, a serving
//! certificate it signs (regenerated when the listen address is not among its names, or it
//! nears its end), and a bearer token. All kept under `<data_dir>/serve/` as files of mode
//! 0600 (see [`super::files`]) and reused across restarts, so a kubeconfig stays valid.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use ring::rand::SecureRandom;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::files::SecureDir;
use super::{ServeConfig, TransportError};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";
pub const TOKEN: &str = "token";
/// What the certificates were made with (CA name, serving names, expiry), to decide on a
/// restart whether they still fit without parsing X.509.
const META: &str = "certs.json";

/// The CA lives ten years; the serving certificate one, renewed at a start within 30 days of
/// its end (kubeadm's durations).
const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 365;
const RENEW_DAYS: i64 = 30;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Meta {
    ca_common_name: String,
    server_names: BTreeSet<String>,
    server_not_after: i64,
}

/// The daemon's TLS material and token.
pub struct Credentials {
    dir: PathBuf,
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token or the key.
        f.debug_struct("Credentials")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn gen_err(what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Credentials(format!("{what}: {e}"))
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The names the serving certificate must carry: loopback, localhost, this host's name and
/// the listen address — for a wildcard (`0.0.0.0`, `::`), every address of this host
/// (global IPv6 ones for `::`), so that clients elsewhere can verify it too.
pub fn serving_names(listen: Option<SocketAddr>) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        IpAddr::V4(Ipv4Addr::LOCALHOST).to_string(),
        IpAddr::V6(Ipv6Addr::LOCALHOST).to_string(),
        "localhost".to_string(),
    ]
    .into();
    if let Some(h) = hostname() {
        names.insert(h);
    }
    if let Some(a) = listen {
        if !a.ip().is_unspecified() {
            names.insert(a.ip().to_string());
        } else {
            let fib = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
            names.extend(local_ipv4(&fib).into_iter().map(|ip| ip.to_string()));
            if a.is_ipv6() {
                let v6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
                names.extend(global_ipv6(&v6).into_iter().map(|ip| ip.to_string()));
            }
        }
    }
    names
}

/// This host's IPv4 addresses: the `/32 host LOCAL` entries of `/proc/net/fib_trie`, each
/// under its `|-- ADDRESS` line.
fn local_ipv4(fib_trie: &str) -> BTreeSet<Ipv4Addr> {
    let mut out = BTreeSet::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last {
                out.insert(a);
            }
        }
    }
    out
}

/// This host's global-scope IPv6 addresses from `/proc/net/if_inet6` (link-local ones need a
/// zone and cannot be certificate names).
fn global_ipv6(if_inet6: &str) -> BTreeSet<Ipv6Addr> {
    let mut out = BTreeSet::new();
    for line in if_inet6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(hex), Some(scope)) = (f.first(), f.get(3)) else {
            continue;
        };
        if *scope != "00" || hex.len() != 32 {
            continue;
        }
        if let Ok(v) = u128::from_str_radix(hex, 16) {
            out.insert(Ipv6Addr::from(v));
        }
    }
    out
}

/// The kernel's host name, when it is a plausible DNS name.
fn hostname() -> Option<String> {
    let s = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let s = s.trim().to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    ok.then_some(s)
}

fn ca_params(
    common_name: &str,
    not_after: Option<i64>,
) -> Result<CertificateParams, TransportError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = now_unix();
    p.not_before =
        time::OffsetDateTime::from_unix_timestamp(now - 3600).map_err(|e| gen_err("time", e))?;
    p.not_after =
        time::OffsetDateTime::from_unix_timestamp(not_after.unwrap_or(now + CA_DAYS * 86400))
            .map_err(|e| gen_err("time", e))?;
    Ok(p)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], TransportError> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| TransportError::Credentials("the system's random source failed".into()))?;
    Ok(b)
}

impl Credentials {
    /// Loads the credentials of `<data_dir>/serve`, creating what is missing: the CA, a
    /// serving certificate covering [`serving_names`] for `cfg.listen`, the token.
    pub fn load_or_create(cfg: &ServeConfig) -> Result<Self, TransportError> {
        let dir = SecureDir::open(&cfg.data_dir, true)?;
        let want = serving_names(cfg.listen);
        let meta: Option<Meta> = match dir.read(META)? {
            Some(b) => serde_json::from_slice(&b).ok(),
            None => None,
        };
        let ca_key_pem = dir.read(CA_KEY)?;
        let ca_cert_pem = dir.read(CA_CERT)?;
        let (ca_key, ca_pem, ca_name, fresh_ca) = match (ca_key_pem, ca_cert_pem, &meta) {
            (Some(k), Some(c), Some(m)) => {
                let k = String::from_utf8(k).map_err(|e| gen_err("ca.key", e))?;
                let key = KeyPair::from_pem(&k).map_err(|e| gen_err("reading ca.key", e))?;
                let c = String::from_utf8(c).map_err(|e| gen_err("ca.crt", e))?;
                (key, c, m.ca_common_name.clone(), false)
            }
            _ => {
                let key = KeyPair::generate().map_err(|e| gen_err("generating the CA key", e))?;
                // A name of its own per data dir (kube's self-signed `<host>-ca@<time>` style), so
                // two skiff CAs are never mistaken for each other.
                let name = format!("skiff-ca@{}", now_unix());
                let cert = ca_params(&name, None)?
                    .self_signed(&key)
                    .map_err(|e| gen_err("signing the CA", e))?;
                dir.write(CA_KEY, key.serialize_pem().as_bytes())?;
                dir.write(CA_CERT, cert.pem().as_bytes())?;
                (key, cert.pem(), name, true)
            }
        };
        let reuse = !fresh_ca
            && meta.as_ref().is_some_and(|m| {
                want.is_subset(&m.server_names)
                    && m.server_not_after - now_unix() > RENEW_DAYS * 86400
            });
        let existing = if reuse {
            match (dir.read(SERVER_KEY)?, dir.read(SERVER_CERT)?) {
                (Some(k), Some(c)) => Some((k, c)),
                _ => None,
            }
        } else {
            None
        };
        let (server_key_pem, server_cert_pem) = match existing {
            Some(kc) => kc,
            None => {
                let key =
                    KeyPair::generate().map_err(|e| gen_err("generating the server key", e))?;
                let mut p = CertificateParams::new(want.iter().cloned().collect::<Vec<_>>())
                    .map_err(|e| gen_err("serving names", e))?;
                let mut dn = DistinguishedName::new();
                dn.push(DnType::CommonName, "skiff-apiserver");
                p.distinguished_name = dn;
                p.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                p.use_authority_key_identifier_extension = true;
                let now = now_unix();
                let not_after = now + SERVER_DAYS * 86400;
                p.not_before = time::OffsetDateTime::from_unix_timestamp(now - 3600)
                    .map_err(|e| gen_err("time", e))?;
                p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after)
                    .map_err(|e| gen_err("time", e))?;
                // The issuer's name and key identifier are what the CA certificate carries:
                // rebuilt from its stored name and key (no X.509 parser needed).
                let issuer = Issuer::new(ca_params(&ca_name, None)?, &ca_key);
                let cert = p
                    .signed_by(&key, &issuer)
                    .map_err(|e| gen_err("signing the serving certificate", e))?;
                let (k, c) = (key.serialize_pem().into_bytes(), cert.pem().into_bytes());
                dir.write(SERVER_KEY, &k)?;
                dir.write(SERVER_CERT, &c)?;
                let m = Meta {
                    ca_common_name: ca_name.clone(),
                    server_names: want.clone(),
                    server_not_after: not_after,
                };
                let mj = serde_json::to_vec_pretty(&m).map_err(|e| gen_err("certs.json", e))?;
                dir.write(META, &mj)?;
                (k, c)
            }
        };
        let token = match dir.read(TOKEN)? {
            Some(t) => parse_token(&dir.file_path(TOKEN), &t)?,
            None => {
                let t =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
                dir.write(TOKEN, format!("{t}\n").as_bytes())?;
                t
            }
        };
        let server_chain = vec![CertificateDer::from_pem_slice(&server_cert_pem)
            .map_err(|e| gen_err("reading server.crt", e))?];
        let server_key = PrivateKeyDer::from_pem_slice(&server_key_pem)
            .map_err(|e| gen_err("reading server.key", e))?;
        Ok(Self {
            dir: dir.path().to_path_buf(),
            ca_pem,
            server_chain,
            server_key,
            token,
        })
    }

    /// The CA certificate (PEM) clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token TCP clients must present.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The serve dir these came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn token_matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.token.as_bytes(), presented)
    }

    /// The rustls server configuration (ring provider; ALPN h2 then HTTP/1.1).
    pub fn tls_config(&self) -> Result<rustls::ServerConfig, TransportError> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| gen_err("TLS", e))?
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
            .map_err(|e| gen_err("TLS serving certificate", e))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

/// The token of a token file: one line of visible ASCII (an admin may put their own), at
/// least 16 characters.
fn parse_token(path: &Path, data: &[u8]) -> Result<String, TransportError> {
    let s = std::str::from_utf8(data).unwrap_or("").trim();
    if s.len() < 16 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TransportError::Insecure {
            path: path.to_path_buf(),
            why: "does not hold a token (one line, at least 16 visible ASCII characters); remove it to have one generated".into(),
        });
    }
    Ok(s.to_string())
}

/// Compares SHA-256 digests with a branch-free fold, so neither the position of the first
/// difference nor the length shows in the time taken (ring's own helper is deprecated, and
/// this is the whole of what is needed).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = ring::digest::digest(&ring::digest::SHA256, a);
    let db = ring::digest::digest(&ring::digest::SHA256, b);
    let diff = da
        .as_ref()
        .iter()
        .zip(db.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Reads the CA (PEM) and token a running or past daemon left in `<data_dir>/serve`, for
/// `skiff kubeconfig`; `None` when no daemon ever made them.
pub fn read_client_credentials(
    data_dir: &Path,
) -> Result<Option<(String, String)>, TransportError> {
    let dir = match SecureDir::open(data_dir, false) {
        Ok(d) => d,
        Err(TransportError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let (Some(ca), Some(token)) = (dir.read(CA_CERT)?, dir.read(TOKEN)?) else {
        return Ok(None);
    };
    let ca = String::from_utf8(ca).map_err(|e| gen_err("ca.crt", e))?;
    let token = parse_token(&dir.file_path(TOKEN), &token)?;
    Ok(Some((ca, token)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cfg(dir: &Path, listen: Option<&str>) -> ServeConfig {
        ServeConfig::new(dir.to_path_buf(), listen.map(|l| l.parse().unwrap()))
    }

    #[test]
    fn created_once_reused_and_private() {
        let t = tempfile::tempdir().unwrap();
        let a = Credentials::load_or_create(&cfg(t.path(), None)).unwrap();
        assert_eq!(a.token().len(), 43);
        assert!(a.token_matches(a.token().as_bytes()));
        assert!(!a.token_matches(b"nope"));
        assert!(!a.token_matches(&a.token().as_bytes()[..42]));
        for f in [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, TOKEN, META] {
            let m = std::fs::symlink_metadata(t.path().join("serve").join(f)).unwrap();
            assert!(m.is_file(), "{f}");
            assert_eq!(m.permissions().mode() & 0o7777, 0o600, "{f}");
        }
        let cert1 = std::fs::read(t.path().join("serve").join(SERVER_CERT)).unwrap();
        let b = Credentials::load_or_create(&cfg(t.path(), Some("127.0.0.1:0"))).unwrap();
        assert_eq!(a.token(), b.token());
        assert_eq!(a.ca_pem(), b.ca_pem());
        // 127.0.0.1 is covered already: the same serving certificate.
        assert_eq!(
            cert1,
            std::fs::read(t.path().join("serve").join(SERVER_CERT)).unwrap()
        );
        // A new address: a new serving certificate from the same CA.
        let c = Credentials::load_or_create(&cfg(t.path(), Some("10.1.2.3:6443"))).unwrap();
        assert_eq!(a.ca_pem(), c.ca_pem());
        let cert3 = std::fs::read(t.path().join("serve").join(SERVER_CERT)).unwrap();
        assert_ne!(cert1, cert3);
        let meta: Meta =
            serde_json::from_slice(&std::fs::read(t.path().join("serve").join(META)).unwrap())
                .unwrap();
        assert!(meta.server_names.contains("10.1.2.3"));
        assert!(meta.server_names.contains("::1"));
        assert!(meta.server_names.contains("localhost"));
        c.tls_config().unwrap();
        assert_eq!(
            read_client_credentials(t.path()).unwrap(),
            Some((c.ca_pem().to_string(), c.token().to_string()))
        );
        assert_eq!(
            read_client_credentials(&t.path().join("none")).unwrap(),
            None
        );
    }

    #[test]
    fn planted_token_symlink_refused() {
        let t = tempfile::tempdir().unwrap();
        let serve = t.path().join("serve");
        std::fs::create_dir(&serve).unwrap();
        std::fs::set_permissions(&serve, std::fs::Permissions::from_mode(0o700)).unwrap();
        let target = t.path().join("attacker");
        std::fs::write(&target, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        std::os::unix::fs::symlink(&target, serve.join(TOKEN)).unwrap();
        let e = Credentials::load_or_create(&cfg(t.path(), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("symlink") && e.contains("token"), "{e}");
        // A short or binary token file is refused too, with the fix.
        std::fs::remove_file(serve.join(TOKEN)).unwrap();
        std::fs::write(serve.join(TOKEN), "short").unwrap();
        std::fs::set_permissions(serve.join(TOKEN), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let e = Credentials::load_or_create(&cfg(t.path(), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("remove it"), "{e}");
    }

    #[test]
    fn host_addresses_from_proc() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n           |-- 127.0.0.0\n              /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n        |-- 127.255.255.255\n           /32 link BROADCAST\n           |-- 192.0.2.2\n              /32 host LOCAL\nLocal:\n           |-- 192.0.2.2\n              /32 host LOCAL\n";
        assert_eq!(
            local_ipv4(fib).into_iter().collect::<Vec<_>>(),
            vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 2)]
        );
        let v6 = "00000000000000000000000000000001 01 80 10 80       lo\nfe8000000000000000fc00fffe000001 04 40 20 80     eth0\nfd000000000000000000000000000002 04 40 00 82     eth0\n";
        assert_eq!(
            global_ipv6(v6).into_iter().collect::<Vec<_>>(),
            vec!["fd00::2".parse::<Ipv6Addr>().unwrap()]
        );
        // A wildcard listen names this host's addresses (127.0.0.1 at least).
        let names = serving_names(Some("0.0.0.0:6443".parse().unwrap()));
        assert!(names.contains("127.0.0.1"));
        assert!(!names.contains("0.0.0.0"));
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
