//! Building an image from executables: plan → image tree → layers → config and manifest.
//! The result is a value ([`Built`]) whose blobs sit in the store; sinks publish it.

pub mod bundle;
pub mod extras;
pub mod multi;

use crate::elf::{self, ElfInfo, Kind};
use crate::error::{Error, Result};
use crate::image::{
    self, ContainerConfig, EmptyObject, History, Image, ImageConfig, Platform, RootFs,
};
use crate::layer::{self, Compression, Layer, LayerOptions};
use crate::oci::Layout;
use crate::root::Root;
use crate::tree::{self, ImageTree};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod assemble;
pub use assemble::{assemble, oci_layer};

/// Docker's default PATH for Linux containers; set unless the user sets PATH.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to do with a dynamically linked executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bundle {
    /// Add its loader and library closure.
    Auto,
    /// Refuse it, explaining what it needs.
    Never,
}

/// Everything a build needs, validated, with no ambient inputs left to read.
#[derive(Clone, Debug)]
pub struct BuildPlan {
    /// The executable to package.
    pub binary: PathBuf,
    /// Where it goes in the image (default `/app/<basename>`).
    pub app_path: Option<String>,
    /// Entrypoint override (default: the app path).
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Environment, in order; PATH defaults to [`DEFAULT_PATH`].
    pub env: Vec<(String, String)>,
    /// Working directory (created in the image).
    pub workdir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports, `PORT/PROTO`.
    pub expose: Vec<String>,
    /// Extra host files and directories: (source, image path).
    pub adds: Vec<(PathBuf, String)>,
    /// Layer compression.
    pub compression: Compression,
    /// Its level (`--compression-level`); None: the default.
    pub compression_level: Option<i32>,
    /// `SOURCE_DATE_EPOCH`: the created time and every mtime.
    pub epoch: u64,
    /// Dynamic executables: bundle or refuse.
    pub bundle: Bundle,
    /// Where the loader and libraries come from (`None`: the host's `/`).
    pub sysroot: Option<PathBuf>,
    /// Check the assembled image as `nobase check` would (command, user, permissions,
    /// format, loader, libraries, symbol versions) and refuse to write one that would not
    /// start.
    pub check: bool,
    /// Compression workers (fixed, for determinism).
    pub threads: u32,
    /// Runtime data to add, each in its own layer below the libraries (`--with`).
    pub with: Vec<extras::Extra>,
    /// The platform to declare instead of the one the ELF header says (`--platform`).
    pub platform: Option<Platform>,
}

/// A layer and what went into it.
#[derive(Clone, Debug)]
pub struct LayerReport {
    /// The history line.
    pub created_by: String,
    /// Regular files in it.
    pub files: usize,
    /// Their bytes.
    pub file_bytes: u64,
    /// The blob.
    pub layer: Layer,
}

