//! What can be known about a start before the runtime tries it: the image's platform
//! against this machine, and the program itself — found (on `$PATH` for a bare name, as
//! runc looks it up), a regular file, and executable by the container's user through
//! every directory on the way. A failure is reported in runc's words, explained, as a
//! refusal (exit code 1); `--no-check` skips it.

use super::spec::Spec;
use crate::error::{Error, Result};
use crate::image::{host_platform, platform_matches, Platform};
use crate::root::{self, FileType, HostRoot, Meta, Root};
use std::path::Path;

/// Who the process is, to judge permission bits with.
struct Who {
    uid: u32,
    gids: Vec<u32>,
    /// Rootless: the host ids that files unpacked by us carry.
    host: Option<(u32, u32)>,
}

impl Who {
    /// Permission bits (r=4, w=2, x=1) `meta` grants this user.
    fn bits(&self, meta: &Meta) -> u32 {
        // Rootless: our own files appear owned by root inside, the rest by nobody.
        let (uid, gid) = match self.host {
            Some((hu, hg)) => (
                if meta.uid == hu { 0 } else { 65534 },
                if meta.gid == hg { 0 } else { 65534 },
            ),
            None => (meta.uid, meta.gid),
        };
        if self.uid == 0 {
            // Root may read and write anything, and execute what has any x bit.
            return 6 | u32::from(meta.mode & 0o111 != 0 || meta.kind == FileType::Dir);
        }
        if uid == self.uid {
            (meta.mode >> 6) & 7
        } else if self.gids.contains(&gid) {
            (meta.mode >> 3) & 7
        } else {
            meta.mode & 7
        }
    }

    fn describe(&self) -> String {
        format!("user {} (group {})", self.uid, self.gids[0])
    }
}

/// Checks what runc would otherwise fail on. `rootless` is the host uid/gid when the
/// bundle is rootless.
pub fn check(
    rootfs: &Path,
    spec: &Spec,
    image_platform: &Platform,
    rootless: Option<(u32, u32)>,
) -> Result<()> {
    let host = host_platform();
    if !image_platform.architecture.is_empty() && !platform_matches(image_platform, &host) {
        return Err(Error::Refused(format!(
            "the image is for {image_platform} and this machine is {host}: its program would stop with \"exec format error\"; \
             pick another variant with --platform, or run it where it belongs (--no-check starts it anyway, e.g. with qemu-user binfmt)"
        )));
    }
    let root = HostRoot::new(rootfs);
    let p = &spec.process;
    let mut gids = vec![p.user.gid];
    gids.extend(&p.user.additional_gids);
    let who = Who {
        uid: p.user.uid,
        gids,
        host: rootless,
    };
    let Some(program) = p.args.first() else {
        return Err(Error::Usage("no program to start".into()));
    };
    let path = if program.contains('/') {
        if program.starts_with('/') {
            program.clone()
        } else {
            format!("{}/{program}", p.cwd.trim_end_matches('/'))
        }
    } else {
        lookup_path(&root, program, &p.env, &p.cwd)?
    };
    let refuse = |runc_says: String, why: String| {
        Error::Refused(format!(
            "{why}: runc would stop with \"{runc_says}\"; --no-check starts it anyway"
        ))
    };
    let real = root::resolve(&root, &path).map_err(|e| {
        refuse(
            format!("stat {path}: no such file or directory"),
            format!("{program} is not in the image ({e})"),
        )
    })?;
    let Some(meta) = root.lstat(&real) else {
        return Err(refuse(
            format!("stat {path}: no such file or directory"),
            format!("{program} is not in the image"),
        ));
    };
    let denied = format!("exec {program}: permission denied");
    if meta.kind != FileType::File {
        return Err(refuse(
            denied,
            format!("{program} is {}, not a program", kind_name(meta.kind)),
        ));
    }
    // Every directory on the way must be searchable.
    let mut dir = String::from("/");
    for comp in real
        .trim_start_matches('/')
        .split('/')
        .filter(|c| !c.is_empty())
    {
        let Some(dm) = root.lstat(&dir) else { break };
        if who.bits(&dm) & 1 == 0 {
            return Err(refuse(
                denied,
                format!(
                    "{} cannot enter {dir} on the way to {program}: it is mode {:04o}, owned by {}:{}; \
                     run as a user that may (-u 0), or make the directory searchable in the image",
                    who.describe(),
                    dm.mode,
                    dm.uid,
                    dm.gid
                ),
            ));
        }
        dir = if dir == "/" {
            format!("/{comp}")
        } else {
            format!("{dir}/{comp}")
        };
    }
    if who.bits(&meta) & 1 == 0 {
        return Err(refuse(
            denied,
            format!(
                "{real} is not executable by {}: it is mode {:04o}, owned by {}:{}; \
                 run as a user that may execute it (-u {}), or give it execute permission for that user in the image",
                who.describe(),
                meta.mode,
                meta.uid,
                meta.gid,
                meta.uid
            ),
        ));
    }
    Ok(())
}

