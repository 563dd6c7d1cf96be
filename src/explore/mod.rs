//! What is inside an image, layer by layer (`nobase tree`, like dive without a daemon):
//! each layer's entries marked added / modified / unchanged / removed against the layers
//! below, the merged final tree with the layer each file comes from, and dive's
//! efficiency and wasted-bytes figures. Each layer is streamed once through
//! [`walk::for_each_entry_stats`] (verified, capped, names validated); file contents are
//! hashed on the way and never kept, so memory grows with the number of entries, not
//! with their bytes.
//!
//! Paths are shown as the layers write them, as dive shows them: an entry is never
//! placed by following a symlink of a lower layer. (`check` resolves such writes inside
//! the root, as runtimes do; here they are listed where written and reported in
//! [`Analysis::warnings`].) Nothing is ever extracted or followed on the host.

pub mod ci;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::PlatformImage;
use crate::imagefs::walk::{self, Budget, EntryKind, Limits};
use crate::oci::{io_to_error, Blobs};
use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to another path of the image.
    Hardlink,
    /// A device, FIFO or socket.
    Other,
}

/// How a layer's entry relates to the layers below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// No layer below has this path.
    Added,
    /// A layer below has this path with other content, type or metadata.
    Modified,
    /// A layer below has this path with the same type, content, mode and owner: the
    /// layer stores it again for nothing.
    Unchanged,
    /// The layer deletes this path (a whiteout, an opaque directory, or a non-directory
    /// put where a directory was); its size is what the deletion hides.
    Removed,
}

/// What `tree` shows of an entry, in a layer or in the merged tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Absolute path in the image (`/app/hello`).
    #[serde(serialize_with = "ser_str")]
    pub path: Arc<str>,
    /// Data bytes (for a removal: the bytes of the files it hides; for a hard link: its
    /// file's, though the link itself stores none).
    pub size: u64,
    /// Permission bits, shown in octal (`"0755"`; a hard link's are its file's).
    #[serde(serialize_with = "ser_mode")]
    pub mode: u32,
    /// What it is.
    pub kind: Kind,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// A symlink's or hard link's target, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Box<str>>,
}

/// One entry of a layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerFile {
    /// The entry.
    #[serde(flatten)]
    pub info: FileInfo,
    /// Added, modified, unchanged or removed.
    pub change: Change,
}

/// One layer.
#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    /// 1 for the bottom layer; [`MergedFile::layer`] refers to this.
    pub index: usize,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's (compressed) size.
    pub size: u64,
    /// The size of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Data bytes of the regular files it holds (dive's layer size).
    pub file_bytes: u64,
    /// The history entry that made it (`created_by`), when the config says.
    pub created_by: Option<String>,
    /// Its entries, in tree order.
    pub files: Vec<LayerFile>,
}

/// One entry of the merged final tree.
#[derive(Clone, Debug, Serialize)]
pub struct MergedFile {
    /// The entry.
    #[serde(flatten)]
    pub info: FileInfo,
    /// The layer (its [`Layer::index`]) this version comes from.
    pub layer: usize,
}

/// A large file of the final tree.
#[derive(Clone, Debug, Serialize)]
pub struct Largest {
    /// Absolute path.
    #[serde(serialize_with = "ser_str")]
    pub path: Arc<str>,
    /// Bytes.
    pub size: u64,
    /// The layer it comes from.
    pub layer: usize,
}

/// A path stored by more than one layer (dive's "inefficiencies").
#[derive(Clone, Debug, Serialize)]
pub struct Inefficiency {
    /// Absolute path.
    #[serde(serialize_with = "ser_str")]
    pub path: Arc<str>,
    /// How many layers store or delete it.
    pub count: u32,
    /// Bytes of every version stored, the final one included (dive counts them all).
    pub bytes: u64,
}

/// Files of the final tree with identical content.
#[derive(Clone, Debug, Serialize)]
pub struct Duplicate {
    /// Bytes of each copy.
    pub size: u64,
    /// Their paths, sorted.
    pub paths: Vec<String>,
    /// What the group adds to [`Wasted::duplicates`]: the copies beyond one, less those
    /// whose bytes [`Wasted::overwritten_or_removed`] already counts.
    pub wasted: u64,
}

/// Where the wasted bytes are.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Wasted {
    /// Bytes of paths stored by more than one layer (overwritten or removed later), as
    /// dive counts them.
    pub overwritten_or_removed: u64,
    /// Bytes of the extra copies of identical files in the final tree that
    /// `overwritten_or_removed` does not already count (no byte is counted twice).
    pub duplicates: u64,
}

/// Everything `tree` reports about an image.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    /// The reference it was read from.
    pub image: String,
    /// Its platform (`linux/amd64`).
    pub platform: String,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
    /// The final tree, in tree order.
    pub merged: Vec<MergedFile>,
    /// Data bytes of the files of every layer together (dive's image size).
    pub total_bytes: u64,
    /// The same, without the first layer (dive's "user" bytes: what was added on top of
    /// a base).
    pub user_bytes: u64,
    /// Data bytes of the files of the final tree.
    pub final_bytes: u64,
    /// [`Wasted::overwritten_or_removed`] + [`Wasted::duplicates`].
    pub wasted_bytes: u64,
    /// The parts of [`Analysis::wasted_bytes`].
    pub wasted: Wasted,
    /// `wasted_bytes / user_bytes` as a fraction (dive's "user wasted percent"); 0 when
    /// there are no user bytes.
    pub user_wasted_percent: f64,
    /// dive's efficiency score, 0..1: for every path, the smallest version any layer
    /// stores, over the bytes all layers store for it.
    pub efficiency: f64,
    /// The largest files of the final tree, largest first.
    pub largest: Vec<Largest>,
    /// Paths stored by several layers, most bytes first.
    pub inefficient: Vec<Inefficiency>,
    /// Groups of identical files of the final tree, most wasted bytes first.
    pub duplicates: Vec<Duplicate>,
    /// What was odd about the layers (entries written through a symlink or a file).
    pub warnings: Vec<String>,
}

