//! The build context: the directory `COPY` and `ADD` read from, seen through its
//! `.dockerignore`. Sources are cleaned like paths (never above the context root),
//! wildcards are expanded against what the ignore file lets through, a source that is a
//! symlink is followed inside the context (never out of it), and a directory's contents
//! are walked in sorted order.

use super::pattern::{self, Ignore, Pattern};
use crate::error::{Error, IoContext, Result};
use crate::root::{self, FileType, HostRoot, Root};
use crate::tree::{self, Entry};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A build context directory and its ignore rules.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    ignore: Ignore,
}

/// One source a `COPY` pattern matched.
#[derive(Clone, Debug)]
pub struct Matched {
    /// The path as matched, relative to the context root (`""` is the root).
    pub rel: String,
    /// What it names after following a symlink inside the context.
    pub real: String,
    /// True when it is a directory (its contents are copied).
    pub is_dir: bool,
}

/// A context path the image gives a looser mode than the host does: its group or others
/// may read or run it there, not here (`0600` → `0644`, `0700` → `0755`), because image
/// modes are normalized so that the digest does not depend on the checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widened {
    /// The path in the context.
    pub source: String,
    /// Its permission bits on the host.
    pub host: u32,
    /// Its permission bits in the image.
    pub image: u32,
}

impl Widened {
    /// `Some` when `image` grants group or others a read or execute bit `host` does not.
    pub fn check(source: &str, host: u32, image: u32) -> Option<Widened> {
        (image & !host & 0o055 != 0).then(|| Widened {
            source: source.to_string(),
            host: host & 0o7777,
            image: image & 0o7777,
        })
    }
}

impl Matched {
    /// The name a file keeps when copied into a directory.
    pub fn name(&self) -> &str {
        self.rel.rsplit('/').next().unwrap_or("")
    }
}

/// Joins a relative directory and a name (`""` is the root).
pub fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Expands one cleaned, relative pattern against a tree, component by component.
/// `list(dir)` gives the sorted names in a relative directory, `None` when it is not
/// one. Returns matching relative paths, sorted.
pub fn expand(
    pattern: &str,
    list: &dyn Fn(&str) -> Option<Vec<String>>,
) -> Result<Vec<String>, String> {
    let mut found = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if pattern::has_wildcards(comp) {
            let p = Pattern::new(comp, false)?;
            for dir in &found {
                for name in list(dir).unwrap_or_default() {
                    if p.matches(&name) {
                        next.push(join_rel(dir, &name));
                    }
                }
            }
        } else {
            // A literal component (escapes removed) is looked up, not listed.
            let lit = comp.replace('\\', "");
            for dir in &found {
                if list(dir).is_some_and(|names| names.contains(&lit)) {
                    next.push(join_rel(dir, &lit));
                }
            }
        }
        found = next;
        if found.is_empty() {
            break;
        }
    }
    found.sort();
    Ok(found)
}

