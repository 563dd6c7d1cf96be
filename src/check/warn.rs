//! What will likely fail after the program starts, from what its ELF objects say they
//! use and what the image lacks: CA certificates for TLS, zoneinfo for Go's
//! `time.LoadLocation` or a `TZ` the image sets, `nsswitch.conf` for glibc's name
//! service, `/etc/passwd` for Go's `os/user`, a writable `/tmp`.

use super::{Checker, WarningCode};
use crate::build::extras::{Extra, CA_FILES, ZONEINFO};
use crate::elf::ElfInfo;
use crate::error::Result;
use crate::loader::dlopen::NSS;
use crate::root::{self, FileType, Root};

/// Directories of hashed certificates (OpenSSL's `-CApath`, Go's cert dirs).
const CA_DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];
/// Libraries whose presence means TLS with system roots.
const TLS_LIBS: &[&str] = &["libssl.so", "libcrypto.so", "libcurl", "libgnutls"];
/// Where Go's time package looks for zoneinfo.
const ZONEINFO_DIRS: &[&str] = &[
    ZONEINFO,
    "/usr/share/lib/zoneinfo",
    "/usr/lib/locale/TZ",
    "/etc/zoneinfo",
];
/// Go function names that say what a Go program uses (from its pclntab, which even
/// stripped Go binaries keep).
const GO_X509: &[u8] = b"crypto/x509.loadSystemRoots";
const GO_X509_FALLBACK: &[u8] = b"x509roots/fallback";
/// With its terminating NUL: every Go program that reads `time.Local` links
/// `time.LoadLocationFromTZData`, and only `LoadLocation` itself loads a zone by name.
const GO_LOAD_LOCATION: &[u8] = b"time.LoadLocation\0";
const GO_TZDATA: &[u8] = b"time/tzdata";
/// What static glibc links in when it uses NSS.
const GLIBC_NSS: &[u8] = b"/etc/nsswitch.conf";
/// Go's temporary files and directories all go through `os.TempDir` (CreateTemp,
/// MkdirTemp, ioutil.TempFile), whose name the pclntab keeps even when it is inlined.
const GO_TEMP_DIR: &[u8] = b"os.TempDir";
/// Go's user lookups (`user.Current`, `user.Lookup`, `LookupId`, `LookupGroup`…), which
/// read /etc/passwd and /etc/group (directly, or through glibc with cgo).
const GO_USER: &[&[u8]] = &[b"os/user.Current", b"os/user.Lookup"];
/// C library functions that make temporary files, imported by dynamic programs.
const TEMP_FUNCS: &[&str] = &[
    "mkstemp",
    "mkstemp64",
    "mkostemp",
    "mkostemp64",
    "mkstemps",
    "mkstemps64",
    "mkostemps",
    "mkostemps64",
    "mkdtemp",
    "tmpfile",
    "tmpfile64",
    "tmpnam",
    "tmpnam_r",
    "tempnam",
];
/// Bytes in a program that mean it names `/tmp` itself (`"/tmp/app.sock"`, P_tmpdir), or,
/// unstripped, links glibc's temporary-name generator.
const TMP_NEEDLES: &[&[u8]] = &[b"/tmp/", b"\0/tmp\0", b"__gen_tempname"];

pub(super) fn exists(root: &dyn Root, path: &str, kind: FileType) -> bool {
    root::resolve(root, path)
        .ok()
        .and_then(|p| root.lstat(&p))
        .is_some_and(|m| m.kind == kind)
}

/// Which part of a file to scan.
#[derive(Clone, Copy)]
enum Part {
    /// All of it. Machine code too: compilers store short strings as immediates
    /// (`movabs $"/tmp/dif", %rax` in busybox), so code is not skipped.
    Whole,
    /// One range (offset, length).
    Only((u64, u64)),
}

/// The range (offset, length) of a file of `size` bytes that `part` names.
fn range(part: Part, size: u64) -> (u64, u64) {
    match part {
        Part::Whole => (0, size),
        Part::Only((start, len)) => {
            let start = start.min(size);
            (start, len.min(size - start))
        }
    }
}

/// Which of `needles` occur in the `part` of the file at canonical `path`, read in
/// chunks with an overlap so a needle across a chunk boundary is found.
fn scan(root: &dyn Root, path: &str, part: Part, needles: &[&[u8]]) -> Result<Vec<bool>> {
    const CHUNK: u64 = 1 << 20;
    let f = root.open(path).map_err(|e| super::io_err(e, path, root))?;
    let overlap = needles.iter().map(|n| n.len()).max().unwrap_or(1) as u64;
    let finders: Vec<_> = needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut found = vec![false; needles.len()];
    let mut buf = Vec::new();
    let (mut at, len) = range(part, f.size());
    let end = at + len;
    while at < end && !found.iter().all(|&b| b) {
        let len = CHUNK.min(end - at);
        buf.resize(len as usize, 0);
        f.read_exact_at(at, &mut buf)
            .map_err(|e| super::io_err(e, path, root))?;
        for ((hit, finder), needle) in found.iter_mut().zip(&finders).zip(needles) {
            *hit = *hit
                || finder
                    .find_iter(&buf)
                    .any(|at| whole_path(&buf, at, needle));
        }
        if at + len >= end {
            break;
        }
        at += len.saturating_sub(overlap).max(1);
    }
    Ok(found)
}

