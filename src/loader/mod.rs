//! The dynamic loaders' search rules — glibc's `ld.so` and musl's `ld-musl` — evaluated
//! over a read-only [`Root`] without running anything: which loader an executable asks
//! for, and which file each `DT_NEEDED` name of each loaded object resolves to.
//!
//! # The one entry point
//!
//! [`resolve`] takes a root (the host, a `--sysroot`, an image's merged layers), the
//! absolute in-root path of an executable and returns a [`Closure`]:
//!
//! * [`Closure::interpreter`]: the PT_INTERP path as requested, and either the loaded
//!   object (canonical path after symlinks inside the root, parsed [`ElfInfo`]) or why it
//!   is missing;
//! * [`Closure::needs`]: every `DT_NEEDED` of every loaded object in the loader's
//!   breadth-first order, each with its requester, the name, and either the object it
//!   resolved to ([`Object::path`] as the loader opens it, [`Object::canonical`],
//!   [`Object::info`], [`Object::via`]) or the directories searched in vain, plus the
//!   candidates passed over for another ELF class or machine ([`Need::skipped`]);
//! * [`Closure::objects`]: the loaded objects, executable first, each once.
//!
//! Version checks belong to the caller: each found object's `info.version_defs` answers
//! its requesters' `info.version_needs` for the same name.
//!
//! # glibc (`elf/dl-load.c`, `elf/dl-cache.c`)
//!
//! A name containing `/` is a path (after `$ORIGIN`/`$LIB`/`$PLATFORM` expansion).
//! Otherwise, in order: the name of an object already loaded (a name it was requested as,
//! its path, or its DT_SONAME — so `ld-linux-x86-64.so.2` is the loader itself); the
//! DT_RPATH of the requester, then of the object that loaded it and on up to the
//! executable, then the executable's own — all skipped when the requester has DT_RUNPATH,
//! and an object's DT_RPATH is ignored when it also has DT_RUNPATH; `LD_LIBRARY_PATH`; the
//! requester's own DT_RUNPATH (not inherited); `/etc/ld.so.cache`; the loader's built-in
//! directories. Those are read from the loader file itself (the NUL-separated list glibc
//! compiles in, e.g. Debian's `/lib/x86_64-linux-gnu/ /usr/lib/x86_64-linux-gnu/ /lib/
//! /usr/lib/`), falling back to a per-architecture table with Debian multiarch
//! directories. In every directory, `glibc-hwcaps/<level>/` subdirectories come first; a
//! candidate of another ELF class or machine is skipped and the search goes on; a file
//! that is not ELF stops the load with an error, as `open_verify` does. A file found
//! twice under different names is loaded once.
//!
//! Deliberate approximations, because the CPU that will run the image is unknown: the
//! plain (baseline) library is the answer and glibc-hwcaps variants are listed beside it
//! ([`Object::hwcaps`]); `$PLATFORM` is the architecture's generic AT_PLATFORM; legacy
//! hwcaps subdirectories (`tls/`, `haswell/`, removed in glibc 2.37) are not searched.
//! A root without `/etc/ld.so.cache` may have its `/etc/ld.so.conf` directories consulted
//! in its place ([`Options::conf_without_cache`]): ld.so would not, but ldconfig would
//! have cached them.
//!
//! # musl (`ldso/dynlink.c`)
//!
//! `libc.so`, `libc.so.6`, `libpthread.so.0`, `libm`, `libdl`, `librt`, `libutil`,
//! `libxnet` names and the loader's own path are the loader. A name with `/` is a path.
//! Otherwise: an object already found by search under the same file name;
//! `LD_LIBRARY_PATH`; the DT_RUNPATH (or, without one, DT_RPATH) of the requester, then
//! of the object that loaded it and on up (only `$ORIGIN` is expanded; any other `$` drops
//! that path); the lines of `<prefix>/etc/ld-musl-ARCH.path` (prefix: the loader path
//! minus its last two components), or `/lib:/usr/local/lib:/usr/lib` without that file.
//! The first existing file wins: musl does not skip a file of the wrong machine.

pub mod arch;
pub mod cache;
pub mod conf;
pub mod dlopen;

pub use arch::Arch;

use crate::elf::{self, ElfInfo};
use crate::error::{Error, Result};
use crate::root::{self, FileType, Root};
use arch::{Header, Verdict};

/// Largest loader file scanned for its built-in directories, and largest cache read.
const MAX_SCAN: u64 = 64 << 20;
/// The most objects one closure may load (a hostile root cannot make it grow unbounded).
const MAX_OBJECTS: usize = 4096;
/// The most DT_NEEDED entries resolved in one closure (real programs have hundreds).
const MAX_NEEDS: usize = 1 << 16;

/// Which loader's rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// GNU libc's `ld-linux*.so` / `ld.so`.
    Glibc,
    /// musl's `ld-musl-ARCH.so.1`.
    Musl,
}

/// Inputs of the search that are not in the root.
#[derive(Clone, Debug)]
pub struct Options {
    /// `LD_LIBRARY_PATH` as the process will see it (`None`: unset).
    pub library_path: Option<String>,
    /// Use `/etc/ld.so.conf`'s directories where the root has no `/etc/ld.so.cache`
    /// (true for building from a sysroot; false to judge an image as ld.so will).
    pub conf_without_cache: bool,
    /// The working directory, for relative paths (`/` unless the image sets one).
    pub cwd: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            library_path: None,
            conf_without_cache: true,
            cwd: "/".to_string(),
        }
    }
}

