//! A read-only view of a filesystem tree — the host, a `--sysroot`, or an image's merged
//! layers — and path resolution that follows symlinks *inside* it: absolute targets mean
//! the tree's root, `..` never climbs above it, and chains stop after 40 hops as the
//! kernel's do. The loader rules and the start-up check both run over a [`Root`].

use crate::elf::ReadAt;
use std::io;
use std::path::PathBuf;

/// Most symlinks followed while resolving one path (Linux's limit).
pub const MAX_HOPS: usize = 40;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

/// Metadata of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Its type.
    pub kind: FileType,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Length in bytes (regular files).
    pub size: u64,
}

/// A read-only filesystem tree. Paths are absolute, `/`-separated, already normalized
/// (no `.`, `..` or empty components) and, except for the last component, already
/// resolved to real directories — [`resolve`] produces such paths.
pub trait Root: Sync {
    /// The entry at `path`, without following a final symlink.
    fn lstat(&self, path: &str) -> Option<Meta>;
    /// The target of the symlink at `path`, as written.
    fn readlink(&self, path: &str) -> Option<String>;
    /// Opens the regular file at `path` for positioned reads.
    fn open(&self, path: &str) -> io::Result<Box<dyn ReadAt + '_>>;
    /// The names in the directory at `path`, sorted.
    fn list(&self, path: &str) -> Option<Vec<String>>;
    /// How to name this tree in messages (`the host`, `sysroot /usr/aarch64-linux-gnu`).
    fn describe(&self) -> String;
}

/// Why a path did not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A component does not exist; `at` is the first missing path (after symlinks).
    #[error("{at} does not exist")]
    NotFound {
        /// The missing path.
        at: String,
    },
    /// A component that must be a directory is not one.
    #[error("{at} is not a directory")]
    NotDir {
        /// The offending path.
        at: String,
    },
    /// More than [`MAX_HOPS`] symlinks.
    #[error("too many levels of symbolic links (a loop?) at {at}")]
    Loop {
        /// Where the limit was hit.
        at: String,
    },
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

/// Resolves `path` inside `root`, following every symlink (including the last
/// component), and returns the canonical path of what it names, which exists.
pub fn resolve(root: &dyn Root, path: &str) -> Result<String, ResolveError> {
    resolve_inner(root, path, true, None)
}

/// Like [`resolve`], but a final symlink is not followed: returns the canonical path of
/// the entry itself (its parent directories resolved). The entry must exist.
pub fn resolve_nofollow(root: &dyn Root, path: &str) -> Result<String, ResolveError> {
    resolve_inner(root, path, false, None)
}

/// One symlink followed while resolving a path: the link's own canonical path and its
/// target as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Where the link is (its parent directories already resolved).
    pub path: String,
    /// What it points to, as written in the link.
    pub target: String,
}

/// Like [`resolve`], and also returns every symlink followed on the way, in order, so a
/// copy of the tree can recreate the same chain (`/lib64` → `usr/lib64`, …).
pub fn resolve_links(root: &dyn Root, path: &str) -> Result<(String, Vec<Link>), ResolveError> {
    let mut links = Vec::new();
    let real = resolve_inner(root, path, true, Some(&mut links))?;
    Ok((real, links))
}

fn resolve_inner(
    root: &dyn Root,
    path: &str,
    follow_last: bool,
    mut links: Option<&mut Vec<Link>>,
) -> Result<String, ResolveError> {
    // Components still to walk, last one at the end (we pop from the front via reverse).
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut cur = "/".to_string();
    let mut hops = 0;
    while let Some(comp) = todo.pop() {
        match comp.as_str() {
            "." => continue,
            ".." => {
                cur = parent(&cur);
                continue;
            }
            _ => {}
        }
        let next = join(&cur, &comp);
        let meta = root
            .lstat(&next)
            .ok_or_else(|| ResolveError::NotFound { at: next.clone() })?;
        let last = todo.is_empty();
        match meta.kind {
            FileType::Symlink if !last || follow_last => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(ResolveError::Loop { at: next });
                }
                let target = root
                    .readlink(&next)
                    .ok_or_else(|| ResolveError::NotFound { at: next.clone() })?;
                if let Some(l) = links.as_deref_mut() {
                    l.push(Link {
                        path: next.clone(),
                        target: target.clone(),
                    });
                }
                if target.starts_with('/') {
                    cur = "/".to_string();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
            FileType::Dir => cur = next,
            _ if last => cur = next,
            _ => return Err(ResolveError::NotDir { at: next }),
        }
    }
    Ok(cur)
}

/// Reads a whole regular file (after resolving symlinks), refusing files over `max`.
pub fn read_file(root: &dyn Root, path: &str, max: u64) -> io::Result<Vec<u8>> {
    let real = resolve(root, path).map_err(|e| io::Error::new(io::ErrorKind::NotFound, e))?;
    let meta = root
        .lstat(&real)
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    if meta.kind != FileType::File {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{real} is not a regular file"),
        ));
    }
    if meta.size > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{real} is larger than {max} bytes"),
        ));
    }
    let f = root.open(&real)?;
    let mut buf = vec![0; f.size() as usize];
    f.read_exact_at(0, &mut buf)?;
    Ok(buf)
}

/// A directory on this machine seen as a root: `/` for the host, or a sysroot.
#[derive(Clone, Debug)]
pub struct HostRoot {
    base: PathBuf,
}

