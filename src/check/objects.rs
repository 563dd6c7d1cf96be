//! The image's other ELF objects: extension modules, plugins and helper programs that the
//! entrypoint does not link but may load or start (`import ssl` loads Python's `_ssl`
//! module, which links libssl). An object that needs a library the image has nowhere —
//! no file or link of that name in any directory — will fail to load: one warning per
//! object, naming what it lacks.
//!
//! Only for an image whose program starts, and only a library absent from the whole
//! image is said: one that exists outside the loader's search path may still be found
//! at run time (glibc matches a `DT_NEEDED` name against the objects already loaded,
//! as a JVM's modules find `libjvm.so`).

use super::{Checker, WarningCode};
use crate::elf::{self, ElfInfo, Kind};
use crate::root::{self, FileType, Root};
use std::collections::{BTreeSet, HashSet};

/// How many of an object's missing libraries its warning names.
const NAMED: usize = 4;

/// Objects warned about one by one; the rest are counted.
const MAX_WARNINGS: usize = 20;

/// Directories deeper than this are not walked (a tar can nest further; no image needs it).
const MAX_DEPTH: usize = 64;

/// The ELF objects of the image's architecture that need libraries, by path, and the
/// name of every file and link in the image.
struct Scan {
    objects: Vec<(String, ElfInfo)>,
    names: HashSet<String>,
}

fn scan(root: &dyn Root, architecture: &str) -> Scan {
    let mut s = Scan {
        objects: Vec::new(),
        names: HashSet::new(),
    };
    let mut dirs = vec![("/".to_string(), 0usize)];
    while let Some((dir, depth)) = dirs.pop() {
        let Some(children) = root.list(&dir) else {
            continue;
        };
        for name in children {
            let path = format!("{}/{name}", dir.trim_end_matches('/'));
            let Some(meta) = root.lstat(&path) else {
                continue;
            };
            match meta.kind {
                FileType::Dir if depth < MAX_DEPTH => dirs.push((path, depth + 1)),
                FileType::Symlink => {
                    s.names.insert(name);
                }
                FileType::File => {
                    s.names.insert(name);
                    if meta.size < 64 {
                        continue;
                    }
                    let Some(info) = elf_object(root, &path) else {
                        continue;
                    };
                    if let Some(soname) = &info.soname {
                        s.names.insert(soname.clone());
                    }
                    if matches!(info.kind, Kind::SharedLibrary | Kind::Dynamic)
                        && info.architecture.as_deref() == Some(architecture)
                        && (!info.needed.is_empty() || info.interpreter.is_some())
                    {
                        s.objects.push((path, info));
                    }
                }
                _ => {}
            }
        }
    }
    s.objects.sort_by(|a, b| a.0.cmp(&b.0));
    s
}

/// The file's ELF header and tables, if it is an ELF file (`parse` says NotElf from its
/// first 16 bytes otherwise).
fn elf_object(root: &dyn Root, path: &str) -> Option<ElfInfo> {
    elf::parse(&*root.open(path).ok()?).ok()
}

/// Warns about each object outside the entrypoint's closure that needs a library, or a
/// loader, the image does not have anywhere (at most [`MAX_WARNINGS`], then a count).
pub(super) fn warn(ck: &mut Checker) {
    let s = scan(ck.root, &ck.platform.architecture);
    // The start-up's own files are judged by the check itself (a command whose loader
    // is missing is `missing-interpreter`, not a helper that may fail).
    let loaded: BTreeSet<&str> = ck
        .programs
        .iter()
        .map(|p| p.path.as_str())
        .chain(ck.executed.iter().map(String::as_str))
        .collect();
    let mut messages = Vec::new();
    for (path, info) in &s.objects {
        if loaded.contains(path.as_str()) {
            continue;
        }
        let libraries: Vec<&str> = info
            .needed
            .iter()
            .filter(|n| !n.contains('/') && !s.names.contains(n.as_str()))
            .map(String::as_str)
            .collect();
        // A prebuilt object for the other C library (npm packages ship glibc and musl
        // builds side by side) is never the one loaded.
        if libraries.iter().any(|l| other_libc(l, &s.names)) {
            continue;
        }
        let loader = info
            .interpreter
            .as_deref()
            .filter(|i| info.kind == Kind::Dynamic && root::resolve(ck.root, i).is_err());
        if !libraries.is_empty() || loader.is_some() {
            messages.push(message(
                path,
                info.kind == Kind::Dynamic,
                loader,
                &libraries,
            ));
        }
    }
    let more = messages.len().saturating_sub(MAX_WARNINGS);
    for m in messages.into_iter().take(MAX_WARNINGS) {
        ck.warning(WarningCode::UnloadableObject, m);
    }
    if more > 0 {
        ck.warning(
            WarningCode::UnloadableObject,
            format!("{more} more ELF objects in the image need libraries it has nowhere"),
        );
    }
}

/// Whether `lib` is the C library of the other flavor than the one the image has.
fn other_libc(lib: &str, names: &HashSet<String>) -> bool {
    // musl's libc is `libc.so` to what musl-gcc links, `libc.musl-ARCH.so.1` to Alpine's.
    let musl = |n: &str| n == "libc.so" || n.starts_with("libc.musl-") || n.starts_with("ld-musl-");
    (musl(lib) && names.contains("libc.so.6"))
        || (lib == "libc.so.6" && names.iter().any(|n| musl(n)))
}

fn message(path: &str, program: bool, loader: Option<&str>, libraries: &[&str]) -> String {
    let mut what = Vec::new();
    if let Some(l) = loader {
        what.push(format!("its loader {l}"));
    }
    what.extend(libraries.iter().take(NAMED).map(|l| l.to_string()));
    let rest = libraries.len().saturating_sub(NAMED);
    let listed = match (what.split_last(), rest) {
        (Some((last, [])), 0) => last.clone(),
        (Some((last, init)), 0) => format!("{} and {last}", init.join(", ")),
        (_, n) => format!(
            "{} and {n} more {}",
            what.join(", "),
            if n == 1 { "library" } else { "libraries" }
        ),
    };
    let (how, fails) = if program {
        (
            "a helper the program may start",
            "if the program starts it, that fails",
        )
    } else {
        (
            "a module or plugin the program may load",
            "if the program loads it, that fails",
        )
    };
    format!(
        "{path} ({how}) needs {listed}, which the image has nowhere: {fails}; add {} to the image (`nobase build` of a dynamic program bundles what the files added with it need)",
        if what.len() + rest == 1 { "it" } else { "them" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_c_library_is_told_apart() {
        let glibc: HashSet<String> = ["libc.so.6".to_string()].into();
        let musl: HashSet<String> = ["ld-musl-x86_64.so.1".to_string()].into();
        assert!(other_libc("libc.musl-x86_64.so.1", &glibc));
        assert!(other_libc("libc.so", &glibc));
        assert!(!other_libc("libc.musl-x86_64.so.1", &musl));
        assert!(other_libc("libc.so.6", &musl));
        assert!(!other_libc("libc.so.6", &HashSet::new()));
        assert!(!other_libc("libssl.so.3", &glibc));
    }
}