/// A finished build.
#[derive(Clone, Debug)]
pub struct Built {
    /// The image (its blobs are in the layout the build wrote to).
    pub image: Image,
    /// What the binary is.
    pub binary: ElfInfo,
    /// Layers, bottom first.
    pub layers: Vec<LayerReport>,
    /// For a dynamic executable: its closure, where things went, and warnings.
    pub bundled: Option<bundle::Bundled>,
    /// What `nobase check` says of the image (its warnings: CA certificates, zoneinfo,
    /// NSS, /tmp…); None when `--no-check` was given and the analysis could not run.
    pub report: Option<crate::check::Report>,
    /// What the build notices of the files themselves, as (code, warning):
    /// `dropped-privileges` (setuid/setgid bits and file capabilities the image does not
    /// keep), `dangling-link` (an added link whose target the image lacks).
    pub notices: Vec<(&'static str, String)>,
}

/// The links of the application tree (`--add` of a symlink, such as
/// `/usr/lib/x86_64-linux-gnu/libz.so.1`) whose target the image does not have: the
/// link is added as a link, and its file was left on the host.
fn dangling_links(app: &ImageTree, image: &dyn Root) -> Vec<String> {
    app.entries()
        .filter_map(|(path, e)| match &e.node {
            tree::Node::Symlink(target) => Some((format!("/{path}"), target.clone())),
            _ => None,
        })
        .filter(|(path, _)| crate::root::resolve(image, path).is_err())
        .map(|(path, target)| {
            format!("the added {path} is a link to {target}, which the image does not have, so opening it fails; --add the file it points to (its real path on this machine, e.g. from `readlink -f`) in its place, or at the target too")
        })
        .collect()
}

/// Linux capability names by bit number (capability.h).
const CAPABILITIES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The capabilities a `security.capability` value grants (permitted or inheritable),
/// by name: `vfs_cap_data` is a magic word, then (permitted, inheritable) pairs of 32
/// bits, low word first.
fn capability_names(xattr: &[u8]) -> Vec<String> {
    let word = |i: usize| -> u32 {
        xattr
            .get(i * 4..i * 4 + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let bits = u64::from(word(1) | word(2)) | (u64::from(word(3) | word(4)) << 32);
    (0..64)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| match CAPABILITIES.get(b) {
            Some(n) => format!("cap_{n}"),
            None => format!("cap_{b}"),
        })
        .collect()
}

/// What the program file has on the host that an image does not keep: setuid and
/// setgid bits (the program is stored 0755) and file capabilities (layers carry no
/// extended attributes), each with what it means in the container.
fn dropped_privileges(host: &Path, app_path: &str) -> Vec<String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    if let Ok(m) = std::fs::metadata(host) {
        let bits: Vec<&str> = [(0o4000, "setuid"), (0o2000, "setgid")]
            .into_iter()
            .filter(|(b, _)| m.permissions().mode() & b != 0)
            .map(|(_, n)| n)
            .collect();
        if !bits.is_empty() {
            out.push(format!(
                "{} is {} on this machine, which the image does not keep ({app_path} is stored 0755, as nobase stores every program): in the container it runs as its user, with no more rights",
                host.display(),
                bits.join(" and ")
            ));
        }
    }
    let Ok(c) = std::ffi::CString::new(host.as_os_str().as_bytes()) else {
        return out;
    };
    let mut buf = [0u8; 64];
    // SAFETY: a NUL-terminated path and a buffer of the length given, for the call.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n > 0 {
        let caps = capability_names(&buf[..n as usize]);
        out.push(format!(
            "{} has file capabilities on this machine ({}), which image layers do not carry: in the container {app_path} has only what its user gets from the runtime (as root, the default set; as another user, none), so what needs {} may fail with \"Operation not permitted\"",
            host.display(),
            caps.join(", "),
            if caps.len() == 1 { "it" } else { "them" }
        ));
    }
    out
}

/// For a `#!` script given to build: how to package it with its interpreter.
fn script_hint(path: &Path) -> String {
    let head = crate::inspect::read_head(path).unwrap_or_default();
    let s = match crate::inspect::classify_head(&head) {
        crate::inspect::FileKind::Script(s) => s,
        crate::inspect::FileKind::Foreign(what, _) => {
            return format!(
            ". It is {what}: build it for Linux (GOOS=linux for Go, a linux target for Rust or C)"
        )
        }
        _ => return String::new(),
    };
    let script = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("script");
    // `#!/usr/bin/env python3` runs the python3 that PATH finds: the image needs that
    // program, not env (a scratch image has no python3 on any PATH for env to find).
    let via_env = (s.interpreter.rsplit('/').next() == Some("env"))
        .then(|| {
            let arg = s.argument.as_deref()?.trim();
            let arg = arg.strip_prefix("-S").map_or(arg, str::trim_start);
            let program = arg.split_whitespace().next()?;
            (!program.starts_with('-') && !program.contains('=')).then_some(program)
        })
        .flatten();
    let (build, note) = match via_env {
        Some(program) => (
            program_on_path(program),
            format!(
                "{program}, found on PATH by {} (which an image without that PATH's programs cannot do)",
                s.interpreter
            ),
        ),
        None => (s.interpreter.clone(), s.interpreter.clone()),
    };
    let name = build.rsplit('/').next().unwrap_or(&build);
    format!(
        ". It is a script for {note}: build that interpreter (if it is a program) and --add the script, with --entrypoint naming both, e.g. `nobase build {build} --add {}:/app/{script} --entrypoint '[\"/app/{name}\",\"/app/{script}\"]'`; an interpreter with a library tree (Python, Perl, Ruby) needs that tree added too (--add /usr/lib/python3.11:/usr/lib/python3.11)",
        path.display(),
    )
}

