//! Writing to a registry: every blob checked with HEAD first, mounted from another
//! repository of the same registry when one is known to hold it, otherwise uploaded
//! (one PUT for small blobs, chunked PATCHes for large ones that resume from the
//! registry's reported offset); layers in parallel, then configs, then manifests.

use super::auth::Scopes;
use super::client::{header, lock, Body, Client, Tries, Verdict};
use super::hints::Hints;
use super::net::Url;
use super::{BlobOutcome, Transfer};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{Descriptor, Image};
use crate::oci::Blobs;
use crate::refs::RegistryRef;
use std::collections::BTreeSet;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

/// Repositories a blob is tried from before uploading it.
const MAX_MOUNT_SOURCES: usize = 3;

/// Why one upload attempt ended without the blob.
enum Stop {
    /// Start over with a new upload session (after a wait).
    Restart(String, Option<Duration>),
    /// Give up.
    Fatal(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Fatal(e)
    }
}

/// Pushes `image` (its blobs read from `blobs`) to `target`; returns the digest of
/// what the reference now names.
pub fn push(
    target: &RegistryRef,
    image: &Image,
    blobs: &dyn Blobs,
    opts: &super::Options,
) -> Result<Digest> {
    if let Some(d) = &target.digest {
        if d != &image.top.digest {
            return Err(Error::Usage(format!(
                "docker://{target}: the image's digest is {}, so it cannot be pushed under {d}; push it by tag",
                image.top.digest
            )));
        }
    }
    // A registry checks a blob by its digest alone: a docker-archive's layer is
    // checked against its diff_id here, or the registry would take a broken image.
    crate::oci::verify_unnamed_layers(image, blobs)?;
    let repo = super::api_repository(&target.host, &target.repository);
    let client = Client::new(&target.host, &repo, opts)?;
    let mut hints = Hints::load(opts.hints.as_deref());

    let docs: BTreeSet<&Digest> = image
        .manifests
        .iter()
        .map(|m| &m.descriptor.digest)
        .chain([&image.top.digest])
        .collect();
    let configs: BTreeSet<&Digest> = image
        .manifests
        .iter()
        .map(|m| &m.manifest.config.digest)
        .collect();
    let all = image.blobs();
    let (layers, rest): (Vec<&Descriptor>, Vec<&Descriptor>) = all
        .iter()
        .filter(|d| !docs.contains(&d.digest))
        .partition(|d| !configs.contains(&d.digest));

    let mut from: Vec<String> = Vec::new();
    for d in layers.iter().chain(&rest) {
        for r in hints.repos_for(&target.host, &d.digest, MAX_MOUNT_SOURCES) {
            if r != repo && !from.contains(&r) && from.len() < MAX_MOUNT_SOURCES {
                from.push(r);
            }
        }
    }
    let pusher = Pusher {
        client: &client,
        repo: &repo,
        scopes: Mutex::new(Scopes::push(&repo, &from)),
        blobs,
        hints: &hints,
        host: &target.host,
    };

    super::parallel(&layers, opts.jobs.max(1), |d| pusher.push_blob(d))?;
    for d in &rest {
        pusher.push_blob(d)?;
    }
    // Children of an index by digest first, so the index never names a manifest the
    // registry does not have; the top by its tag (or digest).
    for d in all.iter().filter(|d| docs.contains(&d.digest)) {
        let reference = if d.digest == image.top.digest {
            target.reference()
        } else {
            d.digest.to_string()
        };
        // A child manifest named by digest that the registry has needs no upload.
        if reference != target.reference() && pusher.manifest_exists(d)? {
            continue;
        }
        let bytes = blobs.read_document(d)?;
        pusher.put_manifest(d, &bytes, &reference)?;
    }
    let digests: Vec<Digest> = all.iter().map(|d| d.digest.clone()).collect();
    hints.record(&target.host, &repo, &digests);
    Ok(image.top.digest.clone())
}

struct Pusher<'a> {
    client: &'a Client,
    repo: &'a str,
    /// Widened when a registry's challenge names more.
    scopes: Mutex<Scopes>,
    blobs: &'a dyn Blobs,
    hints: &'a Hints,
    host: &'a str,
}

