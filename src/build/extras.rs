//! `--with`: the runtime data a scratch image lacks that no ELF header names — CA
//! certificates, time zones, users and groups, a writable `/tmp` — each generated or
//! copied into its own layer, so every image built with the same `--with` on the same
//! machine shares those blobs (the layer cache makes the second one free).
//!
//! Certificates and zoneinfo are architecture-independent data: they come from the
//! sysroot when it has them, else from the host, so a cross build with
//! `--sysroot /usr/aarch64-linux-gnu` (which has neither) still gets them.

use crate::error::{Error, Result};
use crate::root::{self, FileType, HostRoot, Root};
use crate::tree::{Entry, ImageTree, Node};

/// Where the CA bundle goes in the image, and what `SSL_CERT_FILE` names.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where zoneinfo goes in the image (Go's `time.LoadLocation`, glibc and musl look here).
pub const ZONEINFO: &str = "/usr/share/zoneinfo";
/// The unprivileged user distroless images run as.
pub const NONROOT_UID: u32 = 65532;
/// nobody's uid and gid.
pub const NOBODY_UID: u32 = 65534;

/// Where distributions and TLS libraries (Go's crypto/x509 list, OpenSSL, GnuTLS, curl,
/// Alpine and LibreSSL's `cert.pem`, Fedora's and openSUSE's names) keep the CA bundle:
/// searched in this order in the source; in the image the first holds the bundle and
/// every other is a relative symlink to it. `nobase check` looks for the same paths.
pub(crate) const CA_FILES: &[&str] = &[
    CA_BUNDLE,
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/cacert.pem",
];
/// Debian's OpenSSL directory: one more symlink to [`CA_BUNDLE`] in the image.
const OPENSSL_CERT: &str = "/usr/lib/ssl/cert.pem";
/// Largest CA bundle accepted (real ones are about 200 KiB).
const MAX_CA_BUNDLE: u64 = 16 << 20;

/// One kind of runtime data `--with` adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Extra {
    /// The CA bundle, its usual aliases and `SSL_CERT_FILE`.
    Certs,
    /// `/usr/share/zoneinfo`.
    Tzdata,
    /// `/etc/passwd`, `/etc/group` (root, nobody, nonroot) and `/etc/nsswitch.conf`.
    Passwd,
    /// `/tmp` with mode 1777.
    Tmp,
}

