//! Where entries land when a layer is written over others: through the symlinked
//! directories of the layers below, as Docker's COPY and every unpacker put them.

use super::{Entry, ImageTree, Node};
use crate::root::{self, FileType, ResolveError, Root};

/// Where a path lands in `fs` when something is written there: its parent directories
/// resolved through symlinks inside the image (as Docker does, so `COPY x /bin/` over a
/// base whose /bin links to /usr/bin writes /usr/bin/x), the last component kept. A
/// link whose target is missing is followed too: the target is what gets created, as
/// BuildKit's mkdir makes it (`WORKDIR /w/sub` with `/w -> /data` makes /data/sub).
/// Returns a normalized absolute path.
pub fn resolve_parent(fs: &dyn Root, path: &str) -> std::result::Result<String, ResolveError> {
    let mut path = path.to_string();
    for _ in 0..=root::MAX_HOPS {
        match parent_once(fs, &path)? {
            Ok(real) => return Ok(real),
            Err(through_link) => path = through_link,
        }
    }
    Err(ResolveError::Loop { at: path })
}

/// One pass of [`resolve_parent`]: the path, or Err with the path rewritten through the
/// first dangling link on the way.
fn parent_once(
    fs: &dyn Root,
    path: &str,
) -> std::result::Result<std::result::Result<String, String>, ResolveError> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, parents)) = comps.split_last() else {
        return Ok(Ok("/".to_string()));
    };
    let mut dir = "/".to_string();
    for (i, c) in parents.iter().enumerate() {
        let next = if dir == "/" {
            format!("/{c}")
        } else {
            format!("{dir}/{c}")
        };
        match root::resolve(fs, &next) {
            Ok(real) => {
                if fs.lstat(&real).map(|m| m.kind) != Some(FileType::Dir) {
                    return Err(ResolveError::NotDir { at: real });
                }
                dir = real;
            }
            Err(ResolveError::NotFound { .. }) => {
                if let Some(target) = link_target(fs, &next) {
                    let rest = comps[i + 1..].join("/");
                    return Ok(Err(format!("{target}/{rest}")));
                }
                // Missing from here on: the rest is created as written.
                let rest = parents[i..].join("/");
                dir = if dir == "/" {
                    format!("/{rest}")
                } else {
                    format!("{dir}/{rest}")
                };
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(if dir == "/" {
        format!("/{last}")
    } else {
        format!("{dir}/{last}")
    }))
}

/// What the symlink at `real` (whose parent is a real directory) points to, as an
/// absolute path; None when `real` is not a link.
fn link_target(fs: &dyn Root, real: &str) -> Option<String> {
    if fs.lstat(real).map(|m| m.kind) != Some(FileType::Symlink) {
        return None;
    }
    let t = fs.readlink(real)?;
    let parent = real.rsplit_once('/').map_or("", |(p, _)| p);
    Some(super::lexical(&if t.starts_with('/') {
        t
    } else {
        format!("{parent}/{t}")
    }))
}

/// Puts entries into a new layer tree over the filesystem `fs` below it: each lands where
/// `fs` resolves it, the directories above it carry their metadata from `fs` (so `COPY x /tmp/`
/// keeps /tmp's mode) or, missing there, are made 0755 and owned by `owner` (root by
/// default); a directory entry that meets a symlink to a directory follows it instead
/// of replacing the link (and, with `keep_dirs`, one that is there already keeps its
/// metadata).
pub fn place(
    fs: &dyn Root,
    entries: Vec<(String, Entry)>,
    owner: Option<(u32, u32)>,
    keep_dirs: bool,
) -> std::result::Result<ImageTree, String> {
    let (uid, gid) = owner.unwrap_or((0, 0));
    let mut layer = ImageTree::new();
    for (path, mut entry) in entries {
        let mut real =
            resolve_parent(fs, &path).map_err(|e| format!("cannot write {path}: {e}"))?;
        if matches!(entry.node, Node::Dir) && real != "/" {
            // A link to a directory stays, and the directory keeps its own metadata;
            // with `keep_dirs`, so does any directory that is there already (`/tmp`
            // stays 1777 when `build --add` puts a file into it). A Dockerfile COPY
            // gives an existing subdirectory the copied one's metadata, as BuildKit does.
            let mut keep = keep_dirs;
            let mut hops = 0;
            while fs.lstat(&real).map(|m| m.kind) == Some(FileType::Symlink)
                && hops <= root::MAX_HOPS
            {
                hops += 1;
                match root::resolve(fs, &real) {
                    Ok(t) if fs.lstat(&t).map(|m| m.kind) == Some(FileType::Dir) => {
                        real = t;
                        keep = true;
                    }
                    // A link to a file: refused below, as the file itself.
                    Ok(t) => real = t,
                    // A dangling link: its target is made (BuildKit's mkdir follows it).
                    Err(ResolveError::NotFound { .. }) => {
                        if let Some(t) = link_target(fs, &real) {
                            real = resolve_parent(fs, &t)
                                .map_err(|e| format!("cannot write {path}: {e}"))?;
                            continue;
                        }
                    }
                    _ => {}
                }
                break;
            }
            if fs.lstat(&real).map(|m| m.kind) == Some(FileType::File) {
                return Err(format!(
                    "cannot make the directory {path}: {real} is a file in the image below"
                ));
            }
            if let Some(m) = fs.lstat(&real).filter(|m| keep && m.kind == FileType::Dir) {
                entry = Entry {
                    node: Node::Dir,
                    mode: m.mode,
                    uid: m.uid,
                    gid: m.gid,
                };
            }
        }
        if real == "/" {
            continue;
        }
        // Parents that exist in the stage keep their owner and mode.
        let key = real.trim_start_matches('/');
        for (i, _) in key.match_indices('/') {
            let parent = &key[..i];
            if layer.get(parent).is_some() {
                continue;
            }
            let dir = match fs
                .lstat(&format!("/{parent}"))
                .filter(|m| m.kind == FileType::Dir)
            {
                Some(m) => Entry {
                    node: Node::Dir,
                    mode: m.mode,
                    uid: m.uid,
                    gid: m.gid,
                },
                None => Entry {
                    node: Node::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                },
            };
            layer.insert(parent, dir).map_err(|e| e.to_string())?;
        }
        layer.insert(&real, entry).map_err(|e| e.to_string())?;
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Entry {
        Entry {
            node: Node::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn directories_follow_dangling_links_and_refuse_loops_and_files() {
        let mut below = ImageTree::new();
        below.add_symlink("/w", "/data").unwrap();
        below.add_symlink("/a", "b").unwrap();
        below.add_symlink("/b", "a").unwrap();
        below.add_bytes("/f", b"x", 0o644).unwrap();
        below.add_symlink("/cfg", "f").unwrap();
        // The link's target is made, under the link and through it.
        let layer = place(&below, vec![("/w/sub".into(), dir())], None, false).unwrap();
        assert!(layer.get("data/sub").is_some() && layer.get("w").is_none());
        let layer = place(&below, vec![("/w".into(), dir())], None, false).unwrap();
        assert!(layer.get("data").is_some() && layer.get("w").is_none());
        // A cycle of links is an error, not a loop.
        let e = place(&below, vec![("/a/x".into(), dir())], None, false).unwrap_err();
        assert!(e.contains("too many levels of symbolic links"), "{e}");
        // A file, or a link to one, is never replaced by a directory.
        for p in ["/f", "/cfg"] {
            let e = place(&below, vec![(p.into(), dir())], None, false).unwrap_err();
            assert_eq!(
                e,
                format!("cannot make the directory {p}: /f is a file in the image below")
            );
        }
    }
}
