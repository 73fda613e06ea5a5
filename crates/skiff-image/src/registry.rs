//! Pulling images from OCI distribution registries into the [`ContentStore`].
//!
//! - Manifests are fetched here with a bounded reader (oci-client reads them whole, with no
//!   limit): at most [`MAX_MANIFEST_SIZE`] bytes, checked against the digest in the
//!   reference and the registry's `Docker-Content-Digest`. An index picks this host's
//!   linux platform, and no match is an error, never another architecture's image.
//! - The config and the layers are streamed with oci-client's `pull_blob_stream` into a
//!   store ingest: bytes are counted (more than the descriptor's size aborts at once), the
//!   stream is drained to its end (where oci-client checks the digest), and the ingest
//!   checks size and digest again before it publishes the blob. Nothing unverified is ever
//!   in `blobs/`.
//! - Layers are fetched 3 at a time; blobs already in the store are skipped; concurrent
//!   pulls of one reference in this process share one pull (single flight).
//! - Plain HTTP only for loopback registries (`localhost`, 127.0.0.0/8, `::1`) and those
//!   configured as insecure (`--insecure-registry`, `SKIFF_INSECURE_REGISTRIES`), as Docker's
//!   `insecure-registries`; skiff then speaks HTTP directly (no HTTPS attempt first).
//! - Credentials: every match of the keyrings is tried in order until one works (the
//!   kubelet's rule); with none, the pull is anonymous.
//! - Timeouts: connecting, and any read that brings no byte for the stall timeout.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use crate::auth::{lookup_all, Credential, Keyring};
use crate::digest::sha256_of;
use crate::progress::{ProgressFn, PullEvent, Watchers, PROGRESS_STEP};
use crate::reference::ImageRef;
use crate::store::{
    choose_platform, is_layer_type, sniff_media_type, ContentStore, StoreError, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, MAX_MANIFEST_SIZE,
};

/// Largest image config fetched.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;
/// Largest registry error body read (the rest is ignored).
const MAX_ERROR_BODY: usize = 64 << 10;
/// The environment variable with more insecure (plain-HTTP) registries, comma-separated.
pub const INSECURE_ENV: &str = "SKIFF_INSECURE_REGISTRIES";

/// How skiff talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registries (`host[:port]`, as in image names) spoken to in plain HTTP besides
    /// loopback ones.
    pub insecure: Vec<String>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on any read that brings no data (a stalled or slow-loris registry).
    pub stall_timeout: Duration,
    /// Layers fetched at the same time.
    pub parallel_layers: usize,
    /// Unpack the layers after the fetch (into the store's chain-ID layer dirs).
    pub unpack: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            parallel_layers: 3,
            unpack: true,
        }
    }
}

