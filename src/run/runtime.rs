//! The OCI runtime (runc, crun or one named by path) and the run bundles nobase makes for
//! it: found once, started in the foreground with our stdin/stdout/stderr and a private
//! state directory, its exit code passed through, its container deleted afterwards
//! whatever happened, and bundles left by a killed nobase collected on the next run.

use super::inroot;
use super::signals;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, Lock};
use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long after a `kill` the runtime refused it is tried again.
const KILL_RETRY: Duration = Duration::from_millis(500);

/// Runtimes tried, in order, when none is named. runc first: crun stops at "cgroups in
/// hybrid mode not supported" on hosts that mount both cgroup versions.
const DEFAULT_RUNTIMES: [&str; 2] = ["runc", "crun"];

/// Where runtimes live besides `$PATH` (sbin directories are often not on a user's PATH).
const EXTRA_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// An OCI runtime binary.
#[derive(Clone, Debug)]
pub struct Runtime {
    /// Its path.
    pub path: PathBuf,
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The directories runtimes are looked for in: `$PATH`, then the sbin directories.
fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .collect()
}

fn search(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| executable(p))
}

impl Runtime {
    /// The runtime named by `--runtime` (a path, or a name looked up on `$PATH`), or
    /// the first of runc and crun found.
    pub fn find(named: Option<&str>) -> Result<Runtime> {
        Runtime::find_in(named, &search_dirs())
    }

    fn find_in(named: Option<&str>, dirs: &[PathBuf]) -> Result<Runtime> {
        match named {
            Some(n) if n.contains('/') => {
                let p = PathBuf::from(n);
                if executable(&p) {
                    Ok(Runtime { path: p })
                } else {
                    Err(Error::Usage(format!(
                        "--runtime {n}: not an executable file"
                    )))
                }
            }
            Some(n) => search(n, dirs).map(|path| Runtime { path }).ok_or_else(|| {
                Error::Usage(format!(
                    "--runtime {n}: not found on PATH or in /usr/sbin; give its full path"
                ))
            }),
            None => DEFAULT_RUNTIMES
                .iter()
                .find_map(|n| search(n, dirs))
                .map(|path| Runtime { path })
                .ok_or_else(|| {
                    Error::Invalid(
                        "no OCI runtime found (looked for runc and crun on PATH and in /usr/sbin): \
                         install one with `apt-get install runc` (or crun), or name one with --runtime PATH"
                            .into(),
                    )
                }),
        }
    }

