//! Data files a program reads as it starts, which its ELF objects do not name as
//! libraries: the locale the image's environment asks glibc for, and Python's standard
//! library. Without them the program starts and then fails or degrades at once (Python
//! stops with `No module named 'encodings'`; glibc falls back to the C locale, and Perl
//! warns at every start).

use super::warn::{exists, is_glibc};
use super::{Checker, Code, Loaded, WarningCode};
use crate::root::FileType;

/// Where glibc looks for compiled locales when `LOCPATH` is not set.
const LOCALE_DIR: &str = "/usr/lib/locale";

/// The warnings of this module.
pub(super) fn warn(ck: &mut Checker) -> super::Result<()> {
    locale(ck);
    perl(ck);
    python(ck)
}

/// The longest directory of a Perl's @INC looked for.
const MAX_INC_DIR: usize = 200;

/// The directories a Perl interpreter's @INC names, as it keeps them: strings of their
/// own in its binary (or libperl) that are absolute paths with `perl` in them
/// (`/usr/share/perl/5.36`, `/usr/lib/x86_64-linux-gnu/perl-base`, `/etc/perl`).
fn perl_inc(ck: &Checker, object: &str) -> Vec<String> {
    let Ok(f) = ck.root.open(object) else {
        return Vec::new();
    };
    // An interpreter is a few MiB; a bigger file is not read whole.
    if f.size() > 16 << 20 {
        return Vec::new();
    }
    let mut buf = vec![0u8; f.size() as usize];
    if f.read_exact_at(0, &mut buf).is_err() {
        return Vec::new();
    }
    let mut dirs: Vec<String> = buf
        .split(|&b| b == 0)
        .filter(|s| s.len() > 1 && s.len() <= MAX_INC_DIR && s[0] == b'/')
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter(|s| {
            s.contains("perl")
                && !s.starts_with("/usr/lib/debug")
                && !s.ends_with(".so")
                && s.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
        .collect();
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// A Perl interpreter whose modules are in none of its @INC directories: it starts, and
/// the first `use strict` stops the script with `Can't locate strict.pm in @INC`.
fn perl(ck: &mut Checker) {
    // The interpreter itself: a program embedding libperl (vim) runs without modules.
    let found = ck.programs.iter().find_map(|p| {
        let base = p.path.rsplit('/').next().unwrap_or("");
        let shown = p.shown.rsplit('/').next().unwrap_or("");
        let named =
            (base.starts_with("perl") || shown.starts_with("perl")) && p.info.kind.is_executable();
        named.then(|| {
            // Its @INC is in libperl when it links one.
            let object = loaded(ck, "libperl.so")
                .filter(|_| p.info.needed.iter().any(|n| n.starts_with("libperl.so")))
                .map_or_else(|| p.path.clone(), |l| l.path.clone());
            (p.shown.clone(), object)
        })
    });
    let Some((shown, object)) = found else {
        return;
    };
    if ck.getenv("PERL5LIB").is_some_and(|v| !v.is_empty())
        || ck.getenv("PERLLIB").is_some_and(|v| !v.is_empty())
    {
        return;
    }
    let inc = perl_inc(ck, &object);
    if inc.is_empty()
        || inc
            .iter()
            .any(|d| exists(ck.root, &format!("{d}/strict.pm"), FileType::File))
    {
        return;
    }
    // On this machine, a directory of them that is no link (`--add` copies a linked
    // directory as the link).
    let fix = inc
        .iter()
        .filter(|d| std::path::Path::new(d).join("strict.pm").is_file())
        .find(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()))
        .map_or_else(
            || "; add the @INC directories of the Perl it came from".to_string(),
            |d| {
                format!("; add them, e.g. --add {d}:{d} (and the others a script's modules are in)")
            },
        );
    ck.warning(
        WarningCode::NoPerlLibrary,
        format!("{shown} is Perl, whose modules (strict.pm and the rest) are in none of the directories its @INC names ({}), so a script that uses any module stops with `Can't locate strict.pm in @INC`{fix}", inc.join(", ")),
    );
}

/// The locale glibc's `setlocale(LC_ALL, "")` takes from the environment for LC_CTYPE
/// (LC_ALL, then LC_CTYPE, then LANG), unless it is the built-in C or POSIX locale.
fn wanted_locale(ck: &Checker) -> Option<(&'static str, String)> {
    let (var, value) = ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .find_map(|k| ck.getenv(k).filter(|v| !v.is_empty()).map(|v| (k, v)))?;
    if matches!(value, "C" | "POSIX") || value.contains('/') {
        return None;
    }
    Some((var, value.to_string()))
}

/// glibc's normalized codeset spelling: `C.UTF-8` is looked up as `C.utf8` too.
fn normalized(name: &str) -> String {
    match name.split_once('.') {
        Some((lang, rest)) => {
            let (codeset, modifier) = match rest.split_once('@') {
                Some((c, m)) => (c, format!("@{m}")),
                None => (rest, String::new()),
            };
            let codeset: String = codeset
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            format!("{lang}.{codeset}{modifier}")
        }
        None => name.to_string(),
    }
}

/// A glibc program that calls `setlocale` in an image whose environment names a locale
/// the image does not have.
fn locale(ck: &mut Checker) {
    let Some((var, name)) = wanted_locale(ck) else {
        return;
    };
    let Some(caller) = ck
        .programs
        .iter()
        .find(|p| is_glibc(&p.info) && p.info.imports.iter().any(|i| i == "setlocale"))
        .map(|p| p.shown.clone())
    else {
        return;
    };
    let dir = ck.getenv("LOCPATH").unwrap_or(LOCALE_DIR).to_string();
    let dir = dir.trim_end_matches('/');
    let norm = normalized(&name);
    let found = exists(ck.root, &format!("{dir}/{name}"), FileType::Dir)
        || exists(ck.root, &format!("{dir}/{norm}"), FileType::Dir)
        || (ck.getenv("LOCPATH").is_none()
            && exists(
                ck.root,
                &format!("{LOCALE_DIR}/locale-archive"),
                FileType::File,
            ));
    if found {
        return;
    }
    ck.warning(
        WarningCode::NoLocale,
        format!("the image sets {var}={name} and {caller} calls setlocale, but the image has no locale {name} ({dir}/{norm} or {LOCALE_DIR}/locale-archive), so glibc falls back to the C locale: text is handled as bytes, not characters (Perl warns `Setting locale failed` at every start); add the compiled locale, e.g. --add {LOCALE_DIR}/{norm}:{LOCALE_DIR}/{norm}, or set {var}=C"),
    );
}

/// Python 3 minor versions whose standard library directory (`lib/python3.N`) is
/// looked for.
const PYTHON_MINORS: std::ops::RangeInclusive<u32> = 6..=15;

/// The Python version of a program that is the interpreter or embeds it: `3.11` from
/// `libpython3.11.so.1.0`, or from the version string of a `python3…` program.
fn python_version(ck: &Checker, p: &Loaded) -> Option<String> {
    if let Some(lib) = p.info.needed.iter().find(|n| n.starts_with("libpython3.")) {
        let v = lib.trim_start_matches("libpython").split(".so").next()?;
        return Some(v.trim_end_matches(['m', 'd']).to_string());
    }
    let base = p.path.rsplit('/').next().unwrap_or("");
    let shown = p.shown.rsplit('/').next().unwrap_or("");
    if !(base.starts_with("python3") || shown.starts_with("python3"))
        || !p.info.kind.is_executable()
    {
        return None;
    }
    // Its version string (`3.11.2`, PY_VERSION), a string of its own in the binary.
    let needles: Vec<String> = PYTHON_MINORS.map(|m| format!("\x003.{m}.")).collect();
    let refs: Vec<&[u8]> = needles.iter().map(|n| n.as_bytes()).collect();
    let hits = super::warn::scan_whole(ck.root, &p.path, &refs).ok()?;
    PYTHON_MINORS
        .zip(hits)
        .filter(|(_, hit)| *hit)
        .map(|(m, _)| format!("3.{m}"))
        .last()
}

/// A Python interpreter whose standard library is nowhere it looks: the directories
/// above its own (`/app/python3` finds `/lib/python3.11`, `/usr/bin/python3`
/// `/usr/lib/python3.11`), `PYTHONHOME`, and the usual prefixes.
fn python(ck: &mut Checker) -> super::Result<()> {
    let found = ck
        .programs
        .iter()
        .find_map(|p| python_version(ck, p).map(|v| (p.shown.clone(), p.path.clone(), v)));
    let Some((shown, path, version)) = found else {
        return Ok(());
    };
    let lib = format!("lib/python{version}");
    let mut prefixes: Vec<String> = Vec::new();
    if let Some(home) = ck.getenv("PYTHONHOME") {
        prefixes.push(home.split(':').next().unwrap_or(home).to_string());
    } else {
        // Its own directory first, then each above it but `/` (getpath.py's
        // `search_up`, whose `dirname("/app")` is "", which ends the search).
        let mut dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        while !dir.is_empty() {
            prefixes.push(dir.to_string());
            dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
        }
        prefixes.extend(compiled_prefixes(ck, &path));
    }
    let has = |prefix: &str| {
        let p = format!("{}/{lib}", prefix.trim_end_matches('/'));
        exists(
            ck.root,
            &format!("{p}/encodings/__init__.py"),
            FileType::File,
        ) || exists(
            ck.root,
            &format!("{p}/encodings/__init__.pyc"),
            FileType::File,
        ) || exists(
            ck.root,
            &format!(
                "{}/lib/python{}.zip",
                prefix.trim_end_matches('/'),
                version.replace('.', "")
            ),
            FileType::File,
        )
    };
    if prefixes.iter().any(|p| has(p)) {
        return Ok(());
    }
    // Not judged: a PYTHONPATH (encodings may be on it), or a virtual environment's
    // pyvenv.cfg beside the program or above it (its `home` names the prefix).
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let venv = [dir, dir.rsplit_once('/').map_or("", |(d, _)| d)]
        .iter()
        .any(|d| exists(ck.root, &format!("{d}/pyvenv.cfg"), FileType::File));
    if venv || ck.getenv("PYTHONPATH").is_some_and(|v| !v.is_empty()) {
        return Ok(());
    }
    // The fix: the library of the Python whose libpython the image has (pyenv's, at
    // its own prefix), else the system's, as they are on this machine.
    let fix = libpython_prefix(ck)
        .into_iter()
        .chain(["/usr".to_string()])
        .map(|prefix| format!("{prefix}/{lib}"))
        .find(|host| std::path::Path::new(host).join("encodings").is_dir())
        .map_or_else(
            || format!("; add the {lib} directory of the Python it came from"),
            |host| format!("; add it: --add {host}:{host}"),
        );
    ck.problem(
        Code::NoPythonLibrary,
        Some(&path),
        format!("{shown} is Python {version}, whose standard library ({lib}, with encodings/) is not in the image where it looks (under {}), so it stops at start with `No module named 'encodings'`{fix}", prefixes.join(", ")),
    );
    Ok(())
}

/// The loaded object whose file name starts with `prefix` (`libpython3.`).
fn loaded<'c>(ck: &'c Checker, prefix: &str) -> Option<&'c Loaded> {
    ck.programs
        .iter()
        .find(|p| p.path.rsplit('/').next().unwrap_or("").starts_with(prefix))
}

