//! Dynamic executables a Dockerfile copied into an image: each is resolved inside the
//! image with the image's own loader rules. In an image with no base, one whose loader
//! or libraries are missing gets them from the host (or `--sysroot`) exactly as
//! `nobase build BINARY` bundles them — the same closure, placement and self-check — in
//! one layer on top; `--bundle never` refuses it instead. Over a base image nothing is
//! mixed in from the host: the base provides its libraries, and the start-up check says
//! what it lacks.

use super::fs::StageFs;
use crate::build::{self, bundle, Bundle};
use crate::elf::{ElfInfo, Kind};
use crate::error::{Error, Result};
use crate::image::ImageConfig;
use crate::loader;
use crate::root::{HostRoot, Root};
use crate::tree::{Entry, ImageTree, Node};
use std::path::{Path, PathBuf};

/// How dynamic executables are treated.
#[derive(Clone, Debug)]
pub struct BundleOptions {
    /// Bundle (auto) or refuse (never).
    pub bundle: Bundle,
    /// Where loaders and libraries come from (`None`: the host's `/`).
    pub sysroot: Option<PathBuf>,
    /// Prove the bundle by resolving each executable again inside the image.
    pub check: bool,
}

/// What bundling adds: the entries of one layer, its history line, and warnings
/// (libraries a program may `dlopen` that no closure shows).
#[derive(Debug, Default)]
pub struct Added {
    /// The new files, at their image paths.
    pub entries: Vec<(String, Entry)>,
    /// The layer's history line.
    pub created_by: String,
    /// Things to tell the user.
    pub warnings: Vec<super::exec::Warning>,
}

/// The dynamic ELF executables in `files`, by image path.
fn dynamic_executables(files: &ImageTree) -> Vec<(String, ElfInfo)> {
    bundle::elf_files(files)
        .into_iter()
        .filter(|(_, info)| info.kind == Kind::Dynamic)
        .collect()
}

/// Bundles what the dynamic executables the build added to `fs` miss. Returns `None`
/// when nothing is missing (or the image has a base).
pub fn bundle_missing(
    fs: &StageFs,
    config: &ImageConfig,
    opts: &BundleOptions,
) -> Result<Option<Added>> {
    let files = &fs.upper;
    let exes = dynamic_executables(files);
    if exes.is_empty() || fs.base.is_some() {
        return Ok(None);
    }
    let env = config.config.env.as_deref().unwrap_or_default();
    let library_path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("LD_LIBRARY_PATH="))
        .map(str::to_string);
    let cwd = config
        .config
        .working_dir
        .clone()
        .filter(|w| w.starts_with('/'))
        .unwrap_or_else(|| "/".to_string());
    let strict = loader::Options {
        library_path: library_path.clone(),
        conf_without_cache: false,
        cwd: cwd.clone(),
    };
    let base = crate::build::source_root(opts.sysroot.as_deref())?;
    let source = HostRoot::new(&base);
    // The image as it grows: what was copied, plus what each bundle adds.
    let mut image = files.clone();
    let mut added = Added::default();
    let mut lines = Vec::new();
    for (path, info) in exes {
        let inside = loader::resolve(&image, &path, Some(&info), &strict)?;
        if inside.is_complete() {
            continue;
        }
        if opts.bundle == Bundle::Never {
            return Err(Error::Refused(build::explain_dynamic(
                Path::new(&path),
                &info,
            )));
        }
        let before = image.clone();
        let req = bundle::Request {
            source: &source,
            exe_in_source: None,
            app_path: &path,
            info: &info,
            library_path: library_path.clone(),
            cwd: cwd.clone(),
            check: opts.check,
            // The image's files are the application tree: its nsswitch.conf, if any.
            nsswitch: None,
        };
        let b = bundle::bundle(&req, &mut image)?;
        // Private libraries went into `image` (the application tree); the system ones
        // are in `b.libs`.
        for (p, e) in image.entries() {
            if before.get(p).is_none() {
                added.entries.push((format!("/{p}"), e.clone()));
            }
        }
        for (p, e) in b.libs.entries() {
            added.entries.push((format!("/{p}"), e.clone()));
        }
        image.merge(b.libs.clone())?;
        lines.push(format!("{path}: {}", crate::build::bundle::contents(&b)));
        for w in b.blind_spots {
            // Every bundle looks at the same copied shared objects: say each once.
            if w.kind == "added-object"
                && added
                    .warnings
                    .iter()
                    .any(|x| x.message.ends_with(&w.message))
            {
                continue;
            }
            let message = if w.kind == "added-object" {
                w.message
            } else {
                format!(
                    "{path}: {} (copy what it needs into the image with COPY)",
                    w.message
                )
            };
            added.warnings.push(super::exec::Warning {
                kind: w.kind.into(),
                message,
                with: None,
            });
        }
    }
    if lines.is_empty() {
        return Ok(None);
    }
    added.created_by = format!("nobase bundle {}", lines.join("; "));
    refuse_clash(files, &added, &source)?;
    Ok(Some(added))
}

/// A link of the bundle where the Dockerfile made a directory (`/lib` → `usr/lib` on the
/// host, `COPY libz.so.1 /lib/x86_64-linux-gnu/` in the stage): unpacked, the link would
/// replace the directory and what was copied into it. Refused, saying where to COPY.
fn refuse_clash(files: &ImageTree, added: &Added, source: &HostRoot) -> Result<()> {
    for (at, e) in &added.entries {
        let Node::Symlink(target) = &e.node else {
            continue;
        };
        if !matches!(
            files.get(at.trim_start_matches('/')).map(|e| &e.node),
            Some(Node::Dir)
        ) {
            continue;
        }
        let instead = if target.starts_with('/') {
            target.clone()
        } else {
            format!("{}/{target}", crate::loader::dirname(at)).replace("//", "/")
        };
        return Err(Error::Refused(format!(
            "the loader and libraries bundled for the Dockerfile's programs keep the paths they have on {}, where {at} is a link to {target}, but the Dockerfile made {at} a directory (the link would hide what was copied there); COPY into {instead} instead, or leave the libraries to the bundle",
            source.describe()
        )));
    }
    Ok(())
}