/// The `program` a `#!/usr/bin/env program` script would run here: the first on PATH
/// that is an ELF file (a pyenv or asdf shim is a script that runs another), else the
/// first, else the bare name.
fn program_on_path(program: &str) -> String {
    let found = crate::fsutil::on_path_all(program);
    let elf = |p: &&PathBuf| {
        let mut magic = [0u8; 4];
        std::fs::File::open(p)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok_and(|()| elf::has_magic(&magic))
    };
    found
        .iter()
        .find(elf)
        .or(found.first())
        .map_or_else(|| program.to_string(), |p| p.display().to_string())
}

/// Reads an executable for building: a clear error for anything that is not an ELF
/// executable nobase can package.
pub fn read_executable(path: &Path) -> Result<ElfInfo> {
    let meta = std::fs::metadata(path)
        .map_err(|e| crate::error::input_error(path, "the executable to package", e))?;
    if meta.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is a directory; name the executable to package",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let info = elf::parse_path(path).map_err(|e| match e {
        elf::ElfError::NotElf => Error::Invalid(format!(
            "{} is not an ELF executable (nobase packages compiled Linux programs; `nobase inspect {}` says what it is){}",
            path.display(),
            path.display(),
            script_hint(path)
        )),
        error => Error::Elf {
            path: path.display().to_string(),
            error,
        },
    })?;
    if !info.kind.is_executable() {
        return Err(Error::Invalid(format!(
            "{} is a {}, not an executable program; build the program that uses it (nobase bundles the libraries a program needs), or put it in an image beside one with --add {}:/DEST",
            path.display(),
            info.kind.describe(),
            path.display()
        )));
    }
    Ok(info)
}

/// The platform an executable's image declares: what its ELF header says (machine,
/// class, ARM variant), or `wanted` (`--platform`), which may name a variant or an
/// architecture the header does not, but not contradict its architecture.
pub fn platform_of(path: &Path, info: &ElfInfo, wanted: Option<&Platform>) -> Result<Platform> {
    if info.os != "linux" {
        return Err(Error::Refused(format!(
            "{} is {} {} program ({}), and containers run on Linux, whose kernel cannot start \
             it; build it for Linux (for Go: GOOS=linux)",
            path.display(),
            crate::elf::article(&info.os),
            info.os,
            info.platform().unwrap_or_else(|| info.os.clone())
        )));
    }
    match (wanted, &info.architecture) {
        (Some(w), Some(arch)) if &w.architecture != arch => Err(Error::Usage(format!(
            "--platform {w} does not fit {}: it is {} {} program ({}); an image declaring \
             {} would fail with `exec format error`",
            path.display(),
            crate::elf::article(&info.machine),
            info.machine,
            info.platform().unwrap_or_default(),
            w.architecture
        ))),
        (Some(w), _) if w.os != "linux" => Err(Error::Usage(format!(
            "--platform {w}: nobase builds Linux images; use linux/{}",
            w.architecture
        ))),
        (Some(w), _) => Ok(w.clone()),
        (None, Some(arch)) => Ok(Platform {
            architecture: arch.clone(),
            os: "linux".into(),
            variant: info.variant.clone(),
        }),
        (None, None) => Err(Error::Invalid(format!(
            "{} is for {} ({}-bit), which has no OCI architecture name; name the platform \
             with --platform os/arch[/variant] if you know it",
            path.display(),
            info.machine,
            info.class
        ))),
    }
}

/// The precise reason a dynamic executable cannot go into `FROM scratch` alone, and the
/// rebuild that fixes it for the kind of program it is.
pub fn explain_dynamic(path: &Path, info: &ElfInfo) -> String {
    let interp = info.interpreter.as_deref().unwrap_or("(none)");
    let libs = if info.needed.is_empty() {
        "no libraries".to_string()
    } else {
        format!(
            "the {} {}",
            if info.needed.len() == 1 {
                "library"
            } else {
                "libraries"
            },
            info.needed.join(", ")
        )
    };
    let fix = static_rebuild_hint(info);
    format!(
        "{} is dynamically linked: it needs its loader {interp} and {libs}, which a scratch image does not have \
         (this is what makes `exec … no such file or directory` in FROM scratch). \
         Rebuild it statically ({fix}) or let nobase bundle them (--bundle auto)",
        path.display()
    )
}

