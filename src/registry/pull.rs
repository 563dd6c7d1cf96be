//! Reading from a registry: manifests by tag or digest (OCI and Docker media types,
//! indexes and manifest lists), and [`RegistryBlobs`], which streams blobs verified
//! against their digests and resumes a broken download with a `Range` request.

use super::auth::Scopes;
use super::client::{guarded_body, header, read_capped, Client, Resp, Tries};
use super::{BlobOutcome, Transfer};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{self, Descriptor, Want};
use crate::oci::{Blobs, VerifyReader};
use crate::refs::RegistryRef;
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

/// Every manifest type nobase reads, for `Accept`.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Fetches a manifest or index by tag or digest. The digest is computed from the bytes
/// (a registry's `Docker-Content-Digest` is never trusted over it); a digest reference
/// must match. Returns the descriptor and the bytes.
pub fn fetch_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    pinned: Option<&Digest>,
) -> Result<(Descriptor, Vec<u8>)> {
    // A digest is written after '@', a tag after ':'.
    let sep = if reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let what = format!("reading {}/{repo}{sep}{reference}", client.host);
    let url = client.url(&format!("{repo}/manifests/{reference}"))?;
    let resp = client.request(
        &what,
        "GET",
        &url,
        &[("accept", ACCEPT.to_string())],
        None,
        &Scopes::pull(repo),
    )?;
    match resp.status().as_u16() {
        200 => {}
        404 => {
            return Err(Error::Registry(format!(
            "{what}: no such image (the registry answered 404: check the repository and the {})",
            if sep == '@' { "digest" } else { "tag" }
        )))
        }
        _ => return Err(client.status_error(&what, resp)),
    }
    let content_type = header(&resp, "content-type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let bytes = read_capped(resp, image::MAX_DOCUMENT, client.opts.io_timeout)
        .map_err(|e| Error::Registry(format!("{what}: {e}")))?;
    client.opts.events.received(bytes.len() as u64);
    let digest = Digest::of(&bytes);
    if let Some(want) = pinned {
        if &digest != want {
            return Err(Error::DigestMismatch {
                what: format!("manifest {}/{repo}@{want}", client.host),
                expected: want.clone(),
                found: digest,
            });
        }
    }
    let media_type = media_type_of(&bytes, &content_type)
        .map_err(|why| Error::Registry(format!("{what}: {why}")))?;
    let size = bytes.len() as u64;
    Ok((Descriptor::new(&media_type, digest, size), bytes))
}

/// The media type of a manifest document: its own `mediaType` field, which must agree
/// with `Content-Type` when the registry sends a manifest type; a document without one
/// is classified by its shape. A document that is both a manifest and an index is
/// refused (the confusion behind CVE-2021-41190).
fn media_type_of(bytes: &[u8], content_type: &str) -> std::result::Result<String, String> {
    let shape = image::shape(bytes).map_err(|why| format!("the manifest is refused: {why}"))?;
    let (is_index, is_manifest) = (shape.is_index, shape.is_manifest);
    let known = |t: &str| image::is_manifest(t) || image::is_index(t);
    let mt = match (&shape.media_type, known(content_type)) {
        (Some(own), true) if own != content_type => {
            return Err(format!(
                "the registry says the manifest is {content_type} but it says it is {own}"
            ))
        }
        (Some(own), _) => own.clone(),
        (None, true) => content_type.to_string(),
        (None, false) if is_index => image::MT_OCI_INDEX.to_string(),
        (None, false) if is_manifest => image::MT_OCI_MANIFEST.to_string(),
        (None, false) => return Err("the document is neither a manifest nor an index".into()),
    };
    if !known(&mt) {
        return Err(format!(
            "unsupported manifest type {mt:?} (nobase reads OCI and Docker v2 schema 2 images)"
        ));
    }
    if image::is_index(&mt) != is_index {
        return Err(format!("the document's shape does not match its type {mt}"));
    }
    Ok(mt)
}

/// The blobs of one repository, read over the network and verified as they stream.
/// Manifests already fetched are kept in memory.
pub struct RegistryBlobs {
    client: Arc<Client>,
    repo: String,
    docs: Mutex<HashMap<Digest, Vec<u8>>>,
}

impl RegistryBlobs {
    /// Blobs of `repo` through `client`, with documents already known.
    pub fn new(client: Arc<Client>, repo: &str, docs: HashMap<Digest, Vec<u8>>) -> Self {
        RegistryBlobs {
            client,
            repo: repo.to_string(),
            docs: Mutex::new(docs),
        }
    }

    /// `HOST/REPO`, for messages and mount hints.
    pub fn location(&self) -> (String, String) {
        (self.client.host.clone(), self.repo.clone())
    }

    /// Opens a blob at `offset` (0 = from the start), following redirects. Returns the
    /// response and whether it starts at `offset` (206) or at 0 (200).
    fn get_blob(&self, desc: &Descriptor, offset: u64, tries: &Tries) -> Result<(Resp, bool)> {
        let what = format!(
            "downloading {} from {}/{}",
            desc.digest, self.client.host, self.repo
        );
        let url = self
            .client
            .url(&format!("{}/blobs/{}", self.repo, desc.digest))?;
        let headers: Vec<(&str, String)> = if offset > 0 {
            vec![("range", format!("bytes={offset}-"))]
        } else {
            Vec::new()
        };
        let resp =
            self.client
                .get_following(&what, &url, &headers, &Scopes::pull(&self.repo), tries)?;
        match resp.status().as_u16() {
            200 => Ok((resp, false)),
            206 if offset > 0 => {
                // The range must start where we asked; anything else would splice
                // the wrong bytes in (the digest check would catch it, later).
                let ok = header(&resp, "content-range")
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok())
                    == Some(offset);
                if !ok {
                    return Err(Error::Registry(format!(
                        "{what}: the registry resumed at the wrong offset"
                    )));
                }
                Ok((resp, true))
            }
            404 => Err(Error::Registry(format!(
                "{what}: the registry does not have this blob (404)"
            ))),
            _ => Err(self.client.status_error(&what, resp)),
        }
    }

    fn manifest_bytes(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if let Some(b) = super::client::lock(&self.docs).get(&desc.digest) {
            return Ok(b.clone());
        }
        let (_, bytes) = fetch_manifest(
            &self.client,
            &self.repo,
            &desc.digest.to_string(),
            Some(&desc.digest),
        )?;
        super::client::lock(&self.docs).insert(desc.digest.clone(), bytes.clone());
        Ok(bytes)
    }
}

