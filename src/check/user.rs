//! Who the process runs as — the config's `User` resolved by runc's rules (the shared
//! [`crate::run::user`] lookup in the image's `/etc/passwd` and `/etc/group`) — and the
//! permission test the kernel applies to that identity.

use crate::root::{Meta, Root};
pub use crate::run::user::UserError;

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

/// Resolves the config's `User` (`""`, `name`, `uid`, `name:group`, `uid:gid`…).
pub fn resolve(root: &dyn Root, spec: &str) -> Result<Identity, UserError> {
    let u = crate::run::user::lookup(root, spec)?;
    Ok(Identity {
        spec: spec.to_string(),
        uid: u.uid,
        gid: u.gid,
        groups: u.additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
