//! The filesystem of a stage while it is built: the files this build added (one
//! [`ImageTree`], later layers over earlier ones) over the base image's tree, seen as
//! one read-only [`Root`]. `COPY --from`, `--chown` names, destinations that go through
//! symlinks, and the platform guess all read it.

use crate::elf::ReadAt;
use crate::error::{Error, Result};
use crate::root::{Meta, Root};
use crate::run::user::UserError;
use crate::tree::{Content, Entry, ImageTree, Node};
use std::io;
use std::sync::Arc;

/// A stage's merged view.
#[derive(Clone, Default)]
pub struct StageFs {
    /// The base image's tree (none for `FROM scratch`).
    pub base: Option<Arc<dyn Root + Send>>,
    /// What the stage's own layers added, merged.
    pub upper: ImageTree,
}

impl std::fmt::Debug for StageFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageFs")
            .field("base", &self.base.as_ref().map(|b| b.describe()))
            .field("upper_entries", &self.upper.entries().count())
            .finish()
    }
}

fn key(path: &str) -> &str {
    path.trim_start_matches('/')
}

impl StageFs {
    /// True when the path (normalized, absolute) is hidden from the base by something
    /// this stage put above it: a non-directory at one of its parents.
    fn shadowed(&self, path: &str) -> bool {
        let k = key(path);
        k.match_indices('/').any(|(i, _)| {
            self.upper
                .get(&k[..i])
                .is_some_and(|e| !matches!(e.node, Node::Dir))
        })
    }

    /// The tree entry at a path this stage added, if any.
    pub fn upper_entry(&self, path: &str) -> Option<&Entry> {
        self.upper.get(key(path))
    }

    /// The content of the regular file at `path` (already resolved), for copying it
    /// into another tree: a stage's own files are shared, a base image's are read.
    pub fn content(&self, path: &str, spool: &mut super::spool::Spool) -> Result<Content> {
        if let Some(e) = self.upper_entry(path) {
            if let Node::File { content, .. } = &e.node {
                return Ok(content.clone());
            }
        }
        let base = self
            .base
            .as_ref()
            .ok_or_else(|| Error::Invalid(format!("{path} is not a file in the stage")))?;
        let f = base
            .open(path)
            .map_err(|e| Error::Invalid(format!("reading {path} in {}: {e}", base.describe())))?;
        spool.keep(&*f, path)
    }
}

/// The stage's own files hide the base's: an entry of `upper` at a path, or a
/// non-directory above it, hides what the base has there; directories list the union.
impl Root for StageFs {
    fn lstat(&self, path: &str) -> Option<Meta> {
        if key(path).is_empty() {
            return self
                .base
                .as_ref()
                .and_then(|b| b.lstat("/"))
                .or_else(|| self.upper.lstat("/"));
        }
        if self.upper.get(key(path)).is_some() {
            return self.upper.lstat(path);
        }
        if self.shadowed(path) {
            return None;
        }
        self.base.as_ref()?.lstat(path)
    }

    fn readlink(&self, path: &str) -> Option<String> {
        if self.upper.get(key(path)).is_some() {
            return self.upper.readlink(path);
        }
        if self.shadowed(path) {
            return None;
        }
        self.base.as_ref()?.readlink(path)
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn ReadAt + '_>> {
        if self.upper.get(key(path)).is_some() {
            return self.upper.open(path);
        }
        match &self.base {
            Some(b) if !self.shadowed(path) => b.open(path),
            _ => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn list(&self, path: &str) -> Option<Vec<String>> {
        let mine = match self.upper.get(key(path)) {
            Some(Entry {
                node: Node::Dir, ..
            }) => self.upper.list(path),
            Some(_) => return None,
            None if key(path).is_empty() => self.upper.list(path),
            None => None,
        };
        let below = match &self.base {
            Some(b) if !self.shadowed(path) => b.list(path),
            _ => None,
        };
        if mine.is_none() && below.is_none() {
            return None;
        }
        let all: std::collections::BTreeSet<String> =
            mine.into_iter().chain(below).flatten().collect();
        Some(all.into_iter().collect())
    }

    fn describe(&self) -> String {
        match &self.base {
            Some(b) => format!("the stage over {}", b.describe()),
            None => "the image".to_string(),
        }
    }
}

/// A user and group as `--chown` gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
}

/// Resolves `user[:group]` (numbers, or names looked up in the image's `/etc/passwd` and
/// `/etc/group`) as BuildKit does: without a group, a uid is its own gid and a name
/// takes its passwd entry's group; without a user (`:group`), the user is root.
pub fn parse_owner(spec: &str, fs: &dyn Root) -> std::result::Result<Owner, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if (user.is_empty() && group.is_none()) || group == Some("") {
        return Err(format!("{spec:?} is not USER[:GROUP]"));
    }
    // No user, or `root`, is uid 0 even without a passwd (BuildKit reads no file for it).
    let user = if user.is_empty() || user == "root" {
        "0"
    } else {
        user
    };
    let group = match group {
        Some("root") => Some("0"),
        g => g,
    };
    let numeric = user.parse::<u32>().is_ok();
    // Names are looked up with the runtime's rules (run::user); only a uid's default
    // group differs: the Dockerfile reference makes it the uid.
    let spec = match group {
        Some(g) => format!("{user}:{g}"),
        None => user.to_string(),
    };
    let found = crate::run::user::lookup(fs, &spec).map_err(|e| match e {
        UserError::UnknownUser(u) => {
            format!("no user {u:?} in the image's /etc/passwd (or it has none); use a number")
        }
        UserError::UnknownGroup { group, .. } => {
            format!("no group {group:?} in the image's /etc/group (or it has none); use a number")
        }
    })?;
    let uid = found.uid;
    let gid = if group.is_none() && numeric {
        uid
    } else {
        found.gid
    };
    Ok(Owner { uid, gid })
}

