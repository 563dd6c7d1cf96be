//! Running images without an engine: an image becomes an OCI runtime bundle
//! (`config.json` + `rootfs/`, [`unpack`]) that runc or crun start ([`run`]).
//!
//! Unpacking is safe against hostile layers (see `extract` and `inroot`): no entry is
//! written outside `rootfs`. Bundles for `nobase run` are fresh each time, under
//! `BUNDLES/run-ID` (the CLI uses the directory beside the store), and removed
//! afterwards: a cached rootfs would carry what one run wrote into the next.

pub mod extract;
mod inroot;
mod preflight;
mod runtime;
mod signals;
pub mod spec;
pub mod user;

pub use extract::{ExtractStats, Limits};
pub use runtime::{clean_stale, Cleaned, RunBundle, Runtime};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{self, Image, Platform};
use crate::imagefs::name::clean_path;
use crate::oci::Blobs;
use crate::root::HostRoot;
use extract::{ExtractOptions, Extractor};
use spec::{Spec, SpecInputs};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the run changes about the image's process.
#[derive(Clone, Debug, Default)]
pub struct ProcessOptions {
    /// Replaces the Entrypoint (and, as in Docker, drops the image's Cmd).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the Cmd.
    pub args: Option<Vec<String>>,
    /// Set or override environment variables.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User (`uid[:gid]` or names from the image's passwd and group files).
    pub user: Option<String>,
}

/// How an image is unpacked into a bundle.
#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    /// The platform to pick from a multi-platform image (default: this machine's).
    pub platform: Option<Platform>,
    /// Process overrides.
    pub process: ProcessOptions,
    /// Share the host's network namespace instead of a private one (loopback only).
    pub network_host: bool,
    /// More lines for the container's /etc/hosts: a name and its address (`--add-host`).
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
    /// Keep setuid/setgid bits (and let them work: no `noNewPrivileges`).
    pub keep_setuid: bool,
    /// Create device nodes (root only).
    pub devices: bool,
    /// Caps against decompression bombs.
    pub limits: Limits,
    /// Ask the runtime for a terminal.
    pub terminal: bool,
    /// Write a bundle whose image names no program (`unpack` of a data image, to look
    /// at its rootfs, as umoci does): `process.args` stays empty, for the user to set.
    pub allow_no_program: bool,
}

/// A written bundle.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// The config.json written.
    pub spec: Spec,
    /// What extraction did.
    pub stats: ExtractStats,
    /// The platform unpacked.
    pub platform: Platform,
    /// The manifest's digest.
    pub manifest: Digest,
    /// Rootless: the host uid and gid mapped into the container.
    pub rootless: Option<(u32, u32)>,
    /// Things the user should know (dropped setuid bits, skipped devices…).
    pub notes: Vec<String>,
}

