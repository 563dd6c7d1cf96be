//! Applying image layers to a root directory, safely against hostile layers. Every entry
//! name goes through [`classify`] (the one place names are validated, shared with every
//! other layer reader); every path is
//! resolved inside the root by [`InRoot`]; final components are created relative to
//! their parent's descriptor without following symlinks. Whiteouts remove only what lower
//! layers left inside the root, device nodes need root and `--devices`, setuid and setgid
//! bits need `--keep-setuid`, and the bytes read and written are capped so a small blob
//! cannot fill the disk.

use super::inroot::{self, c, InRoot, Stat};
use crate::digest::{Digest, HashReader};
use crate::error::{Error, IoContext, Result};
use crate::imagefs::name::{classify, clean_path, EntryName};
use crate::oci::io_to_error;
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::rc::Rc;

use crate::imagefs::walk::MAX_ENTRY_METADATA;

/// Caps on what unpacking may produce, against decompression bombs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most bytes of uncompressed tar read, and of file data written, over all layers.
    pub max_bytes: u64,
    /// Most entries over all layers.
    pub max_entries: u64,
    /// Most uncompressed bytes per compressed byte of one layer, above
    /// [`Limits::ratio_floor`] (the rule `check` and `tree` read layers by).
    pub max_ratio: u64,
    /// Uncompressed bytes a layer may always have, whatever its ratio.
    pub ratio_floor: u64,
}

impl Default for Limits {
    fn default() -> Self {
        let read = crate::imagefs::walk::Limits::default();
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
            max_ratio: read.max_ratio,
            ratio_floor: read.ratio_floor,
        }
    }
}

/// How entries are written.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExtractOptions {
    /// Give entries the owners the layer names (needs root; otherwise everything belongs
    /// to the user unpacking, who is root inside a rootless container).
    pub owners: bool,
    /// Keep setuid and setgid bits on files.
    pub keep_setuid: bool,
    /// Create character and block devices (needs root).
    pub devices: bool,
    /// Caps.
    pub limits: Limits,
}

/// What unpacking did.
#[derive(Clone, Debug, Default)]
pub struct ExtractStats {
    /// Entries read.
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Device nodes not created.
    pub skipped_devices: u64,
    /// Files whose setuid/setgid bits were dropped.
    pub setuid_dropped: u64,
    /// Whiteouts and opaque markers applied.
    pub whiteouts: u64,
    /// Entries of kinds nobase does not create (sockets, unknown types).
    pub skipped_other: u64,
}

fn shown(comps: &[Vec<u8>]) -> String {
    let mut s = String::from("/");
    s.push_str(&String::from_utf8_lossy(&comps.join(&b'/')));
    s
}

/// Shared byte counters between the tar reader and the extraction loop.
#[derive(Clone, Copy, Default)]
struct Counts {
    /// Uncompressed bytes read, all layers.
    read: u64,
    /// [`Counts::read`] when the current layer started.
    layer_start: u64,
    /// Where the current entry's headers started, while they are being read.
    header_start: Option<u64>,
    /// Where the current entry's data ends, and its 512-byte padding (in `read` terms).
    padding: (u64, u64),
}

/// The decompressed stream, counted: fails once the caps are passed, so a bomb stops at
/// the cap, and refuses more than [`MAX_ENTRY_METADATA`] of headers for one entry (the
/// tar reader holds long names and PAX records in memory).
struct Metered<R> {
    inner: R,
    counts: Rc<Cell<Counts>>,
    max: u64,
    /// Uncompressed bytes this layer may have (its ratio cap).
    layer_max: u64,
    /// The layer's blob size, for messages.
    compressed: u64,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut c = self.counts.get();
        if n == 0 && !buf.is_empty() {
            // The zeros are supplied outside the diff_id hash (inner hashes).
            let k = crate::imagefs::walk::missing_padding(c.read, c.padding, buf);
            c.read += k as u64;
            self.counts.set(c);
            return Ok(k);
        }
        c.read += n as u64;
        self.counts.set(c);
        if c.read > self.max {
            return Err(io::Error::other(Error::Invalid(format!(
                "the image unpacks to more than {} bytes (--max-size); refusing it as a decompression bomb",
                self.max
            ))));
        }
        if c.read - c.layer_start > self.layer_max {
            return Err(io::Error::other(Error::Invalid(format!(
                "a layer of {} compressed bytes expands to more than {} bytes: refusing it as a decompression bomb (--max-size SIZE unpacks an image you trust up to SIZE)",
                self.compressed, self.layer_max
            ))));
        }
        if let Some(start) = c.header_start {
            if c.read - start > MAX_ENTRY_METADATA {
                return Err(io::Error::other(Error::Invalid(format!(
                    "an entry's headers (long name or PAX records) exceed {MAX_ENTRY_METADATA} bytes"
                ))));
            }
        }
        Ok(n)
    }
}

