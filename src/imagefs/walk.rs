//! One layer's entries, read once as a stream: the blob is verified (digest and size) as
//! it is read, decompressed, counted against the caps that stop decompression bombs,
//! hashed for its diff_id, and its tar entries handed out with normalized, validated
//! paths and whiteouts already classified. `check`, `tree` and `run` all read layers
//! through [`for_each_entry`], so hostile names are refused in one place.

use super::name::{classify, name_ambiguity, name_string, normalize_name, EntryName};
use crate::digest::{Digest, HashReader};
use crate::error::{Error, Result};
use crate::image::{self, Descriptor};
use crate::layer;
use crate::oci::{io_to_error, Blobs};
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

/// Caps on what reading an image's layers may cost. They bound memory, disk and time
/// for any input: a 1 MiB gzip of zeros or a layer of a million empty files stops at a
/// clear error instead of filling the machine.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most tar entries in all layers together.
    pub max_entries: u64,
    /// Most uncompressed bytes in all layers together.
    pub max_bytes: u64,
    /// Most uncompressed bytes per compressed byte of one layer, above
    /// [`Limits::ratio_floor`]: real layers compress 2–10×, bombs 1000×.
    pub max_ratio: u64,
    /// Uncompressed bytes a layer may always have, whatever its ratio.
    pub ratio_floor: u64,
    /// Most bytes of entry names (and link targets) in all layers together: readers keep
    /// every name, and 100,000 entries of 4,000-byte names took 840 MB to check.
    pub max_name_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 1 << 20,
            max_bytes: 64 << 30,
            max_ratio: 100,
            ratio_floor: 1 << 30,
            max_name_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// The most uncompressed bytes a layer whose blob is `compressed` bytes may expand
    /// to: [`Limits::max_ratio`] times its size, and never less than
    /// [`Limits::ratio_floor`]. Every reader that decompresses a layer stops there.
    pub fn layer_cap(&self, compressed: u64) -> u64 {
        compressed
            .saturating_mul(self.max_ratio)
            .max(self.ratio_floor)
    }
}

/// What the layers of one image have used of the [`Limits`] so far. Shared between the
/// threads that read layers in parallel.
#[derive(Debug, Default)]
pub struct Budget {
    limits: Limits,
    entries: AtomicU64,
    bytes: AtomicU64,
    name_bytes: AtomicU64,
}

impl Budget {
    /// A fresh budget under `limits`.
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            name_bytes: AtomicU64::new(0),
        }
    }

    /// Counts an entry whose name and link target take `name_len` bytes.
    fn add_entry(&self, layer: &Digest, name_len: usize) -> Result<()> {
        let n = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        if n > self.limits.max_entries {
            return Err(Error::Invalid(format!(
                "layer {layer}: the image has more than {} entries, more than nobase reads; it is corrupt or hostile",
                self.limits.max_entries
            )));
        }
        let names = self
            .name_bytes
            .fetch_add(name_len as u64, Ordering::Relaxed)
            + name_len as u64;
        if names > self.limits.max_name_bytes {
            return Err(Error::Invalid(format!(
                "layer {layer}: the image's entry names take more than {} bytes, more than nobase reads; it is corrupt or hostile",
                self.limits.max_name_bytes
            )));
        }
        Ok(())
    }
}

/// What a layer entry is, after whiteouts are recognized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of [`Entry::size`] bytes.
    File,
    /// A directory.
    Dir,
    /// A symbolic link and its target, as written (resolved later, inside the root).
    Symlink(String),
    /// A hard link to another path of the image (normalized like [`Entry::path`]).
    HardLink(String),
    /// A device, FIFO or socket.
    Other,
    /// A whiteout (`.wh.NAME`): [`Entry::path`] is the path it deletes from lower layers.
    Whiteout,
    /// An opaque-directory marker (`.wh..wh..opq`): [`Entry::path`] is the directory
    /// whose lower-layer contents are hidden.
    Opaque,
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Normalized path relative to the image root (`usr/bin/env`); empty for the root
    /// itself. Never contains `.`, `..` or empty components.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Data bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// At the end of a layer's stream, `pos` bytes in: fills `buf` with the zeros the last