impl Context {
    /// Opens a context directory with the ignore rules in `ignore_text`.
    pub fn new(root: &Path, ignore_text: Option<&str>) -> Result<Context> {
        let meta = std::fs::metadata(root)
            .io(|| format!("opening the build context {}", root.display()))?;
        if !meta.is_dir() {
            return Err(Error::Usage(format!(
                "the build context {} is not a directory",
                root.display()
            )));
        }
        let ignore = match ignore_text {
            Some(t) => Ignore::parse(t).map_err(Error::Usage)?,
            None => Ignore::default(),
        };
        Ok(Context {
            root: root.to_path_buf(),
            ignore,
        })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of a relative context path.
    pub fn host(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// True when `.dockerignore` keeps `rel` out of the context.
    pub fn ignored(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.excluded(rel)
    }

    /// The sorted names in a context directory that the ignore rules let through (an
    /// ignored directory is still listed when an exception may apply below it).
    fn list(&self, rel: &str) -> Option<Vec<String>> {
        let host = HostRoot::new(&self.root);
        let at = format!("/{rel}");
        if host.lstat(&at)?.kind != FileType::Dir {
            return None;
        }
        Some(
            host.list(&at)?
                .into_iter()
                .filter(|n| {
                    let child = join_rel(rel, n);
                    !self.ignored(&child)
                        || (self.ignore.has_exceptions()
                            && host.lstat(&format!("/{child}")).map(|m| m.kind)
                                == Some(FileType::Dir))
                })
                .collect(),
        )
    }

    /// The context paths a `COPY` source names (a path or a wildcard pattern), with
    /// symlinks followed inside the context. Nothing found is an error that says so.
    pub fn matches(&self, src: &str) -> Result<Vec<Matched>, String> {
        let cleaned = pattern::clean(src);
        let rels = if pattern::has_wildcards(&cleaned) {
            expand(&cleaned, &|d| self.list(d))?
                .into_iter()
                .filter(|r| !self.ignored(r))
                .collect()
        } else if cleaned.is_empty() {
            vec![String::new()]
        } else {
            let present = std::fs::symlink_metadata(self.host(&cleaned)).is_ok();
            if !present || self.ignored(&cleaned) {
                Vec::new()
            } else {
                vec![cleaned.clone()]
            }
        };
        if rels.is_empty() {
            let why = if !cleaned.is_empty() && self.ignored(&cleaned) {
                " (.dockerignore excludes it)"
            } else {
                ""
            };
            return Err(format!(
                "{src}: not found in the build context {}{why}",
                self.root.display()
            ));
        }
        let host = HostRoot::new(&self.root);
        rels.into_iter()
            .map(|rel| {
                let real = if rel.is_empty() {
                    "/".to_string()
                } else {
                    root::resolve(&host, &format!("/{rel}")).map_err(|e| {
                        format!("{src}: {rel} leads nowhere inside the build context ({e})")
                    })?
                };
                let meta = host
                    .lstat(&real)
                    .ok_or_else(|| format!("{src}: {real} disappeared"))?;
                Ok(Matched {
                    rel,
                    real: real.trim_start_matches('/').to_string(),
                    is_dir: meta.kind == FileType::Dir,
                })
            })
            .collect()
    }

    /// The entries for copying context path `m` to image path `dest` (absolute): a
    /// file or symlink target lands at `dest`; a directory's contents land below `dest`.
    /// `exclude` holds `COPY --exclude` patterns, matched relative to the source. What the
    /// image makes readable to more users than the host did is added to `widened`.
    pub fn entries(
        &self,
        m: &Matched,
        dest: &str,
        exclude: &Ignore,
        widened: &mut Vec<Widened>,
    ) -> Result<Vec<(String, Entry)>> {
        let mut out = Vec::new();
        if !m.is_dir {
            // A followed symlink gives its target's content, not a link.
            let host = self.host(&m.real);
            let e = tree::host_entry(&host)?;
            widened.extend(Widened::check(&m.rel, host_mode(&host)?, e.mode));
            out.push((dest.to_string(), e));
            return Ok(out);
        }
        let mut found = Found {
            entries: out,
            widened,
        };
        self.walk(&m.real, &m.rel, "", dest, exclude, &mut found)?;
        Ok(found.entries)
    }

    /// The permission bits of a context path on the host.
    pub fn host_mode(&self, rel: &str) -> Result<u32> {
        host_mode(&self.host(rel))
    }

    fn walk(
        &self,
        real: &str,
        shown: &str,
        below: &str,
        dest: &str,
        exclude: &Ignore,
        out: &mut Found<'_>,
    ) -> Result<()> {
        let dir = self.host(real);
        let mut names: Vec<String> = Vec::new();
        for e in std::fs::read_dir(&dir).io(|| format!("listing {}", dir.display()))? {
            let e = e.io(|| format!("listing {}", dir.display()))?;
            let name = e.file_name().into_string().map_err(|n| {
                Error::Invalid(format!("{}: file name {n:?} is not UTF-8", dir.display()))
            })?;
            names.push(name);
        }
        names.sort();
        for name in names {
            let child_shown = join_rel(shown, &name);
            let child_below = join_rel(below, &name);
            let host = dir.join(&name);
            let ignored = self.ignored(&child_shown) || exclude.excluded(&child_below);
            // Below an ignored directory, an exception can still bring files back.
            let exceptions = self.ignore.has_exceptions() || exclude.has_exceptions();
            let meta =
                std::fs::symlink_metadata(&host).io(|| format!("reading {}", host.display()))?;
            let is_dir = meta.is_dir();
            let target = format!("{}/{name}", dest.trim_end_matches('/'));
            if !ignored {
                // Only what is copied is read: an ignored FIFO or socket is no error.
                let e = tree::host_entry(&host)?;
                if !meta.file_type().is_symlink() {
                    out.widened.extend(Widened::check(
                        &child_shown,
                        meta.permissions().mode(),
                        e.mode,
                    ));
                }
                out.entries.push((target.clone(), e));
            }
            if is_dir && (!ignored || exceptions) {
                let real = join_rel(real, &name);
                self.walk(&real, &child_shown, &child_below, &target, exclude, out)?;
            }
        }
        Ok(())
    }
}

/// What a walk of a context directory finds: the entries, and the widened modes.
struct Found<'a> {
    entries: Vec<(String, Entry)>,
    widened: &'a mut Vec<Widened>,
}

/// The permission bits of a host path (not following a final symlink).
fn host_mode(path: &Path) -> Result<u32> {
    Ok(std::fs::symlink_metadata(path)
        .io(|| format!("reading {}", path.display()))?
        .permissions()
        .mode()
        & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn ctx(ignore: &str) -> (tempfile::TempDir, Context) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("src/sub")).unwrap();
        std::fs::create_dir_all(p.join("logs")).unwrap();
        for f in [
            "a.txt",
            "b.txt",
            "src/main.c",
            "src/sub/x.c",
            "logs/1.log",
            "logs/keep.log",
        ] {
            std::fs::write(p.join(f), f).unwrap();
        }
        symlink("src/main.c", p.join("link")).unwrap();
        symlink("../../../../etc/passwd", p.join("escape")).unwrap();
        let c = Context::new(p, Some(ignore)).unwrap();
        (d, c)
    }

