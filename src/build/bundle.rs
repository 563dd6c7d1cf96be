//! Bundling a dynamic executable: resolve its loader and libraries in the source root
//! (the host or a `--sysroot`) with the loader's own rules, place each file where the
//! image's loader will look for it, and prove it by resolving the entrypoint again inside
//! the assembled image before anything is written.
//!
//! Placement:
//! * system files (the loader, libraries found through RPATH/RUNPATH directories that do
//!   not depend on `$ORIGIN`, the cache, the default directories) keep their path, and
//!   every symlink on the way to them is recreated (`/lib64` → `usr/lib64`, the SONAME
//!   link → the versioned file), so each path exists exactly as ld.so asks for it. They
//!   make the library layer, which depends only on the closure: a rebuilt application
//!   with the same libraries reuses that layer's blob.
//! * libraries found through an `$ORIGIN` path of the application go next to the
//!   application in the image (`$ORIGIN/../lib` of `/opt/app/bin/x` is `/opt/app/lib`),
//!   in the application layer: they belong to it.
//! * files the user added with `--add` are already in the application layer.

use crate::build::LayerReport;
use crate::elf::{ElfInfo, Kind};
use crate::error::{Error, Result};
use crate::loader::{
    self, absolute, cache, dirname as parent,
    dlopen::{BlindSpot, NssConf},
    Closure, Flavor, Interpreter, Outcome, Via,
};
use crate::root::{self, HostRoot, Root};
use crate::tree::{self, Entry, ImageTree, Node, Overlay};
use std::collections::BTreeSet;

/// What bundling produced.
#[derive(Clone, Debug)]
pub struct Bundled {
    /// The library layer's files.
    pub libs: ImageTree,
    /// The closure as resolved in the source root.
    pub closure: Closure,
    /// Run-time loads DT_NEEDED does not show; `--add` sources are host paths.
    pub blind_spots: Vec<BlindSpot>,
    /// Libraries only the source root's ld.so.cache (or ld.so.conf) found, listed in the
    /// image's generated `/etc/ld.so.cache`.
    pub cached: Vec<String>,
    /// Libraries placed in the application layer (found through `$ORIGIN`), by image path.
    pub private: Vec<String>,
    /// The same libraries by their path in the source.
    pub private_sources: Vec<String>,
    /// How many libraries the library layer holds (besides the loader).
    pub system_libraries: usize,
    /// Libraries placed for the shared objects and programs added with the
    /// application (not the entrypoint's), by image path.
    pub added_libraries: Vec<String>,
    /// Loaders of added programs that are not the entrypoint's (a glibc tool beside a
    /// musl program), by image path.
    pub added_loaders: Vec<String>,
}

/// Inputs of bundling.
pub struct Request<'a> {
    /// The source tree (host `/` or a sysroot).
    pub source: &'a HostRoot,
    /// Where the executable is in the source tree, when it is in it; otherwise it is
    /// resolved at its image path inside the application tree.
    pub exe_in_source: Option<String>,
    /// The executable's image path.
    pub app_path: &'a str,
    /// Its ELF facts.
    pub info: &'a ElfInfo,
    /// `LD_LIBRARY_PATH` the image sets.
    pub library_path: Option<String>,
    /// The image's working directory.
    pub cwd: String,
    /// Prove the result by resolving it inside the image.
    pub check: bool,
    /// The `/etc/nsswitch.conf` another layer gives the image (`--with passwd`).
    pub nsswitch: Option<&'a [u8]>,
}

