//! OCI image layouts (`oci:DIR`): content-addressed blobs written once through a temp
//! file, `index.json` replaced atomically under a lock, blobs read back verified.
//! The local store is a layout too (see `store`).

mod fsck;

pub use fsck::{fsck, Finding, FsckReport};

use crate::digest::{Digest, HashReader, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, Lock};
use crate::image::{self, Descriptor, Image, Index, PlatformImage, Want};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Anything blobs can be read from: a layout, an archive, a registry.
pub trait Blobs: Sync {
    /// Opens a blob; the reader fails with a digest mismatch at the end if the bytes are
    /// not what `desc` names.
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>>;

    /// The blob as a plain local file that nobase itself wrote and verified, if it is one
    /// (lets sinks copy with `copy_file_range` instead of re-reading and re-hashing).
    fn trusted_path(&self, _desc: &Descriptor) -> Option<PathBuf> {
        None
    }

    /// Whether a layer's digest here was computed from its own bytes rather than named
    /// by the image: a docker-archive's `layer.tar`, which `docker save` records only by
    /// its uncompressed diff_id. Only the diff_id then proves a compressed layer is the
    /// image's, and an import decompresses it to check (a registry's or a layout's blob
    /// is named by its digest, verified as it streams, as skopeo verifies it).
    fn layers_unnamed(&self) -> bool {
        false
    }

    /// Reads a small document blob (manifest, index, config) whole, verified.
    fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        if desc.size > image::MAX_DOCUMENT {
            return Err(Error::Invalid(format!(
                "{} is {} bytes, more than the {}-byte limit for a manifest or config",
                desc.digest,
                desc.size,
                image::MAX_DOCUMENT
            )));
        }
        let mut buf = Vec::with_capacity(desc.size as usize);
        self.open(desc)?
            .read_to_end(&mut buf)
            .map_err(|e| io_to_error(e, || format!("reading blob {}", desc.digest)))?;
        Ok(buf)
    }
}

/// Turns an `io::Error` carrying one of our errors (from a verifying reader) back into
/// it; otherwise wraps it with the action.
pub fn io_to_error(e: io::Error, action: impl FnOnce() -> String) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Error>()) {
        if let Ok(inner) = e.into_inner().expect("checked").downcast::<Error>() {
            return *inner;
        }
        unreachable!("checked above")
    }
    Error::Io {
        action: action(),
        cause: e,
    }
}

/// A reader that hashes what passes and, at the end, fails unless the digest and size
/// match the descriptor. It also refuses to read past the declared size.
pub struct VerifyReader<R> {
    inner: Option<HashReader<io::Take<R>>>,
    expected: Digest,
    size: u64,
}

impl<R: Read> VerifyReader<R> {
    /// Verifies `inner` against `expected` and `size`.
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        VerifyReader {
            // One extra byte lets us notice a blob longer than declared.
            inner: Some(HashReader::new(inner.take(size.saturating_add(1)))),
            expected,
            size,
        }
    }
}

impl<R: Read> Read for VerifyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = inner.read(buf)?;
        if inner.count() > self.size {
            return Err(io::Error::other(Error::Invalid(format!(
                "blob {} is longer than its declared {} bytes",
                self.expected, self.size
            ))));
        }
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        // End of stream: check what we read.
        let (found, count) = self.inner.take().expect("present").finish();
        if count != self.size {
            return Err(io::Error::other(Error::Invalid(format!(
                "blob {} is {count} bytes, its descriptor says {}",
                self.expected, self.size
            ))));
        }
        if found != self.expected {
            return Err(io::Error::other(Error::DigestMismatch {
                what: format!("blob {}", self.expected),
                expected: self.expected.clone(),
                found,
            }));
        }
        Ok(0)
    }
}