    /// Its file name, for messages.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.path.display().to_string())
    }

    fn cmd(&self, state: &Path) -> Command {
        let mut c = Command::new(&self.path);
        c.arg("--root").arg(state);
        c
    }

    /// Runs the bundle in the foreground and returns the container's exit code (128+N
    /// when it died of signal N). A stop signal sent to nobase is forwarded; if the
    /// container is still there `stop_timeout` later (a PID 1 ignores SIGTERM unless it
    /// handles it), it is killed.
    pub fn run(
        &self,
        state: &Path,
        bundle: &Path,
        name: &str,
        stop_timeout: Duration,
    ) -> Result<i32> {
        // The runtime's own errors also go to a log, so that its failure to start the
        // program can be told from the program's exit code.
        let log = bundle.join("runtime.log");
        let mut child = self
            .cmd(state)
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "run", "--bundle"])
            .arg(bundle)
            .arg(name)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .io(|| format!("starting {}", self.path.display()))?;
        signals::set_child(child.id() as i32);
        let mut deadline: Option<Instant> = None;
        // The kill is tried again until the runtime takes it: one that fails (the
        // container not created yet, a runtime busy) must not leave a program that
        // ignores the stop signal running for good.
        let mut killed = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => {
                    signals::set_child(0);
                    return Err(e).io(|| format!("waiting for {}", self.name()));
                }
            }
            if deadline.is_none() && signals::stop_requested().is_some() {
                deadline = Some(Instant::now() + stop_timeout);
            }
            if let Some(d) = deadline {
                if !killed && Instant::now() >= d {
                    killed = self
                        .cmd(state)
                        .args(["kill", name, "KILL"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    if !killed {
                        deadline = Some(Instant::now() + KILL_RETRY);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        signals::set_child(0);
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        // runc and crun exit 1 when they fail; so may the program.
        if code == 1 {
            if let Some(c) = start_failure(&std::fs::read_to_string(&log).unwrap_or_default()) {
                return Ok(c);
            }
        }
        Ok(code)
    }

    /// The pid of the container's process if it is still there (running, paused, or
    /// created and not yet started), from `RUNTIME state` (runc and crun print the same
    /// JSON); None when it has stopped or the runtime does not know it.
    fn live_pid(&self, state: &Path, name: &str) -> Option<i32> {
        let out = self
            .cmd(state)
            .args(["state", name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        if v["status"].as_str() == Some("stopped") {
            return None;
        }
        let pid = v["pid"].as_i64()?;
        i32::try_from(pid).ok().filter(|p| *p > 0)
    }

    /// Deletes the container if it still exists (quietly: usually `run` already did).
    pub fn delete(&self, state: &Path, name: &str) {
        let _ = self
            .cmd(state)
            .args(["delete", "--force", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The exit code of a run (that ended with 1) the runtime itself could not start, from
/// the last error it logged, as Docker chooses it from the runtime's words: 127 when
/// the program is not found, 126 when it may not be executed, 125 for the rest of the
/// setup (mounts, the working directory). None when the error is not a failure to start
/// (runc also logs errors while cleaning up after a program that ran and exited 1): the
/// code is the program's. A program whose loader is missing fails inside the
/// container's exec, after the runtime is done: its code stays 1, as runc gives it.
fn start_failure(log: &str) -> Option<i32> {
    let msg = log
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .find_map(|v| v["msg"].as_str().map(str::to_lowercase))?;
    // runc: `exec: "/x": stat /x: no such file or directory`, `exec: "x": executable
    // file not found in $PATH`, `exec /x: permission denied`; crun: ``executable file
    // `/x` not found in $PATH: No such file or directory``, `open executable:
    // Permission denied`. A part of the message (between ": ") starts with those words.
    let exec = msg.split(": ").any(|part| {
        part == "exec"
            || ["exec ", "executable file", "open executable"]
                .iter()
                .any(|w| part.starts_with(w))
    });
    let starting = exec
        || msg.contains("unable to start container process")
        || msg.contains("runc run failed")
        || msg.contains("runc create failed");
    if !starting {
        return None;
    }
    Some(
        if exec && (msg.contains("no such file or directory") || msg.contains("not found")) {
            127
        } else if exec && (msg.contains("permission denied") || msg.contains("is a directory")) {
            126
        } else {
            125
        },
    )
}

/// A bundle made for one `nobase run`: `BUNDLES/run-ID/` (config.json, rootfs, and the
/// runtime's state directory) and `BUNDLES/run-ID.lock`, held while nobase runs so
/// that [`clean_stale`] can tell a live run from a killed one.
pub struct RunBundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The container's name.
    pub name: String,
    lock_path: PathBuf,
    _lock: File,
}

impl RunBundle {
    /// Creates a new bundle directory under `bundles` (made 0700: a rootfs is private).
    pub fn create(bundles: &Path) -> Result<RunBundle> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(bundles)
            .io(|| format!("creating {}", bundles.display()))?;
        let tmp = fsutil::temp_path(bundles);
        // `.nobase-PID-N-NANOS.tmp` → `run-PID-N-NANOS`.
        let id = tmp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .trim_start_matches(".nobase-")
            .trim_end_matches(".tmp")
            .to_string();
        let dir = bundles.join(format!("run-{id}"));
        let lock_path = bundles.join(format!("run-{id}.lock"));
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_path)
            .io(|| format!("creating {}", lock_path.display()))?;
        fsutil::flock(&lock, Lock::Exclusive, true)
            .io(|| format!("locking {}", lock_path.display()))?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .io(|| format!("creating {}", dir.display()))?;
        Ok(RunBundle {
            dir,
            name: format!("nobase-{id}"),
            lock_path,
            _lock: lock,
        })
    }

    /// The runtime's `--root` state directory, private to this run.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Keeps the bundle: it is no longer a run in progress, and no cleanup takes it.
    pub fn keep(self) -> PathBuf {
        let _ = std::fs::remove_file(&self.lock_path);
        self.dir
    }

    /// Removes the bundle.
    pub fn remove(self) -> Result<()> {
        inroot::remove_tree(&self.dir).io(|| format!("removing {}", self.dir.display()))?;
        let _ = std::fs::remove_file(&self.lock_path);
        Ok(())
    }
}

/// What [`clean_stale`] did.
#[derive(Clone, Debug, Default)]
pub struct Cleaned {
    /// Bundles removed (those of the stopped containers included).
    pub removed: usize,
    /// The pids of the containers that were still running, unsupervised, and were
    /// stopped (killed) before their bundles were removed.
    pub stopped: Vec<i32>,
}

/// Removes bundles whose nobase died (their lock is free), deleting any container
/// still registered in their state directory first: one still running has lost the
/// nobase that forwarded its signals and would remove it, so it is killed.
pub fn clean_stale(bundles: &Path, runtime: &Runtime) -> Cleaned {
    let mut done = Cleaned::default();
    let Ok(rd) = std::fs::read_dir(bundles) else {
        return done;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("run-")
            .and_then(|r| r.strip_suffix(".lock"))
        else {
            continue;
        };
        let Ok(f) = File::open(e.path()) else {
            continue;
        };
        if !fsutil::flock(&f, Lock::Exclusive, false).unwrap_or(false) {
            continue;
        }
        let dir = bundles.join(format!("run-{id}"));
        let state = dir.join("state");
        if let Ok(containers) = std::fs::read_dir(&state) {
            for c in containers.flatten() {
                let name = c.file_name().to_string_lossy().into_owned();
                if let Some(pid) = runtime.live_pid(&state, &name) {
                    done.stopped.push(pid);
                }
                runtime.delete(&state, &name);
            }
        }
        if inroot::remove_tree(&dir).is_ok() {
            let _ = std::fs::remove_file(e.path());
            done.removed += 1;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_runtime_that_logged_an_error_failed_to_start_the_program() {
        let line = |m: &str| format!("{{\"level\":\"error\",\"msg\":{m:?}}}\n");
        let cases = [
            ("runc run failed: unable to start container process: exec: \"/x\": stat /x: no such file or directory", Some(127)),
            ("runc run failed: unable to start container process: exec: \"x\": executable file not found in $PATH", Some(127)),
            ("runc run failed: unable to start container process: exec: \"/app\": permission denied", Some(126)),
            ("runc run failed: unable to start container process: exec /app/hello: permission denied", Some(126)),
            ("runc run failed: unable to start container process: error mounting \"/usr/libexec\": no such file or directory", Some(125)),
            // Setup failures other than the program's: Docker's 125, whatever the words.
            ("runc run failed: unable to start container process: error during container init: error mounting \"/h\" to rootfs at \"/etc/hosts\": no such file or directory", Some(125)),
            ("runc run failed: unable to start container process: chdir to cwd (\"/w\") set in config.json failed: permission denied", Some(125)),
            // crun's words.
            ("executable file `/x` not found in $PATH: No such file or directory", Some(127)),
            ("open executable: Permission denied", Some(126)),
            // Errors of a cleanup after the program ran: its own code stays.
            ("unable to remove cgroup: device or resource busy", None),
            ("kill container: no such process", None),
        ];
        for (msg, want) in cases {
            assert_eq!(start_failure(&line(msg)), want, "{msg}");
        }
        // Warnings, and no log at all, leave the program's code alone.
        assert_eq!(start_failure(""), None);
        assert_eq!(
            start_failure("{\"level\":\"warning\",\"msg\":\"x\"}\n"),
            None
        );
    }

    #[test]
    fn runtimes_are_found_in_order_or_named_in_the_error() {
        let d = tempfile::tempdir().unwrap();
        let dirs = vec![d.path().to_path_buf()];
        let err = Runtime::find_in(None, &dirs).unwrap_err().to_string();
        assert!(err.contains("apt-get install runc"), "{err}");
        let mk = |name: &str| {
            let p = d.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let crun = mk("crun");
        assert_eq!(Runtime::find_in(None, &dirs).unwrap().path, crun);
        let runc = mk("runc");
        assert_eq!(Runtime::find_in(None, &dirs).unwrap().path, runc);
        assert_eq!(Runtime::find_in(Some("crun"), &dirs).unwrap().path, crun);
        assert!(Runtime::find_in(Some("youki"), &dirs).is_err());
        let named = crun.to_str().unwrap();
        assert_eq!(Runtime::find_in(Some(named), &[]).unwrap().path, crun);
        std::fs::write(d.path().join("data"), "").unwrap();
        assert!(Runtime::find_in(Some(d.path().join("data").to_str().unwrap()), &[]).is_err());
    }
}
