//! Image references exactly as the kubelet and containerd accept them.
//!
//! The grammar is the Docker reference grammar (github.com/distribution/reference, the
//! package the kubelet's `parsers.ParseImageName` calls through `ParseNormalizedNamed`):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [domain '/'] path-component ['/' path-component]*
//! domain     := host [':' port]        (a host is a DNS-like name, IPv4, or [IPv6])
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [\w][\w.-]{0,127}
//! digest     := algorithm ":" hex      (sha256, sha384, sha512 are the known algorithms)
//! ```
//!
//! Normalisation: a first component without `.`/`:` that is not `localhost` (and is
//! lowercase) is not a registry, so the image is on Docker Hub (`docker.io`); a single-component
//! Docker Hub name gets `library/`; `index.docker.io` is `docker.io`. No tag and no digest
//! means `latest`; with both, the digest decides what is pulled (containerd's
//! `ParseDockerRef`), and the store names the image by its digest.
//!
//! Anything else is the kubelet's `InvalidImageName`, with its message:
//! `Failed to apply default image tag "X": couldn't parse image name "X": <why>`.
//!
//! Written here rather than taken from `oci_spec::distribution::Reference`: that parser uses
//! an older grammar (no IPv6 hosts, no uppercase-domain rule, different error texts) and
//! rewrites `docker.io` to `index.docker.io`; the kubelet's exact messages need the newer one.

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// Docker Hub's canonical domain.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's legacy domain, still used as the credential key for Hub images.
pub const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The tag of a reference that names none.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository path the grammar allows.
const PATH_MAX: usize = 255;

/// The kubelet's `InvalidImageName`: the message is the kubelet's event/waiting text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: {reason}"
)]
pub struct InvalidImageName {
    /// The image as the pod spec wrote it.
    pub image: String,
    /// Why it does not parse (the Docker reference library's error text).
    pub reason: String,
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

// Regular expressions of the grammar above (composed the same way the grammar reads).
const PATH_COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const DOMAIN_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const TAG: &str = r"[\w][\w.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";

fn domain_pattern() -> String {
    let name = format!(r"{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*");
    format!(r"(?:{name}|\[(?:[a-fA-F0-9:]+)\])(?::[0-9]+)?")
}

fn remote_pattern() -> String {
    format!(r"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*")
}

/// The whole reference: (name)(:tag)?(@digest)?
fn reference_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let name = format!(r"(?:{}/)?{}", domain_pattern(), remote_pattern());
        Regex::new(&format!(r"^({name})(?::({TAG}))?(?:@({DIGEST}))?$"))
            .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
    })
}

/// A name split into domain and path.
fn name_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"^(?:({})/)?({})$",
            domain_pattern(),
            remote_pattern()
        ))
        .unwrap_or_else(|e| unreachable!("constant pattern: {e}"))
    })
}

fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Splits a familiar name into domain and remainder (distribution's `splitDockerDomain`).
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((first, rest)) = name.split_once('/') else {
        return (DOCKER_HUB.to_string(), format!("library/{name}"));
    };
    let (domain, remote) = if first == "localhost" {
        (first.to_string(), rest.to_string())
    } else if first == DOCKER_HUB_LEGACY {
        (DOCKER_HUB.to_string(), rest.to_string())
    } else if first.contains(['.', ':']) || first.to_lowercase() != first {
        // A domain, an IP address, a port, or (uppercase is not a valid namespace) a host.
        (first.to_string(), rest.to_string())
    } else {
        (DOCKER_HUB.to_string(), name.to_string())
    };
    if domain == DOCKER_HUB && !remote.contains('/') {
        return (domain, format!("library/{remote}"));
    }
    (domain, remote)
}

/// go-digest's validation of a digest the grammar already matched.
fn check_digest(d: &str) -> Result<(), &'static str> {
    let (alg, hex) = d.split_once(':').ok_or("invalid checksum digest format")?;
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != len {
        return Err("invalid checksum digest length");
    }
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("invalid checksum digest format");
    }
    Ok(())
}