/// Resolves and places the closure. `app` is the application tree (the binary and the
/// `--add` files); libraries that belong to the application are added to it.
pub fn bundle(req: &Request, app: &mut ImageTree) -> Result<Bundled> {
    let opts = loader::Options {
        library_path: req.library_path.clone(),
        conf_without_cache: true,
        cwd: req.cwd.clone(),
    };
    let exe_path = req
        .exe_in_source
        .clone()
        .unwrap_or_else(|| req.app_path.to_string());
    let overlay = Overlay {
        upper: &*app,
        lower: req.source,
    };
    let closure = loader::resolve(&overlay, &exe_path, Some(req.info), &opts)?;
    if !closure.is_complete() {
        return Err(Error::Refused(format!(
            "{} cannot be bundled from {}: {}. Install what is missing there, add it with \
             --add SRC:DEST, or resolve against another tree with --sysroot DIR",
            req.app_path,
            req.source.describe(),
            missing_pieces(&closure, req.source, &opts.cwd)
        )));
    }
    // The image's nsswitch.conf decides which NSS modules load: one added with the
    // application (read through the overlay), `--with passwd`'s, or none.
    let added_conf = app
        .get("etc/nsswitch.conf")
        .and_then(|_| crate::root::read_file(&overlay, "/etc/nsswitch.conf", 1 << 20).ok());
    let nss_conf = NssConf::Image(added_conf.as_deref().or(req.nsswitch));
    let mut blind_spots = loader::dlopen::blind_spots_with(&overlay, &closure, nss_conf);
    // What the application tree already has (the user followed the advice with --add)
    // needs no advice; a blind spot whose every fix is in place is no longer one.
    blind_spots.retain_mut(|b| {
        let had = b.adds.len();
        b.adds
            .retain(|a| app.get(a.dest.trim_start_matches('/')).is_none());
        had == 0 || !b.adds.is_empty()
    });
    for b in &mut blind_spots {
        for a in &mut b.adds {
            a.source = req.source.host_path(&a.source).display().to_string();
        }
    }
    let arch = loader::Arch::of(req.info);

    // Image path of every object, and whether it lives in the application layer.
    let n = closure.objects.len();
    let mut image_path = vec![String::new(); n];
    let mut in_app = vec![false; n];
    image_path[0] = req.app_path.to_string();
    in_app[0] = true;
    let mut libs = ImageTree::new();
    let mut private_files: Vec<(String, String)> = Vec::new();
    let mut private_sources = Vec::new();
    let mut system_libraries = 0;
    let mut placed = Placed::default();
    let image_defaults = default_dirs(&closure);
    let place_system = |libs: &mut ImageTree,
                        placed: &mut Placed,
                        source: &HostRoot,
                        o: &loader::Object,
                        opened: &str,
                        cwd: &str,
                        image_defaults: &BTreeSet<String>|
     -> Result<()> {
        add_with_links(libs, source, opened)?;
        for h in &o.hwcaps {
            add_with_links(libs, source, &absolute(h, cwd))?;
        }
        match &o.via {
            Via::Cache | Via::Conf { .. } => {
                // The default directories find it only under the name it is asked by.
                let dir = tree::normalize(&parent(opened)).unwrap_or_default();
                let file = opened.rsplit('/').next().unwrap_or("");
                let renamed = o.names.iter().any(|n| !n.contains('/') && n != file);
                if !image_defaults.contains(&dir) || renamed {
                    placed.cached.push(opened.to_string());
                    for name in o.names.iter().filter(|n| !n.contains('/')) {
                        placed
                            .cache_entries
                            .push((name.clone(), opened.to_string()));
                    }
                }
            }
            Via::MuslPath { .. } => placed.musl_path_used = true,
            _ => {}
        }
        Ok(())
    };

    for i in 1..n {
        let o = &closure.objects[i];
        let opened = absolute(&o.path, &opts.cwd);
        if overlay.from_upper(&o.canonical) {
            // Added by the user: already in the application layer. When it is reached
            // through the source's links (`/lib64/ld-linux-x86-64.so.2` → `/lib` →
            // `usr/lib`, where `--add /usr/lib/x86_64-linux-gnu:…` put the loader), the
            // links come too, as they do for a bundled file.
            if let Ok((_, links)) = root::resolve_links(&overlay, &opened) {
                for l in links
                    .iter()
                    .filter(|l| app.get(l.path.trim_start_matches('/')).is_none())
                {
                    libs.add_symlink(&l.path, &l.target)?;
                }
            }
            image_path[i] = opened;
            in_app[i] = true;
            continue;
        }
        let origin_owner = match &o.via {
            Via::Rpath { owner, entry } | Via::Runpath { owner, entry }
                if in_app[*owner] && has_origin(entry) =>
            {
                Some((*owner, entry))
            }
            _ => None,
        };
        if let Some((owner, entry)) = origin_owner {
            let host_dir = expand(&closure, entry, &host_origin(&closure, owner, &opts.cwd));
            let image_dir = expand(&closure, entry, &parent(&image_path[owner]));
            let (Some(host_dir), Some(image_dir)) = (host_dir, image_dir) else {
                return Err(Error::Refused(format!(
                    "cannot place {}: its {} entry {entry} does not expand",
                    o.path,
                    o.via.describe()
                )));
            };
            let place = |p: &str| -> Result<String> {
                let rel = p
                    .strip_prefix(host_dir.trim_end_matches('/'))
                    .unwrap_or(p.rsplit('/').next().unwrap_or(p));
                lexical(&format!(
                    "{}/{}",
                    image_dir.trim_end_matches('/'),
                    rel.trim_start_matches('/')
                ))
            };
            image_path[i] = place(&o.path)?;
            in_app[i] = true;
            private_sources.push(o.path.clone());
            private_files.push((image_path[i].clone(), o.canonical.clone()));
            for h in &o.hwcaps {
                let real = root::resolve(req.source, h).map_err(|e| resolve_err(h, e))?;
                private_files.push((place(h)?, real));
            }
            continue;
        }
        // A system file: same path, same symlinks.
        image_path[i] = opened.clone();
        if o.via != Via::Interpreter {
            system_libraries += 1;
        }
        place_system(
            &mut libs,
            &mut placed,
            req.source,
            o,
            &opened,
            &opts.cwd,
            &image_defaults,
        )?;
    }
    // Shared objects and programs added with the application (`--add
    // /usr/lib/python3.11:…`'s extension modules, plugins): what they need comes too,
    // found as the loader will find it in the image, so loading them works. What cannot
    // be found is said, as a blind spot.
    let mut added_libraries = Vec::new();
    let mut added_loaders = Vec::new();
    // Where the loader will look in the image decides, not the host file: a library the
    // entrypoint has privately (at its `$ORIGIN`) is not where another object looks.
    let mut placed_paths: BTreeSet<String> = image_path.iter().cloned().collect();
    // Host files already in the library layer at their own path: another name for one
    // (a link) adds the link, not a library.
    let mut placed_files: BTreeSet<String> = (1..n)
        .filter(|&i| !in_app[i])
        .map(|i| closure.objects[i].canonical.clone())
        .collect();
    for (path, info) in added_elf_objects(app, &arch, req.app_path) {
        let Ok(c) = loader::resolve(&overlay, &path, Some(&info), &opts) else {
            continue;
        };
        let mut unloadable = |message: String| {
            blind_spots.push(BlindSpot {
                kind: "added-object",
                message,
                adds: Vec::new(),
                missing: true,
            })
        };
        if let Some(Interpreter::Missing { requested, reason }) = &c.interpreter {
            unloadable(format!(
                "the added {path} needs its loader {requested}, which is not usable in {}: {reason}, so running it will fail",
                overlay.describe()
            ));
        }
        for need in c.missing() {
            unloadable(format!(
                "the added {path} needs {}, which the loader does not find where it looks in {}, so loading it will fail",
                need.name,
                overlay.describe()
            ));
        }
        // Its own loader's rules decide where its libraries are (a glibc tool beside a
        // musl program).
        let defaults = default_dirs(&c);
        for o in c.objects.iter().skip(1) {
            let opened = absolute(&o.path, &opts.cwd);
            // `$ORIGIN/../bin/lib` spelled out (`/app/tools/../bin/lib/libfoo.so`).
            let shown = tree::lexical(&opened);
            if overlay.from_upper(&o.canonical) || !placed_paths.insert(shown.clone()) {
                continue;
            }
            place_system(
                &mut libs,
                &mut placed,
                req.source,
                o,
                &opened,
                &opts.cwd,
                &defaults,
            )?;
            if !placed_files.insert(o.canonical.clone()) {
                continue;
            }
            if o.via == Via::Interpreter {
                added_loaders.push(shown);
            } else {
                system_libraries += 1;
                added_libraries.push(shown);
            }
        }
    }
    let Placed {
        cached,
        cache_entries,
        musl_path_used,
    } = placed;

    // Libraries the source found only through its ld.so.cache or ld.so.conf, in
    // directories the image's loader does not search by default. Two ways to make them
    // findable: move each into a default directory, or give the image an ld.so.cache
    // that lists them. We write the cache: every file keeps the path it has in the
    // source (so `$ORIGIN` inside those libraries, absolute references to them, and
    // `nobase inspect` on the unpacked image all agree with the source), and it is the
    // very mechanism the source used to find them. The cache is the new format glibc
    // has read since 2.32 (and written by default since), sorted as ldconfig sorts it.
    // (Only glibc's loader finds libraries through a cache or ld.so.conf, the
    // entrypoint's or an added program's.)
    if !cache_entries.is_empty() {
        let bytes = cache::write(&cache_entries, arch.cache_flags(), arch.little_endian);
        libs.add_bytes("/etc/ld.so.cache", &bytes, 0o644)?;
    }
    // musl: the source's path file named the directory; the image gets the same file.
    if musl_path_used {
        if let Some(f) = &closure.setup.musl_path_file {
            let bytes = root::read_file(req.source, f, 1 << 20).map_err(|e| Error::Io {
                action: format!("reading {f} in {}", req.source.describe()),
                cause: e,
            })?;
            libs.add_bytes(f, &bytes, 0o644)?;
        }
    }
    let mut private = Vec::new();
    for (dest, real) in private_files {
        app.add_host(&req.source.host_path(&real), &dest)?;
        shared_object_mode(app, &dest)?;
        private.push(dest);
    }
    // What the application adds under a directory the libraries' layer links elsewhere
    // (`--add x:/lib/y`, with /lib → usr/lib) goes through the link, as an unpacker puts
    // it, instead of a directory that would hide the loader's.
    *app = crate::build::settle(std::mem::take(app), &[&libs])?;

    if req.check {
        self_check(&closure, &image_path, &libs, app, req, &opts)?;
    }
    Ok(Bundled {
        libs,
        closure,
        blind_spots,
        cached,
        private,
        private_sources,
        system_libraries,
        added_libraries,
        added_loaders,
    })
}