/// Parses `--chmod`: octal permission bits (`755`, `0644`, `4755`).
pub fn parse_chmod(s: &str) -> std::result::Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| !s.is_empty() && *m <= 0o7777)
        .ok_or_else(|| format!("--chmod={s:?} is not an octal mode such as 755 or 0644"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root;
    use crate::tree::resolve_parent;

    fn fs_with_base() -> StageFs {
        let mut base = ImageTree::new();
        base.add_dir("/usr/bin", 0o755).unwrap();
        base.add_symlink("/bin", "usr/bin").unwrap();
        base.add_bytes(
            "/etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
            0o644,
        )
        .unwrap();
        base.add_bytes("/etc/group", b"root:x:0:\nstaff:x:50:\n", 0o644)
            .unwrap();
        base.add_bytes("/usr/bin/tool", b"x", 0o755).unwrap();
        StageFs {
            base: Some(Arc::new(StageFs {
                base: None,
                upper: base,
            })),
            upper: ImageTree::new(),
        }
    }

    #[test]
    fn overlay_lookups_and_listing() {
        let mut fs = fs_with_base();
        fs.upper.add_bytes("/usr/bin/new", b"y", 0o755).unwrap();
        assert_eq!(fs.list("/usr/bin").unwrap(), ["new", "tool"]);
        assert_eq!(root::resolve(&fs, "/bin/tool").unwrap(), "/usr/bin/tool");
        // A file this stage put at /usr hides everything the base had below it.
        fs.upper = ImageTree::new();
        fs.upper.add_bytes("/usr", b"z", 0o644).unwrap();
        assert!(fs.lstat("/usr/bin/tool").is_none());
        assert!(fs.list("/usr").is_none());
    }

    #[test]
    fn destinations_follow_symlinked_parents() {
        let fs = fs_with_base();
        assert_eq!(resolve_parent(&fs, "/bin/x").unwrap(), "/usr/bin/x");
        assert_eq!(resolve_parent(&fs, "/new/dir/x").unwrap(), "/new/dir/x");
        assert_eq!(resolve_parent(&fs, "/bin/new/x").unwrap(), "/usr/bin/new/x");
        assert!(resolve_parent(&fs, "/etc/passwd/x").is_err());
    }

    #[test]
    fn owners_resolve_names_and_numbers() {
        let fs = fs_with_base();
        for (spec, want) in [
            // A uid alone is its own group, even when passwd gives it another; a name
            // alone takes its passwd group (BuildKit's rules); no user is root.
            ("1000", Ok((1000, 1000))),
            ("1000:50", Ok((1000, 50))),
            ("app", Ok((1000, 1001))),
            ("app:staff", Ok((1000, 50))),
            (":1", Ok((0, 1))),
            (":staff", Ok((0, 50))),
            ("nobody", Err(())),
            ("app:nogroup", Err(())),
            (":", Err(())),
            ("", Err(())),
        ] {
            let got = parse_owner(spec, &fs)
                .map(|o| (o.uid, o.gid))
                .map_err(|_| ());
            assert_eq!(got, want, "{spec}");
        }
        let empty = StageFs::default();
        for spec in ["root", "root:root", "0:root"] {
            assert_eq!(
                parse_owner(spec, &empty).unwrap(),
                Owner { uid: 0, gid: 0 },
                "{spec}"
            );
        }
        assert!(parse_owner("app", &empty)
            .unwrap_err()
            .contains("no user \"app\""));
        assert_eq!(
            parse_owner("0:0", &empty).unwrap(),
            Owner { uid: 0, gid: 0 }
        );
    }

    #[test]
    fn chmod_values() {
        assert_eq!(parse_chmod("755").unwrap(), 0o755);
        assert_eq!(parse_chmod("0644").unwrap(), 0o644);
        assert!(parse_chmod("u+x").is_err());
        assert!(parse_chmod("99").is_err());
        assert!(parse_chmod("17777").is_err());
    }
}
