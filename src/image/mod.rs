//! OCI image documents — descriptor, manifest, index, config — and the in-memory value a
//! build returns. Serialization is deterministic: struct fields in a fixed order, maps
//! are `BTreeMap`s, no insignificant whitespace, so the same inputs give the same bytes.

mod time;

pub use time::rfc3339;

use crate::digest::Digest;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image manifest.
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// gzip OCI layer.
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// zstd OCI layer.
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker v2 schema 2 manifest.
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer.
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// The annotation that names an entry of an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// True for manifest media types (OCI or Docker).
pub fn is_manifest(mt: &str) -> bool {
    mt == MT_OCI_MANIFEST || mt == MT_DOCKER_MANIFEST
}

/// True for index media types (OCI index or Docker manifest list).
pub fn is_index(mt: &str) -> bool {
    mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST
}

/// How a layer's bytes are compressed, from its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// The compression a layer media type announces, or `None` for a non-layer type.
pub fn layer_compression(mt: &str) -> Option<LayerCompression> {
    match mt {
        MT_OCI_LAYER
        | MT_DOCKER_LAYER
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(LayerCompression::None),
        MT_OCI_LAYER_GZIP
        | MT_DOCKER_LAYER_GZIP
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
            Some(LayerCompression::Gzip)
        }
        MT_OCI_LAYER_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            Some(LayerCompression::Zstd)
        }
        _ => None,
    }
}

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the bytes are.
    pub media_type: String,
    /// Their digest.
    pub digest: Digest,
    /// Their length.
    pub size: u64,
    /// For index entries: the platform of the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (the ref name in a layout's index).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Foreign-layer URLs (never fetched by nobase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// For index entries: the artifact type of an artifact manifest (an SBOM, a
    /// signature), which is no image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with no platform or annotations.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
            urls: Vec::new(),
            artifact_type: None,
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }
}

/// An OCI platform.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`…
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// `v7`, `v8`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]` (or `arch`, meaning linux).
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        // As containerd reads them: `arm/v7` and `arm64` name an architecture (with a
        // variant) on Linux; aliases and default variants are normalized below.
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [arch, v]
                if !KNOWN_OS.contains(&arch.to_ascii_lowercase().as_str())
                    && (KNOWN_ARCH.contains(arch) || normalize_arch(arch, None).0 != *arch) =>
            {
                ("linux", *arch, Some(v.to_string()))
            }
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(v.to_string())),
            _ => {
                return Err(Error::Usage(format!(
                    "invalid platform {s:?}: use os/arch[/variant], e.g. linux/arm64"
                )))
            }
        };
        if os.is_empty() || arch.is_empty() {
            return Err(Error::Usage(format!(
                "invalid platform {s:?}: use os/arch[/variant], e.g. linux/arm64"
            )));
        }
        let (architecture, variant) = normalize_arch(arch, variant.as_deref());
        Ok(Platform {
            architecture,
            os: os.to_ascii_lowercase(),
            variant,
        })
    }
}

/// Operating systems OCI platforms name (GOOS values).
const KNOWN_OS: &[&str] = &[
    "linux",
    "windows",
    "darwin",
    "freebsd",
    "netbsd",
    "openbsd",
    "solaris",
    "illumos",
    "android",
    "ios",
    "aix",
    "plan9",
    "dragonfly",
    "js",
    "wasip1",
];

/// Architectures OCI platforms name (GOARCH values).
const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "ppc64", "ppc64le", "s390x", "riscv64", "mips", "mipsle",
    "mips64", "mips64le", "loong64", "wasm",
];

