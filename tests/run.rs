//! `nobase run` and `nobase unpack`, judged by runc itself: programs start and print,
//! exit codes, arguments, env, workdir and users reach them, signals stop them and leave
//! no container behind; hostile layers crafted with Python's tarfile write nothing
//! outside the bundle (checked on sentinel paths on the host).

use crate::util::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// runc and root, or a skip message.
/// Nothing is left behind in the bundles directory: no bundle, no lock.
fn assert_no_bundle_left(env: &Env) {
    let left: Vec<_> = std::fs::read_dir(env.path("bundles"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn can_run() -> bool {
    have("runc") && is_root()
}

fn build(env: &Env, args: &[&str]) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    env.nobase(&a).ok();
}

/// busybox as `bb:1` in the env's store, entrypoint /app/busybox.
fn busybox_image(env: &Env) -> bool {
    let Some(bb) = busybox() else { return false };
    build(env, &[bb.to_str().unwrap(), "-t", "bb:1"]);
    true
}

/// A host path under /tmp unique to this test process and `tag`, absent at the start.
fn sentinel(tag: &str) -> PathBuf {
    let p = PathBuf::from(format!("/tmp/nobase-sentinel-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_dir_all(&p);
    p
}

#[test]
fn stored_hello_runs_and_its_exit_code_is_ours() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    build(&env, &[hello_static().to_str().unwrap(), "-t", "hello:1"]);
    let r = env.nobase(&["run", "hello:1"]).code(0);
    assert_eq!(r.stdout, "hello world\n");
    // The fixture exits 7 when given any argument: `--` arguments reach it.
    let r = env.nobase(&["run", "hello:1", "--", "x"]).code(7);
    assert_eq!(r.stdout, "hello world\n");
    // A Cmd from the build is replaced by the arguments after --, and used without them.
    build(
        &env,
        &[
            hello_static().to_str().unwrap(),
            "-t",
            "hello:cmd",
            "--",
            "an-arg",
        ],
    );
    env.nobase(&["run", "hello:cmd"]).code(7);
    // nobase's own failures are Docker's 125, which programs rarely use, never 1–3: a
    // missing image, a bad flag, a runtime that is not there.
    for args in [
        &["run", "nothere:1"][..],
        &["run", "--no-such-flag", "hello:1"][..],
        &["-q", "run", "--stop-timeout", "soon", "hello:1"][..],
        &["run", "--runtime", "no-such-runtime", "hello:1"][..],
    ] {
        let r = env.nobase(args).code(125);
        assert!(r.stderr.starts_with("nobase: "), "{args:?}: {}", r.stderr);
    }
    // Nothing is left behind: no bundle, no lock.
    assert_no_bundle_left(&env);
}

#[test]
fn arguments_env_workdir_and_user_reach_the_program() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    if !busybox_image(&env) {
        return;
    }
    let r = env
        .nobase(&["run", "bb:1", "--", "echo", "a", "b c"])
        .code(0);
    assert_eq!(r.stdout, "a b c\n");
    // As with `docker run`, everything after the image is the program's, flags nobase
    // knows too; flags before the image are nobase's.
    let r = env
        .nobase(&[
            "run", "-e", "G=hi", "bb:1", "echo", "-e", "$G\\tx", "--keep",
        ])
        .code(0);
    assert_eq!(r.stdout, "$G\tx --keep\n");
    assert_no_bundle_left(&env);
    // Even when the first of them is one of nobase's flags (docker's rule, not clap's).
    let r = env
        .nobase(&[
            "run",
            "--entrypoint",
            r#"["/app/busybox","echo"]"#,
            "bb:1",
            "-e",
            "a\\tb",
            "-v",
        ])
        .code(0);
    assert_eq!(r.stdout, "a\tb -v\n");
    env.nobase(&["unpack", "bb:1", "b", "-e", "X=1", "-q"]).ok();
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("b/config.json")).unwrap()).unwrap();
    assert_eq!(
        spec["process"]["args"],
        json!(["/app/busybox", "-e", "X=1", "-q"])
    );
    std::fs::remove_dir_all(env.path("b")).unwrap();
    let r = env
        .nobase(&["run", "-e", "G=hi", "bb:1", "sh", "-c", "echo $G"])
        .code(0);
    assert_eq!(r.stdout, "hi\n");
    let r = env
        .nobase(&[
            "run",
            "-e",
            "GREETING=hi there",
            "-w",
            "/data/work",
            "-u",
            "1000:1001",
            "bb:1",
            "--",
            "sh",
            "-c",
            "echo \"$GREETING\"; pwd; id -u; id -g; echo $HOME",
        ])
        .code(0);
    assert_eq!(r.stdout, "hi there\n/data/work\n1000\n1001\n/\n");
    // HOSTNAME is in the environment, as Docker sets it: the container's hostname.
    let r = env.nobase(&["run", "bb:1", "--", "env"]).code(0);
    let hostname = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("HOSTNAME="))
        .unwrap_or_else(|| panic!("no HOSTNAME in {}", r.stdout));
    assert!(hostname.starts_with("nobase-"), "{}", r.stdout);
    // --entrypoint replaces the program (and drops the image's Cmd).
    let r = env
        .nobase(&[
            "run",
            "--entrypoint",
            "/app/busybox",
            "bb:1",
            "--",
            "basename",
            "/x/y",
        ])
        .code(0);
    assert_eq!(r.stdout, "y\n");
    let r = env
        .nobase(&["run", "bb:1", "--", "sh", "-c", "exit 42"])
        .code(42);
    assert!(!r.stderr.contains("nobase:"), "{}", r.stderr);
    // A private network has only loopback; --network host sees the host's interfaces.
    let r = env
        .nobase(&["run", "bb:1", "--", "ls", "/sys/class/net"])
        .code(0);
    assert_eq!(r.stdout, "lo\n");
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let r = env
        .nobase(&[
            "run",
            "--network",
            "host",
            "bb:1",
            "--",
            "ls",
            "/sys/class/net",
        ])
        .code(0);
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), host);
}

