//! What DT_NEEDED does not say: libraries and data a program loads at run time with
//! `dlopen`, recognised from its imports and strings, each reported with the `--add`
//! lines that put it in the image. These are warnings, not proof: a program may never
//! take the code path that loads them.
//!
//! * glibc NSS — `getpwnam`, `getaddrinfo`, `getgrnam`… read `/etc/nsswitch.conf` and
//!   dlopen `libnss_<service>.so.2` for every service it names (except `files` and `dns`,
//!   built into glibc since 2.34);
//! * `iconv_open` — glibc loads conversion modules from its `gconv` directory;
//! * `pthread_cancel` — glibc dlopens `libgcc_s.so.1` to unwind the cancelled thread;
//! * `.so` names that appear as whole strings in the executable — likely dlopen arguments.

use super::{Closure, Flavor};
use crate::root::{self, FileType, Root};
use std::collections::BTreeSet;

/// Largest nsswitch.conf read.
const MAX_CONF: u64 = 1 << 20;
/// Longest string considered a library name.
const MAX_NAME: usize = 255;
/// Most library-name strings reported.
const MAX_STRINGS: usize = 20;

/// A file to add to the image: `--add SOURCE:DEST`, both as paths inside the root the
/// closure was resolved in (the caller prefixes a sysroot to the source).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Add {
    /// Where it is in the root (canonical).
    pub source: String,
    /// Where it goes in the image.
    pub dest: String,
}

/// One run-time dependency that DT_NEEDED does not show.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlindSpot {
    /// `nss`, `iconv`, `libgcc_s` or `dlopen-string`.
    pub kind: &'static str,
    /// What was seen and what it means.
    pub message: String,
    /// The additions that supply it (may be empty when the root does not have them).
    pub adds: Vec<Add>,
    /// What it loads is not in the root (a module, the gconv directory, a library).
    #[serde(skip)]
    pub missing: bool,
}

/// glibc functions that go through NSS, with the database each reads.
pub const NSS: &[(&str, &str)] = &[
    ("getpwnam", "passwd"),
    ("getpwnam_r", "passwd"),
    ("getpwuid", "passwd"),
    ("getpwuid_r", "passwd"),
    ("getpwent", "passwd"),
    ("getpwent_r", "passwd"),
    ("getgrnam", "group"),
    ("getgrnam_r", "group"),
    ("getgrgid", "group"),
    ("getgrgid_r", "group"),
    ("getgrent", "group"),
    ("getgrouplist", "group"),
    ("initgroups", "group"),
    ("getspnam", "shadow"),
    ("getspnam_r", "shadow"),
    ("getaddrinfo", "hosts"),
    ("getnameinfo", "hosts"),
    ("gethostbyname", "hosts"),
    ("gethostbyname_r", "hosts"),
    ("gethostbyname2", "hosts"),
    ("gethostbyname2_r", "hosts"),
    ("gethostbyaddr", "hosts"),
    ("gethostbyaddr_r", "hosts"),
    ("getservbyname", "services"),
    ("getservbyname_r", "services"),
    ("getservbyport", "services"),
    ("getservbyport_r", "services"),
    ("getprotobyname", "protocols"),
    ("getprotobyname_r", "protocols"),
    ("getprotobynumber", "protocols"),
    ("getnetbyname", "networks"),
    ("getnetbyaddr", "networks"),
];

/// Which `/etc/nsswitch.conf` decides the NSS modules a program loads.
#[derive(Clone, Copy, Debug)]
pub enum NssConf<'a> {
    /// The root's own (a program on its host: `inspect`), whose copy is then advised.
    Root,
    /// The image's: these bytes, or none (glibc's defaults).
    Image(Option<&'a [u8]>),
}

/// The run-time loads a closure's objects are likely to make, for a glibc or musl
/// program resolved in `root`, on that root.
pub fn blind_spots(root: &dyn Root, closure: &Closure) -> Vec<BlindSpot> {
    blind_spots_with(root, closure, NssConf::Root)
}