fn kind_name(k: FileType) -> &'static str {
    match k {
        FileType::Dir => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Other => "a device, FIFO or socket",
        FileType::File => "a file",
    }
}

/// Finds a bare program name on the container's `$PATH`, as runc (Go's `exec.LookPath`)
/// does: the first regular file with any execute bit.
fn lookup_path(root: &HostRoot, program: &str, env: &[String], cwd: &str) -> Result<String> {
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() || dir == "." {
            cwd.to_string()
        } else if dir.starts_with('/') {
            dir.to_string()
        } else {
            format!("{}/{dir}", cwd.trim_end_matches('/'))
        };
        let candidate = format!("{}/{program}", dir.trim_end_matches('/'));
        if let Ok(real) = root::resolve(root, &candidate) {
            if let Some(m) = root.lstat(&real) {
                if m.kind == FileType::File && m.mode & 0o111 != 0 {
                    return Ok(candidate);
                }
            }
        }
    }
    Err(Error::Refused(format!(
        "{program} is not on the container's PATH ({path_var}): runc would stop with \
         \"exec: \\\"{program}\\\": executable file not found in $PATH\"; name it with its full path, or --no-check"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ContainerConfig;
    use crate::run::spec::{self, SpecInputs};
    use crate::run::user::ResolvedUser;
    use crate::run::ProcessOptions;
    use std::os::unix::fs::PermissionsExt;

    fn spec_for(args: &[&str], uid: u32) -> Spec {
        let c = ContainerConfig {
            entrypoint: Some(args.iter().map(|s| s.to_string()).collect()),
            ..ContainerConfig::default()
        };
        let u = ResolvedUser {
            uid,
            gid: uid,
            additional_gids: vec![],
            home: None,
        };
        spec::build(&SpecInputs {
            config: &c,
            process: &ProcessOptions::default(),
            user: &u,
            terminal: false,
            network_host: false,
            rootless: None,
            allow_new_privileges: false,
            hostname: "h".into(),
        })
        .unwrap()
    }

    #[test]
    fn permissions_and_lookup_like_runc() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("app")).unwrap();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("locked")).unwrap();
        let mk = |p: &str, mode: u32| {
            std::fs::write(r.join(p), "x").unwrap();
            std::fs::set_permissions(r.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        mk("app/open", 0o755);
        mk("app/private", 0o700);
        mk("app/data", 0o644);
        mk("bin/tool", 0o755);
        mk("locked/x", 0o755);
        std::fs::set_permissions(r.join("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let host = host_platform();
        // Files here belong to whoever runs the test; judge as root (uid 0) and as 4242.
        let table: &[(&[&str], u32, Option<&str>)] = &[
            (&["/app/open"], 4242, None),
            (&["/app/private"], 0, None),
            (&["/app/private"], 4242, Some("permission denied")),
            (&["/app/data"], 0, Some("permission denied")),
            (&["/app/missing"], 0, Some("no such file or directory")),
            (&["/app"], 0, Some("not a program")),
            (&["tool"], 4242, None),
            (&["nothere"], 0, Some("executable file not found")),
            (&["/locked/x"], 4242, Some("cannot enter /locked")),
        ];
        for (args, uid, want) in table {
            let got = check(r, &spec_for(args, *uid), &host, None);
            match (want, got) {
                (None, Ok(())) => {}
                (Some(w), Err(Error::Refused(m))) => assert!(m.contains(w), "{args:?}: {m}"),
                (w, g) => panic!("{args:?} as {uid}: want {w:?}, got {g:?}"),
            }
        }
        let other = Platform::parse("linux/s390x").unwrap();
        assert!(matches!(
            check(r, &spec_for(&["/app/open"], 0), &other, None),
            Err(Error::Refused(m)) if m.contains("exec format error")
        ));
    }
}