/// This machine's hostname (uname's nodename), if it has a usable one.
fn host_name() -> Option<String> {
    let n = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let n = n.trim();
    (!n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.'))
    .then(|| n.to_string())
}

fn euid_egid() -> (u32, u32) {
    // SAFETY: geteuid/getegid have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Unpacks `image` into the bundle directory `dir` (created if missing; it must not
/// hold a `rootfs` or `config.json` yet). On failure, what was written is removed; a
/// SIGINT or SIGTERM stops the work, cleans up, and then ends the process by that signal.
pub fn unpack(
    image: &Image,
    blobs: &dyn Blobs,
    dir: &Path,
    opts: &UnpackOptions,
) -> Result<Unpacked> {
    let rootfs = dir.join("rootfs");
    let config = dir.join("config.json");
    let etc_files = spec::ETC_FILES.map(|n| dir.join(n));
    if rootfs.symlink_metadata().is_ok()
        || config.symlink_metadata().is_ok()
        || etc_files.iter().any(|f| f.symlink_metadata().is_ok())
    {
        return Err(Error::Usage(format!(
            "{} already holds a bundle (rootfs, config.json, hosts or hostname); unpack into a new directory",
            dir.display()
        )));
    }
    let created_dir = !dir.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .io(|| format!("creating {}", dir.display()))?;
    let guard = signals::install().io(|| "installing signal handlers".to_string())?;
    let result = unpack_into(image, blobs, &rootfs, &config, opts);
    if result.is_err() {
        let _ = inroot::remove_tree(&rootfs);
        let _ = std::fs::remove_file(&config);
        for f in &etc_files {
            let _ = std::fs::remove_file(f);
        }
        if created_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
    guard.reraise();
    result
}

fn unpack_into(
    image: &Image,
    blobs: &dyn Blobs,
    rootfs: &Path,
    config_path: &Path,
    opts: &UnpackOptions,
) -> Result<Unpacked> {
    let chosen = image.select(opts.platform.as_ref())?;
    let m = &chosen.manifest;
    let diff_ids = &chosen.config.rootfs.diff_ids;
    if diff_ids.len() != m.layers.len() {
        return Err(Error::Invalid(format!(
            "the image's config lists {} layer diff_ids but its manifest {} layers",
            diff_ids.len(),
            m.layers.len()
        )));
    }
    let (euid, egid) = euid_egid();
    let rootless = (euid != 0).then_some((euid, egid));

    std::fs::create_dir(rootfs).io(|| format!("creating {}", rootfs.display()))?;
    std::fs::set_permissions(rootfs, std::fs::Permissions::from_mode(0o755))
        .io(|| format!("setting the mode of {}", rootfs.display()))?;
    let mut ex = Extractor::new(
        rootfs,
        ExtractOptions {
            owners: rootless.is_none(),
            keep_setuid: opts.keep_setuid,
            devices: opts.devices,
            limits: opts.limits,
        },
        &|| signals::pending().is_some(),
    )?;
    for (i, (layer, diff_id)) in m.layers.iter().zip(diff_ids).enumerate() {
        let what = format!("layer {} ({})", i + 1, layer.digest);
        let compression = image::layer_compression(&layer.media_type).ok_or_else(|| {
            Error::Invalid(format!(
                "{what} has media type {} which nobase cannot unpack",
                layer.media_type
            ))
        })?;
        let stream = crate::layer::decompress(blobs.open(layer)?, compression, &layer.digest)?;
        ex.apply_layer(stream, layer.size, Some(diff_id), &what)?;
    }
    let stats = ex.finish()?;

    let c = &chosen.config.config;
    let user_spec = opts
        .process
        .user
        .clone()
        .or_else(|| c.user.clone())
        .unwrap_or_default();
    let user = user::resolve(&HostRoot::new(rootfs), &user_spec)?;
    let mut notes = Vec::new();
    if rootless.is_some() {
        if (user.uid, user.gid) != (0, 0) {
            return Err(Error::Refused(format!(
                "the container would run as {}:{}, but without root nobase can map only your own \
                 user, as root in the container: run nobase as root, or run the container as root (-u 0)",
                user.uid, user.gid
            )));
        }
        if !user.additional_gids.is_empty() {
            notes.push(format!(
                "rootless: supplementary groups {:?} cannot be mapped and are dropped",
                user.additional_gids
            ));
        }
    }
    // Mounted only over what can take it: an image whose /etc is a file or a link
    // (`/etc → /proc/self`), or whose /etc/hosts is a directory or a link, keeps its
    // own, as it ran before these mounts existed (runc refuses such a mount).
    let mountable = |name: &&str| -> bool {
        let etc = rootfs.join("etc");
        match std::fs::symlink_metadata(&etc) {
            Err(_) => true,
            Ok(m) if m.is_dir() => {
                std::fs::symlink_metadata(etc.join(name)).map_or(true, |m| m.file_type().is_file())
            }
            Ok(_) => false,
        }
    };
    let inputs = SpecInputs {
        config: c,
        process: &opts.process,
        user: &user,
        terminal: opts.terminal,
        network_host: opts.network_host,
        rootless,
        allow_new_privileges: opts.keep_setuid,
        // As Docker: the host's network comes with the host's name.
        hostname: opts
            .network_host
            .then(host_name)
            .flatten()
            .unwrap_or_else(|| format!("nobase-{}", chosen.descriptor.digest.short())),
        etc: spec::ETC_FILES.into_iter().filter(mountable).collect(),
        add_hosts: &opts.add_hosts,
        allow_no_program: opts.allow_no_program,
    };
    if !opts.add_hosts.is_empty() && !inputs.etc.contains(&"hosts") {
        notes.push(
            "--add-host is not applied: the image's /etc/hosts is a link or a directory (or its /etc is not a directory), which nobase does not mount over"
                .to_string(),
        );
    }
    let spec = spec::build(&inputs)?;
    if spec.process.args.is_empty() {
        notes.push(
            "the image names no program (no Entrypoint or Cmd): config.json's process.args is empty; set them, or unpack with --entrypoint, before `runc run`"
                .to_string(),
        );
    }
    let bundle = config_path.parent().unwrap_or(Path::new("."));
    for (name, text) in spec::etc_files(&inputs) {
        // New files only, never through a link: the directory may be someone else's
        // (`unpack IMG /tmp/b` with /tmp/b/hosts → /etc/shadow planted in it).
        let path = bundle.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .io(|| format!("writing {}", path.display()))?;
    }
    // The working directory exists before the runtime needs it (0755 if made here, as
    // Docker makes a missing WORKDIR).
    let cwd = clean_path(spec.process.cwd.as_bytes())
        .map_err(|m| Error::Usage(format!("working directory {}: {m}", spec.process.cwd)))?;
    let root = inroot::InRoot::open(rootfs).io(|| format!("opening {}", rootfs.display()))?;
    root.dir(&cwd, true).map_err(|e| {
        // Something other than a directory is in the way: the image's fault, which no
        // runtime gets past either (`check` calls it bad-workdir).
        if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::EEXIST)) {
            Error::Refused(format!(
                "the working directory {} is not a directory in the image (a file is in \
                 the way), so no runtime can start it there; give another with -w DIR, or \
                 fix the image's WorkingDir",
                spec.process.cwd
            ))
        } else {
            Error::Io {
                action: format!(
                    "creating the working directory {} in the image",
                    spec.process.cwd
                ),
                cause: e,
            }
        }
    })?;

    if stats.skipped_devices > 0 {
        notes.push(format!(
            "{} device nodes not created (they need root and --devices; /dev is a tmpfs anyway)",
            stats.skipped_devices
        ));
    }
    if stats.setuid_dropped > 0 {
        notes.push(format!(
            "setuid/setgid bits dropped from {} files (--keep-setuid keeps them)",
            stats.setuid_dropped
        ));
    }
    let json = serde_json::to_vec_pretty(&spec)
        .map_err(|e| Error::Invalid(format!("serializing config.json: {e}")))?;
    std::fs::write(config_path, json).io(|| format!("writing {}", config_path.display()))?;
    Ok(Unpacked {
        spec,
        stats,
        platform: chosen.config.platform(),
        manifest: chosen.descriptor.digest.clone(),
        rootless,
        notes,
    })
}

/// How an image is run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// How it is unpacked.
    pub unpack: UnpackOptions,
    /// The runtime.
    pub runtime: Runtime,
    /// Where run bundles are made.
    pub bundles: PathBuf,
    /// Keep the bundle afterwards.
    pub keep: bool,
    /// Check before starting (off with `--no-check`).
    pub check: bool,
    /// How long a container may take to stop after a stop signal before it is killed.
    pub stop_timeout: Duration,
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The program's exit code (128+N for signal N), nobase's own exit code.
    pub code: i32,
    /// The bundle, when kept.
    pub kept: Option<PathBuf>,
    /// The container's name.
    pub name: String,
}