/// The directories a closure's loader searches by default, as image paths.
fn default_dirs(c: &Closure) -> BTreeSet<String> {
    c.setup
        .default_dirs
        .iter()
        .map(|d| tree::normalize(d).unwrap_or_default())
        .collect()
}

/// What placing system files found out: libraries only a cache or conf file finds (the
/// image gets an ld.so.cache naming them), and whether musl's path file is needed.
#[derive(Default)]
struct Placed {
    cached: Vec<String>,
    cache_entries: Vec<(String, String)>,
    musl_path_used: bool,
}

/// The ELF files of a tree that parse, by image path.
pub fn elf_files(files: &ImageTree) -> Vec<(String, ElfInfo)> {
    let mut out = Vec::new();
    for (path, e) in files.entries() {
        if !matches!(e.node, Node::File { size, .. } if size >= 64) {
            continue;
        }
        let p = format!("/{path}");
        let Ok(f) = files.open(&p) else { continue };
        let mut magic = [0u8; 4];
        if f.read_exact_at(0, &mut magic).is_err() || &magic != b"\x7fELF" {
            continue;
        }
        if let Ok(info) = crate::elf::parse(&*f) {
            out.push((p, info));
        }
    }
    out
}

/// The ELF shared objects and dynamic programs of the application tree other than the
/// entrypoint, of `arch`, that need libraries, by image path.
fn added_elf_objects(app: &ImageTree, arch: &loader::Arch, exe: &str) -> Vec<(String, ElfInfo)> {
    elf_files(app)
        .into_iter()
        .filter(|(p, info)| {
            p != exe
                && matches!(info.kind, Kind::SharedLibrary | Kind::Dynamic)
                && !info.needed.is_empty()
                && loader::Arch::of(info) == *arch
        })
        .collect()
}