impl RegistryConfig {
    /// Adds the registries of `SKIFF_INSECURE_REGISTRIES`.
    pub fn with_env(mut self) -> Self {
        if let Ok(v) = std::env::var(INSECURE_ENV) {
            self.insecure.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
        self
    }

    /// Whether `image`'s registry is spoken to in plain HTTP.
    pub fn plain_http(&self, image: &ImageRef) -> bool {
        image.is_loopback()
            || self
                .insecure
                .iter()
                .any(|h| h == image.domain() || h == image.registry_host())
    }
}

/// What went wrong, without the image (see [`PullError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullErrorKind {
    /// The repository, tag or digest is unknown to the registry.
    #[error("failed to resolve reference {reference:?}: {reference}: not found{detail}")]
    NotFound {
        /// The reference asked for.
        reference: String,
        /// The registry's words (`: manifest unknown`), if any.
        detail: String,
    },
    /// The registry refused the credentials (or wants some).
    #[error("failed to authorize: {0}")]
    Unauthorized(String),
    /// The registry could not be reached.
    #[error("registry {registry} is unavailable: {detail}")]
    RegistryUnavailable {
        /// host[:port].
        registry: String,
        /// The connection error.
        detail: String,
    },
    /// The registry stopped sending.
    #[error("{what}: no data from the registry for {secs}s")]
    Stalled {
        /// What was being fetched.
        what: String,
        /// The stall timeout.
        secs: u64,
    },
    /// Content that does not match its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The descriptor's or reference's digest.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
    /// More bytes than the descriptor says.
    #[error("{what}: the registry sent more than the {size} bytes of its descriptor")]
    TooLarge {
        /// What was fetched.
        what: String,
        /// The descriptor's size (or the limit).
        size: u64,
    },
    /// Fewer bytes than the descriptor says.
    #[error("{what}: truncated: {got} of {size} bytes")]
    Truncated {
        /// What was fetched.
        what: String,
        /// Bytes received.
        got: u64,
        /// The descriptor's size.
        size: u64,
    },
    /// An index with no entry for this host.
    #[error("no matching manifest for linux/{arch} in the manifest list entries (has: {has})")]
    NoPlatform {
        /// This host's architecture.
        arch: String,
        /// The platforms the index lists.
        has: String,
    },
    /// A manifest or media type skiff cannot use.
    #[error("{0}")]
    Unsupported(String),
    /// A manifest that is not valid.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The disk is full.
    #[error("no space left on device while storing {0}")]
    DiskFull(String),
    /// The store failed otherwise.
    #[error("image store: {0}")]
    Store(String),
    /// Any other registry or transport error.
    #[error("{0}")]
    Registry(String),
    /// Several credentials tried, each failed (the kubelet's aggregate).
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Attempts(Vec<PullErrorKind>),
}

/// A failed pull: the image and what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to pull image {image:?}: {kind}")]
pub struct PullError {
    /// The image (fully-qualified reference).
    pub image: String,
    /// What happened.
    pub kind: PullErrorKind,
}

impl PullError {
    /// Whether the registry could not be reached (the kubelet's `RegistryUnavailable`).
    pub fn registry_unavailable(&self) -> bool {
        match &self.kind {
            PullErrorKind::RegistryUnavailable { .. } => true,
            PullErrorKind::Attempts(v) => v
                .iter()
                .all(|k| matches!(k, PullErrorKind::RegistryUnavailable { .. })),
            _ => false,
        }
    }
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The name the store tags (`docker.io/library/busybox:latest` or `…@sha256:…`).
    pub name: String,
    /// The digest of what the name points at (the index for multi-platform images).
    pub digest: String,
    /// The platform manifest's digest.
    pub manifest_digest: String,
    /// The image ID (the config digest).
    pub image_id: String,
    /// Config plus layers, compressed, in bytes.
    pub size: u64,
    /// Bytes downloaded by this pull (blobs already stored not counted).
    pub fetched: u64,
    /// Time to fetch, verify and store.
    pub elapsed: Duration,
    /// Time to unpack the layers not yet unpacked (after the fetch), if unpacking is on.
    pub unpack_elapsed: Option<Duration>,
}

type SharedPull = Shared<BoxFuture<'static, Result<PullOutcome, PullError>>>;

struct Inflight {
    id: u64,
    fut: SharedPull,
    watchers: Watchers,
}