/// An OCI image layout directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Opens an existing layout.
    pub fn open(root: &Path) -> Result<Layout> {
        let meta = match std::fs::metadata(root.join(LAYOUT_FILE)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let what = if root.is_dir() {
                    format!("it has no {LAYOUT_FILE} file")
                } else {
                    "it does not exist".to_string()
                };
                return Err(Error::Invalid(format!(
                    "{} is not an OCI image layout: {what}; give a layout directory (with {LAYOUT_FILE}, index.json and blobs/, as nobase, skopeo and umoci write them)",
                    root.display()
                )));
            }
            other => other.io(|| {
                format!(
                    "{} is not an OCI image layout (no readable {LAYOUT_FILE} file)",
                    root.display()
                )
            })?,
        };
        if !meta.is_file() {
            return Err(Error::Invalid(format!(
                "{}/{LAYOUT_FILE} is not a file",
                root.display()
            )));
        }
        Ok(Layout {
            root: root.to_path_buf(),
        })
    }

    /// Opens a layout, creating an empty one (directories, `oci-layout`, `index.json`)
    /// if `root` does not hold one yet.
    pub fn create(root: &Path) -> Result<Layout> {
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).io(|| format!("creating {}", blobs.display()))?;
        let layout = Layout {
            root: root.to_path_buf(),
        };
        if !root.join(LAYOUT_FILE).exists() {
            // Constant content, rewritten whenever missing: no need to sync.
            fsutil::replace_unsynced(&root.join(LAYOUT_FILE), LAYOUT_CONTENT)?;
        }
        if !root.join("index.json").exists() {
            // Under the lock (another process may be creating it too), but not synced:
            // an empty or missing index.json reads as an empty index.
            layout.change_index(|_| Ok(()), false)?;
        }
        fsutil::clean_stale_temps(root);
        Ok(layout)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(d.hex())
    }

    /// True when the blob is present as a regular file of the right size.
    pub fn has_blob(&self, desc: &Descriptor) -> bool {
        std::fs::symlink_metadata(self.blob_path(&desc.digest))
            .map(|m| m.is_file() && m.len() == desc.size)
            .unwrap_or(false)
    }

    /// Starts writing a blob whose digest is not yet known.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let (file, tmp) = fsutil::create_temp(&self.root)?;
        Ok(BlobWriter {
            inner: Some(HashWriter::new(BufWriter::with_capacity(1 << 20, file))),
            tmp,
            layout: self.clone(),
            flusher: fsutil::Flusher::new(),
        })
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    pub fn put_bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let d = Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64);
        // Small documents: compare what is there instead of trusting its size.
        let same =
            self.has_blob(&d) && std::fs::read(self.blob_path(&d.digest)).is_ok_and(|b| b == bytes);
        if !same {
            let mut w = self.blob_writer()?;
            w.write_all(bytes)
                .io(|| format!("writing a blob in {}", self.root.display()))?;
            w.commit()?;
        }
        Ok(d)
    }

    /// Copies a blob from another source unless it is already here: a layer, or any
    /// blob (`diff_id` None). A blob from a trusted local file is copied with
    /// `copy_file_range` (reflinks where the filesystem has them); anything else is
    /// verified against its digest as it streams in. A compressed layer from a source
    /// whose layer digests are not the image's own ([`Blobs::layers_unnamed`]: a
    /// docker-archive's gzipped `layer.tar`) is also decompressed on the way and refused,
    /// writing nothing, unless it is its `diff_id` (the config's). A registry's or
    /// layout's layer is checked by its digest alone (tree, check and unpack find a config
    /// that lies); an uncompressed one's digest is its diff_id.
    pub fn copy_layer(
        &self,
        desc: &Descriptor,
        diff_id: Option<&Digest>,
        from: &dyn Blobs,
    ) -> Result<()> {
        if self.has_blob(desc) {
            return Ok(());
        }
        let compression = diff_id
            .filter(|_| from.layers_unnamed())
            .and(image::layer_compression(&desc.media_type));
        if let Some(src) = from.trusted_path(desc) {
            let (_f, tmp) = fsutil::create_temp(&self.root)?;
            let res = std::fs::copy(&src, &tmp)
                .io(|| format!("copying {} into {}", src.display(), self.root.display()))
                .and_then(|_| fsutil::persist(&tmp, &self.blob_path(&desc.digest)));
            if res.is_err() {
                fsutil::discard(&tmp);
            }
            return res;
        }
        let mut r = from.open(desc)?;
        let mut w = self.blob_writer()?;
        let ctx = || format!("copying blob {}", desc.digest);
        match (compression, diff_id) {
            (Some(c), Some(want)) if c != image::LayerCompression::None => {
                // One pass: the decompressor pulls the blob through a tee that writes it
                // out, and the uncompressed bytes are hashed on the way to nowhere.
                let mut tee = Tee {
                    inner: &mut r,
                    out: &mut w,
                };
                let unpacked = uncompressed_digest(&mut tee, c, desc);
                // Whatever follows the compressed stream is part of the blob (and its
                // digest, checked at the end): a damaged blob is named as such rather
                // than by the decompressor's complaint it caused.
                io::copy(&mut tee, &mut io::sink()).map_err(|e| io_to_error(e, ctx))?;
                let found = unpacked?;
                if &found != want {
                    return Err(diff_id_mismatch(desc, want, found));
                }
            }
            _ => {
                io::copy(&mut r, &mut w).map_err(|e| io_to_error(e, ctx))?;
            }
        }
        let (d, _) = w.commit()?;
        if d != desc.digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {}", desc.digest),
                expected: desc.digest.clone(),
                found: d,
            });
        }
        Ok(())
    }

    /// Reads `index.json`.
    pub fn read_index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        let f = fsutil::open_regular_nofollow(&p).io(|| format!("reading {}", p.display()))?;
        let mut buf = Vec::new();
        f.take(image::MAX_DOCUMENT + 1)
            .read_to_end(&mut buf)
            .io(|| format!("reading {}", p.display()))?;
        if buf.len() as u64 > image::MAX_DOCUMENT {
            return Err(Error::Invalid(format!("{} is too large", p.display())));
        }
        if buf.is_empty() {
            return Ok(Index::empty());
        }
        image::parse_document(&buf, image::MT_OCI_INDEX, &p.display().to_string())
    }

    /// Changes `index.json` under an exclusive lock on the layout directory, writing the
    /// result atomically. Concurrent updaters (other processes) are serialized, so none
    /// loses another's entry.
    pub fn update_index<T>(&self, change: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        self.change_index(change, true)
    }

    fn change_index<T>(
        &self,
        change: impl FnOnce(&mut Index) -> Result<T>,
        durable: bool,
    ) -> Result<T> {
        let dir = fsutil::open_dir(&self.root).io(|| format!("opening {}", self.root.display()))?;
        fsutil::flock_or_say(&dir, Lock::Exclusive, &self.root)
            .io(|| format!("locking {}", self.root.display()))?;
        let mut index = if self.root.join("index.json").exists() {
            self.read_index()?
        } else {
            Index::empty()
        };
        let out = change(&mut index)?;
        let path = self.root.join("index.json");
        if durable {
            fsutil::atomic_write(&path, &image::to_bytes(&index))?;
        } else {
            fsutil::replace_unsynced(&path, &image::to_bytes(&index))?;
        }
        Ok(out)
    }

    /// Writes every blob of `image` (from `from`) and records its top descriptor in the
    /// index under `ref_name` (replacing the entry of that name), or unnamed: added
    /// beside the other entries, as skopeo adds it (an unnamed entry of the same digest
    /// is replaced, so writing it twice lists it once).
    pub fn publish(&self, image: &Image, from: &dyn Blobs, ref_name: Option<&str>) -> Result<()> {
        // Between finding a blob present and the tag that uses it, a collection (`nobase
        // rmi` on this layout, when it is a store reached as `oci:DIR`) must not run.
        let _guard = self.writer_guard()?;
        let diff_ids = image.diff_ids()?;
        for d in image.blobs() {
            self.copy_layer(&d, diff_ids.get(&d.digest), from)?;
        }
        let mut top = image.top.clone();
        top.annotations.remove(image::REF_NAME);
        if let Some(r) = ref_name {
            top.annotations
                .insert(image::REF_NAME.to_string(), r.to_string());
        }
        self.update_index(|index| {
            match ref_name {
                Some(_) => index.manifests.retain(|m| m.ref_name() != ref_name),
                None => index
                    .manifests
                    .retain(|m| m.ref_name().is_some() || m.digest != top.digest),
            }
            index.manifests.push(top);
            index.manifests.sort_by(|a, b| {
                a.ref_name()
                    .cmp(&b.ref_name())
                    .then(a.digest.cmp(&b.digest))
            });
            Ok(())
        })
    }

    /// Holds off garbage collection while blobs no tag references yet are written or
    /// counted on: a shared lock on the blob directory, released when the file is
    /// dropped (collection takes it exclusively, and waits for no one).
    pub fn writer_guard(&self) -> Result<std::fs::File> {
        let blobs = self.root.join("blobs");
        let f = fsutil::open_dir(&blobs).io(|| format!("opening {}", blobs.display()))?;
        fsutil::flock_or_say(&f, Lock::Shared, &self.root)
            .io(|| format!("locking {}", blobs.display()))?;
        Ok(f)
    }

    /// Finds the index entry named `ref_name`, or the only entry when `None`.
    pub fn resolve(&self, ref_name: Option<&str>) -> Result<Descriptor> {
        let place = self.root.display().to_string();
        select_ref(
            self.read_index()?,
            ref_name,
            &place,
            &format!("oci:{place}"),
        )
    }
}

