//! Will this image start? The analysis runs over an image's merged filesystem (any
//! [`Root`]) and its config, and mirrors what umoci, runc and the kernel do, in their
//! order: the command and working directory (1), the user (2), the file the command
//! names (3), its format — `#!` interpreters recursively, ELF machine and class (4), the
//! ELF loader (5), and every library and symbol version the loader will need (6). It
//! returns findings, not errors: "checked, and it will not start" is a [`Report`] with
//! problems; "could not check" (an unreadable image) is an [`Error`].

mod objects;
mod runtime_data;
mod user;
pub(crate) mod warn;

pub use user::{Grant, Identity, UserError};

use crate::build::extras::Extra;
use crate::elf::{self, ElfInfo};
use crate::error::{Error, Result};
use crate::image::{ImageConfig, Platform, PlatformImage};
use crate::imagefs::{self, ImageFs};
use crate::inspect::{parse_shebang, SHEBANG_BUF};
use crate::loader::{self, Outcome};
use crate::oci::Blobs;
use crate::root::{self, FileType, Meta, ResolveError, Root};
use crate::tree::lexical;

/// Docker's and umoci's PATH when the image sets none.
pub use crate::build::DEFAULT_PATH;

/// Most `#!` scripts the kernel follows in one exec (binfmt's recursion limit).
const MAX_SCRIPT_DEPTH: usize = 5;

/// What stops an image from starting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// Neither Entrypoint nor Cmd.
    NoCommand,
    /// The command, or a path it needs, does not exist.
    NotFound,
    /// The command is a directory, device or FIFO.
    NotRegularFile,
    /// No execute permission for the process's user.
    NotExecutable,
    /// Neither ELF nor `#!` script, or a corrupt or truncated ELF.
    ExecFormat,
    /// An ELF for another machine or class than the image's platform.
    WrongArchitecture,
    /// A script's `#!` interpreter or an ELF's PT_INTERP loader is absent.
    MissingInterpreter,
    /// A DT_NEEDED library does not resolve under the image's loader rules.
    MissingLibrary,
    /// A library lacks a symbol version (`GLIBC_2.34`) a program requires.
    MissingSymbolVersion,
    /// An object bound at start (BIND_NOW) requires a symbol no loaded object defines.
    MissingSymbol,
    /// `User` names a user the image's `/etc/passwd` does not have.
    UnknownUser,
    /// `User` names a group the image's `/etc/group` does not have.
    UnknownGroup,
    /// The working directory exists but is not a directory.
    BadWorkdir,
    /// A path runs through more than 40 symlinks.
    SymlinkLoop,
    /// A Python interpreter whose standard library is not where it looks: it starts
    /// and stops at once with `No module named 'encodings'`.
    NoPythonLibrary,
    /// An Env entry that is no `NAME=VALUE`, which runc refuses.
    BadEnv,
    /// `/proc`, `/sys` or `/dev` is not a directory, where the runtime mounts.
    BadMountpoint,
}

/// What may go wrong after the program has started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningCode {
    /// The working directory does not exist (the runtime creates it, empty).
    MissingWorkdir,
    /// TLS is likely, and there are no CA certificates.
    NoCaCertificates,
    /// A Go program loads time zones, and there is no zoneinfo.
    NoZoneinfo,
    /// glibc name service lookups without `/etc/nsswitch.conf`.
    NoNsswitch,
    /// Go's `os/user` without `/etc/passwd`.
    NoPasswd,
    /// No `/tmp` the process can write to.
    NoWritableTmp,
    /// Something the program likely loads at run time (`dlopen`: an NSS module, gconv
    /// modules, `libgcc_s`, a library named in its strings) is not in the image.
    RunTimeLoad,
    /// Another ELF object in the image (a module, plugin or helper program) needs a
    /// library or loader the image has nowhere.
    UnloadableObject,
    /// The environment names a locale (`LANG=C.UTF-8`) a glibc program sets, and the
    /// image has no compiled locale of that name.
    NoLocale,
    /// A Perl interpreter whose modules (`strict.pm`) are in none of the directories its
    /// @INC names: it starts, and any script that uses a module stops.
    NoPerlLibrary,
    /// Root may execute, read or enter what the start needs only through
    /// CAP_DAC_OVERRIDE, which runtimes without capabilities do not give.
    DacOverride,
}

impl WarningCode {
    /// The `nobase build --with` that fixes it, when one does.
    pub fn with(self) -> Option<Extra> {
        match self {
            WarningCode::MissingWorkdir => None,
            WarningCode::NoCaCertificates => Some(Extra::Certs),
            WarningCode::NoZoneinfo => Some(Extra::Tzdata),
            WarningCode::NoNsswitch | WarningCode::NoPasswd => Some(Extra::Passwd),
            WarningCode::NoWritableTmp => Some(Extra::Tmp),
            WarningCode::RunTimeLoad
            | WarningCode::UnloadableObject
            | WarningCode::DacOverride
            | WarningCode::NoLocale
            | WarningCode::NoPerlLibrary => None,
        }
    }
}

/// One reason the image will not start.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// What kind of problem.
    pub code: Code,
    /// The path in the image it is about, if one.
    pub path: Option<String>,
    /// One sentence naming the object and the cause, and what to do.
    pub message: String,
}

/// Something that does not stop the start but will likely hurt later.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    /// What kind of warning.
    pub code: WarningCode,
    /// What and why, and what to do.
    pub message: String,
    /// The `nobase build --with` that fixes it (`certs`), when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<Extra>,
}

/// The answer for one image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// True when nothing stops the image from starting.
    pub ok: bool,
    /// The image, as the user named it.
    pub image: String,
    /// The platform checked (`linux/amd64`): one of a multi-platform image's.
    pub platform: String,
    /// Entrypoint followed by Cmd.
    pub command: Vec<String>,
    /// Why it will not start (empty when `ok`).
    pub problems: Vec<Problem>,
    /// What may go wrong after it starts.
    pub warnings: Vec<Warning>,
    /// Each step that passed, in the order the runtime takes them (`nobase check -v`;
    /// not in `--json`, whose fields are fixed).
    #[serde(skip)]
    pub passed: Vec<String>,
}

/// Reads `image`'s layers from `blobs` and checks it. Errors mean the image could not
/// be read (exit 3), never that it will not start.
pub fn check_image(
    name: &str,
    image: &PlatformImage,
    blobs: &dyn Blobs,
    limits: imagefs::walk::Limits,
) -> Result<Report> {
    let fs = ImageFs::load(
        name,
        image,
        blobs,
        &imagefs::Options {
            limits,
            ..imagefs::Options::default()
        },
    )?;
    let opts = Options {
        every_object: true,
        ..Options::default()
    };
    check_with(&fs, name, &image.config, &opts)
}