/// Final mode and mtime of a directory, applied after all layers (children added later
/// would change the mtime, and a read-only mode would stop us adding them).
#[derive(Clone, Copy)]
struct DirMeta {
    mode: u32,
    mtime: i64,
}

/// Applies layers, bottom first, to a root directory.
pub struct Extractor<'a> {
    root: InRoot,
    opts: ExtractOptions,
    stats: ExtractStats,
    counts: Rc<Cell<Counts>>,
    dirs: BTreeMap<Vec<Vec<u8>>, DirMeta>,
    /// (device, inode) of everything the current layer wrote: whiteouts and opaque
    /// markers hide lower layers only, wherever they appear in the layer.
    written: HashSet<(u64, u64)>,
    cancelled: &'a dyn Fn() -> bool,
}

/// The metadata of one entry, read from its header.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

impl<'a> Extractor<'a> {
    /// Starts extracting into `rootfs`, an existing directory. `cancelled` is polled
    /// between entries (a signal arrived: stop early).
    pub fn new(
        rootfs: &Path,
        opts: ExtractOptions,
        cancelled: &'a dyn Fn() -> bool,
    ) -> Result<Extractor<'a>> {
        let root = InRoot::open(rootfs).io(|| format!("opening {}", rootfs.display()))?;
        Ok(Extractor {
            root,
            opts,
            stats: ExtractStats::default(),
            counts: Rc::new(Cell::new(Counts::default())),
            dirs: BTreeMap::new(),
            written: HashSet::new(),
            cancelled,
        })
    }

    /// Applies one layer's uncompressed tar stream, whose blob is `compressed` bytes
    /// (the ratio cap counts against it). `what` names it in errors; when `diff_id` is
    /// given, the stream must hash to it.
    pub fn apply_layer(
        &mut self,
        stream: Box<dyn Read + Send + '_>,
        compressed: u64,
        diff_id: Option<&Digest>,
        what: &str,
    ) -> Result<()> {
        self.written.clear();
        let layer_start = self.counts.get().read;
        let mut c = self.counts.get();
        c.layer_start = layer_start;
        self.counts.set(c);
        let limits = &self.opts.limits;
        let metered = Metered {
            inner: HashReader::new(stream),
            counts: self.counts.clone(),
            max: limits.max_bytes,
            layer_max: crate::imagefs::walk::Limits {
                max_ratio: limits.max_ratio,
                ratio_floor: limits.ratio_floor,
                ..Default::default()
            }
            .layer_cap(compressed),
            compressed,
        };
        let mut archive = tar::Archive::new(metered);
        let read_err = |e: io::Error| io_to_error(e, || format!("reading {what}"));
        {
            let mut entries = archive.entries().map_err(read_err)?;
            loop {
                if (self.cancelled)() {
                    return Err(Error::Invalid("interrupted".into()));
                }
                self.set_header_start(true);
                let Some(entry) = entries.next() else { break };
                let mut entry = entry.map_err(read_err)?;
                self.set_header_start(false);
                // Padding is to a multiple of 512 from the start of this layer's tar.
                let data_end = entry.raw_file_position().saturating_add(entry.size());
                let padded_end = data_end.saturating_add(511) & !511;
                let mut c = self.counts.get();
                c.padding = (
                    layer_start.saturating_add(data_end),
                    layer_start.saturating_add(padded_end),
                );
                self.counts.set(c);
                self.stats.entries += 1;
                if self.stats.entries > self.opts.limits.max_entries {
                    return Err(Error::Invalid(format!(
                        "the image has more than {} entries; refusing it",
                        self.opts.limits.max_entries
                    )));
                }
                self.entry(&mut entry, what)?;
                // Whatever data the entry had and we did not use (a directory with a
                // size, a skipped device) is read here, so header accounting stays exact.
                io::copy(&mut entry, &mut io::sink()).map_err(read_err)?;
            }
        }
        // Read to the very end: trailing padding belongs to the diff_id, and the blob's
        // own digest is checked only when its reader reaches the end.
        let mut metered = archive.into_inner();
        io::copy(&mut metered, &mut io::sink()).map_err(read_err)?;
        let (found, _) = metered.inner.finish();
        if let Some(want) = diff_id {
            if &found != want {
                return Err(Error::DigestMismatch {
                    what: format!("{what} (uncompressed, against the config's diff_id)"),
                    expected: want.clone(),
                    found,
                });
            }
        }
        Ok(())
    }

    fn set_header_start(&self, on: bool) {
        let mut c = self.counts.get();
        c.header_start = on.then_some(c.read);
        self.counts.set(c);
    }

    /// Applies the final directory modes and times, and returns what was done.
    pub fn finish(self) -> Result<ExtractStats> {
        // Deepest first: a parent made 0500 must not stop us reaching its children.
        for (comps, meta) in self.dirs.iter().rev() {
            let fd = match comps.split_last() {
                None => self.root.dir(&[], false),
                Some((leaf, parent)) => match self.root.dir(parent, false) {
                    Ok(Some(p)) => {
                        let name = c(leaf).map_err(|e| io_err(e, comps))?;
                        match inroot::lstat_at(p.as_raw_fd(), &name) {
                            Ok(Some(st)) if st.is_dir() => {
                                inroot::open_dir_at(p.as_raw_fd(), &name).map(Some)
                            }
                            // Replaced or removed by a later layer.
                            _ => Ok(None),
                        }
                    }
                    other => other,
                },
            }
            .map_err(|e| io_err(e, comps))?;
            if let Some(fd) = fd {
                inroot::fchmod(fd.as_raw_fd(), meta.mode)
                    .and_then(|()| inroot::futimes(fd.as_raw_fd(), meta.mtime))
                    .map_err(|e| io_err(e, comps))?;
            }
        }
        Ok(self.stats)
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, what: &str) -> Result<()> {
        let ambiguity = crate::imagefs::name::name_ambiguity(e);
        let raw = e.path_bytes().into_owned();
        let bad = |msg: String| {
            Error::Invalid(format!(
                "{what}: entry {:?}: {msg}; refusing the image",
                String::from_utf8_lossy(&raw)
            ))
        };
        if let Some(why) = ambiguity {
            return Err(bad(why));
        }
        match classify(&raw).map_err(bad)? {
            EntryName::Ignored => Ok(()),
            EntryName::Whiteout { dir, name } => {
                self.stats.whiteouts += 1;
                let Some(d) = self.root.dir(&dir, false).map_err(|e| io_err(e, &dir))? else {
                    return Ok(());
                };
                let written = &self.written;
                let cname = c(&name).map_err(|e| io_err(e, &dir))?;
                inroot::prune_at(d.as_raw_fd(), &cname, &|s: &Stat| written.contains(&s.id))
                    .map_err(|e| io_err(e, &dir))
            }
            EntryName::Opaque { dir } => {
                self.stats.whiteouts += 1;
                let Some(d) = self.root.dir(&dir, false).map_err(|e| io_err(e, &dir))? else {
                    return Ok(());
                };
                let written = &self.written;
                let keep = |s: &Stat| written.contains(&s.id);
                for child in inroot::list(d.as_raw_fd()).map_err(|e| io_err(e, &dir))? {
                    inroot::prune_at(d.as_raw_fd(), &child, &keep).map_err(|e| io_err(e, &dir))?;
                }
                Ok(())
            }
            EntryName::Path(comps) => self.write(e, comps, what),
        }
    }

    fn write<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        comps: Vec<Vec<u8>>,
        what: &str,
    ) -> Result<()> {
        let h = e.header();
        let kind = h.entry_type();
        let bad = |msg: &str| {
            Error::Invalid(format!(
                "{what}: entry {}: {msg}; refusing the image",
                shown(&comps)
            ))
        };
        let id = |r: io::Result<u64>, f: &str| -> Result<u32> {
            r.ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(&format!("invalid {f}")))
        };
        let meta = Meta {
            mode: h.mode().map_err(|_| bad("invalid mode"))? & 0o7777,
            uid: id(h.uid(), "uid")?,
            gid: id(h.gid(), "gid")?,
            mtime: h
                .mtime()
                .map(|t| t.min(i64::MAX as u64) as i64)
                .unwrap_or(0),
        };
        use tar::EntryType as T;
        let Some((leaf, parent)) = comps.split_last() else {
            // The root itself: only its metadata can change.
            if kind != T::Directory {
                return Err(bad("replaces the root directory with something else"));
            }
            if self.opts.owners {
                inroot::fchown(self.root.fd(), meta.uid, meta.gid)
                    .map_err(|e| io_err(e, &comps))?;
            }
            self.dirs.insert(
                comps.clone(),
                DirMeta {
                    mode: meta.mode,
                    mtime: meta.mtime,
                },
            );
            return Ok(());
        };
        let pfd = self
            .root
            .dir(parent, true)
            .map_err(|e| io_err(e, &comps))?
            .ok_or_else(|| bad("its directory cannot be created"))?;
        let p = pfd.as_raw_fd();
        let name = c(leaf).map_err(|e| io_err(e, &comps))?;
        let existing = inroot::lstat_at(p, &name).map_err(|e| io_err(e, &comps))?;
        let err = |e: io::Error| io_err(e, &comps);
        match kind {
            T::Directory => {
                match existing {
                    Some(st) if st.is_dir() => {}
                    Some(_) => inroot::remove_all_at(p, &name).map_err(err)?,
                    None => {}
                }
                inroot::mkdir_at(p, &name, 0o700).map_err(err)?;
                let fd = inroot::open_dir_at(p, &name).map_err(err)?;
                if self.opts.owners {
                    inroot::fchown(fd.as_raw_fd(), meta.uid, meta.gid).map_err(err)?;
                }
                self.mark(fd.as_raw_fd()).map_err(err)?;
                self.dirs.insert(
                    comps.clone(),
                    DirMeta {
                        mode: meta.mode,
                        mtime: meta.mtime,
                    },
                );
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                if existing.is_some() {
                    inroot::remove_all_at(p, &name).map_err(err)?;
                }
                let mut f = inroot::create_file_at(p, &name).map_err(err)?;
                let room = self.opts.limits.max_bytes.saturating_sub(self.stats.bytes);
                let n = io::copy(&mut (&mut *e).take(room.saturating_add(1)), &mut f)
                    .map_err(|e| io_to_error(e, || format!("{what}: writing {}", shown(&comps))))?;
                self.stats.bytes += n;
                if n > room {
                    return Err(Error::Invalid(format!(
                        "the image unpacks to more than {} bytes (--max-size); refusing it as a decompression bomb",
                        self.opts.limits.max_bytes
                    )));
                }
                let fd = f.as_raw_fd();
                if self.opts.owners {
                    inroot::fchown(fd, meta.uid, meta.gid).map_err(err)?;
                }
                inroot::fchmod(fd, self.file_mode(meta.mode)).map_err(err)?;
                inroot::futimes(fd, meta.mtime).map_err(err)?;
                self.mark(fd).map_err(err)?;
            }
            T::Symlink => {
                let target = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| bad("symlink without a target"))?;
                let target = CString::new(target).map_err(|_| bad("NUL in link target"))?;
                if existing.is_some() {
                    inroot::remove_all_at(p, &name).map_err(err)?;
                }
                // The target is stored as written: it is resolved inside the root, both
                // here (InRoot) and by the runtime (the container's own root).
                inroot::symlink_at(&target, p, &name).map_err(err)?;
                if self.opts.owners {
                    inroot::lchown_at(p, &name, meta.uid, meta.gid).map_err(err)?;
                }
                inroot::lutimes_at(p, &name, meta.mtime).map_err(err)?;
                if let Some(st) = inroot::lstat_at(p, &name).map_err(err)? {
                    self.written.insert(st.id);
                }
            }
            T::Link => {
                let raw = e
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .ok_or_else(|| bad("hard link without a target"))?;
                let target = clean_path(&raw).map_err(|m| bad(&format!("hard link target {m}")))?;
                let Some((tleaf, tparent)) = target.split_last() else {
                    return Err(bad("hard link to the root directory"));
                };
                let missing = || {
                    bad(&format!(
                        "hard link target {} is not in the image (a hard link may only point at an earlier entry inside it)",
                        shown(&target)
                    ))
                };
                let tfd = self
                    .root
                    .dir(tparent, false)
                    .map_err(|e| io_err(e, &target))?
                    .ok_or_else(missing)?;
                let tname = c(tleaf).map_err(|e| io_err(e, &target))?;
                let tst = inroot::lstat_at(tfd.as_raw_fd(), &tname)
                    .map_err(|e| io_err(e, &target))?
                    .ok_or_else(missing)?;
                if tst.is_dir() {
                    return Err(bad("hard link to a directory"));
                }
                match existing {
                    Some(st) if st.id == tst.id => {}
                    other => {
                        if other.is_some() {
                            inroot::remove_all_at(p, &name).map_err(err)?;
                        }
                        inroot::link_at(tfd.as_raw_fd(), &tname, p, &name).map_err(err)?;
                    }
                }
                self.written.insert(tst.id);
            }
            T::Char | T::Block => {
                let dev = match (e.header().device_major(), e.header().device_minor()) {
                    (Ok(Some(ma)), Ok(Some(mi))) => libc::makedev(ma, mi),
                    _ => return Err(bad("device without numbers")),
                };
                if !(self.opts.devices && self.opts.owners) {
                    self.stats.skipped_devices += 1;
                    return Ok(());
                }
                let ty = if kind == T::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                self.node(p, &name, existing, ty, dev, &meta).map_err(err)?;
            }
            T::Fifo => {
                self.node(p, &name, existing, libc::S_IFIFO, 0, &meta)
                    .map_err(err)?;
            }
            // Extension headers the tar reader did not fold into an entry carry nothing.
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => {}
            _ => self.stats.skipped_other += 1,
        }
        Ok(())
    }

    /// Creates a FIFO or device node.
    fn node(
        &mut self,
        p: RawFd,
        name: &std::ffi::CStr,
        existing: Option<Stat>,
        ty: u32,
        dev: u64,
        meta: &Meta,
    ) -> io::Result<()> {
        if existing.is_some() {
            inroot::remove_all_at(p, name)?;
        }
        inroot::mknod_at(p, name, ty | 0o600, dev)?;
        if self.opts.owners {
            inroot::lchown_at(p, name, meta.uid, meta.gid)?;
        }
        // We just made this node in this directory, so fchmodat (which would follow a
        // symlink) meets the node itself; opening it for fchmod could open a device.
        let mode = self.file_mode(meta.mode);
        // SAFETY: valid C string.
        if unsafe { libc::fchmodat(p, name.as_ptr(), mode, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        inroot::lutimes_at(p, name, meta.mtime)?;
        if let Some(st) = inroot::lstat_at(p, name)? {
            self.written.insert(st.id);
        }
        Ok(())
    }

    /// The mode a non-directory gets: setuid/setgid dropped unless asked to keep them.
    fn file_mode(&mut self, mode: u32) -> u32 {
        if !self.opts.keep_setuid && mode & 0o6000 != 0 {
            self.stats.setuid_dropped += 1;
            mode & !0o6000
        } else {
            mode
        }
    }

    fn mark(&mut self, fd: RawFd) -> io::Result<()> {
        self.written.insert(inroot::fstat(fd)?.id);
        Ok(())
    }
}

fn io_err(e: io::Error, comps: &[Vec<u8>]) -> Error {
    let why = match e.raw_os_error() {
        Some(libc::ENOTDIR) => " (a component on the way is not a directory)",
        Some(libc::ELOOP) => " (more than 40 symbolic links on the way)",
        _ => "",
    };
    Error::Io {
        action: format!("unpacking {}{why}", shown(comps)),
        cause: e,
    }
}