/// The loaded `libpython3.N.so…`, if the program embeds the interpreter.
fn libpython<'c>(ck: &'c Checker) -> Option<&'c Loaded> {
    loaded(ck, "libpython3.")
}

/// `/opt/py` of a loaded `/opt/py/lib/libpython3.11.so.1.0`.
fn libpython_prefix(ck: &Checker) -> Option<String> {
    let (dir, _) = libpython(ck)?.path.rsplit_once('/')?;
    Some(dir.rsplit_once('/')?.0.to_string())
}

/// The prefix Python falls back to when no directory above the program has its
/// library: the one it was configured with (`PREFIX`), kept in the object that holds
/// its path computation (the program, or its libpython) as a string of its own —
/// `/usr` in Debian's python3, `~/.pyenv/versions/3.11.7` in pyenv's libpython. Of the
/// usual prefixes and the libpython's place, those found so; all of them when none is
/// (a build that keeps it otherwise), rather than a problem that may be wrong.
fn compiled_prefixes(ck: &Checker, program: &str) -> Vec<String> {
    let candidates: Vec<String> = ["/usr".to_string(), "/usr/local".to_string()]
        .into_iter()
        .chain(libpython_prefix(ck))
        .collect();
    let needles: Vec<Vec<u8>> = candidates
        .iter()
        .map(|c| [b"\0", c.as_bytes(), b"\0"].concat())
        .collect();
    let refs: Vec<&[u8]> = needles.iter().map(Vec::as_slice).collect();
    let mut found = vec![false; candidates.len()];
    for object in [Some(program), libpython(ck).map(|l| l.path.as_str())]
        .into_iter()
        .flatten()
    {
        if let Ok(hits) = super::warn::scan_whole(ck.root, object, &refs) {
            found.iter_mut().zip(hits).for_each(|(f, h)| *f |= h);
        }
    }
    if !found.contains(&true) {
        return candidates;
    }
    candidates
        .into_iter()
        .zip(found)
        .filter_map(|(c, f)| f.then_some(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn locale_names_normalize_as_glibc_does() {
        assert_eq!(normalized("C.UTF-8"), "C.utf8");
        assert_eq!(normalized("en_US.ISO-8859-1@euro"), "en_US.iso88591@euro");
        assert_eq!(normalized("de_DE"), "de_DE");
    }
}
