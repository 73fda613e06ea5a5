//! Registry credentials: the pod's pull secrets and the user's Docker config, matched to an
//! image the way the kubelet's keyring does (`pkg/credentialprovider/keyring.go`,
//! `BasicDockerKeyring`):
//!
//! - each key (`registry.example.com`, `*.example.com:5000/team`, `https://index.docker.io/v1/`)
//!   is read as a URL without scheme; a `/v1/` or `/v2/` path prefix means the host itself;
//! - a key matches an image name when the port is equal, the host has the same number of
//!   labels and each label matches the key's label as a glob (`*`, `?`, `[a-z]`), and the
//!   key's path is a prefix of the image's path;
//! - every match is returned, most specific key first (reverse lexical order), and the
//!   caller tries each until a pull works;
//! - with no match, an image on Docker Hub uses the `index.docker.io` (`…/v1/`) entry.
//!
//! Pull-secret credentials come before the node's own (the user's Docker config:
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, its `auths` only: credential
//! helpers (`credsStore`, `credHelpers`) and identity tokens are not used).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use crate::reference::{ImageRef, DOCKER_HUB, DOCKER_HUB_LEGACY};

/// Largest Docker config file read (Secrets are at most 1 MiB too).
const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A pull secret or config file that is not the JSON it should be.
    #[error("{source_name}: {message}")]
    Invalid {
        /// Which secret or file.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A config file that cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A user name and password for one registry (HTTP Basic, or exchanged for a bearer token
/// where the registry asks for one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password (logs, panics).
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One pull secret's payload (the shape of `skiff_node::cri::PullSecret`, borrowed).
#[derive(Debug, Clone, Copy)]
pub enum SecretPayload<'a> {
    /// `.dockerconfigjson` (`kubernetes.io/dockerconfigjson`): `{"auths": {key: entry}}`.
    DockerConfigJson(&'a [u8]),
    /// `.dockercfg` (`kubernetes.io/dockercfg`): `{key: entry}`.
    DockerCfg(&'a [u8]),
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

/// The `auth` field: base64 (padded or not) of `user:password`.
fn decode_auth(field: &str) -> Result<Credential, String> {
    let trimmed = field.trim();
    let bytes = if trimmed.ends_with('=') {
        base64::engine::general_purpose::STANDARD.decode(trimmed)
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed)
    }
    .map_err(|e| format!("auth field: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    match text.split_once(':') {
        Some((u, p)) => Ok(Credential {
            username: u.to_string(),
            password: p.to_string(),
        }),
        None => Err(
            "unable to parse auth field, must be formatted as base64(username:password)"
                .to_string(),
        ),
    }
}

fn entry_credential(e: Entry) -> Result<Credential, String> {
    if e.auth.is_empty() {
        Ok(Credential {
            username: e.username,
            password: e.password,
        })
    } else {
        decode_auth(&e.auth)
    }
}

/// Credentials by registry key, matched as the kubelet matches them.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Keys, deduplicated, in reverse lexical order (most specific first).
    index: Vec<String>,
    creds: BTreeMap<String, Vec<Credential>>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pull secret's entries; `name` names the secret in errors.
    pub fn add_secret(&mut self, name: &str, payload: SecretPayload<'_>) -> Result<(), AuthError> {
        let invalid = |message: String| AuthError::Invalid {
            source_name: name.to_string(),
            message,
        };
        let entries: BTreeMap<String, Entry> = match payload {
            SecretPayload::DockerConfigJson(b) => {
                serde_json::from_slice::<ConfigJson>(b)
                    .map_err(|e| invalid(e.to_string()))?
                    .auths
            }
            SecretPayload::DockerCfg(b) => {
                serde_json::from_slice(b).map_err(|e| invalid(e.to_string()))?
            }
        };
        let mut parsed = Vec::new();
        for (key, entry) in entries {
            parsed.push((key, entry_credential(entry).map_err(invalid)?));
        }
        for (key, cred) in parsed {
            self.add(&key, cred);
        }
        Ok(())
    }

    /// Adds one credential under `location` (a registry key as written in a config).
    pub fn add(&mut self, location: &str, cred: Credential) {
        let Some(key) = index_key(location) else {
            tracing::warn!(
                entry = location,
                "registry credential entry is invalid, ignoring it"
            );
            return;
        };
        self.creds.entry(key.clone()).or_default().push(cred);
        if !self.index.contains(&key) {
            self.index.push(key);
            self.index.sort_by(|a, b| b.cmp(a));
        }
    }

    /// Whether the keyring holds no credential.
    pub fn is_empty(&self) -> bool {
        self.creds.is_empty()
    }

    /// Every credential whose key matches `image` (a normalised name such as
    /// `docker.io/library/busybox`), most specific key first; Docker Hub's legacy key for Hub
    /// images when nothing else matches.
    pub fn lookup(&self, image: &str) -> Vec<Credential> {
        let mut out = Vec::new();
        for key in &self.index {
            if urls_match(key, image) {
                out.extend(self.creds.get(key).into_iter().flatten().cloned());
            }
        }
        if out.is_empty() && is_default_registry_match(image) {
            if let Some(c) = self.creds.get(DOCKER_HUB_LEGACY) {
                out.extend(c.iter().cloned());
            }
        }
        out
    }
}

/// The kubelet's union: the pod's secrets first, then the node's keyring.
pub fn lookup_all(image: &ImageRef, keyrings: &[&Keyring]) -> Vec<Credential> {
    let name = image.name();
    keyrings.iter().flat_map(|k| k.lookup(&name)).collect()
}

/// A keyring from the pod's pull secrets (in spec order). A secret that does not parse fails
/// the whole set, as in the kubelet (`MakeDockerKeyring`).
pub fn secrets_keyring(secrets: &[SecretPayload<'_>]) -> Result<Keyring, AuthError> {
    let mut k = Keyring::new();
    for (i, s) in secrets.iter().enumerate() {
        k.add_secret(&format!("imagePullSecrets[{i}]"), *s)?;
    }
    Ok(k)
}

/// Where the user's Docker config is: `$DOCKER_CONFIG/config.json`, else
/// `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The user's Docker config as a keyring (`auths` only); empty if there is no file.
pub fn docker_config_keyring() -> Result<Keyring, AuthError> {
    match docker_config_path() {
        Some(p) => load_docker_config(&p),
        None => Ok(Keyring::new()),
    }
}

/// Reads a Docker `config.json` (size-capped); a missing file is an empty keyring.
pub fn load_docker_config(path: &Path) -> Result<Keyring, AuthError> {
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Keyring::new()),
        Err(e) => return Err(io(e)),
    };
    let mut data = Vec::new();
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(io)?;
    if data.len() as u64 > MAX_CONFIG_SIZE {
        return Err(AuthError::Invalid {
            source_name: path.display().to_string(),
            message: format!("larger than {MAX_CONFIG_SIZE} bytes"),
        });
    }
    let mut k = Keyring::new();
    k.add_secret(
        &path.display().to_string(),
        SecretPayload::DockerConfigJson(&data),
    )?;
    Ok(k)
}

/// A URL without its scheme, split as Go's `url.Parse` does for these keys.
struct Loc<'a> {
    host: &'a str,
    path: &'a str,
}