impl HostRoot {
    /// The tree under `base` (`/` for the host itself).
    pub fn new(base: impl Into<PathBuf>) -> HostRoot {
        HostRoot { base: base.into() }
    }

    /// The host path for a path inside this root.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.base.join(path.trim_start_matches('/'))
    }
}

impl Root for HostRoot {
    fn lstat(&self, path: &str) -> Option<Meta> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(self.host_path(path)).ok()?;
        let ft = m.file_type();
        let kind = if ft.is_file() {
            FileType::File
        } else if ft.is_dir() {
            FileType::Dir
        } else if ft.is_symlink() {
            FileType::Symlink
        } else {
            FileType::Other
        };
        Some(Meta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
        })
    }

    fn readlink(&self, path: &str) -> Option<String> {
        std::fs::read_link(self.host_path(path))
            .ok()?
            .to_str()
            .map(str::to_string)
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn ReadAt + '_>> {
        let f = crate::fsutil::open_regular_nofollow(&self.host_path(path))?;
        Ok(Box::new(crate::elf::FileSource::new(f)?))
    }

    fn list(&self, path: &str) -> Option<Vec<String>> {
        let mut v: Vec<String> = std::fs::read_dir(self.host_path(path))
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        v.sort();
        Some(v)
    }

    fn describe(&self) -> String {
        if self.base == std::path::Path::new("/") {
            "the host".to_string()
        } else {
            format!("sysroot {}", self.base.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// 40 symlinks in a row resolve, 41 are a loop: Linux's MAXSYMLINKS, checked against
    /// the kernel on the same chains.
    #[test]
    fn chains_of_forty_links_resolve_and_forty_one_do_not_as_in_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::write(b.join("target"), "x").unwrap();
        for (n, ok) in [(40usize, true), (41, false)] {
            let dir = b.join(format!("chain{n}"));
            std::fs::create_dir(&dir).unwrap();
            for i in 1..=n {
                let next = if i == n {
                    "/target".to_string()
                } else {
                    format!("l{}", i + 1)
                };
                symlink(&next, dir.join(format!("l{i}"))).unwrap();
            }
            // The kernel, on the same chain with the last link made host-absolute.
            let last = dir.join(format!("l{n}"));
            std::fs::remove_file(&last).unwrap();
            symlink(b.join("target"), &last).unwrap();
            assert_eq!(std::fs::metadata(dir.join("l1")).is_ok(), ok, "kernel, {n}");
            std::fs::remove_file(&last).unwrap();
            symlink("/target", &last).unwrap();
            let r = HostRoot::new(b);
            let got = resolve(&r, &format!("/chain{n}/l1"));
            assert_eq!(got.is_ok(), ok, "{n}: {got:?}");
            if ok {
                assert_eq!(got.unwrap(), "/target");
            } else {
                assert!(matches!(got, Err(ResolveError::Loop { .. })), "{got:?}");
            }
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::create_dir_all(b.join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(b.join("lib/x86_64-linux-gnu/libc.so.6"), "x").unwrap();
        std::fs::create_dir_all(b.join("lib64")).unwrap();
        // Absolute target: relative to the root, not the host.
        symlink("/lib/x86_64-linux-gnu/libc.so.6", b.join("lib64/abs")).unwrap();
        symlink("../lib/x86_64-linux-gnu/libc.so.6", b.join("lib64/rel")).unwrap();
        symlink("../../../../../etc/passwd", b.join("lib64/escape")).unwrap();
        symlink("loop2", b.join("lib64/loop1")).unwrap();
        symlink("loop1", b.join("lib64/loop2")).unwrap();
        symlink("/etc", b.join("hostetc")).unwrap();
        let r = HostRoot::new(b);
        let want = "/lib/x86_64-linux-gnu/libc.so.6";
        assert_eq!(resolve(&r, "/lib64/abs").unwrap(), want);
        assert_eq!(resolve(&r, "/lib64/rel").unwrap(), want);
        assert_eq!(resolve(&r, "/lib64/../lib64/./rel").unwrap(), want);
        assert_eq!(resolve_nofollow(&r, "/lib64/abs").unwrap(), "/lib64/abs");
        // `..` stops at the root, so the escape lands on the root's own /etc/passwd.
        assert_eq!(
            resolve(&r, "/lib64/escape"),
            Err(ResolveError::NotFound {
                at: "/etc".to_string()
            })
        );
        assert!(matches!(
            resolve(&r, "/lib64/loop1"),
            Err(ResolveError::Loop { .. })
        ));
        // A link to the host's /etc resolves to the root's /etc, which is absent.
        assert!(resolve(&r, "/hostetc/passwd").is_err());
        assert_eq!(
            resolve(&r, "/lib/x86_64-linux-gnu/libc.so.6/x"),
            Err(ResolveError::NotDir {
                at: want.to_string()
            })
        );
        assert_eq!(read_file(&r, "/lib64/rel", 10).unwrap(), b"x");
        let (real, links) = resolve_links(&r, "/lib64/abs").unwrap();
        assert_eq!(real, want);
        assert_eq!(
            links,
            [Link {
                path: "/lib64/abs".into(),
                target: "/lib/x86_64-linux-gnu/libc.so.6".into()
            }]
        );
        assert!(read_file(&r, "/lib64", 10).is_err());
    }
}
