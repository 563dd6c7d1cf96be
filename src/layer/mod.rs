//! Deterministic layer writing: an [`ImageTree`] becomes a tar stream, hashed (diff_id),
//! compressed, hashed again (blob digest) and written to a temp file in one pass, then
//! renamed to its digest. Nothing from the host's clock, umask or owner reaches the bytes.

mod blocks;
mod cache;

pub use blocks::{Codec, Pipeline};
pub use cache::LayerCache;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{self, Descriptor};
use crate::oci::{io_to_error, BlobWriter, Layout};
use crate::tree::{Content, ImageTree, Node};
use std::collections::HashMap;
use std::io::{self, Read, Write};

/// Layer compression chosen for a build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (the default; every runtime reads it).
    Gzip,
    /// zstd (faster, smaller; containerd ≥ 1.5, podman, recent Docker).
    Zstd,
    /// Plain tar.
    None,
}

impl Compression {
    /// Parses `gzip`, `zstd` or `none`.
    pub fn parse(s: &str) -> Result<Compression> {
        match s {
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            "none" => Ok(Compression::None),
            _ => Err(Error::Usage(format!(
                "unknown compression {s:?}: use gzip, zstd or none"
            ))),
        }
    }

    /// Checks `--compression-level` for this compression: gzip 1–12 (libdeflate's
    /// levels), zstd 1–19; a plain tar takes none.
    pub fn check_level(self, level: Option<i32>) -> Result<Option<i32>> {
        let Some(l) = level else { return Ok(None) };
        let (lo, hi) = match self {
            Compression::Gzip => (1, 12),
            Compression::Zstd => (1, 19),
            Compression::None => {
                return Err(Error::Usage(
                    "--compression-level applies to gzip and zstd, not to --compression none"
                        .into(),
                ))
            }
        };
        if !(lo..=hi).contains(&l) {
            return Err(Error::Usage(format!(
                "--compression-level {l}: {} levels go from {lo} to {hi}",
                self.name()
            )));
        }
        Ok(Some(l))
    }

    /// The name `--compression` takes.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }

    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => image::MT_OCI_LAYER_GZIP,
            Compression::Zstd => image::MT_OCI_LAYER_ZSTD,
            Compression::None => image::MT_OCI_LAYER,
        }
    }
}

/// The libdeflate gzip level: chosen by measurement (benches/build.sh) so the default
/// build is both faster than umoci's and no larger.
pub const GZIP_LEVEL: u32 = 4;

/// The zstd level (zstd's own default).
pub const ZSTD_LEVEL: i32 = 3;

/// How layers are written.
#[derive(Clone, Copy, Debug)]
pub struct LayerOptions {
    /// Compression.
    pub compression: Compression,
    /// Its level (checked by [`Compression::check_level`]); None: [`GZIP_LEVEL`] or
    /// [`ZSTD_LEVEL`].
    pub level: Option<i32>,
    /// mtime of every entry (the image's `created` time).
    pub mtime: u64,
    /// Compression workers. Fixed by the caller, never the core count, so the bytes do
    /// not depend on the machine.
    pub threads: u32,
}

/// A written layer.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The blob's descriptor (compressed).
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Length of the uncompressed tar.
    pub uncompressed_size: u64,
    /// True when the blob came from the layer cache instead of being compressed again.
    pub reused: bool,
}

impl LayerOptions {
    /// The block codec of this compression (none for a plain tar).
    fn codec(&self) -> Option<Codec> {
        match self.compression {
            Compression::Gzip => Some(Codec::Gzip(
                self.level.map_or(GZIP_LEVEL, |l| l.clamp(1, 12) as u32),
            )),
            Compression::Zstd => Some(Codec::Zstd(self.level.unwrap_or(ZSTD_LEVEL))),
            Compression::None => None,
        }
    }
}

