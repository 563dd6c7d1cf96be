//! Who the process runs as: the config's `User` resolved against the image's
//! `/etc/passwd` and `/etc/group` by runc's rules (libcontainer/user `GetExecUser`,
//! which umoci and Docker share), and the permission test the kernel applies to that
//! identity.

use crate::root::{self, Meta, Root};

/// Largest passwd or group file read.
const MAX_DB: u64 = 1 << 20;
/// runc refuses ids above this.
const MAX_ID: u64 = (1 << 31) - 1;

/// The identity the container's process gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// What the config says (`1000`, `app:staff`, empty for root).
    pub spec: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups (from `/etc/group` membership).
    pub groups: Vec<u32>,
}

impl Identity {
    /// `root` or `user 1000 (uid 1000, gid 0)`, for messages.
    pub fn describe(&self) -> String {
        if self.spec.is_empty() {
            format!("root (uid {}, gid {})", self.uid, self.gid)
        } else {
            format!("user {} (uid {}, gid {})", self.spec, self.uid, self.gid)
        }
    }

    /// True when the kernel grants `bit` (4 read, 2 write, 1 execute/search) on an entry
    /// with `meta` to this identity. No capability is assumed: runc's default process
    /// (the one umoci generates) has no CAP_DAC_OVERRIDE, so even uid 0 gets only the
    /// owner, group or other bits that apply to it.
    pub fn allows(&self, meta: &Meta, bit: u32) -> bool {
        let shift = if meta.uid == self.uid {
            6
        } else if meta.gid == self.gid || self.groups.contains(&meta.gid) {
            3
        } else {
            0
        };
        (meta.mode >> shift) & bit != 0
    }

    /// The first directory on the way to the canonical `path` that this identity may not
    /// search, if any.
    pub fn unsearchable_dir(&self, root: &dyn Root, path: &str) -> Option<(String, Meta)> {
        let mut dir = String::from("/");
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for (i, c) in comps.iter().enumerate() {
            let meta = root.lstat(&dir)?;
            if !self.allows(&meta, 1) {
                return Some((dir, meta));
            }
            if i + 1 < comps.len() {
                if dir != "/" {
                    dir.push('/');
                }
                dir.push_str(c);
            }
        }
        None
    }
}

/// One line of `/etc/passwd` or `/etc/group`, split as runc splits it.
fn fields(line: &str) -> Vec<&str> {
    line.split(':').collect()
}

/// runc parses ids with `strconv.Atoi` and keeps 0 when that fails.
fn id(s: Option<&&str>) -> u64 {
    s.and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0)
}