/// Checks whether the image whose filesystem is `root` and config is `config` will
/// start. `name` names the image in the report.
pub fn check(root: &dyn Root, name: &str, config: &ImageConfig) -> Result<Report> {
    check_with(root, name, config, &Options::default())
}

/// What a check is told, or asked to do, beyond the entrypoint.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Why the image likely makes TLS connections when its entrypoint's closure does
    /// not show it, as a build knows (files added with it link libssl: Python's `_ssl`).
    pub tls_hint: Option<String>,
    /// Also look at every other ELF object in the image (modules, plugins, helper
    /// programs) for a library the image has nowhere (`unloadable-object`). A build of
    /// a dynamic program resolves its added objects itself; `run` needs only problems.
    pub every_object: bool,
    /// How the command building the image chooses its platform, for the advice on a
    /// program of another architecture: `--platform` unless said (a Dockerfile's is its
    /// `FROM --platform=` and the build arguments that pick the program).
    pub platform_fix: Option<&'static str>,
}

/// [`check`] with [`Options`].
pub fn check_with(
    root: &dyn Root,
    name: &str,
    config: &ImageConfig,
    opts: &Options,
) -> Result<Report> {
    let c = &config.config;
    let mut command: Vec<String> = c.entrypoint.clone().unwrap_or_default();
    command.extend(c.cmd.clone().unwrap_or_default());
    let mut platform = config.platform();
    if platform.architecture.is_empty() {
        // A config that names no architecture runs wherever it is started; judge it
        // against this machine, as the runtime here would.
        platform = crate::image::host_platform();
    }
    let env = c.env.clone().unwrap_or_default();
    let mut ck = Checker {
        root,
        platform,
        cwd: "/".into(),
        id: Identity {
            spec: String::new(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        },
        env,
        problems: Vec::new(),
        warnings: Vec::new(),
        programs: Vec::new(),
        executed: Vec::new(),
        passed: Vec::new(),
        tls_hint: opts.tls_hint.clone(),
        platform_fix: opts.platform_fix.unwrap_or("--platform"),
        overrides: Vec::new(),
    };
    // What the runtime refuses before looking at any file.
    if !ck.platform.os.is_empty() && ck.platform.os != "linux" {
        let msg = format!(
            "the image's config says its OS is {}, so a Linux runtime does not start it (containerd and Docker pick and run images by OS); build it as linux/{}",
            ck.platform.os, ck.platform.architecture
        );
        ck.problem(Code::WrongArchitecture, None, msg);
    }
    if let Some(bad) = ck
        .env
        .iter()
        .find(|e| e.split_once('=').is_none_or(|(k, _)| k.is_empty()))
        .cloned()
    {
        ck.problem(
            Code::BadEnv,
            None,
            format!("the image's Env holds {bad:?}, which is no NAME=VALUE, so runc refuses to start the container; remove it"),
        );
    }
    // Where the runtime mounts proc, sysfs and a tmpfs for /dev: none may be a file if
    // the image has it ("proc must be mounted on ordinary directory").
    for (dir, fs) in [("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "a tmpfs")] {
        let kind = ck.root.lstat(dir).map(|m| m.kind);
        // (A symbolic link is followed inside the root, as runc follows it.)
        if let Some(kind) = kind.filter(|k| matches!(k, FileType::File | FileType::Other)) {
            let kind = match kind {
                FileType::File => "file",
                _ => "device, FIFO or socket",
            };
            ck.problem(
                Code::BadMountpoint,
                Some(dir),
                format!("{dir} is a {kind} in the image, and the runtime mounts {fs} there, which needs a directory, so it refuses to start the container; remove it, or make it a directory"),
            );
        }
    }
    ck.workdir(c.working_dir.as_deref().unwrap_or(""));
    ck.user(c.user.as_deref().unwrap_or(""));
    match command.first() {
        None => ck.problem(
            Code::NoCommand,
            None,
            "the image has neither an Entrypoint nor a Cmd, so there is nothing to start; set one (nobase build --entrypoint or --cmd, or `umoci config --config.entrypoint`)".into(),
        ),
        Some(arg0) => {
            if let Some((shown, real)) = ck.look_path(arg0) {
                ck.exec(&shown, &real, 0)?;
            }
        }
    }
    warn::all(&mut ck)?;
    runtime_data::warn(&mut ck)?;
    if !ck.overrides.is_empty() && ck.problems.is_empty() {
        let what = std::mem::take(&mut ck.overrides).join(", ");
        ck.warning(
            WarningCode::DacOverride,
            format!("root may {what} only through CAP_DAC_OVERRIDE, not by the mode bits: it starts under Docker, Podman and nobase run, which give root that capability, and fails with `permission denied` where root has none (runc's default spec and umoci's bundles, a Kubernetes pod that drops ALL capabilities); give root's class the permission (chmod a+rx) or the files to root"),
        );
    }
    // Once the program starts: before that, its own problems say what is missing, and
    // the objects it would have loaded would only say it again as helpers' faults.
    if opts.every_object && ck.problems.is_empty() {
        objects::warn(&mut ck);
    }
    Ok(Report {
        ok: ck.problems.is_empty(),
        image: name.to_string(),
        platform: ck.platform.to_string(),
        command,
        problems: ck.problems,
        warnings: ck.warnings,
        passed: ck.passed,
    })
}

/// The state of one check.
pub(crate) struct Checker<'a> {
    pub(crate) root: &'a dyn Root,
    pub(crate) platform: Platform,
    /// The process's working directory (canonical when it exists).
    pub(crate) cwd: String,
    pub(crate) id: Identity,
    pub(crate) env: Vec<String>,
    problems: Vec<Problem>,
    pub(crate) warnings: Vec<Warning>,
    /// Every ELF object that will be mapped.
    pub(crate) programs: Vec<Loaded>,
    /// Every file the start-up executes (the command, `#!` interpreters), by path in the
    /// image, whether or not it got far enough to be mapped.
    pub(crate) executed: Vec<String>,
    /// The steps that passed, in words.
    passed: Vec<String>,
    /// Why the image likely makes TLS connections, as a build knows it.
    pub(crate) tls_hint: Option<String>,
    /// What root reaches only through CAP_DAC_OVERRIDE (`execute /app/x (mode 0750,
    /// owner 1000:1000)`).
    overrides: Vec<String>,
    /// How the image's platform is chosen, for advice (`--platform`).
    platform_fix: &'static str,
}

/// An ELF object the process will map: the executable, its loader, its libraries.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    /// How messages name it (as the command, PT_INTERP or DT_NEEDED found it).
    pub(crate) shown: String,
    /// Its canonical path in the image.
    pub(crate) path: String,
    /// What it is.
    pub(crate) info: ElfInfo,
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::File => "regular file",
        FileType::Dir => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Other => "device, FIFO or socket",
    }
}

