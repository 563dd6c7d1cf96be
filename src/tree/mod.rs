//! The filesystem of an image being built: image path → entry, with parents created and
//! metadata normalized, so the layer writer has nothing left to decide.

mod place;
mod root;

pub use place::{place, resolve_parent};
pub use root::Overlay;

use crate::error::{Error, IoContext, Result};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The first `chars` characters of `s` when it is longer (for a message that names a
/// path or a name someone else chose, which may be megabytes long); None when it fits.
pub fn cut(s: &str, chars: usize) -> Option<&str> {
    s.char_indices().nth(chars).map(|(at, _)| &s[..at])
}

/// Where a file's bytes come from.
#[derive(Clone, Debug)]
pub enum Content {
    /// A file on the host, read when the layer is written (its size is checked then).
    Host {
        /// The file.
        path: PathBuf,
        /// Device and inode, to turn host hard links into tar hard links.
        inode: Option<(u64, u64)>,
    },
    /// Bytes in memory (generated files: passwd, ld.so.cache…).
    Bytes(Arc<[u8]>),
}

/// What an entry is.
#[derive(Clone, Debug)]
pub enum Node {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes.
    File {
        /// Its bytes.
        content: Content,
        /// Its length.
        size: u64,
    },
    /// A symbolic link (target as written; absolute targets mean the image root).
    Symlink(String),
}

/// One entry with normalized metadata.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The node.
    pub node: Node,
    /// Permission bits (and setuid/sticky where asked).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// Normalizes an absolute or relative image path to `a/b/c` (no leading `/`). `.` and
/// empty components are dropped; `..`, NUL and the root itself are refused, since an
/// entry can never name anything above or outside the image root.
pub fn normalize(path: &str) -> Result<String> {
    if path.contains('\0') {
        return Err(Error::Usage(format!(
            "image path {path:?} contains a NUL byte"
        )));
    }
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::Usage(format!(
                    "image path {path:?} contains '..'; use an absolute path inside the image"
                )))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::Usage(format!(
            "image path {path:?} names the root directory; name a file"
        )));
    }
    // What no runtime can create: refused here rather than written into an image that
    // then fails to unpack.
    let shown = |s: &str| match cut(s, 48) {
        Some(head) => format!("{head}…"),
        None => s.to_string(),
    };
    if let Some(wh) = parts.iter().find(|c| c.starts_with(".wh.")) {
        return Err(Error::Usage(format!(
            "image path {:?} has a name starting with .wh. ({:?}): in a layer that is a whiteout, which deletes {} from the layers below instead of adding a file; rename it",
            shown(path),
            shown(wh),
            if *wh == ".wh..wh..opq" {
                "everything the layers below put in its directory".to_string()
            } else {
                format!("{:?}", &wh[4..])
            }
        )));
    }
    if let Some(long) = parts.iter().find(|c| c.len() > NAME_MAX) {
        return Err(Error::Usage(format!(
            "image path {:?} has a name of {} bytes ({:?}); file names are at most {NAME_MAX} bytes",
            shown(path),
            long.len(),
            shown(long)
        )));
    }
    let joined = parts.join("/");
    if joined.len() + 1 >= PATH_MAX {
        return Err(Error::Usage(format!(
            "image path {:?} is {} bytes long; paths are shorter than {PATH_MAX} bytes",
            shown(path),
            joined.len() + 1
        )));
    }
    Ok(joined)
}

/// The longest file name Linux filesystems take.
pub const NAME_MAX: usize = 255;
/// Paths, with their terminating NUL, fit in this many bytes.
pub const PATH_MAX: usize = 4096;