/// Where a file was found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Via {
    /// The executable itself.
    Executable,
    /// The PT_INTERP path.
    Interpreter,
    /// A DT_NEEDED name containing `/`.
    Path,
    /// A DT_RPATH entry of object `owner` (unexpanded, e.g. `$ORIGIN/../lib`).
    Rpath {
        /// Index in [`Closure::objects`] of the object whose DT_RPATH it is.
        owner: usize,
        /// The entry as written.
        entry: String,
    },
    /// A DT_RUNPATH entry of object `owner`.
    Runpath {
        /// Index of the object whose DT_RUNPATH it is.
        owner: usize,
        /// The entry as written.
        entry: String,
    },
    /// An `LD_LIBRARY_PATH` entry.
    LibraryPath {
        /// The entry as written.
        entry: String,
    },
    /// `/etc/ld.so.cache`.
    Cache,
    /// A directory of `/etc/ld.so.conf` (root without a cache).
    Conf {
        /// The directory.
        dir: String,
    },
    /// The loader's built-in directories (glibc), or musl's default path.
    Default,
    /// A line of musl's `/etc/ld-musl-ARCH.path`.
    MuslPath {
        /// The file.
        file: String,
    },
}

impl Via {
    /// Words for human output (`RUNPATH $ORIGIN/../lib`, `ld.so.cache`).
    pub fn describe(&self) -> String {
        match self {
            Via::Executable => "the executable".into(),
            Via::Interpreter => "PT_INTERP".into(),
            Via::Path => "a path in DT_NEEDED".into(),
            Via::Rpath { entry, .. } => format!("RPATH {entry}"),
            Via::Runpath { entry, .. } => format!("RUNPATH {entry}"),
            Via::LibraryPath { entry } => format!("LD_LIBRARY_PATH {entry}"),
            Via::Cache => "/etc/ld.so.cache".into(),
            Via::Conf { dir } => format!("ld.so.conf {dir}"),
            Via::Default => "default directories".into(),
            Via::MuslPath { file } => file.clone(),
        }
    }
}

/// One loaded object.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Object {
    /// The path as the loader opens it (`/lib/x86_64-linux-gnu/libc.so.6`, the PT_INTERP
    /// string, `/opt/app/bin/../lib/libx.so`): what must exist in an image.
    pub path: String,
    /// The same file after every symlink inside the root.
    pub canonical: String,
    /// What it is.
    pub info: ElfInfo,
    /// How it was found.
    pub via: Via,
    /// Index of the object whose DT_NEEDED first loaded it (glibc `l_loader`, musl
    /// `needed_by`); `None` for the executable and the interpreter.
    pub loaded_by: Option<usize>,
    /// Names it answers to: the names it was requested as, and its path.
    pub names: Vec<String>,
    /// glibc-hwcaps variants of it that ld.so prefers on capable CPUs (paths as opened).
    pub hwcaps: Vec<String>,
}

/// A directory (or the cache) searched for a name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Searched {
    /// The directory after expansion, or `/etc/ld.so.cache`.
    pub dir: String,
    /// Why it was searched.
    pub via: Via,
}

/// A candidate passed over.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// Why (`wrong machine: ARM aarch64 …`).
    pub reason: String,
}

/// What one DT_NEEDED resolved to.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// The object at this index of [`Closure::objects`].
    Found {
        /// Index in [`Closure::objects`].
        object: usize,
        /// True when this need loaded it; false when it was already loaded.
        first: bool,
    },
    /// Not found, or found but unusable (`error`).
    NotFound {
        /// What was searched, in order.
        searched: Vec<Searched>,
        /// Set when the loader stops with an error at a file (not ELF, truncated…).
        error: Option<String>,
    },
}

/// One DT_NEEDED entry of one loaded object.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Need {
    /// Index in [`Closure::objects`] of the object that needs it.
    pub requester: usize,
    /// The name as written in DT_NEEDED.
    pub name: String,
    /// What it resolved to.
    pub outcome: Outcome,
    /// Candidates of another class or machine passed over on the way.
    pub skipped: Vec<Skipped>,
}

/// The loader an executable asks for.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Interpreter {
    /// Found: the object at this index (always 1).
    Found {
        /// Index in [`Closure::objects`].
        object: usize,
    },
    /// Not usable.
    Missing {
        /// The PT_INTERP path.
        requested: String,
        /// Why.
        reason: String,
    },
}

/// The search setup in force (for messages, and to search more names later).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Setup {
    /// Whose rules.
    pub flavor: Flavor,
    /// The loader's built-in directories (glibc) or musl's system path.
    pub default_dirs: Vec<String>,
    /// Where `default_dirs` came from.
    pub default_dirs_from: String,
    /// `$LIB` (glibc).
    pub lib: String,
    /// `$PLATFORM` (glibc), when known.
    pub platform: Option<String>,
    /// The cache consulted, with its format (`None`: the root has none).
    pub cache: Option<String>,
    /// ld.so.conf directories used in the cache's place.
    pub conf_dirs: Vec<String>,
    /// musl's path file, when it exists.
    pub musl_path_file: Option<String>,
    #[serde(skip)]
    ld_cache: Option<cache::LdCache>,
}

/// The resolved closure of one executable.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Closure {
    /// How the root was described (`the host`, `sysroot …`).
    pub root: String,
    /// The loaded objects: `[0]` is the executable, `[1]` the interpreter when found,
    /// then libraries in load order.
    pub objects: Vec<Object>,
    /// The PT_INTERP outcome (`None` for executables without one).
    pub interpreter: Option<Interpreter>,
    /// Every DT_NEEDED of every loaded object, breadth-first.
    pub needs: Vec<Need>,
    /// The rules and directories used.
    pub setup: Setup,
    #[serde(skip)]
    opts: Options,
}

impl Closure {
    /// The executable.
    pub fn executable(&self) -> &Object {
        &self.objects[0]
    }