impl Extra {
    /// Every extra, in layer order (bottom first).
    pub const ALL: [Extra; 4] = [Extra::Certs, Extra::Tzdata, Extra::Passwd, Extra::Tmp];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Extra::Certs => "certs",
            Extra::Tzdata => "tzdata",
            Extra::Passwd => "passwd",
            Extra::Tmp => "tmp",
        }
    }

    /// The flag that adds it (`--with certs`), for messages that say how to fix things.
    pub fn flag(self) -> String {
        format!("--with {}", self.name())
    }

    /// Parses `--with` values: comma-separated names or `all`, repeatable. The result is
    /// sorted and without duplicates, so the layers do not depend on how they were asked.
    pub fn parse_list<S: AsRef<str>>(values: &[S]) -> Result<Vec<Extra>> {
        let mut out = Vec::new();
        for v in values {
            for name in v.as_ref().split(',').map(str::trim) {
                match name {
                    "all" => out.extend(Extra::ALL),
                    _ => match Extra::ALL.iter().find(|e| e.name() == name) {
                        Some(e) => out.push(*e),
                        None => {
                            return Err(Error::Usage(format!(
                                "unknown --with {name:?}: use certs, tzdata, passwd, tmp or all \
                                 (comma-separated)"
                            )))
                        }
                    },
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// One extra's layer, and the environment it sets.
#[derive(Clone, Debug)]
pub struct ExtraLayer {
    /// Which extra.
    pub extra: Extra,
    /// Its files.
    pub tree: ImageTree,
    /// Variables the image's config gets unless the user sets them.
    pub env: Vec<(String, String)>,
}

/// Makes the layer of `extra`, reading data from `sources` in order (the sysroot, then
/// the host); the first that has it wins.
pub fn make(extra: Extra, sources: &[HostRoot]) -> Result<ExtraLayer> {
    let mut env = Vec::new();
    let tree = match extra {
        Extra::Certs => {
            env.push(("SSL_CERT_FILE".to_string(), CA_BUNDLE.to_string()));
            certs(sources)?
        }
        Extra::Tzdata => tzdata(sources)?,
        Extra::Passwd => passwd()?,
        Extra::Tmp => {
            let mut t = ImageTree::new();
            // Sticky and world-writable, as on every Unix: anyone may create files,
            // only their owner may remove them.
            t.add_dir("/tmp", 0o1777)?;
            t
        }
    };
    Ok(ExtraLayer { extra, tree, env })
}

fn describe_all(sources: &[HostRoot]) -> String {
    sources
        .iter()
        .map(|s| s.describe())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The CA bundle at [`CA_BUNDLE`] and a relative symlink at each other usual path.
fn certs(sources: &[HostRoot]) -> Result<ImageTree> {
    let found = sources.iter().find_map(|s| {
        CA_FILES.iter().find_map(|p| {
            let real = root::resolve(s, p).ok()?;
            (s.lstat(&real)?.kind == FileType::File).then_some((s, real))
        })
    });
    let Some((source, real)) = found else {
        return Err(Error::Refused(format!(
            "--with certs: no CA bundle in {} (looked for {}); install the ca-certificates \
             package, or add a bundle with --add FILE:{CA_BUNDLE}",
            describe_all(sources),
            CA_FILES.join(", ")
        )));
    };
    let bytes = root::read_file(source, &real, MAX_CA_BUNDLE).map_err(|e| Error::Io {
        action: format!("reading {real} in {}", source.describe()),
        cause: e,
    })?;
    // A bundle that holds no certificate makes every TLS connection fail later, far from
    // its cause: refuse it here.
    if !bytes
        .windows(27)
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(Error::Refused(format!(
            "--with certs: {real} in {} holds no PEM certificate; install the ca-certificates \
             package (update-ca-certificates writes the bundle)",
            source.describe()
        )));
    }
    let mut t = ImageTree::new();
    t.add_bytes(CA_BUNDLE, &bytes, 0o644)?;
    for link in CA_FILES[1..].iter().chain(&[OPENSSL_CERT]) {
        t.add_symlink(link, &relative_link(link, CA_BUNDLE))?;
    }
    Ok(t)
}

/// `/usr/share/zoneinfo` copied from the first source that has it. Its symlinks
/// (`UTC` → `Etc/UTC`, `Europe/Belfast` → `London`) are resolved in the source and
/// written as relative links to where their target lands in the image; links that lead
/// outside zoneinfo (Debian's `localtime` → `/etc/localtime`) or nowhere are left out,
/// since they would dangle in the image.
fn tzdata(sources: &[HostRoot]) -> Result<ImageTree> {
    let found = sources.iter().find_map(|s| {
        let real = root::resolve(s, ZONEINFO).ok()?;
        let listed = s.list(&real)?;
        (s.lstat(&real)?.kind == FileType::Dir && !listed.is_empty()).then_some((s, real))
    });
    let Some((source, top)) = found else {
        return Err(Error::Refused(format!(
            "--with tzdata: no {ZONEINFO} in {}; install the tzdata package",
            describe_all(sources)
        )));
    };
    let mut t = ImageTree::new();
    t.add_dir(ZONEINFO, 0o755)?;
    let image_path = |real: &str| -> Option<String> {
        if real == top {
            Some(ZONEINFO.to_string())
        } else {
            real.strip_prefix(&format!("{top}/"))
                .map(|rel| format!("{ZONEINFO}/{rel}"))
        }
    };
    // Canonical directories to list; the walk never follows a link, so it cannot loop.
    let mut dirs = vec![top.clone()];
    while let Some(dir) = dirs.pop() {
        let names = source.list(&dir).ok_or_else(|| Error::Io {
            action: format!("listing {dir} in {}", source.describe()),
            cause: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        for name in names {
            let real = format!("{dir}/{name}");
            let Some(dest) = image_path(&real) else {
                continue;
            };
            let Some(meta) = source.lstat(&real) else {
                continue;
            };
            match meta.kind {
                FileType::Dir => {
                    t.add_dir(&dest, 0o755)?;
                    dirs.push(real);
                }
                FileType::File => t.add_host(&source.host_path(&real), &dest)?,
                FileType::Symlink => {
                    let target = root::resolve(source, &real)
                        .ok()
                        .filter(|r| {
                            source
                                .lstat(r)
                                .is_some_and(|m| matches!(m.kind, FileType::File | FileType::Dir))
                        })
                        .and_then(|r| image_path(&r));
                    if let Some(target) = target {
                        t.add_symlink(&dest, &relative_link(&dest, &target))?;
                    }
                }
                FileType::Other => {}
            }
        }
    }
    Ok(t)
}

/// The `/etc/nsswitch.conf` of `--with passwd`: only services built into glibc.
pub const NSSWITCH: &[u8] = b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";

/// `/etc/passwd` and `/etc/group` as distroless writes them (root 0, nobody 65534,
/// nonroot 65532 with its home), and an `/etc/nsswitch.conf` so glibc's name service
/// reads those files.
pub fn passwd() -> Result<ImageTree> {
    let mut t = ImageTree::new();
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\n\
         nobody:x:{NOBODY_UID}:{NOBODY_UID}:nobody:/nonexistent:/sbin/nologin\n\
         nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin\n"
    );
    let group = format!("root:x:0:\nnobody:x:{NOBODY_UID}:\nnonroot:x:{NONROOT_UID}:\n");
    t.add_bytes("/etc/passwd", passwd.as_bytes(), 0o644)?;
    t.add_bytes("/etc/group", group.as_bytes(), 0o644)?;
    t.add_bytes("/etc/nsswitch.conf", NSSWITCH, 0o644)?;
    t.add_dir("/root", 0o700)?;
    t.insert(
        "/home/nonroot",
        Entry {
            node: Node::Dir,
            mode: 0o700,
            uid: NONROOT_UID,
            gid: NONROOT_UID,
        },
    )?;
    Ok(t)
}

/// The relative target for a symlink at `link` pointing to `target` (both absolute
/// image paths), so the link also works in an unpacked rootfs seen from the host
/// (`qemu -L rootfs`, `umoci unpack`).
pub fn relative_link(link: &str, target: &str) -> String {
    let from: Vec<&str> = link.split('/').filter(|c| !c.is_empty()).collect();
    let to: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    let dir = &from[..from.len().saturating_sub(1)];
    let common = dir.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; dir.len() - common];
    parts.extend(&to[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree;
    use std::os::unix::fs::symlink;

    /// Normalized image path (`a/b`) of an absolute one, for lookups in a tree.
    fn key(p: &str) -> String {
        tree::normalize(p).unwrap_or_default()
    }

    #[test]
    fn lists_parse_sorted_and_deduplicated() {
        for (input, want) in [
            (&["certs"][..], Some(&[Extra::Certs][..])),
            (&["tmp,certs", "certs"], Some(&[Extra::Certs, Extra::Tmp])),
            (&["all"], Some(&Extra::ALL[..])),
            (&["passwd, all"], Some(&Extra::ALL[..])),
            (&["cert"], None),
            (&[""], None),
            (&["certs,"], None),
        ] {
            assert_eq!(Extra::parse_list(input).ok().as_deref(), want, "{input:?}");
        }
        assert_eq!(Extra::Certs.flag(), "--with certs");
    }

    #[test]
    fn relative_links() {
        for (link, target, want) in [
            ("/etc/ssl/cert.pem", CA_BUNDLE, "certs/ca-certificates.crt"),
            (
                "/etc/pki/tls/certs/ca-bundle.crt",
                CA_BUNDLE,
                "../../../ssl/certs/ca-certificates.crt",
            ),
            (
                "/usr/share/zoneinfo/UTC",
                "/usr/share/zoneinfo/Etc/UTC",
                "Etc/UTC",
            ),
            (
                "/usr/share/zoneinfo/Europe/Belfast",
                "/usr/share/zoneinfo/Europe/London",
                "London",
            ),
            ("/usr/share/zoneinfo/posix", "/usr/share/zoneinfo", "."),
            ("/a", "/b/c", "b/c"),
        ] {
            assert_eq!(relative_link(link, target), want, "{link} -> {target}");
        }
    }

    fn sysroot() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let z = d.path().join("usr/share/zoneinfo");
        std::fs::create_dir_all(z.join("Europe")).unwrap();
        std::fs::create_dir_all(z.join("Etc")).unwrap();
        std::fs::write(z.join("Europe/Paris"), "TZif paris").unwrap();
        std::fs::write(z.join("Etc/UTC"), "TZif utc").unwrap();
        symlink("Paris", z.join("Europe/Brussels2")).unwrap();
        symlink("/usr/share/zoneinfo/Etc/UTC", z.join("UTC")).unwrap();
        symlink("/etc/localtime", z.join("localtime")).unwrap();
        symlink("../../../../../etc/shadow", z.join("escape")).unwrap();
        symlink("nowhere", z.join("dangling")).unwrap();
        symlink(".", z.join("posix")).unwrap();
        std::fs::create_dir_all(d.path().join("etc/pki/tls/certs")).unwrap();
        std::fs::write(
            d.path().join("etc/pki/tls/certs/ca-bundle.crt"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn zoneinfo_links_stay_inside_and_relative() {
        let d = sysroot();
        let t = tzdata(&[HostRoot::new(d.path())]).unwrap();
        let link = |p: &str| match &t.get(&key(p)).map(|e| e.node.clone()) {
            Some(Node::Symlink(s)) => Some(s.clone()),
            _ => None,
        };
        assert!(matches!(
            t.get(&key("/usr/share/zoneinfo/Europe/Paris"))
                .map(|e| &e.node),
            Some(Node::File { .. })
        ));
        assert_eq!(link("/usr/share/zoneinfo/UTC").as_deref(), Some("Etc/UTC"));
        assert_eq!(
            link("/usr/share/zoneinfo/Europe/Brussels2").as_deref(),
            Some("Paris")
        );
        assert_eq!(link("/usr/share/zoneinfo/posix").as_deref(), Some("."));
        for gone in ["localtime", "escape", "dangling"] {
            assert!(
                t.get(&key(&format!("/usr/share/zoneinfo/{gone}")))
                    .is_none(),
                "{gone}"
            );
        }
    }

    #[test]
    fn sources_are_tried_in_order() {
        let d = sysroot();
        let empty = tempfile::tempdir().unwrap();
        let roots = [HostRoot::new(empty.path()), HostRoot::new(d.path())];
        // The empty sysroot has neither: both come from the second source.
        let t = certs(&roots).unwrap();
        match &t.get(&key(CA_BUNDLE)).unwrap().node {
            Node::File { size, .. } => assert!(*size > 27),
            other => panic!("{other:?}"),
        }
        assert!(tzdata(&roots).is_ok());
        // A sysroot that has them wins over the host (here: its own fake Paris).
        let first = [HostRoot::new(d.path()), HostRoot::new("/")];
        let t = tzdata(&first).unwrap();
        match &t
            .get(&key("/usr/share/zoneinfo/Europe/Paris"))
            .unwrap()
            .node
        {
            Node::File { size, .. } => assert_eq!(*size, "TZif paris".len() as u64),
            other => panic!("{other:?}"),
        }
        let none = [HostRoot::new(empty.path())];
        for e in [certs(&none).unwrap_err(), tzdata(&none).unwrap_err()] {
            assert_eq!(e.exit_code(), 1, "{e}");
        }
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/ssl/certs")).unwrap();
        std::fs::write(d.path().join("etc/ssl/certs/ca-certificates.crt"), "").unwrap();
        let e = certs(&[HostRoot::new(d.path())]).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn passwd_has_the_three_users_and_a_private_home() {
        let t = passwd().unwrap();
        let home = t.get("home/nonroot").unwrap();
        assert_eq!((home.mode, home.uid, home.gid), (0o700, 65532, 65532));
        let Node::File {
            content: tree::Content::Bytes(b),
            ..
        } = &t.get("etc/passwd").unwrap().node
        else {
            panic!("passwd is generated");
        };
        let s = String::from_utf8_lossy(b);
        for user in [
            "root:x:0:0:",
            "nobody:x:65534:65534:",
            "nonroot:x:65532:65532:",
        ] {
            assert!(s.contains(user), "{s}");
        }
        let tmp = make(Extra::Tmp, &[]).unwrap();
        assert_eq!(tmp.tree.get("tmp").unwrap().mode, 0o1777);
    }
}