/// Resolves `.` and `..` lexically, as for paths that need not exist (`/app/../lib/x`
/// is `/lib/x`; `..` stops at the root). An absolute path stays absolute, a relative one
/// relative.
pub fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Default permission bits for a host file: executables 0755, everything else 0644,
/// so the digest does not depend on the umask of whoever built the binary.
pub fn normalized_mode(host_mode: u32) -> u32 {
    if host_mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// The entry for one host file, directory (itself, not its contents) or symlink, with
/// normalized metadata: modes 0755/0644 (directories 0755), owner root, symlinks kept.
pub fn host_entry(src: &Path) -> Result<Entry> {
    let meta = std::fs::symlink_metadata(src).io(|| format!("reading {}", src.display()))?;
    let ft = meta.file_type();
    let node = if ft.is_symlink() {
        let target = std::fs::read_link(src).io(|| format!("reading link {}", src.display()))?;
        let target = target.to_str().ok_or_else(|| {
            Error::Invalid(format!("{}: link target is not UTF-8", src.display()))
        })?;
        if target.is_empty() || target.contains('\0') {
            return Err(Error::Invalid(format!(
                "{}: link target is empty or has a NUL byte",
                src.display()
            )));
        }
        return Ok(Entry {
            node: Node::Symlink(target.to_string()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        });
    } else if ft.is_dir() {
        return Ok(Entry {
            node: Node::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        });
    } else if ft.is_file() {
        Node::File {
            content: Content::Host {
                path: src.to_path_buf(),
                inode: (meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
            },
            size: meta.len(),
        }
    } else {
        return Err(Error::Usage(format!(
            "{} is not a regular file, directory or symlink (devices, FIFOs and sockets cannot be added)",
            src.display()
        )));
    };
    Ok(Entry {
        node,
        mode: normalized_mode(meta.permissions().mode()),
        uid: 0,
        gid: 0,
    })
}

/// An image filesystem (one layer's worth).
#[derive(Clone, Debug, Default)]
pub struct ImageTree {
    entries: BTreeMap<String, Entry>,
}

impl ImageTree {
    /// An empty tree.
    pub fn new() -> ImageTree {
        ImageTree::default()
    }

    /// Entries in path order (parents before children).
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// The entry at a normalized path.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Paths that start with `prefix` (no leading `/`), in order.
    pub fn entries_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .map(|(k, _)| k)
            .take_while(move |k| k.starts_with(prefix))
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e.node, Node::File { .. }))
            .count()
    }

    /// Sum of regular file sizes.
    pub fn file_bytes(&self) -> u64 {
        // Hard-linked host files are stored once (later names are tar hard links).
        let mut seen = std::collections::HashSet::new();
        self.entries
            .values()
            .map(|e| match &e.node {
                Node::File {
                    content: Content::Host { inode: Some(i), .. },
                    ..
                } if !seen.insert(*i) => 0,
                Node::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    /// Creates the directories leading to `path` (0755, root-owned) where missing.
    fn ensure_parents(&mut self, path: &str) -> Result<()> {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            match self.entries.get(parent) {
                Some(Entry {
                    node: Node::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(Error::Usage(format!(
                        "cannot place /{path}: /{parent} is already a file in the image"
                    )))
                }
                None => {
                    self.entries.insert(
                        parent.to_string(),
                        Entry {
                            node: Node::Dir,
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                        },
                    );
                }
            }
            at += i + 1;
        }
        Ok(())
    }

    /// Inserts an entry at an image path, creating parents. A later insert at the same
    /// path replaces the earlier one, except that a directory never replaces a directory's
    /// children (it only updates the directory's own metadata).
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = normalize(path)?;
        self.ensure_parents(&path)?;
        if let Some(old) = self.entries.get(&path) {
            let old_is_dir = matches!(old.node, Node::Dir);
            let new_is_dir = matches!(entry.node, Node::Dir);
            if old_is_dir && !new_is_dir {
                let prefix = format!("{path}/");
                if self.entries.keys().any(|k| k.starts_with(&prefix)) {
                    return Err(Error::Usage(format!(
                        "cannot place a file at /{path}: it is a directory with contents in the image"
                    )));
                }
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Adds a directory.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.insert(
            path,
            Entry {
                node: Node::Dir,
                mode,
                uid: 0,
                gid: 0,
            },
        )
    }

    /// Adds in-memory bytes as a file.
    pub fn add_bytes(&mut self, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
        self.insert(
            path,
            Entry {
                node: Node::File {
                    size: bytes.len() as u64,
                    content: Content::Bytes(Arc::from(bytes)),
                },
                mode,
                uid: 0,
                gid: 0,
            },
        )
    }

    /// Adds a symlink.
    pub fn add_symlink(&mut self, path: &str, target: &str) -> Result<()> {
        if target.is_empty() || target.contains('\0') {
            return Err(Error::Usage(format!(
                "symlink /{path} needs a non-empty target without NUL bytes"
            )));
        }
        self.insert(
            path,
            Entry {
                node: Node::Symlink(target.to_string()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        )
    }

    /// Adds a host file, directory (recursively, in sorted order) or symlink at `dest`.
    /// Modes are normalized; ownership is root; symlinks are kept as links.
    pub fn add_host(&mut self, src: &Path, dest: &str) -> Result<()> {
        let entry = host_entry(src)?;
        if !matches!(entry.node, Node::Dir) {
            return self.insert(dest, entry);
        }
        self.insert(dest, entry)?;
        let mut names: Vec<_> = std::fs::read_dir(src)
            .io(|| format!("listing {}", src.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .io(|| format!("listing {}", src.display()))?;
        names.sort();
        let dest = normalize(dest)?;
        for name in names {
            let Some(n) = name.to_str() else {
                return Err(Error::Invalid(format!(
                    "{}: file name {:?} is not UTF-8",
                    src.display(),
                    name
                )));
            };
            self.add_host(&src.join(&name), &format!("{dest}/{n}"))?;
        }
        Ok(())
    }

    /// Moves every entry of `other` into this tree (later wins).
    pub fn merge(&mut self, other: ImageTree) -> Result<()> {
        for (p, e) in other.entries {
            self.insert(&p, e)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_for_messages_on_a_character_boundary() {
        assert_eq!(cut("short", 48), None);
        assert_eq!(cut("ééééé", 3), Some("ééé"));
        let long = "n".repeat(5000);
        let shown = crate::imagefs::walk::shown_name(&long);
        assert!(
            shown.len() < 230 && shown.ends_with("… (5000 bytes)"),
            "{shown}"
        );
    }

    #[test]
    fn lexical_paths_keep_their_kind() {
        assert_eq!(lexical("/app/../lib/libx.so"), "/lib/libx.so");
        assert_eq!(lexical("/app/./bin//x"), "/app/bin/x");
        assert_eq!(lexical("/../../x"), "/x");
        assert_eq!(lexical("libx.so"), "libx.so");
        assert_eq!(lexical("a/../../b"), "b");
    }

    #[test]
    fn normalize_cases() {
        for (input, want) in [
            ("/app/hello", Some("app/hello")),
            ("app//hello/", Some("app/hello")),
            ("./a/./b", Some("a/b")),
            ("/", None),
            ("", None),
            ("/a/../b", None),
            ("..", None),
            ("a\0b", None),
            ("/out/dir/.wh.foo", None),
            ("a/.wh..wh..opq", None),
            ("a/.whx/.wh", Some("a/.whx/.wh")),
            (
                &format!("/app/{}", "y".repeat(255)),
                Some(&format!("app/{}", "y".repeat(255))[..]),
            ),
            (&format!("/app/{}", "y".repeat(256)), None),
            (&["z"; 2047].join("/"), Some(&["z"; 2047].join("/")[..])),
            (&["z"; 2048].join("/"), None),
        ] {
            assert_eq!(normalize(input).ok().as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn parents_are_created_and_files_cannot_be_parents() {
        let mut t = ImageTree::new();
        t.add_bytes("/a/b/c", b"x", 0o644).unwrap();
        let paths: Vec<_> = t.entries().map(|(p, _)| p.clone()).collect();
        assert_eq!(paths, ["a", "a/b", "a/b/c"]);
        assert!(t.add_bytes("/a/b/c/d", b"x", 0o644).is_err());
        assert!(t.add_bytes("/a/b", b"x", 0o644).is_err());
    }

    #[test]
    fn modes_are_normalized() {
        assert_eq!(normalized_mode(0o700), 0o755);
        assert_eq!(normalized_mode(0o600), 0o644);
        assert_eq!(normalized_mode(0o4755), 0o755);
    }
}