    /// The object a need resolved to.
    pub fn found(&self, need: &Need) -> Option<&Object> {
        match need.outcome {
            Outcome::Found { object, .. } => self.objects.get(object),
            Outcome::NotFound { .. } => None,
        }
    }

    /// The interpreter object, when found.
    pub fn interpreter_object(&self) -> Option<&Object> {
        match self.interpreter {
            Some(Interpreter::Found { object }) => self.objects.get(object),
            _ => None,
        }
    }

    /// Needs that did not resolve.
    pub fn missing(&self) -> impl Iterator<Item = &Need> {
        self.needs
            .iter()
            .filter(|n| matches!(n.outcome, Outcome::NotFound { .. }))
    }

    /// True when the loader and every library resolve: the program will get to `main`
    /// as far as files are concerned.
    pub fn is_complete(&self) -> bool {
        !matches!(self.interpreter, Some(Interpreter::Missing { .. }))
            && self.missing().next().is_none()
    }

    /// Searches `name` as if `requester` needed it, with the same rules and setup
    /// (for names a program opens with dlopen). Returns the path and canonical path found,
    /// or what was searched.
    pub fn search(
        &self,
        root: &dyn Root,
        requester: usize,
        name: &str,
    ) -> std::result::Result<(String, String), Vec<Searched>> {
        let s = Searcher {
            root,
            setup: &self.setup,
            objects: &self.objects,
            opts: &self.opts,
            arch: Arch::of(&self.objects[0].info),
        };
        let mut skipped = Vec::new();
        match s.search(requester.min(self.objects.len() - 1), name, &mut skipped) {
            Search::Found(c) => Ok((c.path, c.canonical)),
            Search::NotFound(searched) | Search::Fatal(searched, _) => Err(searched),
        }
    }
}

/// Resolves the closure of the executable at `exe_path` (absolute, inside `root`).
/// `exe` is its parsed ELF when the caller has it. Errors only when the executable itself
/// cannot be read; everything missing after that is reported inside the [`Closure`].
pub fn resolve(
    root: &dyn Root,
    exe_path: &str,
    exe: Option<&ElfInfo>,
    opts: &Options,
) -> Result<Closure> {
    let exe_abs = absolute(exe_path, &opts.cwd);
    let canonical = root::resolve(root, &exe_abs).map_err(|e| {
        Error::Invalid(format!(
            "{exe_abs} cannot be resolved in {}: {e}",
            root.describe()
        ))
    })?;
    let info = match exe {
        Some(i) => i.clone(),
        None => parse_in(root, &canonical)
            .map_err(|e| Error::Invalid(format!("{exe_abs} in {}: {e}", root.describe())))?,
    };
    let arch = Arch::of(&info);
    let flavor = match info.interpreter.as_deref() {
        Some(i) => {
            if basename(i).starts_with("ld-musl-") {
                Flavor::Musl
            } else {
                Flavor::Glibc
            }
        }
        None if info.needed.iter().any(|n| n == "libc.so") => Flavor::Musl,
        None => Flavor::Glibc,
    };
    let mut objects = vec![Object {
        path: exe_abs.clone(),
        canonical,
        via: Via::Executable,
        loaded_by: None,
        names: vec![exe_abs],
        hwcaps: Vec::new(),
        info,
    }];

    let interpreter = objects[0].info.interpreter.clone().map(|requested| {
        match load_interpreter(root, &requested, &opts.cwd, &arch) {
            Ok(obj) => {
                objects.push(obj);
                Interpreter::Found { object: 1 }
            }
            Err(reason) => Interpreter::Missing { requested, reason },
        }
    });
    let setup = setup(root, flavor, &arch, objects.get(1), opts);

    let mut needs = Vec::new();
    let mut i = 0;
    'objects: while i < objects.len() {
        for name in objects[i].info.needed.clone() {
            if needs.len() == MAX_NEEDS {
                needs.push(Need {
                    requester: i,
                    name,
                    outcome: Outcome::NotFound {
                        searched: Vec::new(),
                        error: Some(format!(
                            "more than {MAX_NEEDS} DT_NEEDED entries; giving up"
                        )),
                    },
                    skipped: Vec::new(),
                });
                break 'objects;
            }
            let need = resolve_one(root, &setup, &mut objects, opts, arch, i, &name);
            needs.push(need);
        }
        i += 1;
    }
    Ok(Closure {
        root: root.describe(),
        objects,
        interpreter,
        needs,
        setup,
        opts: opts.clone(),
    })
}