/// How to rebuild this kind of binary statically.
pub fn static_rebuild_hint(info: &ElfInfo) -> &'static str {
    let musl = info
        .interpreter
        .as_deref()
        .is_some_and(|i| i.contains("ld-musl"));
    let compiler = info.compiler.as_deref().unwrap_or("");
    if info.is_go() {
        "CGO_ENABLED=0 go build"
    } else if compiler.contains("rustc") {
        "RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu, or a musl target"
    } else if musl {
        "musl-gcc -static"
    } else {
        "gcc -static, or -static-pie"
    }
}

/// Builds the image described by `plan`, writing its blobs into `layout`.
pub fn build(plan: &BuildPlan, layout: &Layout) -> Result<Built> {
    let info = read_executable(&plan.binary)?;
    let platform = platform_of(&plan.binary, &info, plan.platform.as_ref())?;
    if info.kind == Kind::Dynamic && plan.bundle == Bundle::Never {
        return Err(Error::Refused(explain_dynamic(&plan.binary, &info)));
    }
    let base = plan
        .binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{} has no usable file name; give the image path with --path",
                plan.binary.display()
            ))
        })?;
    // `--path /usr/local/bin/` keeps the name, as `--add`'s DEST ending in / does.
    let app_path = match plan.app_path.as_deref() {
        Some(dir) if dir.ends_with('/') => format!("{dir}{base}"),
        Some(p) => p.to_string(),
        None => format!("/app/{base}"),
    };
    let app_path = format!("/{}", tree::normalize(&app_path)?);

    let mut app = ImageTree::new();
    // A link named as the executable (`/usr/bin/python3` → `python3.11`, `/usr/bin/go` →
    // `../lib/go/bin/go`) is followed, as `docker build`'s COPY follows its source: the
    // image gets the program itself under the name given (a multi-call program still sees
    // that name as argv[0]), not a link to a file the image does not have.
    let real = std::fs::canonicalize(&plan.binary)
        .map_err(|e| crate::error::input_error(&plan.binary, "the executable to package", e))?;
    app.add_host(&real, &app_path)?;
    // The program is executable whatever its mode on the host.
    if let Some(e) = app.get(&app_path[1..]).cloned() {
        app.insert(&app_path, tree::Entry { mode: 0o755, ..e })?;
    }
    let program = host_inode(&app, &app_path);
    for (src, dest) in &plan.adds {
        let dest = if dest.ends_with('/') {
            let name = src
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::Usage(format!("{} has no file name", src.display())))?;
            format!("{dest}{name}")
        } else {
            dest.clone()
        };
        app.add_host(src, &dest)?;
        // An --add that lands on the program (its own file added again is fine) would
        // leave an image whose entrypoint is something else.
        if host_inode(&app, &app_path) != program {
            return Err(Error::Usage(format!(
                "--add {}:{dest} puts another file at {app_path}, where the program goes; add it elsewhere, or put the program at another path (--path)",
                src.display()
            )));
        }
    }
    if let Some(w) = plan.workdir.as_deref().map(working_dir).transpose()? {
        if w != "/" && app.get(&w[1..]).is_none() {
            // As a Dockerfile's WORKDIR under USER (BuildKit): owned by the user, so a
            // program running as 1000 may write where it starts.
            let (uid, gid) = workdir_owner(plan);
            app.insert(
                &w,
                tree::Entry {
                    node: tree::Node::Dir,
                    mode: 0o755,
                    uid,
                    gid,
                },
            )?;
        }
    }

    let bundled = if info.kind == Kind::Dynamic {
        Some(bundle_for(plan, &info, &app_path, &mut app)?)
    } else {
        None
    };
    let extra_layers = if plan.with.is_empty() {
        Vec::new()
    } else {
        let sources = extras_sources(plan)?;
        plan.with
            .iter()
            .map(|e| extras::make(*e, &sources))
            .collect::<Result<Vec<_>>>()?
    };

    let opts = LayerOptions {
        compression: plan.compression,
        level: plan.compression_level,
        mtime: plan.epoch,
        threads: plan.threads,
    };
    let created = image::rfc3339(plan.epoch);
    let mut config = ImageConfig {
        created: Some(created.clone()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: container_config(plan, &app_path, &extra_layers)?,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        },
        history: Vec::new(),
        other: BTreeMap::new(),
    };
    let mut stack: Vec<&ImageTree> = extra_layers.iter().map(|x| &x.tree).collect();
    stack.extend(bundled.as_ref().map(|b| &b.libs));
    // The bundle settled the application over its libraries already (its self-check
    // needs that); only the --with layers below are left to go through.
    let app = if extra_layers.is_empty() {
        app
    } else {
        settle(app, &stack)?
    };
    stack.push(&app);
    let dangling = with_stack(&stack, &mut |root| dangling_links(&app, root));
    // Python's `_ssl` (added with its stdlib) links libssl where python3 does not.
    let tls_hint = bundled
        .as_ref()
        .and_then(|b| crate::check::warn::tls_of(&b.added_libraries));
    // The self-check reads the trees, not the layers: it runs beside the layer writing
    // (on a large Go program its scan of the function names is a tenth of the build).
    let (layers, report) = std::thread::scope(|s| {
        let check = s.spawn(|| {
            background_priority();
            self_check(
                &stack,
                &app_path,
                &config,
                plan.check,
                tls_hint,
                bundled.is_none(),
            )
        });
        let layers = write_layers(
            &extra_layers,
            bundled.as_ref(),
            &app,
            &app_path,
            &opts,
            layout,
        );
        let report = check
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (layers, report)
    });
    let (layers, report) = (layers?, report?);
    config.rootfs.diff_ids = layers.iter().map(|l| l.layer.diff_id.clone()).collect();
    config.history = layers
        .iter()
        .map(|l| History {
            created: Some(created.clone()),
            created_by: Some(l.created_by.clone()),
            ..History::default()
        })
        .collect();
    let descriptors: Vec<_> = layers.iter().map(|l| l.layer.descriptor.clone()).collect();
    Ok(Built {
        image: assemble(layout, &config, &descriptors)?,
        binary: info,
        layers,
        bundled,
        report,
        notices: dropped_privileges(&real, &app_path)
            .into_iter()
            .map(|m| ("dropped-privileges", m))
            .chain(dangling.into_iter().map(|m| ("dangling-link", m)))
            .collect(),
    })
}

