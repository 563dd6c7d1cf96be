//! Who the process runs as — the config's `User` resolved by runc's rules (the shared
//! [`crate::run::user`] lookup in the image's `/etc/passwd` and `/etc/group`) — and the
//! permission test the kernel applies to that identity.

use crate::root::{FileType, Meta, Root};
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

    /// How the kernel answers a request for `bit` (4 read, 2 write, 1 execute/search) on
    /// an entry with `meta` from this identity. Root is judged as Docker, Podman and
    /// `nobase run` start it, with CAP_DAC_OVERRIDE: reading, writing and searching are
    /// always allowed, executing a file when any execute bit is set. Where root has no
    /// capabilities (runc's default spec, umoci's bundles, a pod that drops ALL), only
    /// the owner, group or other bits that apply count: [`Grant::Override`] tells.
    pub fn grant(&self, meta: &Meta, bit: u32) -> Grant {
        let shift = if meta.uid == self.uid {
            6
        } else if meta.gid == self.gid || self.groups.contains(&meta.gid) {
            3
        } else {
            0
        };
        if (meta.mode >> shift) & bit != 0 {
            Grant::Bits
        } else if self.uid == 0
            && (bit != 1 || meta.kind == FileType::Dir || meta.mode & 0o111 != 0)
        {
            Grant::Override
        } else {
            Grant::Denied
        }
    }

    /// True when the kernel grants `bit` (see [`Identity::grant`]).
    pub fn allows(&self, meta: &Meta, bit: u32) -> bool {
        self.grant(meta, bit) != Grant::Denied
    }

    /// The first directory on the way to the canonical `path` that this identity may not
    /// search by its mode bits, if any, and whether root's CAP_DAC_OVERRIDE searches it.
    pub fn unsearchable_dir(&self, root: &dyn Root, path: &str) -> Option<(String, Meta, Grant)> {
        let mut dir = String::from("/");
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for (i, c) in comps.iter().enumerate() {
            let meta = root.lstat(&dir)?;
            match self.grant(&meta, 1) {
                Grant::Bits => {}
                g => return Some((dir, meta, g)),
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

/// The kernel's answer to an access request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// The mode bits that apply to the identity allow it.
    Bits,
    /// Only root's CAP_DAC_OVERRIDE allows it.
    Override,
    /// Refused.
    Denied,
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
        // CAP_DAC_OVERRIDE: root executes a file with any execute bit, reads and
        // searches anything; without it (runc's default spec) only its bits count.
        assert_eq!(root.grant(&m(0o700, 0, 0), 1), Grant::Bits);
        assert_eq!(root.grant(&m(0o750, 1001, 1002), 1), Grant::Override);
        assert_eq!(root.grant(&m(0o001, 1000, 1000), 1), Grant::Bits);
        assert_eq!(root.grant(&m(0o600, 1000, 1000), 4), Grant::Override);
        assert_eq!(root.grant(&m(0o644, 0, 0), 1), Grant::Denied);
        assert_eq!(root.grant(&m(0o600, 1000, 1000), 1), Grant::Denied);
        let dir = Meta {
            kind: crate::root::FileType::Dir,
            ..m(0o700, 2000, 2000)
        };
        assert_eq!(root.grant(&dir, 1), Grant::Override);
        assert_eq!(id.grant(&dir, 1), Grant::Denied);
    }
}