/// The digest of a compressed layer's uncompressed content (its diff_id), read from
/// `r` up to the end of the compressed stream. The readers' cap on what a layer may
/// expand to holds here too: a decompression bomb stops the reading, not a CPU for
/// hours.
fn uncompressed_digest(
    r: &mut (dyn Read + Send),
    c: image::LayerCompression,
    desc: &Descriptor,
) -> Result<Digest> {
    let limits = crate::imagefs::walk::Limits::default();
    let cap = limits.layer_cap(desc.size);
    let u = crate::layer::decompress(Box::new(r), c, &desc.digest)?;
    let mut h = HashWriter::new(io::sink());
    io::copy(&mut u.take(cap.saturating_add(1)), &mut h)
        .map_err(|e| io_to_error(e, || format!("decompressing layer {}", desc.digest)))?;
    if h.count() > cap {
        return Err(Error::Invalid(format!(
            "layer {} expands to more than {cap} bytes, over {}× its compressed size: a \
             decompression bomb, or a layer too sparse for nobase to read",
            desc.digest, limits.max_ratio
        )));
    }
    Ok(h.finish().1)
}

/// Checks each compressed layer of `image` in `from` against the diff_id its config
/// gives it, when `from`'s layer digests are not the image's own
/// ([`Blobs::layers_unnamed`]: a docker-archive's gzipped `layer.tar`), before the
/// image goes anywhere that would not check it (a registry). Elsewhere, nothing to do.
pub fn verify_unnamed_layers(image: &Image, from: &dyn Blobs) -> Result<()> {
    if !from.layers_unnamed() {
        return Ok(());
    }
    let diff_ids = image.diff_ids()?;
    for desc in image.blobs() {
        let Some(want) = diff_ids.get(&desc.digest) else {
            continue;
        };
        let Some(c) = image::layer_compression(&desc.media_type)
            .filter(|c| *c != image::LayerCompression::None)
        else {
            continue;
        };
        let found = uncompressed_digest(&mut from.open(&desc)?, c, &desc)?;
        if &found != want {
            return Err(diff_id_mismatch(&desc, want, found));
        }
    }
    Ok(())
}