/// An architecture and variant as containerd normalizes them: the kernel's and
/// Debian's names (`x86_64`, `aarch64`, `i686`, `armhf`) become Go's, `arm` without a
/// variant is `v7`, `arm64/v8` is plain `arm64`, and a bare `7` is `v7`.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant.map(|v| {
        if v.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !v.is_empty() {
            format!("v{v}")
        } else {
            v.to_string()
        }
    });
    let lower = arch.to_ascii_lowercase();
    match lower.as_str() {
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386".into(), variant),
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64".into(),
            variant.filter(|v| !matches!(v.as_str(), "v8" | "v8.0")),
        ),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), Some(variant.unwrap_or_else(|| "v7".into()))),
        _ => (arch.to_string(), variant),
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set on an artifact manifest (an SBOM, a signature): what it carries. Never set by
    /// nobase, whose manifests are images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// An image index (or Docker manifest list).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    /// An empty OCI index.
    pub fn empty() -> Index {
        Index {
            schema_version: 2,
            media_type: Some(MT_OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// The runtime part of an image config (Docker's `config` object).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `uid[:gid]` or a user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `PORT/PROTO` → `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    /// `KEY=VALUE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Its default arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Volume mount points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Fields nobase does not model, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `{}` in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// An image config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `amd64`…
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `v7`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The runtime config.
    #[serde(default)]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per layer (and per empty step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields nobase does not model, kept as they were.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl ImageConfig {
    /// The platform this config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// `rootfs` of a config.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// sha256 of each uncompressed layer tar.
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// A history entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction that made the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// A comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Serializes a document to the exact bytes nobase stores and hashes.
pub fn to_bytes<T: Serialize>(doc: &T) -> Vec<u8> {
    // Serializing these types cannot fail: no maps with non-string keys, and the only
    // floats (in fields kept as they were) came from JSON, so they are finite.
    serde_json::to_vec(doc).expect("image documents always serialize")
}

/// Largest manifest, index or config nobase reads (registries use 4 MiB; images with
/// thousands of layers stay far below).
pub const MAX_DOCUMENT: u64 = 8 << 20;

/// Parses a JSON document, naming it in the error.
pub fn from_bytes<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid(format!("{what} is not valid: {e}")))
}

/// What a manifest or index document says about its own kind, read before it is trusted
/// as either.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Its own `mediaType` field.
    pub media_type: Option<String>,
    /// It has `manifests`.
    pub is_index: bool,
    /// It has `layers` or `config`.
    pub is_manifest: bool,
}

/// Reads the [`Shape`] of a document. One that is both an index and a manifest is
/// refused: readers that pick differently would see different images in the same bytes
/// (the confusion behind CVE-2021-41190).
pub fn shape(bytes: &[u8]) -> std::result::Result<Shape, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        layers: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        config: Option<serde::de::IgnoredAny>,
    }
    // serde would read a struct from a JSON array too; a manifest is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("it is not a JSON object".into());
    }
    let raw: Raw =
        serde_json::from_slice(bytes).map_err(|e| format!("it is not valid JSON: {e}"))?;
    let s = Shape {
        media_type: raw.media_type,
        is_index: raw.manifests.is_some(),
        is_manifest: raw.layers.is_some() || raw.config.is_some(),
    };
    if s.is_index && s.is_manifest {
        return Err("it is both an index and a manifest; refusing it".into());
    }
    Ok(s)
}

/// Parses a manifest or index referenced as `media_type` (by an index entry, a layout's
/// `index.json`, a registry's answer): its shape and its own `mediaType` must agree
/// with the reference, so a document is never read as one kind where another reader
/// would take it for the other.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    media_type: &str,
    what: &str,
) -> Result<T> {
    let bad = |why: String| Error::Invalid(format!("{what} is not valid: {why}"));
    let s = shape(bytes).map_err(bad)?;
    if let Some(own) = &s.media_type {
        if own != media_type {
            return Err(bad(format!(
                "it says it is {own:?} but was referenced as {media_type:?}"
            )));
        }
    }
    let (want_index, kind) = if is_index(media_type) {
        (true, "an index")
    } else {
        (false, "a manifest")
    };
    if s.is_index != want_index || (!want_index && !s.is_manifest) {
        return Err(bad(format!(
            "it was referenced as {kind} ({media_type}) but is not one"
        )));
    }
    from_bytes(bytes, what)
}

/// One platform's image, as a build produces it or a reader finds it.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    /// The manifest's descriptor (with platform).
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