fn resolve_one(
    root: &dyn Root,
    setup: &Setup,
    objects: &mut Vec<Object>,
    opts: &Options,
    arch: Arch,
    requester: usize,
    name: &str,
) -> Need {
    let mut skipped = Vec::new();
    let s = Searcher {
        root,
        setup,
        objects,
        opts,
        arch,
    };
    if setup.flavor == Flavor::Musl
        && musl_is_self(name)
        && !objects.get(1).is_some_and(|o| o.via == Via::Interpreter)
    {
        return Need {
            requester,
            name: name.to_string(),
            outcome: Outcome::NotFound {
                searched: Vec::new(),
                error: Some(format!("{name} is musl's loader itself, which is missing")),
            },
            skipped,
        };
    }
    if let Some(object) = s.already_loaded(name) {
        return Need {
            requester,
            name: name.to_string(),
            outcome: Outcome::Found {
                object,
                first: false,
            },
            skipped,
        };
    }
    let outcome = match s.search(requester, name, &mut skipped) {
        Search::Found(c) => {
            if let Some(j) = objects.iter().position(|o| o.canonical == c.canonical) {
                // The same file under another name: loaded once, now known by both.
                let names = &mut objects[j].names;
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
                Outcome::Found {
                    object: j,
                    first: false,
                }
            } else if objects.len() >= MAX_OBJECTS {
                Outcome::NotFound {
                    searched: Vec::new(),
                    error: Some(format!("more than {MAX_OBJECTS} objects; giving up")),
                }
            } else {
                match parse_in(root, &c.canonical) {
                    Ok(info) => {
                        let mut names = vec![name.to_string()];
                        if c.path != name {
                            names.push(c.path.clone());
                        }
                        objects.push(Object {
                            path: c.path,
                            canonical: c.canonical,
                            info,
                            via: c.via,
                            loaded_by: Some(requester),
                            names,
                            hwcaps: c.hwcaps,
                        });
                        Outcome::Found {
                            object: objects.len() - 1,
                            first: true,
                        }
                    }
                    Err(e) => Outcome::NotFound {
                        searched: c.searched,
                        error: Some(format!("{}: {e}", c.path)),
                    },
                }
            }
        }
        Search::NotFound(searched) => Outcome::NotFound {
            searched,
            error: None,
        },
        Search::Fatal(searched, error) => Outcome::NotFound {
            searched,
            error: Some(error),
        },
    };
    Need {
        requester,
        name: name.to_string(),
        outcome,
        skipped,
    }
}

fn load_interpreter(
    root: &dyn Root,
    requested: &str,
    cwd: &str,
    arch: &Arch,
) -> std::result::Result<Object, String> {
    let abs = absolute(requested, cwd);
    let canonical = root::resolve(root, &abs).map_err(|e| e.to_string())?;
    match root.lstat(&canonical).map(|m| m.kind) {
        Some(FileType::File) => {}
        _ => return Err(format!("{canonical} is not a regular file")),
    }
    let info = parse_in(root, &canonical)?;
    if let Verdict::Skip(r) | Verdict::Fatal(r) = arch.verdict(&Header {
        class: info.class,
        little_endian: info.little_endian,
        kind: 3,
        machine: info.e_machine,
        flags: Some(info.e_flags),
    }) {
        return Err(format!("{canonical} is for another architecture ({r})"));
    }
    let mut names = vec![requested.to_string()];
    if let Some(s) = &info.soname {
        names.push(s.clone());
    }
    Ok(Object {
        path: requested.to_string(),
        canonical,
        info,
        via: Via::Interpreter,
        loaded_by: None,
        names,
        hwcaps: Vec::new(),
    })
}

/// Reads and parses the ELF file at a canonical in-root path.
fn parse_in(root: &dyn Root, canonical: &str) -> std::result::Result<ElfInfo, String> {
    let f = root
        .open(canonical)
        .map_err(|e| format!("cannot read: {e}"))?;
    elf::parse(&*f).map_err(|e| e.to_string())
}

fn setup(
    root: &dyn Root,
    flavor: Flavor,
    arch: &Arch,
    interp: Option<&Object>,
    opts: &Options,
) -> Setup {
    match flavor {
        Flavor::Glibc => {
            let scanned = interp.and_then(|o| {
                let bytes = root::read_file(root, &o.canonical, MAX_SCAN).ok()?;
                builtin_dirs(&bytes).map(|d| (d, o.path.clone()))
            });
            let (default_dirs, from) = match scanned {
                Some((d, p)) => (d, format!("read from the loader {p}")),
                None => (
                    arch.fallback_dirs(),
                    "built-in table (the loader's own list could not be read)".to_string(),
                ),
            };
            let lib = match (default_dirs.first(), arch.triplet()) {
                (Some(d), Some(t)) if d.ends_with(&format!("lib/{t}")) => format!("lib/{t}"),
                (Some(d), _) => basename(d).to_string(),
                (None, _) => "lib".to_string(),
            };
            let (ld_cache, cache_desc) = match root::read_file(root, "/etc/ld.so.cache", MAX_SCAN) {
                Ok(bytes) => match cache::parse(&bytes, arch.little_endian) {
                    Ok(c) if c.little_endian == arch.little_endian => {
                        let d = format!(
                            "/etc/ld.so.cache ({} format, {} entries)",
                            match c.format {
                                cache::Format::Old => "old",
                                cache::Format::New => "new",
                                cache::Format::OldWithNew => "old+new",
                            },
                            c.entries.len()
                        );
                        (Some(c), Some(d))
                    }
                    Ok(_) => (
                        None,
                        Some("/etc/ld.so.cache (other byte order: ignored)".to_string()),
                    ),
                    Err(e) => (None, Some(format!("/etc/ld.so.cache (unreadable: {e})"))),
                },
                Err(_) => (None, None),
            };
            let conf_dirs = if cache_desc.is_none() && opts.conf_without_cache {
                conf::dirs(root)
            } else {
                Vec::new()
            };
            Setup {
                flavor,
                default_dirs,
                default_dirs_from: from,
                lib,
                platform: arch.platform().map(str::to_string),
                cache: cache_desc,
                conf_dirs,
                musl_path_file: None,
                ld_cache,
            }
        }
        Flavor::Musl => {
            let ldso = interp
                .map(|o| o.path.clone())
                .unwrap_or_else(|| "/lib/ld-musl.so.1".to_string());
            let file = musl_path_file(&ldso);
            let (default_dirs, from, found) = match root::read_file(root, &file, MAX_SCAN) {
                Ok(bytes) => (
                    split_musl_path(&String::from_utf8_lossy(&bytes)),
                    file.clone(),
                    Some(file),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                    vec!["/lib".into(), "/usr/local/lib".into(), "/usr/lib".into()],
                    "musl's default path".to_string(),
                    None,
                ),
                // An unreadable file gives an empty path, as in musl.
                Err(_) => (Vec::new(), format!("{file} (unreadable)"), Some(file)),
            };
            Setup {
                flavor,
                default_dirs,
                default_dirs_from: from,
                lib: "lib".into(),
                platform: None,
                cache: None,
                conf_dirs: Vec::new(),
                musl_path_file: found,
                ld_cache: None,
            }
        }
    }
}