/// The same, with the name service configured by `nss_conf`.
pub fn blind_spots_with(
    root: &dyn Root,
    closure: &Closure,
    nss_conf: NssConf<'_>,
) -> Vec<BlindSpot> {
    let mut out = Vec::new();
    if closure.setup.flavor == Flavor::Glibc {
        nss(root, closure, nss_conf, &mut out);
        iconv(root, closure, &mut out);
        libgcc_s(root, closure, &mut out);
    }
    strings(root, closure, &mut out);
    out
}

/// Objects other than the C library and the loader, which define these functions.
fn importers(closure: &Closure) -> impl Iterator<Item = &super::Object> {
    closure.objects.iter().filter(|o| {
        let s = o.info.soname.as_deref().unwrap_or("");
        !(s.starts_with("libc.so") || s.starts_with("ld-") || s.starts_with("libpthread.so"))
    })
}

fn add_found(root: &dyn Root, closure: &Closure, name: &str) -> Option<Add> {
    let (path, canonical) = closure.search(root, 0, name).ok()?;
    Some(Add {
        source: canonical,
        dest: lookup_dest(root, &path),
    })
}

/// Where to add a file the loader looks up as `path`: under the name it is looked up by
/// (`libz.so.1`, not the versioned file it links to), in its directory with symlinks
/// resolved — an added `/lib/…` would put a directory where the image has the `/lib`
/// symlink, hiding everything behind it.
fn lookup_dest(root: &dyn Root, path: &str) -> String {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let dir = if dir.is_empty() { "/" } else { dir };
    match root::resolve(root, dir) {
        Ok(d) if d == "/" => format!("/{name}"),
        Ok(d) => format!("{d}/{name}"),
        Err(_) => path.to_string(),
    }
}

fn already_has(closure: &Closure, name: &str) -> bool {
    closure
        .objects
        .iter()
        .any(|o| o.names.iter().any(|n| n == name) || o.info.soname.as_deref() == Some(name))
}

fn glibc_minor(closure: &Closure) -> Option<u32> {
    closure
        .objects
        .iter()
        .find(|o| o.info.soname.as_deref() == Some("libc.so.6"))?
        .info
        .version_defs
        .iter()
        .filter_map(|v| v.strip_prefix("GLIBC_2.")?.split('.').next()?.parse().ok())
        .max()
}