/// Writes `tree` as one layer blob into `layout`, or reuses the blob of an identical
/// layer written before (see [`LayerCache`]).
pub fn write_layer(tree: &ImageTree, opts: &LayerOptions, layout: &Layout) -> Result<Layer> {
    // Every file is read once below, whether the layer is reused or written.
    crate::progress::expect(tree.file_bytes());
    let cache = LayerCache::of(layout);
    let key = LayerCache::key(tree, opts);
    if let Some(hit) = cache.candidate(&key, layout) {
        // Verify the content: regenerate the tar and hash it, without compressing. The
        // hash runs on its own thread, so reading the files overlaps with hashing them.
        let mut tar = tar::Builder::new(Pipeline::<io::Sink>::new(None, None, opts.threads));
        write_entries(&mut tar, tree, opts.mtime)?;
        let (_, diff_id, _) = tar
            .into_inner()
            .and_then(Pipeline::finish)
            .io(|| "finishing the layer tar".to_string())?;
        if diff_id.as_ref() == Some(&hit.diff_id) {
            return Ok(Layer {
                reused: true,
                ..hit
            });
        }
    }
    let layer = write_layer_uncached(tree, opts, layout)?;
    // A cache that cannot be written only costs the next build time.
    let _ = cache.record(&key, &layer);
    Ok(layer)
}

fn write_layer_uncached(tree: &ImageTree, opts: &LayerOptions, layout: &Layout) -> Result<Layer> {
    // The blob is written while the files are read, so a full disk surfaces wherever the
    // pipeline happened to be writing (a file's contents, a tar header, the last blocks):
    // it is always the store's failure, never the input's.
    write_blob(tree, opts, layout).map_err(|e| match e {
        Error::Io { cause, .. } if crate::error::is_full_disk(&cause) => Error::Io {
            action: format!(
                "writing the layer into the store {}",
                layout.root().display()
            ),
            cause,
        },
        e => e,
    })
}

fn write_blob(tree: &ImageTree, opts: &LayerOptions, layout: &Layout) -> Result<Layer> {
    let blob = layout.blob_writer()?;
    // One pass: tar framing, the diff_id, compression on every core, the blob digest. A
    // plain tar is its own blob: the blob writer's digest is its diff_id.
    let pipeline = match opts.codec() {
        Some(codec) => Pipeline::new(Some(blob), Some(codec), opts.threads),
        None => Pipeline::stored(blob),
    };
    let mut tar = tar::Builder::new(pipeline);
    write_entries(&mut tar, tree, opts.mtime)?;
    let (blob, diff_id, uncompressed_size) = tar
        .into_inner()
        .and_then(Pipeline::finish)
        .io(|| "finishing the layer".to_string())?;
    let blob: BlobWriter = blob.expect("the pipeline has an output");
    let (digest, size) = blob.commit()?;
    let diff_id = diff_id.unwrap_or_else(|| digest.clone());
    Ok(Layer {
        descriptor: Descriptor::new(opts.compression.media_type(), digest, size),
        diff_id,
        uncompressed_size,
        reused: false,
    })
}

