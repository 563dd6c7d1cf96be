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
