//! The documentation cannot rot: every ```sh block of README.md, GUIDE.md and FAQ.md runs
//! here, in order, in one sandbox per file (HOME, the store and a registry of its own),
//! with the built nobase first on PATH. A line with `# exits N` (optionally followed by
//! a comment) must exit with N; one with `# prints: TEXT` must succeed and print TEXT
//! (among its output); every other command must succeed. Blocks fenced as `console` or `text` are shown, not
//! run (the README's quick start is what CI itself runs: scripts/setup, scripts/test,
//! scripts/demo).

use crate::util::*;
use std::path::Path;
use std::process::Command;

/// The ```sh blocks of a markdown file, with their first line numbers.
fn sh_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match &mut cur {
            None if t.starts_with("```sh") || t.starts_with("```bash") => {
                cur = Some((i + 2, String::new()))
            }
            Some(_) if t.starts_with("```") => out.push(cur.take().expect("in a block")),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

/// Rewrites `cmd  # exits N` lines into a call that checks the exit code.
fn script(block: &str) -> String {
    let mut s = String::from(
        "set -euo pipefail\n\
         expect_exit() { local want=$1 cmd=$2 rc; set +e; eval \"$cmd\"; rc=$?; set -e;\n\
           if [ \"$rc\" -ne \"$want\" ]; then echo \"expected exit $want, got $rc: $cmd\" >&2; exit 1; fi; }\n\
         expect_output() { local want=$1 cmd=$2 out; out=$(eval \"$cmd\"); printf '%s\\n' \"$out\";\n\
           case \"$out\" in *\"$want\"*) ;; *) echo \"expected output with '$want': $cmd\" >&2; exit 1;; esac; }\n",
    );
    for line in block.lines() {
        // `cmd  # prints: TEXT`: the command succeeds and its output contains TEXT.
        if let Some((cmd, want)) = line.split_once("# prints: ") {
            let q = |x: &str| x.trim().replace('\'', "'\\''");
            s.push_str(&format!("expect_output '{}' '{}'\n", q(want), q(cmd)));
            continue;
        }
        // `cmd  # exits N`, optionally followed by a comment: `# exits 1  why it fails`.
        if let Some((cmd, n)) = line.split_once("# exits ") {
            let n = n.split_whitespace().next().unwrap_or("");
            if let Ok(n) = n.parse::<i32>() {
                s.push_str(&format!(
                    "expect_exit {n} '{}'\n",
                    cmd.trim().replace('\'', "'\\''")
                ));
                continue;
            }
        }
        s.push_str(line);
        s.push('\n');
    }
    s
}

fn run_doc(file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let blocks = sh_blocks(&text);
    if blocks.is_empty() {
        return;
    }
    let env = Env::new();
    let home = env.path("home");
    let bin = env.path("bin");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(nobase_bin(), bin.join("nobase")).unwrap();
    std::fs::write(
        env.path("hello.c"),
        "#include <stdio.h>\nint main(void) { puts(\"hello world\"); return 0; }\n",
    )
    .unwrap();
    let path_var = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // A docker-registry on a loopback port of its own for the examples that push and pull
    // (registry.rs starts it: the port is held until it answers, and a start that fails
    // is tried again).
    let registry = if text.contains("$REGISTRY") {
        crate::registry::Registry::start(crate::registry::Auth::None)
    } else {
        None
    };
    for (line, block) in blocks {
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(script(&block))
            .current_dir(env.dir.path())
            .env("HOME", &home)
            .env("PATH", &path_var)
            .env_remove("NOBASE_STORE")
            .env_remove("XDG_DATA_HOME")
            .env_remove("SOURCE_DATE_EPOCH");
        if let Some(r) = &registry {
            c.env("REGISTRY", r.host());
        }
        let r = run(&mut c);
        assert_eq!(
            r.code, 0,
            "{file}:{line}: the block failed\n--- block\n{block}--- stdout\n{}--- stderr\n{}",
            r.stdout, r.stderr
        );
    }
}

#[test]
fn readme_examples_run() {
    run_doc("README.md");
}

#[test]
fn guide_examples_run() {
    run_doc("GUIDE.md");
}

#[test]
fn faq_examples_run() {
    run_doc("FAQ.md");
}

#[test]
fn exit_code_annotations_are_enforced() {
    let s = script("false # exits 1\ntrue\n");
    let r = run(Command::new("bash").arg("-c").arg(&s));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = script("false # exits 1  because false fails\n");
    let r = run(Command::new("bash").arg("-c").arg(&s));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = script("true # exits 1\n");
    let r = run(Command::new("bash").arg("-c").arg(&s));
    assert_eq!(r.code, 1, "an unmet expectation must fail");
    // `# prints: TEXT`: the output must contain TEXT, and the command must succeed.
    for (line, ok) in [
        ("echo 'say \"hi\" there' # prints: \"hi\" there", true),
        ("echo hello # prints: bye", false),
        ("sh -c 'echo bye; exit 3' # prints: bye", false),
    ] {
        let r = run(Command::new("bash").arg("-c").arg(script(line)));
        assert_eq!(r.code == 0, ok, "{line}: {}", r.stderr);
    }
    assert_eq!(
        sh_blocks("a\n```sh\nx\ny\n```\n```console\nz\n```\n"),
        vec![(3, "x\ny\n".to_string())]
    );
}