fn write_entries<W: Write>(
    tar: &mut tar::Builder<Pipeline<W>>,
    tree: &ImageTree,
    mtime: u64,
) -> Result<()> {
    // First image path for each host inode with several links: later paths become tar
    // hard links to it, in the order the tar is written.
    let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
    for (path, e) in tree.entries() {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid as u64);
        h.set_gid(e.gid as u64);
        h.set_mtime(mtime);
        let fail = |err: io::Error| io_to_error(err, || format!("writing /{path} into the layer"));
        match &e.node {
            Node::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, path, io::empty()).map_err(fail)?;
            }
            Node::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, path, target).map_err(fail)?;
            }
            Node::File { content, size } => {
                if let Content::Host {
                    inode: Some(ino), ..
                } = content
                {
                    if let Some(first) = first_link.get(ino) {
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        tar.append_link(&mut h, path, first).map_err(fail)?;
                        continue;
                    }
                    first_link.insert(*ino, path.clone());
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                match content {
                    Content::Bytes(b) => tar.append_data(&mut h, path, &b[..]).map_err(fail)?,
                    Content::Host { path: src, .. } => {
                        let f =
                            std::fs::File::open(src).io(|| format!("reading {}", src.display()))?;
                        let now = f.metadata().io(|| format!("reading {}", src.display()))?;
                        if !now.is_file() || now.len() != *size {
                            return Err(Error::Invalid(format!(
                                "{} changed while the image was being built (was {size} bytes, now {}); build again",
                                src.display(),
                                now.len()
                            )));
                        }
                        // The header (and a GNU long-name entry before it when the path
                        // needs one) through tar; the contents are read straight into
                        // the pipeline's blocks, then padded to the tar record size.
                        tar.append_data(&mut h, path, io::empty()).map_err(fail)?;
                        let w = tar.get_mut();
                        let got = w
                            .read_from(&mut crate::progress::Counted(f), *size)
                            .io(|| format!("reading {}", src.display()))?;
                        if got < *size {
                            return Err(Error::Invalid(format!(
                                "{} shrank while it was being archived; build again when it is no longer changing",
                                src.display()
                            )));
                        }
                        let pad = (512 - size % 512) % 512;
                        w.write_all(&[0; 512][..pad as usize]).map_err(fail)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Wraps a layer blob reader in the decompressor its media type calls for. gzip readers
/// accept several concatenated members (what parallel gzip writers produce). A layer
/// whose first bytes are another format than its media type says (zstd bytes labelled
/// gzip, a gzip stream labelled plain tar) is named as such, instead of by the
/// decompressor's complaint ("invalid gzip header").
pub fn decompress<'a>(
    r: Box<dyn Read + Send + 'a>,
    c: image::LayerCompression,
    layer: &Digest,
) -> Result<Box<dyn Read + Send + 'a>> {
    let mut r = io::BufReader::with_capacity(1 << 16, r);
    let head = io::BufRead::fill_buf(&mut r)
        .map_err(|e| io_to_error(e, || format!("reading layer {layer}")))?;
    if let Some(found) = sniff(head).filter(|found| *found != c) {
        return Err(Error::Invalid(format!(
            "layer {layer}: its media type says {}, but its bytes are {}: the image was written with the wrong media type",
            compression_name(c),
            compression_name(found)
        )));
    }
    Ok(match c {
        image::LayerCompression::None => Box::new(r),
        image::LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        image::LayerCompression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r)
                .io(|| "starting the zstd decoder".to_string())?,
        ),
    })
}

/// The format the first bytes of a layer show, when they show one: the gzip and zstd
/// magic numbers, or a tar header's `ustar`.
fn sniff(head: &[u8]) -> Option<image::LayerCompression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(image::LayerCompression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(image::LayerCompression::Zstd)
    } else if head.get(257..262) == Some(b"ustar") {
        Some(image::LayerCompression::None)
    } else {
        None
    }
}