#[test]
fn root_runs_what_only_its_capabilities_allow_and_is_warned() {
    // A program only its owner and group may execute (0750, 1001:1002) under root:
    // Docker and `nobase run` give root CAP_DAC_OVERRIDE, which executes any file with
    // an execute bit and enters any directory; the check refused it all the same. It
    // starts now, with a warning that a runtime without capabilities (runc's default
    // spec, umoci's bundles) fails it — which runc shows.
    if !can_run() {
        return;
    }
    let env = Env::new();
    let bin = hello_static();
    let layout = craft_image(
        &env.path("owned"),
        &json!({"ref": "owned", "config": {"Entrypoint": ["/opt/app/hello"]},
        "layers": [[
            {"name": "opt", "type": "dir", "mode": 0o700, "uid": 1001, "gid": 1002},
            {"name": "opt/app", "type": "dir", "mode": 0o755},
            {"name": "opt/app/hello", "from": bin, "mode": 0o750, "uid": 1001, "gid": 1002},
        ]]}),
    );
    let j = env.nobase(&["check", "--json", &layout]).ok().json();
    assert_eq!(j["ok"], true, "{j:#}");
    let w = warning(&j, "code", "dac-override");
    assert_eq!(
        w["message"].as_str().unwrap().split(" only through").next().unwrap(),
        "root may enter /opt (mode 0700, owner 1001:1002), execute /opt/app/hello (mode 0750, owner 1001:1002)",
        "{w}"
    );
    let r = env.nobase(&["run", &layout]).code(0);
    assert_eq!(r.stdout, "hello world\n");
    if let Some(r) = runc_run(&env, &layout[4..], None) {
        assert_ne!(r.code, 0, "{}", r.stdout);
        assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    }
    // No execute bit at all: not even root executes it.
    let layout = craft_image(
        &env.path("plain"),
        &json!({"ref": "plain", "config": {"Entrypoint": ["/hello"]},
        "layers": [[{"name": "hello", "from": bin, "mode": 0o640, "uid": 1001}]]}),
    );
    let r = env.nobase(&["run", &layout]).code(126);
    assert!(r.stderr.contains("no execute permission"), "{}", r.stderr);
}

#[test]
fn a_user_without_permission_is_refused_as_runc_would_fail() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let bin = hello_static();
    let layout = craft_image(
        &env.path("private"),
        &json!({"ref": "private", "config": {"User": "1000", "Entrypoint": ["/app/hello"]},
        "layers": [[
            {"name": "app", "type": "dir", "mode": 0o755},
            {"name": "app/hello", "from": bin, "mode": 0o700},
        ]]}),
    );
    let r = env.nobase(&["run", &layout]).code(126);
    assert!(
        r.stderr.contains("not executable by user 1000")
            && r.stderr.contains("permission denied")
            && r.stderr.contains("0700"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // Without the check, runc itself refuses, in the words the check quoted, and the
    // code is still Docker's for it (runc's own is 1, which a program may return).
    let r = env.nobase(&["run", "--no-check", &layout]).code(126);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    // Its owner may run it.
    let r = env.nobase(&["run", "-u", "0", &layout]).code(0);
    assert_eq!(r.stdout, "hello world\n");
    // A missing program is named before runc is asked.
    let r = env
        .nobase(&["run", "--entrypoint", "/app/nothere", &layout])
        .code(127);
    assert!(
        r.stderr.contains("no such file or directory"),
        "{}",
        r.stderr
    );
    // And when runc is the one to find it missing.
    let r = env
        .nobase(&["run", "--no-check", "--entrypoint", "/app/nothere", &layout])
        .code(127);
    assert!(r.stderr.contains("stat /app/nothere"), "{}", r.stderr);
}

#[test]
fn unpacked_bundles_run_under_plain_runc() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    build(&env, &[hello_static().to_str().unwrap(), "-t", "hello:1"]);
    env.nobase(&["unpack", "hello:1", "bundle"]).ok();
    let r = runc(&env, &env.path("bundle"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hello world\n"),
        "{}",
        r.stderr
    );
    // An existing bundle is not overwritten.
    env.nobase(&["unpack", "hello:1", "bundle"]).code(2);

    if !busybox_image(&env) {
        return;
    }
    env.nobase(&[
        "unpack",
        "-u",
        "1000",
        "-w",
        "/work",
        "-e",
        "A=1",
        "bb:1",
        "bb",
        "--",
        "sh",
        "-c",
        "echo $A; id -u; pwd",
    ])
    .ok();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("bb/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["terminal"], false, "stdin is not a terminal");
    let r = runc(&env, &env.path("bb"));
    assert_eq!(r.stdout, "1\n1000\n/work\n", "{}", r.stderr);
}

/// `runc run` of a bundle with a private state dir, then delete. The name is unique in
/// this test process: runc names the container's cgroup after it, below its own, whatever
/// the state dir, so two tests running the same name at once share one cgroup (runc 1.1
/// warns and fails to remove it; later versions refuse to start the second).
fn runc(env: &Env, bundle: &Path) -> Run {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let state = env.path("runc-state");
    let name = format!(
        "nobase-test-{}-plain-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let r = run(Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&name)
        .stdin(Stdio::null()));
    let _ = Command::new("runc")
        .arg("--root")
        .arg(&state)
        .args(["delete", "-f", &name])
        .output();
    r
}

/// A `nobase run` started in the background. If the test fails while it runs, it is
/// killed and every container in the env's bundles is deleted: a runtime and its
/// container outlive a SIGKILLed nobase, and once the test's directory is gone nothing
/// would stop them (or the `sleep 7…` markers later runs look for). On success nothing
/// is touched: what nobase left behind is for the test to find.
struct Background<'a> {
    env: &'a Env,
    child: std::process::Child,
}

impl Drop for Background<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let Ok(bundles) = std::fs::read_dir(self.env.path("bundles")) else {
            return;
        };
        for b in bundles.flatten() {
            let state = b.path().join("state");
            for c in std::fs::read_dir(&state).into_iter().flatten().flatten() {
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(&state)
                    .args(["delete", "--force"])
                    .arg(c.file_name())
                    .output();
            }
        }
    }
}