/// How many entries the top lists ([`Analysis::largest`] and the others) keep.
pub const TOP: usize = 10;

fn ser_str<S: Serializer>(p: &Arc<str>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(p)
}

fn ser_mode<S: Serializer>(m: &u32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{m:04o}"))
}

/// The first half of a sha256: enough to tell contents apart in a report, at half the
/// memory per file.
type Hash = [u8; 16];

/// One entry read from a layer, before it is compared with the layers below.
struct Raw {
    info: FileInfo,
    op: Op,
    hash: Option<Hash>,
}

/// What a layer entry does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Puts the entry at its path.
    Put,
    /// Deletes the path from the layers below.
    Whiteout,
    /// Deletes what the layers below have under the directory.
    Opaque,
}

/// The current version of a path in the layers applied so far, and dive's figures for
/// the path over all layers.
struct Cur {
    info: FileInfo,
    present: bool,
    layer: usize,
    hash: Option<Hash>,
    /// How many layers stored or deleted this path (directories are not counted).
    seen: u32,
    /// Bytes of every version stored.
    cumulative: u64,
    /// The smallest version stored (0 once deleted).
    min: u64,
    /// The present content's bytes are counted in another path's versions (a hard link
    /// that kept a file's content when its first name was replaced): that path was
    /// stored more than once, so those bytes are already waste.
    counted_elsewhere: bool,
}

impl Cur {
    /// Counts one more version of the path for the efficiency figures (dive counts
    /// every non-directory; a deletion is a version of size 0).
    fn record(&mut self, size: u64) {
        self.min = if self.seen == 0 {
            size
        } else {
            self.min.min(size)
        };
        self.seen += 1;
        self.cumulative += size;
    }
}

/// Where the descendants of `path` start in the path map (`/a` → `/a/`; the root's
/// descendants are every path).
fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    }
}

/// The keys of `map` that start with `prefix` (which ends with '/'). Byte order keeps
/// them together.
fn under<'a, V>(
    map: &'a BTreeMap<Arc<str>, V>,
    prefix: &str,
) -> impl Iterator<Item = (&'a Arc<str>, &'a V)> + 'a {
    // Prefixes end with '/', whose next byte is '0': every key under `prefix` sorts
    // before the prefix with its '/' turned into '0'.
    let hi = match prefix.strip_suffix('/') {
        Some(stem) => format!("{stem}0"),
        None => format!("{prefix}{}", char::MAX),
    };
    map.range::<str, _>((Bound::Included(prefix), Bound::Excluded(hi.as_str())))
}

/// Orders paths as a tree is drawn: component by component, so `/a/b` comes right
/// after `/a` and before `/a-b`.
pub fn tree_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The state of the layers applied so far.
struct Merge {
    paths: BTreeMap<Arc<str>, Cur>,
    /// Hard links by the path they name (entries may be stale: check before use).
    links: BTreeMap<Arc<str>, Vec<Arc<str>>>,
    warnings: Vec<String>,
}

impl Merge {
    /// Deletes every present path under `prefix` (whiteout of a directory, opaque
    /// directory, a directory replaced by a file), counting each deleted
    /// non-directory once more for the efficiency figures. Returns what was deleted.
    fn delete_under(&mut self, prefix: &str) -> Vec<(Arc<str>, Kind, u64)> {
        let keys: Vec<Arc<str>> = under(&self.paths, prefix)
            .filter(|(_, c)| c.present)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in &keys {
            if let Some(c) = self.paths.get_mut(k) {
                c.present = false;
                out.push((k.clone(), c.info.kind, c.info.size));
            }
        }
        // Content that links outside the prefix keep goes on under their names.
        for k in keys {
            self.hand_over(&k, true);
            if let Some(c) = self.paths.get_mut(&k) {
                if c.info.kind != Kind::Dir {
                    c.record(0);
                }
            }
        }
        out
    }

    /// Where a chain of hard links (a tar hard link may name another link) ends: the
    /// present entry that is not a link, or the last name reached. Merged links name
    /// that entry directly (every name of a file is equal on a filesystem), so chains
    /// exist only in what layers write.
    fn link_root(&self, target: &str) -> Arc<str> {
        let mut at: Arc<str> = Arc::from(target);
        for _ in 0..crate::root::MAX_HOPS {
            match self.present(&at) {
                Some(c) if c.info.kind == Kind::Hardlink => match &c.info.target {
                    Some(t) => at = Arc::from(&**t),
                    None => break,
                },
                _ => break,
            }
        }
        at
    }

    /// A hard link entry as the merged tree holds it: naming the end of its chain, with
    /// that file's mode, owner and size (one file, whatever name it is reached by; the
    /// link header's own mode and size 0 say nothing on a filesystem).
    fn as_linked(&self, link: &FileInfo) -> FileInfo {
        let root = self.link_root(link.target.as_deref().unwrap_or_default());
        let mut out = link.clone();
        if let Some(f) = self.present(&root).filter(|c| c.info.kind != Kind::Dir) {
            (out.mode, out.uid, out.gid, out.size) =
                (f.info.mode, f.info.uid, f.info.gid, f.info.size);
        }
        out.target = Some(root.as_ref().into());
        out
    }

