//! The interface around the commands: the walk with no arguments, help, completions and
//! man pages generated from the same definitions.

use crate::util::*;
use std::process::Command;

#[test]
fn no_arguments_show_the_walk() {
    let env = Env::new();
    let r = env.nobase(&[]).ok();
    // The walk, in its order: inspect → build → check → run → tree → push.
    let mut at = 0;
    for step in [
        "nobase inspect ./hello",
        "nobase build ./hello",
        "nobase build -f Dockerfile",
        "nobase check hello:1",
        "nobase run hello:1",
        "nobase tree hello:1",
        "nobase push hello:1 docker://",
        "NAME[:TAG]",
        "oci:DIR",
    ] {
        match r.stdout[at..].find(step) {
            Some(i) => at += i,
            None => panic!("{step} missing or out of order in:\n{}", r.stdout),
        }
    }
    let v = env.nobase(&["--version"]).ok();
    assert!(v.stdout.starts_with("nobase "), "{}", v.stdout);
}

#[test]
fn every_command_has_help_with_a_description() {
    let env = Env::new();
    let top = env.nobase(&["--help"]).ok();
    let commands: Vec<String> = top
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 6, "{commands:?}");
    for c in &commands {
        let r = env.nobase(&[c, "--help"]).ok();
        assert!(r.stdout.contains("Usage: nobase"), "{c}: {}", r.stdout);
    }
}

#[test]
fn completions_generate_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = env.nobase(&["completions", shell]).ok();
        assert!(
            r.stdout.contains("inspect") && r.stdout.contains("build"),
            "{shell}"
        );
    }
    // The bash script is valid bash.
    let script = env.path("nobase.bash");
    std::fs::write(&script, env.nobase(&["completions", "bash"]).ok().stdout).unwrap();
    run(Command::new("bash").arg("-n").arg(&script)).ok();
    assert_eq!(env.nobase(&["completions", "tcsh"]).code, 2);
}