/// A layer whose uncompressed content is not what its image's config says.
fn diff_id_mismatch(desc: &Descriptor, want: &Digest, found: Digest) -> Error {
    Error::DigestMismatch {
        what: format!(
            "layer {} (uncompressed, against its config's diff_id; the image is damaged \
             or was written wrongly, and nothing of it was stored)",
            desc.digest
        ),
        expected: want.clone(),
        found,
    }
}

/// A reader that writes what it reads into `out` as well.
struct Tee<'a, R, W> {
    inner: &'a mut R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Finds the entry of `index` named `ref_name`, or its only entry when `None`. `place`
/// names the layout or archive in messages; `prefix` is how a user names one of its
/// images (`oci:DIR`, `oci-archive:FILE`).
pub fn select_ref(
    index: Index,
    ref_name: Option<&str>,
    place: &str,
    prefix: &str,
) -> Result<Descriptor> {
    match ref_name {
        Some(r) => index
            .manifests
            .into_iter()
            .find(|m| m.ref_name() == Some(r))
            .ok_or_else(|| Error::Invalid(format!("{place} has no image named {r:?}"))),
        None => {
            if index.manifests.len() == 1 {
                Ok(index.manifests.into_iter().next().expect("one entry"))
            } else {
                Err(Error::Usage(format!(
                    "{place} holds {} images; name one as {prefix}:REF",
                    index.manifests.len()
                )))
            }
        }
    }
}

