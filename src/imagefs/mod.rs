//! An image's layers merged into one read-only tree ([`ImageFs`]) without extracting
//! anything to disk: each layer is read once (in parallel), its entries indexed and the
//! bytes of the files that matter kept in an unlinked spool file, then the layers are
//! applied in order — whiteouts and opaque directories first, against the layers below,
//! then the layer's own entries, whose parent directories are resolved *inside* the
//! tree, so a symlink to `/` or `../..` can never make an entry land outside it.
//! [`ImageFs`] is a [`Root`], so the loader rules and the start-up check run on it.

pub mod name;
pub mod walk;

use crate::elf::ReadAt;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::image::PlatformImage;
use crate::oci::Blobs;
use crate::root::{self, FileType, Meta, ResolveError, Root};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use walk::{Budget, Entry, EntryKind, Limits};

pub use walk::for_each_entry;

/// Which file contents an [`ImageFs`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Every byte of every file (for extracting or copying).
    All,
    /// What a start-up check reads: every ELF file and script whole, every small file
    /// and everything under `/etc` whole, and of other large files only their first
    /// [`HEAD`] bytes. Reading past
    /// what was kept fails with an error that says so.
    Programs,
}

/// Bytes kept of every file, whatever [`Keep`] says.
pub const HEAD: u64 = 4096;
/// Files up to this size are kept whole under [`Keep::Programs`] (configuration,
/// `ld.so.cache`, passwd…).
const SMALL: u64 = 1 << 20;

/// How to read an image.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Which contents to keep.
    pub keep: Keep,
    /// Caps on entries and bytes.
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            keep: Keep::Programs,
            limits: Limits::default(),
        }
    }
}

#[derive(Clone, Debug)]
enum Data {
    Dir(BTreeMap<String, usize>),
    File {
        spool: usize,
        offset: u64,
        kept: u64,
    },
    Symlink(String),
    Other,
}

#[derive(Clone, Debug)]
struct Node {
    meta: Meta,
    data: Data,
}

/// One layer, read and indexed: its entries in order, with where their kept bytes lie
/// in the layer's spool.
struct LayerIndex {
    entries: Vec<(Entry, u64, u64)>,
    spool: File,
}

/// An image's merged, read-only filesystem.
pub struct ImageFs {
    name: String,
    nodes: Vec<Node>,
    spools: Vec<File>,
}

fn dir_meta(mode: u32, uid: u32, gid: u32) -> Meta {
    Meta {
        kind: FileType::Dir,
        mode,
        uid,
        gid,
        size: 0,
    }
}