/// entry's padding still lacks and returns how many, or 0. Some writers (umoci 0.4's
/// insert) end the tar right after the last file's data, without its padding or the end
/// blocks. Go's archive/tar, which umoci and containerd unpack with, accepts an end of
/// stream inside padding; so do the readers here (`tree`, `check`, `unpack`), supplying
/// the missing zeros — but never inside an entry's data. `padding` is where the current
/// entry's data ends and where its 512-byte padding ends.
pub(crate) fn missing_padding(pos: u64, padding: (u64, u64), buf: &mut [u8]) -> usize {
    let (data_end, padded_end) = padding;
    if pos < data_end || pos >= padded_end {
        return 0;
    }
    let k = (padded_end - pos).min(buf.len() as u64) as usize;
    buf[..k].fill(0);
    k
}

/// A layer's uncompressed stream: reads the blob through its verifying reader and the
/// decompressor, counts bytes against the budget and hashes them for the diff_id.
struct LayerStream<'a> {
    inner: HashReader<ReadAhead>,
    budget: &'a Budget,
    layer: Digest,
    /// Uncompressed bytes this layer may have (its ratio cap).
    layer_cap: u64,
    /// Bytes handed to the tar reader (real ones and padding supplied at EOF).
    pos: u64,
    /// Where the current entry's data ends, and its 512-byte padding.
    padding: &'a std::cell::Cell<(u64, u64)>,
    /// While the tar reader reads entries: the bytes between one entry's data and the
    /// next's are its headers, which the reader holds in memory, so they are capped.
    headers_capped: bool,
}

/// Most bytes of headers, long names and PAX records before one entry: the tar reader
/// holds them in memory (a 400 MiB GNU long name took 1.25 GB to refuse).
pub const MAX_ENTRY_METADATA: u64 = 1 << 20;

impl Read for LayerStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let k = missing_padding(self.pos, self.padding.get(), buf);
            self.pos += k as u64;
            return Ok(k);
        }
        self.pos += n as u64;
        if self.headers_capped && self.pos > self.padding.get().1.saturating_add(MAX_ENTRY_METADATA)
        {
            return Err(io::Error::other(Error::Invalid(format!(
                "layer {}: an entry's headers (long name or PAX records) exceed {MAX_ENTRY_METADATA} bytes",
                self.layer
            ))));
        }
        let total = self.budget.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let limits = &self.budget.limits;
        if self.inner.count() > self.layer_cap {
            return Err(io::Error::other(Error::Invalid(format!(
                "layer {} expands to more than {} bytes, over {}× its compressed size: a decompression bomb, or a layer too sparse for nobase to read (--max-size SIZE reads an image you trust up to SIZE)",
                self.layer, self.layer_cap, limits.max_ratio
            ))));
        }
        if total > limits.max_bytes {
            return Err(io::Error::other(Error::Invalid(format!(
                "layer {}: the image's layers expand to more than {} bytes, more than nobase reads",
                self.layer, limits.max_bytes
            ))));
        }
        Ok(n)
    }
}

/// Reads every entry of the layer `desc` (whose uncompressed digest should be
/// `diff_id`), calling `f` with each entry and a reader of its data. The blob is verified
/// to the end, and the diff_id too, even when `f` reads no data. Entries whose names
/// climb out of the root, malformed whiteouts and links are refused with an error naming
/// the layer and the entry. When the layer cannot be read, a digest mismatch of the blob
/// is reported in preference to the decompressor's complaint it caused.
pub fn for_each_entry(
    blobs: &dyn Blobs,
    desc: &Descriptor,
    diff_id: Option<&Digest>,
    budget: &Budget,
    f: impl FnMut(Entry, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    for_each_entry_stats(blobs, desc, diff_id, budget, f).map(|_| ())
}

/// What reading a whole layer found out about its uncompressed stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerStats {
    /// The sha256 of the uncompressed stream (what the config's diff_id should be).
    pub diff_id: Digest,
    /// Bytes of the uncompressed stream (tar headers, data, padding, end blocks).
    pub uncompressed_size: u64,
}

/// [`for_each_entry`], also returning the uncompressed stream's digest and size (which
/// `tree` reports per layer).
pub fn for_each_entry_stats(
    blobs: &dyn Blobs,
    desc: &Descriptor,
    diff_id: Option<&Digest>,
    budget: &Budget,
    mut f: impl FnMut(Entry, &mut dyn Read) -> Result<()>,
) -> Result<LayerStats> {
    let res = walk(blobs, desc, diff_id, budget, &mut f);
    match res {
        Err(e) if !matches!(e, Error::DigestMismatch { .. }) => {
            // A corrupt or truncated blob usually breaks decompression before its digest
            // can be checked at the end; read it once more, verified, to name the cause.
            let again = blobs.open(desc).and_then(|mut r| {
                io::copy(&mut r, &mut io::sink())
                    .map_err(|e| io_to_error(e, || format!("reading layer {}", desc.digest)))
            });
            match again {
                Err(d @ (Error::DigestMismatch { .. } | Error::Invalid(_))) => Err(d),
                _ => Err(e),
            }
        }
        other => other,
    }
}