/// Waits for a run's container to be running; returns its state dir.
fn wait_running(env: &Env, deadline: Instant) -> PathBuf {
    loop {
        assert!(Instant::now() < deadline, "the container never started");
        if let Ok(rd) = std::fs::read_dir(env.path("bundles")) {
            for e in rd.flatten() {
                let state = e.path().join("state");
                if state.is_dir() {
                    let o = Command::new("runc")
                        .arg("--root")
                        .arg(&state)
                        .arg("list")
                        .output();
                    if let Ok(o) = o {
                        if String::from_utf8_lossy(&o.stdout).contains("running") {
                            return state;
                        }
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The processes running: their pids and command lines (arguments joined by spaces).
fn command_lines() -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(p.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")))
        })
        .collect()
}

/// Starts `nobase run ARGS` in the background, waits until its container runs the
/// process `marker` names (a script starts it after its `trap`, so the handler is in
/// place: a signal before it would find PID 1 without one, which ignores it, and the run
/// would never end), sends `sig` (`TERM`, `INT`…) to nobase only, and returns nobase's
/// exit code and the state dir.
fn signal(env: &Env, args: &[&str], sig: &str, marker: &str) -> (i32, PathBuf) {
    // stderr goes to a file, not a pipe: a nobase killed by the signal would leave its
    // runtime holding the pipe open, and reading it would never end.
    let err_path = env.path("signal.stderr");
    let mut bg = Background {
        env,
        child: env
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap(),
    };
    let child = &mut bg.child;
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = wait_running(env, deadline);
    // The marker process itself, whose command line ends with it (`/app/busybox sleep
    // N`): nobase's holds it too, and the shell's has the script's rest after it.
    let started = || {
        command_lines()
            .iter()
            .any(|(pid, c)| *pid != child.id() && c.trim_end().ends_with(marker))
    };
    while !started() {
        assert!(Instant::now() < deadline, "{marker:?} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rc = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "nobase run did not end after SIG{sig}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    (status.code().unwrap_or(-1), state)
}

fn assert_no_container_left(env: &Env, state: &Path, marker: &str) {
    // The bundle and its runtime state are gone…
    assert_no_bundle_left(env);
    // …so `runc list` has nothing to show (it recreates its --root: remove that again)…
    let o = Command::new("runc")
        .arg("--root")
        .arg(state)
        .arg("list")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&o.stdout);
    assert!(listed.lines().nth(1).is_none(), "runc list: {listed}");
    let _ = std::fs::remove_dir_all(state.parent().unwrap());
    // …and no process of the container survives.
    for (_, cmd) in command_lines() {
        assert!(!cmd.contains(marker), "still running: {cmd}");
    }
}

#[test]
fn sigterm_and_sigint_reach_the_program_and_leave_no_container() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    if !busybox_image(&env) {
        return;
    }
    // A program that handles the signal gets it and its exit code comes back: SIGTERM
    // from `kill` or systemd, SIGINT as Ctrl-C sends it.
    for (sig, code) in [("TERM", 3), ("INT", 4)] {
        let marker = format!("sleep 7{}{code}", std::process::id());
        let script = format!("trap 'exit {code}' {sig}; {marker} & wait");
        let (got, state) = signal(
            &env,
            &["run", "bb:1", "--", "sh", "-c", &script],
            sig,
            &marker,
        );
        assert_eq!(got, code, "SIG{sig}");
        assert_no_container_left(&env, &state, &marker);
    }
}

#[test]
fn sigusr1_sigusr2_and_realtime_signals_reach_the_program_not_kill_nobase() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    if !busybox_image(&env) {
        return;
    }
    // Signals other than the four stop signals killed nobase itself (rc 138 for USR1),
    // leaving the container running unsupervised. Like `docker run`, nobase forwards
    // them: the program's handler runs and its own exit code comes back. 40 is a
    // real-time signal (SIGRTMIN+6 under glibc).
    for (sig, code) in [("USR1", 41), ("USR2", 42), ("40", 45)] {
        // `sleep 8…`: the other tests' `sleep 7…4` would be a prefix of `sleep 7…41`.
        let marker = format!("sleep 8{}{code}", std::process::id());
        let script = format!("trap 'exit {code}' {sig}; {marker} & wait");
        let (got, state) = signal(
            &env,
            &["run", "bb:1", "--", "sh", "-c", &script],
            sig,
            &marker,
        );
        assert_eq!(got, code, "SIG{sig}");
        assert_no_container_left(&env, &state, &marker);
    }
    // SIGUSR1 asks for no stop (a reload, say): the program carries on past the stop
    // timeout and ends when it will, with its own code.
    let marker = format!("sleep 8{}46", std::process::id());
    let script = format!("trap 'got=1' USR1; {marker} & wait; sleep 2; [ -n \"$got\" ] && exit 46");
    let (got, state) = signal(
        &env,
        &[
            "run",
            "--stop-timeout",
            "1",
            "bb:1",
            "--",
            "sh",
            "-c",
            &script,
        ],
        "USR1",
        &marker,
    );
    assert_eq!(got, 46, "a SIGUSR1 the program handles must not stop it");
    // Its `sleep` went with the container when the shell, its PID 1, ended.
    assert_no_container_left(&env, &state, &marker);
}

#[test]
fn a_sigusr2_while_unpacking_cancels_the_run_and_leaves_no_bundle() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // Many files, so that unpacking takes a while: the signal comes in the middle. The
    // entrypoint does not exist, so a signal that came too late ends in 127, not a hang.
    let files: Vec<_> = [json!({"name": "d", "type": "dir", "mode": 0o755})]
        .into_iter()
        .chain((0..8000).map(|i| json!({"name": format!("d/{i}"), "zeros": 32 << 10})))
        .collect();
    let layout = craft_image(
        &env.path("many"),
        &json!({"ref": "many", "gzip": false, "config": {"Entrypoint": ["/nothing"]},
                "layers": [files]}),
    );
    let child = env
        .cmd(&["run", "--no-check", &layout])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // The rootfs is being filled.
    'wait: loop {
        assert!(Instant::now() < deadline, "unpacking never started");
        if let Ok(rd) = std::fs::read_dir(env.path("bundles")) {
            for e in rd.flatten() {
                if e.path().join("rootfs/d").is_dir() {
                    break 'wait;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGUSR2) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // It stopped the work, cleaned up, and ends with the signal's code, as for SIGTERM.
    assert_eq!(out.status.code(), Some(128 + libc::SIGUSR2), "{err}");
    assert!(
        err.contains("interrupted before the container started"),
        "{err}"
    );
    assert_no_bundle_left(&env);
}

#[test]
fn a_container_left_running_by_a_killed_nobase_is_said_to_be_stopped() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    if !busybox_image(&env) {
        return;
    }
    // nobase killed outright (SIGKILL cannot be caught): its runtime and container run
    // on, unsupervised. The next run stops them, and says so.
    let marker = format!("sleep 8{}47", std::process::id());
    let mut bg = Background {
        env: &env,
        child: env
            .cmd(&["run", "bb:1", "--", "sh", "-c", &format!("{marker} & wait")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let state = wait_running(&env, Instant::now() + Duration::from_secs(120));
    bg.child.kill().unwrap();
    bg.child.wait().unwrap();
    let r = env.nobase(&["run", "bb:1", "--", "true"]).code(0);
    assert!(
        r.stderr
            .contains("stopped and removed a container left running by an earlier nobase run"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(its program was pid "), "{}", r.stderr);
    assert!(!r.stderr.contains("bundle(s)"), "{}", r.stderr);
    // `runc run` of the killed nobase ends once its container is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(&marker)
                })
                .unwrap_or(false)
        });
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the container's program survived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_no_container_left(&env, &state, &marker);
}

#[test]
fn a_missing_loader_is_named_before_runc_and_a_failing_runtime_leaves_nothing() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    // A dynamic program copied alone, as `COPY a.out /app/` onto scratch does.
    let layout = craft_image(
        &env.path("noloader"),
        &json!({"ref": "noloader", "config": {"Entrypoint": ["/app/hello"]},
        "layers": [[
            {"name": "app", "type": "dir", "mode": 0o755},
            {"name": "app/hello", "from": hello_dynamic(), "mode": 0o755},
        ]]}),
    );
    let r = env.nobase(&["run", &layout]).code(127);
    assert!(
        r.stderr.contains("/lib64/ld-linux-x86-64.so.2"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // Without the check runc fails to exec it; the container and bundle go anyway.
    let r = env.nobase(&["run", "--no-check", &layout]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("no such file or directory"),
        "{}",
        r.stderr
    );
    // A runtime that fails outright (here: not an OCI runtime at all) too.
    let r = env.nobase(&["run", "--no-check", "--runtime", "/bin/false", &layout]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert_no_bundle_left(&env);
}

#[test]
fn a_user_who_is_not_root_may_ping_as_under_docker() {
    // Docker lets every group open ICMP echo sockets in a container's own network
    // (net.ipv4.ping_group_range), so `ping` works as any user without CAP_NET_RAW.
    if !can_run() {
        return;
    }
    let env = Env::new();
    let prog = env.path("icmp");
    cc(
        "gcc",
        r#"#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
int main(void) {
  if (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) < 0) { perror("icmp"); return 1; }
  puts("icmp ok");
  return 0;
}
"#,
        &prog,
        &["-static"],
    );
    build(&env, &[prog.to_str().unwrap(), "-t", "icmp:1"]);
    let r = env.nobase(&["run", "-u", "65534:65534", "icmp:1"]).ok();
    assert_eq!(r.stdout, "icmp ok\n", "{}", r.stderr);
    let setting = |bundle: &str| {
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env.path(bundle).join("config.json")).unwrap())
                .unwrap();
        spec["linux"]["sysctl"]["net.ipv4.ping_group_range"].clone()
    };
    env.nobase(&["unpack", "icmp:1", "all"]).ok();
    assert_eq!(setting("all"), "0 2147483647");
    // Root in a user namespace that maps one group: the kernel would refuse the range
    // (runc then fails to start the container), so it is left out.
    if have("unshare") {
        let r = run(Command::new("unshare")
            .args(["--user", "--map-root-user"])
            .arg(env!("CARGO_BIN_EXE_nobase"))
            .args(["unpack", "icmp:1"])
            .arg(env.path("one"))
            .env("NOBASE_STORE", env.store()));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(setting("one"), serde_json::Value::Null);
    }
}

#[test]
fn a_pid_1_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    if !busybox_image(&env) {
        return;
    }
    // PID 1 without a handler ignores SIGTERM: after --stop-timeout it is killed.
    let secs = format!("7{}2", std::process::id());
    let marker = format!("sleep {secs}");
    let (code, state) = signal(
        &env,
        &["run", "--stop-timeout", "1", "bb:1", "--", "sleep", &secs],
        "TERM",
        &marker,
    );
    assert_eq!(code, 128 + 9);
    assert_no_container_left(&env, &state, &marker);
}

#[test]
fn a_stop_kill_the_runtime_refuses_is_tried_again() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    build(&env, &[hello_static().to_str().unwrap(), "-t", "hello:1"]);
    // A runtime whose container ignores SIGTERM and whose first `kill` fails, as runc's
    // does before the container exists: the kill was tried once, and nobase then waited
    // for ever on a program that would never stop.
    let fake = env.path("fake-runtime");
    // Fractional seconds (GNU sleep): unique to this test, and ended within ten minutes
    // should a failure leave it behind.
    let secs = format!("600.{}1", std::process::id());
    std::fs::write(
        &fake,
        format!(
            r#"#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in --root) state=$2; shift 2 ;; --log|--log-format) shift 2 ;; *) break ;; esac
done
case "$1" in
  run) mkdir -p "$state"; echo $$ > "$state/pid"; trap '' TERM INT; exec sleep {secs} ;;
  kill) [ -e "$state/refused" ] || {{ touch "$state/refused"; exit 1; }}
        kill -9 "$(cat "$state/pid")" ;;
  *) exit 1 ;;
esac
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let marker = format!("sleep {secs}");
    let mut child = Background {
        env: &env,
        child: env
            .cmd(&[
                "run",
                "--runtime",
                fake.to_str().unwrap(),
                "--stop-timeout",
                "1",
                "hello:1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !command_lines().iter().any(|(_, c)| c.trim_end() == marker) {
        assert!(Instant::now() < deadline, "the fake runtime never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rc = Command::new("kill")
        .args(["-TERM", &child.child.id().to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
    let status = loop {
        if let Some(s) = child.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "nobase run never ended: its one kill was refused"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(128 + 9));
    assert!(command_lines().iter().all(|(_, c)| !c.contains(&marker)));
}

/// Unpacks a crafted image; returns the run (success or refusal both fine: what
/// matters is what happened on the host).
fn unpack_crafted(env: &Env, name: &str, layers: serde_json::Value) -> (Run, PathBuf) {
    let layout = craft_image(
        &env.path(&format!("img-{name}")),
        &json!({"ref": name, "config": {"Entrypoint": ["/x"]}, "layers": layers}),
    );
    let bundle = env.path(&format!("bundle-{name}"));
    let r = env.nobase(&["unpack", &layout, bundle.to_str().unwrap()]);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(r.code == 0 || r.code == 3, "{name}: {}", r.stderr);
    (r, bundle.join("rootfs"))
}

#[test]
fn hostile_layers_write_nothing_outside_the_bundle() {
    let env = Env::new();
    let passwd_before = std::fs::read("/etc/passwd").unwrap();

    // `../../…` climbs out: refused, nothing written, no partial bundle left.
    let climb = sentinel("climb");
    let up = "../".repeat(30);
    let (r, rootfs) = unpack_crafted(
        &env,
        "climb",
        json!([[{"name": format!("{up}{}", &climb.display().to_string()[1..]), "data": "x"}]]),
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("climbs out of the root"), "{}", r.stderr);
    assert!(!climb.exists());
    assert!(!rootfs.parent().unwrap().exists(), "partial bundle left");

    // An absolute name lands inside the root.
    let abs = sentinel("abs");
    let (r, rootfs) = unpack_crafted(&env, "abs", json!([[{"name": abs, "data": "x"}]]));
    r.code(0);
    assert!(!abs.exists());
    assert!(rootfs.join(abs.strip_prefix("/").unwrap()).is_file());

    // A symlink to /tmp, then a file under it, in the same layer.
    let via = sentinel("via-link");
    let (r, rootfs) = unpack_crafted(
        &env,
        "via-link",
        json!([[
            {"name": "pwn", "type": "symlink", "target": "/tmp"},
            {"name": format!("pwn/{}", via.file_name().unwrap().to_str().unwrap()), "data": "x"},
        ]]),
    );
    r.code(0);
    assert!(!via.exists());
    assert!(rootfs.join("tmp").join(via.file_name().unwrap()).is_file());

    // A relative symlink climbing out in one layer, written through in the next.
    let cross = sentinel("cross-layer");
    let (r, _) = unpack_crafted(
        &env,
        "cross",
        json!([
            [{"name": "esc", "type": "symlink", "target": format!("{up}tmp")}],
            [{"name": format!("esc/{}", cross.file_name().unwrap().to_str().unwrap()), "data": "x"}],
        ]),
    );
    r.code(0);
    assert!(!cross.exists());

    // A symlink to a host directory, then a directory entry of the same name with
    // another mode: the link is replaced, the host directory keeps its mode.
    let hostdir = sentinel("dir-mode");
    std::fs::create_dir(&hostdir).unwrap();
    std::fs::set_permissions(&hostdir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (r, rootfs) = unpack_crafted(
        &env,
        "dir-mode",
        json!([
            [{"name": "d", "type": "symlink", "target": hostdir}],
            [{"name": "d", "type": "dir", "mode": 0o777}, {"name": "d/f", "data": "x"}],
        ]),
    );
    r.code(0);
    let mode = std::fs::metadata(&hostdir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    assert_eq!(std::fs::read_dir(&hostdir).unwrap().count(), 0);
    assert!(rootfs.join("d/f").is_file());

    // Whiteouts and opaque markers through a symlink to the host's /tmp: the host file
    // survives.
    let victim = sentinel("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let vname = victim.file_name().unwrap().to_str().unwrap();
    let (r, _) = unpack_crafted(
        &env,
        "whiteout",
        json!([
            [{"name": "lnk", "type": "symlink", "target": "/tmp"}],
            [{"name": format!("lnk/.wh.{vname}")}, {"name": "lnk/.wh..wh..opq"}],
        ]),
    );
    r.code(0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    let (r, _) = unpack_crafted(
        &env,
        "wh-up",
        json!([[{"name": format!("../.wh.{vname}")}]]),
    );
    r.code(3);
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");

    // A hard link to /etc/passwd (absent in the image), then a write through its name.
    let (r, _) = unpack_crafted(
        &env,
        "hardlink",
        json!([
            [{"name": "pw", "type": "link", "target": "/etc/passwd"}],
            [{"name": "pw", "data": "pwned"}],
        ]),
    );
    let r = r.code(3);
    assert!(r.stderr.contains("not in the image"), "{}", r.stderr);
    // With the image's own /etc/passwd, the link points at that one.
    let (r, rootfs) = unpack_crafted(
        &env,
        "hardlink-inside",
        json!([
            [{"name": "etc/passwd", "data": "root:x:0:0::/:/x\n"},
             {"name": "pw", "type": "link", "target": "../../../etc/passwd"}],
        ]),
    );
    r.code(3); // `..` above the root in a link target is refused too
    let _ = rootfs;
    let (r, rootfs) = unpack_crafted(
        &env,
        "hardlink-abs",
        json!([
            [{"name": "etc/passwd", "data": "root:x:0:0::/:/x\n"},
             {"name": "pw", "type": "link", "target": "/etc/passwd"}],
            [{"name": "pw", "data": "pwned"}],
        ]),
    );
    r.code(0);
    assert_eq!(
        std::fs::read(rootfs.join("etc/passwd")).unwrap(),
        b"root:x:0:0::/:/x\n"
    );
    assert_eq!(std::fs::read(rootfs.join("pw")).unwrap(), b"pwned");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);

    for p in [&climb, &abs, &via, &cross] {
        assert!(!p.exists(), "{} was written", p.display());
    }
    let _ = std::fs::remove_dir_all(&hostdir);
    let _ = std::fs::remove_file(&victim);
}

#[test]
fn whiteouts_modes_devices_and_bombs() {
    let env = Env::new();
    let (r, rootfs) = unpack_crafted(
        &env,
        "layers",
        json!([
            [
                {"name": "a/x", "data": "1"}, {"name": "a/y", "data": "2"},
                {"name": "b/z", "data": "3"}, {"name": "b/sub/deep", "data": "4"},
                {"name": "suid", "data": "s", "mode": 0o4755},
                {"name": "ro", "type": "dir", "mode": 0o555},
                {"name": "ro/f", "data": "f"},
                {"name": "null", "type": "char", "mode": 0o666},
                {"name": "fifo", "type": "fifo"},
            ],
            [
                // The opaque marker comes after an entry of its own layer: order does
                // not matter, only lower layers are hidden.
                {"name": "b/new", "data": "5"}, {"name": "b/.wh..wh..opq"},
                {"name": "a/.wh.x"},
            ],
        ]),
    );
    let r = r.code(0);
    assert!(!rootfs.join("a/x").exists());
    assert!(rootfs.join("a/y").is_file());
    assert!(!rootfs.join("b/z").exists());
    assert!(!rootfs.join("b/sub").exists());
    assert!(rootfs.join("b/new").is_file());
    let mode = |p: &str| {
        std::fs::symlink_metadata(rootfs.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("suid"), 0o755, "setuid dropped");
    assert_eq!(mode("ro"), 0o555);
    assert!(
        !rootfs.join("null").exists(),
        "devices skipped without --devices"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(rootfs.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(r.stderr.contains("setuid"), "{}", r.stderr);

    // --devices creates them (as root).
    if is_root() {
        let layout = craft_image(
            &env.path("img-dev"),
            &json!({"ref": "d", "config": {"Entrypoint": ["/x"]},
                "layers": [[{"name": "null", "type": "char", "mode": 0o666}]]}),
        );
        env.nobase(&["unpack", "--devices", &layout, "dev-bundle"])
            .ok();
        let m = std::fs::symlink_metadata(env.path("dev-bundle/rootfs/null")).unwrap();
        assert!(m.file_type().is_char_device());
        use std::os::unix::fs::MetadataExt;
        // Linux's encoding of device 1:3 (/dev/null).
        assert_eq!(m.rdev(), (1 << 8) | 3);
    }

    // --keep-setuid keeps it.
    let layout = craft_image(
        &env.path("img-suid"),
        &json!({"ref": "s", "config": {"Entrypoint": ["/x"]},
            "layers": [[{"name": "suid", "data": "s", "mode": 0o4755}]]}),
    );
    env.nobase(&["unpack", "--keep-setuid", &layout, "suid-bundle"])
        .ok();
    let m = std::fs::metadata(env.path("suid-bundle/rootfs/suid")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o4755);

    // A small gzip blob that inflates far beyond --max-size is stopped at the cap.
    let layout = craft_image(
        &env.path("img-bomb"),
        &json!({"ref": "bomb", "gzip": true, "config": {"Entrypoint": ["/x"]},
            "layers": [[{"name": "zeros", "zeros": 200u64 << 20}]]}),
    );
    let blob_bytes = du(&env.path("img-bomb"));
    assert!(blob_bytes < 4 << 20, "the bomb is {blob_bytes} bytes");
    let r = env
        .nobase(&["unpack", "--max-size", "20M", &layout, "bomb"])
        .code(3);
    assert!(r.stderr.contains("decompression bomb"), "{}", r.stderr);
    assert!(!env.path("bomb").exists());
}

#[test]
fn usage_errors_are_clear() {
    let env = Env::new();
    build(&env, &[hello_static().to_str().unwrap(), "-t", "hello:1"]);
    let r = env
        .nobase(&["run", "--runtime", "/nonexistent/runc", "hello:1"])
        .code(125);
    assert!(r.stderr.contains("--runtime"), "{}", r.stderr);
    let r = env
        .nobase(&["unpack", "-w", "relative", "hello:1", "b"])
        .code(2);
    assert!(r.stderr.contains("not absolute"), "{}", r.stderr);
    assert!(!env.path("b").exists());
    let r = env
        .nobase(&["unpack", "-u", "nobody", "hello:1", "b"])
        .code(3);
    assert!(r.stderr.contains("/etc/passwd"), "{}", r.stderr);
    let r = env.nobase(&["unpack", "nothere:1", "b"]).code(3);
    assert!(r.stderr.contains("nobase images"), "{}", r.stderr);
}

#[test]
fn without_root_bundles_are_rootless() {
    if !(can_run() && have("setpriv")) {
        return;
    }
    let env = Env::new();
    if !busybox_image(&env) {
        return;
    }
    // A directory the unprivileged user owns, and that user running nobase.
    let home = env.path("nobody");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&home)
        .status()
        .unwrap();
    assert!(st.success());
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(nobase_bin())
            .args(["--store", &format!("{}/store", home.display())])
            .args(args)
            .env("HOME", &home)
            .current_dir(&home)
            .stdin(Stdio::null());
        run(&mut c)
    };
    if as_nobody(&["--version"]).code != 0 {
        eprintln!("skipping: the nobase binary is not reachable by an unprivileged user here");
        return;
    }
    // The store is root's; the unprivileged user reads it through an oci: layout copy.
    let copy = home.join("layout");
    let st = Command::new("cp")
        .arg("-r")
        .arg(env.store())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let image = format!("oci:{}:bb:1", copy.display());
    let bundle = home.join("bundle");
    let r = as_nobody(&["unpack", &image, bundle.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["linux"]["uidMappings"][0]["hostID"], 65534);
    assert_eq!(cfg["linux"]["uidMappings"][0]["containerID"], 0);
    let r = as_nobody(&[
        "run",
        "-w",
        "/work",
        &image,
        "--",
        "sh",
        "-c",
        "id -u; pwd; echo ok > /f",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "0\n/work\n"),
        "{}",
        r.stderr
    );
    // Another user than root cannot be mapped without privileges: said plainly.
    let r = as_nobody(&["run", "-u", "1000", &image, "--", "id"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("run nobase as root"), "{}", r.stderr);
}

/// umoci 0.4's `insert` ends a layer right after the last file's data, without its
/// padding or the tar's end blocks. umoci, containerd and `nobase tree` accept that;
/// `unpack` and `run` did not ("unexpected EOF during skip") and now supply the zeros.
#[test]
fn umoci_layers_without_final_padding_unpack() {
    if !have("umoci") {
        return;
    }
    let env = Env::new();
    let layout = env.path("seed");
    let l = layout.to_str().unwrap();
    let tree = env.path("rootfs");
    std::fs::create_dir_all(tree.join("app")).unwrap();
    std::fs::copy(hello_static(), tree.join("app/hello")).unwrap();
    let umoci = |args: &[&str]| run(Command::new("umoci").args(args)).ok();
    umoci(&["init", "--layout", l]);
    umoci(&["new", "--image", &format!("{l}:bare")]);
    umoci(&[
        "insert",
        "--image",
        &format!("{l}:bare"),
        tree.to_str().unwrap(),
        "/",
    ]);
    umoci(&[
        "config",
        "--image",
        &format!("{l}:bare"),
        "--config.cmd",
        "/app/hello",
    ]);
    let bundle = env.path("bundle");
    env.nobase(&["unpack", &format!("oci:{l}:bare"), bundle.to_str().unwrap()])
        .ok();
    assert_eq!(
        std::fs::read(bundle.join("rootfs/app/hello")).unwrap(),
        std::fs::read(hello_static()).unwrap()
    );
    if can_run() {
        let r = env.nobase(&["run", &format!("oci:{l}:bare")]).ok();
        assert_eq!(r.stdout, "hello world\n");
    }
}

#[test]
fn a_working_directory_that_is_a_file_is_the_images_fault_with_the_way_out() {
    if !can_run() {
        return;
    }
    let env = Env::new();
    let bin = hello_static();
    build(
        &env,
        &[
            bin.to_str().unwrap(),
            "-w",
            "/app/hello-static",
            "--no-check",
            "-t",
            "wd:1",
        ],
    );
    // Even with --no-check: a file is where the directory must be; refused (125, as
    // Docker's setup failures), not an I/O failure, and the flag that gets past it is named.
    for args in [&["run", "wd:1"][..], &["run", "--no-check", "wd:1"][..]] {
        let r = env.nobase(args).code(125);
        assert!(
            r.stderr.contains("is not a directory in the image") && r.stderr.contains("-w DIR"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = env.nobase(&["run", "-w", "/tmp", "wd:1"]).code(0);
    assert_eq!(r.stdout, "hello world\n");
}

#[test]
fn localhost_and_the_hostname_resolve_in_a_scratch_image_as_under_docker() {
    // Docker mounts /etc/hosts and /etc/hostname into every container, scratch ones
    // too; without them `localhost` did not resolve (a Go server listening on
    // localhost:8080 failed, while `check` said it would start).
    if !can_run() {
        return;
    }
    let env = Env::new();
    let gai = env.path("gai");
    cc(
        "gcc",
        r#"#include <netdb.h>
#include <stdio.h>
#include <unistd.h>
static int resolves(const char *name, int show) {
  struct addrinfo *r;
  char a[64] = "";
  int e = getaddrinfo(name, "80", 0, &r);
  if (e) { printf("%s: %s\n", name, gai_strerror(e)); return 0; }
  getnameinfo(r->ai_addr, r->ai_addrlen, a, sizeof a, 0, 0, NI_NUMERICHOST);
  freeaddrinfo(r);
  if (show) printf("%s resolves to %s\n", name, a);
  else printf("%s resolves\n", name);
  return 1;
}
int main(int argc, char **argv) {
  char h[256] = "";
  int ok;
  gethostname(h, sizeof h);
  ok = resolves("localhost", 0) & resolves(h, 0);
  for (int i = 1; i < argc; i++) ok &= resolves(argv[i], 1);
  return ok ? 0 : 1;
}
"#,
        &gai,
        &[],
    );
    build(&env, &[gai.to_str().unwrap(), "-t", "gai:1"]);
    // The hostname is nobase-<digest>, or with the host's network the host's, as
    // under Docker.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for (net, name) in [
        (&[][..], "nobase-"),
        (&["--network", "host"][..], host.trim()),
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(net);
        args.push("gai:1");
        let r = env.nobase(&args).ok();
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines[0], "localhost resolves", "{net:?}: {}", r.stdout);
        assert!(
            lines[1].starts_with(name) && lines[1].ends_with(" resolves"),
            "{net:?}: {}",
            r.stdout
        );
    }
    // --add-host names more, as `docker run --add-host` does; host-gateway is the host
    // only where its network is shared.
    let added = ["--add-host", "db:10.0.0.5", "--add-host", "v6db=[fd00::5]"];
    let mut args = vec!["run"];
    args.extend(added);
    args.extend(["gai:1", "db", "v6db"]);
    let r = env.nobase(&args).ok();
    assert!(
        r.stdout
            .ends_with("db resolves to 10.0.0.5\nv6db resolves to fd00::5\n"),
        "{}",
        r.stdout
    );
    let r = env
        .nobase(&[
            "run",
            "--network",
            "host",
            "--add-host",
            "gw:host-gateway",
            "gai:1",
            "gw",
        ])
        .ok();
    assert!(
        r.stdout.ends_with("gw resolves to 127.0.0.1\n"),
        "{}",
        r.stdout
    );
    let r = env
        .nobase(&["run", "--add-host", "gw:host-gateway", "gai:1"])
        .code(125);
    assert!(r.stderr.contains("--network host"), "{}", r.stderr);
    // An unpacked bundle carries the files for plain runc, added names too.
    let mut args = vec!["unpack"];
    args.extend(added);
    args.extend(["gai:1", "bundle"]);
    env.nobase(&args).ok();
    let hostname = std::fs::read_to_string(env.path("bundle/hostname")).unwrap();
    assert!(hostname.starts_with("nobase-"), "{hostname}");
    let r = runc(&env, &env.path("bundle"));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("localhost resolves\n"), "{}", r.stdout);
    let hosts = std::fs::read_to_string(env.path("bundle/hosts")).unwrap();
    assert!(
        hosts.ends_with("\n10.0.0.5\tdb\nfd00::5\tv6db\n"),
        "{hosts}"
    );
}

#[test]
fn a_working_directory_build_makes_belongs_to_the_user_it_runs_as() {
    // `build -w /work -u 1000:1000` made /work root's, so the program could not write
    // where it starts, while a Dockerfile's WORKDIR under USER 1000 (BuildKit) gives the
    // user the directory.
    let env = Env::new();
    let hello = hello_static();
    let owner = |tag: &str| -> (u64, u64) {
        let j = env.nobase(&["tree", "--json", tag]).ok().json();
        let w = j["merged"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/work")
            .unwrap_or_else(|| panic!("no /work: {j}"))
            .clone();
        (w["uid"].as_u64().unwrap(), w["gid"].as_u64().unwrap())
    };
    let h = hello.to_str().unwrap();
    build(&env, &[h, "-w", "/work", "-u", "1000:1001", "-t", "w:1"]);
    assert_eq!(owner("w:1"), (1000, 1001));
    build(
        &env,
        &[
            h, "-w", "/work", "-u", "nonroot", "--with", "passwd", "-t", "w:2",
        ],
    );
    assert_eq!(owner("w:2"), (65532, 65532));
    build(&env, &[h, "-w", "/work", "-t", "w:3"]);
    assert_eq!(owner("w:3"), (0, 0));
    let Some(bb) = busybox().filter(|_| can_run()) else {
        return;
    };
    build(
        &env,
        &[
            bb.to_str().unwrap(),
            "-w",
            "/work",
            "-u",
            "1000:1000",
            "-t",
            "bbw:1",
        ],
    );
    let r = env
        .nobase(&["run", "bbw:1", "sh", "-c", "echo hi > x && cat x && pwd"])
        .ok();
    assert_eq!(r.stdout, "hi\n/work\n");
}

#[test]
fn setuid_bits_and_file_capabilities_the_image_drops_are_said() {
    // ping's cap_net_raw and a setuid program's bit do not reach the image (layers
    // carry no xattrs; programs are stored 0755): the build said nothing, and the
    // program then failed with "Operation not permitted" as a non-root user.
    let env = Env::new();
    let prog = env.path("suid");
    std::fs::copy(hello_static(), &prog).unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let r = env
        .nobase(&["build", prog.to_str().unwrap(), "-t", "s:1"])
        .ok();
    assert!(
        r.stderr.contains(&format!(
            "warning: {} is setuid on this machine, which the image does not keep",
            prog.display()
        )),
        "{}",
        r.stderr
    );
    if !have("setcap") || !is_root() {
        return;
    }
    let capped = env.path("capped");
    std::fs::copy(hello_static(), &capped).unwrap();
    let s = run(Command::new("setcap")
        .arg("cap_net_raw,cap_net_bind_service=ep")
        .arg(&capped));
    if s.code != 0 {
        return; // a filesystem without xattrs
    }
    let j = env
        .nobase(&["build", "--json", capped.to_str().unwrap(), "-t", "c:1"])
        .ok()
        .json();
    let w = warning(&j, "code", "dropped-privileges");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("has file capabilities on this machine (cap_net_bind_service, cap_net_raw)"),
        "{w}"
    );
}

#[test]
fn unpack_never_writes_its_etc_files_through_a_planted_link() {
    // `unpack IMG DIR` into a directory someone else prepared: DIR/hosts → a file of
    // theirs' victim was rewritten with the hosts text. A directory that has any of the
    // bundle's files is refused, and nothing is written through links.
    let env = Env::new();
    build(
        &env,
        &[
            hello_static().to_str().unwrap(),
            "--path",
            "/app/hello",
            "-t",
            "hello:1",
        ],
    );
    let victim = env.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    for name in ["hosts", "hostname"] {
        let dir = env.path(&format!("prepared-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
        let r = env
            .nobase(&["unpack", "hello:1", dir.to_str().unwrap()])
            .code(2);
        assert!(r.stderr.contains("already holds a bundle"), "{}", r.stderr);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!dir.join("rootfs").exists());
    }
    // A failed unpack into a new directory leaves nothing, the /etc files included.
    let gone = env.path("failed");
    env.nobase(&[
        "unpack",
        "-w",
        "/app/hello",
        "hello:1",
        gone.to_str().unwrap(),
    ])
    .code(1);
    assert!(
        !gone.exists(),
        "{:?}",
        std::fs::read_dir(&gone).map(|d| d.count())
    );
}

#[test]
fn an_image_whose_etc_cannot_take_the_hosts_mounts_still_runs() {
    // After /etc/hosts and /etc/hostname were mounted into every container, images
    // whose /etc is a file, or whose /etc/hosts is a directory, failed in runc
    // ("not a directory") while `check` said they would start. They keep their own.
    if !can_run() {
        return;
    }
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("a/etc/hosts")).unwrap();
    std::fs::write(ctx.join("a/etc/hosts/x"), "x\n").unwrap();
    std::fs::create_dir_all(ctx.join("b")).unwrap();
    std::fs::write(ctx.join("b/etc"), "not a directory\n").unwrap();
    std::fs::copy(hello_static(), ctx.join("hello")).unwrap();
    for x in ["a", "b"] {
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM scratch\nCOPY hello /hello\nCOPY {x}/ /\nENTRYPOINT [\"/hello\"]\n"),
        )
        .unwrap();
        let tag = format!("etc{x}:1");
        env.nobase(&[
            "build",
            "-q",
            "-f",
            ctx.join("Dockerfile").to_str().unwrap(),
            ctx.to_str().unwrap(),
            "-t",
            &tag,
        ])
        .ok();
        let r = env.nobase(&["run", &tag]).ok();
        assert_eq!(r.stdout, "hello world\n", "{x}: {}", r.stderr);
        // --add-host has no hosts file to go into there: said, not silently dropped.
        let r = env.nobase(&["run", "--add-host", "db:10.0.0.5", &tag]).ok();
        assert!(
            r.stderr
                .contains("--add-host is not applied: the image's /etc/hosts"),
            "{x}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_data_image_unpacks_to_look_at_and_run_still_refuses_it() {
    // `unpack` of an image without Entrypoint or Cmd was refused; umoci unpacks it, and
    // looking at a data image's files is what one unpacks it for.
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("x"), "data\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY x /data/x\n").unwrap();
    env.nobase(&[
        "build",
        "-f",
        ctx.join("Dockerfile").to_str().unwrap(),
        ctx.to_str().unwrap(),
        "-t",
        "data:1",
    ])
    .ok();
    let bundle = env.path("bundle");
    let r = env
        .nobase(&["unpack", "data:1", bundle.to_str().unwrap()])
        .ok();
    assert!(r.stderr.contains("process.args is empty"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/data/x")).unwrap(),
        "data\n"
    );
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!([]));
    // `run` has nothing to start: still a usage error naming the way past it.
    let r = env.nobase(&["run", "data:1"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("names no program"), "{}", r.stderr);
}