impl Pusher<'_> {
    fn scopes(&self) -> Scopes {
        lock(&self.scopes).clone()
    }

    fn what(&self, d: &Descriptor) -> String {
        format!(
            "uploading {} to {}/{}",
            d.digest, self.client.host, self.repo
        )
    }

    fn push_blob(&self, d: &Descriptor) -> Result<()> {
        let events = &self.client.opts.events;
        events.blob_start(d, Transfer::Upload);
        let outcome = self.push_blob_inner(d)?;
        events.blob_done(d, outcome);
        Ok(())
    }

    fn push_blob_inner(&self, d: &Descriptor) -> Result<BlobOutcome> {
        if self.exists(d)? {
            return Ok(BlobOutcome::Existing);
        }
        let mut session = None;
        for from in self
            .hints
            .repos_for(self.host, &d.digest, MAX_MOUNT_SOURCES)
        {
            if from == self.repo {
                continue;
            }
            match self.mount(d, &from)? {
                Mount::Done => return Ok(BlobOutcome::Mounted { from }),
                Mount::Started(loc) => {
                    session = Some(loc);
                    break;
                }
                Mount::Refused => {}
            }
        }
        self.upload(d, session)
    }

    /// HEAD: is the blob already there (with the right size)?
    fn exists(&self, d: &Descriptor) -> Result<bool> {
        let what = format!(
            "checking {} in {}/{}",
            d.digest, self.client.host, self.repo
        );
        let url = self
            .client
            .url(&format!("{}/blobs/{}", self.repo, d.digest))?;
        let resp = self
            .client
            .request(&what, "HEAD", &url, &[], None, &self.scopes())?;
        match resp.status().as_u16() {
            200 => Ok(header(&resp, "content-length")
                .and_then(|v| v.parse::<u64>().ok())
                .is_none_or(|n| n == d.size)),
            404 => Ok(false),
            _ => Err(self.client.status_error(&what, resp)),
        }
    }

    /// Asks the registry to link a blob from another repository. 201: done. 202: the
    /// registry could not (it does not have the blob there, or will not say) and opened
    /// an upload session instead, which the upload then uses. Anything else: no mount.
    fn mount(&self, d: &Descriptor, from: &str) -> Result<Mount> {
        let what = format!("mounting {} from {from}", d.digest);
        let url = self
            .client
            .url(&format!("{}/blobs/uploads/", self.repo))?
            .with_query("mount", &d.digest.to_string())
            .with_query("from", from);
        let resp = self
            .client
            .request(&what, "POST", &url, &[], None, &self.scopes())?;
        match resp.status().as_u16() {
            201 => Ok(Mount::Done),
            202 => match header(&resp, "location") {
                Some(loc) => Ok(Mount::Started(self.location(&url, loc)?)),
                None => Ok(Mount::Refused),
            },
            s => {
                self.client
                    .opts
                    .events
                    .trace(&format!("{what}: HTTP {s}; uploading instead"));
                Ok(Mount::Refused)
            }
        }
    }

    /// A `Location` header, resolved and checked.
    fn location(&self, against: &Url, loc: &str) -> Result<Url> {
        let url = against.join(loc)?;
        self.client
            .check_target(&self.client.base()?, &url, "upload location")?;
        Ok(url)
    }

    /// `POST …/blobs/uploads/`: a new upload session.
    fn start(&self, d: &Descriptor, tries: &Tries) -> Result<Url> {
        let what = self.what(d);
        let url = self.client.url(&format!("{}/blobs/uploads/", self.repo))?;
        let resp =
            self.client
                .request_counted(&what, "POST", &url, &[], None, &self.scopes(), tries)?;
        match (resp.status().as_u16(), header(&resp, "location")) {
            (202, Some(loc)) => self.location(&url, loc),
            (202, None) => Err(Error::Registry(format!(
                "{what}: the registry opened an upload without saying where (no Location)"
            ))),
            _ => Err(self.client.status_error(&what, resp)),
        }
    }

    /// Uploads a blob, starting new sessions (bounded) when one breaks beyond repair.
    /// Every failure of the upload — a session's, a chunk's, a status request's — counts
    /// in one [`Tries`], so the attempts said are one sequence with one bound.
    fn upload(&self, d: &Descriptor, mut session: Option<Url>) -> Result<BlobOutcome> {
        let what = self.what(d);
        let max = self.client.opts.retry.attempts.max(1);
        let tries = Tries::default();
        // Sessions started again: a chunk that lands resets `tries`, never this, so a
        // registry that loses every session after its first chunk (replicas without
        // shared upload storage) cannot keep the upload going forever.
        let mut restarts = 0;
        loop {
            let loc = match session.take() {
                Some(l) => l,
                None => self.start(d, &tries)?,
            };
            let result = if d.size <= self.client.opts.monolithic_max {
                self.put_whole(d, &loc)
            } else {
                self.put_chunked(d, loc, &tries)
            };
            match result {
                Ok(()) => return Ok(BlobOutcome::Uploaded { bytes: d.size }),
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::Restart(why, after)) => {
                    restarts += 1;
                    let failed = tries.fail().max(restarts);
                    if failed >= max {
                        return Err(Error::Registry(format!(
                            "{what}: {why}, still failing after {}",
                            super::attempts(failed)
                        )));
                    }
                    self.client.backoff(&what, &why, failed, after);
                }
            }
        }
    }

    /// Sorts a failed exchange into restart-or-give-up; a 401 re-authenticates first.
    fn stop_for(&self, what: &str, v: Verdict) -> Stop {
        match v {
            Verdict::Done(resp) => Stop::Fatal(self.client.status_error(what, resp)),
            Verdict::Unauthorized(resp) => {
                let mut scopes = self.scopes();
                match self.client.reauthorize(&resp, &mut scopes) {
                    Ok(()) => {
                        *lock(&self.scopes) = scopes;
                        Stop::Restart("unauthorized (token expired?)".into(), Some(Duration::ZERO))
                    }
                    Err(e) => Stop::Fatal(e),
                }
            }
            Verdict::Retry { why, after } => Stop::Restart(why, after),
            Verdict::Fail(e) => Stop::Fatal(e),
        }
    }

    /// One PUT with the whole blob (`?digest=`).
    fn put_whole(&self, d: &Descriptor, loc: &Url) -> Result<(), Stop> {
        let what = self.what(d);
        let mut src = Source::new(self.blobs, d, &self.client.opts.events);
        src.seek(0)?;
        let url = loc.with_query("digest", &d.digest.to_string());
        let authz = self.client.authorization(&self.scopes())?;
        let r = self.client.send_raw(
            "PUT",
            &url,
            &octet_stream(),
            Body::Stream(&mut (&mut src).take(d.size), d.size),
            authz.as_deref(),
        );
        src.check()?;
        match self.client.judge(&what, r) {
            Verdict::Done(resp) if resp.status().as_u16() == 201 => {
                src.verify_end()?;
                self.check_digest_header(&what, &resp, &d.digest)?;
                Ok(())
            }
            v => Err(self.stop_for(&what, v)),
        }
    }

    /// PATCHes of `chunk_size` bytes with `Content-Range`, each answered with the new
    /// `Location` and the `Range` the registry holds; after a failure, the upload's
    /// status says where to go on. Then the final PUT with `?digest=`.
    fn put_chunked(&self, d: &Descriptor, mut loc: Url, tries: &Tries) -> Result<(), Stop> {
        let what = self.what(d);
        let opts = &self.client.opts;
        let mut src = Source::new(self.blobs, d, &opts.events);
        let mut offset = 0u64;
        while offset < d.size {
            let n = opts.chunk_size.max(1).min(d.size - offset);
            src.seek(offset)?;
            let authz = self.client.authorization(&self.scopes())?;
            let mut headers = octet_stream();
            headers.push(("content-range", format!("{offset}-{}", offset + n - 1)));
            let r = self.client.send_raw(
                "PATCH",
                &loc,
                &headers,
                Body::Stream(&mut (&mut src).take(n), n),
                authz.as_deref(),
            );
            src.check()?;
            let verdict = self.client.judge(&what, r);
            if let Verdict::Done(resp) = &verdict {
                if resp.status().as_u16() == 202 {
                    if let Some(l) = header(resp, "location") {
                        loc = self.location(&loc, l)?;
                    }
                    // The registry says how much it holds; trust a smaller number
                    // (resend from there), never a larger one.
                    let held = header(resp, "range")
                        .and_then(range_end)
                        .unwrap_or(offset + n);
                    let before = offset;
                    offset = held.min(offset + n);
                    if offset > before {
                        tries.reset();
                        continue;
                    }
                    // Accepted, and yet no more of the blob held: a failure like any
                    // other, or a registry answering `Range: 0-0` forever loops.
                    let failed = tries.fail();
                    if failed >= opts.retry.attempts.max(1) {
                        return Err(Stop::Fatal(Error::Registry(format!(
                            "{what}: the registry accepts chunks but holds no more of the blob than {before} bytes, still after {}",
                            super::attempts(failed)
                        ))));
                    }
                    self.client
                        .backoff(&what, "the registry kept none of the chunk", failed, None);
                    continue;
                }
            }
            // Something went wrong with this chunk: wait, ask where the upload stands,
            // and go on from there.
            let (why, after) = match verdict {
                Verdict::Done(resp) if resp.status().as_u16() == 416 => {
                    ("the registry expected another offset".to_string(), None)
                }
                Verdict::Done(resp) if resp.status().as_u16() == 404 => {
                    return Err(Stop::Restart("the upload session was lost".into(), None))
                }
                v => match self.stop_for(&what, v) {
                    Stop::Restart(why, after) => (why, after),
                    fatal => return Err(fatal),
                },
            };
            let failed = tries.fail();
            if failed >= opts.retry.attempts.max(1) {
                return Err(Stop::Fatal(Error::Registry(format!(
                    "{what}: {why}, still failing after {}",
                    super::attempts(failed)
                ))));
            }
            self.client.backoff(&what, &why, failed, after);
            match self.status(&loc, tries)? {
                Some((held, new_loc)) => {
                    offset = held.min(d.size);
                    if let Some(l) = new_loc {
                        loc = l;
                    }
                    opts.events
                        .trace(&format!("{what}: resuming at byte {offset} of {}", d.size));
                }
                None => return Err(Stop::Restart("the upload session was lost".into(), None)),
            }
        }
        src.seek(d.size)?;
        src.verify_end()?;
        let url = loc.with_query("digest", &d.digest.to_string());
        let scopes = self.scopes();
        let resp = self.client.request_counted(
            &what,
            "PUT",
            &url,
            &octet_stream(),
            Some(&[]),
            &scopes,
            tries,
        )?;
        match resp.status().as_u16() {
            201 => self
                .check_digest_header(&what, &resp, &d.digest)
                .map_err(Stop::Fatal),
            // A PUT whose answer was lost and was retried finds its session closed:
            // the blob is there if the registry says so.
            _ if self.exists(d)? => Ok(()),
            404 => Err(Stop::Restart("the upload session was lost".into(), None)),
            _ => Err(Stop::Fatal(self.client.status_error(&what, resp))),
        }
    }

    /// `GET` on the upload session: how many bytes the registry holds, and the new
    /// location. `None` when the session is gone (registries may drop a session whose
    /// request failed halfway; the caller starts a new one).
    fn status(&self, loc: &Url, tries: &Tries) -> Result<Option<(u64, Option<Url>)>, Stop> {
        let what = format!("checking an upload to {}/{}", self.client.host, self.repo);
        let resp =
            self.client
                .request_counted(&what, "GET", loc, &[], None, &self.scopes(), tries)?;
        match resp.status().as_u16() {
            204 | 202 | 200 => {
                let held = header(&resp, "range").and_then(range_end).unwrap_or(0);
                let new_loc = match header(&resp, "location") {
                    Some(l) => Some(self.location(loc, l)?),
                    None => None,
                };
                Ok(Some((held, new_loc)))
            }
            404 | 400 => Ok(None),
            _ => Err(Stop::Fatal(self.client.status_error(&what, resp))),
        }
    }

    /// A registry that names a different digest than the one computed has stored
    /// something else: fail rather than believe either silently.
    fn check_digest_header(
        &self,
        what: &str,
        resp: &super::client::Resp,
        want: &Digest,
    ) -> Result<()> {
        match header(resp, "docker-content-digest") {
            Some(v) if v != want.to_string() => Err(Error::Registry(format!(
                "{what}: the registry reports digest {} for it; the content's digest is {want}",
                v.chars().take(80).collect::<String>()
            ))),
            _ => Ok(()),
        }
    }

    /// HEAD on a manifest by digest (digests name content, so presence is enough).
    fn manifest_exists(&self, d: &Descriptor) -> Result<bool> {
        let what = format!(
            "checking manifest {} in {}/{}",
            d.digest, self.client.host, self.repo
        );
        let url = self
            .client
            .url(&format!("{}/manifests/{}", self.repo, d.digest))?;
        let accept = [("accept", d.media_type.clone())];
        let resp = self
            .client
            .request(&what, "HEAD", &url, &accept, None, &self.scopes())?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.client.status_error(&what, resp)),
        }
    }

    fn put_manifest(&self, d: &Descriptor, bytes: &[u8], reference: &str) -> Result<()> {
        let what = format!(
            "pushing manifest {} to {}/{}:{reference}",
            d.digest, self.client.host, self.repo
        );
        let url = self
            .client
            .url(&format!("{}/manifests/{reference}", self.repo))?;
        let resp = self.client.request(
            &what,
            "PUT",
            &url,
            &[("content-type", d.media_type.clone())],
            Some(bytes),
            &self.scopes(),
        )?;
        match resp.status().as_u16() {
            200..=202 => {
                self.check_digest_header(&what, &resp, &d.digest)?;
                self.client.opts.events.manifest_pushed(d, reference);
                Ok(())
            }
            _ => Err(self.client.status_error(&what, resp)),
        }
    }
}