    /// A file's (or symlink's) content outlives a name while another name is a hard
    /// link to it: when `path` stops naming it (deleted or replaced), the first
    /// remaining link becomes it, with its size and content, and the other links name
    /// that one, as on a real filesystem. With `stats`, the efficiency figures of the
    /// content move with it (deleting one name of a file wastes nothing).
    fn hand_over(&mut self, path: &str, stats: bool) {
        let Some(old) = self.paths.get(path) else {
            return;
        };
        if !matches!(old.info.kind, Kind::File | Kind::Symlink) {
            return;
        }
        let (info, hash) = (old.info.clone(), old.hash);
        let (seen, cumulative, min) = (old.seen, old.cumulative, old.min);
        // Without `stats` the content's bytes stay counted under `path`, which is being
        // replaced and so holds two versions at least: they are waste already.
        let counted_elsewhere = old.counted_elsewhere || !stats;
        let Some(names) = self.links.remove(path) else {
            return;
        };
        let mut live: Vec<Arc<str>> = names
            .into_iter()
            .filter(|n| {
                self.present(n).is_some_and(|c| {
                    c.info.kind == Kind::Hardlink && c.info.target.as_deref() == Some(path)
                })
            })
            .collect();
        live.sort_by(|a, b| tree_order(a, b));
        live.dedup();
        let Some((heir, rest)) = live.split_first() else {
            return;
        };
        if let Some(c) = self.paths.get_mut(heir) {
            c.info.kind = info.kind;
            c.info.size = info.size;
            c.info.target = info.target.clone();
            c.hash = hash;
            c.counted_elsewhere = counted_elsewhere;
            if stats {
                (c.seen, c.cumulative, c.min) = (seen, cumulative, min);
            }
        }
        if stats {
            if let Some(c) = self.paths.get_mut(path) {
                (c.seen, c.cumulative, c.min) = (0, 0, 0);
            }
        }
        for n in rest {
            if let Some(c) = self.paths.get_mut(n) {
                c.info.target = Some(heir.as_ref().into());
            }
        }
        self.links.insert(heir.clone(), rest.to_vec());
    }

    /// Deletes `path` itself (a whiteout of a non-directory, or the directory entry of
    /// a whiteout of a directory).
    fn delete(&mut self, path: &str) -> Option<(Kind, u64)> {
        let c = self.paths.get_mut(path)?;
        if !c.present {
            return None;
        }
        c.present = false;
        let gone = (c.info.kind, c.info.size);
        self.hand_over(path, true);
        let c = self.paths.get_mut(path)?;
        if c.info.kind != Kind::Dir {
            c.record(0);
        }
        Some(gone)
    }

    fn present(&self, path: &str) -> Option<&Cur> {
        self.paths.get(path).filter(|c| c.present)
    }

    /// Applies one layer (1-based `index`) read as `raws`: marks each entry against the
    /// layers below, applies its deletions (which hide lower layers only, wherever they
    /// stand in the layer), then its entries in order.
    fn apply(&mut self, index: usize, digest: &Digest, raws: Vec<Raw>) -> Result<Vec<LayerFile>> {
        let mut files = Vec::with_capacity(raws.len());
        let mut changes = Vec::with_capacity(raws.len());
        let ops = |op| {
            raws.iter()
                .filter(move |r| r.op == op)
                .map(|r| r.info.path.clone())
                .collect::<HashSet<Arc<str>>>()
        };
        let puts = ops(Op::Put);
        // Directories this layer empties of what the layers below put in them: by a
        // whiteout of the directory, or by making it opaque (`rm -rf d && mkdir d` in an
        // overlay diff).
        let mut whited = ops(Op::Whiteout);
        whited.extend(ops(Op::Opaque));
        for r in &raws {
            let change = match (r.op, self.present(&r.info.path)) {
                (Op::Put, None) => Change::Added,
                // `.wh.DIR` and `DIR/` in one layer: the directory is replaced, emptied
                // of what the layers below put in it (listed as removed).
                (Op::Put, Some(c))
                    if c.info.kind == Kind::Dir
                        && r.info.kind == Kind::Dir
                        && whited.contains(&r.info.path)
                        && under(&self.paths, &child_prefix(&r.info.path))
                            .any(|(_, c)| c.present) =>
                {
                    Change::Modified
                }
                (Op::Put, Some(c))
                    if c.hash == r.hash
                        && if r.info.kind == Kind::Hardlink {
                            c.info == self.as_linked(&r.info)
                        } else {
                            c.info == r.info
                        } =>
                {
                    Change::Unchanged
                }
                (Op::Put, Some(_)) => Change::Modified,
                _ => Change::Removed,
            };
            changes.push(change);
        }
        for r in &raws {
            let path = &r.info.path;
            match r.op {
                Op::Whiteout => {
                    let below = self.delete_under(&child_prefix(path));
                    let mut deleted: Vec<_> = self
                        .delete(path)
                        .map(|(kind, size)| (path.clone(), kind, size))
                        .into_iter()
                        .collect();
                    deleted.extend(below);
                    if deleted.is_empty() {
                        // A whiteout of nothing: listed, hiding nothing.
                        files.push(removal(path, Kind::Other, 0));
                    } else {
                        let parent = &path[..path.rfind('/').map_or(0, |i| i + 1)];
                        files.extend(removals(parent, deleted, &puts));
                    }
                }
                Op::Opaque => {
                    let deleted = self.delete_under(&child_prefix(path));
                    files.extend(removals(&child_prefix(path), deleted, &puts));
                }
                Op::Put => {}
            }
        }
        for (r, change) in raws.into_iter().zip(changes) {
            if r.op != Op::Put {
                continue;
            }
            let kind = r.info.kind;
            if kind == Kind::Hardlink {
                // A hard link names a file of this layer or those below; one that names
                // nothing (or a directory) is refused, as `check` and unpackers do.
                let target = r.info.target.as_deref().unwrap_or_default();
                let why = match self.present(target) {
                    Some(c) if c.info.kind != Kind::Dir => None,
                    Some(_) => Some("a directory"),
                    None => Some("not in the image"),
                };
                if let Some(why) = why {
                    return Err(Error::Invalid(format!(
                        "layer {digest}: entry {} is a hard link to {target}, which is {why}; the layer is corrupt or hostile",
                        r.info.path
                    )));
                }
            }
            // A hard link names, in the merged tree, the file its chain ends at, and is
            // filed under it; one that names its own path changes nothing.
            // The layer lists a hard link with the target it names, the merged tree with
            // the file its chain ends at; both with that file's mode, owner and size.
            let mut merged = r.info.clone();
            let mut shown = r.info.clone();
            if kind == Kind::Hardlink {
                let linked = self.as_linked(&r.info);
                shown = FileInfo {
                    target: r.info.target.clone(),
                    ..linked.clone()
                };
                if linked.target.as_deref() == Some(&*r.info.path) {
                    files.push(LayerFile {
                        info: shown,
                        change,
                    });
                    continue;
                }
                merged = linked;
            }
            if kind != Kind::Dir {
                // A non-directory over a directory deletes what was under it.
                let prefix = child_prefix(&r.info.path);
                let deleted = self.delete_under(&prefix);
                files.extend(removals(&prefix, deleted, &puts));
            } else if self
                .present(&r.info.path)
                .is_some_and(|c| c.info.kind != Kind::Dir)
            {
                // A directory over a file deletes the file, as its whiteout would: one
                // more version of the path (its bytes were shipped for nothing), unless
                // a hard link keeps the content, which then lives on under that name.
                self.delete(&r.info.path);
            }
            self.warn_if_written_through(index, &r.info.path);
            // A file replaced under its name lives on under its hard links.
            if self.present(&r.info.path).is_some() {
                self.hand_over(&r.info.path, false);
            }
            if let (Kind::Hardlink, Some(t)) = (kind, &merged.target) {
                self.links
                    .entry(Arc::from(&**t))
                    .or_default()
                    .push(r.info.path.clone());
            }
            let cur = self.paths.entry(r.info.path.clone()).or_insert(Cur {
                info: r.info.clone(),
                present: false,
                layer: index,
                hash: None,
                seen: 0,
                cumulative: 0,
                min: 0,
                counted_elsewhere: false,
            });
            cur.info = merged;
            cur.present = true;
            cur.layer = index;
            cur.hash = r.hash;
            cur.counted_elsewhere = false;
            if kind != Kind::Dir {
                // A hard link's entry stores nothing: its own size (0), not its file's.
                cur.record(r.info.size);
            }
            files.push(LayerFile {
                info: shown,
                change,
            });
        }
        // A path the layer deletes (an opaque directory's child, a whiteout) and puts
        // again is listed once, as put: "- x" beside "= x" said the same thing twice.
        let put: HashSet<Arc<str>> = files
            .iter()
            .filter(|f| f.change != Change::Removed)
            .map(|f| f.info.path.clone())
            .collect();
        files.retain(|f| f.change != Change::Removed || !put.contains(&f.info.path));
        files.sort_by(|a, b| tree_order(&a.info.path, &b.info.path));
        Ok(files)
    }