/// The owner of a working directory `build -w` makes: `--user`'s ids, numbers or the
/// names `--with passwd` defines (a user's own group when none is given, as its passwd
/// line says); root for names nobase cannot know at build time.
fn workdir_owner(plan: &BuildPlan) -> (u32, u32) {
    let Some(user) = plan.user.as_deref() else {
        return (0, 0);
    };
    let known = |name: &str| -> Option<u32> {
        if let Ok(n) = name.parse() {
            return Some(n);
        }
        if !plan.with.contains(&extras::Extra::Passwd) {
            return None;
        }
        match name {
            "root" => Some(0),
            "nobody" => Some(extras::NOBODY_UID),
            "nonroot" => Some(extras::NONROOT_UID),
            _ => None,
        }
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let Some(uid) = known(u) else {
        return (0, 0);
    };
    let gid = match g {
        Some(g) => known(g).unwrap_or(0),
        // A name's own group (nobase's passwd gives each its own); a bare number has
        // none, and runs with group 0 as under Docker.
        None if u.parse::<u32>().is_err() => uid,
        None => 0,
    };
    (uid, gid)
}

/// The image's working directory as `-w` gives it: an image path, normalized, `/` (Docker's
/// default) included.
fn working_dir(w: &str) -> Result<String> {
    if w.is_empty() {
        return Err(Error::Usage(
            "--workdir is empty; give the directory the program starts in, e.g. /app".into(),
        ));
    }
    if w.split('/').all(|c| c.is_empty() || c == ".") {
        return Ok("/".to_string());
    }
    Ok(format!("/{}", tree::normalize(w)?))
}

/// Lowers the calling thread's scheduling priority (nice 10), so that a thread working
/// beside the compressors takes what CPU they leave: otherwise a compression worker that
/// starts while it runs can wait milliseconds for a core, which is most of a small
/// build. Linux gives each thread its own nice value; failure only costs that time.
fn background_priority() {
    // SAFETY: setpriority on this thread's own id; no memory is involved.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
    }
}