fn parse_schemeless(s: &str) -> Option<Loc<'_>> {
    let s = s.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // Go rejects a port that is not a number.
    if let Some((h, port)) = split_host_port(host) {
        if h.is_empty() && port.is_empty() {
            return None;
        }
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    Some(Loc { host, path })
}

/// `host:port` → (host, port); `[v6]:port` → (v6, port); no port → None.
fn split_host_port(host: &str) -> Option<(&str, &str)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return after.strip_prefix(':').map(|p| (h, p));
    }
    host.rsplit_once(':')
}

/// The keyring key for a config location (`BasicDockerKeyring.Add`).
fn index_key(location: &str) -> Option<String> {
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
        .unwrap_or(location);
    let loc = parse_schemeless(rest)?;
    let mut path = loc.path;
    if path.starts_with("/v2/") || path.starts_with("/v1/") {
        path = &path[3..];
    }
    if path.is_empty() || path == "/" {
        Some(loc.host.to_string())
    } else {
        Some(format!("{}{path}", loc.host))
    }
}

/// Whether key `glob` matches `target` (`urlsMatch`).
fn urls_match(glob: &str, target: &str) -> bool {
    let (Some(g), Some(t)) = (parse_schemeless(glob), parse_schemeless(target)) else {
        return false;
    };
    let split = |host: &str| -> (Vec<String>, String) {
        match split_host_port(host) {
            Some((h, p)) => (h.split('.').map(str::to_string).collect(), p.to_string()),
            None => (host.split('.').map(str::to_string).collect(), String::new()),
        }
    };
    let (g_parts, g_port) = split(g.host);
    let (t_parts, t_port) = split(t.host);
    g_port == t_port
        && g_parts.len() == t_parts.len()
        && t.path.starts_with(g.path)
        && g_parts
            .iter()
            .zip(&t_parts)
            .all(|(gp, tp)| glob_match(gp.as_bytes(), tp.as_bytes()).unwrap_or(false))
}