/// Resolves the entrypoint inside the assembled image (library layer under the
/// application layer) with the image's own loader rules — no ld.so.conf, only what the
/// image holds — and refuses unless it finds the loader and every library, each the file
/// that was placed for it.
fn self_check(
    closure: &Closure,
    image_path: &[String],
    libs: &ImageTree,
    app: &ImageTree,
    req: &Request,
    opts: &loader::Options,
) -> Result<()> {
    let mut merged = libs.clone();
    merged.merge(app.clone())?;
    let strict = loader::Options {
        conf_without_cache: false,
        ..opts.clone()
    };
    let image = loader::resolve(&merged, req.app_path, Some(req.info), &strict)?;
    if !image.is_complete() {
        return Err(Error::Refused(format!(
            "self-check failed: inside the image {} would not start: {} (an --add may hide \
             a bundled file; --no-check writes the image anyway)",
            req.app_path,
            missing_pieces(&image, &merged, &opts.cwd)
        )));
    }
    // Each library must be the file placed for it, not another one that happens to
    // match the name.
    let want: BTreeSet<String> = image_path[1..closure.objects.len()]
        .iter()
        .map(|p| root::resolve(&merged, p).unwrap_or_else(|_| p.clone()))
        .collect();
    let got: BTreeSet<String> = image.objects[1..]
        .iter()
        .map(|o| o.canonical.clone())
        .collect();
    if want != got {
        let extra: Vec<&String> = got.difference(&want).collect();
        let lost: Vec<&String> = want.difference(&got).collect();
        return Err(Error::Refused(format!(
            "self-check failed: inside the image the loader would use {} instead of {} (--no-check writes the image anyway)",
            list_or_none(&extra),
            list_or_none(&lost)
        )));
    }
    Ok(())
}