impl PlatformImage {
    /// True for an artifact manifest an index lists beside the images (BuildKit's
    /// provenance and SBOM attestations, an SBOM or signature an OCI 1.1 tool attached):
    /// not an image of any platform, so it is left out wherever platforms are listed or
    /// chosen, and its config is never read as an image's.
    pub fn is_artifact(&self) -> bool {
        is_artifact_entry(&self.descriptor)
            || is_artifact_manifest(&self.manifest)
            || self.config.platform().to_string() == "unknown/unknown"
    }

    /// What an artifact carries, for listing it: its artifact type, else its config's
    /// media type (`attestation` for BuildKit's, whose config says an image's).
    pub fn artifact_kind(&self) -> String {
        let kind = self
            .manifest
            .artifact_type
            .as_ref()
            .or(self.descriptor.artifact_type.as_ref())
            .unwrap_or(&self.manifest.config.media_type);
        if is_image_config(kind) {
            "attestation".to_string()
        } else {
            kind.clone()
        }
    }

    /// Bytes of its blobs: the manifest, the config and every layer.
    pub fn size(&self) -> u64 {
        self.descriptor.size
            + self.manifest.config.size
            + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// An image: its top descriptor (a manifest, or an index of several), and each
/// platform's manifest and config. Raw bytes live in a blob store; these are for reading.
#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest or index that names the image.
    pub top: Descriptor,
    /// The index, when `top` is one.
    pub index: Option<Index>,
    /// One entry per platform.
    pub manifests: Vec<PlatformImage>,
}

impl Image {
    /// A one-platform image: its manifest (whose descriptor is `top`) and config.
    pub fn of_manifest(top: Descriptor, manifest: Manifest, config: ImageConfig) -> Image {
        Image {
            top: top.clone(),
            index: None,
            manifests: vec![PlatformImage {
                descriptor: top,
                manifest,
                config,
            }],
        }
    }

