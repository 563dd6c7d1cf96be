//! `nobase inspect`: facts read from ELF headers, checked against what the inputs are.

use crate::util::*;
use std::process::Command;

fn inspect_json(env: &Env, path: &std::path::Path) -> serde_json::Value {
    env.nobase(&["inspect", "--json", path.to_str().unwrap()])
        .ok()
        .json()
}

#[test]
fn static_binary() {
    let env = Env::new();
    let j = inspect_json(&env, &hello_static());
    assert_eq!(j["format"], "elf");
    assert_eq!(j["type"], "static");
    assert_eq!(j["class"], 64);
    assert_eq!(j["architecture"], "amd64");
    assert_eq!(j["platform"], "linux/amd64");
    assert_eq!(j["interpreter"], serde_json::Value::Null);
    assert_eq!(j["needed"], serde_json::json!([]));
    assert_eq!(j["stripped"], false);
}

#[test]
fn static_pie_binary() {
    let env = Env::new();
    let j = inspect_json(&env, &hello_static_pie());
    assert_eq!(j["type"], "static-pie");
    assert_eq!(j["interpreter"], serde_json::Value::Null);
}

#[test]
fn dynamic_glibc_binary() {
    let env = Env::new();
    let j = inspect_json(&env, &hello_dynamic());
    assert_eq!(j["type"], "dynamic");
    assert_eq!(j["interpreter"], "/lib64/ld-linux-x86-64.so.2");
    assert_eq!(j["needed"], serde_json::json!(["libc.so.6"]));
    let needs = j["version_needs"].as_array().unwrap();
    assert_eq!(needs[0]["library"], "libc.so.6");
    let versions: Vec<&str> = needs[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(versions.contains(&"GLIBC_2.2.5"), "{versions:?}");
    // Compare with what the system's own tools say of the same file.
    if have("readelf") {
        let r = run(std::process::Command::new("readelf")
            .args(["-V", "--wide"])
            .arg(hello_dynamic()));
        for v in &versions {
            assert!(r.stdout.contains(v), "readelf does not list {v}");
        }
    }
    // Stripping is reported.
    let stripped = env.path("stripped");
    run(std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(hello_dynamic()))
    .ok();
    assert_eq!(inspect_json(&env, &stripped)["stripped"], true);
    // A program that names its loader in DT_NEEDED too (node does) needs one library
    // here, not two.
    let named = env.path("named-loader");
    cc(
        "gcc",
        "int main(void) { return 0; }\n",
        &named,
        &["-Wl,--no-as-needed", "-l:ld-linux-x86-64.so.2"],
    );
    let r = env.nobase(&["inspect", named.to_str().unwrap()]).ok();
    assert!(
        r.stdout.contains("needs its loader and 1 library:"),
        "{}",
        r.stdout
    );
}

#[test]
fn dynamic_musl_binary() {
    if !have("musl-gcc") {
        return;
    }
    let env = Env::new();
    let j = inspect_json(&env, &hello_musl());
    assert_eq!(j["type"], "dynamic");
    assert_eq!(j["interpreter"], "/lib/ld-musl-x86_64.so.1");
    assert_eq!(j["needed"], serde_json::json!(["libc.so"]));
    // Its loader is its C library: no second piece is promised.
    let r = env
        .nobase(&["inspect", hello_musl().to_str().unwrap()])
        .ok();
    assert!(
        r.stdout.contains(
            "needs its loader (musl's, which is its C library too): `nobase build` bundles it,"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn go_binary_build_info() {
    let Some(go) = hello_go() else { return };
    let env = Env::new();
    let j = inspect_json(&env, &go);
    assert_eq!(j["type"], "static");
    let g = &j["go"];
    assert!(g["version"].as_str().unwrap().starts_with("go1."), "{g}");
    assert_eq!(g["path"], "example.com/hello");
    assert!(g["main_module"]
        .as_str()
        .unwrap()
        .starts_with("example.com/hello"));
    assert_eq!(g["settings"]["CGO_ENABLED"], "0");
    // The toolchain version matches what `go version` says of the binary.
    let r = run(std::process::Command::new("go").arg("version").arg(&go));
    assert!(
        r.stdout.contains(g["version"].as_str().unwrap()),
        "{}",
        r.stdout
    );
}

#[test]
fn several_files_give_an_array_and_human_output_reads_like_file() {
    let env = Env::new();
    let s = hello_static();
    let d = hello_dynamic();
    let r = env
        .nobase(&[
            "inspect",
            "--json",
            s.to_str().unwrap(),
            d.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let r = env.nobase(&["inspect", d.to_str().unwrap()]).ok();
    assert!(r.stdout.contains("ELF 64-bit LSB dynamically linked executable, x86-64 (linux/amd64), interpreter /lib64/ld-linux-x86-64.so.2"), "{}", r.stdout);
    assert!(r.stdout.contains("needed     libc.so.6"), "{}", r.stdout);
}

#[test]
fn non_elf_inputs_get_plain_answers() {
    let env = Env::new();
    std::fs::write(env.path("script"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(env.path("crlf"), "#!/bin/sh\r\necho hi\r\n").unwrap();
    std::fs::write(env.path("text"), "just words\n").unwrap();
    std::fs::write(env.path("empty"), "").unwrap();
    std::fs::create_dir(env.path("dir")).unwrap();
    let r = env
        .nobase(&[
            "inspect", "--json", "script", "crlf", "text", "empty", "dir",
        ])
        .ok();
    let j = r.json();
    let formats: Vec<&str> = j
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["script", "script", "text", "empty", "directory"]);
    assert_eq!(j[0]["interpreter"], "/bin/sh");
    assert_eq!(j[1]["interpreter"], "/bin/sh\r");
    let r = env.nobase(&["inspect", "script", "dir"]).ok();
    assert!(r.stdout.contains("script: script, interpreter \"/bin/sh\""));
    assert!(r.stdout.contains("dir: directory"));
    // A FIFO is not opened (that would wait for a writer), nor is a device: `file`'s
    // plain answers, under a timeout so that a regression fails instead of hanging.
    let fifo = env.path("fifo");
    assert!(run(Command::new("mkfifo").arg(&fifo)).code == 0);
    let r = run(Command::new("timeout")
        .arg("30")
        .arg(nobase_bin())
        .args(["inspect", "--json"])
        .arg(&fifo)
        .arg("/dev/null"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let formats: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["format"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(formats, ["fifo", "character-device"]);
    let r = run(Command::new("timeout")
        .arg("30")
        .arg(nobase_bin())
        .arg("inspect")
        .arg(&fifo));
    assert_eq!(
        r.stdout,
        format!("{}: fifo (not an executable)\n", fifo.display())
    );
}

#[test]
fn missing_and_corrupt_files_are_one_line_errors() {
    let env = Env::new();
    let r = env.nobase(&["inspect", "nonexistent"]).code(3);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("nonexistent"), "{}", r.stderr);
    let bytes = std::fs::read(hello_static()).unwrap();
    std::fs::write(env.path("truncated"), &bytes[..200]).unwrap();
    let r = env.nobase(&["inspect", "truncated"]).code(3);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);
    // With --json each file keeps its place in the array, a failed one with its error.
    let ok = hello_static();
    let r = env
        .nobase(&[
            "inspect",
            "--json",
            "nonexistent",
            ok.to_str().unwrap(),
            "truncated",
        ])
        .code(3);
    let docs = r.json();
    let formats: Vec<&str> = docs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["error", "elf", "error"], "{docs}");
    assert_eq!(docs[0]["path"], "nonexistent");
    assert!(
        docs[2]["error"].as_str().unwrap().contains("truncated"),
        "{docs}"
    );
}

/// An executable's strings are anyone's bytes: an interpreter path with an escape
/// sequence is shown escaped, on stdout and stderr, never sent to the terminal.
#[test]
fn control_characters_in_an_executable_are_shown_escaped() {
    let env = Env::new();
    let mut bytes = std::fs::read(hello_dynamic()).unwrap();
    let interp = b"/lib64/ld-linux-x86-64.so.2";
    let at = bytes
        .windows(interp.len())
        .position(|w| w == interp)
        .expect("PT_INTERP string");
    bytes[at + 7] = 0x1b;
    // And a C1 CSI (U+009B, two bytes in UTF-8) in place of "d-".
    bytes[at + 8] = 0xc2;
    bytes[at + 9] = 0x9b;
    let path = env.path("ctl");
    std::fs::write(&path, &bytes).unwrap();
    let r = env.nobase(&["inspect", path.to_str().unwrap()]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        !all.contains(['\u{1b}', '\u{9b}']),
        "raw escape printed:\n{all:?}"
    );
    assert!(
        all.contains("/lib64/\\x1b\\u{9b}linux-x86-64.so.2"),
        "{all}"
    );
}

#[test]
fn programs_built_for_macos_or_windows_are_named_with_the_fix() {
    // An MSVC program's PE header often lies past byte 256 (a long Rich header): build
    // read only 256 bytes and gave no hint where inspect named it.
    let env = Env::new();
    let mut pe = b"MZ".to_vec();
    pe.resize(0x200, 0);
    pe[0x3c..0x40].copy_from_slice(&0x110u32.to_le_bytes());
    pe[0x110..0x114].copy_from_slice(b"PE\0\0");
    std::fs::write(env.path("tool.exe"), &pe).unwrap();
    let r = env.nobase(&["build", "tool.exe"]).code(3);
    assert!(
        r.stderr.contains("It is a PE program for Windows"),
        "{}",
        r.stderr
    );

    // GOOS=darwin and GOOS=windows builds were "data (neither ELF nor a script)".
    let src = "package main\n\nfunc main() {}\n";
    for (goos, format, what) in [
        ("darwin", "mach-o", "a Mach-O program for macOS"),
        ("windows", "pe", "a PE program for Windows"),
    ] {
        let Some(bin) = go_program(
            &format!("go-{goos}"),
            src,
            &[("GOOS", goos), ("GOARCH", "amd64")],
        ) else {
            return;
        };
        let env = Env::new();
        assert_eq!(inspect_json(&env, &bin)["format"], format, "{goos}");
        let b = bin.to_str().unwrap();
        let r = env.nobase(&["inspect", b]).ok();
        assert!(
            r.stdout.contains(&format!("{what}, not a Linux program")),
            "{}",
            r.stdout
        );
        let r = env.nobase(&["build", b]).code(3);
        assert!(
            r.stderr
                .contains(&format!("It is {what}: build it for Linux (GOOS=linux")),
            "{}",
            r.stderr
        );
    }
}