/// Whether an image name resolves to Docker Hub (`isDefaultRegistryMatch`).
fn is_default_registry_match(image: &str) -> bool {
    let (first, rest) = match image.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (image, None),
    };
    if first.is_empty() {
        return false;
    }
    if rest.is_none() || first == DOCKER_HUB || first == DOCKER_HUB_LEGACY {
        return true;
    }
    !first.contains(['.', ':'])
}

/// Go's `path/filepath.Match` for one host label (no separators inside): `*`, `?`, `[...]`
/// classes with ranges and `^` negation, `\` escapes. A malformed pattern is an error (no
/// match). Hand-written: the `glob` crate's classes use `!` for negation, not Go's `^`.
fn glob_match(pat: &[u8], name: &[u8]) -> Result<bool, ()> {
    match pat.split_first() {
        None => Ok(name.is_empty()),
        Some((b'*', rest)) => {
            for i in 0..=name.len() {
                if glob_match(rest, &name[i..])? {
                    return Ok(true);
                }
            }
            // Go still reports a malformed rest of the pattern; we simply do not match.
            Ok(false)
        }
        Some((b'?', rest)) => match name.split_first() {
            Some((_, n)) => glob_match(rest, n),
            None => Ok(false),
        },
        Some((b'[', rest)) => {
            let (matched, after) = class_match(rest, name.first().copied())?;
            match name.split_first() {
                Some((_, n)) if matched => glob_match(after, n),
                _ => Ok(false),
            }
        }
        Some((b'\\', rest)) => match (rest.split_first(), name.split_first()) {
            (Some((p, prest)), Some((c, n))) if p == c => glob_match(prest, n),
            (None, _) => Err(()),
            _ => Ok(false),
        },
        Some((p, rest)) => match name.split_first() {
            Some((c, n)) if c == p => glob_match(rest, n),
            _ => Ok(false),
        },
    }
}