impl ImageRef {
    /// Parses `image` as the kubelet does (`ParseNormalizedNamed`).
    pub fn parse(image: &str) -> Result<Self, InvalidImageName> {
        let invalid = |reason: String| InvalidImageName {
            image: image.to_string(),
            reason,
        };
        if is_identifier(image) {
            return Err(invalid(format!(
                "invalid repository name ({image}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (domain, remainder) = split_docker_domain(image);
        let remote = remainder.split(':').next().unwrap_or_default();
        if remote.to_lowercase() != remote {
            return Err(invalid(format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            )));
        }
        let full = format!("{domain}/{remainder}");
        let Some(caps) = reference_re().captures(&full) else {
            let lower = full.to_lowercase();
            let reason = if lower != full && reference_re().is_match(&lower) {
                "repository name must be lowercase"
            } else {
                "invalid reference format"
            };
            return Err(invalid(reason.to_string()));
        };
        let name = caps.get(1).map_or("", |m| m.as_str());
        let (domain, path) = match name_re().captures(name) {
            Some(n) => (
                n.get(1).map_or("", |m| m.as_str()).to_string(),
                n.get(2).map_or("", |m| m.as_str()).to_string(),
            ),
            None => return Err(invalid("invalid reference format".to_string())),
        };
        if path.len() > PATH_MAX {
            return Err(invalid(format!(
                "repository name must not be more than {PATH_MAX} characters"
            )));
        }
        let tag = caps.get(2).map(|m| m.as_str().to_string());
        let digest = caps.get(3).map(|m| m.as_str().to_string());
        if let Some(d) = &digest {
            check_digest(d).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(ImageRef {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry as written in the (normalised) name: `docker.io`, `localhost:5000`,
    /// `[::1]:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path: `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag as written (no default); see [`ImageRef::tag_or_default`].
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The tag, `latest` when the reference names neither tag nor digest; `None` for a
    /// digest-only reference.
    pub fn tag_or_default(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// The digest (`sha256:…`) the reference pins, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The fully-qualified name the store tags the image with (containerd's
    /// `ParseDockerRef`): `name@digest` when a digest is given (a tag beside it is dropped),
    /// else `name:tag` with `latest` by default.
    pub fn canonical(&self) -> String {
        match (&self.digest, self.tag_or_default()) {
            (Some(d), _) => format!("{}@{d}", self.name()),
            (None, Some(t)) => format!("{}:{t}", self.name()),
            (None, None) => self.name(),
        }
    }

    /// The same repository at `digest` (the name an image pulled by tag is also known by).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The host and port requests go to (`docker.io` is served by `index.docker.io`, as
    /// `oci-client` resolves it).
    pub fn registry_host(&self) -> &str {
        if self.domain == DOCKER_HUB {
            DOCKER_HUB_LEGACY
        } else {
            &self.domain
        }
    }

    /// Whether the registry is this machine (`localhost`, 127.0.0.0/8, `::1`): such
    /// registries are spoken to in plain HTTP, as Docker does by default.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.domain)
    }
}

/// Whether `host[:port]` names this machine: `localhost`, 127.0.0.0/8, `[::1]`.
pub fn is_loopback_host(domain: &str) -> bool {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        domain.rsplit_once(':').map_or(domain, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The kubelet's `applyDefaultImageTag`: `image` with `:latest` appended when it names
/// neither a tag nor a digest (the short form is kept: `busybox` → `busybox:latest`).
pub fn apply_default_tag(image: &str) -> Result<String, InvalidImageName> {
    let r = ImageRef::parse(image)?;
    if r.tag.is_none() && r.digest.is_none() {
        Ok(format!("{image}:{DEFAULT_TAG}"))
    } else {
        Ok(image.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

    fn ok(s: &str) -> ImageRef {
        match ImageRef::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn reason(s: &str) -> String {
        match ImageRef::parse(s) {
            Ok(r) => panic!("{s} parsed as {r:?}"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn normalises_like_docker_and_containerd() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("index.docker.io/user/app:v1", "docker.io/user/app:v1"),
            ("user/app", "docker.io/user/app:latest"),
            ("user/team/app", "docker.io/user/team/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/busybox", "localhost:5000/busybox:latest"),
            ("localhost:5000/a/b:v2s2", "localhost:5000/a/b:v2s2"),
            ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"),
            ("[::1]:5000/busybox", "[::1]:5000/busybox:latest"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("Example.com/app", "Example.com/app:latest"),
            ("EXAMPLE/app", "EXAMPLE/app:latest"),
            ("a.b-c.d_e", "docker.io/library/a.b-c.d_e:latest"),
            ("foo__bar", "docker.io/library/foo__bar:latest"),
            ("foo---bar", "docker.io/library/foo---bar:latest"),
            (
                "busybox:Latest_1.x-y",
                "docker.io/library/busybox:Latest_1.x-y",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ok(input).canonical(), want, "{input}");
        }
    }

    #[test]
    fn digest_wins_over_tag() {
        let r = ok(&format!("busybox:1.36@{D}"));
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.canonical(), format!("docker.io/library/busybox@{D}"));
        let r = ok(&format!("localhost:5000/busybox@{D}"));
        assert_eq!(r.tag_or_default(), None);
        assert_eq!(r.canonical(), format!("localhost:5000/busybox@{D}"));
        assert_eq!(r.registry_host(), "localhost:5000");
        assert_eq!(ok("busybox").registry_host(), "index.docker.io");
    }

    #[test]
    fn kubelet_messages() {
        let e = ImageRef::parse("busyBOX").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(
                "Failed to apply default image tag \"busyBOX\": couldn't parse image name \
                 \"busyBOX\": invalid reference format: repository name (library/busyBOX) must be \
                 lowercase"
            )
        );
        assert_eq!(
            reason("THIS IS NOT A VALID IMAGE REFERENCE!!"),
            "invalid reference format: repository name (library/THIS IS NOT A VALID IMAGE \
             REFERENCE!!) must be lowercase"
        );
        assert_eq!(
            reason("hfhugs/unsloth-gemma-3-4b-it-GGUF:Q4_K_XL"),
            "invalid reference format: repository name (hfhugs/unsloth-gemma-3-4b-it-GGUF) must \
             be lowercase"
        );
        assert_eq!(
            reason("registry.hub.docker.com/library//nginx:latest"),
            "invalid reference format"
        );
        assert_eq!(reason(":sha-0b293ab"), "invalid reference format");
        assert_eq!(reason(""), "invalid reference format");
        assert_eq!(
            reason("https://example.com/app"),
            "invalid reference format"
        );
        assert_eq!(reason("busybox:"), "invalid reference format");
        assert_eq!(reason("busybox/"), "invalid reference format");
        assert_eq!(reason("-busybox"), "invalid reference format");
        assert_eq!(reason("busybox:tag with space"), "invalid reference format");
        assert_eq!(
            reason(&format!("busybox:{}", "t".repeat(129))),
            "invalid reference format"
        );
        // Not a valid domain, but valid as a lowercase path: Docker's "must be lowercase".
        assert_eq!(
            reason("Foo_Bar.com/app"),
            "repository name must be lowercase"
        );
        assert_eq!(
            reason(&"b".repeat(64)),
            format!(
                "invalid repository name ({}), cannot specify 64-byte hexadecimal strings",
                "b".repeat(64)
            )
        );
        assert_eq!(
            reason(&format!("example.com/{}", "a".repeat(256))),
            "repository name must not be more than 255 characters"
        );
        // Uppercase in a path after a domain: the grammar fails, the lowercased one passes.
        assert_eq!(
            reason("example.com/App"),
            "invalid reference format: repository name (App) must be lowercase"
        );
        assert_eq!(
            reason("busybox@sha256:abc"),
            "invalid reference format" // shorter than 32 hex digits: no grammar match
        );
        assert_eq!(
            reason(&format!("busybox@md5:{}", "a".repeat(32))),
            "unsupported digest algorithm"
        );
        assert_eq!(
            reason(&format!("busybox@sha256:{}", "a".repeat(63))),
            "invalid checksum digest length"
        );
        assert_eq!(
            reason(&format!("busybox@sha256:{}", "A".repeat(64))),
            "invalid checksum digest format"
        );
        assert!(ImageRef::parse(&format!("busybox@sha512:{}", "a".repeat(128))).is_ok());
    }

    #[test]
    fn default_tag_as_the_kubelet_applies_it() {
        assert_eq!(
            apply_default_tag("busybox").ok().as_deref(),
            Some("busybox:latest")
        );
        assert_eq!(
            apply_default_tag("busybox:1").ok().as_deref(),
            Some("busybox:1")
        );
        let pinned = format!("busybox@{D}");
        assert_eq!(apply_default_tag(&pinned).ok(), Some(pinned));
        assert!(apply_default_tag("Busybox").is_err());
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.9.9.9",
            "[::1]:5000",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