    /// Notes an entry whose parent path is, in the layers below, a symlink or a file: a
    /// runtime would follow the symlink (inside the root) or fail; `tree` lists the entry
    /// where it is written and says so.
    fn warn_if_written_through(&mut self, index: usize, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end + 1..].find('/') {
            end += 1 + i;
            let parent = &path[..end];
            if let Some(c) = self.present(parent) {
                if c.info.kind != Kind::Dir {
                    let what = match (&c.info.target, c.info.kind) {
                        (Some(t), Kind::Symlink) => format!("a symlink to {t}"),
                        _ => "not a directory".to_string(),
                    };
                    let msg = format!(
                        "layer {index}: {path} is written below {parent}, which is {what} in the layers below; it is listed where written, not followed"
                    );
                    self.warnings.push(msg);
                    return;
                }
            }
        }
    }
}

/// How a layer lists the paths it deleted under `base` (a prefix ending with '/'): as
/// dive shows the top-most deleted path, one removal per path right under `base`, with
/// the bytes under it. A path the layer puts again is not removed as a whole (its new
/// version is listed instead): what it held below is listed, each under its top-most
/// path not put again. So `.wh.r` and `r/` in one layer list `~ r` and `- r/old`, never
/// a bare `= r` that hides the removal.
fn removals(
    base: &str,
    deleted: Vec<(Arc<str>, Kind, u64)>,
    puts: &HashSet<Arc<str>>,
) -> Vec<LayerFile> {
    let mut groups: BTreeMap<Arc<str>, (Kind, u64)> = BTreeMap::new();
    for (path, kind, size) in deleted {
        let mut end = base.len();
        let top = loop {
            match path.get(end..).and_then(|rest| rest.find('/')) {
                Some(i) => {
                    let above = &path[..end + i];
                    if !puts.contains(above) {
                        break Some((Arc::from(above), Kind::Dir));
                    }
                    end += i + 1;
                }
                None => break (!puts.contains(&path)).then_some((path, kind)),
            }
        };
        if let Some((top, kind)) = top {
            groups.entry(top).or_insert((kind, 0)).1 += size;
        }
    }
    groups
        .into_iter()
        .map(|(path, (kind, size))| removal(&path, kind, size))
        .collect()
}

fn removal(path: &Arc<str>, kind: Kind, size: u64) -> LayerFile {
    LayerFile {
        info: FileInfo {
            path: path.clone(),
            size,
            mode: 0,
            kind,
            uid: 0,
            gid: 0,
            target: None,
        },
        change: Change::Removed,
    }
}