    #[test]
    fn wildcards_and_ignores() {
        let (_d, c) = ctx("logs\n!logs/keep.log\nb.txt\n");
        let rels = |s: &str| {
            c.matches(s)
                .map(|v| v.into_iter().map(|m| m.rel).collect::<Vec<_>>())
        };
        assert_eq!(rels("*.txt").unwrap(), ["a.txt"]);
        assert_eq!(rels("src/*/*.c").unwrap(), ["src/sub/x.c"]);
        assert_eq!(rels("/src/../a.txt").unwrap(), ["a.txt"]);
        assert!(rels("b.txt")
            .unwrap_err()
            .contains(".dockerignore excludes it"));
        assert!(rels("nothing*").is_err());
        assert_eq!(rels("logs/*").unwrap(), ["logs/keep.log"]);
        let all = c.matches(".").unwrap();
        let paths: Vec<_> = c
            .entries(&all[0], "/app", &Ignore::default(), &mut Vec::new())
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert!(paths.contains(&"/app/logs/keep.log".to_string()));
        assert!(!paths
            .iter()
            .any(|p| p.ends_with("1.log") || p.ends_with("b.txt")));
        let ex = Ignore::parse("*.c\n").unwrap();
        let src = c.matches("src").unwrap();
        let paths: Vec<_> = c
            .entries(&src[0], "/s", &ex, &mut Vec::new())
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["/s/sub", "/s/sub/x.c"]);
    }

    #[test]
    fn modes_the_image_opens_up_are_reported() {
        let (d, c) = ctx("");
        let set = |p: &str, m: u32| {
            std::fs::set_permissions(d.path().join(p), std::fs::Permissions::from_mode(m)).unwrap()
        };
        set("src/main.c", 0o600);
        set("src/sub", 0o700);
        set("src/sub/x.c", 0o664);
        set("a.txt", 0o640);
        let mut widened = Vec::new();
        let src = c.matches("src").unwrap();
        c.entries(&src[0], "/s", &Ignore::default(), &mut widened)
            .unwrap();
        let a = c.matches("a.txt").unwrap();
        c.entries(&a[0], "/a", &Ignore::default(), &mut widened)
            .unwrap();
        let got: Vec<_> = widened
            .iter()
            .map(|w| (w.source.as_str(), w.host, w.image))
            .collect();
        // 0664 → 0644 takes a right away: not reported.
        assert_eq!(
            got,
            [
                ("src/main.c", 0o600, 0o644),
                ("src/sub", 0o700, 0o755),
                ("a.txt", 0o640, 0o644)
            ]
        );
        for (host, image, want) in [
            (0o750, 0o755, true),
            (0o711, 0o755, true),
            (0o4755, 0o755, false),
            (0o777, 0o755, false),
            (0o644, 0o644, false),
        ] {
            assert_eq!(Widened::check("x", host, image).is_some(), want, "{host:o}");
        }
    }

    #[test]
    fn symlinked_sources_stay_inside_the_context() {
        let (_d, c) = ctx("");
        let m = &c.matches("link").unwrap()[0];
        assert_eq!(m.real, "src/main.c");
        assert_eq!(m.name(), "link");
        // The link climbs out; inside the context it names a missing /etc/passwd.
        assert!(c.matches("escape").unwrap_err().contains("leads nowhere"));
    }
}