fn nss(root: &dyn Root, closure: &Closure, nss_conf: NssConf<'_>, out: &mut Vec<BlindSpot>) {
    let mut funcs: Vec<&str> = Vec::new();
    let mut dbs: BTreeSet<&str> = BTreeSet::new();
    for o in importers(closure) {
        for (f, db) in NSS {
            if o.info
                .imports
                .binary_search_by(|i| i.as_str().cmp(f))
                .is_ok()
            {
                if !funcs.contains(f) {
                    funcs.push(f);
                }
                dbs.insert(db);
            }
        }
    }
    if funcs.is_empty() {
        return;
    }
    let conf = match nss_conf {
        NssConf::Root => root::read_file(root, "/etc/nsswitch.conf", MAX_CONF).ok(),
        NssConf::Image(c) => c.map(<[u8]>::to_vec),
    };
    let mut services: BTreeSet<String> = BTreeSet::new();
    match &conf {
        Some(bytes) => {
            for line in String::from_utf8_lossy(bytes).lines() {
                let line = line.split('#').next().unwrap_or("");
                let Some((db, rest)) = line.split_once(':') else {
                    continue;
                };
                if !dbs.contains(db.trim()) {
                    continue;
                }
                let mut in_action = false;
                for w in rest.split_whitespace() {
                    if w.starts_with('[') {
                        in_action = true;
                    }
                    if !in_action {
                        services.insert(w.to_string());
                    }
                    if w.ends_with(']') {
                        in_action = false;
                    }
                }
            }
        }
        // glibc's defaults without the file.
        None => {
            services.insert("files".into());
            if dbs.contains("hosts") {
                services.insert("dns".into());
            }
        }
    }
    let builtin: &[&str] = if glibc_minor(closure).is_some_and(|m| m >= 34) {
        &["files", "dns"]
    } else {
        &[]
    };
    let mut adds = Vec::new();
    if conf.is_some() && matches!(nss_conf, NssConf::Root) {
        adds.push(Add {
            source: "/etc/nsswitch.conf".into(),
            dest: "/etc/nsswitch.conf".into(),
        });
    }
    let mut absent = Vec::new();
    for s in &services {
        if builtin.contains(&s.as_str()) {
            continue;
        }
        let lib = format!("libnss_{s}.so.2");
        if already_has(closure, &lib) {
            continue;
        }
        match add_found(root, closure, &lib) {
            Some(a) => adds.push(a),
            None => absent.push(lib),
        }
    }
    // In an image whose services are all built in, nothing is loaded: nothing to say
    // (whether it has the files those services read is `check`'s business).
    if matches!(nss_conf, NssConf::Image(_)) && adds.is_empty() && absent.is_empty() {
        return;
    }
    let shown: Vec<&str> = funcs.iter().take(4).copied().collect();
    let mut message = format!(
        "uses glibc NSS ({}{}): it reads /etc/nsswitch.conf and dlopens libnss_<service>.so.2 for the {} database{}",
        shown.join(", "),
        if funcs.len() > shown.len() { ", …" } else { "" },
        dbs.iter().copied().collect::<Vec<_>>().join(", "),
        if dbs.len() == 1 { "" } else { "s" },
    );
    if !builtin.is_empty() {
        message.push_str(" (files and dns are built into this glibc)");
    }
    if adds.iter().any(|a| a.dest != "/etc/nsswitch.conf") {
        message.push_str("; a module needs its own libraries too (`nobase inspect` lists them)");
    }
    if !absent.is_empty() {
        message.push_str(&format!(
            "; {} {} not in {}, so those services are skipped",
            absent.join(", "),
            if absent.len() == 1 { "is" } else { "are" },
            closure.root
        ));
    }
    out.push(BlindSpot {
        kind: "nss",
        message,
        adds,
        missing: !absent.is_empty(),
    });
}

fn iconv(root: &dyn Root, closure: &Closure, out: &mut Vec<BlindSpot>) {
    // The program's own calls only: libstdc++ (std::codecvt) and libidn2 import
    // iconv_open for conversions most programs never ask for, and naming every C++
    // program, node and ping for 7 MB of gconv modules was noise.
    let o = closure.executable();
    if o.info
        .imports
        .binary_search_by(|i| i.as_str().cmp("iconv_open"))
        .is_err()
    {
        return;
    }
    let mut seen = BTreeSet::new();
    let mut adds = Vec::new();
    for d in &closure.setup.default_dirs {
        let dir = format!("{}/gconv", d.trim_end_matches('/'));
        let Ok(real) = root::resolve(root, &dir) else {
            continue;
        };
        let is_dir = root.lstat(&real).is_some_and(|m| m.kind == FileType::Dir);
        if is_dir
            && seen.insert(real.clone())
            && root::resolve(root, &format!("{real}/gconv-modules")).is_ok()
        {
            adds.push(Add {
                source: real.clone(),
                dest: real,
            });
        }
    }
    out.push(BlindSpot {
        kind: "iconv",
        message: format!(
            "{} calls iconv_open: glibc dlopens gconv modules for every conversion but between UTF-8 and ASCII (Latin-1, UTF-16 and Windows-1252 included){}",
            crate::tree::lexical(&o.path),
            if adds.is_empty() {
                format!("; {} has none (no gconv/gconv-modules in the library directories)", closure.root)
            } else {
                String::new()
            }
        ),
        missing: adds.is_empty(),
        adds,
    });
}