/// Unpacks `image` into a fresh bundle, checks it, runs it with the runtime, deletes
/// the container and (unless kept) the bundle. `note` receives messages for stderr.
pub fn run(
    image: &Image,
    blobs: &dyn Blobs,
    opts: &RunOptions,
    note: &dyn Fn(&str),
) -> Result<RunOutcome> {
    let stale = clean_stale(&opts.bundles, &opts.runtime);
    for pid in &stale.stopped {
        note(&format!(
            "stopped and removed a container left running by an earlier nobase run that \
             did not finish (its program was pid {pid})"
        ));
    }
    let rest = stale.removed.saturating_sub(stale.stopped.len());
    if rest > 0 {
        note(&format!(
            "removed {rest} bundle(s) left by an earlier nobase run that did not finish"
        ));
    }
    // From here on nobase outlives its container: stop signals are caught.
    let guard = signals::install().io(|| "installing signal handlers".to_string())?;
    let bundle = RunBundle::create(&opts.bundles)?;
    let name = bundle.name.clone();
    let result = (|| -> Result<i32> {
        let unpacked = unpack(image, blobs, &bundle.dir, &opts.unpack)?;
        for n in &unpacked.notes {
            note(n);
        }
        if opts.check {
            let chosen = image.select(opts.unpack.platform.as_ref())?;
            preflight::check(
                &bundle.dir.join("rootfs"),
                &unpacked,
                &chosen.config,
                opts.unpack.process.user.as_deref(),
            )?;
        }
        if let Some(sig) = signals::pending() {
            return Ok(128 + sig);
        }
        opts.runtime.run(
            &bundle.state(),
            &bundle.dir,
            &bundle.name,
            opts.stop_timeout,
        )
    })();
    // The container goes whatever happened (a no-op when the runtime already did it).
    opts.runtime.delete(&bundle.state(), &bundle.name);
    let interrupted = signals::pending();
    let kept = if opts.keep {
        Some(bundle.keep())
    } else {
        let dir = bundle.dir.clone();
        if let Err(e) = bundle.remove() {
            // The program's exit code matters more than a leftover directory.
            note(&format!(
                "could not remove the bundle {}: {e}",
                dir.display()
            ));
        }
        None
    };
    drop(guard);
    let code = match (result, interrupted) {
        (Ok(code), _) => code,
        (Err(_), Some(sig)) => {
            note("interrupted before the container started");
            128 + sig
        }
        (Err(e), None) => return Err(e),
    };
    Ok(RunOutcome { code, kept, name })
}