#[test]
fn man_pages_generate() {
    let env = Env::new();
    let r = env.nobase(&["man"]).ok();
    assert!(
        r.stdout.contains(".TH nobase 1"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    let dir = env.path("man1");
    env.nobase(&["man", dir.to_str().unwrap()]).ok();
    for page in ["nobase.1", "nobase-build.1", "nobase-inspect.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    // Every page the main page names exists (it listed a nobase-help(1) never written).
    let main = std::fs::read_to_string(dir.join("nobase.1")).unwrap();
    for word in main.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\')) {
        if let Some(sub) = word.strip_prefix("nobase\\-") {
            let page = format!("nobase-{}.1", sub.replace("\\-", "-"));
            assert!(
                dir.join(&page).exists(),
                "nobase.1 names {page}, which is not there"
            );
        }
    }
}

/// Dogfooding: `scripts/self-image` builds nobase as a static executable and packages it
/// with itself into a scratch image; runc starts that image, and the nobase inside
/// answers `--version` and inspects itself. The static release build lives in
/// target/self and is reused between runs (a cold one costs minutes on two cores; CI's
/// scripts/demo then reuses it instead of building nobase again). While iterating,
/// `NOBASE_TEST_SKIP_SELF_IMAGE=1` skips it — except in CI (`NOBASE_TEST_REQUIRE_TOOLS`).
#[test]
fn nobase_ships_as_its_own_scratch_image() {
    if std::env::var_os("NOBASE_TEST_SKIP_SELF_IMAGE").is_some()
        && std::env::var_os("NOBASE_TEST_REQUIRE_TOOLS").is_none()
    {
        eprintln!("skipping: NOBASE_TEST_SKIP_SELF_IMAGE is set");
        return;
    }
    // Check for what starting the image needs before paying for the release build.
    if !(have("umoci") && have("runc") && is_root()) {
        return;
    }
    let env = Env::new();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/self-image");
    let r = run(Command::new(&script)
        .args(["-t", "nobase:dev"])
        .env("NOBASE_STORE", env.store())
        .env_remove("SOURCE_DATE_EPOCH"));
    assert_eq!(r.code, 0, "scripts/self-image failed:\n{}", r.stderr);
    // Static: one layer, no bundled loader or libraries.
    let j = env.nobase(&["tree", "--json", "nobase:dev"]).ok().json();
    assert_eq!(j["layers"].as_array().map(Vec::len), Some(1), "{j}");
    env.nobase(&["check", "nobase:dev"]).ok();

    let image = format!("{}:nobase:dev", env.store().display());
    let v = runc_run(&env, &image, Some(&["--version"])).expect("runc");
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!(
        v.stdout.trim(),
        format!("nobase {}", env!("CARGO_PKG_VERSION"))
    );
    let i = runc_run(&env, &image, Some(&["inspect", "/app/nobase"])).expect("runc");
    assert_eq!(i.code, 0, "{}", i.stderr);
    assert!(
        i.stdout.starts_with("/app/nobase: ELF 64-bit LSB static")
            && i.stdout.contains("starts on its own in FROM scratch"),
        "{}",
        i.stdout
    );
    // The C parts work in there: the image rebuilds itself bit for bit (gzip through
    // libdeflate), and with zstd.
    let digest = r.stdout.split_whitespace().next().unwrap_or_default();
    assert!(digest.starts_with("sha256:"), "{}", r.stdout);
    let store = ["-q", "--store", "/tmp/store", "build", "/app/nobase"];
    let again = runc_run(&env, &image, Some(&store)).expect("runc");
    assert_eq!(
        (again.code, again.stdout.trim()),
        (0, digest),
        "{}",
        again.stderr
    );
    let zstd = [&store[..], &["--compression", "zstd"]].concat();
    let z = runc_run(&env, &image, Some(&zstd)).expect("runc");
    assert_eq!(z.code, 0, "{}", z.stderr);
    assert!(z.stdout.starts_with("sha256:") && z.stdout.trim() != digest);
}

/// A build says in a few lines what went into the image; `-v` explains every file and
/// why each bundled one is there; `-q` prints the digest alone.
#[test]
fn a_build_says_what_went_in_and_why() {
    let env = Env::new();
    std::fs::copy(hello_dynamic(), env.path("hello")).unwrap();
    let r = env.nobase(&["build", "hello", "-t", "hello:1"]).ok();
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(lines[0].starts_with("layer 1/2  sha256:"), "{}", r.stderr);
    assert!(
        lines[0].contains("(nobase bundle: loader /lib64/ld-linux-x86-64.so.2 and 1 library)"),
        "{}",
        r.stderr
    );
    assert_eq!(lines[1], "  hello needs libc.so.6", "{}", r.stderr);
    assert!(
        lines[2].starts_with("layer 2/2  sha256:")
            && lines[2].contains("  1 file, ")
            && lines[2].ends_with("  (nobase build /app/hello)"),
        "{}",
        r.stderr
    );
    let digest = r.stdout.lines().next().unwrap().split("  ").next().unwrap();
    assert!(digest.starts_with("sha256:"), "{}", r.stdout);
    assert!(r.stdout.ends_with("  → hello:1\n"), "{}", r.stdout);

    let v = env.nobase(&["-v", "build", "hello", "-t", "hello:1"]).ok();
    assert!(
        v.stderr.contains(
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2  the loader hello names (PT_INTERP)"
        ),
        "{}",
        v.stderr
    );
    assert!(
        v.stderr
            .contains("libc.so.6  hello needs libc.so.6 (DT_NEEDED), found through "),
        "{}",
        v.stderr
    );
    assert!(v.stderr.contains("  /app/hello\n"), "{}", v.stderr);

    let q = env.nobase(&["-q", "build", "hello", "-t", "hello:1"]).ok();
    assert_eq!(q.stdout, format!("{digest}\n"));
    assert_eq!(q.stderr, "");
}

/// `-q` leaves what a script needs, `-v` explains; every command takes both.
#[test]
fn quiet_and_verbose_reach_every_command() {
    let env = Env::new();
    std::fs::copy(hello_static(), env.path("hello")).unwrap();
    env.nobase(&["build", "hello", "-t", "hello:1"]).ok();
    let q = |args: &[&str]| {
        let mut a = vec!["-q"];
        a.extend_from_slice(args);
        env.nobase(&a)
    };
    assert_eq!(q(&["images"]).ok().stdout, "hello:1\n");
    let c = q(&["check", "hello:1"]).ok();
    assert_eq!((c.stdout.as_str(), c.stderr.as_str()), ("", ""));
    let i = q(&["inspect", "hello"]).ok();
    assert_eq!(i.stdout.lines().count(), 1, "{}", i.stdout);
    assert!(
        i.stdout.starts_with("hello: ELF 64-bit LSB static"),
        "{}",
        i.stdout
    );
    assert_eq!(q(&["tree", "hello:1"]).ok().stdout, "");
    assert_eq!(q(&["fsck"]).ok().stdout, "");
    let u = q(&["unpack", "hello:1", "bundle"]).ok();
    assert_eq!((u.stdout.as_str(), u.stderr.as_str()), ("", ""));
    // Copies print only the digest with -q, as build does.
    let digest = env.nobase(&["images", "--json"]).ok().json()[0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let p = q(&["push", "hello:1", "oci:copy:x"]).ok();
    assert_eq!(
        (p.stdout.as_str(), p.stderr.as_str()),
        (&*format!("{digest}\n"), "")
    );
    let p = q(&["pull", "oci:copy:x", "-t", "copied:1"]).ok();
    assert_eq!(
        (p.stdout.as_str(), p.stderr.as_str()),
        (&*format!("{digest}\n"), "")
    );
    if have("runc") && is_root() {
        // run's own output goes; the program's stays.
        let r = q(&["run", "hello:1"]).ok();
        assert_eq!(
            (r.stdout.as_str(), r.stderr.as_str()),
            ("hello world\n", "")
        );
    }

    let v = env.nobase(&["-v", "check", "hello:1"]).ok();
    for step in [
        "nobase: passed: runs as root (uid 0, gid 0)",
        "nobase: passed: command /app/hello exists",
        "nobase: passed: /app/hello is an ELF 64-bit x86-64 program for linux/amd64",
        "nobase: passed: /app/hello is a statically linked executable: no loader or libraries needed",
    ] {
        assert!(v.stderr.contains(step), "{step}:\n{}", v.stderr);
    }
    let full = env.nobase(&["-v", "images"]).ok();
    assert!(full.stdout.contains(&digest), "{}", full.stdout);
    let iv = env.nobase(&["-v", "inspect", "/usr/bin/curl"]);
    if iv.code == 0 {
        assert!(iv.stdout.contains("  search     "), "{}", iv.stdout);
    }
    q(&["rmi", "copied:1"]).ok();
    let r = env.nobase(&["-v", "rmi", "hello:1"]).ok();
    assert!(r.stderr.contains("deleted sha256:"), "{}", r.stderr);
    assert_eq!(q(&["images"]).ok().stdout, "");
    // -q and -v together make no sense.
    env.nobase(&["-q", "-v", "images"]).code(2);
}

/// Progress and colour reach a terminal only: `script` gives nobase one. The progress
/// line is drawn with `\r` and spaces alone, and never with -q or --json; colours go
/// with NO_COLOR. Captured output (every other test) has neither.
#[test]
fn progress_and_colour_only_on_a_terminal() {
    if !have("script") {
        return;
    }
    let env = Env::new();
    std::fs::copy(hello_static(), env.path("hello")).unwrap();
    let tty = |args: &str, no_color: bool| {
        let line = format!("{} {args}", nobase_bin().display());
        let mut c = Command::new("script");
        c.args(["-qec", &line, "/dev/null"])
            .env("NOBASE_STORE", env.store())
            .env("XDG_CACHE_HOME", env.path("cache"))
            .env("DOCKER_CONFIG", env.path("docker"))
            .current_dir(env.dir.path());
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        run(&mut c)
    };
    let b = tty("build hello -t hello:1", false);
    assert_eq!(b.code, 0, "{}", b.stdout);
    assert!(b.stdout.contains("\rbuilding hello  "), "{:?}", b.stdout);
    assert!(!b.stdout.contains('\x1b'), "{:?}", b.stdout);
    for quiet in ["-q build hello -t hello:1", "build --json hello -t hello:1"] {
        let r = tty(quiet, false);
        assert!(
            !r.stdout.contains("building hello"),
            "{quiet}: {:?}",
            r.stdout
        );
    }
    let c = tty("check hello:1", false);
    assert!(
        c.stdout.contains("\x1b[32mwill start\x1b[0m"),
        "{:?}",
        c.stdout
    );
    assert!(c.stdout.contains("\rreading hello:1  "), "{:?}", c.stdout);
    let plain = tty("check hello:1", true);
    assert!(!plain.stdout.contains('\x1b'), "{:?}", plain.stdout);
    let captured = env.nobase(&["check", "hello:1"]).ok();
    assert!(!captured.stdout.contains('\x1b') && !captured.stderr.contains('\r'));
    // A push draws one bar per blob on a terminal, each ending with what happened to it;
    // captured, it prints only the summary line.
    if let Some(reg) = crate::registry::Registry::start(crate::registry::Auth::None) {
        let p = tty(
            &format!("push hello:1 docker://{}/ux/hello:1", reg.host()),
            false,
        );
        assert_eq!(p.code, 0, "{}", p.stdout);
        let bars = p.stdout.matches("\r\x1b[2Ksha256:").count();
        assert!(bars >= 2, "{:?}", p.stdout);
        assert!(p.stdout.contains("  uploaded"), "{:?}", p.stdout);
        let captured = env
            .nobase(&[
                "push",
                "hello:1",
                &format!("docker://{}/ux/again:1", reg.host()),
            ])
            .ok();
        assert!(!captured.stderr.contains('\x1b'), "{:?}", captured.stderr);
        assert!(captured.stderr.contains("pushed"), "{:?}", captured.stderr);
    }
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    // `nobase -q images | head -1`: once the reader is gone, writing fails with EPIPE;
    // the command stops without a panic (exit 101) and without a message.
    let env = Env::new();
    let hello = hello_static();
    env.nobase(&["build", "-q", hello.to_str().unwrap(), "-t", "h:1"])
        .ok();
    let store = env.store();
    let layout = format!("oci:{}", env.path("copy").display());
    let cases: [&[&str]; 7] = [
        &["-q", "images"],
        &["completions", "bash"],
        &["build", hello.to_str().unwrap(), "-t", "h:2"],
        &["fsck"],
        &["push", "h:1", &layout],
        &["pull", &layout, "-t", "h:3"],
        &["rmi", "h:2"],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .cmd(args)
            .env("NOBASE_STORE", &store)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // The work was done before the output failed.
    let r = env.nobase(&["-q", "images"]).ok();
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), ["h:1", "h:3"]);
}

#[test]
fn a_push_to_a_registry_like_store_name_says_it_stays_local() {
    // `docker push 127.0.0.1:5000/app:1` sends to the registry; in nobase a name without
    // docker:// is the store's. The push is a local copy (exit 0), and it says so.
    let env = Env::new();
    let hello = hello_static();
    env.nobase(&["build", "-q", hello.to_str().unwrap(), "-t", "h:1"])
        .ok();
    let r = env
        .nobase(&["push", "h:1", "127.0.0.1:5000/team/app:1"])
        .ok();
    assert!(
        r.stderr.contains(
            "note: 127.0.0.1:5000/team/app:1 is a name in the local store; to send the image to that registry, give docker://127.0.0.1:5000/team/app:1"
        ),
        "{}",
        r.stderr
    );
    let listed = env.nobase(&["images", "-q"]).ok().stdout;
    assert_eq!(listed.lines().count(), 2, "{listed}");
    // A plain store name is the store's without a word.
    let r = env.nobase(&["push", "h:1", "team/app:2"]).ok();
    assert!(!r.stderr.contains("note:"), "{}", r.stderr);
}

/// A mistyped store is not made into a new, empty one by a command that only reads: each
/// says it does not exist, and nothing appears on disk; `images` lists nothing.
#[test]
fn commands_that_read_never_make_a_store_at_a_typo() {
    let env = Env::new();
    let typo = env.path("typo/store");
    let t = typo.to_str().unwrap();
    for (args, code) in [
        (&["fsck"][..], 3),
        (&["check", "x:1"][..], 3),
        (&["tree", "x:1"][..], 3),
        (&["rmi", "x:1"][..], 3),
        (&["push", "x:1", "oci:out:x"][..], 3),
        (&["run", "x:1"][..], 125),
        (&["images"][..], 0),
    ] {
        let mut all = vec!["--store", t];
        all.extend_from_slice(args);
        let r = env.nobase(&all).code(code);
        assert!(
            r.stderr.contains("the store") && r.stderr.contains("does not exist"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!env.path("typo").exists(), "{args:?} made the store");
    }
    let r = env.nobase(&["--store", t, "images", "--json"]).ok();
    assert_eq!(r.json(), serde_json::json!([]));
    // A build makes it.
    env.nobase(&[
        "--store",
        t,
        "build",
        hello_static().to_str().unwrap(),
        "-t",
        "x:1",
    ])
    .ok();
    env.nobase(&["--store", t, "fsck"]).ok();
}

/// Outputs are written in order; when one fails, the build says which were written and
/// which were never tried, so a script does not take the store tag for a finished job.
#[test]
fn a_failed_output_says_what_was_written_and_what_was_not() {
    let env = Env::new();
    // A port nothing listens on, held so while the build runs.
    let closed = closed_port();
    let dead = format!("docker://127.0.0.1:{}/x:1", closed.port);
    let lay = format!("oci:{}:x", env.path("lay").display());
    let r = run(env
        .cmd(&[
            "build",
            hello_static().to_str().unwrap(),
            "-t",
            "x:1",
            "-o",
            &dead,
            "-o",
            &lay,
        ])
        .env("NOBASE_RETRIES", "0"));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "nobase: written: x:1; not written: {lay} (the outputs are written in order and the build stopped at {dead})"
        )),
        "{}",
        r.stderr
    );
    assert!(!env.path("lay").exists());
}
