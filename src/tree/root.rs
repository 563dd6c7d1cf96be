//! An [`ImageTree`] seen as a read-only [`Root`] (so the loader rules can judge an image
//! before it is written), and [`Overlay`]: one tree over another, as layers stack.

use super::{Content, ImageTree, Node};
use crate::elf::{FileSource, ReadAt};
use crate::root::{FileType, Meta, Root};
use std::io;
use std::sync::Arc;

/// In-memory file content for positioned reads.
struct Shared(Arc<[u8]>);

impl ReadAt for Shared {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(offset, buf)
    }
}

fn key(path: &str) -> &str {
    path.trim_start_matches('/')
}

impl Root for ImageTree {
    fn lstat(&self, path: &str) -> Option<Meta> {
        let k = key(path);
        if k.is_empty() {
            return Some(Meta {
                kind: FileType::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 0,
            });
        }
        let e = self.get(k)?;
        let (kind, size) = match &e.node {
            Node::Dir => (FileType::Dir, 0),
            Node::File { size, .. } => (FileType::File, *size),
            Node::Symlink(t) => (FileType::Symlink, t.len() as u64),
        };
        Some(Meta {
            kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size,
        })
    }

    fn readlink(&self, path: &str) -> Option<String> {
        match &self.get(key(path))?.node {
            Node::Symlink(t) => Some(t.clone()),
            _ => None,
        }
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn ReadAt + '_>> {
        match self.get(key(path)).map(|e| &e.node) {
            Some(Node::File {
                content: Content::Bytes(b),
                ..
            }) => Ok(Box::new(Shared(b.clone()))),
            Some(Node::File {
                content: Content::Host { path: src, .. },
                ..
            }) => {
                let f = crate::fsutil::open_regular_nofollow(src)?;
                Ok(Box::new(FileSource::new(f)?))
            }
            Some(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path} is not a regular file"),
            )),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn list(&self, path: &str) -> Option<Vec<String>> {
        let k = key(path);
        if !k.is_empty() && !matches!(self.get(k)?.node, Node::Dir) {
            return None;
        }
        let prefix = if k.is_empty() {
            String::new()
        } else {
            format!("{k}/")
        };
        let mut names: Vec<String> = self
            .entries_under(&prefix)
            .filter_map(|p| {
                let rest = &p[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect();
        names.sort();
        Some(names)
    }

    fn describe(&self) -> String {
        "the image".to_string()
    }
}

/// `upper` stacked on `lower`: an entry of `upper` hides the same path in `lower`, and
/// directories list the union — how the image's layers will look to the program.
pub struct Overlay<'a> {
    /// The top tree.
    pub upper: &'a dyn Root,
    /// What shows through.
    pub lower: &'a dyn Root,
}

impl Overlay<'_> {
    /// True when `path` comes from the upper tree.
    pub fn from_upper(&self, path: &str) -> bool {
        self.upper.lstat(path).is_some()
    }
}

impl Root for Overlay<'_> {
    fn lstat(&self, path: &str) -> Option<Meta> {
        self.upper.lstat(path).or_else(|| self.lower.lstat(path))
    }

    fn readlink(&self, path: &str) -> Option<String> {
        if self.from_upper(path) {
            self.upper.readlink(path)
        } else {
            self.lower.readlink(path)
        }
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn ReadAt + '_>> {
        if self.from_upper(path) {
            self.upper.open(path)
        } else {
            self.lower.open(path)
        }
    }

    fn list(&self, path: &str) -> Option<Vec<String>> {
        let (a, b) = (self.upper.list(path), self.lower.list(path));
        let mut all: Vec<String> = a.iter().chain(b.iter()).flatten().cloned().collect();
        if a.is_none() && b.is_none() {
            return None;
        }
        all.sort();
        all.dedup();
        Some(all)
    }

    fn describe(&self) -> String {
        // "libfoo.so.1 is not in the host or the image"
        let (lower, upper) = (self.lower.describe(), self.upper.describe());
        if lower == upper {
            lower
        } else {
            format!("{lower} or {upper}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::{self, HostRoot};

    #[test]
    fn image_tree_as_root() {
        let mut t = ImageTree::new();
        t.add_bytes("/usr/lib/x/libc.so.6", b"\x7fELF", 0o755)
            .unwrap();
        t.add_symlink("/lib", "usr/lib").unwrap();
        t.add_symlink("/usr/lib/x/libc.so", "libc.so.6").unwrap();
        assert_eq!(
            root::resolve(&t, "/lib/x/libc.so").unwrap(),
            "/usr/lib/x/libc.so.6"
        );
        assert_eq!(t.list("/").unwrap(), ["lib", "usr"]);
        assert_eq!(t.list("/usr/lib/x").unwrap(), ["libc.so", "libc.so.6"]);
        assert_eq!(t.list("/lib"), None);
        assert_eq!(
            root::read_file(&t, "/lib/x/libc.so", 100).unwrap(),
            b"\x7fELF"
        );
        assert!(t.open("/usr").is_err());
    }

    #[test]
    fn overlay_hides_and_merges() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/a"), "lower").unwrap();
        std::fs::write(d.path().join("etc/b"), "lower").unwrap();
        let lower = HostRoot::new(d.path());
        let mut t = ImageTree::new();
        t.add_bytes("/etc/a", b"upper", 0o644).unwrap();
        t.add_bytes("/etc/c", b"upper", 0o644).unwrap();
        let o = Overlay {
            upper: &t,
            lower: &lower,
        };
        assert_eq!(root::read_file(&o, "/etc/a", 10).unwrap(), b"upper");
        assert_eq!(root::read_file(&o, "/etc/b", 10).unwrap(), b"lower");
        assert_eq!(o.list("/etc").unwrap(), ["a", "b", "c"]);
        assert!(o.from_upper("/etc/c") && !o.from_upper("/etc/b"));
    }
}