/// The host file (device and inode) an entry of `tree` takes its bytes from.
fn host_inode(tree: &ImageTree, path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    match tree.get(path.trim_start_matches('/')).map(|e| &e.node) {
        Some(tree::Node::File {
            content: tree::Content::Host { path, .. },
            ..
        }) => std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino())),
        _ => None,
    }
}

/// Writes the image's layers, bottom first: runtime data (`--with`), then the bundled
/// libraries, then the application.
fn write_layers(
    extra_layers: &[extras::ExtraLayer],
    bundled: Option<&bundle::Bundled>,
    app: &ImageTree,
    app_path: &str,
    opts: &LayerOptions,
    layout: &Layout,
) -> Result<Vec<LayerReport>> {
    let mut layers = Vec::new();
    // Runtime data at the bottom: it depends on nothing else in the image, so every
    // image built with the same --with shares these blobs.
    for x in extra_layers {
        layers.push(LayerReport {
            created_by: format!("nobase build {}", x.extra.flag()),
            files: x.tree.file_count(),
            file_bytes: x.tree.file_bytes(),
            layer: layer::write_layer(&x.tree, opts, layout)?,
        });
    }
    // Libraries below the application: the layer depends only on the closure, so a
    // rebuilt application with the same libraries reuses its blob. None when the files
    // added with the program supply the loader and every library.
    if let Some(b) = bundled.filter(|b| !b.libs.is_empty()) {
        let l = layer::write_layer(&b.libs, opts, layout)?;
        layers.push(bundle::layer_report(b, l));
    }
    layers.push(LayerReport {
        created_by: format!("nobase build {app_path}"),
        files: app.file_count(),
        file_bytes: app.file_bytes(),
        layer: layer::write_layer(app, opts, layout)?,
    });
    Ok(layers)
}

/// The application's entries as they land over the layers `lower` (bottom first):
/// through their symlinked directories, as Docker's COPY and unpackers put them.
pub(crate) fn settle(app: ImageTree, lower: &[&ImageTree]) -> Result<ImageTree> {
    if lower.is_empty() {
        return Ok(app);
    }
    let mut entries = Some(
        app.entries()
            .map(|(p, e)| (format!("/{p}"), e.clone()))
            .collect::<Vec<_>>(),
    );
    // with_stack calls its function once: the entries move into it.
    with_stack(lower, &mut |below| {
        tree::place(below, entries.take().unwrap_or_default(), None, true)
    })
    .map_err(|e| Error::Usage(format!("{e} (in the layers below the application's)")))
}

/// Runs `f` on the trees of `layers` (bottom first) stacked as the image's layers will
/// be: each one over those below it.
fn with_stack<R>(layers: &[&ImageTree], f: &mut dyn FnMut(&dyn Root) -> R) -> R {
    match layers.split_last() {
        None => f(&ImageTree::new()),
        Some((top, [])) => f(*top),
        Some((top, lower)) => with_stack(lower, &mut |l| {
            f(&tree::Overlay {
                upper: *top,
                lower: l,
            })
        }),
    }
}

/// The start-up analysis of `nobase check`, run on the trees about to become layers:
/// with `refuse`, a build never writes an image that would not start. The report's
/// warnings (CA certificates, zoneinfo, NSS, /tmp) are the build's to show.
fn self_check(
    layers: &[&ImageTree],
    app_path: &str,
    config: &ImageConfig,
    refuse: bool,
    tls_hint: Option<String>,
    every_object: bool,
) -> Result<Option<crate::check::Report>> {
    // A bundle resolved what the files added with a dynamic program need, and said what
    // it could not find; beside a static program nothing did.
    let opts = crate::check::Options {
        tls_hint,
        every_object,
        platform_fix: None,
    };
    let mut report = match with_stack(layers, &mut |root| {
        crate::check::check_with(root, app_path, config, &opts)
    }) {
        Ok(r) => r,
        // --no-check: an image the analysis cannot read is still written.
        Err(_) if !refuse => return Ok(None),
        Err(e) => return Err(e),
    };
    if refuse {
        refuse_if_broken(&report)?;
    }
    // The bundle's blind spots said the same before, with the host file that fixes each.
    report
        .warnings
        .retain(|w| w.code != crate::check::WarningCode::RunTimeLoad);
    Ok(Some(report))
}