/// A `[...]` class after its `[`: whether `c` is in it, and the pattern after `]`.
fn class_match(pat: &[u8], c: Option<u8>) -> Result<(bool, &[u8]), ()> {
    let (negate, mut p) = match pat.split_first() {
        Some((b'^', r)) => (true, r),
        _ => (false, pat),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        match p.split_first() {
            None => return Err(()),
            Some((b']', rest)) if !first => {
                return Ok((c.is_some() && matched != negate, rest));
            }
            _ => {}
        }
        first = false;
        let (lo, rest) = class_char(p)?;
        p = rest;
        let hi = if let Some((b'-', r)) = p.split_first() {
            let (hi, rest) = class_char(r)?;
            p = rest;
            hi
        } else {
            lo
        };
        if let Some(c) = c {
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
}

fn class_char(p: &[u8]) -> Result<(u8, &[u8]), ()> {
    match p.split_first() {
        Some((b'\\', r)) => r.split_first().map(|(c, r)| (*c, r)).ok_or(()),
        Some((b'-' | b']', _)) | None => Err(()),
        Some((c, r)) => Ok((*c, r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(u: &str) -> Credential {
        Credential {
            username: u.to_string(),
            password: format!("{u}-pw"),
        }
    }

    fn users(v: Vec<Credential>) -> Vec<String> {
        v.into_iter().map(|c| c.username).collect()
    }

    #[test]
    fn keys_as_the_kubelet_indexes_them() {
        assert_eq!(
            index_key("https://index.docker.io/v1/").as_deref(),
            Some("index.docker.io")
        );
        assert_eq!(
            index_key("http://foo.bar.com/v2/").as_deref(),
            Some("foo.bar.com")
        );
        assert_eq!(
            index_key("foo.bar.com/ns").as_deref(),
            Some("foo.bar.com/ns")
        );
        assert_eq!(
            index_key("foo.bar.com:5000").as_deref(),
            Some("foo.bar.com:5000")
        );
        assert_eq!(index_key("foo:bad/x"), None);
    }

    #[test]
    fn glob_labels_ports_and_paths() {
        // keyring_test.go's cases, in spirit.
        assert!(urls_match("*.kubernetes.io", "prefix.kubernetes.io"));
        assert!(urls_match("prefix.*.io", "prefix.kubernetes.io"));
        assert!(urls_match("prefix.kubernetes.*", "prefix.kubernetes.io"));
        assert!(urls_match(
            "*-good.kubernetes.io",
            "prefix-good.kubernetes.io"
        ));
        assert!(urls_match(
            "*.kubernetes.io/blah",
            "prefix.kubernetes.io/blah/another"
        ));
        assert!(urls_match(
            "*.kubernetes.io:1111/blah",
            "prefix.kubernetes.io:1111/blah"
        ));
        assert!(urls_match("[a-c].io", "b.io"));
        assert!(urls_match("[^a-c].io", "d.io"));
        assert!(!urls_match("[^a-c].io", "a.io"));
        assert!(!urls_match("*.kubernetes.io", "kubernetes.io"));
        assert!(!urls_match("*.kubernetes.io", "sub.prefix.kubernetes.io"));
        assert!(!urls_match(
            "prefix.kubernetes.io:1111",
            "prefix.kubernetes.io:2222"
        ));
        assert!(!urls_match(
            "prefix.kubernetes.io:1111",
            "prefix.kubernetes.io"
        ));
        assert!(!urls_match(
            "*.kubernetes.io/blah",
            "prefix.kubernetes.io/other"
        ));
        assert!(!urls_match("[a-c.io", "a.io"));
    }

    #[test]
    fn lookup_order_and_docker_hub_fallback() {
        let mut k = Keyring::new();
        k.add("quay.io", cred("host"));
        k.add("quay.io/coreos", cred("ns"));
        k.add("https://index.docker.io/v1/", cred("hub"));
        k.add("localhost:5000", cred("local"));
        assert_eq!(users(k.lookup("quay.io/coreos/etcd")), ["ns", "host"]);
        assert_eq!(users(k.lookup("quay.io/other/x")), ["host"]);
        assert_eq!(users(k.lookup("docker.io/library/busybox")), ["hub"]);
        assert_eq!(users(k.lookup("localhost:5000/busybox")), ["local"]);
        assert!(k.lookup("localhost:5001/busybox").is_empty());
        assert!(k.lookup("gcr.io/x/y").is_empty());
        // Docker Hub by its own key matches directly.
        let mut k = Keyring::new();
        k.add("docker.io", cred("direct"));
        assert_eq!(users(k.lookup("docker.io/user/app")), ["direct"]);
    }

    #[test]
    fn secrets_in_both_forms() {
        let json = br#"{"auths":{"localhost:5000":{"auth":"dXNlcjpwYTpzcw=="},
            "r.example.com":{"username":"u2","password":"p2"},
            "nopad.example.com":{"auth":"dXNlcjpwYXNz"}}}"#;
        let cfg =
            br#"{"https://index.docker.io/v1/":{"username":"hub","password":"x","email":"a@b"}}"#;
        let k = secrets_keyring(&[
            SecretPayload::DockerConfigJson(json),
            SecretPayload::DockerCfg(cfg),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let c = k.lookup("localhost:5000/busybox");
        assert_eq!(
            c,
            [Credential {
                username: "user".into(),
                password: "pa:ss".into()
            }]
        );
        assert_eq!(users(k.lookup("r.example.com/a")), ["u2"]);
        assert_eq!(k.lookup("nopad.example.com/a")[0].password, "pass");
        assert_eq!(users(k.lookup("docker.io/library/busybox")), ["hub"]);
        // Debug never shows the password.
        assert!(!format!("{c:?}").contains("pa:ss"));
    }

    #[test]
    fn bad_secrets_are_errors() {
        for bad in [
            SecretPayload::DockerConfigJson(b"{"),
            SecretPayload::DockerConfigJson(br#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#),
            SecretPayload::DockerConfigJson(br#"{"auths":{"h":{"auth":"!!"}}}"#),
            SecretPayload::DockerCfg(b"[]"),
        ] {
            let e = secrets_keyring(&[bad]).err().map(|e| e.to_string());
            assert!(
                e.as_deref()
                    .is_some_and(|e| e.starts_with("imagePullSecrets[0]: ")),
                "{e:?}"
            );
        }
        let e = secrets_keyring(&[SecretPayload::DockerConfigJson(
            br#"{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}"#,
        )])
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "imagePullSecrets[0]: unable to parse auth field, must be formatted as \
                 base64(username:password)"
            )
        );
    }

    #[test]
    fn union_puts_secrets_first() {
        let mut secrets = Keyring::new();
        secrets.add("localhost:5000", cred("secret"));
        let mut node = Keyring::new();
        node.add("localhost:5000", cred("node"));
        let image = ImageRef::parse("localhost:5000/busybox").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            users(lookup_all(&image, &[&secrets, &node])),
            ["secret", "node"]
        );
    }

    #[test]
    fn docker_config_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("config.json");
        assert!(load_docker_config(&p)
            .map(|k| k.is_empty())
            .unwrap_or(false));
        std::fs::write(
            &p,
            br#"{"auths":{"localhost:5000":{"auth":"dTpw"}},"credsStore":"desktop"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let k = load_docker_config(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(users(k.lookup("localhost:5000/x")), ["u"]);
        std::fs::write(&p, vec![b' '; (MAX_CONFIG_SIZE + 1) as usize])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(load_docker_config(&p).is_err());
    }
}