/// Finds glibc's compiled-in search directories in the loader's bytes: the first run of
/// two or more consecutive NUL-terminated strings that each start and end with `/` and
/// name a `lib` directory (`SYSTEM_DIRS` in `dl-load.c`).
pub fn builtin_dirs(loader: &[u8]) -> Option<Vec<String>> {
    let looks_like_dir = |s: &[u8]| {
        s.len() >= 4
            && s[0] == b'/'
            && s[s.len() - 1] == b'/'
            && s.windows(3).any(|w| w == b"lib")
            && s.iter().all(|c| (0x21..0x7f).contains(c))
    };
    let mut run: Vec<&[u8]> = Vec::new();
    for token in loader.split(|&c| c == 0) {
        if looks_like_dir(token) {
            run.push(token);
            continue;
        }
        if run.len() >= 2 {
            break;
        }
        run.clear();
    }
    if run.len() < 2 {
        return None;
    }
    Some(
        run.iter()
            .map(|t| {
                let s = String::from_utf8_lossy(t);
                let s = s.trim_end_matches('/');
                if s.is_empty() { "/" } else { s }.to_string()
            })
            .collect(),
    )
}

/// musl's path file for a loader path: `<prefix>/etc/ld-musl-ARCH.path`, where the
/// prefix is the loader path without its last two components.
pub fn musl_path_file(ldso: &str) -> String {
    let arch = basename(ldso)
        .strip_prefix("ld-musl-")
        .and_then(|s| s.strip_suffix(".so.1"))
        .unwrap_or("unknown");
    let slashes: Vec<usize> = ldso.match_indices('/').map(|(i, _)| i).collect();
    let prefix = if ldso.starts_with('/') && slashes.len() >= 2 {
        &ldso[..slashes[slashes.len() - 2]]
    } else {
        ""
    };
    format!("{prefix}/etc/ld-musl-{arch}.path")
}

fn split_musl_path(s: &str) -> Vec<String> {
    s.split([':', '\n'])
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The directory part of a path (`/` for `/x`, `.` for a bare name).
pub(crate) fn dirname(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => p[..i].to_string(),
        None => ".".to_string(),
    }
}

/// `p` made absolute against the working directory `cwd`.
pub(crate) fn absolute(p: &str, cwd: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", cwd.trim_end_matches('/'))
    }
}

fn join(dir: &str, name: &str) -> String {
    let d = dir.trim_end_matches('/');
    format!("{d}/{name}")
}