/// Which of `needles` occur anywhere in the file at canonical `path`.
pub(super) fn scan_whole(root: &dyn Root, path: &str, needles: &[&[u8]]) -> Result<Vec<bool>> {
    scan(root, path, Part::Whole, needles)
}

/// Whether a match of `needle` at `at` in `buf` is the path itself: a needle that starts
/// with '/' must not continue a longer path (`/tmp/` inside `/var/tmp/app`, a RUNPATH).
fn whole_path(buf: &[u8], at: usize, needle: &[u8]) -> bool {
    if needle.first() != Some(&b'/') || at == 0 {
        return true;
    }
    let before = buf[at - 1];
    !(before.is_ascii_alphanumeric() || matches!(before, b'.' | b'_' | b'-' | b'/'))
}

pub(super) fn is_glibc(info: &ElfInfo) -> bool {
    info.interpreter
        .as_deref()
        .is_some_and(|i| i.contains("ld-linux"))
        || info.needed.iter().any(|n| n == "libc.so.6")
}

/// Why libraries bundled for added files mean TLS, if they do: "the added files link
/// libssl.so.3".
pub fn tls_of(libraries: &[String]) -> Option<String> {
    libraries
        .iter()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .find(|n| TLS_LIBS.iter().any(|t| n.starts_with(t)))
        .map(|lib| format!("the files added with the program link {lib}"))
}

