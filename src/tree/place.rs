//! Where entries land when a layer is written over others: through the symlinked
//! directories of the layers below, as Docker's COPY and every unpacker put them.

use super::{Entry, ImageTree, Node};
use crate::root::{self, FileType, ResolveError, Root};

/// Where a path lands in `fs` when something is written there: its parent directories
/// resolved through symlinks inside the image (as Docker does, so `COPY x /bin/` over a
/// base whose /bin links to /usr/bin writes /usr/bin/x), the last component kept.
/// Returns a normalized absolute path.
pub fn resolve_parent(fs: &dyn Root, path: &str) -> std::result::Result<String, ResolveError> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let Some((last, parents)) = comps.split_last() else {
        return Ok("/".to_string());
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
    Ok(if dir == "/" {
        format!("/{last}")
    } else {
        format!("{dir}/{last}")
    })
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
            if fs.lstat(&real).map(|m| m.kind) == Some(FileType::Symlink) {
                if let Ok(t) = root::resolve(fs, &real) {
                    if fs.lstat(&t).map(|m| m.kind) == Some(FileType::Dir) {
                        real = t;
                        keep = true;
                    }
                }
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