/// Replaces glibc's dynamic string tokens (`$ORIGIN`, `${ORIGIN}`, `$LIB`, `$PLATFORM`)
/// as `_dl_dst_substitute` does: unknown `$` sequences stay literal; a known token with no
/// value (an unknown `$PLATFORM`) makes the whole entry unusable (`None`).
pub fn expand_glibc(
    input: &str,
    origin: &str,
    lib: &str,
    platform: Option<&str>,
) -> Option<String> {
    let mut out = String::new();
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let token = [
            ("ORIGIN", Some(origin)),
            ("PLATFORM", platform),
            ("LIB", Some(lib)),
        ]
        .into_iter()
        .find_map(|(name, value)| dst_len(after, name).map(|len| (len, value)));
        match token {
            Some((len, Some(v))) => {
                out.push_str(v);
                rest = &after[len..];
            }
            Some((_, None)) => return None,
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// `is_dst`: the length of `NAME` or `{NAME}` at the start of `s`, when the token is not
/// followed by more identifier characters.
fn dst_len(s: &str, name: &str) -> Option<usize> {
    if let Some(inner) = s.strip_prefix('{') {
        return inner
            .strip_prefix(name)
            .filter(|r| r.starts_with('}'))
            .map(|_| name.len() + 2);
    }
    let r = s.strip_prefix(name)?;
    match r.bytes().next() {
        Some(c) if c.is_ascii_alphanumeric() || c == b'_' => None,
        _ => Some(name.len()),
    }
}

/// A file found by a search.
struct Candidate {
    path: String,
    canonical: String,
    via: Via,
    hwcaps: Vec<String>,
    searched: Vec<Searched>,
}

enum Search {
    Found(Candidate),
    NotFound(Vec<Searched>),
    Fatal(Vec<Searched>, String),
}

enum Probe {
    Usable(String),
    Missing,
    Skip(String),
    Fatal(String),
}

enum InDir {
    Found(String, String, Vec<String>),
    Absent,
    Fatal(String),
}

struct Searcher<'a> {
    root: &'a dyn Root,
    setup: &'a Setup,
    objects: &'a [Object],
    opts: &'a Options,
    arch: Arch,
}

impl Searcher<'_> {
    /// The object a name already designates, before any search.
    fn already_loaded(&self, name: &str) -> Option<usize> {
        match self.setup.flavor {
            Flavor::Glibc => self.objects.iter().position(|o| {
                o.names.iter().any(|n| n == name) || o.info.soname.as_deref() == Some(name)
            }),
            Flavor::Musl => {
                let interp = self.objects.get(1).filter(|o| o.via == Via::Interpreter);
                if musl_is_self(name) || interp.is_some_and(|o| o.path == name) {
                    // The loader is the C library; without it there is nothing to find.
                    return interp.map(|_| 1);
                }
                if name.contains('/') {
                    return None;
                }
                // Objects found by search answer to their file name (musl's shortname).
                self.objects.iter().position(|o| {
                    !matches!(o.via, Via::Executable | Via::Interpreter | Via::Path)
                        && basename(&o.path) == name
                })
            }
        }
    }

    fn origin(&self, i: usize) -> String {
        let o = &self.objects[i];
        match o.via {
            // The kernel's /proc/self/exe: symlinks resolved.
            Via::Executable => dirname(&o.canonical),
            _ => dirname(&absolute(&o.path, &self.opts.cwd)),
        }
    }

    /// Opens a candidate the way the loader does and judges its header.
    fn probe(&self, path: &str) -> Probe {
        let abs = absolute(path, &self.opts.cwd);
        let Ok(canonical) = root::resolve(self.root, &abs) else {
            return Probe::Missing;
        };
        match self.root.lstat(&canonical).map(|m| m.kind) {
            Some(FileType::File) => {}
            Some(_) => {
                return Probe::Fatal(format!("{path}: cannot read file data: not a regular file"))
            }
            None => return Probe::Missing,
        }
        let mut head = [0u8; 64];
        let head = match self.root.open(&canonical) {
            Ok(f) => {
                let n = (f.size() as usize).min(head.len());
                if f.read_exact_at(0, &mut head[..n]).is_err() {
                    return Probe::Fatal(format!("{path}: cannot read file data"));
                }
                &head[..n]
            }
            Err(e) => return Probe::Fatal(format!("{path}: cannot open: {e}")),
        };
        match Header::parse(head) {
            Err(e) => Probe::Fatal(format!("{path}: {e}")),
            Ok(h) => match self.arch.verdict(&h) {
                Verdict::Usable => Probe::Usable(canonical),
                Verdict::Skip(r) => Probe::Skip(r),
                Verdict::Fatal(r) => Probe::Fatal(format!("{path}: {r}")),
            },
        }
    }

    /// glibc: `name` in one directory, glibc-hwcaps subdirectories first.
    fn in_dir(&self, dir: &str, name: &str, skipped: &mut Vec<Skipped>) -> InDir {
        let mut variants: Vec<(String, String)> = Vec::new();
        for sub in self.arch.hwcaps_subdirs() {
            let p = join(dir, &format!("glibc-hwcaps/{sub}/{name}"));
            match self.probe(&p) {
                Probe::Usable(c) => variants.push((p, c)),
                Probe::Skip(reason) | Probe::Fatal(reason) => {
                    skipped.push(Skipped { path: p, reason })
                }
                Probe::Missing => {}
            }
        }
        let p = join(dir, name);
        let base = match self.probe(&p) {
            Probe::Usable(c) => Some((p, c)),
            Probe::Skip(reason) => {
                skipped.push(Skipped { path: p, reason });
                None
            }
            Probe::Fatal(e) if variants.is_empty() => return InDir::Fatal(e),
            Probe::Fatal(_) | Probe::Missing => None,
        };
        let hw: Vec<String> = variants.iter().map(|v| v.0.clone()).collect();
        match base {
            Some((p, c)) => InDir::Found(p, c, hw),
            // Only a variant: what ld.so loads on a CPU that has the feature level.
            None => match variants.into_iter().next() {
                Some((p, c)) => InDir::Found(p, c, hw),
                None => InDir::Absent,
            },
        }
    }

    /// glibc: tries directories in order; `None` when none has the name.
    fn in_dirs(
        &self,
        dirs: impl IntoIterator<Item = (String, Via)>,
        name: &str,
        searched: &mut Vec<Searched>,
        skipped: &mut Vec<Skipped>,
    ) -> Option<Search> {
        for (dir, via) in dirs {
            searched.push(Searched {
                dir: dir.clone(),
                via: via.clone(),
            });
            match self.in_dir(&dir, name, skipped) {
                InDir::Found(path, canonical, hwcaps) => {
                    return Some(Search::Found(Candidate {
                        path,
                        canonical,
                        via,
                        hwcaps,
                        searched: std::mem::take(searched),
                    }))
                }
                InDir::Fatal(e) => return Some(Search::Fatal(std::mem::take(searched), e)),
                InDir::Absent => {}
            }
        }
        None
    }

    fn search(&self, requester: usize, name: &str, skipped: &mut Vec<Skipped>) -> Search {
        match self.setup.flavor {
            Flavor::Glibc => self.search_glibc(requester, name, skipped),
            Flavor::Musl => self.search_musl(requester, name, skipped),
        }
    }

    fn expand(&self, entry: &str, owner: usize) -> Option<String> {
        let e = expand_glibc(
            entry,
            &self.origin(owner),
            &self.setup.lib,
            self.setup.platform.as_deref(),
        )?;
        (!e.is_empty()).then_some(e)
    }

    fn search_glibc(&self, requester: usize, name: &str, skipped: &mut Vec<Skipped>) -> Search {
        let mut searched = Vec::new();
        if name.contains('/') {
            let Some(path) = self.expand(name, requester) else {
                return Search::NotFound(searched);
            };
            return match self.probe(&path) {
                Probe::Usable(canonical) => Search::Found(Candidate {
                    path,
                    canonical,
                    via: Via::Path,
                    hwcaps: Vec::new(),
                    searched,
                }),
                Probe::Missing => Search::NotFound(searched),
                Probe::Skip(reason) => {
                    skipped.push(Skipped {
                        path: path.clone(),
                        reason: reason.clone(),
                    });
                    Search::Fatal(searched, format!("{path}: {reason}"))
                }
                Probe::Fatal(e) => Search::Fatal(searched, e),
            };
        }
        // Directories in the order ld.so tries them: (directory, via).
        let mut dirs: Vec<(String, Via)> = Vec::new();
        let rpath_of = |i: usize| -> &[String] {
            let o = &self.objects[i];
            if o.info.runpath.is_empty() {
                &o.info.rpath
            } else {
                &[]
            }
        };
        if self.objects[requester].info.runpath.is_empty() {
            let mut did_main = false;
            let mut at = Some(requester);
            let mut hops = 0;
            while let Some(i) = at {
                for e in rpath_of(i) {
                    if let Some(d) = self.expand(e, i) {
                        dirs.push((
                            d,
                            Via::Rpath {
                                owner: i,
                                entry: e.clone(),
                            },
                        ));
                    }
                }
                did_main |= i == 0;
                at = self.objects[i].loaded_by;
                hops += 1;
                if hops > self.objects.len() {
                    break;
                }
            }
            if !did_main {
                for e in rpath_of(0) {
                    if let Some(d) = self.expand(e, 0) {
                        dirs.push((
                            d,
                            Via::Rpath {
                                owner: 0,
                                entry: e.clone(),
                            },
                        ));
                    }
                }
            }
        }
        if let Some(lp) = &self.opts.library_path {
            for e in lp.split([':', ';']).filter(|e| !e.is_empty()) {
                if let Some(d) = self.expand(e, 0) {
                    dirs.push((
                        d,
                        Via::LibraryPath {
                            entry: e.to_string(),
                        },
                    ));
                }
            }
        }
        for e in &self.objects[requester].info.runpath {
            if let Some(d) = self.expand(e, requester) {
                dirs.push((
                    d,
                    Via::Runpath {
                        owner: requester,
                        entry: e.clone(),
                    },
                ));
            }
        }
        if let Some(done) = self.in_dirs(dirs, name, &mut searched, skipped) {
            return done;
        }
        if let Some(c) = &self.setup.ld_cache {
            searched.push(Searched {
                dir: "/etc/ld.so.cache".into(),
                via: Via::Cache,
            });
            let hit = c.lookup(name, |f| self.arch.cache_flags_ok(f));
            if let Some(path) = hit.path.or_else(|| hit.hwcaps.first().cloned()) {
                match self.probe(&path) {
                    Probe::Usable(canonical) => {
                        let hwcaps = hit
                            .hwcaps
                            .into_iter()
                            .filter(|h| *h != path && matches!(self.probe(h), Probe::Usable(_)))
                            .collect();
                        return Search::Found(Candidate {
                            path,
                            canonical,
                            via: Via::Cache,
                            hwcaps,
                            searched,
                        });
                    }
                    Probe::Skip(reason) => skipped.push(Skipped { path, reason }),
                    Probe::Fatal(e) => return Search::Fatal(searched, e),
                    // A stale entry: ld.so goes on to the default directories.
                    Probe::Missing => {}
                }
            }
        }
        let conf = self
            .setup
            .conf_dirs
            .iter()
            .map(|d| (d.clone(), Via::Conf { dir: d.clone() }));
        let defaults = self
            .setup
            .default_dirs
            .iter()
            .map(|d| (d.clone(), Via::Default));
        self.in_dirs(conf.chain(defaults), name, &mut searched, skipped)
            .unwrap_or(Search::NotFound(searched))
    }

    fn search_musl(&self, requester: usize, name: &str, skipped: &mut Vec<Skipped>) -> Search {
        let mut searched = Vec::new();
        let mut dirs: Vec<(String, Via)> = Vec::new();
        if name.contains('/') {
            return self.musl_open(name.to_string(), Via::Path, searched, skipped);
        }
        if let Some(lp) = &self.opts.library_path {
            for e in lp.split([':', '\n']).filter(|e| !e.is_empty()) {
                dirs.push((
                    e.to_string(),
                    Via::LibraryPath {
                        entry: e.to_string(),
                    },
                ));
            }
        }
        let mut at = Some(requester);
        let mut hops = 0;
        while let Some(i) = at {
            let o = &self.objects[i];
            let (list, runpath) = if o.info.runpath.is_empty() {
                (&o.info.rpath, false)
            } else {
                (&o.info.runpath, true)
            };
            let joined = list.join(":");
            // musl expands only $ORIGIN; any other `$` makes it drop the whole path.
            let only_origin = joined.match_indices('$').all(|(k, _)| {
                joined[k..].starts_with("$ORIGIN") || joined[k..].starts_with("${ORIGIN}")
            });
            if only_origin {
                let origin = self.origin(i);
                for e in list {
                    let d = e.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin);
                    let via = if runpath {
                        Via::Runpath {
                            owner: i,
                            entry: e.clone(),
                        }
                    } else {
                        Via::Rpath {
                            owner: i,
                            entry: e.clone(),
                        }
                    };
                    dirs.push((d, via));
                }
            }
            at = o.loaded_by;
            hops += 1;
            if hops > self.objects.len() {
                break;
            }
        }
        let sys_via = match &self.setup.musl_path_file {
            Some(f) => Via::MuslPath { file: f.clone() },
            None => Via::Default,
        };
        for d in &self.setup.default_dirs {
            dirs.push((d.clone(), sys_via.clone()));
        }
        for (dir, via) in dirs {
            searched.push(Searched {
                dir: dir.clone(),
                via: via.clone(),
            });
            let p = format!("{dir}/{name}");
            let abs = absolute(&p, &self.opts.cwd);
            if root::resolve(self.root, &abs).is_ok() {
                return self.musl_open(p, via, searched, skipped);
            }
        }
        Search::NotFound(searched)
    }

    /// musl takes the first file that opens; a bad one is an error, not skipped.
    fn musl_open(
        &self,
        path: String,
        via: Via,
        searched: Vec<Searched>,
        skipped: &mut Vec<Skipped>,
    ) -> Search {
        match self.probe(&path) {
            Probe::Usable(canonical) => Search::Found(Candidate {
                path,
                canonical,
                via,
                hwcaps: Vec::new(),
                searched,
            }),
            Probe::Missing => Search::NotFound(searched),
            Probe::Skip(reason) => {
                let e = format!("{path}: {reason}");
                skipped.push(Skipped { path, reason });
                Search::Fatal(searched, e)
            }
            Probe::Fatal(e) => Search::Fatal(searched, e),
        }
    }
}