impl Blobs for Layout {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        let p = self.blob_path(&desc.digest);
        let f = fsutil::open_regular_nofollow(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                // An image removed (and collected) while it was being read, or a damaged
                // layout.
                Error::Invalid(format!(
                    "blob {} is missing from {}: the image was removed while it was read \
                     (try again), or the layout is damaged (`nobase fsck` says)",
                    desc.digest,
                    self.root.display()
                ))
            } else {
                Error::Io {
                    action: format!("opening blob {} in {}", desc.digest, self.root.display()),
                    cause: e,
                }
            }
        })?;
        Ok(Box::new(VerifyReader::new(
            io::BufReader::with_capacity(1 << 20, f),
            desc.digest.clone(),
            desc.size,
        )))
    }
}

/// A layout whose blobs nobase itself wrote and verified (the store, during a build):
/// sinks may copy its files without re-reading them through a hash.
pub struct Trusted<'a>(pub &'a Layout);

impl Blobs for Trusted<'_> {
    fn open(&self, desc: &Descriptor) -> Result<Box<dyn Read + Send + '_>> {
        self.0.open(desc)
    }
    fn trusted_path(&self, desc: &Descriptor) -> Option<PathBuf> {
        self.0
            .has_blob(desc)
            .then(|| self.0.blob_path(&desc.digest))
    }
}

/// Reads the image that `top` names from `blobs`: its manifest, or its index and each
/// listed manifest, with their configs.
pub fn read_image(top: &Descriptor, blobs: &dyn Blobs) -> Result<Image> {
    if image::is_index(&top.media_type) {
        let raw = blobs.read_document(top)?;
        let index: Index =
            image::parse_document(&raw, &top.media_type, &format!("index {}", top.digest))?;
        let mut manifests = Vec::new();
        for d in &index.manifests {
            if image::is_manifest(&d.media_type) {
                manifests.push(read_manifest(d, blobs)?);
            }
        }
        if manifests.is_empty() {
            let nested = index
                .manifests
                .iter()
                .any(|d| image::is_index(&d.media_type));
            return Err(Error::Invalid(format!(
                "index {} lists no image manifests{}",
                top.digest,
                if nested {
                    " (only other indexes, which nobase does not follow)"
                } else {
                    ""
                }
            )));
        }
        Ok(Image {
            top: top.clone(),
            index: Some(index),
            manifests,
        })
    } else if image::is_manifest(&top.media_type) {
        Ok(Image {
            top: top.clone(),
            index: None,
            manifests: vec![read_manifest(top, blobs)?],
        })
    } else {
        Err(Error::Invalid(format!(
            "{} has media type {:?}, which is neither an image manifest nor an index",
            top.digest, top.media_type
        )))
    }
}