fn read_db(root: &dyn Root, path: &str) -> Option<String> {
    root::read_file(root, path, MAX_DB)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Why a `User` cannot be resolved (runc refuses to start the container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserError {
    /// The user name is not in `/etc/passwd` (or there is none).
    UnknownUser(String),
    /// The group name is not in `/etc/group` (or there is none).
    UnknownGroup(String),
    /// A numeric id outside 0..2³¹.
    OutOfRange(String),
}

/// Resolves the config's `User` (`""`, `name`, `uid`, `name:group`, `uid:gid`…).
pub fn resolve(root: &dyn Root, spec: &str) -> Result<Identity, UserError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let uid_arg = user_arg.parse::<u64>().ok();
    let mut uid = 0u64;
    let mut gid = 0u64;
    let mut name: Option<String> = None;
    let passwd = read_db(root, "/etc/passwd");
    let found = passwd.as_deref().and_then(|db| {
        db.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(fields)
            .find(|f| {
                let line_uid = id(f.get(2));
                if user_arg.is_empty() {
                    line_uid == 0
                } else if let Some(u) = uid_arg {
                    line_uid == u
                } else {
                    f.first() == Some(&user_arg)
                }
            })
            .map(|f| (f.first().map(|s| s.to_string()), id(f.get(2)), id(f.get(3))))
    });
    match (found, uid_arg) {
        (Some((n, u, g)), _) => {
            name = n;
            uid = u;
            gid = g;
        }
        (None, Some(u)) => uid = u,
        (None, None) if user_arg.is_empty() => {}
        (None, None) => return Err(UserError::UnknownUser(user_arg.to_string())),
    }
    if uid > MAX_ID {
        return Err(UserError::OutOfRange(user_arg.to_string()));
    }
    let group = read_db(root, "/etc/group");
    let groups: Vec<(String, u64, Vec<String>)> = group
        .as_deref()
        .map(|db| {
            db.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(fields)
                .map(|f| {
                    (
                        f.first().unwrap_or(&"").to_string(),
                        id(f.get(2)),
                        f.get(3)
                            .map(|m| m.split(',').map(str::to_string).collect())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut supplementary = Vec::new();
    if !group_arg.is_empty() {
        let hit = groups
            .iter()
            .find(|(n, g, _)| n == group_arg || g.to_string() == group_arg);
        match (hit, group_arg.parse::<u64>().ok()) {
            (Some((_, g, _)), _) => gid = *g,
            (None, Some(g)) => gid = g,
            (None, None) => return Err(UserError::UnknownGroup(group_arg.to_string())),
        }
        if gid > MAX_ID {
            return Err(UserError::OutOfRange(group_arg.to_string()));
        }
    } else if let Some(n) = &name {
        supplementary = groups
            .iter()
            .filter(|(_, _, members)| members.iter().any(|m| m == n))
            .map(|(_, g, _)| *g as u32)
            .collect();
    }
    Ok(Identity {
        spec: spec.to_string(),
        uid: uid as u32,
        gid: gid as u32,
        groups: supplementary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::HostRoot;

    #[test]
    fn users_resolve_as_runc_resolves_them() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1001:\nstaff:x:50:app,other\n",
        )
        .unwrap();
        let r = HostRoot::new(d.path());
        let ok = |spec: &str| resolve(&r, spec).map(|i| (i.uid, i.gid, i.groups));
        type Want = Result<(u32, u32, Vec<u32>), UserError>;
        let cases: &[(&str, Want)] = &[
            ("", Ok((0, 0, vec![]))),
            ("app", Ok((1000, 1001, vec![50]))),
            ("1000", Ok((1000, 1001, vec![50]))),
            // A uid not in passwd gets gid 0.
            ("4242", Ok((4242, 0, vec![]))),
            ("app:staff", Ok((1000, 50, vec![]))),
            ("app:77", Ok((1000, 77, vec![]))),
            ("4242:4242", Ok((4242, 4242, vec![]))),
            ("nobody", Err(UserError::UnknownUser("nobody".into()))),
            ("app:wheel", Err(UserError::UnknownGroup("wheel".into()))),
            (
                "9999999999",
                Err(UserError::OutOfRange("9999999999".into())),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(&ok(spec), want, "{spec:?}");
        }
        // Without /etc/passwd only numeric users resolve.
        let empty = tempfile::tempdir().unwrap();
        let e = HostRoot::new(empty.path());
        assert!(resolve(&e, "app").is_err());
        assert_eq!(resolve(&e, "1000").unwrap().uid, 1000);
    }

    #[test]
    fn permission_bits_apply_by_class() {
        let id = Identity {
            spec: "1000".into(),
            uid: 1000,
            gid: 0,
            groups: vec![50],
        };
        let m = |mode, uid, gid| Meta {
            kind: crate::root::FileType::File,
            mode,
            uid,
            gid,
            size: 0,
        };
        assert!(id.allows(&m(0o100, 1000, 9), 1));
        assert!(!id.allows(&m(0o011, 1000, 9), 1));
        assert!(id.allows(&m(0o010, 0, 50), 1));
        assert!(!id.allows(&m(0o744, 0, 0), 1));
        assert!(id.allows(&m(0o755, 0, 0), 1));
        let root = Identity {
            spec: String::new(),
            uid: 0,
            gid: 0,
            groups: vec![],
        };
        // No CAP_DAC_OVERRIDE: root's own bits decide.
        assert!(!root.allows(&m(0o644, 0, 0), 1));
        assert!(!root.allows(&m(0o701 & 0o070, 1000, 1000), 1));
    }
}