/// Adds every warning that applies.
pub(super) fn all(ck: &mut Checker) -> Result<()> {
    let mut tls = ck.tls_hint.clone();
    let mut zoneinfo = None;
    let mut nss = None;
    // Whether a program uses /tmp only matters when the image's /tmp is not usable.
    let tmp_problem = tmp_problem(ck);
    let mut temp = None;
    let mut users = None;
    let mut tz_embedded = false;
    for super::Loaded { shown, path, info } in ck.programs.clone() {
        if info.is_go() {
            // Function names live in the pclntab's name table: reading only that (a
            // fifth of a large Go program) finds the same names.
            let part = match info.go.as_ref().and_then(|g| g.names) {
                Some(names) => Part::Only(names),
                None => Part::Whole,
            };
            let hits = scan(
                ck.root,
                &path,
                part,
                &[
                    GO_X509,
                    GO_X509_FALLBACK,
                    GO_LOAD_LOCATION,
                    GO_TZDATA,
                    GO_TEMP_DIR,
                    GO_USER[0],
                    GO_USER[1],
                ],
            )?;
            if hits[0] && !hits[1] {
                tls.get_or_insert(format!("{shown} is a Go program that uses crypto/x509"));
            }
            if hits[2] && !hits[3] {
                zoneinfo.get_or_insert(shown.clone());
            }
            if hits[4] {
                temp.get_or_insert(format!("{shown} is a Go program that uses os.TempDir"));
            }
            if hits[5] || hits[6] {
                users.get_or_insert(shown.clone());
            }
            if hits[3] {
                tz_embedded = true;
            }
        } else {
            if let Some(f) = info
                .imports
                .iter()
                .find(|i| TEMP_FUNCS.contains(&i.as_str()))
            {
                temp.get_or_insert(format!("{shown} calls {f}"));
            }
            if let Some(lib) = info
                .needed
                .iter()
                .find(|n| TLS_LIBS.iter().any(|t| n.starts_with(t)))
            {
                tls.get_or_insert(format!("{shown} links {lib}"));
            }
            if is_glibc(&info) && nss.is_none() {
                // Every one it calls: nginx breaks on getpwnam, not on the getaddrinfo
                // named first.
                let calls: Vec<&str> = info
                    .imports
                    .iter()
                    .filter(|i| NSS.iter().any(|(f, _)| f == i))
                    .map(String::as_str)
                    .collect();
                if !calls.is_empty() {
                    nss = Some(format!("{shown} calls {}", calls.join(", ")));
                }
            }
            // What imports cannot say, one read of the file answers: glibc's name service
            // code in a static program, and /tmp named by an executable (executables
            // only: musl's loader is its C library and names /tmp for every program).
            let want_nss = !is_glibc(&info) && info.kind.is_static();
            let want_tmp = tmp_problem.is_some() && temp.is_none() && info.kind.is_executable();
            let mut needles = Vec::new();
            if want_nss {
                needles.push(GLIBC_NSS);
            }
            if want_tmp {
                needles.extend_from_slice(TMP_NEEDLES);
            }
            if needles.is_empty() {
                continue;
            }
            let hits = scan(ck.root, &path, Part::Whole, &needles)?;
            if want_nss && hits[0] {
                nss.get_or_insert(format!(
                    "{shown} is statically linked with glibc's name service code"
                ));
            }
            if want_tmp && hits[usize::from(want_nss)..].contains(&true) {
                temp.get_or_insert(format!("{shown} refers to /tmp"));
            }
        }
    }
    if let (Some(why_needed), Some(why)) = (temp, tmp_problem) {
        ck.warning(
            WarningCode::NoWritableTmp,
            format!(
                "{why_needed}, but {why}, so creating temporary files will fail; add one with `nobase build {}` (an empty /tmp with mode 1777)",
                Extra::Tmp.flag()
            ),
        );
    }
    if let Some(why) = tls {
        let env_ok = ck
            .getenv("SSL_CERT_FILE")
            .is_some_and(|p| exists(ck.root, p, FileType::File))
            || ck
                .getenv("SSL_CERT_DIR")
                .is_some_and(|p| exists(ck.root, p, FileType::Dir));
        let have = env_ok
            || CA_FILES.iter().any(|p| exists(ck.root, p, FileType::File))
            || CA_DIRS
                .iter()
                .any(|d| ck.root.list(d).is_some_and(|l| !l.is_empty()));
        if !have {
            ck.warning(
                WarningCode::NoCaCertificates,
                format!("{why}, so it will likely make TLS connections, but the image has no CA certificates (none at /etc/ssl/certs/ca-certificates.crt or the other usual paths), so every certificate check will fail; add them with `nobase build {}` (the host's CA bundle, at the paths Go and OpenSSL read, and SSL_CERT_FILE)", Extra::Certs.flag()),
            );
        }
    }
    let zone_warned_before = ck.warnings.len();
    if let Some(path) = zoneinfo {
        let env_ok = ck.getenv("ZONEINFO").is_some_and(|p| {
            exists(ck.root, p, FileType::File) || exists(ck.root, p, FileType::Dir)
        });
        if !env_ok
            && !ZONEINFO_DIRS
                .iter()
                .any(|d| exists(ck.root, d, FileType::Dir))
        {
            ck.warning(
                WarningCode::NoZoneinfo,
                format!("{path} is a Go program that calls time.LoadLocation, but the image has no zoneinfo (/usr/share/zoneinfo), so every time zone but UTC fails to load; add it with `nobase build {}`, or build the program with -tags timetzdata (import _ \"time/tzdata\")", Extra::Tzdata.flag()),
            );
        }
    }
    // A zone the image names itself (`-e TZ=Asia/Tokyo`) needs its file: without it
    // glibc and Go fall back to UTC, labelled with the zone's name, without an error.
    if ck.warnings.len() == zone_warned_before && !tz_embedded {
        if let Some(file) = ck.getenv("TZ").and_then(tz_file) {
            let env_dir = ck.getenv("TZDIR").unwrap_or(ZONEINFO);
            let path = if file.starts_with('/') {
                file.to_string()
            } else {
                format!("{}/{file}", env_dir.trim_end_matches('/'))
            };
            if !exists(ck.root, &path, FileType::File) {
                ck.warning(
                    WarningCode::NoZoneinfo,
                    format!(
                        "the image sets TZ={}, but has no {path}, so the program shows UTC times under that name, without an error; {}",
                        ck.getenv("TZ").unwrap_or_default(),
                        if file.starts_with('/') && !file.starts_with(ZONEINFO) {
                            // `TZ=:/etc/localtime`: a file of its own, which --with tzdata does not make.
                            format!("add a zone file there, e.g. `--add {ZONEINFO}/Europe/Paris:{path}`")
                        } else {
                            format!("add zoneinfo with `nobase build {}`", Extra::Tzdata.flag())
                        }
                    ),
                );
            }
        }
    }
    if let Some(path) = users {
        if !exists(ck.root, "/etc/passwd", FileType::File) {
            ck.warning(
                WarningCode::NoPasswd,
                format!("{path} is a Go program that looks users up (os/user), but the image has no /etc/passwd, so user.Current and user.Lookup fail (\"unknown userid\", or \"requires cgo or $USER set\"); add one with `nobase build {}` (/etc/passwd and /etc/group with root, nobody and nonroot)", Extra::Passwd.flag()),
            );
        }
    }
    if let Some(why) = nss {
        if !exists(ck.root, "/etc/nsswitch.conf", FileType::File) {
            ck.warning(
                WarningCode::NoNsswitch,
                format!("{why}, which looks users, groups or hosts up through glibc's NSS, but the image has no /etc/nsswitch.conf (and a static glibc program also needs the libnss_* libraries it loads), so lookups fall back to built-in defaults or fail; add it with `nobase build {}` (nsswitch.conf with `passwd: files` and `hosts: files dns`, /etc/passwd and /etc/group)", Extra::Passwd.flag()),
            );
        }
    }
    Ok(())
}