fn list_or_none(v: &[&String]) -> String {
    if v.is_empty() {
        "nothing".to_string()
    } else {
        v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Every missing piece of a closure, with what was searched; `cwd` is the image's
/// working directory.
fn missing_pieces(c: &Closure, root: &dyn Root, cwd: &str) -> String {
    let mut parts = Vec::new();
    if let Some(Interpreter::Missing { requested, reason }) = &c.interpreter {
        parts.push(format!(
            "its loader {requested} is not usable in {}: {reason}",
            root.describe()
        ));
    }
    for need in c.missing() {
        let by = &c.objects[need.requester].path;
        let Outcome::NotFound { searched, error } = &need.outcome else {
            continue;
        };
        let mut s = match error {
            Some(e) => format!("{} (needed by {by}) cannot be loaded: {e}", need.name),
            None => format!("{} (needed by {by}) is not found", need.name),
        };
        if !searched.is_empty() {
            let dirs: Vec<String> = searched
                .iter()
                .map(|d| match &d.via {
                    Via::Default | Via::Cache => d.dir.clone(),
                    v => format!("{} ({})", d.dir, v.describe()),
                })
                .collect();
            s.push_str(&format!("; searched {}", dirs.join(", ")));
        }
        for k in &need.skipped {
            s.push_str(&format!("; skipped {}: {}", k.path, k.reason));
        }
        if need.name.contains('/') && !need.name.starts_with('/') && !need.name.contains('$') {
            // `gcc … ./libx.so` records the path as given: ld.so opens it from the
            // process's working directory and searches nowhere.
            let at = absolute(&need.name, cwd);
            let at = lexical(&at).unwrap_or(at);
            s.push_str(&format!(
                " (a relative path, which ld.so opens from the working directory, {cwd}: \
                 add the file there, e.g. --add {}:{at}, or give another directory with -w)",
                need.name
            ));
        }
        parts.push(s);
    }
    parts.join("; ")
}

/// Adds the ELF object at `path` in `source` to `tree`, with every symlink on the way.
fn add_with_links(tree: &mut ImageTree, source: &HostRoot, path: &str) -> Result<()> {
    let (real, links) = root::resolve_links(source, path).map_err(|e| resolve_err(path, e))?;
    for l in links {
        tree.add_symlink(&l.path, &l.target)?;
    }
    tree.add_host(&source.host_path(&real), &real)?;
    shared_object_mode(tree, &real)
}

/// The loader and libraries are 0755 in the image, as distributions install them,
/// whatever their mode on the host: the kernel maps the loader only if it may execute
/// it, and the digest must not depend on how a library was copied onto this machine.
fn shared_object_mode(tree: &mut ImageTree, path: &str) -> Result<()> {
    if let Some(e) = tree.get(path.trim_start_matches('/')).cloned() {
        if matches!(e.node, Node::File { .. }) {
            tree.insert(path, Entry { mode: 0o755, ..e })?;
        }
    }
    Ok(())
}

fn resolve_err(path: &str, e: root::ResolveError) -> Error {
    Error::Invalid(format!("{path} disappeared while bundling: {e}"))
}

fn has_origin(entry: &str) -> bool {
    entry.contains("$ORIGIN") || entry.contains("${ORIGIN}")
}

/// `$ORIGIN` of an object in the source, as the loader computes it.
fn host_origin(c: &Closure, i: usize, cwd: &str) -> String {
    let o = &c.objects[i];
    if o.via == Via::Executable {
        parent(&o.canonical)
    } else {
        parent(&absolute(&o.path, cwd))
    }
}

fn expand(c: &Closure, entry: &str, origin: &str) -> Option<String> {
    match c.setup.flavor {
        Flavor::Glibc => {
            loader::expand_glibc(entry, origin, &c.setup.lib, c.setup.platform.as_deref())
        }
        Flavor::Musl => Some(
            entry
                .replace("${ORIGIN}", origin)
                .replace("$ORIGIN", origin),
        ),
    }
}

/// Normalizes `..` and `.` lexically: inside the image every directory on these paths is
/// one nobase creates, so lexical and physical resolution agree.
pub(crate) fn lexical(p: &str) -> Result<String> {
    match tree::lexical(&format!("/{p}")) {
        root if root == "/" => Err(Error::Refused(format!(
            "{p} names the image root, not a file"
        ))),
        path => Ok(path),
    }
}

/// What a bundle holds, for its history line and the Dockerfile summary: `loader
/// /lib64/ld-linux-x86-64.so.2 and 1 library`.
pub fn contents(b: &Bundled) -> String {
    let loader = b
        .closure
        .interpreter_object()
        .map(|o| o.path.as_str())
        .unwrap_or("(none)");
    let others = if b.added_loaders.is_empty() {
        String::new()
    } else {
        format!(" (and {} for added programs)", b.added_loaders.join(", "))
    };
    format!(
        "loader {loader}{others} and {} {}",
        b.system_libraries,
        if b.system_libraries == 1 {
            "library"
        } else {
            "libraries"
        }
    )
}

/// The history line and counts of the library layer.
pub fn layer_report(b: &Bundled, layer: crate::layer::Layer) -> LayerReport {
    let files = b
        .libs
        .entries()
        .filter(|(_, e)| matches!(e.node, Node::File { .. }))
        .count();
    LayerReport {
        created_by: format!("nobase bundle: {}", contents(b)),
        files,
        file_bytes: b.libs.file_bytes(),
        layer,
    }
}

#[cfg(test)]
mod tests {
    use super::lexical;

    #[test]
    fn lexical_paths() {
        assert_eq!(
            lexical("/opt/app/bin/../lib/x.so").unwrap(),
            "/opt/app/lib/x.so"
        );
        assert_eq!(lexical("/app/./../lib/x").unwrap(), "/lib/x");
        assert_eq!(lexical("/../../x").unwrap(), "/x");
        assert!(lexical("/..").is_err());
    }
}