/// The `created_by` of each layer: history entries marked `empty_layer` made no layer,
/// every other one made the next layer.
fn history_per_layer(image: &PlatformImage, warnings: &mut Vec<String>) -> Vec<Option<String>> {
    let n = image.manifest.layers.len();
    let mut out = vec![None; n];
    let made: Vec<_> = image
        .config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .collect();
    if !image.config.history.is_empty() && made.len() != n {
        let plural = |k: usize, noun: &str| format!("{k} {noun}{}", if k == 1 { "" } else { "s" });
        warnings.push(format!(
            "the config's history names {} for {}; the instructions shown may be misplaced",
            plural(made.len(), "layer-making step"),
            plural(n, "layer")
        ));
    }
    for (slot, h) in out.iter_mut().zip(made) {
        *slot = h.created_by.clone();
    }
    out
}

/// Reads one layer's entries, hashing each file's data (never keeping it).
fn read_layer(
    blobs: &dyn Blobs,
    image: &PlatformImage,
    i: usize,
    budget: &Budget,
) -> Result<(Vec<Raw>, u64, u64)> {
    let desc = &image.manifest.layers[i];
    let mut raws = Vec::new();
    let mut file_bytes = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let stats = walk::for_each_entry_stats(
        blobs,
        desc,
        image.config.rootfs.diff_ids.get(i),
        budget,
        |e, data| {
            let (op, kind, target) = match e.kind {
                EntryKind::File => (Op::Put, Kind::File, None),
                EntryKind::Dir => (Op::Put, Kind::Dir, None),
                EntryKind::Symlink(t) => (Op::Put, Kind::Symlink, Some(t)),
                EntryKind::HardLink(t) => (Op::Put, Kind::Hardlink, Some(format!("/{t}"))),
                EntryKind::Other => (Op::Put, Kind::Other, None),
                EntryKind::Whiteout => (Op::Whiteout, Kind::Other, None),
                EntryKind::Opaque => (Op::Opaque, Kind::Dir, None),
            };
            // The root directory's own entry carries no file.
            if e.path.is_empty() && op == Op::Put {
                return Ok(());
            }
            // Contents are hashed for every file as it streams past: whether a file
            // has a twin (a later version, a copy elsewhere) is only known after the
            // last layer, and reading the layers twice would cost far more than hashing
            // overlapped with decompression.
            let hash = if kind == Kind::File && e.size > 0 {
                file_bytes += e.size;
                let mut h = Sha256::new();
                loop {
                    let n = data.read(&mut buf).map_err(|err| {
                        io_to_error(err, || format!("reading layer {}", desc.digest))
                    })?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                let mut out = Hash::default();
                out.copy_from_slice(&h.finalize()[..16]);
                Some(out)
            } else {
                None
            };
            raws.push(Raw {
                info: FileInfo {
                    path: Arc::from(format!("/{}", e.path)),
                    size: e.size,
                    mode: e.mode,
                    kind,
                    uid: e.uid,
                    gid: e.gid,
                    target: target.map(String::into_boxed_str),
                },
                op,
                hash,
            });
            Ok(())
        },
    )?;
    Ok((raws, stats.uncompressed_size, file_bytes))
}

/// Reads every layer of `image` from `blobs` and reports what each adds, changes and
/// removes, the merged tree, and the waste. `name` is the reference shown.
pub fn analyze(
    name: &str,
    image: &PlatformImage,
    blobs: &dyn Blobs,
    limits: Limits,
) -> Result<Analysis> {
    let budget = Budget::new(limits);
    let mut merge = Merge {
        paths: BTreeMap::new(),
        links: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let created_by = history_per_layer(image, &mut merge.warnings);
    let mut layers = Vec::with_capacity(image.manifest.layers.len());
    for (i, desc) in image.manifest.layers.iter().enumerate() {
        let (raws, uncompressed_size, file_bytes) = read_layer(blobs, image, i, &budget)?;
        let files = merge.apply(i + 1, &desc.digest, raws)?;
        layers.push(Layer {
            index: i + 1,
            digest: desc.digest.clone(),
            size: desc.size,
            uncompressed_size,
            file_bytes,
            created_by: created_by[i].clone(),
            files,
        });
    }
    Ok(summarize(name, image, layers, merge))
}

/// The figures over all layers once every layer is applied.
fn summarize(name: &str, image: &PlatformImage, layers: Vec<Layer>, merge: Merge) -> Analysis {
    let total_bytes: u64 = layers.iter().map(|l| l.file_bytes).sum();
    let user_bytes: u64 = layers.iter().skip(1).map(|l| l.file_bytes).sum();
    // dive: efficiency = Σ over paths of the smallest version / Σ of every version;
    // wasted = Σ of every version of each path stored (or deleted) more than once.
    // Deviations, each because dive's count hides real waste: a whiteout of a directory
    // counts as a deletion of each file under it (dive records one entry for the
    // directory, which rarely has a second one, so deleted directories never show as
    // waste), and opaque directories delete likewise (dive ignores them).
    let mut min_sum = 0u64;
    let mut cum_sum = 0u64;
    let mut inefficient = Vec::new();
    let mut overwritten = 0u64;
    for (path, c) in &merge.paths {
        if c.seen == 0 {
            continue;
        }
        min_sum += c.min;
        cum_sum += c.cumulative;
        if c.seen >= 2 {
            overwritten += c.cumulative;
            inefficient.push(Inefficiency {
                path: path.clone(),
                count: c.seen,
                bytes: c.cumulative,
            });
        }
    }
    let efficiency = if cum_sum == 0 {
        1.0
    } else {
        min_sum as f64 / cum_sum as f64
    };
    inefficient.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    inefficient.truncate(TOP);

    let mut merged = Vec::new();
    // The files of each content, with whether their bytes are already counted as
    // overwritten.
    type Copies = Vec<(Arc<str>, bool)>;
    let mut by_content: HashMap<(u64, Hash), Copies> = HashMap::new();
    let mut final_bytes = 0u64;
    for c in merge.paths.into_values().filter(|c| c.present) {
        if c.info.kind == Kind::File {
            final_bytes += c.info.size;
            if let Some(h) = c.hash {
                let counted = c.counted_elsewhere || c.seen >= 2;
                let same = by_content.entry((c.info.size, h)).or_default();
                same.push((c.info.path.clone(), counted));
            }
        }
        merged.push(MergedFile {
            info: c.info,
            layer: c.layer,
        });
    }
    merged.sort_by(|a, b| tree_order(&a.info.path, &b.info.path));

    // Not in dive: identical files at different paths of the final tree. One copy is
    // needed; every other is waste, unless its bytes are already counted above (its
    // path was stored more than once: dive counts every version of it, the final one
    // included). The copy kept is one not counted yet, so no stored byte is counted
    // twice and the waste never exceeds the bytes stored. Hard links are not copies:
    // their entries store nothing.
    let mut duplicates: Vec<Duplicate> = by_content
        .into_iter()
        .filter(|(_, copies)| copies.len() > 1)
        .map(|((size, _), copies)| {
            let fresh = copies.iter().filter(|(_, counted)| !counted).count() as u64;
            let mut paths: Vec<String> = copies.iter().map(|(p, _)| p.to_string()).collect();
            paths.sort();
            Duplicate {
                size,
                paths,
                wasted: size * fresh.saturating_sub(1),
            }
        })
        .collect();
    let dup_bytes: u64 = duplicates.iter().map(|d| d.wasted).sum();
    duplicates.sort_by(|a, b| {
        (b.wasted, b.size)
            .cmp(&(a.wasted, a.size))
            .then_with(|| a.paths.cmp(&b.paths))
    });
    duplicates.truncate(TOP);

    let mut largest: Vec<Largest> = merged
        .iter()
        .filter(|f| f.info.kind == Kind::File)
        .map(|f| Largest {
            path: f.info.path.clone(),
            size: f.info.size,
            layer: f.layer,
        })
        .collect();
    largest.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    largest.truncate(TOP);

    let wasted = Wasted {
        overwritten_or_removed: overwritten,
        duplicates: dup_bytes,
    };
    let wasted_bytes = overwritten + dup_bytes;
    Analysis {
        image: name.to_string(),
        platform: image.config.platform().to_string(),
        layers,
        merged,
        total_bytes,
        user_bytes,
        final_bytes,
        wasted_bytes,
        wasted,
        // dive divides by zero here for a one-layer image (NaN, which passes every
        // gate); 0 says the same thing in JSON.
        user_wasted_percent: if user_bytes == 0 {
            0.0
        } else {
            wasted_bytes as f64 / user_bytes as f64
        },
        efficiency,
        largest,
        inefficient,
        duplicates,
        warnings: merge.warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Layout;

    /// A layer entry: name, data (for files), or a kind marker.
    enum E<'a> {
        F(&'a str, &'a [u8]),
        /// A file whose name is any bytes.
        B(&'a [u8], &'a [u8]),
        D(&'a str),
        L(&'a str, &'a str),
        H(&'a str, &'a str),
    }

    fn tar_of(entries: &[E]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            match e {
                E::F(name, data) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, name, *data).unwrap();
                }
                E::B(name, data) => {
                    use std::os::unix::ffi::OsStrExt;
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    let name = std::ffi::OsStr::from_bytes(name);
                    b.append_data(&mut h, name, *data).unwrap();
                }
                E::D(name) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, name, &[][..]).unwrap();
                }
                E::L(name, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, name, target).unwrap();
                }
                E::H(name, target) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, name, target).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn analyze_layers(layers: &[&[E]]) -> Analysis {
        try_layers(layers).unwrap()
    }

    fn try_layers(layers: &[&[E]]) -> Result<Analysis> {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::create(d.path()).unwrap();
        let tars: Vec<Vec<u8>> = layers.iter().map(|l| tar_of(l)).collect();
        let pi = crate::imagefs::tests::image_of(&layout, &tars);
        analyze("test", &pi, &layout, Limits::default())
    }

    fn marks(l: &Layer) -> Vec<(String, Change, u64)> {
        l.files
            .iter()
            .map(|f| (f.info.path.to_string(), f.change, f.info.size))
            .collect()
    }

    #[test]
    fn changes_are_marked_against_the_layers_below() {
        let big = vec![1u8; 3000];
        let a = analyze_layers(&[
            &[
                E::D("app/"),
                E::F("app/big", &big),
                E::F("app/gone", b"12345"),
                E::F("app/same", b"s"),
                E::D("var/"),
                E::F("var/a/x", b"xx"),
                E::F("var/y", b"yyy"),
            ],
            &[
                E::F("app/big", b"small"),
                E::F("app/same", b"s"),
                E::F("app/.wh.gone", b""),
                E::F("var/.wh..wh..opq", b""),
                E::F("var/new", b"n"),
            ],
        ]);
        use Change::*;
        let s = |p: &str, c, n| (p.to_string(), c, n);
        assert_eq!(
            marks(&a.layers[1]),
            vec![
                s("/app/big", Modified, 5),
                s("/app/gone", Removed, 5),
                s("/app/same", Unchanged, 1),
                s("/var/a", Removed, 2),
                s("/var/new", Added, 1),
                s("/var/y", Removed, 3),
            ]
        );
        let merged: Vec<(String, usize)> = a
            .merged
            .iter()
            .map(|f| (f.info.path.to_string(), f.layer))
            .collect();
        assert_eq!(
            merged,
            vec![
                ("/app".into(), 1),
                ("/app/big".into(), 2),
                ("/app/same".into(), 2),
                ("/var".into(), 1),
                ("/var/new".into(), 2)
            ]
        );
        // dive's figures: every path stored twice counts whole.
        let cum = 3000 + 5 + 5 + 1 + 1 + 2 + 3 + 1;
        let min = 5 + 1 + 1;
        assert_eq!(a.total_bytes, 3000 + 5 + 1 + 2 + 3 + 5 + 1 + 1);
        assert_eq!(a.wasted.overwritten_or_removed, cum - 1);
        assert!((a.efficiency - min as f64 / cum as f64).abs() < 1e-9);
        assert_eq!(a.final_bytes, 7);
        assert_eq!(a.largest[0].path.as_ref(), "/app/big");
    }

    #[test]
    fn whole_directories_removed_count_each_file() {
        let a = analyze_layers(&[
            &[
                E::F("d/a", b"aaaa"),
                E::F("d/sub/b", b"bb"),
                E::F("keep", b"k"),
            ],
            &[E::F(".wh.d", b"")],
        ]);
        assert_eq!(
            marks(&a.layers[1]),
            vec![("/d".to_string(), Change::Removed, 6)]
        );
        assert_eq!(a.wasted_bytes, 6);
        assert!((a.efficiency - 1.0 / 7.0).abs() < 1e-9);
        assert_eq!(a.merged.len(), 1);
    }

    #[test]
    fn identical_files_are_duplicates_and_links_are_listed_not_followed() {
        let a = analyze_layers(&[
            &[
                E::F("a", b"same data"),
                E::F("b", b"same data"),
                E::L("esc", "../../../../etc"),
            ],
            &[E::F("c", b"same data"), E::F("esc/passwd", b"x")],
        ]);
        assert_eq!(a.wasted.duplicates, 18);
        assert_eq!(a.duplicates[0].paths, vec!["/a", "/b", "/c"]);
        assert_eq!(a.wasted.overwritten_or_removed, 0);
        assert!(a.merged.iter().any(|f| &*f.info.path == "/esc/passwd"));
        assert!(a.warnings[0].contains("/esc/passwd is written below /esc"));
    }

    #[test]
    fn a_directory_removed_and_put_again_in_one_layer_lists_what_it_lost() {
        use Change::*;
        let s = |p: &str, c, n| (p.to_string(), c, n);
        let lower: &[E] = &[
            E::D("r/"),
            E::F("r/old", &[b'o'; 40]),
            E::D("r/sub/"),
            E::F("r/sub/x", &[b'x'; 50]),
            E::F("r/sub/y", b"yy"),
        ];
        let a = analyze_layers(&[
            lower,
            &[E::F(".wh.r", b""), E::D("r/"), E::F("r/fresh", b"fresh")],
        ]);
        assert_eq!(
            marks(&a.layers[1]),
            vec![
                s("/r", Modified, 0),
                s("/r/fresh", Added, 5),
                s("/r/old", Removed, 40),
                s("/r/sub", Removed, 52),
            ]
        );
        assert_eq!(a.wasted_bytes, 92);
        // A directory below it put again too: what it held is listed, not the
        // directory.
        let a = analyze_layers(&[lower, &[E::F(".wh.r", b""), E::D("r/"), E::D("r/sub/")]]);
        assert_eq!(
            marks(&a.layers[1]),
            vec![
                s("/r", Modified, 0),
                s("/r/old", Removed, 40),
                s("/r/sub", Unchanged, 0),
                s("/r/sub/x", Removed, 50),
                s("/r/sub/y", Removed, 2),
            ]
        );
        // The same in an opaque directory, and under a file put over a directory.
        let a = analyze_layers(&[lower, &[E::F("r/.wh..wh..opq", b""), E::D("r/sub/")]]);
        let removed: Vec<_> = marks(&a.layers[1])
            .into_iter()
            .filter(|m| m.1 == Removed)
            .collect();
        assert_eq!(
            removed,
            vec![
                s("/r/old", Removed, 40),
                s("/r/sub/x", Removed, 50),
                s("/r/sub/y", Removed, 2)
            ]
        );
        // An opaque directory put again as an overlay diff writes it (`r/`, then its
        // `.wh..wh..opq`): the directory is modified, not unchanged.
        let a = analyze_layers(&[
            lower,
            &[
                E::D("r/"),
                E::F("r/.wh..wh..opq", b""),
                E::F("r/fresh", b"fresh"),
            ],
        ]);
        assert_eq!(
            marks(&a.layers[1])[0],
            s("/r", Modified, 0),
            "{:?}",
            marks(&a.layers[1])
        );
        let a = analyze_layers(&[lower, &[E::F("r", b"file")]]);
        assert_eq!(
            marks(&a.layers[1]),
            vec![
                s("/r", Modified, 4),
                s("/r/old", Removed, 40),
                s("/r/sub", Removed, 52)
            ]
        );
    }

    #[test]
    fn no_byte_is_counted_as_wasted_twice() {
        // a stored twice (dive counts both versions) and identical to b: b is the copy
        // kept, so the duplicate adds nothing (it was 12 B of waste in 12 B stored).
        let a = analyze_layers(&[
            &[E::F("a", b"same"), E::F("b", b"same")],
            &[E::F("a", b"same")],
        ]);
        assert_eq!(a.total_bytes, 12);
        assert_eq!(a.wasted.overwritten_or_removed, 8);
        assert_eq!(a.wasted.duplicates, 0);
        assert_eq!(a.wasted_bytes, 8);
        assert_eq!(a.duplicates[0].paths, vec!["/a", "/b"]);
        assert_eq!(a.duplicates[0].wasted, 0);
        // COPY big /big twice, then COPY big /copy: dive's 2 MB, not 3 MB of 3 MB.
        let big = vec![9u8; 1_000_000];
        let a = analyze_layers(&[
            &[E::F("big", &big)],
            &[E::F("big", &big)],
            &[E::F("copy", &big)],
        ]);
        assert_eq!(a.total_bytes, 3_000_000);
        assert_eq!(a.wasted_bytes, 2_000_000);
        assert_eq!(a.wasted.duplicates, 0);
        // Three fresh copies: two are waste.
        let a = analyze_layers(&[&[E::F("x", b"1234"), E::F("y", b"1234"), E::F("z", b"1234")]]);
        assert_eq!((a.wasted_bytes, a.duplicates[0].wasted), (8, 8));
        // Two copies of a path stored twice and one fresh copy: the fresh one is kept.
        let a = analyze_layers(&[
            &[E::F("x", b"1234"), E::F("y", b"1234")],
            &[E::F("x", b"1234"), E::F("y", b"1234"), E::F("z", b"1234")],
        ]);
        assert_eq!((a.total_bytes, a.wasted_bytes), (20, 16));
    }

    #[test]
    fn hard_links_store_nothing() {
        // A link to a lower layer's file, whose first name is then stored again: the
        // link keeps the old content (a file of the final tree now), but its bytes are
        // the first version of /big, already counted as overwritten.
        let big = vec![5u8; 1000];
        let a = analyze_layers(&[
            &[E::F("big", &big)],
            &[E::H("link", "big")],
            &[E::F("big", &big), E::F("copy", &big)],
        ]);
        assert_eq!(a.total_bytes, 3000);
        assert_eq!(a.wasted.overwritten_or_removed, 2000);
        assert_eq!(a.wasted.duplicates, 0, "{:?}", a.duplicates);
        assert_eq!(a.duplicates[0].paths, vec!["/big", "/copy", "/link"]);
        // A link beside a copy: the copy is waste, the link is not.
        let a = analyze_layers(&[&[E::F("f", &big)], &[E::H("g", "f"), E::F("c", &big)]]);
        assert_eq!((a.total_bytes, a.wasted_bytes), (2000, 1000));
        let a = analyze_layers(&[&[E::F("f", &big)], &[E::H("g", "f")]]);
        assert_eq!(a.wasted_bytes, 0);
        // A link is shown with its file's size (and mode), and stored again the same is
        // unchanged.
        let a = analyze_layers(&[&[E::F("f", &big), E::H("g", "f")], &[E::H("g", "f")]]);
        assert_eq!(
            marks(&a.layers[1]),
            vec![("/g".to_string(), Change::Unchanged, 1000)]
        );
        assert_eq!((a.total_bytes, a.wasted_bytes), (1000, 0));
    }

    #[test]
    fn a_file_over_a_directory_deletes_its_contents() {
        let a = analyze_layers(&[&[E::F("d/x", b"xyz")], &[E::F("d", b"file")]]);
        let paths: Vec<&str> = a.merged.iter().map(|f| &*f.info.path).collect();
        assert_eq!(paths, vec!["/d"]);
        assert_eq!(a.wasted.overwritten_or_removed, 3);
    }

    #[test]
    fn names_that_are_not_utf8_stay_apart() {
        // Latin-1 é and è: two files, and the whiteout of one leaves the other (both were
        // one path, "caf\u{fffd}", and the whiteout removed both).
        let a = analyze_layers(&[
            &[E::B(b"caf\xe9", &[1; 100]), E::B(b"caf\xe8", &[2; 200])],
            &[E::B(b".wh.caf\xe9", b"")],
        ]);
        let merged: Vec<(&str, u64)> = a
            .merged
            .iter()
            .map(|f| (&*f.info.path, f.info.size))
            .collect();
        assert_eq!(merged, vec![("/caf\\xe8", 200)]);
        assert_eq!(a.total_bytes, 300);
        assert_eq!(a.wasted.overwritten_or_removed, 100);
        assert_eq!(
            marks(&a.layers[1]),
            vec![("/caf\\xe9".to_string(), Change::Removed, 100)]
        );
    }

    #[test]
    fn a_directory_over_a_file_deletes_the_file() {
        // The files' bytes were shipped in layer 1 and hidden by layer 2: waste, as a
        // whiteout of them would be (it was 0, and efficiency 100 %).
        let a = analyze_layers(&[
            &[E::F("f", &[7u8; 700]), E::F("e", &[8u8; 300])],
            &[E::D("f/"), E::F("f/in", b"12345"), E::D("e/")],
        ]);
        assert_eq!(
            marks(&a.layers[1]),
            vec![
                ("/e".to_string(), Change::Modified, 0),
                ("/f".to_string(), Change::Modified, 0),
                ("/f/in".to_string(), Change::Added, 5),
            ]
        );
        assert_eq!(a.wasted.overwritten_or_removed, 1000);
        assert_eq!(a.final_bytes, 5);
        assert!(
            (a.efficiency - 5.0 / 1005.0).abs() < 1e-9,
            "{}",
            a.efficiency
        );
        // A hard link keeps the content alive under its own name: nothing is wasted.
        let a = analyze_layers(&[&[E::F("f", &[7u8; 700]), E::H("g", "f")], &[E::D("f/")]]);
        assert_eq!(a.wasted.overwritten_or_removed, 0, "{:?}", a.inefficient);
        assert_eq!(a.final_bytes, 700);
    }

    #[test]
    fn hard_links_must_name_a_file_of_the_image() {
        let a = analyze_layers(&[&[E::F("x", b"data")], &[E::H("y", "x")]]);
        let y = a.merged.iter().find(|f| &*f.info.path == "/y").unwrap();
        assert_eq!(y.info.target.as_deref(), Some("/x"));
        assert_eq!(a.wasted_bytes, 0);
        for (layers, why) in [
            (&[&[E::H("y", "missing")][..]][..], "not in the image"),
            (
                &[&[E::D("d/")][..], &[E::H("y", "d")][..]][..],
                "a directory",
            ),
        ] {
            let e = try_layers(layers).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("hostile"), "{e}");
        }
    }

    #[test]
    fn tree_order_keeps_children_after_their_parent() {
        let mut v = vec!["/a-b", "/a/b", "/a", "/a/b/c", "/a.b"];
        v.sort_by(|a, b| tree_order(a, b));
        assert_eq!(v, vec!["/a", "/a/b", "/a/b/c", "/a-b", "/a.b"]);
    }
}