impl Blobs for RegistryBlobs {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        // Documents read once (manifests, configs) are served from memory.
        let cached = super::client::lock(&self.docs).get(&desc.digest).cloned();
        if let Some(bytes) = cached {
            return Ok(Box::new(VerifyReader::new(
                io::Cursor::new(bytes),
                desc.digest.clone(),
                desc.size,
            )));
        }
        if image::is_manifest(&desc.media_type) || image::is_index(&desc.media_type) {
            let bytes = self.manifest_bytes(desc)?;
            return Ok(Box::new(VerifyReader::new(
                io::Cursor::new(bytes),
                desc.digest.clone(),
                desc.size,
            )));
        }
        let tries = Tries::default();
        let (resp, _) = self.get_blob(desc, 0, &tries)?;
        self.client.opts.events.blob_start(desc, Transfer::Download);
        let reader = ResumingReader {
            blobs: self,
            desc: desc.clone(),
            body: Some(guarded_body(resp, self.client.opts.io_timeout)),
            pos: 0,
            since_open: 0,
            tries,
            reported: false,
        };
        let verified = VerifyReader::new(reader, desc.digest.clone(), desc.size);
        if image::layer_compression(&desc.media_type).is_none() && desc.size <= image::MAX_DOCUMENT
        {
            // A config (or other small document): read it once, keep it, since
            // `read_image` reads configs and a pull copies them afterwards.
            let mut buf = Vec::with_capacity(desc.size as usize);
            let mut verified = verified;
            verified.read_to_end(&mut buf).map_err(|e| {
                crate::oci::io_to_error(e, || format!("reading blob {}", desc.digest))
            })?;
            super::client::lock(&self.docs).insert(desc.digest.clone(), buf.clone());
            return Ok(Box::new(io::Cursor::new(buf)));
        }
        Ok(Box::new(verified))
    }
}

/// A blob download that reconnects where it broke off: `Range: bytes=N-`, checked
/// `Content-Range`; a registry that answers 200 instead has its first N bytes skipped
/// (the digest check covers the whole stream either way). Gives up after the retry
/// policy's attempts without progress, counting a broken body and a failed reconnect
/// alike (one sequence: the requests that reconnect share its [`Tries`]).
struct ResumingReader<'a> {
    blobs: &'a RegistryBlobs,
    desc: Descriptor,
    body: Option<Box<dyn Read + Send>>,
    pos: u64,
    /// Bytes since the last (re)connection: only [`RESUME_PROGRESS`] of them, or the
    /// end, starts the count of failures again.
    since_open: u64,
    tries: Tries,
    reported: bool,
}