    /// Every blob the image references, in the order a sink must write them: layers and
    /// config before their manifest, manifests before the index. No duplicates.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for m in &self.manifests {
            for d in m.manifest.layers.iter().chain([&m.manifest.config]) {
                if seen.insert(d.digest.clone()) {
                    out.push(d.clone());
                }
            }
            if seen.insert(m.descriptor.digest.clone()) {
                out.push(m.descriptor.clone());
            }
        }
        if self.index.is_some() && seen.insert(self.top.digest.clone()) {
            out.push(self.top.clone());
        }
        out
    }

    /// Each layer blob of its images with the diff_id its config gives it (artifacts'
    /// blobs are no layers). A blob given two diff_ids is refused: one of them is wrong.
    pub fn diff_ids(&self) -> Result<BTreeMap<Digest, Digest>> {
        let mut out = BTreeMap::new();
        for m in self.images() {
            for (l, id) in m.manifest.layers.iter().zip(&m.config.rootfs.diff_ids) {
                if let Some(other) = out.insert(l.digest.clone(), id.clone()) {
                    if &other != id {
                        return Err(Error::Invalid(format!(
                            "layer {} is given two diff_ids, {other} and {id}, by the \
                             image's configs; at most one can be right",
                            l.digest
                        )));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Total bytes of all blobs.
    pub fn size(&self) -> u64 {
        self.blobs().iter().map(|d| d.size).sum()
    }

    /// The single platform image, or the one matching `platform` (attestation
    /// manifests are never chosen).
    pub fn select(&self, platform: Option<&Platform>) -> Result<&PlatformImage> {
        if self.images().next().is_none() {
            return Err(Error::Invalid(format!(
                "{} is no image but an artifact ({}): nothing in it can be run, checked or \
                 unpacked",
                self.top.digest,
                self.artifact_kinds().join(", ")
            )));
        }
        let found = match platform {
            None if self.images().count() == 1 => self.images().next(),
            None => {
                let host = host_platform();
                self.images()
                    .find(|m| platform_matches(&m.config.platform(), &host))
            }
            Some(p) => self
                .images()
                .find(|m| platform_matches(&m.config.platform(), p)),
        };
        found.ok_or_else(|| no_variant(platform, &self.platform_names().join(", ")))
    }

    /// The image narrowed to the one platform [`Image::select`] picks: its manifest
    /// becomes the top (an image that already is one manifest is returned as it is).
    pub fn single(&self, platform: Option<&Platform>) -> Result<Image> {
        let chosen = self.select(platform)?;
        if self.index.is_none() {
            return Ok(self.clone());
        }
        Ok(Image {
            top: chosen.descriptor.clone(),
            index: None,
            manifests: vec![chosen.clone()],
        })
    }

    /// Its platform images: artifact manifests (BuildKit's provenance, `unknown/unknown`;
    /// SBOMs and signatures, see [`PlatformImage::is_artifact`]) are none.
    pub fn images(&self) -> impl Iterator<Item = &PlatformImage> {
        self.manifests.iter().filter(|m| !m.is_artifact())
    }

    /// What its artifact manifests carry ([`PlatformImage::artifact_kind`]), in index
    /// order.
    pub fn artifact_kinds(&self) -> Vec<String> {
        self.manifests
            .iter()
            .filter(|m| m.is_artifact())
            .map(PlatformImage::artifact_kind)
            .collect()
    }

    /// The platforms of its [`Image::images`] (`linux/amd64`).
    pub fn platform_names(&self) -> Vec<String> {
        self.images()
            .map(|m| m.config.platform().to_string())
            .collect()
    }
}

/// Which platforms of a multi-platform image a reader wants.
#[derive(Clone, Copy, Debug)]
pub enum Want<'a> {
    /// Every one (the index as it is).
    All,
    /// One: this platform, or (`None`) the only one, else this machine's.
    One(Option<&'a Platform>),
}

/// The annotation BuildKit puts on an index entry that is an attestation manifest.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// True for an index entry that its descriptor alone shows to be an artifact, not an
/// image: an attestation manifest (annotated so, or with the platform `unknown/unknown`
/// BuildKit gives them), or an entry with an `artifactType` (OCI 1.1).
pub fn is_artifact_entry(entry: &Descriptor) -> bool {
    entry
        .annotations
        .get(REFERENCE_TYPE)
        .is_some_and(|t| t == "attestation-manifest")
        || entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
        || entry.artifact_type.is_some()
}

/// True for a manifest that is an artifact, not an image: it says an `artifactType`, or
/// its config is not an image config (the empty `application/vnd.oci.empty.v1+json` of
/// SBOMs and signatures, a Helm chart's, …). Such a manifest's "layers" are no
/// filesystem and its config no image config; reading them as an image fails.
pub fn is_artifact_manifest(m: &Manifest) -> bool {
    m.artifact_type.is_some() || !is_image_config(&m.config.media_type)
}

/// True for the media type of an image config (OCI or Docker).
pub fn is_image_config(mt: &str) -> bool {
    mt == MT_OCI_CONFIG || mt == MT_DOCKER_CONFIG
}

/// Picks the index entry for `want` (`None`: the only image, else this machine's) by
/// the platforms the index lists, artifacts left out; `Ok(None)` when some entry
/// lists no platform (then only the configs can tell).
pub fn choose_entry<'a>(
    entries: &'a [Descriptor],
    want: Option<&Platform>,
) -> Result<Option<&'a Descriptor>> {
    let images: Vec<&Descriptor> = entries
        .iter()
        .filter(|d| is_manifest(&d.media_type) && !is_artifact_entry(d))
        .collect();
    let Some(platforms) = images
        .iter()
        .map(|d| d.platform.clone())
        .collect::<Option<Vec<Platform>>>()
    else {
        return Ok(None);
    };
    let found = match want {
        None if images.len() == 1 => Some(images[0]),
        None => {
            let host = host_platform();
            images
                .iter()
                .zip(&platforms)
                .find(|(_, p)| platform_matches(p, &host))
                .map(|(d, _)| *d)
        }
        Some(w) => images
            .iter()
            .zip(&platforms)
            .find(|(_, p)| platform_matches(p, w))
            .map(|(d, _)| *d),
    };
    let listed: Vec<String> = platforms.iter().map(Platform::to_string).collect();
    found
        .map(Some)
        .ok_or_else(|| no_variant(want, &listed.join(", ")))
}

/// The image has no variant for `want` (`None`: this machine). A fact about the image,
/// as "no image named X" is: exit 3, not a usage error.
fn no_variant(want: Option<&Platform>, has: &str) -> Error {
    // An index of only nested indexes (or artifacts) lists no platform nobase reads.
    let has = if has.is_empty() {
        "no image manifest nobase reads: nested indexes are not followed"
    } else {
        has
    };
    match want {
        None => Error::Invalid(format!(
            "the image has no {} variant (it has {has}); choose one with --platform",
            host_platform()
        )),
        Some(p) => Error::Invalid(format!("the image has no {p} variant (it has {has})")),
    }
}

/// True when `have` satisfies `want` (a missing variant in `want` matches any).
pub fn platform_matches(have: &Platform, want: &Platform) -> bool {
    // An index entry `arm` without a variant is v7, and `arm64/v8` is `arm64`, for both
    // sides alike.
    let (have_arch, have_variant) = normalize_arch(&have.architecture, have.variant.as_deref());
    let (want_arch, want_variant) = normalize_arch(&want.architecture, want.variant.as_deref());
    have.os == want.os
        && have_arch == want_arch
        && (want_variant.is_none() || have_variant == want_variant)
}

/// Whether a kernel of architecture `kernel` runs programs of architecture `program`
/// natively: its own, and 386 on amd64 (IA-32 emulation, which Docker relies on too).
pub fn kernel_runs(kernel: &str, program: &str) -> bool {
    kernel == program || (kernel == "amd64" && program == "386")
}

/// Whether this machine's kernel runs programs of `p` natively (see [`kernel_runs`]).
pub fn host_runs(p: &Platform) -> bool {
    let host = host_platform();
    platform_matches(p, &host)
        || (p.os == host.os && kernel_runs(&host.architecture, &p.architecture))
}

/// The platform of the machine nobase runs on.
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    Platform {
        architecture: arch.to_string(),
        os: "linux".to_string(),
        variant: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_of_nothing_readable_says_why() {
        let e = no_variant(None, "").to_string();
        assert!(e.contains("nested indexes are not followed"), "{e}");
        let e = no_variant(
            Some(&Platform::parse("linux/arm64").unwrap()),
            "linux/amd64",
        );
        assert!(e.to_string().ends_with("(it has linux/amd64)"), "{e}");
    }

    #[test]
    fn platforms_are_read_as_containerd_reads_them() {
        for (given, want) in [
            ("linux/arm64", "linux/arm64"),
            ("arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("arm64/v8", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/i386", "linux/386"),
            ("linux/arm", "linux/arm/v7"),
            ("arm/v7", "linux/arm/v7"),
            ("arm/v5", "linux/arm/v5"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("Linux/amd64", "linux/amd64"),
            ("freebsd/amd64", "freebsd/amd64"),
        ] {
            assert_eq!(Platform::parse(given).unwrap().to_string(), want, "{given}");
        }
        // An index entry written `arm` (v7) or `arm64/v8` matches the normalized request.
        let entry = |a: &str, v: Option<&str>| Platform {
            os: "linux".into(),
            architecture: a.into(),
            variant: v.map(Into::into),
        };
        let want = |s: &str| Platform::parse(s).unwrap();
        assert!(platform_matches(&entry("arm", None), &want("linux/arm")));
        assert!(platform_matches(
            &entry("arm64", Some("v8")),
            &want("linux/arm64/v8")
        ));
        assert!(platform_matches(
            &entry("arm64", Some("v8")),
            &want("linux/arm64")
        ));
        assert!(!platform_matches(
            &entry("arm", Some("v5")),
            &want("linux/arm")
        ));
    }

    #[test]
    fn config_serialization_is_deterministic_and_keeps_unknown_fields() {
        let raw = br#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Labels":{"b":"2","a":"1"},"Weird":1},"rootfs":{"type":"layers","diff_ids":[]},"extra":true}"#;
        let c: ImageConfig = from_bytes(raw, "config").unwrap();
        let out = String::from_utf8(to_bytes(&c)).unwrap();
        assert_eq!(
            out,
            r#"{"architecture":"amd64","os":"linux","config":{"Labels":{"a":"1","b":"2"},"Weird":1},"rootfs":{"type":"layers","diff_ids":[]},"extra":true}"#
        );
        assert_eq!(
            to_bytes(&c),
            to_bytes(&from_bytes::<ImageConfig>(out.as_bytes(), "c").unwrap())
        );
    }

    /// Found by the `documents` fuzz target: integers too big for u64 in fields nobase
    /// keeps as they were became floats that did not survive a second round trip
    /// (serde_json's default float parsing is not correctly rounded).
    #[test]
    fn unknown_fields_with_huge_numbers_round_trip() {
        for raw in [
            r#"{"men":1111111111111111111111111}"#,
            r#"{"sch":[77777777777777777777777711111111111111111111177777777]}"#,
            r#"{"s7777777ch":[222222222222220000000002000000000000934,7222222000000000270E7]}"#,
            r#"{"sc&hemaVesion":111111111111111111111111}"#,
            r#"{"x":2000033333333333333333333333333333333333333333333333333330000000000000 }"#,
            r#"{"y":200444444444444444444444444444444444444444444444444444444444444444444400000000}"#,
        ] {
            let c: ImageConfig = from_bytes(raw.as_bytes(), "config").unwrap();
            let once = to_bytes(&c);
            let again: ImageConfig = from_bytes(&once, "config").unwrap();
            assert_eq!(to_bytes(&again), once, "{raw}");
        }
    }

    #[test]
    fn documents_are_read_only_as_what_they_are() {
        let d = format!("sha256:{}", "0".repeat(64));
        let cfg = format!(r#"{{"mediaType":"{MT_OCI_CONFIG}","digest":"{d}","size":1}}"#);
        let manifest = format!(r#"{{"schemaVersion":2,"config":{cfg},"layers":[]}}"#);
        let typed = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_MANIFEST}","config":{cfg},"layers":[]}}"#
        );
        let index = r#"{"schemaVersion":2,"manifests":[]}"#.to_string();
        let both = format!(r#"{{"schemaVersion":2,"manifests":[],"config":{cfg},"layers":[]}}"#);
        let m = |doc: &str, mt: &str| parse_document::<Manifest>(doc.as_bytes(), mt, "m");
        let i = |doc: &str, mt: &str| parse_document::<Index>(doc.as_bytes(), mt, "i");
        assert!(m(&manifest, MT_OCI_MANIFEST).is_ok());
        assert!(m(&manifest, MT_DOCKER_MANIFEST).is_ok());
        assert!(m(&typed, MT_OCI_MANIFEST).is_ok());
        assert!(i(&index, MT_OCI_INDEX).is_ok());
        for (what, res) in [
            ("own type differs", m(&typed, MT_DOCKER_MANIFEST).err()),
            ("both kinds", m(&both, MT_OCI_MANIFEST).err()),
            ("both kinds", i(&both, MT_OCI_INDEX).err()),
            (
                "an index read as a manifest",
                m(&index, MT_OCI_MANIFEST).err(),
            ),
            ("a manifest read as an index", i(&typed, MT_OCI_INDEX).err()),
            ("an array", i("[]", MT_OCI_INDEX).err()),
        ] {
            let e = res
                .unwrap_or_else(|| panic!("{what}: accepted"))
                .to_string();
            assert!(e.contains("not valid"), "{what}: {e}");
        }
    }

    #[test]
    fn platforms_parse() {
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().variant.as_deref(),
            Some("v7")
        );
        assert_eq!(Platform::parse("amd64").unwrap().os, "linux");
        assert!(Platform::parse("a/b/c/d").is_err());
        assert!(Platform::parse("/").is_err());
    }
}