fn libgcc_s(root: &dyn Root, closure: &Closure, out: &mut Vec<BlindSpot>) {
    const NAME: &str = "libgcc_s.so.1";
    if already_has(closure, NAME) {
        return;
    }
    let Some((o, f)) = importers(closure).find_map(|o| {
        ["pthread_cancel"]
            .into_iter()
            .find(|f| {
                o.info
                    .imports
                    .binary_search_by(|i| i.as_str().cmp(f))
                    .is_ok()
            })
            .map(|f| (o, f))
    }) else {
        return;
    };
    let adds: Vec<Add> = add_found(root, closure, NAME).into_iter().collect();
    out.push(BlindSpot {
        kind: "libgcc_s",
        message: format!(
            "{} calls {f}: glibc dlopens {NAME} to unwind the thread, and aborts (\"libgcc_s.so.1 must be installed for pthread_cancel to work\") without it{}",
            crate::tree::lexical(&o.path),
            if adds.is_empty() { format!("; {NAME} is not in {}", closure.root) } else { String::new() }
        ),
        missing: adds.is_empty(),
        adds,
    });
}

/// True for a whole string that looks like a shared library name or path:
/// `libfoo.so`, `libfoo.so.1.2`, `/usr/lib/foo.so`.
fn looks_like_library(s: &[u8]) -> bool {
    if s.len() < 4 || s.len() > MAX_NAME || !s.iter().all(|c| (0x21..0x7f).contains(c)) {
        return false;
    }
    let base = match s.iter().rposition(|&c| c == b'/') {
        Some(i) => {
            if s[0] != b'/' {
                return false;
            }
            &s[i + 1..]
        }
        None => s,
    };
    // `.abi3.so`, `.cpython-311-x86_64-linux-gnu.so`: suffixes, not names.
    if !base
        .first()
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        || !base
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_+.-".contains(c))
    {
        return false;
    }
    let text = String::from_utf8_lossy(base);
    let Some(i) = text.find(".so") else {
        return false;
    };
    let (stem, tail) = (&text[..i], &text[i + 3..]);
    !stem.is_empty()
        && stem.bytes().any(|c| c.is_ascii_alphabetic())
        && (tail.is_empty()
            || (tail.starts_with('.')
                && tail[1..]
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))))
}

/// Whole NUL-terminated strings in a file that look like library names, in order of
/// their first appearance. Every name has ".so" in it: the file is searched for that
/// (memchr's SIMD search, not a byte loop: a 99 MB node took 250 ms that way), and each
/// hit grown to the NULs around it. Chunks overlap by a whole name, so a name across a
/// chunk boundary is seen whole in the next chunk.
fn library_strings(root: &dyn Root, canonical: &str) -> Vec<String> {
    const CHUNK: usize = 4 << 20;
    let Ok(f) = root.open(canonical) else {
        return Vec::new();
    };
    let finder = memchr::memmem::Finder::new(b".so");
    let overlap = 2 * (MAX_NAME + 1);
    let mut found: Vec<String> = Vec::new();
    let mut buf = vec![0u8; CHUNK + overlap];
    let size = f.size();
    let mut off = 0u64;
    // Hits at or after this file offset are new (the overlap is read twice).
    let mut seen_to = 0u64;
    while off < size {
        let n = ((size - off) as usize).min(buf.len());
        if f.read_exact_at(off, &mut buf[..n]).is_err() {
            break;
        }
        let chunk = &buf[..n];
        let last = off + n as u64 >= size;
        for at in finder.find_iter(chunk) {
            let abs = off + at as u64;
            if abs < seen_to {
                continue;
            }
            // The string around the hit: from after the NUL before it to the NUL after,
            // looked for no further than a name can be long.
            let from = at.saturating_sub(MAX_NAME + 1);
            let start = match chunk[from..at].iter().rposition(|&c| c == 0) {
                Some(p) => from + p + 1,
                // The file's first string.
                None if off == 0 && from == 0 => 0,
                // No NUL before it within a name's length: no name.
                None => continue,
            };
            let to = (at + MAX_NAME + 1).min(chunk.len());
            let hi = chunk[at..to].iter().position(|&c| c == 0).map(|p| at + p);
            let Some(hi) = hi else {
                // Cut by the chunk's end: the next chunk, which starts `overlap` earlier,
                // has it whole. Otherwise too long, or at the file's end: no name.
                if !last && to == chunk.len() {
                    break;
                }
                continue;
            };
            let s = &chunk[start..hi];
            if s.len() <= MAX_NAME && looks_like_library(s) {
                let s = String::from_utf8_lossy(s).into_owned();
                if !found.contains(&s) {
                    found.push(s);
                }
            }
        }
        if last {
            break;
        }
        let next = off + (n - overlap) as u64;
        seen_to = next;
        off = next;
    }
    found
}

