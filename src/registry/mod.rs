//! Registries over the OCI distribution spec (`docker://HOST/REPO[:TAG|@DIGEST]`):
//! reading images (a [`RegistryBlobs`] that streams blobs verified) and writing them
//! (a sink that uploads), with real authentication and fault tolerance.
//!
//! Why our own client on ureq rather than `oci-client`: nobase is synchronous, and the
//! pieces that matter most here — mounts across repositories with a token that covers
//! both, identity tokens, HEAD before every upload, byte-level progress, resuming a
//! chunked upload from the registry's reported offset — are where `oci-client` is
//! weakest, while it would bring tokio, reqwest and aws-lc (about twice the crates).
//! ureq 3 with rustls on ring, docker_credential (Docker's config and credential
//! helpers) and http-auth (`WWW-Authenticate` parsing) keep the tree small.
//!
//! Layout: `net` (agent, TLS roots, URLs, redaction, retry policy), `auth`
//! (credentials, challenges, scopes), `client` (one host: ping, auth, retries,
//! redirects, errors), `pull` (manifests, verified blob streams), `push` (uploads),
//! `hints` (where blobs were seen, for mounts).

mod auth;
mod client;
mod hints;
mod net;
mod pull;
mod push;

pub use auth::{parse_user_pass, read_creds_file, Creds, GivenCreds, Secret};
pub use net::{RetryPolicy, TlsOptions};
pub use pull::RegistryBlobs;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{Descriptor, Image, Want};
use crate::oci::Blobs;
use crate::refs::RegistryRef;
use crate::sink::Sink;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which way a blob moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// To the registry.
    Upload,
    /// From the registry.
    Download,
}

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Sent to the registry.
    Uploaded {
        /// Its size.
        bytes: u64,
    },
    /// Linked from another repository of the same registry, nothing sent.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// Already in the repository (HEAD said so), nothing sent.
    Existing,
    /// Received from the registry.
    Downloaded {
        /// Its size.
        bytes: u64,
    },
}

/// What the registry code tells its caller as it works: progress, retries, and (for
/// `-v`) each request. Every method has a do-nothing default. Nothing passed here
/// contains a credential; URLs are redacted.
pub trait Events: Send + Sync {
    /// One line of `-v` detail (`PUT https://r/v2/…?digest=sha256:… → 201`).
    fn trace(&self, _line: &str) {}
    /// A request failed for a passing reason and will be tried again after `wait`.
    fn retrying(&self, _what: &str, _why: &str, _wait: Duration, _attempt: u32, _of: u32) {}
    /// A blob transfer starts (or, for uploads, is being checked).
    fn blob_start(&self, _desc: &Descriptor, _way: Transfer) {}
    /// `done` bytes of the blob have moved.
    fn blob_progress(&self, _desc: &Descriptor, _done: u64) {}
    /// A blob is settled.
    fn blob_done(&self, _desc: &Descriptor, _outcome: BlobOutcome) {}
    /// A manifest or index of this many bytes was received (blobs say so with
    /// [`Events::blob_done`]).
    fn received(&self, _bytes: u64) {}
    /// A manifest or index was stored under `reference`.
    fn manifest_pushed(&self, _desc: &Descriptor, _reference: &str) {}
}

/// Events that go nowhere.
pub struct Quiet;

impl Events for Quiet {}