enum Mount {
    Done,
    Started(Url),
    Refused,
}

fn octet_stream() -> Vec<(&'static str, String)> {
    vec![("content-type", "application/octet-stream".to_string())]
}

/// The end of a `Range: 0-N` header as a byte count (N+1). Distribution reports
/// `0-0` for an empty upload, which this reads as 0: resending one byte is harmless,
/// skipping one is not.
fn range_end(v: &str) -> Option<u64> {
    let v = v.trim().strip_prefix("bytes=").unwrap_or(v.trim());
    let (start, end) = v.split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    if start != 0 {
        return None;
    }
    Some(if end == 0 { 0 } else { end + 1 })
}

/// The blob being uploaded, positioned anywhere by reopening and skipping (every byte
/// still passes the source's verification, so a corrupt local blob is caught before
/// the registry is asked to commit it). Errors from reading the source are kept apart
/// from network errors.
struct Source<'a> {
    blobs: &'a dyn Blobs,
    desc: &'a Descriptor,
    reader: Option<Box<dyn Read + Send + 'a>>,
    pos: u64,
    error: Option<Error>,
    events: &'a std::sync::Arc<dyn super::Events>,
}

impl<'a> Source<'a> {
    fn new(
        blobs: &'a dyn Blobs,
        desc: &'a Descriptor,
        events: &'a std::sync::Arc<dyn super::Events>,
    ) -> Self {
        Source {
            blobs,
            desc,
            reader: None,
            pos: 0,
            error: None,
            events,
        }
    }