fn walk(
    blobs: &dyn Blobs,
    desc: &Descriptor,
    diff_id: Option<&Digest>,
    budget: &Budget,
    f: &mut dyn FnMut(Entry, &mut dyn Read) -> Result<()>,
) -> Result<LayerStats> {
    let compression = image::layer_compression(&desc.media_type).ok_or_else(|| {
        Error::Invalid(format!(
            "layer {} has media type {:?}, which is not a layer nobase can read",
            desc.digest, desc.media_type
        ))
    })?;
    let limits = budget.limits;
    let padding = std::cell::Cell::new((0, 0));
    let source = layer::decompress(blobs.open(desc)?, compression, &desc.digest)?;
    // Decompression (with the blob's own verification) runs in a thread of its own,
    // so it overlaps the diff_id hashing, tar parsing and spooling done here: on two
    // cores that nearly halves the time to read a large layer.
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        s.spawn(move || read_ahead(source, tx));
        let mut stream = LayerStream {
            inner: HashReader::new(ReadAhead {
                rx,
                buf: Vec::new(),
                pos: 0,
                done: false,
            }),
            budget,
            layer: desc.digest.clone(),
            layer_cap: limits.layer_cap(desc.size),
            pos: 0,
            padding: &padding,
            headers_capped: true,
        };
        let ctx = |what: &str| {
            let d = desc.digest.clone();
            let what = what.to_string();
            move || format!("{what} layer {d}")
        };
        {
            let mut archive = tar::Archive::new(&mut stream);
            let entries = archive
                .entries()
                .map_err(|e| io_to_error(e, ctx("reading")))?;
            for entry in entries {
                let mut entry =
                    entry.map_err(|e| io_to_error(e, ctx("decompressing and reading")))?;
                let name_len =
                    entry.path_bytes().len() + entry.link_name_bytes().map_or(0, |t| t.len());
                budget.add_entry(&desc.digest, name_len)?;
                if let Some(why) = name_ambiguity(&mut entry) {
                    return Err(Error::Invalid(format!(
                        "layer {}: entry {} {why}; nobase refuses to read the layer",
                        desc.digest,
                        shown_name(&name_string(&entry.path_bytes()))
                    )));
                }
                let data_end = entry.raw_file_position().saturating_add(entry.size());
                padding.set((data_end, data_end.saturating_add(511) & !511));
                if let Some(e) = describe(&entry, &desc.digest)? {
                    f(e, &mut entry)?;
                }
            }
        }
        // Read to the very end: trailing padding after the tar's end blocks belongs to the
        // diff_id, and the blob's digest is checked only when its reader reaches EOF.
        // (Streamed to nowhere: no header is held any more.)
        stream.headers_capped = false;
        io::copy(&mut stream, &mut io::sink()).map_err(|e| io_to_error(e, ctx("reading")))?;
        let (found, uncompressed_size) = stream.inner.finish();
        if let Some(want) = diff_id {
            if &found != want {
                return Err(Error::DigestMismatch {
                    what: format!("layer {} (uncompressed, its diff_id)", desc.digest),
                    expected: want.clone(),
                    found,
                });
            }
        }
        Ok(LayerStats {
            diff_id: found,
            uncompressed_size,
        })
    })
}

/// Bytes handed from the decompressing thread at a time.
const CHUNK: usize = 1 << 20;