/// Refuses an image that `nobase check` says would not start, naming every problem;
/// `root` is its filesystem as it will be. Every builder runs this before writing.
/// Its report, for the warnings.
pub fn check_before_writing(
    root: &dyn Root,
    name: &str,
    config: &ImageConfig,
    opts: &crate::check::Options,
) -> Result<crate::check::Report> {
    let report = crate::check::check_with(root, name, config, opts)?;
    refuse_if_broken(&report)?;
    Ok(report)
}

/// The refusal for a report that says the image would not start.
fn refuse_if_broken(report: &crate::check::Report) -> Result<()> {
    if report.ok {
        return Ok(());
    }
    let problems: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
    Err(Error::Refused(format!(
        "self-check failed: the image would not start: {} (--no-check writes it anyway)",
        problems.join("; and ")
    )))
}

/// Bundles the loader and libraries of a dynamic executable from the host or the
/// sysroot, adding the application's private libraries to `app`.
fn bundle_for(
    plan: &BuildPlan,
    info: &ElfInfo,
    app_path: &str,
    app: &mut ImageTree,
) -> Result<bundle::Bundled> {
    let base = source_root(plan.sysroot.as_deref())?;
    let source = crate::root::HostRoot::new(&base);
    // The executable is resolved where it lies when it lies inside the source tree (so
    // `$ORIGIN` finds its neighbours there); otherwise at its image path.
    let exe_in_source = std::fs::canonicalize(&plan.binary).ok().and_then(|p| {
        p.strip_prefix(&base)
            .ok()
            .and_then(|r| r.to_str())
            .map(|r| format!("/{r}"))
    });
    let req = bundle::Request {
        source: &source,
        exe_in_source,
        app_path,
        info,
        library_path: plan
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "LD_LIBRARY_PATH")
            .map(|(_, v)| v.clone()),
        cwd: match &plan.workdir {
            Some(w) => working_dir(w)?,
            None => "/".to_string(),
        },
        check: plan.check,
        nsswitch: plan
            .with
            .contains(&extras::Extra::Passwd)
            .then_some(extras::NSSWITCH),
    };
    bundle::bundle(&req, app).map_err(|e| match e {
        Error::Refused(m)
            if info.architecture.as_deref()
                != Some(image::host_platform().architecture.as_str())
                && plan.sysroot.is_none() =>
        {
            Error::Refused(format!(
                "{m} ({} is {} {} program: give --sysroot with {} {} tree, e.g. Debian's /usr/{}; \
                 with several executables, --sysroot {}=DIR)",
                plan.binary.display(),
                crate::elf::article(&info.machine),
                info.machine,
                crate::elf::article(&info.machine),
                info.machine,
                crate::loader::Arch::of(info)
                    .triplet()
                    .unwrap_or("<triplet>"),
                info.architecture.as_deref().unwrap_or("ARCH")
            ))
        }
        e => e,
    })
}

/// Where `--with` data comes from: the sysroot first (when given), then the host.
fn extras_sources(plan: &BuildPlan) -> Result<Vec<crate::root::HostRoot>> {
    let mut out = Vec::new();
    if let Some(s) = &plan.sysroot {
        out.push(crate::root::HostRoot::new(source_root(Some(s))?));
    }
    out.push(crate::root::HostRoot::new("/"));
    Ok(out)
}

/// The tree libraries and `--with` data come from: `sysroot` made absolute (it must be
/// a directory), or the host's `/`.
pub(crate) fn source_root(sysroot: Option<&Path>) -> Result<PathBuf> {
    let Some(s) = sysroot else {
        return Ok(PathBuf::from("/"));
    };
    let base = std::fs::canonicalize(s)
        .map_err(|e| crate::error::input_error(s, "the --sysroot directory", e))?;
    if !base.is_dir() {
        return Err(Error::Usage(format!(
            "sysroot {} is not a directory",
            base.display()
        )));
    }
    Ok(base)
}