/// Reads the image `top` names as `want` asks. For one platform of an index whose
/// entries say their platforms, only the chosen manifest and its config are read (from
/// a registry, the other platforms' documents are never fetched); otherwise every
/// manifest is read and the image then narrowed by the configs.
pub fn read_image_for(top: &Descriptor, blobs: &dyn Blobs, want: Want) -> Result<Image> {
    let Want::One(platform) = want else {
        return read_image(top, blobs);
    };
    if image::is_index(&top.media_type) {
        let raw = blobs.read_document(top)?;
        let index: Index =
            image::parse_document(&raw, &top.media_type, &format!("index {}", top.digest))?;
        if let Some(entry) = image::choose_entry(&index.manifests, platform)? {
            return Ok(Image {
                top: entry.clone(),
                index: None,
                manifests: vec![read_manifest(entry, blobs)?],
            });
        }
    }
    read_image(top, blobs)?.single(platform)
}

fn read_manifest(d: &Descriptor, blobs: &dyn Blobs) -> Result<PlatformImage> {
    let raw = blobs.read_document(d)?;
    let manifest: image::Manifest =
        image::parse_document(&raw, &d.media_type, &format!("manifest {}", d.digest))?;
    if image::is_artifact_entry(d) || image::is_artifact_manifest(&manifest) {
        // An SBOM, a signature, an attestation: kept and copied as it is, never read as
        // an image (its config need not be an image config, nor its layers tars).
        return Ok(PlatformImage {
            descriptor: d.clone(),
            manifest,
            config: image::ImageConfig::default(),
        });
    }
    let raw = blobs.read_document(&manifest.config)?;
    let config: image::ImageConfig =
        image::from_bytes(&raw, &format!("config {}", manifest.config.digest))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::Invalid(format!(
            "image {}: its config lists {} layers but its manifest {}",
            d.digest,
            config.rootfs.diff_ids.len(),
            manifest.layers.len()
        )));
    }
    Ok(PlatformImage {
        descriptor: d.clone(),
        manifest,
        config,
    })
}

/// A blob being written: hashed and counted as it goes, renamed to its digest on
/// [`BlobWriter::commit`], removed if dropped uncommitted.
pub struct BlobWriter {
    inner: Option<HashWriter<BufWriter<File>>>,
    tmp: PathBuf,
    layout: Layout,
    flusher: fsutil::Flusher,
}

impl BlobWriter {
    /// Flushes, syncs and moves the blob into place; returns its digest and size.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        let w = self.inner.take().expect("commit runs once");
        let (buf, digest, size) = w.finish();
        let res = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .io(|| format!("writing {}", self.tmp.display()))
            .and_then(|file| {
                self.flusher
                    .wait()
                    .and_then(|()| file.sync_all())
                    .io(|| format!("syncing {}", self.tmp.display()))?;
                // Always replace: the new file was hashed as it was written, while an
                // existing file of that name may be damaged (same size, other bytes).
                // The file stays open (and locked) until it has its final name: a temp
                // file without its lock looks like a dead writer's and may be removed.
                fsutil::persist(&self.tmp, &self.layout.blob_path(&digest))
            });
        if res.is_err() {
            fsutil::discard(&self.tmp);
        }
        res.map(|()| (digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let w = self.inner.as_mut().expect("not committed");
        let n = w.write(buf)?;
        let on_disk = w.count() - w.get_mut().buffer().len() as u64;
        self.flusher.wrote(w.get_mut().get_ref(), on_disk);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("not committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.inner.is_some() {
            fsutil::discard(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_reader_catches_wrong_bytes_and_lengths() {
        let d = Digest::of(b"hello");
        let read = |data: &[u8], size| {
            let mut v = Vec::new();
            VerifyReader::new(data, d.clone(), size).read_to_end(&mut v)
        };
        assert!(read(b"hello", 5).is_ok());
        assert!(read(b"hellp", 5).is_err());
        assert!(read(b"hello!", 5).is_err());
        assert!(read(b"hell", 5).is_err());
    }

    #[test]
    fn layout_round_trip_and_symlinked_blob_refused() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let d = l.put_bytes("x", b"content").unwrap();
        assert_eq!(l.read_document(&d).unwrap(), b"content");
        // Replace the blob with a symlink to a host file: it must not be read.
        let p = l.blob_path(&d.digest);
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &p).unwrap();
        assert!(l.read_document(&d).is_err());
        // No temp files left.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
