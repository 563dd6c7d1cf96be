//! The start-up check before the runtime runs a bundle: `nobase check`'s analysis over
//! the unpacked rootfs, with the process as this run will start it (its argv, user,
//! working directory and environment). Problems are a refusal naming what is missing,
//! with the exit code Docker gives when the runtime fails the same way (see
//! [`run_code`]); `--no-check` skips it.

use super::Unpacked;
use crate::build::extras::NOBODY_UID;
use crate::check::{self, Code};
use crate::elf::ReadAt;
use crate::error::{Error, Result};
use crate::image::{host_platform, ImageConfig};
use crate::root::{HostRoot, Meta, Root};
use std::io;
use std::path::Path;

/// A rootless bundle's files belong to the host user who unpacked them, and appear
/// inside the container as root's; everything else appears as nobody's. The check
/// must see them as the container will.
struct Mapped<'a> {
    inner: &'a HostRoot,
    host: (u32, u32),
}

impl Root for Mapped<'_> {
    fn lstat(&self, path: &str) -> Option<Meta> {
        let m = self.inner.lstat(path)?;
        Some(Meta {
            uid: if m.uid == self.host.0 { 0 } else { NOBODY_UID },
            gid: if m.gid == self.host.1 { 0 } else { NOBODY_UID },
            ..m
        })
    }
    fn readlink(&self, path: &str) -> Option<String> {
        self.inner.readlink(path)
    }
    fn open(&self, path: &str) -> io::Result<Box<dyn ReadAt + '_>> {
        self.inner.open(path)
    }
    fn list(&self, path: &str) -> Option<Vec<String>> {
        self.inner.list(path)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Checks the unpacked `rootfs` as this run will start it. `user` is the `-u` given to
/// the run, if any (names resolve in the image's passwd and group files, as runc does).
pub fn check(
    rootfs: &Path,
    unpacked: &Unpacked,
    image: &ImageConfig,
    user: Option<&str>,
) -> Result<()> {
    let p = &unpacked.spec.process;
    let program = p.args.first().map(String::as_str).unwrap_or("the program");
    // check's analysis judges the image against its own platform; whether this machine
    // can execute that platform is the run's question.
    let (platform, host) = (image.platform(), host_platform());
    if !image.architecture.is_empty() && !crate::image::host_runs(&platform) {
        return Err(Error::WouldNotStart {
            message: format!(
                "{program} is built for {platform} and this machine is {host}: it would stop with \"exec format error\"; \
                 pick another variant with --platform, or run it where it belongs (--no-check starts it anyway, e.g. under qemu-user binfmt)"
            ),
            run_code: run_code(Code::ExecFormat),
        });
    }
    let mut config = image.clone();
    config.config.entrypoint = Some(p.args.clone());
    config.config.cmd = None;
    config.config.env = Some(p.env.clone());
    config.config.working_dir = Some(p.cwd.clone());
    config.config.user = match user {
        Some(u) => Some(u.to_string()),
        None => image.config.user.clone(),
    };
    let host = HostRoot::new(rootfs);
    let mapped;
    let root: &dyn Root = match unpacked.rootless {
        Some(ids) => {
            mapped = Mapped {
                inner: &host,
                host: ids,
            };
            &mapped
        }
        None => &host,
    };
    let report = check::check(root, "the image", &config)?;
    if report.ok {
        return Ok(());
    }
    let problems: Vec<String> = report.problems.iter().map(|p| p.message.clone()).collect();
    Err(Error::WouldNotStart {
        message: format!(
            "{program} would not start: {} (--no-check runs it anyway)",
            problems.join("; ")
        ),
        run_code: report.problems.first().map_or(125, |p| run_code(p.code)),
    })
}

/// The exit code of a run that stops at `code`, as Docker's client chooses it from the
/// runtime's error (and a shell for a command): 127 for a program, loader or library
/// that is not found (ld.so itself exits 127 for a library), 126 for one that cannot be
/// executed, 125 for the rest of the container's setup (user, working directory), and
/// the program's own code for what it reports itself.
pub fn run_code(code: Code) -> i32 {
    match code {
        Code::NotFound
        | Code::MissingInterpreter
        | Code::MissingLibrary
        | Code::MissingSymbolVersion
        | Code::MissingSymbol => 127,
        Code::NotRegularFile
        | Code::NotExecutable
        | Code::ExecFormat
        | Code::WrongArchitecture
        | Code::SymlinkLoop => 126,
        Code::NoCommand
        | Code::UnknownUser
        | Code::UnknownGroup
        | Code::BadWorkdir
        | Code::BadEnv
        | Code::BadMountpoint => 125,
        // Python itself reports it and exits 1.
        Code::NoPythonLibrary => 1,
    }
}