impl Checker<'_> {
    fn problem(&mut self, code: Code, path: Option<&str>, message: String) {
        self.problems.push(Problem {
            code,
            path: path.map(str::to_string),
            message,
        });
    }

    fn pass(&mut self, step: String) {
        self.passed.push(step);
    }

    /// Notes that root may `verb` `path` only through CAP_DAC_OVERRIDE.
    fn overridden(&mut self, verb: &str, path: &str, m: &Meta) {
        let what = format!(
            "{verb} {path} (mode {:04o}, owner {}:{})",
            m.mode, m.uid, m.gid
        );
        if !self.overrides.contains(&what) {
            self.overrides.push(what);
        }
    }

    pub(crate) fn warning(&mut self, code: WarningCode, message: String) {
        self.warnings.push(Warning {
            code,
            message,
            with: code.with(),
        });
    }

    /// The value of `key` in the config's Env (the first one wins, as in Go's runtime).
    pub(crate) fn getenv(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// An absolute path for `p` as the process would see it (relative to its cwd).
    fn absolute(&self, p: &str) -> String {
        if p.starts_with('/') {
            p.to_string()
        } else if self.cwd == "/" {
            format!("/{p}")
        } else {
            format!("{}/{p}", self.cwd)
        }
    }

    /// How `path` (which failed to resolve with `err`) fails, in words: the symlink it
    /// is, and the missing or non-directory component.
    fn why_unresolved(&self, path: &str, err: &ResolveError) -> String {
        let link = root::resolve_nofollow(self.root, path)
            .ok()
            .and_then(|p| self.root.readlink(&p));
        let detail = match err {
            ResolveError::NotFound { at } if at == &lexical(path) => {
                "does not exist in the image".to_string()
            }
            ResolveError::NotFound { at } => {
                format!("does not exist in the image ({at} is missing)")
            }
            ResolveError::NotDir { at } => {
                format!("cannot exist in the image ({at} is not a directory)")
            }
            ResolveError::Loop { at } => format!(
                "runs through more than {} symbolic links in the image (a loop at {at})",
                root::MAX_HOPS
            ),
        };
        match link {
            Some(t) => format!("is a symbolic link to {t:?}, which {detail}"),
            None => detail,
        }
    }

    fn unresolved_code(err: &ResolveError) -> Code {
        match err {
            ResolveError::Loop { .. } => Code::SymlinkLoop,
            _ => Code::NotFound,
        }
    }

    /// Step 1b: the working directory. runc creates a missing one (`mkdir -p` inside the
    /// root), so only something in the way is a problem.
    fn workdir(&mut self, wd: &str) {
        let shown = if wd.is_empty() { "/" } else { wd };
        let abs = lexical(&format!("/{}", shown.trim_start_matches('/')));
        match root::resolve(self.root, &abs) {
            Ok(real) => match self.root.lstat(&real) {
                Some(m) if m.kind == FileType::Dir => {
                    self.pass(format!("working directory {shown} is a directory"));
                    self.cwd = real
                }
                Some(m) => self.problem(
                    Code::BadWorkdir,
                    Some(shown),
                    format!(
                        "the working directory {shown} is a {} in the image, not a directory, so the runtime cannot enter or create it (runc: mkdir {shown}: not a directory); set WorkingDir to a directory or remove that file",
                        kind_name(m.kind)
                    ),
                ),
                None => self.cwd = abs,
            },
            Err(ResolveError::NotFound { .. }) => {
                self.cwd = abs;
                self.warning(
                    WarningCode::MissingWorkdir,
                    format!("the working directory {shown} does not exist in the image; runc and Docker create it, empty and owned by root, when the container starts"),
                );
            }
            Err(e) => {
                let why = self.why_unresolved(&abs, &e);
                self.problem(
                    Code::BadWorkdir,
                    Some(shown),
                    format!("the working directory {shown} {why}, so the runtime cannot create it; set WorkingDir to a directory the image has"),
                );
            }
        }
    }

    /// Step 2: the user, as umoci and runc resolve it.
    fn user(&mut self, spec: &str) {
        match user::resolve(self.root, spec) {
            // (uid_t)-1 means "no change" to the kernel's setuid calls: no process can
            // have it, and runc refuses it.
            Ok(id) if id.uid == u32::MAX || id.gid == u32::MAX => self.problem(
                Code::UnknownUser,
                None,
                format!("the image runs as {}:{}, and 4294967295 is (uid_t)-1, which no process can have, so the runtime refuses to start it; use another uid", id.uid, id.gid),
            ),
            Ok(id) => {
                self.pass(format!("runs as {}", id.describe()));
                self.id = id
            }
            Err(UserError::UnknownUser(u)) => {
                // The users `--with passwd` writes: say so rather than "add the user".
                let fix = if ["nonroot", "nobody", "root"].contains(&u.as_str()) {
                    format!("build with `nobase build {}`, which writes root, nobody and nonroot (65532), or use a numeric uid", Extra::Passwd.flag())
                } else {
                    "use a numeric uid (User 1000:1000) or add the user to /etc/passwd".to_string()
                };
                self.problem(
                    Code::UnknownUser,
                    Some("/etc/passwd"),
                    format!("the image runs as user {u:?}, which its /etc/passwd does not list (or it has no /etc/passwd), so the runtime cannot start it (no matching entries in passwd file); {fix}"),
                )
            }
            Err(UserError::UnknownGroup { group: g, .. }) => self.problem(
                Code::UnknownGroup,
                Some("/etc/group"),
                format!("the image runs with group {g:?}, which its /etc/group does not list (or it has no /etc/group), so the runtime cannot start it; use a numeric gid or add the group to /etc/group"),
            ),
        }
    }

    /// Step 3a: finds the file the command names as runc does (Go's `exec.LookPath`):
    /// a name with a `/` is used as it is (relative to the working directory), any
    /// other is searched in PATH for an existing non-directory with an execute bit.
    /// Returns the path as given or found, and its canonical path.
    fn look_path(&mut self, arg0: &str) -> Option<(String, String)> {
        if arg0.contains('/') {
            let abs = self.absolute(arg0);
            return match root::resolve(self.root, &abs) {
                Ok(real) => {
                    self.pass(if real == lexical(&abs) {
                        format!("command {arg0} exists")
                    } else {
                        format!("command {arg0} exists (as {real})")
                    });
                    self.runnable(arg0, &real).then(|| (arg0.to_string(), real))
                }
                Err(e) => {
                    let why = self.why_unresolved(&abs, &e);
                    // What runc's stat of the command says (checked against runc).
                    let errno = match e {
                        ResolveError::Loop { .. } => "too many levels of symbolic links",
                        ResolveError::NotDir { .. } => "not a directory",
                        _ => "no such file or directory",
                    };
                    self.problem(
                        Self::unresolved_code(&e),
                        Some(arg0),
                        format!("the command {arg0} {why}, so the runtime fails with `stat {arg0}: {errno}`; fix the Entrypoint/Cmd path or add the program there"),
                    );
                    None
                }
            };
        }
        let (path_var, found) = self.search_path(arg0);
        match found {
            Ok((candidate, real, dir)) if !dir.starts_with('/') => {
                // Go ≥ 1.19 refuses a match found through a relative PATH entry.
                self.problem(
                    Code::NotFound,
                    Some(arg0),
                    format!("the command {arg0} is found only as {candidate} (that is, {real}), through the relative PATH entry {dir:?}, which runc refuses (exec: cannot run executable found relative to current directory); use an absolute Entrypoint or an absolute PATH"),
                );
                None
            }
            Ok((candidate, real, _)) => {
                self.pass(format!("command {arg0} found in PATH as {candidate}"));
                self.runnable(&candidate, &real)
                    .then_some((candidate, real))
            }
            Err(misses) => {
                self.problem(
                    Code::NotFound,
                    Some(arg0),
                    format!("the command {arg0:?} is not an executable file in any directory of the image's PATH {path_var:?}{misses}, so runc fails with `executable file not found in $PATH`; use an absolute Entrypoint path or put the program in one of those directories"),
                );
                None
            }
        }
    }

    /// Searches `name` in the config's PATH as Go's `exec.LookPath` (and libc's
    /// `execvp`) do: the first existing non-directory with an execute bit. Returns the
    /// PATH used and either (the candidate, its canonical path, the PATH entry) or the
    /// near misses, in words.
    #[allow(clippy::type_complexity)]
    fn search_path(
        &self,
        name: &str,
    ) -> (
        String,
        std::result::Result<(String, String, String), String>,
    ) {
        let path_var = self.getenv("PATH").unwrap_or(DEFAULT_PATH).to_string();
        let mut near_misses = Vec::new();
        if !name.is_empty() && !path_var.is_empty() {
            for dir in path_var.split(':') {
                let dir = if dir.is_empty() { "." } else { dir };
                let candidate = format!("{}/{name}", dir.trim_end_matches('/'));
                let abs = lexical(&self.absolute(&candidate));
                let Ok(real) = root::resolve(self.root, &abs) else {
                    continue;
                };
                let Some(meta) = self.root.lstat(&real) else {
                    continue;
                };
                if meta.kind == FileType::Dir {
                    near_misses.push(format!("{candidate} is a directory"));
                    continue;
                }
                if meta.mode & 0o111 == 0 {
                    near_misses.push(format!("{candidate} has no execute bit"));
                    continue;
                }
                let dir = dir.to_string();
                return (path_var, Ok((candidate, real, dir)));
            }
        }
        let misses = if near_misses.is_empty() {
            String::new()
        } else {
            format!(" ({})", near_misses.join("; "))
        };
        (path_var, Err(misses))
    }

    /// `#!/usr/bin/env PROG`: env runs PROG found in PATH. The kernel passes everything
    /// after the interpreter as one argument, so `env python3 -u` looks for a program
    /// named "python3 -u" unless env is told to split it (`-S`).
    fn env_program(&mut self, shown: &str, argument: &str, depth: usize) -> Result<()> {
        let prog = if let Some(rest) = argument.strip_prefix("-S") {
            match rest.split_whitespace().next() {
                Some(p) => p.to_string(),
                None => return Ok(()),
            }
        } else if argument.starts_with('-') {
            // Other env options: not modelled.
            return Ok(());
        } else {
            argument.to_string()
        };
        let found = if prog.contains('/') {
            let abs = self.absolute(&prog);
            match root::resolve(self.root, &abs) {
                Ok(real) => Ok((prog.clone(), real)),
                Err(e) => Err(self.why_unresolved(&abs, &e)),
            }
        } else {
            match self.search_path(&prog) {
                (_, Ok((candidate, real, _))) => Ok((candidate, real)),
                (path_var, Err(misses)) => Err(format!(
                    "is not an executable file in any directory of PATH {path_var:?}{misses}"
                )),
            }
        };
        match found {
            Ok((p, real)) => {
                let Some(meta) = self.root.lstat(&real) else {
                    return Ok(());
                };
                if self.may_execute(
                    &p,
                    &real,
                    &meta,
                    &format!("the program env runs for {shown},"),
                ) {
                    self.exec(&p, &real, depth + 1)?;
                }
            }
            Err(why) => {
                let unsplit = argument.contains([' ', '\t']) && !argument.starts_with("-S");
                let message = if unsplit {
                    let mut words = argument.split_whitespace();
                    let first = words.next().unwrap_or_default();
                    let rest: Vec<&str> = words.collect();
                    let full = match self.search_path(first) {
                        (_, Ok((candidate, ..))) => candidate,
                        _ => format!("/full/path/of/{first}"),
                    };
                    let example = format!("#!{full} {}", rest.join(" "));
                    format!("the script {shown} runs `env {argument}`: the kernel passes the rest of the #! line as one argument, so env looks for a program named exactly {prog:?}, which {why}, and fails with `No such file or directory`; name the interpreter's full path in the #! line ({example}) or split the line with `#!/usr/bin/env -S`")
                } else {
                    format!("the script {shown} runs `env {argument}`, and the program {prog:?} {why}, so env fails with `No such file or directory`; add {prog} to the image or name its full path in the #! line")
                };
                self.problem(Code::MissingInterpreter, Some(shown), message);
            }
        }
        Ok(())
    }

    /// Step 3b: the command's file is a regular file this user may execute.
    fn runnable(&mut self, shown: &str, real: &str) -> bool {
        let Some(meta) = self.root.lstat(real) else {
            return false;
        };
        if meta.kind == FileType::Dir {
            self.problem(
                Code::NotRegularFile,
                Some(shown),
                format!("the command {shown} is a directory in the image, not a program (runc: exec: \"{shown}\": permission denied); point the Entrypoint at the executable inside it"),
            );
            return false;
        }
        if meta.mode & 0o111 == 0 {
            self.problem(
                Code::NotExecutable,
                Some(shown),
                format!("the command {shown} has no execute permission (mode {:04o}), so the runtime fails with `permission denied`; make it executable (chmod 755) before adding it to the image", meta.mode),
            );
            return false;
        }
        self.may_execute(shown, real, &meta, "the command")
    }

    /// The kernel's checks on any file it executes (the command, a script interpreter,
    /// an ELF loader): search permission on its directories, a regular file, and an
    /// execute bit that applies to this user.
    fn may_execute(&mut self, shown: &str, real: &str, meta: &Meta, role: &str) -> bool {
        let who = self.id.describe();
        match self.id.unsearchable_dir(self.root, real) {
            Some((dir, dm, Grant::Denied)) => {
                self.problem(
                    Code::NotExecutable,
                    Some(shown),
                    format!("{role} {shown} lies in {dir}, which {who} may not enter (mode {:04o}, owner {}:{}), so exec fails with `permission denied`; make the directory searchable (chmod a+x) or run as its owner", dm.mode, dm.uid, dm.gid),
                );
                return false;
            }
            Some((dir, dm, _)) => self.overridden("enter", &dir, &dm),
            None => {}
        }
        if meta.kind != FileType::File {
            self.problem(
                Code::NotRegularFile,
                Some(shown),
                format!("{role} {shown} is a {} in the image, not a regular file, so exec fails with `permission denied`; replace it with the program", kind_name(meta.kind)),
            );
            return false;
        }
        let grant = self.id.grant(meta, 1);
        if grant == Grant::Override {
            self.overridden("execute", shown, meta);
        }
        if grant == Grant::Denied {
            self.problem(
                Code::NotExecutable,
                Some(shown),
                format!("{role} {shown} (mode {:04o}, owner {}:{}) is not executable by {who}, so exec fails with `permission denied`; make it executable for that user (chmod a+x) or run as its owner", meta.mode, meta.uid, meta.gid),
            );
            return false;
        }
        self.pass(format!(
            "{shown} ({}) is a regular file {who} may execute (mode {:04o})",
            role.trim_end_matches(','),
            meta.mode
        ));
        true
    }

    /// Steps 4–6 for the file at canonical path `real` (shown as `shown`), which the
    /// process may execute: what the kernel does with it, recursively for scripts.
    fn exec(&mut self, shown: &str, real: &str, depth: usize) -> Result<()> {
        self.executed.push(real.to_string());
        let f = self
            .root
            .open(real)
            .map_err(|e| io_err(e, real, self.root))?;
        let size = f.size();
        let mut head = vec![0u8; size.min(SHEBANG_BUF as u64) as usize];
        f.read_exact_at(0, &mut head)
            .map_err(|e| io_err(e, real, self.root))?;
        if elf::has_magic(&head) {
            let info = match elf::parse(&*f) {
                Ok(i) => i,
                Err(e) => {
                    self.problem(
                        Code::ExecFormat,
                        Some(shown),
                        format!("{shown} is a corrupt or truncated ELF file ({e}), so exec fails with `exec format error`; copy the complete program into the image again"),
                    );
                    return Ok(());
                }
            };
            return self.exec_elf(shown, real, &info, size);
        }
        if head.starts_with(b"#!") {
            return self.exec_script(shown, real, &head, depth);
        }
        let what = if size == 0 {
            "an empty file".to_string()
        } else {
            match crate::inspect::classify_head(&head) {
                crate::inspect::FileKind::Text => "a text file without a #! line".to_string(),
                _ => "neither an ELF program nor a #! script".to_string(),
            }
        };
        self.problem(
            Code::ExecFormat,
            Some(shown),
            format!("{shown} is {what}, which the kernel cannot execute (exec format error); point the Entrypoint at a program, or start the script with a #! line naming an interpreter the image contains"),
        );
        Ok(())
    }

    fn exec_script(&mut self, shown: &str, real: &str, head: &[u8], depth: usize) -> Result<()> {
        let Some(sb) = parse_shebang(head) else {
            self.problem(
                Code::ExecFormat,
                Some(shown),
                format!("{shown} starts with #! but names no interpreter the kernel can read (an empty line, or a path longer than {SHEBANG_BUF} bytes), so exec fails with `exec format error`; write `#!/bin/sh` or the interpreter's full path on the first line"),
            );
            return Ok(());
        };
        if depth >= MAX_SCRIPT_DEPTH {
            self.problem(
                Code::ExecFormat,
                Some(shown),
                format!("{shown} is a script whose interpreter is a script, more than {MAX_SCRIPT_DEPTH} levels deep, which the kernel refuses (too many levels); name a real program in the #! line"),
            );
            return Ok(());
        }
        let meta = self.root.lstat(real);
        let grant = meta.map(|m| (self.id.grant(&m, 4), m));
        if let Some((Grant::Override, m)) = grant {
            self.overridden("read", shown, &m);
        }
        if let Some((Grant::Denied, _)) = grant {
            self.problem(
                Code::NotExecutable,
                Some(shown),
                format!("the script {shown} is not readable by {}, so its interpreter {} cannot open it; make it readable (chmod a+r)", self.id.describe(), sb.interpreter),
            );
        }
        let interp = &sb.interpreter;
        self.pass(format!("{shown} is a #! script for {interp}"));
        let abs = self.absolute(interp);
        match root::resolve(self.root, &abs) {
            Ok(ireal) => {
                let Some(im) = self.root.lstat(&ireal) else {
                    return Ok(());
                };
                if self.may_execute(interp, &ireal, &im, &format!("the interpreter of {shown},")) {
                    self.exec(interp, &ireal, depth + 1)?;
                    let is_env = interp.rsplit('/').next() == Some("env");
                    if let (true, Some(arg)) = (is_env, &sb.argument) {
                        self.env_program(shown, arg, depth + 1)?;
                    }
                }
            }
            Err(e) => {
                let why = self.why_unresolved(&abs, &e);
                let crlf = if interp.ends_with('\r') {
                    " — the #! line ends in \\r: the script has Windows (CRLF) line endings; convert it with dos2unix"
                } else {
                    ""
                };
                let shown_interp = interp.replace('\r', "\\r");
                let fix = if crlf.is_empty() {
                    "; add the interpreter to the image, or change the #! line to one it has"
                } else {
                    ""
                };
                self.problem(
                    Code::MissingInterpreter,
                    Some(shown),
                    format!("the script {shown} needs the interpreter {shown_interp} named in its #! line, which {why}, so exec fails with `no such file or directory`{crlf}{fix}"),
                );
            }
        }
        Ok(())
    }

    /// Steps 4 (ELF) and 5: machine and class, type, completeness, then the loader.
    fn exec_elf(&mut self, shown: &str, path: &str, info: &ElfInfo, size: u64) -> Result<()> {
        if !self.elf_fits(shown, info, size, "") {
            return Ok(());
        }
        if !info.kind.is_executable() {
            self.problem(
                Code::ExecFormat,
                Some(shown),
                format!("{shown} is a {}, not a program, so it cannot be the command (exec format error, or a crash at start); point the Entrypoint at the executable", info.kind.describe()),
            );
            return Ok(());
        }
        let Some(interp) = info.interpreter.clone() else {
            self.pass(format!(
                "{shown} is a {}: no loader or libraries needed",
                info.kind.describe()
            ));
            self.loaded(shown, path, info);
            return Ok(());
        };
        let abs = self.absolute(&interp);
        let real = match root::resolve(self.root, &abs) {
            Ok(r) => r,
            Err(e) => {
                let why = self.why_unresolved(&abs, &e);
                let libs = if info.needed.is_empty() {
                    String::new()
                } else {
                    format!(" against {}", info.needed.join(", "))
                };
                self.problem(
                    Code::MissingInterpreter,
                    Some(shown),
                    format!("{shown} needs its loader {interp}, which {why}, so exec fails with `no such file or directory`; the binary is dynamically linked{libs} — rebuild it statically ({}) or build the image with nobase build --bundle auto", crate::build::static_rebuild_hint(info)),
                );
                return Ok(());
            }
        };
        let Some(meta) = self.root.lstat(&real) else {
            return Ok(());
        };
        if !self.may_execute(&interp, &real, &meta, &format!("the loader of {shown},")) {
            return Ok(());
        }
        let f = self
            .root
            .open(&real)
            .map_err(|e| io_err(e, &real, self.root))?;
        let linfo = match elf::parse(&*f) {
            Ok(i) => i,
            Err(e) => {
                self.problem(
                    Code::ExecFormat,
                    Some(&interp),
                    format!("the loader {interp} of {shown} is not a valid ELF file ({e}), so the kernel refuses it (accessing a corrupted shared library); put the real loader for {} there", self.platform),
                );
                return Ok(());
            }
        };
        if !self.elf_fits(
            &interp,
            &linfo,
            f.size(),
            &format!(", the loader of {shown},"),
        ) {
            return Ok(());
        }
        self.pass(format!("loader {interp} is there ({real})"));
        self.loaded(shown, path, info);
        self.loaded(&interp, &real, &linfo);
        self.libraries(path, info)
    }

    fn loaded(&mut self, shown: &str, path: &str, info: &ElfInfo) {
        self.programs.push(Loaded {
            shown: shown.to_string(),
            path: path.to_string(),
            info: info.clone(),
        });
    }

    /// Machine and class against the platform, and a file long enough for its segments.
    fn elf_fits(&mut self, shown: &str, info: &ElfInfo, size: u64, role: &str) -> bool {
        if info.os != "linux" {
            self.problem(
                Code::WrongArchitecture,
                Some(shown),
                format!("{shown}{role} is {} {} program, which the Linux kernel under every container does not run as one (it fails or crashes at start); rebuild it for Linux (for Go: GOOS=linux)", crate::elf::article(&info.os), info.os),
            );
            return false;
        }
        let arch = elf::oci_arch(info.e_machine, info.class, info.little_endian);
        if !arch.is_some_and(|a| crate::image::kernel_runs(&self.platform.architecture, a)) {
            let is = match arch {
                Some(a) => format!("linux/{a}"),
                None => "a machine no OCI platform names".into(),
            };
            self.problem(
                Code::WrongArchitecture,
                Some(shown),
                format!("{shown}{role} is an ELF {}-bit {} program ({is}), but the image is for {}, so the kernel refuses it (exec format error); rebuild it for {} or build the image for {is} ({})", info.class, info.machine, self.platform, self.platform, self.platform_fix),
            );
            return false;
        }
        if info.load_end > size {
            self.problem(
                Code::ExecFormat,
                Some(shown),
                format!("{shown}{role} is truncated: its segments need {} bytes but the file has {size}, so it cannot be loaded; copy the complete file into the image again", info.load_end),
            );
            return false;
        }
        self.pass(format!(
            "{shown}{role} is an ELF {}-bit {} program for {}",
            info.class, info.machine, self.platform
        ));
        true
    }

    /// Step 6: every DT_NEEDED of every loaded object, resolved by the image's own
    /// loader rules (the shared `loader` module: its ld.so.cache or built-in
    /// directories, RPATH/RUNPATH with `$ORIGIN`, LD_LIBRARY_PATH from the config), each
    /// library readable by the user, and (glibc) every symbol version a requester needs
    /// defined by the library that answers it.
    fn libraries(&mut self, exe: &str, info: &ElfInfo) -> Result<()> {
        let opts = loader::Options {
            library_path: self.getenv("LD_LIBRARY_PATH").map(str::to_string),
            // ld.so reads only its cache, never ld.so.conf: judge the image as it will.
            conf_without_cache: false,
            cwd: self.cwd.clone(),
        };
        let closure = loader::resolve(self.root, exe, Some(info), &opts)?;
        // What DT_NEEDED does not show, judged by what the image holds (its own
        // nsswitch.conf, gconv modules, libraries), as `build` advises before bundling.
        let conf = crate::root::read_file(self.root, "/etc/nsswitch.conf", 1 << 20).ok();
        let conf = loader::dlopen::NssConf::Image(conf.as_deref());
        for b in loader::dlopen::blind_spots_with(self.root, &closure, conf) {
            if b.missing {
                self.warning(WarningCode::RunTimeLoad, b.message);
            }
        }
        let glibc = closure.setup.flavor == loader::Flavor::Glibc;
        let mut versions_found = 0;
        for need in &closure.needs {
            let requester = &closure.objects[need.requester];
            let req = requester.path.clone();
            let name = &need.name;
            match &need.outcome {
                Outcome::NotFound { searched, error } => {
                    // Directories grouped by why they were searched, in search order.
                    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
                    for s in searched {
                        let via = s.via.describe();
                        // A way that names its directory (`RUNPATH /opt/lib`, the cache
                        // file) is not followed by it again.
                        let dir = (via != s.dir && !via.ends_with(&format!(" {}", s.dir)))
                            .then(|| s.dir.clone());
                        match groups.last_mut() {
                            Some((v, dirs)) if *v == via => {
                                if let Some(d) = dir.filter(|d| !dirs.contains(d)) {
                                    dirs.push(d);
                                }
                            }
                            _ => groups.push((via, dir.into_iter().collect())),
                        }
                    }
                    let dirs: Vec<String> = groups
                        .iter()
                        .map(|(via, d)| match d.is_empty() {
                            true => via.clone(),
                            false => format!("{via} {}", d.join(", ")),
                        })
                        .collect();
                    let skipped: Vec<String> = need
                        .skipped
                        .iter()
                        .map(|s| format!("{}: {}", s.path, s.reason))
                        .collect();
                    let cause = match error {
                        Some(e) => format!("which the loader cannot use ({e})"),
                        None if dirs.is_empty() => "which the image does not contain".to_string(),
                        None => format!(
                            "which is in none of the places the loader searches ({})",
                            dirs.join("; ")
                        ),
                    };
                    let passed = if skipped.is_empty() {
                        String::new()
                    } else {
                        format!(" (passed over: {})", skipped.join("; "))
                    };
                    self.problem(
                        Code::MissingLibrary,
                        Some(&req),
                        format!("{req} needs the library {name}, {cause}{passed}, so the loader stops with `error while loading shared libraries: {name}: cannot open shared object file`; add {name} to the image where the loader looks (nobase build --bundle auto does), or rebuild statically"),
                    );
                }
                Outcome::Found { object, first } => {
                    let obj = &closure.objects[*object];
                    if glibc && !obj.info.version_defs.is_empty() {
                        for vn in requester
                            .info
                            .version_needs
                            .iter()
                            .filter(|v| &v.library == name)
                        {
                            let missing: Vec<&String> = vn
                                .versions
                                .iter()
                                .filter(|v| !obj.info.version_defs.contains(v))
                                .collect();
                            if missing.is_empty() {
                                versions_found += vn.versions.len();
                                continue;
                            }
                            let list = missing
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ");
                            let newest = obj.info.version_defs.last().cloned().unwrap_or_default();
                            self.problem(
                                Code::MissingSymbolVersion,
                                Some(&req),
                                format!("{req} needs version {list} of {name}, which {} in the image does not define (its newest is {newest}), so the loader stops with `version `{}' not found`; put the {name} that {req} was built against into the image (nobase build --bundle auto), or rebuild {req} against the older one", obj.path, missing[0]),
                            );
                        }
                    }
                    if *first {
                        self.pass(format!(
                            "{name} (needed by {req}) is {} (through {})",
                            obj.path,
                            obj.via.describe()
                        ));
                        self.readable_library(&req, name, obj);
                        self.loaded(&obj.path, &obj.canonical, &obj.info);
                    }
                }
            }
        }
        if versions_found > 0 {
            self.pass(format!(
                "{versions_found} symbol versions the programs require are defined by their libraries"
            ));
        }
        if closure.is_complete() {
            self.symbols(&closure)?;
        }
        Ok(())
    }

    /// Every symbol an object bound at start requires is defined by one of the objects
    /// loaded (the global scope: the program, its libraries, the loader). Under BIND_NOW
    /// (`-z now`, hardened and Rust builds, or LD_BIND_NOW) the loader binds them all
    /// before `main` and stops at the first it cannot find; a library of the same name
    /// but another build (one without symbol versions to say so) is how that happens.
    /// Lazily bound functions fail only when called, so only BIND_NOW objects are judged.
    fn symbols(&mut self, closure: &loader::Closure) -> Result<()> {
        // musl binds every symbol at start, always.
        let musl = closure.setup.flavor == loader::Flavor::Musl;
        let env_now = musl || self.getenv("LD_BIND_NOW").is_some_and(|v| !v.is_empty());
        // What the loader binds at start for each object: every required import under
        // BIND_NOW, else those data relocations name (functions wait for their call);
        // and the data it copies into the program, which a library must define.
        fn judged(o: &loader::Object, env_now: bool) -> &[String] {
            if o.info.bind_now || env_now {
                &o.info.required
            } else {
                &o.info.bound_at_start
            }
        }
        if closure
            .objects
            .iter()
            .all(|o| judged(o, env_now).is_empty() && o.info.copied.is_empty())
        {
            return Ok(());
        }
        // A preloaded library (LD_PRELOAD, /etc/ld.so.preload) defines symbols too, and
        // is not in the closure: no judgement then.
        if self
            .getenv("LD_PRELOAD")
            .is_some_and(|v| !v.trim().is_empty())
            || self.root.lstat("/etc/ld.so.preload").is_some()
        {
            return Ok(());
        }
        // Which of those symbols each loaded object defines, read now: only this check
        // needs it.
        let wanted: std::collections::HashSet<&str> = closure
            .objects
            .iter()
            .flat_map(|o| {
                judged(o, env_now)
                    .iter()
                    .chain(&o.info.copied)
                    .map(String::as_str)
            })
            .collect();
        let mut defined_by = Vec::new();
        for o in &closure.objects {
            let f = self
                .root
                .open(&o.canonical)
                .map_err(|e| io_err(e, &o.canonical, self.root))?;
            // An object whose symbol table cannot be read defines what it defines: no
            // judgement rather than a refusal of everything it would have answered.
            let Ok(info) = elf::parse_with_symbols(&*f, &wanted) else {
                return Ok(());
            };
            defined_by.push(info.defined);
        }
        let defined = |name: &str, except: Option<usize>| {
            defined_by.iter().enumerate().any(|(i, d)| {
                Some(i) != except && d.binary_search_by(|x| x.as_str().cmp(name)).is_ok()
            })
        };
        for (i, o) in closure.objects.iter().enumerate() {
            let mut missing: Vec<&str> = judged(o, env_now)
                .iter()
                .map(String::as_str)
                .filter(|s| !defined(s, None))
                .collect();
            // A copy is made from another object, never from the program's own copy.
            missing.extend(
                o.info
                    .copied
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !defined(s, Some(i))),
            );
            let Some(first) = missing.first() else {
                continue;
            };
            let more = match missing.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            let (why, words) = if musl {
                (
                    "musl's loader binds every symbol at start",
                    format!("Error relocating {}: {first}: symbol not found", o.path),
                )
            } else if o.info.bind_now {
                (
                    "it is linked to bind every symbol at start (BIND_NOW)",
                    format!("symbol lookup error: undefined symbol: {first}"),
                )
            } else if env_now {
                (
                    "the image sets LD_BIND_NOW",
                    format!("symbol lookup error: undefined symbol: {first}"),
                )
            } else {
                (
                    "it refers to it as data, which the loader binds at start",
                    format!("symbol lookup error: undefined symbol: {first}"),
                )
            };
            self.problem(
                Code::MissingSymbol,
                Some(&o.path),
                format!("{} requires the symbol {first}{more}, which none of the objects loaded with it defines, and {why}, so the loader stops with `{words}`; put the libraries {} was built against into the image (nobase build --bundle auto), or rebuild it against these", o.path, o.path),
            );
        }
        Ok(())
    }

    /// The loader opens each library for reading as the process's user.
    fn readable_library(&mut self, req: &str, name: &str, obj: &loader::Object) {
        let who = self.id.describe();
        let blocked = match self.id.unsearchable_dir(self.root, &obj.canonical) {
            Some((dir, m, Grant::Denied)) => Some(format!(
                "it lies in {dir} (mode {:04o}, owner {}:{}), which {who} may not enter",
                m.mode, m.uid, m.gid
            )),
            Some((dir, m, _)) => {
                self.overridden("enter", &dir, &m);
                None
            }
            None => match self.root.lstat(&obj.canonical) {
                Some(m) => match self.id.grant(&m, 4) {
                    Grant::Denied => Some(format!(
                        "it (mode {:04o}, owner {}:{}) is not readable by {who}",
                        m.mode, m.uid, m.gid
                    )),
                    Grant::Override => {
                        self.overridden("read", &obj.path, &m);
                        None
                    }
                    Grant::Bits => None,
                },
                None => None,
            },
        };
        if let Some(why) = blocked {
            self.problem(
                Code::MissingLibrary,
                Some(req),
                format!("{req} needs the library {name}, found at {}, but {why}, so the loader fails with `cannot open shared object file: Permission denied`; make it readable (chmod a+r)", obj.path),
            );
        }
    }
}