/// Reads `src` to its end in chunks, sending each; an empty chunk marks the end. Stops
/// when the receiver is gone (the layer's reader gave up).
fn read_ahead(mut src: Box<dyn Read + Send + '_>, tx: SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0;
        let res = loop {
            match src.read(&mut buf[n..]) {
                Ok(0) => break Ok(()),
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(n);
        let last = n == 0;
        let msg = match res {
            Ok(()) => Ok(buf),
            Err(e) => Err(e),
        };
        let failed = msg.is_err();
        if tx.send(msg).is_err() || last || failed {
            return;
        }
    }
}

/// The receiving end of [`read_ahead`].
struct ReadAhead {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) if b.is_empty() => self.done = true,
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the layer decompressor stopped"));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A name for a message: quoted, and cut after 200 characters (a hostile name may be a
/// megabyte long).
pub fn shown_name(name: &str) -> String {
    match crate::tree::cut(name, 200) {
        Some(head) => format!("{head:?}… ({} bytes)", name.len()),
        None => format!("{name:?}"),
    }
}

/// Turns a tar entry into an [`Entry`], or `None` for entries that carry no file (PAX
/// global headers, AUFS metadata, unknown types).
fn describe<R: Read>(entry: &tar::Entry<R>, layer: &Digest) -> Result<Option<Entry>> {
    use tar::EntryType as T;
    let raw = name_string(&entry.path_bytes());
    let bad = |why: String| {
        Error::Invalid(format!(
            "layer {layer}: entry {} {why}; the layer is corrupt or hostile, so nobase refuses to read it",
            shown_name(&raw)
        ))
    };
    let h = entry.header();
    let joined = |c: &[Vec<u8>]| name_string(&c.join(&b'/'));
    let (path, whiteout) = match classify(&entry.path_bytes()).map_err(bad)? {
        EntryName::Ignored => return Ok(None),
        EntryName::Path(comps) => (joined(&comps), None),
        EntryName::Whiteout { mut dir, name } => {
            dir.push(name);
            (joined(&dir), Some(EntryKind::Whiteout))
        }
        EntryName::Opaque { dir } => (joined(&dir), Some(EntryKind::Opaque)),
    };
    let mut kind = match h.entry_type() {
        T::Regular | T::Continuous | T::GNUSparse => EntryKind::File,
        T::Directory => EntryKind::Dir,
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .map(|b| name_string(&b))
                .unwrap_or_default();
            if target.is_empty() || target.contains('\0') {
                return Err(bad(
                    "is a symlink with an empty or NUL-bearing target".into()
                ));
            }
            EntryKind::Symlink(target)
        }
        T::Link => {
            let raw_target = entry.link_name_bytes().unwrap_or_default();
            let target = normalize_name(&raw_target).map_err(|why| {
                bad(format!(
                    "is a hard link whose target {:?} {why}",
                    name_string(&raw_target)
                ))
            })?;
            if target.is_empty() {
                return Err(bad("is a hard link to the root directory".into()));
            }
            EntryKind::HardLink(target)
        }
        T::Char | T::Block | T::Fifo => EntryKind::Other,
        _ => return Ok(None),
    };
    if let Some(k) = whiteout {
        kind = k;
    }
    if path.is_empty() && kind != EntryKind::Dir && kind != EntryKind::Opaque {
        return Err(bad("names the image root but is not a directory".into()));
    }
    let num = |v: io::Result<u64>| v.ok().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    Ok(Some(Entry {
        size: if kind == EntryKind::File {
            entry.size()
        } else {
            0
        },
        mode: h.mode().unwrap_or(0) & 0o7777,
        uid: num(h.uid()),
        gid: num(h.gid()),
        mtime: h.mtime().unwrap_or(0),
        path,
        kind,
    }))
}

#[cfg(test)]
mod tests {
    use super::missing_padding;

    #[test]
    fn missing_padding_is_supplied_only_inside_the_padding() {
        // An entry whose data ends at 1000: padding runs to 1024.
        let mut buf = [9u8; 64];
        // Ended inside the data: nothing is made up.
        assert_eq!(missing_padding(999, (1000, 1024), &mut buf), 0);
        assert_eq!(buf[0], 9);
        // Ended right after the data: the 24 zeros, no more.
        assert_eq!(missing_padding(1000, (1000, 1024), &mut buf), 24);
        assert!(buf[..24].iter().all(|&b| b == 0) && buf[24] == 9);
        // A short buffer takes what fits; the rest comes on the next read.
        let mut small = [9u8; 10];
        assert_eq!(missing_padding(1010, (1000, 1024), &mut small), 10);
        assert_eq!(missing_padding(1020, (1000, 1024), &mut small), 4);
        // At or past the padding's end, or with an entry that needs none: the end.
        assert_eq!(missing_padding(1024, (1000, 1024), &mut buf), 0);
        assert_eq!(missing_padding(512, (512, 512), &mut buf), 0);
    }
}