/// musl's reserved names: `lib` + one of c, pthread, rt, m, dl, util, xnet + `.`.
pub fn musl_is_self(name: &str) -> bool {
    name.strip_prefix("lib").is_some_and(|rest| {
        ["c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet."]
            .iter()
            .any(|r| rest.starts_with(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_expansion_follows_glibc() {
        let e = |s: &str| expand_glibc(s, "/opt/app/bin", "lib/x86_64-linux-gnu", Some("x86_64"));
        assert_eq!(e("$ORIGIN/../lib").as_deref(), Some("/opt/app/bin/../lib"));
        assert_eq!(e("${ORIGIN}/x").as_deref(), Some("/opt/app/bin/x"));
        assert_eq!(
            e("/usr/$LIB/x").as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/x")
        );
        assert_eq!(e("/p/$PLATFORM").as_deref(), Some("/p/x86_64"));
        // Not a token: identifier characters follow, or an unknown name.
        assert_eq!(e("$ORIGINAL/x").as_deref(), Some("$ORIGINAL/x"));
        assert_eq!(e("$HOME/x").as_deref(), Some("$HOME/x"));
        assert_eq!(e("${ORIGIN/x").as_deref(), Some("${ORIGIN/x"));
        assert_eq!(e("a$").as_deref(), Some("a$"));
        // A known token without a value drops the entry.
        assert_eq!(expand_glibc("/p/$PLATFORM", "/", "lib", None), None);
    }

    #[test]
    fn builtin_dirs_are_read_from_loader_bytes() {
        let blob = b"junk\0/etc/ld.so.cache\0/lib/x86_64-linux-gnu/\0/usr/lib/x86_64-linux-gnu/\0/lib/\0/usr/lib/\0\0more";
        assert_eq!(
            builtin_dirs(blob).unwrap(),
            [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib",
                "/usr/lib"
            ]
        );
        assert_eq!(builtin_dirs(b"/lib64/\0x\0/usr/lib64/\0"), None);
        assert_eq!(
            builtin_dirs(b"\0/lib64/\0/usr/lib64/\0").unwrap(),
            ["/lib64", "/usr/lib64"]
        );
    }

    #[test]
    fn loops_and_broken_candidates_are_reported_not_followed() {
        let Ok(me) = std::fs::read("/proc/self/exe") else {
            return;
        };
        let info = elf::parse(&me).unwrap();
        if info.interpreter.is_none() || info.needed.is_empty() {
            return; // a static test binary: nothing to resolve
        }
        let first = info.needed[0].clone();
        let mut t = crate::tree::ImageTree::new();
        t.add_bytes("/app/x", &me, 0o755).unwrap();
        // Every directory the loader could use loops, except one holding a linker script
        // where the first library should be.
        let interp = info.interpreter.clone().unwrap();
        let top = interp
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap()
            .to_string();
        t.add_symlink(&top, &top).unwrap();
        for d in Arch::of(&info).fallback_dirs() {
            if !d.starts_with(&format!("/{top}")) {
                t.add_dir(&d, 0o755).unwrap();
            }
        }
        let last = Arch::of(&info).fallback_dirs().pop().unwrap();
        t.add_bytes(
            &format!("{last}/{first}"),
            b"/* GNU ld script */ GROUP ( x )",
            0o644,
        )
        .unwrap();
        let c = resolve(&t, "/app/x", Some(&info), &Options::default()).unwrap();
        match &c.interpreter {
            Some(Interpreter::Missing { reason, .. }) => {
                assert!(reason.contains("too many levels"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!c.is_complete());
        assert!(c.setup.default_dirs_from.contains("built-in table"));
        let n = c.needs.iter().find(|n| n.name == first).unwrap();
        match &n.outcome {
            Outcome::NotFound { error: Some(e), .. } => {
                assert!(e.contains("invalid ELF header"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        for n in c.needs.iter().filter(|n| n.name != first) {
            match &n.outcome {
                Outcome::NotFound {
                    searched,
                    error: None,
                } => {
                    assert_eq!(searched.len(), Arch::of(&info).fallback_dirs().len())
                }
                other => panic!("{}: {other:?}", n.name),
            }
        }
    }

    #[test]
    fn musl_names() {
        for (n, want) in [
            ("libc.so", true),
            ("libc.so.6", true),
            ("libpthread.so.0", true),
            ("libm.so.6", true),
            ("libdl.so.2", true),
            ("libcrypto.so.3", false),
            ("libmagic.so.1", false),
            ("libc", false),
        ] {
            assert_eq!(musl_is_self(n), want, "{n}");
        }
        assert_eq!(
            musl_path_file("/lib/ld-musl-x86_64.so.1"),
            "/etc/ld-musl-x86_64.path"
        );
        assert_eq!(
            musl_path_file("/usr/local/musl/lib/ld-musl-aarch64.so.1"),
            "/usr/local/musl/etc/ld-musl-aarch64.path"
        );
        assert_eq!(
            split_musl_path("/lib/x86_64-linux-musl\n/usr/lib/x86_64-linux-musl\n:/x"),
            ["/lib/x86_64-linux-musl", "/usr/lib/x86_64-linux-musl", "/x"]
        );
    }
}