/// The zoneinfo file a `TZ` value names (`Asia/Tokyo`, `:Europe/Paris`, `:/etc/x`), or
/// None for POSIX rules that need no file (`JST-9`, `EST5EDT`) and for UTC, which
/// glibc and Go know without one.
fn tz_file(tz: &str) -> Option<&str> {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    // A rule's name and offset come before its first ',' (`CET-1CEST,M3.5.0,M10.5.0/3`:
    // the '/' after it is a transition time, not a path).
    let head = name.split(',').next().unwrap_or(name);
    let posix_rule = !tz.starts_with(':')
        && (name.contains(',')
            || (!head.contains('/') && head.bytes().any(|c| c.is_ascii_digit())));
    if name.is_empty()
        || posix_rule
        || matches!(name, "UTC" | "GMT" | "UCT" | "Zulu" | "Etc/UTC" | "Etc/GMT")
    {
        return None;
    }
    Some(name)
}

/// What keeps the process's user from creating files in `/tmp`, if anything.
fn tmp_problem(ck: &Checker) -> Option<String> {
    let meta = root::resolve(ck.root, "/tmp")
        .ok()
        .and_then(|p| ck.root.lstat(&p));
    match meta {
        None => Some("the image has no /tmp".to_string()),
        Some(m) if m.kind != FileType::Dir => {
            Some("/tmp in the image is not a directory".to_string())
        }
        Some(m) if !ck.id.allows(&m, 2) || !ck.id.allows(&m, 1) => Some(format!(
            "/tmp (mode {:04o}, owner {}:{}) is not writable by {}",
            m.mode,
            m.uid,
            m.gid,
            ck.id.describe()
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::HostRoot;

    /// On every Go program this machine has, the pclntab's name table holds exactly the
    /// names a scan of the whole file finds, and it is a small part of the file.
    #[test]
    fn go_names_table_finds_what_the_whole_file_has() {
        let needles: &[&[u8]] = &[
            GO_X509,
            GO_X509_FALLBACK,
            GO_LOAD_LOCATION,
            GO_TZDATA,
            GO_TEMP_DIR,
            b"runtime.main",
        ];
        let root = HostRoot::new("/");
        let mut seen = 0;
        for p in [
            "/usr/bin/umoci",
            "/usr/sbin/runc",
            "/usr/bin/skopeo",
            "/usr/bin/docker-registry",
            "/usr/local/bin/terraform",
        ] {
            let Ok(info) = crate::elf::parse_path(std::path::Path::new(p)) else {
                continue;
            };
            let names = info.go.as_ref().and_then(|g| g.names);
            let (start, len) = names.unwrap_or_else(|| panic!("{p}: no name table"));
            let size = std::fs::metadata(p).unwrap().len();
            assert!(
                start + len <= size && len < size / 2,
                "{p}: {start}+{len} of {size}"
            );
            let part = scan(&root, p, Part::Only((start, len)), needles).unwrap();
            assert_eq!(part, scan(&root, p, Part::Whole, needles).unwrap(), "{p}");
            assert!(part[5], "{p}: runtime.main is not in the name table");
            seen += 1;
        }
        if seen == 0 && std::env::var_os("NOBASE_TEST_REQUIRE_TOOLS").is_some() {
            panic!("no Go program to read");
        }
    }

    #[test]
    fn a_path_needle_matches_only_a_whole_path() {
        let found = |hay: &[u8]| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("f"), hay).unwrap();
            let root = HostRoot::new(dir.path());
            scan(&root, "/f", Part::Whole, TMP_NEEDLES).unwrap()[0]
        };
        assert!(found(b"\0/tmp/app.sock\0"));
        assert!(found(b"x=\"/tmp/x\""));
        assert!(found(b"/tmp/ at the start"));
        // A RUNPATH or another path that merely contains it.
        assert!(!found(b"\0/var/tmp/build/lib\0"));
        assert!(!found(b"\0/home/u/my-tmp/x\0/srv.tmp/y\0"));
        // One false match does not hide a true one later.
        assert!(found(b"\0/var/tmp/lib\0/tmp/sock\0"));
    }

    #[test]
    fn ranges_stay_inside_the_file() {
        assert_eq!(range(Part::Whole, 100), (0, 100));
        assert_eq!(range(Part::Only((10, 20)), 100), (10, 20));
        assert_eq!(range(Part::Only((90, 50)), 100), (90, 10));
        assert_eq!(range(Part::Only((200, 5)), 100), (100, 0));
    }
}
