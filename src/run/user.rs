//! The image's `User` (`uid`, `uid:gid`, `name`, `name:group`…) turned into the numeric
//! ids a runtime needs, looked up in the image's own `/etc/passwd` and `/etc/group` (read
//! inside the unpacked root, never the host's), as Docker and runc resolve it.

use crate::error::{Error, Result};
use crate::root::{read_file, Root};

/// Largest passwd or group file read.
const MAX_DB: u64 = 4 << 20;

/// A user resolved to numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group` membership), sorted, without `gid`.
    pub additional_gids: Vec<u32>,
    /// The home directory from passwd, if the user has an entry.
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_db(root: &dyn Root, path: &str) -> Option<String> {
    read_file(root, path, MAX_DB)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn passwd(root: &dyn Root) -> Vec<PasswdEntry> {
    read_db(root, "/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || l.starts_with('#') {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn groups(root: &dyn Root) -> Vec<GroupEntry> {
    read_db(root, "/etc/group")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || l.starts_with('#') {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Why a `User` does not resolve (runc refuses to start such a container).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user name the image's `/etc/passwd` does not define (or it has none).
    #[error("user {0:?} is not in the image's /etc/passwd; give a numeric user (-u 1000 or -u 1000:1000)")]
    UnknownUser(String),
    /// A group name the image's `/etc/group` does not define (or it has none).
    #[error(
        "group {group:?} is not in the image's /etc/group; give a numeric group (-u {user}:1000)"
    )]
    UnknownGroup {
        /// The group as written.
        group: String,
        /// The user part of the spec.
        user: String,
    },
}

/// Resolves `spec` (`""` means root) in `root`. A name that the image does not define is
/// an error; a numeric id needs no entry. Supplementary groups are added, as runc does,
/// when no group is given explicitly.
pub fn resolve(root: &dyn Root, spec: &str) -> Result<ResolvedUser> {
    lookup(root, spec).map_err(|e| Error::Invalid(e.to_string()))
}

/// [`resolve`], telling an unknown user from an unknown group (for `nobase check`).
pub fn lookup(root: &dyn Root, spec: &str) -> std::result::Result<ResolvedUser, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let users = passwd(root);
    let entry = match numeric(user) {
        Some(uid) => users.iter().find(|e| e.uid == uid),
        None if user.is_empty() => users.iter().find(|e| e.uid == 0),
        None => Some(
            users
                .iter()
                .find(|e| e.name == user)
                .ok_or_else(|| UserError::UnknownUser(user.to_string()))?,
        ),
    };
    let uid = match (numeric(user), entry) {
        (Some(uid), _) => uid,
        (None, Some(e)) => e.uid,
        (None, None) => 0,
    };
    let all_groups = groups(root);
    let gid = match group {
        Some("") | None => entry.map_or(0, |e| e.gid),
        Some(g) => match numeric(g) {
            Some(gid) => gid,
            None => all_groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::UnknownGroup {
                    group: g.to_string(),
                    user: user.to_string(),
                })?,
        },
    };
    let mut additional_gids: Vec<u32> = match (group, entry) {
        (None, Some(e)) => all_groups
            .iter()
            .filter(|g| g.members.contains(&e.name) && g.gid != gid)
            .map(|g| g.gid)
            .collect(),
        _ => Vec::new(),
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::HostRoot;

    #[test]
    fn users_resolve_like_runc() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbroken line\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\n",
        )
        .unwrap();
        let r = HostRoot::new(d.path());
        let u = |s: &str| resolve(&r, s);
        let user = |uid, gid, extra: &[u32], home: Option<&str>| ResolvedUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
            home: home.map(str::to_string),
        };
        assert_eq!(u("").unwrap(), user(0, 0, &[], Some("/root")));
        assert_eq!(
            u("app").unwrap(),
            user(1000, 1000, &[10, 29], Some("/home/app"))
        );
        assert_eq!(
            u("1000").unwrap(),
            user(1000, 1000, &[10, 29], Some("/home/app"))
        );
        assert_eq!(
            u("app:wheel").unwrap(),
            user(1000, 10, &[], Some("/home/app"))
        );
        assert_eq!(u("1000:5").unwrap(), user(1000, 5, &[], Some("/home/app")));
        assert_eq!(u("4242").unwrap(), user(4242, 0, &[], None));
        assert_eq!(u("4242:4242").unwrap(), user(4242, 4242, &[], None));
        assert!(u("nobody").is_err());
        assert!(u("app:nogroup").is_err());
        // No passwd at all (a scratch image): numbers only.
        let empty = tempfile::tempdir().unwrap();
        let r = HostRoot::new(empty.path());
        assert_eq!(resolve(&r, "").unwrap(), user(0, 0, &[], None));
        assert_eq!(
            resolve(&r, "1000:1000").unwrap(),
            user(1000, 1000, &[], None)
        );
        assert!(resolve(&r, "app").is_err());
    }
}