fn container_config(
    plan: &BuildPlan,
    app_path: &str,
    extra_layers: &[extras::ExtraLayer],
) -> Result<ContainerConfig> {
    let mut env: Vec<String> = Vec::new();
    if !plan.env.iter().any(|(k, _)| k == "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    for (k, v) in extra_layers.iter().flat_map(|x| &x.env) {
        if !plan.env.iter().any(|(u, _)| u == k) {
            env.push(format!("{k}={v}"));
        }
    }
    env.extend(plan.env.iter().map(|(k, v)| format!("{k}={v}")));
    let ports = plan
        .expose
        .iter()
        .map(|p| (p.clone(), EmptyObject {}))
        .collect::<BTreeMap<_, _>>();
    Ok(ContainerConfig {
        user: plan.user.clone(),
        exposed_ports: (!ports.is_empty()).then_some(ports),
        env: Some(env),
        entrypoint: Some(
            plan.entrypoint
                .clone()
                .unwrap_or_else(|| vec![app_path.to_string()]),
        ),
        cmd: plan.cmd.clone(),
        volumes: None,
        working_dir: plan.workdir.as_deref().map(working_dir).transpose()?,
        labels: (!plan.labels.is_empty()).then(|| plan.labels.clone()),
        stop_signal: None,
        other: BTreeMap::new(),
    })
}

/// Parses `PORT[/PROTO]` or `FIRST-LAST[/PROTO]` as `docker run --expose` and
/// Dockerfile `EXPOSE` do: the protocol defaults to tcp and is case-blind, and a range
/// is one entry per port (`8000-8002` → `8000/tcp`, `8001/tcp`, `8002/tcp`).
pub fn parse_ports(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let bad = || {
        Error::Usage(format!(
            "invalid port {spec:?}: use PORT[/tcp|udp|sctp] or FIRST-LAST[/PROTO], ports in 1..65535"
        ))
    };
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if lo == 0 || hi < lo || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Parses an `--entrypoint` value: a JSON array of strings, or one program path.
pub fn parse_entrypoint(e: &str) -> Result<Vec<String>> {
    if e.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<String>>(e).map_err(|err| {
            Error::Usage(format!(
                "invalid --entrypoint {e:?}: not a JSON array of strings ({err})"
            ))
        })
    } else if e.is_empty() {
        Err(Error::Usage("--entrypoint needs a program".into()))
    } else {
        Ok(vec![e.to_string()])
    }
}

/// Parses `KEY=VALUE` (env, labels).
pub fn parse_key_value(s: &str, what: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::Usage(format!("invalid {what} {s:?}: use KEY=VALUE"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_capabilities_read_by_name() {
        // ping's cap_net_raw=ep as setcap writes it (VFS_CAP_REVISION_2, effective bit).
        let mut x = vec![0x01, 0x00, 0x00, 0x02];
        x.extend_from_slice(&(1u32 << 13).to_le_bytes());
        x.extend_from_slice(&[0; 12]);
        assert_eq!(super::capability_names(&x), ["cap_net_raw"]);
        // cap_net_bind_service in the inheritable set, cap_bpf (39) in the high word.
        let mut y = vec![0x01, 0x00, 0x00, 0x02];
        y.extend_from_slice(&0u32.to_le_bytes());
        y.extend_from_slice(&(1u32 << 10).to_le_bytes());
        y.extend_from_slice(&(1u32 << 7).to_le_bytes());
        y.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            super::capability_names(&y),
            ["cap_net_bind_service", "cap_bpf"]
        );
        assert!(super::capability_names(&[1, 2]).is_empty());
    }

    use super::*;

    #[test]
    fn ports_and_pairs() {
        assert_eq!(parse_ports("80").unwrap(), ["80/tcp"]);
        assert_eq!(parse_ports("53/UDP").unwrap(), ["53/udp"]);
        assert_eq!(
            parse_ports("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        for bad in ["0", "x", "9-8", "70000", "80/http", "", "0-2"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_key_value("A=b=c", "env").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert!(parse_key_value("=x", "env").is_err());
        assert!(parse_key_value("x", "env").is_err());
    }
}