/// Progress that makes a broken download a new one for the retry count: a registry
/// closing every connection after a kilobyte made a pull reconnect forever, each time
/// "with progress".
const RESUME_PROGRESS: u64 = 1 << 20;

impl ResumingReader<'_> {
    fn reopen(&mut self) -> Result<()> {
        let (resp, partial) = self.blobs.get_blob(&self.desc, self.pos, &self.tries)?;
        let mut body = guarded_body(resp, self.blobs.client.opts.io_timeout);
        self.since_open = 0;
        if !partial && self.pos > 0 {
            let skipped = io::copy(&mut (&mut body).take(self.pos), &mut io::sink())
                .map_err(|e| Error::Registry(format!("resuming {}: {e}", self.desc.digest)))?;
            if skipped != self.pos {
                return Err(Error::Registry(format!(
                    "resuming {}: the blob is shorter than before",
                    self.desc.digest
                )));
            }
        }
        self.body = Some(body);
        Ok(())
    }
}

impl Read for ResumingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let client = &self.blobs.client;
        loop {
            if self.body.is_none() {
                if let Err(e) = self.reopen() {
                    return Err(io::Error::other(e));
                }
            }
            let body = self.body.as_mut().expect("opened above");
            let failure = match body.read(buf) {
                Ok(0) if self.pos >= self.desc.size || buf.is_empty() => {
                    if !self.reported {
                        self.reported = true;
                        client.opts.events.blob_done(
                            &self.desc,
                            BlobOutcome::Downloaded {
                                bytes: self.desc.size,
                            },
                        );
                    }
                    return Ok(0);
                }
                Ok(0) => "the connection closed early".to_string(),
                Ok(n) => {
                    self.pos += n as u64;
                    self.since_open += n as u64;
                    if self.since_open >= RESUME_PROGRESS || self.pos >= self.desc.size {
                        self.tries.reset();
                    }
                    client.opts.events.blob_progress(&self.desc, self.pos);
                    return Ok(n);
                }
                Err(e) => e.to_string(),
            };
            let failed = self.tries.fail();
            if failed >= client.opts.retry.attempts.max(1) {
                return Err(io::Error::other(Error::Registry(format!(
                    "downloading {} from {}/{}: {failure}, still failing after {}",
                    self.desc.digest,
                    client.host,
                    self.blobs.repo,
                    super::attempts(failed)
                ))));
            }
            let what = format!("downloading {}", self.desc.digest);
            client.backoff(&what, &failure, failed, None);
            self.body = None;
        }
    }
}

/// Opens an image in a registry: its top manifest (by tag or digest), then, through
/// [`crate::oci::read_image_for`], the manifest and config of each platform `want`
/// asks for (of one platform, only that one's are fetched).
pub fn open(
    r: &RegistryRef,
    client: Arc<Client>,
    want: Want,
) -> Result<(crate::image::Image, RegistryBlobs)> {
    let repo = super::api_repository(&r.host, &r.repository);
    let (top, bytes) = fetch_manifest(&client, &repo, &r.reference(), r.digest.as_ref())?;
    let mut docs = HashMap::new();
    docs.insert(top.digest.clone(), bytes);
    let blobs = RegistryBlobs::new(client, &repo, docs);
    let image = crate::oci::read_image_for(&top, &blobs, want)?;
    Ok((image, blobs))
}

#[cfg(test)]
mod tests {
    use super::media_type_of;

    #[test]
    fn manifest_types_are_decided_safely() {
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        let i = br#"{"schemaVersion":2,"manifests":[]}"#;
        let both = br#"{"schemaVersion":2,"manifests":[],"layers":[]}"#;
        let oci_m = "application/vnd.oci.image.manifest.v1+json";
        let oci_i = "application/vnd.oci.image.index.v1+json";
        assert_eq!(media_type_of(m, oci_m).unwrap(), oci_m);
        assert_eq!(media_type_of(m, "application/json").unwrap(), oci_m);
        assert!(media_type_of(m, oci_i).is_err(), "header and body disagree");
        assert_eq!(media_type_of(i, "").unwrap(), oci_i);
        assert_eq!(
            media_type_of(
                i,
                "application/vnd.docker.distribution.manifest.list.v2+json"
            )
            .unwrap(),
            "application/vnd.docker.distribution.manifest.list.v2+json"
        );
        assert!(media_type_of(both, oci_i).is_err());
        assert!(media_type_of(b"[]", oci_m).is_err());
        assert!(media_type_of(br#"{"schemaVersion":1,"fsLayers":[]}"#, "").is_err());
    }
}
