//! The interface around the commands: the walk with no arguments, help, completions and
//! man pages generated from the same definitions.

use crate::util::*;
use std::process::Command;

#[test]
fn no_arguments_show_the_walk() {
    let env = Env::new();
    let r = env.nobase(&[]).ok();
    for step in ["nobase inspect", "nobase build", "NAME[:TAG]", "oci:DIR"] {
        assert!(
            r.stdout.contains(step),
            "{step} missing from:\n{}",
            r.stdout
        );
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
}

/// Dogfooding: `scripts/self-image` builds nobase as a static executable and packages it
/// with itself into a scratch image; runc starts that image, and the nobase inside
/// answers `--version` and inspects itself. The static release build lives in
/// target/self and is reused between runs (a cold one costs minutes on two cores; CI's
/// scripts/demo then reuses it instead of building nobase again).
#[test]
fn nobase_ships_as_its_own_scratch_image() {
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
}