    fn seek(&mut self, to: u64) -> Result<()> {
        if self.reader.is_none() || to < self.pos {
            self.reader = Some(self.blobs.open(self.desc)?);
            self.pos = 0;
        }
        let r = self.reader.as_mut().expect("opened");
        let skip = to - self.pos;
        let n = io::copy(&mut r.take(skip), &mut io::sink()).map_err(|e| {
            crate::oci::io_to_error(e, || format!("reading blob {}", self.desc.digest))
        })?;
        self.pos += n;
        if n != skip {
            return Err(Error::Invalid(format!(
                "blob {} is shorter than its declared {} bytes",
                self.desc.digest, self.desc.size
            )));
        }
        Ok(())
    }

    /// Fails with the source's own error if reading it failed during a request.
    fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads past the end so the verifying reader compares the digest.
    fn verify_end(&mut self) -> Result<()> {
        let r = self.reader.as_mut().expect("read before");
        let mut one = [0u8; 1];
        match r.read(&mut one) {
            Ok(0) => Ok(()),
            Ok(_) => Err(Error::Invalid(format!(
                "blob {} is longer than its declared {} bytes",
                self.desc.digest, self.desc.size
            ))),
            Err(e) => Err(crate::oci::io_to_error(e, || {
                format!("reading blob {}", self.desc.digest)
            })),
        }
    }
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self
            .reader
            .as_mut()
            .ok_or_else(|| io::Error::other("blob not opened"))?;
        match r.read(buf) {
            Ok(n) => {
                self.pos += n as u64;
                self.events.blob_progress(self.desc, self.pos);
                Ok(n)
            }
            Err(e) => {
                let shown = e.to_string();
                self.error = Some(crate::oci::io_to_error(e, || {
                    format!("reading blob {}", self.desc.digest)
                }));
                Err(io::Error::other(shown))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::range_end;

    #[test]
    fn ranges() {
        assert_eq!(range_end("0-1023"), Some(1024));
        assert_eq!(range_end("bytes=0-9"), Some(10));
        assert_eq!(range_end("0-0"), Some(0));
        assert_eq!(range_end("5-9"), None);
        assert_eq!(range_end("x"), None);
    }
}