impl ImageFs {
    /// Reads the layers of `image` from `blobs` (each verified against its digest and
    /// diff_id) into a merged view named `name` in messages.
    pub fn load(
        name: &str,
        image: &PlatformImage,
        blobs: &dyn Blobs,
        opts: &Options,
    ) -> Result<ImageFs> {
        let layers = &image.manifest.layers;
        let diff_ids = &image.config.rootfs.diff_ids;
        let budget = Budget::new(opts.limits);
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(layers.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        // Set when a layer fails: the others need not be read.
        let failed = std::sync::atomic::AtomicBool::new(false);
        let mut results: Vec<Option<Result<LayerIndex>>> =
            (0..layers.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= layers.len()
                                || failed.load(std::sync::atomic::Ordering::Relaxed)
                            {
                                break;
                            }
                            let r =
                                index_layer(blobs, &layers[i], diff_ids.get(i), &budget, opts.keep);
                            let bad = r.is_err();
                            done.push((i, r));
                            if bad {
                                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                        }
                        done
                    })
                })
                .collect();
            for h in handles {
                // A worker only panics on a bug; surface it rather than hide it.
                for (i, r) in h.join().expect("layer reader panicked") {
                    results[i] = Some(r);
                }
            }
        });
        let mut fs = ImageFs {
            name: name.to_string(),
            nodes: vec![Node {
                meta: dir_meta(0o755, 0, 0),
                data: Data::Dir(BTreeMap::new()),
            }],
            spools: Vec::new(),
        };
        for (i, r) in results.into_iter().enumerate() {
            let idx = match r {
                Some(r) => r?,
                // Left unread because another layer failed: this loop returns that
                // failure when it reaches it, so nothing partial is ever used.
                None => continue,
            };
            fs.spools.push(idx.spool);
            let spool = fs.spools.len() - 1;
            fs.apply(&layers[i].digest.to_string(), idx.entries, spool)?;
        }
        Ok(fs)
    }

    /// Applies one layer: deletions (whiteouts, opaque directories) against the layers
    /// below first, then the layer's own entries in order.
    fn apply(&mut self, layer: &str, entries: Vec<(Entry, u64, u64)>, spool: usize) -> Result<()> {
        for (e, ..) in entries.iter() {
            match e.kind {
                EntryKind::Whiteout => self.whiteout(&e.path),
                EntryKind::Opaque => {
                    if let Ok(real) = root::resolve(self, &format!("/{}", e.path)) {
                        if let Some(id) = self.lookup(&real) {
                            if let Data::Dir(children) = &mut self.nodes[id].data {
                                children.clear();
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        for (e, offset, kept) in entries {
            let bad = |why: String| {
                Error::Invalid(format!(
                    "layer {layer}: entry /{} {why}; the layer is corrupt or hostile",
                    e.path
                ))
            };
            let meta = Meta {
                kind: FileType::Other,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                size: e.size,
            };
            let node = match &e.kind {
                EntryKind::Whiteout | EntryKind::Opaque => continue,
                EntryKind::Dir if e.path.is_empty() => {
                    self.nodes[0].meta = dir_meta(e.mode, e.uid, e.gid);
                    continue;
                }
                EntryKind::Dir => Node {
                    meta: dir_meta(e.mode, e.uid, e.gid),
                    data: Data::Dir(BTreeMap::new()),
                },
                EntryKind::File => Node {
                    meta: Meta {
                        kind: FileType::File,
                        ..meta
                    },
                    data: Data::File {
                        spool,
                        offset,
                        kept,
                    },
                },
                EntryKind::Symlink(t) => Node {
                    meta: Meta {
                        kind: FileType::Symlink,
                        size: t.len() as u64,
                        ..meta
                    },
                    data: Data::Symlink(t.clone()),
                },
                EntryKind::Other => Node {
                    meta,
                    data: Data::Other,
                },
                EntryKind::HardLink(target) => {
                    let real = root::resolve_nofollow(self, &format!("/{target}"))
                        .map_err(|err| {
                            bad(format!(
                                "is a hard link to /{target}, which the layers below do not have ({err})"
                            ))
                        })?;
                    let id = self.lookup(&real).ok_or_else(|| {
                        bad(format!("is a hard link to /{target}, which does not exist"))
                    })?;
                    if let Data::Dir(_) = self.nodes[id].data {
                        return Err(bad(format!("is a hard link to the directory /{target}")));
                    }
                    self.nodes[id].clone()
                }
            };
            let (parent, name) = match e.path.rfind('/') {
                Some(i) => (format!("/{}", &e.path[..i]), &e.path[i + 1..]),
                None => ("/".to_string(), e.path.as_str()),
            };
            let dir = self.ensure_dir(&parent).map_err(bad)?;
            let existing = self.child(dir, name);
            if let (Some(old), Data::Dir(_)) = (existing, &node.data) {
                if let Data::Dir(_) = self.nodes[old].data {
                    // A directory over a directory updates its metadata, keeping what the
                    // layers below put in it.
                    self.nodes[old].meta = node.meta;
                    continue;
                }
            }
            self.nodes.push(node);
            let id = self.nodes.len() - 1;
            if let Data::Dir(children) = &mut self.nodes[dir].data {
                children.insert(name.to_string(), id);
            }
        }
        Ok(())
    }

    /// Deletes what a whiteout names, resolving its parent directory inside the tree.
    fn whiteout(&mut self, path: &str) {
        let (parent, name) = match path.rfind('/') {
            Some(i) => (format!("/{}", &path[..i]), &path[i + 1..]),
            None => ("/".to_string(), path),
        };
        let Ok(real) = root::resolve(self, &parent) else {
            return;
        };
        if let Some(id) = self.lookup(&real) {
            if let Data::Dir(children) = &mut self.nodes[id].data {
                children.remove(name);
            }
        }
    }

    /// The directory at `path`, following symlinks inside the tree and creating missing
    /// directories as a tar extractor would.
    fn ensure_dir(&mut self, path: &str) -> std::result::Result<usize, String> {
        if let Some(id) = self.lookup(path) {
            if let Data::Dir(_) = self.nodes[id].data {
                return Ok(id);
            }
        }
        // Each round creates one missing directory; a path has at most a few thousand
        // components and 40 symlink hops, so this bound is never reached honestly.
        for _ in 0..4096 {
            match root::resolve(self, path) {
                Ok(real) => {
                    let id = self.lookup(&real).ok_or("vanished while being resolved")?;
                    return match self.nodes[id].data {
                        Data::Dir(_) => Ok(id),
                        _ => Err(format!("has a parent {real} that is not a directory")),
                    };
                }
                Err(ResolveError::NotFound { at }) => {
                    let (dir, name) = match at.rfind('/') {
                        Some(0) => ("/", &at[1..]),
                        Some(i) => (&at[..i], &at[i + 1..]),
                        None => return Err(format!("has an unresolvable parent {at}")),
                    };
                    let dir_id = self
                        .lookup(dir)
                        .ok_or_else(|| format!("has an unresolvable parent {at}"))?;
                    self.nodes.push(Node {
                        meta: dir_meta(0o755, 0, 0),
                        data: Data::Dir(BTreeMap::new()),
                    });
                    let id = self.nodes.len() - 1;
                    match &mut self.nodes[dir_id].data {
                        Data::Dir(children) => {
                            children.insert(name.to_string(), id);
                        }
                        _ => return Err(format!("has a parent {dir} that is not a directory")),
                    }
                }
                Err(e) => return Err(format!("cannot be placed: {e}")),
            }
        }
        Err("has a parent path that never resolves".into())
    }

    fn child(&self, dir: usize, name: &str) -> Option<usize> {
        match &self.nodes[dir].data {
            Data::Dir(children) => children.get(name).copied(),
            _ => None,
        }
    }

    /// The node at a normalized path whose directories are real directories.
    fn lookup(&self, path: &str) -> Option<usize> {
        let mut id = 0;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            id = self.child(id, comp)?;
        }
        Some(id)
    }

    /// Number of entries in the merged tree (directories included, the root not).
    pub fn len(&self) -> usize {
        fn count(fs: &ImageFs, id: usize) -> usize {
            match &fs.nodes[id].data {
                Data::Dir(c) => c.values().map(|&i| 1 + count(fs, i)).sum(),
                _ => 0,
            }
        }
        count(self, 0)
    }

    /// True when the image has no entries at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads one layer into an index and a spool of kept bytes.
fn index_layer(
    blobs: &dyn Blobs,
    desc: &crate::image::Descriptor,
    diff_id: Option<&crate::digest::Digest>,
    budget: &Budget,
    keep: Keep,
) -> Result<LayerIndex> {
    let tmp = std::env::temp_dir();
    let (file, path) = fsutil::create_temp(&tmp)?;
    // Unlinked at once: the spool vanishes with the process, however it ends.
    std::fs::remove_file(&path).io(|| format!("removing {}", path.display()))?;
    fsutil::untrack(&path);
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut entries = Vec::new();
    let spool_err = |e: io::Error| Error::Io {
        action: format!("writing a spool file in {}", tmp.display()),
        cause: e,
    };
    for_each_entry(blobs, desc, diff_id, budget, |entry, data| {
        let start = offset;
        if entry.kind == EntryKind::File {
            let mut head = Vec::with_capacity(HEAD.min(entry.size) as usize);
            data.take(HEAD).read_to_end(&mut head).map_err(|e| {
                crate::oci::io_to_error(e, || format!("reading layer {}", desc.digest))
            })?;
            out.write_all(&head).map_err(spool_err)?;
            offset += head.len() as u64;
            // Configuration (passwd, ld.so.cache, ld.so.conf…) is read whole by the
            // loader rules and the check, whatever its size.
            let whole = keep == Keep::All
                || entry.size <= SMALL
                || crate::elf::has_magic(&head)
                || head.starts_with(b"#!")
                || entry.path.starts_with("etc/");
            if whole {
                offset += io::copy(data, &mut out).map_err(|e| {
                    crate::oci::io_to_error(e, || format!("reading layer {}", desc.digest))
                })?;
            }
        }
        let kept = offset - start;
        entries.push((entry, start, kept));
        Ok(())
    })?;
    let spool = out.into_inner().map_err(|e| spool_err(e.into_error()))?;
    Ok(LayerIndex { entries, spool })
}

/// A kept file's bytes in a spool, read with `pread`.
struct Spooled<'a> {
    file: &'a File,
    offset: u64,
    size: u64,
    kept: u64,
    path: String,
}

impl ReadAt for Spooled<'_> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        if end > self.size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if end > self.kept {
            return Err(io::Error::other(format!(
                "{}: only its first {} bytes were read from the image (it is neither a program nor a small file)",
                self.path, self.kept
            )));
        }
        self.file.read_exact_at(buf, self.offset + offset)
    }
}

impl Root for ImageFs {
    fn lstat(&self, path: &str) -> Option<Meta> {
        self.lookup(path).map(|id| self.nodes[id].meta)
    }

    fn readlink(&self, path: &str) -> Option<String> {
        match &self.nodes[self.lookup(path)?].data {
            Data::Symlink(t) => Some(t.clone()),
            _ => None,
        }
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn ReadAt + '_>> {
        let id = self.lookup(path).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{path} does not exist"))
        })?;
        match &self.nodes[id].data {
            Data::File {
                spool,
                offset,
                kept,
            } => Ok(Box::new(Spooled {
                file: &self.spools[*spool],
                offset: *offset,
                size: self.nodes[id].meta.size,
                kept: *kept,
                path: path.to_string(),
            })),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} is not a regular file"),
            )),
        }
    }

    fn list(&self, path: &str) -> Option<Vec<String>> {
        match &self.nodes[self.lookup(path)?].data {
            Data::Dir(children) => Some(children.keys().cloned().collect()),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        format!("image {}", self.name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::image::{self, Descriptor, ImageConfig, Manifest};
    use crate::oci::Layout;

    /// One raw tar entry: the name and link name are written as bytes, unvalidated, so
    /// hostile names can be made.
    fn entry(name: &str, kind: tar::EntryType, data: &[u8], link: &str, mode: u32) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn file(name: &str, data: &[u8]) -> Vec<u8> {
        entry(name, tar::EntryType::Regular, data, "", 0o755)
    }
    fn dir(name: &str) -> Vec<u8> {
        entry(name, tar::EntryType::Directory, b"", "", 0o755)
    }
    fn symlink(name: &str, target: &str) -> Vec<u8> {
        entry(name, tar::EntryType::Symlink, b"", target, 0o777)
    }
    fn hardlink(name: &str, target: &str) -> Vec<u8> {
        entry(name, tar::EntryType::Link, b"", target, 0o644)
    }

    /// An image whose layers are `tars` (whole, uncompressed), written into `layout`.
    /// Shared with the other readers' tests (`explore`).
    pub(crate) fn image_of(layout: &Layout, tars: &[Vec<u8>]) -> PlatformImage {
        let mut descs = Vec::new();
        let mut config = ImageConfig::default();
        for tar in tars {
            let desc = layout.put_bytes(image::MT_OCI_LAYER, tar).unwrap();
            config.rootfs.diff_ids.push(desc.digest.clone());
            descs.push(desc);
        }
        PlatformImage {
            descriptor: Descriptor::new(image::MT_OCI_MANIFEST, Digest::of(b""), 0),
            manifest: Manifest {
                schema_version: 2,
                media_type: None,
                config: Descriptor::new(image::MT_OCI_CONFIG, Digest::of(b""), 0),
                layers: descs,
                annotations: Default::default(),
                artifact_type: None,
            },
            config,
        }
    }

    /// Writes each layer (a list of entries) uncompressed into a fresh layout and loads
    /// the image.
    fn load_with(layers: &[Vec<Vec<u8>>], opts: &Options) -> (tempfile::TempDir, Result<ImageFs>) {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::create(d.path()).unwrap();
        let tars: Vec<Vec<u8>> = layers
            .iter()
            .map(|l| [l.concat(), vec![0; 1024]].concat())
            .collect();
        let pi = image_of(&layout, &tars);
        let fs = ImageFs::load("test", &pi, &layout, opts);
        (d, fs)
    }

    fn load(layers: &[Vec<Vec<u8>>]) -> ImageFs {
        let (_d, fs) = load_with(layers, &Options::default());
        fs.unwrap()
    }

    fn refused(layers: &[Vec<Vec<u8>>]) -> String {
        let (_d, fs) = load_with(layers, &Options::default());
        match fs {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn content(fs: &ImageFs, path: &str) -> Vec<u8> {
        let real = root::resolve(fs, path).unwrap();
        root::read_file(fs, &real, 1 << 20).unwrap()
    }

    #[test]
    fn whiteouts_and_opaque_directories_apply_to_lower_layers_only() {
        let fs = load(&[
            vec![
                dir("app/"),
                file("app/a", b"a"),
                file("app/b", b"b"),
                dir("var/"),
                file("var/old", b"o"),
            ],
            // The whiteout of `a` comes after a new `a` in the same layer: the new one
            // stays (whiteouts hide lower layers only, whatever the order).
            vec![
                file("app/a", b"new"),
                file("app/.wh.a", b""),
                file("app/.wh.b", b""),
                file("var/new", b"n"),
                file("var/.wh..wh..opq", b""),
            ],
        ]);
        assert_eq!(content(&fs, "/app/a"), b"new");
        assert!(fs.lstat("/app/b").is_none());
        assert_eq!(fs.list("/var").unwrap(), vec!["new"]);
        assert!(fs.lstat("/app/.wh.a").is_none());
    }

    #[test]
    fn entries_land_inside_the_root_whatever_symlinks_say() {
        let fs = load(&[
            vec![
                symlink("escape", "../../../../.."),
                symlink("abs", "/"),
                symlink("bin", "usr/bin"),
                file("/etc/hostname", b"inside"),
            ],
            vec![
                file("escape/evil", b"e"),
                file("abs/tmp/evil2", b"e2"),
                file("bin/tool", b"t"),
                symlink("link", "/etc/hostname"),
            ],
        ]);
        // Written through the symlinks, but inside the image.
        assert_eq!(content(&fs, "/evil"), b"e");
        assert_eq!(content(&fs, "/tmp/evil2"), b"e2");
        assert_eq!(content(&fs, "/usr/bin/tool"), b"t");
        // Absolute names are taken relative to the root; links resolve inside it.
        assert_eq!(content(&fs, "/link"), b"inside");
    }

    #[test]
    fn hard_links_share_content_and_stay_inside() {
        let fs = load(&[vec![file("app/x", b"data"), hardlink("app/y", "app/x")]]);
        assert_eq!(content(&fs, "/app/y"), b"data");
        for bad in [
            vec![hardlink("y", "../../etc/shadow")],
            vec![hardlink("y", "missing")],
            vec![dir("d/"), hardlink("y", "d")],
        ] {
            let e = refused(&[bad]);
            assert!(e.contains("hard link"), "{e}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for (layer, why) in [
            (vec![file("../x", b"")], "'..'"),
            (vec![file("a/../../x", b"")], "'..'"),
            (vec![file("../.wh.x", b"")], "'..'"),
            (vec![file("app/.wh.", b"")], "whiteout"),
            (vec![file("app/.wh..", b"")], "whiteout"),
            (vec![symlink("s", "")], "empty"),
            (vec![file("f", b"x"), file("f/g", b"")], "not a directory"),
        ] {
            let e = refused(&[layer]);
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn directories_and_files_replace_each_other() {
        let fs = load(&[
            vec![dir("a/"), file("a/x", b""), file("b", b"")],
            vec![file("a", b"file now"), dir("b/"), file("b/y", b"")],
        ]);
        assert_eq!(fs.lstat("/a").unwrap().kind, FileType::File);
        assert_eq!(fs.list("/b").unwrap(), vec!["y"]);
    }

    #[test]
    fn caps_stop_bombs_and_floods() {
        let tiny = Options {
            keep: Keep::Programs,
            limits: Limits {
                max_entries: 10,
                ..Limits::default()
            },
        };
        let many: Vec<Vec<u8>> = (0..20).map(|i| file(&format!("f{i}"), b"")).collect();
        let (_d, r) = load_with(&[many], &tiny);
        assert!(r
            .err()
            .unwrap()
            .to_string()
            .contains("more than 10 entries"));
        // Names are kept: their bytes are capped too.
        let names = Options {
            keep: Keep::Programs,
            limits: Limits {
                max_name_bytes: 1000,
                ..Limits::default()
            },
        };
        let long: Vec<Vec<u8>> = (0..20)
            .map(|i| file(&format!("{i:02}-{}", "n".repeat(90)), b""))
            .collect();
        let (_d, r) = load_with(&[long], &names);
        let e = r.err().unwrap().to_string();
        assert!(e.contains("entry names take more than 1000 bytes"), "{e}");
        // And a component no Linux file system holds is refused (a GNU long name).
        let mut named = entry(
            "././@LongLink",
            tar::EntryType::GNULongName,
            format!("{}\0", "c".repeat(256)).as_bytes(),
            "",
            0o644,
        );
        named.extend(file("x", b""));
        let (_d, r) = load_with(&[vec![named]], &tiny);
        let e = r.err().unwrap().to_string();
        assert!(e.contains("longer than 255 bytes"), "{e}");
        // 4 MiB of zeros gzip to a few KiB: over a 100× ratio, refused.
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::create(d.path()).unwrap();
        let mut tar = file("zeros", &vec![0; 4 << 20]);
        tar.extend_from_slice(&[0; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let desc = layout.put_bytes(image::MT_OCI_LAYER_GZIP, &gz).unwrap();
        let budget = Budget::new(Limits {
            ratio_floor: 1 << 18,
            ..Limits::default()
        });
        let e = for_each_entry(&layout, &desc, None, &budget, |_, _| Ok(())).unwrap_err();
        assert!(e.to_string().contains("decompression bomb"), "{e}");
    }

    #[test]
    fn large_data_files_keep_only_their_head() {
        let big = vec![7u8; (SMALL + 1) as usize];
        let mut elf = b"\x7fELF".to_vec();
        elf.resize((SMALL + 1) as usize, 1);
        let fs = load(&[vec![file("data", &big), file("prog", &elf)]]);
        let d = fs.open("/data").unwrap();
        assert_eq!(d.size(), SMALL + 1);
        let mut head = [0u8; 16];
        d.read_exact_at(0, &mut head).unwrap();
        let e = d.read_exact_at(SMALL - 16, &mut head).unwrap_err();
        assert!(e.to_string().contains("only its first"), "{e}");
        let p = fs.open("/prog").unwrap();
        p.read_exact_at(SMALL - 16, &mut head).unwrap();
        // Keep::All keeps everything.
        let all = Options {
            keep: Keep::All,
            ..Options::default()
        };
        let (_t, fs) = load_with(&[vec![file("data", &big)]], &all);
        fs.unwrap()
            .open("/data")
            .unwrap()
            .read_exact_at(SMALL - 16, &mut head)
            .unwrap();
    }

    #[test]
    fn a_corrupt_layer_is_a_digest_error() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::create(d.path()).unwrap();
        let mut tar = file("x", b"hello");
        tar.extend_from_slice(&[0; 1024]);
        let desc = layout.put_bytes(image::MT_OCI_LAYER, &tar).unwrap();
        tar[600] ^= 1;
        std::fs::write(layout.blob_path(&desc.digest), &tar).unwrap();
        let budget = Budget::new(Limits::default());
        let e = for_each_entry(&layout, &desc, None, &budget, |_, _| Ok(())).unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    }
}
