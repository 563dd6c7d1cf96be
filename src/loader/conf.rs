//! `/etc/ld.so.conf` as ldconfig reads it — one directory per line, `#` comments,
//! `include PATTERN…` with shell globs (relative patterns are relative to the including
//! file's directory), `hwcap` lines ignored — evaluated inside a [`Root`].
//!
//! ld.so itself never reads this file: it reads the cache ldconfig builds from it. The
//! resolver uses these directories only for a root that has no cache (a sysroot that
//! never ran ldconfig), where they say what the cache would contain.

use crate::root::{self, FileType, Root};

/// Most nested `include` levels followed (a file including itself stops here).
const MAX_DEPTH: usize = 16;
/// Largest configuration file read.
const MAX_CONF: u64 = 1 << 20;

/// The directories `/etc/ld.so.conf` names in `root`, in order, without duplicates.
pub fn dirs(root: &dyn Root) -> Vec<String> {
    let mut out = Vec::new();
    parse_file(root, "/etc/ld.so.conf", 0, &mut out);
    out
}

fn parse_file(root: &dyn Root, path: &str, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(bytes) = root::read_file(root, path, MAX_CONF) else {
        return;
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
        let first = words.next().unwrap_or("");
        if first == "include" && line.len() > 7 {
            for pattern in words {
                let pattern = if pattern.starts_with('/') {
                    pattern.to_string()
                } else {
                    format!("{}/{pattern}", parent(path))
                };
                for file in glob(root, &pattern) {
                    parse_file(root, &file, depth + 1, out);
                }
            }
        } else if first.eq_ignore_ascii_case("hwcap") && line.len() > 5 {
            // Legacy hwcap directives: ldconfig ignores them too.
        } else {
            // `DIR=TYPE` (libc5 era) names DIR; trailing slashes are dropped.
            let dir = line.split('=').next().unwrap_or("").trim_end();
            let dir = match dir.trim_end_matches('/') {
                "" if dir.starts_with('/') => "/",
                d => d,
            };
            if !dir.is_empty() && !out.iter().any(|d| d == dir) {
                out.push(dir.to_string());
            }
        }
    }
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "",
        Some(i) => &path[..i],
    }
}

/// Expands a glob pattern (`*`, `?`, `[…]` in any component) against `root`, sorted as
/// glob(3) returns them. Hidden names match only a pattern that starts with a dot.
pub fn glob(root: &dyn Root, pattern: &str) -> Vec<String> {
    let mut current = vec![String::new()];
    let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    for (i, comp) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let mut next = Vec::new();
        for base in &current {
            if !comp.contains(['*', '?', '[']) {
                next.push(format!("{base}/{comp}"));
                continue;
            }
            let dir = if base.is_empty() { "/" } else { base };
            let Ok(real) = root::resolve(root, dir) else {
                continue;
            };
            let Some(names) = root.list(&real) else {
                continue;
            };
            for n in names {
                if n.starts_with('.') && !comp.starts_with('.') {
                    continue;
                }
                if fnmatch(comp.as_bytes(), n.as_bytes()) {
                    next.push(format!("{base}/{n}"));
                }
            }
        }
        // Intermediate components must be directories (after symlinks).
        if !last {
            next.retain(|p| {
                root::resolve(root, p)
                    .ok()
                    .and_then(|r| root.lstat(&r))
                    .is_some_and(|m| m.kind == FileType::Dir)
            });
        }
        current = next;
    }
    current.retain(|p| !p.is_empty() && root::resolve(root, p).is_ok());
    current.sort();
    current
}

/// Shell wildcard match of one path component.
fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| fnmatch(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && fnmatch(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else {
                return false;
            };
            let mut i = 1;
            let negate = matches!(p.get(1), Some(b'!') | Some(b'^'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
                    matched |= p[i] <= c && c <= p[i + 2];
                    i += 3;
                } else {
                    matched |= p[i] == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal '['.
                return c == b'[' && fnmatch(&p[1..], &s[1..]);
            }
            matched != negate && fnmatch(&p[i + 1..], &s[1..])
        }
        Some(&lit) => s.first() == Some(&lit) && fnmatch(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::HostRoot;

    #[test]
    fn wildcards() {
        for (p, s, want) in [
            ("*.conf", "libc.conf", true),
            ("*.conf", "libc.conf.bak", false),
            ("x86_64-?inux*", "x86_64-linux-gnu.conf", true),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[]x", "]", false),
            ("a[", "a[", true),
            ("", "", true),
        ] {
            assert_eq!(fnmatch(p.as_bytes(), s.as_bytes()), want, "{p} {s}");
        }
    }

    #[test]
    fn includes_globs_comments_and_loops() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::create_dir_all(b.join("etc/ld.so.conf.d")).unwrap();
        std::fs::write(
            b.join("etc/ld.so.conf"),
            "# top\n/opt/first/  # trailing\ninclude ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n/usr/local/lib=libc6\n/opt/first\n",
        )
        .unwrap();
        std::fs::write(b.join("etc/ld.so.conf.d/b.conf"), "/opt/b\n").unwrap();
        std::fs::write(
            b.join("etc/ld.so.conf.d/a.conf"),
            "/opt/a\ninclude /etc/ld.so.conf\n",
        )
        .unwrap();
        std::fs::write(b.join("etc/ld.so.conf.d/.hidden.conf"), "/opt/hidden\n").unwrap();
        std::fs::write(b.join("etc/ld.so.conf.d/c.conf.off"), "/opt/off\n").unwrap();
        let got = dirs(&HostRoot::new(b));
        // a.conf includes the top file again: its lines come in there (once each).
        assert_eq!(got, ["/opt/first", "/opt/a", "/usr/local/lib", "/opt/b"]);
    }
}