/// How nobase talks to registries.
#[derive(Clone)]
pub struct Options {
    /// Credentials from the command line, for the one registry these options are used
    /// with (never for two: `push` between registries gets one `Options` per side);
    /// otherwise Docker's config is consulted when a registry asks.
    pub creds: Option<GivenCreds>,
    /// The options that give credentials here, for advice (`--creds or --creds-file`).
    pub creds_flags: &'static str,
    /// The credentials file the user named (`--authfile`), read instead of the usual
    /// ones (`$REGISTRY_AUTH_FILE`, the containers' auth.json, Docker's config.json).
    pub authfile: Option<PathBuf>,
    /// CA and client certificates, `--insecure`.
    pub tls: TlsOptions,
    /// Retries of passing failures.
    pub retry: RetryPolicy,
    /// A read or write that makes no progress for this long fails (and is retried).
    pub io_timeout: Duration,
    /// Blobs up to this size are uploaded with one PUT.
    pub monolithic_max: u64,
    /// Larger blobs go in PATCHes of this size.
    pub chunk_size: u64,
    /// Layers uploaded at once.
    pub jobs: usize,
    /// Where blobs were seen before (for cross-repository mounts); none: no record.
    pub hints: Option<PathBuf>,
    /// Progress and diagnostics.
    pub events: Arc<dyn Events>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            creds: None,
            creds_flags: "--creds or --creds-file",
            authfile: None,
            tls: TlsOptions::default(),
            retry: RetryPolicy::default(),
            io_timeout: Duration::from_secs(60),
            // One request for small blobs; large ones in pieces small enough that a
            // broken connection costs little, large enough that per-request overhead
            // does not matter.
            monolithic_max: 16 << 20,
            chunk_size: 64 << 20,
            jobs: 4,
            hints: default_hints_path(),
            events: Arc::new(Quiet),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("creds", &self.creds.as_ref().map(|c| &c.origin))
            .field("tls", &self.tls)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// `$XDG_CACHE_HOME/nobase/registry-blobs.json`, else under `~/.cache`.
pub fn default_hints_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("nobase").join("registry-blobs.json"))
}

/// The repository as the registry API names it: Docker Hub's official images live
/// under `library/`.
pub fn api_repository(host: &str, repo: &str) -> String {
    let hub = matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    );
    if hub && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo.to_string()
    }
}

/// Opens an image in a registry for reading: manifests and configs now, layers when
/// they are read (streamed and verified). The blobs it lists are remembered as present
/// in that repository, so a later push to another repository can mount them.
pub fn open(r: &RegistryRef, opts: &Options) -> Result<(Image, RegistryBlobs)> {
    open_for(r, opts, Want::All)
}

/// [`open`] of the platforms `want` asks for: for one platform of a multi-platform
/// image, the other platforms' manifests and configs are not fetched.
pub fn open_for(r: &RegistryRef, opts: &Options, want: Want) -> Result<(Image, RegistryBlobs)> {
    let client = Arc::new(client::Client::new(
        &r.host,
        &api_repository(&r.host, &r.repository),
        opts,
    )?);
    let (image, blobs) = pull::open(r, client, want)?;
    let digests: Vec<Digest> = image.blobs().into_iter().map(|d| d.digest).collect();
    let (host, repo) = blobs.location();
    hints::Hints::load(opts.hints.as_deref()).record(&host, &repo, &digests);
    Ok((image, blobs))
}

/// Pushes an image; returns the digest the reference now names.
pub fn push(r: &RegistryRef, image: &Image, blobs: &dyn Blobs, opts: &Options) -> Result<Digest> {
    push::push(r, image, blobs, opts)
}

/// A [`Sink`] that pushes to a registry.
pub struct RegistrySink {
    target: RegistryRef,
    opts: Options,
}

impl RegistrySink {
    /// A sink for `target`.
    pub fn new(target: RegistryRef, opts: Options) -> RegistrySink {
        RegistrySink { target, opts }
    }
}

impl Sink for RegistrySink {
    fn describe(&self) -> String {
        format!("docker://{}", self.target)
    }
    fn publish(&self, image: &Image, blobs: &dyn Blobs) -> Result<()> {
        push(&self.target, image, blobs, &self.opts).map(|_| ())
    }
}

/// Runs `f` over `items` on up to `jobs` threads (transfers are bound by the network,
/// not the CPU); the first error stops the rest.
pub fn parallel<T: Sync>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(items.len()) {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = f(item) {
                        stop.store(true, Ordering::Relaxed);
                        client::lock(&first_error).get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `1 attempt`, `5 attempts`.
pub(crate) fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".to_string()
    } else {
        format!("{n} attempts")
    }
}