/// An I/O error reading a file of the image: the check could not be completed.
fn io_err(e: std::io::Error, path: &str, root: &dyn Root) -> Error {
    Error::Io {
        action: format!("reading {path} in {}", root.describe()),
        cause: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ContainerConfig;
    use crate::root::HostRoot;
    use std::os::unix::fs::PermissionsExt;

    fn put(base: &std::path::Path, rel: &str, bytes: &[u8], mode: u32) {
        let p = base.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn config(entrypoint: &[&str], env: &[&str], workdir: Option<&str>) -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            config: ContainerConfig {
                entrypoint: Some(entrypoint.iter().map(|s| s.to_string()).collect()),
                env: Some(env.iter().map(|s| s.to_string()).collect()),
                working_dir: workdir.map(str::to_string),
                ..ContainerConfig::default()
            },
            ..ImageConfig::default()
        }
    }

    #[test]
    fn problems_name_the_cause_and_the_fix() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::set_permissions(b, std::fs::Permissions::from_mode(0o755)).unwrap();
        put(b, "app/crlf", b"#!/bin/sh\r\necho\r\n", 0o755);
        put(b, "app/noshell", b"#!/bin/sh\necho\n", 0o755);
        put(b, "app/text", b"echo hi\n", 0o755);
        put(b, "app/empty", b"", 0o755);
        put(b, "app/data", b"x", 0o644);
        put(b, "usr/local/bin/tool", b"#!/bin/sh\n", 0o644);
        put(b, "app/nointerp", b"#!   \n", 0o755);
        std::os::unix::fs::symlink("/app/gone", b.join("app/dangling")).unwrap();
        let root = HostRoot::new(b);
        // (entrypoint, env, workdir, code, words the message must contain)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], Option<&'a str>, Code, &'a str);
        let cases: &[Case] = &[
            (
                &["/app/crlf"],
                &[],
                None,
                Code::MissingInterpreter,
                "dos2unix",
            ),
            (
                &["/app/noshell"],
                &[],
                None,
                Code::MissingInterpreter,
                "/bin/sh",
            ),
            (
                &["/app/text"],
                &[],
                None,
                Code::ExecFormat,
                "without a #! line",
            ),
            (&["/app/empty"], &[], None, Code::ExecFormat, "empty file"),
            (&["/app/data"], &[], None, Code::NotExecutable, "chmod"),
            (
                &["/app/nointerp"],
                &[],
                None,
                Code::ExecFormat,
                "names no interpreter",
            ),
            (
                &["/app/dangling"],
                &[],
                None,
                Code::NotFound,
                "symbolic link to \"/app/gone\"",
            ),
            (
                &["tool"],
                &[],
                None,
                Code::NotFound,
                "/usr/local/bin/tool has no execute bit",
            ),
            (
                &["tool"],
                &["PATH=/nowhere"],
                None,
                Code::NotFound,
                "\"/nowhere\"",
            ),
            (
                &["empty"],
                &["PATH=app"],
                None,
                Code::NotFound,
                "relative PATH entry",
            ),
            (
                &["/app/empty"],
                &[],
                Some("/app/text"),
                Code::BadWorkdir,
                "not a directory",
            ),
            (&[], &[], None, Code::NoCommand, "Entrypoint"),
        ];
        for (ep, env, wd, code, words) in cases {
            let r = check(&root, "t", &config(ep, env, *wd)).unwrap();
            assert!(!r.ok, "{ep:?}");
            let p = r
                .problems
                .iter()
                .find(|p| p.code == *code)
                .unwrap_or_else(|| panic!("{ep:?}: no {code:?} in {:?}", r.problems));
            assert!(p.message.contains(words), "{ep:?}: {}", p.message);
        }
    }

    #[test]
    fn a_zone_the_image_sets_needs_its_zoneinfo_file() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::set_permissions(b, std::fs::Permissions::from_mode(0o755)).unwrap();
        put(b, "app/run", b"#!/bin/sh\n", 0o755);
        put(b, "usr/share/zoneinfo/Asia/Tokyo", b"TZif", 0o644);
        let zone_warnings = |tz: &str| -> Vec<String> {
            let r = check(&HostRoot::new(b), "t", &config(&["/app/run"], &[tz], None)).unwrap();
            r.warnings
                .into_iter()
                .filter(|w| w.code == WarningCode::NoZoneinfo)
                .map(|w| w.message)
                .collect()
        };
        assert_eq!(zone_warnings("TZ=Asia/Tokyo"), Vec::<String>::new());
        assert_eq!(
            zone_warnings("TZ=Europe/Paris"),
            ["the image sets TZ=Europe/Paris, but has no /usr/share/zoneinfo/Europe/Paris, so the program shows UTC times under that name, without an error; add zoneinfo with `nobase build --with tzdata`"]
        );
        assert_eq!(zone_warnings("TZ=:Japan").len(), 1);
        assert!(
            zone_warnings("TZ=:/etc/localtime")[0]
                .ends_with("add a zone file there, e.g. `--add /usr/share/zoneinfo/Europe/Paris:/etc/localtime`"),
            "{:?}",
            zone_warnings("TZ=:/etc/localtime")
        );
        for fine in [
            "TZ=JST-9",
            "TZ=EST5EDT",
            "TZ=CET-1CEST,M3.5.0,M10.5.0/3",
            "TZ=EST5EDT,M3.2.0/2,M11.1.0/2",
            "TZ=UTC",
            "TZ=",
            "TZ=:Asia/Tokyo",
        ] {
            assert_eq!(zone_warnings(fine), Vec::<String>::new(), "{fine}");
        }
    }

    #[test]
    fn a_missing_workdir_tmp_and_nsswitch_are_warnings_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(d.path().join("bin")).unwrap();
        std::fs::copy("/bin/busybox", d.path().join("bin/busybox")).ok();
        if !d.path().join("bin/busybox").exists() {
            return;
        }
        std::os::unix::fs::symlink("busybox", d.path().join("bin/sh")).unwrap();
        put(d.path(), "app/run", b"#!/bin/sh\necho hi\n", 0o755);
        let r = check(
            &HostRoot::new(d.path()),
            "t",
            &config(&["/app/run"], &[], Some("/srv/new")),
        )
        .unwrap();
        assert!(r.ok, "{:?}", r.problems);
        let codes: Vec<_> = r.warnings.iter().map(|w| w.code).collect();
        // Debian's busybox-static is static glibc with its NSS code linked in.
        assert_eq!(
            codes,
            vec![
                WarningCode::MissingWorkdir,
                WarningCode::NoWritableTmp,
                WarningCode::NoNsswitch
            ]
        );
    }
}