struct Inner {
    store: ContentStore,
    config: RegistryConfig,
    node_keyring: Keyring,
    inflight: Mutex<HashMap<String, Inflight>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Pulls images into a store. Cheap to clone; clones share the in-flight pulls.
#[derive(Clone)]
pub struct Puller {
    inner: Arc<Inner>,
}

/// Installs rustls' ring provider as the process default (once; an already installed
/// provider is kept).
pub fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Puller {
    /// A puller into `store`, with the node's own credentials (the user's Docker config).
    pub fn new(store: ContentStore, config: RegistryConfig, node_keyring: Keyring) -> Self {
        install_crypto_provider();
        Puller {
            inner: Arc::new(Inner {
                store,
                config,
                node_keyring,
                inflight: Mutex::new(HashMap::new()),
                next_id: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// The store pulls go into.
    pub fn store(&self) -> &ContentStore {
        &self.inner.store
    }

    /// Pulls `image` with the pod's `secrets` (tried before the node's credentials). A pull
    /// of the same reference already running in this process is joined, not repeated.
    pub async fn pull(
        &self,
        image: &ImageRef,
        secrets: &Keyring,
        progress: Option<ProgressFn>,
    ) -> Result<PullOutcome, PullError> {
        let key = image.canonical();
        let (id, fut) = {
            let mut map = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(f) = map.get(&key) {
                if let Some(p) = progress {
                    f.watchers.add(p);
                }
                (None, f.fut.clone())
            } else {
                let watchers = Watchers::default();
                if let Some(p) = progress {
                    watchers.add(p);
                }
                let creds = lookup_all(image, &[secrets, &self.inner.node_keyring]);
                let inner = self.inner.clone();
                let (img, w) = (image.clone(), watchers.clone());
                let fut = async move { inner.pull_with(&img, creds, &w).await }
                    .boxed()
                    .shared();
                let id = self
                    .inner
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                map.insert(
                    key.clone(),
                    Inflight {
                        id,
                        fut: fut.clone(),
                        watchers,
                    },
                );
                (Some(id), fut)
            }
        };
        let out = fut.await;
        if let Some(id) = id {
            let mut map = self
                .inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map.get(&key).is_some_and(|f| f.id == id) {
                map.remove(&key);
            }
        }
        out
    }
}

/// One HTTP session with a registry for one credential.
struct Session {
    client: Client,
    http: reqwest::Client,
    oref: Reference,
    scheme: &'static str,
    auth: RegistryAuth,
    /// The bearer token oci-client obtained, for the manifest requests made here.
    token: Option<String>,
    stall: Duration,
}

fn clean(s: &str) -> String {
    // Registry-provided text: printable, short.
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn store_err(e: StoreError, what: &str) -> PullErrorKind {
    match e {
        StoreError::DigestMismatch { expected, actual } => PullErrorKind::DigestMismatch {
            what: what.to_string(),
            expected,
            actual,
        },
        StoreError::SizeMismatch {
            expected, actual, ..
        } if actual > expected => PullErrorKind::TooLarge {
            what: what.to_string(),
            size: expected,
        },
        StoreError::SizeMismatch {
            expected, actual, ..
        } => PullErrorKind::Truncated {
            what: what.to_string(),
            got: actual,
            size: expected,
        },
        StoreError::Io { source, .. } if source.raw_os_error() == Some(28) => {
            PullErrorKind::DiskFull(what.to_string())
        }
        other => PullErrorKind::Store(other.to_string()),
    }
}

/// An error from oci-client, for `what`.
fn oci_err(e: OciDistributionError, what: &str, reference: &str, registry: &str) -> PullErrorKind {
    match e {
        OciDistributionError::AuthenticationFailure(m) => PullErrorKind::Unauthorized(clean(&m)),
        OciDistributionError::UnauthorizedError { .. } => {
            PullErrorKind::Unauthorized(format!("{what}: 401 Unauthorized"))
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code))
                .collect();
            let msg = envelope
                .errors
                .iter()
                .map(|e| clean(&e.message))
                .collect::<Vec<_>>()
                .join("; ");
            let joined = codes.join(",").to_ascii_uppercase();
            if joined.contains("UNKNOWN") {
                PullErrorKind::NotFound {
                    reference: reference.to_string(),
                    detail: format!(" ({what}: {msg})"),
                }
            } else if joined.contains("UNAUTHORIZED") || joined.contains("DENIED") {
                PullErrorKind::Unauthorized(format!("{what}: {msg}"))
            } else {
                PullErrorKind::Registry(format!("{what}: {msg}"))
            }
        }
        OciDistributionError::ServerError { code, message, .. } => {
            PullErrorKind::Registry(format!("{what}: HTTP {code}: {}", clean(&message)))
        }
        OciDistributionError::RequestError(r) => req_err(&r, what, registry),
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            PullErrorKind::DigestMismatch {
                what: what.to_string(),
                expected,
                actual,
            }
        }
        other => PullErrorKind::Registry(format!("{what}: {}", clean(&other.to_string()))),
    }
}

fn req_err(r: &reqwest::Error, what: &str, registry: &str) -> PullErrorKind {
    if r.is_connect() {
        let mut detail = r.to_string();
        let mut src = std::error::Error::source(r);
        while let Some(s) = src {
            detail = s.to_string();
            src = s.source();
        }
        PullErrorKind::RegistryUnavailable {
            registry: registry.to_string(),
            detail: clean(&detail),
        }
    } else {
        let mut detail = r.to_string();
        if let Some(s) = std::error::Error::source(r) {
            detail = format!("{detail}: {s}");
        }
        PullErrorKind::Registry(format!("{what}: {}", clean(&detail)))
    }
}

/// Whether a stream error is the HTTP client's read timeout (a stalled registry).
fn is_timeout(e: &std::io::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|i| i as _);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn is_index(mt: &str) -> bool {
    mt == MediaType::ImageIndex.to_string() || mt == DOCKER_MANIFEST_LIST
}

fn is_manifest(mt: &str) -> bool {
    mt == MediaType::ImageManifest.to_string() || mt == DOCKER_MANIFEST
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Result<Descriptor, PullErrorKind> {
    let d: oci_spec::image::Digest = digest
        .parse()
        .map_err(|e| PullErrorKind::InvalidManifest(format!("digest {digest:?}: {e}")))?;
    Ok(Descriptor::new(MediaType::from(media_type), size, d))
}

impl Inner {
    async fn pull_with(
        &self,
        image: &ImageRef,
        creds: Vec<Credential>,
        w: &Watchers,
    ) -> Result<PullOutcome, PullError> {
        let mut auths: Vec<RegistryAuth> = creds
            .into_iter()
            .map(|c| RegistryAuth::Basic(c.username, c.password))
            .collect();
        if auths.is_empty() {
            auths.push(RegistryAuth::Anonymous);
        }
        let mut errors = Vec::new();
        for auth in auths {
            match self.attempt(image, auth, w).await {
                Ok(o) => return Ok(o),
                Err(e) => errors.push(e),
            }
        }
        let kind = if errors.len() == 1 {
            errors.remove(0)
        } else {
            PullErrorKind::Attempts(errors)
        };
        Err(PullError {
            image: image.canonical(),
            kind,
        })
    }

    async fn attempt(
        &self,
        image: &ImageRef,
        auth: RegistryAuth,
        w: &Watchers,
    ) -> Result<PullOutcome, PullErrorKind> {
        let start = Instant::now();
        let registry = image.registry_host().to_string();
        let plain = self.config.plain_http(image);
        let protocol = if plain {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let cfg = ClientConfig {
            protocol,
            platform_resolver: None,
            connect_timeout: Some(self.config.connect_timeout),
            read_timeout: Some(self.config.stall_timeout),
            user_agent: concat!("skiff/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(cfg)
            .map_err(|e| PullErrorKind::Registry(format!("HTTP client: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(self.config.connect_timeout)
            .read_timeout(self.config.stall_timeout)
            .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PullErrorKind::Registry(format!("HTTP client: {e}")))?;
        let oref = match (image.digest(), image.tag_or_default()) {
            (Some(d), _) => Reference::with_digest(
                image.domain().to_string(),
                image.path().to_string(),
                d.to_string(),
            ),
            (None, t) => Reference::with_tag(
                image.domain().to_string(),
                image.path().to_string(),
                t.unwrap_or(crate::reference::DEFAULT_TAG).to_string(),
            ),
        };
        let canonical = image.canonical();
        // The handshake: oci-client asks /v2/ and, for a bearer challenge, fetches a token
        // (cached for the blob requests); its token also serves the manifest requests here.
        let token = tokio::time::timeout(
            self.config.connect_timeout + self.config.stall_timeout,
            client.auth(&oref, &auth, RegistryOperation::Pull),
        )
        .await
        .map_err(|_| PullErrorKind::Stalled {
            what: format!("registry {registry}"),
            secs: self.config.stall_timeout.as_secs(),
        })?
        .map_err(|e| oci_err(e, "authorization", &canonical, &registry))?;
        let s = Session {
            client,
            http,
            oref,
            scheme: if plain { "http" } else { "https" },
            auth,
            token,
            stall: self.config.stall_timeout,
        };

        // Manifest (or index → this platform's manifest).
        let wanted = image
            .digest()
            .map(str::to_string)
            .or_else(|| image.tag_or_default().map(str::to_string))
            .unwrap_or_default();
        let (body, mt, digest) = s.manifest(&wanted, image, &registry).await?;
        if let Some(pinned) = image.digest() {
            if pinned != digest {
                return Err(PullErrorKind::DigestMismatch {
                    what: format!("manifest {canonical}"),
                    expected: pinned.to_string(),
                    actual: digest,
                });
            }
        }
        let top = descriptor(&mt, &digest, body.len() as u64)?;
        let mut to_store = vec![(top.clone(), body.clone())];
        let (manifest_desc, manifest_body) = if is_index(&mt) {
            let index: ImageIndex = serde_json::from_slice(&body)
                .map_err(|e| PullErrorKind::InvalidManifest(format!("index {digest}: {e}")))?;
            let entries = index.manifests();
            let Some(entry) = choose_platform(entries) else {
                let has = entries
                    .iter()
                    .filter_map(|d| d.platform().as_ref())
                    .map(|p| format!("{}/{}", p.os(), p.architecture()))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(PullErrorKind::NoPlatform {
                    arch: crate::store::host_arch().to_string(),
                    has,
                });
            };
            let want = entry.digest().to_string();
            let (b, m, d) = s.manifest(&want, image, &registry).await?;
            if d != want || b.len() as u64 != entry.size() {
                return Err(PullErrorKind::DigestMismatch {
                    what: format!("manifest {want} of {canonical}"),
                    expected: format!("{want} ({} bytes)", entry.size()),
                    actual: format!("{d} ({} bytes)", b.len()),
                });
            }
            if !is_manifest(&m) {
                return Err(PullErrorKind::Unsupported(format!(
                    "index entry {want} of {canonical} is a {m:?}, not an image manifest"
                )));
            }
            let desc = descriptor(&m, &d, b.len() as u64)?;
            to_store.push((desc.clone(), b.clone()));
            (desc, b)
        } else if is_manifest(&mt) {
            (top.clone(), body)
        } else {
            return Err(PullErrorKind::Unsupported(format!(
                "{canonical}: manifest media type {mt:?} is not supported (OCI or Docker schema2 \
                 images and indexes are)"
            )));
        };
        let manifest: ImageManifest = serde_json::from_slice(&manifest_body).map_err(|e| {
            PullErrorKind::InvalidManifest(format!("{}: {e}", manifest_desc.digest()))
        })?;
        let config = manifest.config().clone();
        if config.size() > MAX_CONFIG_SIZE {
            return Err(PullErrorKind::TooLarge {
                what: format!("config {}", config.digest()),
                size: MAX_CONFIG_SIZE,
            });
        }
        for l in manifest.layers() {
            let lt = l.media_type().to_string();
            if !is_layer_type(&lt) {
                return Err(PullErrorKind::Unsupported(format!(
                    "layer {} has media type {lt:?}, which skiff cannot unpack",
                    l.digest()
                )));
            }
            if crate::digest::sha256_hex(l.digest().as_ref()).is_none() {
                return Err(PullErrorKind::Unsupported(format!(
                    "layer digest {} is not sha256",
                    l.digest()
                )));
            }
        }
        let total: u64 = manifest.layers().iter().map(|l| l.size()).sum();
        w.emit(&PullEvent::Resolved {
            image: canonical.clone(),
            digest: digest.clone(),
            layers: manifest.layers().len(),
            total,
        });

        // Config and layers, verified into the store.
        let fetched_config = self.fetch_blob(&s, config.clone(), None).await?;
        let fetched: u64 = futures_util::stream::iter(manifest.layers().iter().cloned())
            .map(|l| self.fetch_blob(&s, l, Some(w)))
            .buffer_unordered(self.config.parallel_layers.max(1))
            .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
            .await?;

        // Manifests last (a manifest in the store means its blobs are there), then the name.
        let store = self.store.clone();
        let name = canonical.clone();
        let top_for_tag = top.clone();
        tokio::task::spawn_blocking(move || -> Result<(), PullErrorKind> {
            for (d, b) in to_store.iter().rev() {
                store
                    .write_blob(d, b)
                    .map_err(|e| store_err(e, &format!("manifest {}", d.digest())))?;
            }
            store
                .set_tag(&name, &top_for_tag)
                .map_err(|e| store_err(e, &name))
        })
        .await
        .map_err(|e| PullErrorKind::Store(e.to_string()))??;
        let elapsed = start.elapsed();
        let fetched = fetched + fetched_config;
        w.emit(&PullEvent::Fetched {
            bytes: fetched,
            elapsed,
        });
        let unpack_elapsed = if self.config.unpack {
            Some(self.unpack(&canonical, total, w).await?)
        } else {
            None
        };
        Ok(PullOutcome {
            name: canonical,
            digest,
            manifest_digest: manifest_desc.digest().to_string(),
            image_id: config.digest().to_string(),
            size: config.size() + total,
            fetched,
            elapsed,
            unpack_elapsed,
        })
    }

    /// Unpacks the stored image's layers (those not unpacked yet); reports the time.
    /// The store's unpacker verifies each layer against its digest and diff ID again and
    /// publishes each layer dir atomically. Not overlapped with the download: the store's
    /// unpacker reads published blobs.
    async fn unpack(
        &self,
        name: &str,
        total: u64,
        w: &Watchers,
    ) -> Result<Duration, PullErrorKind> {
        let store = self.store.clone();
        let name = name.to_string();
        let start = Instant::now();
        tokio::task::spawn_blocking(move || -> Result<(), PullErrorKind> {
            let img = store
                .resolve(&name)
                .map_err(|e| store_err(e, &name))?
                .ok_or_else(|| {
                    PullErrorKind::Store(format!("{name}: not in the store after the pull"))
                })?;
            store
                .unpack_image(&img, &crate::unpack::Limits::default())
                .map_err(|e| store_err(e, &format!("unpack of {name}")))?;
            Ok(())
        })
        .await
        .map_err(|e| PullErrorKind::Store(e.to_string()))??;
        let elapsed = start.elapsed();
        w.emit(&PullEvent::Unpacked {
            bytes: total,
            elapsed,
        });
        Ok(elapsed)
    }

    /// Streams one blob into the store; returns the bytes downloaded (0 if present).
    async fn fetch_blob(
        &self,
        s: &Session,
        desc: Descriptor,
        w: Option<&Watchers>,
    ) -> Result<u64, PullErrorKind> {
        let digest = desc.digest().to_string();
        let size = desc.size();
        let what = if w.is_some() {
            format!("layer {digest}")
        } else {
            format!("config {digest}")
        };
        let done = |cached: bool| {
            if let Some(w) = w {
                w.emit(&PullEvent::LayerDone {
                    digest: digest.clone(),
                    size,
                    cached,
                });
            }
        };
        if self.store.has_blob(&digest) {
            done(true);
            return Ok(0);
        }
        // Another writer of this blob (another pull, another process) is waited for.
        let store = self.store.clone();
        let d2 = desc.clone();
        let mut ingest = tokio::task::spawn_blocking(move || store.ingest(&d2))
            .await
            .map_err(|e| PullErrorKind::Store(e.to_string()))?
            .map_err(|e| store_err(e, &what))?;
        if ingest.is_present() {
            done(true);
            return Ok(0);
        }
        let registry = s.oref.resolve_registry().to_string();
        let mut stream = tokio::time::timeout(
            s.stall + s.stall,
            s.client.pull_blob_stream(&s.oref, digest.as_str()),
        )
        .await
        .map_err(|_| PullErrorKind::Stalled {
            what: what.clone(),
            secs: s.stall.as_secs(),
        })?
        .map_err(|e| oci_err(e, &what, &s.oref.whole(), &registry))?;
        if stream.content_length.is_some_and(|n| n > size) {
            return Err(PullErrorKind::TooLarge { what, size });
        }

        // The file is written on a blocking thread; the channel is small so a slow disk
        // slows the download rather than filling memory.
        enum Msg {
            Data(Bytes),
            Commit,
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(16);
        let what_w = what.clone();
        let desc_w = desc.clone();
        let writer = tokio::task::spawn_blocking(move || -> Result<(), PullErrorKind> {
            while let Some(m) = rx.blocking_recv() {
                match m {
                    Msg::Data(b) => ingest.write_all(&b).map_err(|e| {
                        store_err(crate::store::ingest_write_err(e, &desc_w), &what_w)
                    })?,
                    Msg::Commit => return ingest.commit().map_err(|e| store_err(e, &what_w)),
                }
            }
            // Aborted: the ingest is dropped and its partial file removed.
            Err(PullErrorKind::Registry(format!(
                "{what_w}: download aborted"
            )))
        });
        let mut got: u64 = 0;
        let mut last_report: u64 = 0;
        let outcome: Result<(), PullErrorKind> = loop {
            let next = match tokio::time::timeout(s.stall, stream.stream.next()).await {
                Ok(n) => n,
                Err(_) => {
                    break Err(PullErrorKind::Stalled {
                        what: what.clone(),
                        secs: s.stall.as_secs(),
                    })
                }
            };
            match next {
                Some(Ok(chunk)) => {
                    got += chunk.len() as u64;
                    if got > size {
                        break Err(PullErrorKind::TooLarge {
                            what: what.clone(),
                            size,
                        });
                    }
                    if tx.send(Msg::Data(chunk)).await.is_err() {
                        break Ok(()); // the writer failed: its error is below
                    }
                    if let Some(w) = w {
                        if got - last_report >= PROGRESS_STEP || got == size {
                            last_report = got;
                            w.emit(&PullEvent::Layer {
                                digest: digest.clone(),
                                done: got,
                                total: size,
                            });
                        }
                    }
                }
                Some(Err(e)) => {
                    if let Some(DigestError::VerificationError { expected, actual }) =
                        e.get_ref().and_then(|i| i.downcast_ref::<DigestError>())
                    {
                        break Err(PullErrorKind::DigestMismatch {
                            what: what.clone(),
                            expected: expected.clone(),
                            actual: actual.clone(),
                        });
                    }
                    if is_timeout(&e) {
                        break Err(PullErrorKind::Stalled {
                            what: what.clone(),
                            secs: s.stall.as_secs(),
                        });
                    }
                    if got < size {
                        break Err(PullErrorKind::Truncated {
                            what: format!("{what} ({})", clean(&e.to_string())),
                            got,
                            size,
                        });
                    }
                    break Err(PullErrorKind::Registry(format!(
                        "{what}: {}",
                        clean(&e.to_string())
                    )));
                }
                None => {
                    if got < size {
                        break Err(PullErrorKind::Truncated {
                            what: what.clone(),
                            got,
                            size,
                        });
                    }
                    let _ = tx.send(Msg::Commit).await;
                    break Ok(());
                }
            }
        };
        drop(tx);
        let written = writer
            .await
            .map_err(|e| PullErrorKind::Store(e.to_string()))?;
        outcome?;
        written?;
        done(false);
        Ok(got)
    }
}

impl Session {
    /// GET a manifest by tag or digest: bounded, with its digest.
    async fn manifest(
        &self,
        reference: &str,
        image: &ImageRef,
        registry: &str,
    ) -> Result<(Bytes, String, String), PullErrorKind> {
        let what = format!("manifest {}", image.canonical());
        let url = format!(
            "{}://{}/v2/{}/manifests/{}",
            self.scheme,
            self.oref.resolve_registry(),
            self.oref.repository(),
            reference
        );
        let accept = [
            MediaType::ImageManifest.to_string(),
            MediaType::ImageIndex.to_string(),
            DOCKER_MANIFEST.to_string(),
            DOCKER_MANIFEST_LIST.to_string(),
        ]
        .join(", ");
        let mut req = self.http.get(&url).header("Accept", accept);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        } else if let RegistryAuth::Basic(u, p) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let stalled = || PullErrorKind::Stalled {
            what: what.clone(),
            secs: self.stall.as_secs(),
        };
        let mut resp = tokio::time::timeout(self.stall + self.stall, req.send())
            .await
            .map_err(|_| stalled())?
            .map_err(|e| req_err(&e, &what, registry))?;
        let status = resp.status();
        if !status.is_success() {
            let mut body = Vec::new();
            while body.len() < MAX_ERROR_BODY {
                match tokio::time::timeout(self.stall, resp.chunk()).await {
                    Ok(Ok(Some(c))) => body.extend_from_slice(&c),
                    _ => break,
                }
            }
            body.truncate(MAX_ERROR_BODY);
            let msg = registry_message(&body);
            return Err(match status.as_u16() {
                401 | 403 => PullErrorKind::Unauthorized(format!(
                    "{what}: {status}{}",
                    msg.map(|m| format!(": {m}")).unwrap_or_default()
                )),
                404 => PullErrorKind::NotFound {
                    reference: image.canonical(),
                    detail: msg.map(|m| format!(" ({m})")).unwrap_or_default(),
                },
                _ => PullErrorKind::Registry(format!(
                    "{what}: HTTP {status}{}",
                    msg.map(|m| format!(": {m}")).unwrap_or_default()
                )),
            });
        }
        if resp.content_length().is_some_and(|n| n > MAX_MANIFEST_SIZE) {
            return Err(PullErrorKind::TooLarge {
                what,
                size: MAX_MANIFEST_SIZE,
            });
        }
        let header_digest = resp
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string());
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(self.stall, resp.chunk())
                .await
                .map_err(|_| stalled())?
            {
                Ok(Some(c)) => {
                    body.extend_from_slice(&c);
                    if body.len() as u64 > MAX_MANIFEST_SIZE {
                        return Err(PullErrorKind::TooLarge {
                            what,
                            size: MAX_MANIFEST_SIZE,
                        });
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(req_err(&e, &what, registry)),
            }
        }
        let digest = sha256_of(&body);
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
            if h != digest {
                return Err(PullErrorKind::DigestMismatch {
                    what,
                    expected: h,
                    actual: digest,
                });
            }
        }
        let sniffed = sniff_media_type(&body);
        let mt = match content_type {
            Some(ct) if is_index(&ct) || is_manifest(&ct) => ct,
            _ => sniffed,
        };
        Ok((Bytes::from(body), mt, digest))
    }
}

/// The messages of a registry's JSON error body (`{"errors":[{"code","message"}]}`).
fn registry_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Env {
        errors: Vec<E>,
    }
    let env: Env = serde_json::from_slice(body).ok()?;
    let s = env
        .errors
        .iter()
        .map(|e| clean(&format!("{}: {}", e.code, e.message)))
        .collect::<Vec<_>>()
        .join("; ");
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_configured() {
        let c = RegistryConfig {
            insecure: vec!["reg.lan:5000".into()],
            ..RegistryConfig::default()
        };
        let p = |s: &str| c.plain_http(&ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}")));
        assert!(p("localhost:5000/a"));
        assert!(p("127.0.0.1:5000/a"));
        assert!(p("[::1]:5000/a"));
        assert!(p("reg.lan:5000/a"));
        assert!(!p("reg.lan:5001/a"));
        assert!(!p("busybox"));
        assert!(!p("quay.io/a/b"));
    }

    #[test]
    fn aggregate_message_lists_every_attempt() {
        let e = PullError {
            image: "localhost:5000/a:latest".into(),
            kind: PullErrorKind::Attempts(vec![
                PullErrorKind::Unauthorized("x".into()),
                PullErrorKind::Unauthorized("y".into()),
            ]),
        };
        assert_eq!(
            e.to_string(),
            "failed to pull image \"localhost:5000/a:latest\": [failed to authorize: x, failed \
             to authorize: y]"
        );
    }
}