fn strings(root: &dyn Root, closure: &Closure, out: &mut Vec<BlindSpot>) {
    let exe = closure.executable();
    let mut known: BTreeSet<&str> = BTreeSet::new();
    for o in &closure.objects {
        known.extend(o.names.iter().map(String::as_str));
        known.extend(o.info.soname.as_deref());
        // Its own PT_INTERP is a string of the program too, found or not (a program of
        // another machine inspected without its sysroot), not a dlopen.
        known.extend(o.info.interpreter.as_deref());
        known.insert(o.path.as_str());
        known.insert(o.path.rsplit('/').next().unwrap_or(""));
    }
    for n in &closure.needs {
        known.insert(n.name.as_str());
    }
    let mut reported = 0;
    for s in library_strings(root, &exe.canonical) {
        if known.contains(s.as_str())
            || (closure.setup.flavor == Flavor::Musl && super::musl_is_self(&s))
        {
            continue;
        }
        if reported == MAX_STRINGS {
            break;
        }
        reported += 1;
        let found = if s.starts_with('/') {
            root::resolve(root, &s).ok().map(|c| Add {
                source: c,
                dest: lookup_dest(root, &s),
            })
        } else {
            add_found(root, closure, &s)
        };
        let message = match &found {
            Some(_) => format!(
                "{} contains the string \"{s}\": if it dlopens it, the image needs it (and its libraries)",
                crate::tree::lexical(&exe.path)
            ),
            None => format!(
                "{} contains the string \"{s}\", a library name that is not in {}; if the program dlopens it, that will fail",
                crate::tree::lexical(&exe.path), closure.root
            ),
        };
        out.push(BlindSpot {
            kind: "dlopen-string",
            message,
            missing: found.is_none(),
            adds: found.into_iter().collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_library;

    #[test]
    fn library_names_are_found_across_chunk_boundaries() {
        let d = tempfile::tempdir().unwrap();
        let mut data = b"libfirst.so\0".to_vec();
        data.resize((4 << 20) - 6, b'x');
        // Straddles the first 4 MiB chunk's end; then one just after, one far on, a
        // repeat, an over-long one and a suffix that is no name.
        data.extend_from_slice(b"\0libacross.so.1\0libafter.so\0");
        data.resize(9 << 20, 0);
        data.extend_from_slice(b"/usr/lib/libfar.so.2\0libacross.so.1\0.abi3.so\0");
        data.extend_from_slice(&[b'a'; 300]);
        data.extend_from_slice(b".so\0libtail.so");
        std::fs::write(d.path().join("f"), &data).unwrap();
        let root = crate::root::HostRoot::new(d.path());
        assert_eq!(
            super::library_strings(&root, "/f"),
            [
                "libfirst.so",
                "libacross.so.1",
                "libafter.so",
                "/usr/lib/libfar.so.2"
            ]
        );
    }

    #[test]
    fn library_like_strings() {
        for (s, want) in [
            ("libfoo.so", true),
            ("libfoo.so.1", true),
            ("libfoo.so.1.2.3", true),
            ("libGL.so.1", true),
            ("/usr/lib/x86_64-linux-gnu/libnss_dns.so.2", true),
            ("libfoo.so.%d", false),
            ("lib%s.so", false),
            ("libfoo.so.1a", false),
            ("foo.socket", false),
            (".abi3.so", false),
            (".cpython-311-x86_64-linux-gnu.so", false),
            ("/usr/lib/.hidden.so", false),
            (".so", false),
            ("relative/libx.so", false),
            ("libfoo.so ", false),
            ("1.so", false),
        ] {
            assert_eq!(looks_like_library(s.as_bytes()), want, "{s}");
        }
    }
}