fn compression_name(c: image::LayerCompression) -> &'static str {
    match c {
        image::LayerCompression::None => "an uncompressed tar",
        image::LayerCompression::Gzip => "gzip",
        image::LayerCompression::Zstd => "zstd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(tree: &ImageTree, compression: Compression, threads: u32) -> Layer {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        write_layer(
            tree,
            &LayerOptions {
                compression,
                level: None,
                mtime: 0,
                threads,
            },
            &layout,
        )
        .unwrap()
    }

    #[test]
    fn same_tree_same_digests_across_thread_counts() {
        let mut t = ImageTree::new();
        t.add_bytes("/app/x", &vec![7u8; 3 << 20], 0o755).unwrap();
        t.add_symlink("/app/y", "x").unwrap();
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let a = build(&t, c, 1);
            let b = build(&t, c, 2);
            assert_eq!(a.descriptor.digest, b.descriptor.digest, "{c:?}");
            assert_eq!(a.diff_id, b.diff_id);
        }
    }

    #[test]
    fn host_files_are_read_whole_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("prog");
        // Not a multiple of the block or tar record size, and a path long enough to
        // need a GNU long-name entry.
        let data: Vec<u8> = (0..(5 << 20) + 333).map(|i| (i % 251) as u8).collect();
        std::fs::write(&host, &data).unwrap();
        let long = format!("/app/{}/prog", "d".repeat(120));
        let mut t = ImageTree::new();
        t.add_host(&host, &long).unwrap();
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let l = build(&t, c, 2);
            // The same bytes as tar's own writer makes from the whole file.
            let mut want = tar::Builder::new(Vec::new());
            write_reference(&mut want, &t);
            assert_eq!(l.diff_id, Digest::of(&want.into_inner().unwrap()), "{c:?}");
        }
        // Changed after it was added: refused, naming it, and nothing is left behind.
        std::fs::write(&host, &data[..1000]).unwrap();
        let out = tempfile::tempdir().unwrap();
        let layout = Layout::create(out.path()).unwrap();
        let opts = LayerOptions {
            compression: Compression::Gzip,
            level: None,
            mtime: 0,
            threads: 2,
        };
        let e = write_layer(&t, &opts, &layout).unwrap_err().to_string();
        assert!(e.contains("changed while the image was being built"), "{e}");
        let blobs = std::fs::read_dir(out.path().join("blobs/sha256"))
            .unwrap()
            .count();
        assert_eq!(blobs, 0);
    }

    /// A file that reads shorter than its size says (as one truncated between the size
    /// check and the read would): refused, naming it, with no blob left behind. sysfs
    /// files claim 4096 bytes and read a few dozen.
    #[test]
    fn a_file_shorter_than_its_size_is_refused() {
        let src = std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled");
        if std::fs::metadata(src).map(|m| m.len()).ok() != Some(4096) {
            return;
        }
        let mut t = ImageTree::new();
        t.add_host(src, "/app/x").unwrap();
        let out = tempfile::tempdir().unwrap();
        let layout = Layout::create(out.path()).unwrap();
        for compression in [Compression::Gzip, Compression::None] {
            let opts = LayerOptions {
                compression,
                level: None,
                mtime: 0,
                threads: 2,
            };
            let e = write_layer(&t, &opts, &layout).unwrap_err().to_string();
            assert!(
                e.contains("transparent_hugepage/enabled shrank while it was being archived"),
                "{e}"
            );
        }
        let blobs = std::fs::read_dir(out.path().join("blobs/sha256")).unwrap();
        assert_eq!(blobs.count(), 0);
    }

    /// The tar that `tar::Builder` writes for `t`'s files on its own, for comparison.
    fn write_reference(b: &mut tar::Builder<Vec<u8>>, t: &ImageTree) {
        for (path, e) in t.entries() {
            let mut h = tar::Header::new_gnu();
            h.set_mode(e.mode);
            h.set_uid(e.uid as u64);
            h.set_gid(e.gid as u64);
            h.set_mtime(0);
            match &e.node {
                Node::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, path, io::empty()).unwrap();
                }
                Node::File {
                    content: Content::Host { path: src, .. },
                    size,
                } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(*size);
                    b.append_data(&mut h, path, std::fs::File::open(src).unwrap())
                        .unwrap();
                }
                _ => unreachable!("only directories and host files here"),
            }
        }
    }

    #[test]
    fn a_layer_labelled_with_another_format_is_named_so() {
        use image::LayerCompression as C;
        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        let zst = zstd::bulk::compress(&tar, 3).unwrap();
        let mut gz = Vec::new();
        {
            let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap();
        }
        let d = Digest::of(b"layer");
        let open = |b: &Vec<u8>, c| decompress(Box::new(io::Cursor::new(b.clone())), c, &d);
        for (bytes, said, is) in [
            (&zst, C::Gzip, "zstd"),
            (&gz, C::None, "gzip"),
            (&tar, C::Zstd, "an uncompressed tar"),
        ] {
            let e = open(bytes, said).err().expect("refused").to_string();
            assert!(e.contains(&format!("but its bytes are {is}")), "{e}");
        }
        // Labelled right, each reads back.
        for (bytes, c) in [(&zst, C::Zstd), (&gz, C::Gzip), (&tar, C::None)] {
            let mut out = Vec::new();
            open(bytes, c).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, tar);
        }
    }

    #[test]
    fn uncompressed_layer_digest_is_its_diff_id() {
        let mut t = ImageTree::new();
        t.add_bytes("/hello", b"hi", 0o644).unwrap();
        let l = build(&t, Compression::None, 1);
        assert_eq!(l.descriptor.digest, l.diff_id);
        assert_eq!(l.descriptor.size, l.uncompressed_size);
    }
}
