//! `build --with certs,tzdata,passwd,tmp`: what scratch images lack that no ELF header
//! names, judged on the rootfs umoci unpacks and by a Go program started with runc that
//! loads the system roots, a time zone and a temp file as the unprivileged user.

use crate::util::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
const HOST_PARIS: &str = "/usr/share/zoneinfo/Europe/Paris";

/// A Go program that uses what `--with` provides: crypto/x509's system roots, Go's
/// zoneinfo lookup, a temp file; it prints what worked and its uid, and fails if
/// anything did not.
const PROBE_GO: &str = r#"package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

func main() {
	ok := true
	if pool, err := x509.SystemCertPool(); err != nil || len(pool.Subjects()) == 0 {
		fmt.Println("certs: none")
		ok = false
	} else {
		fmt.Println("certs: ok")
	}
	if loc, err := time.LoadLocation("Europe/Paris"); err != nil {
		fmt.Println("tzdata:", err)
		ok = false
	} else {
		fmt.Println("tzdata:", time.Date(2024, 1, 15, 12, 0, 0, 0, loc).Format("MST"))
	}
	if f, err := os.CreateTemp("", "probe"); err != nil {
		fmt.Println("tmp:", err)
		ok = false
	} else {
		fmt.Println("tmp: ok")
		os.Remove(f.Name())
	}
	fmt.Println("uid:", os.Getuid())
	if !ok {
		os.Exit(1)
	}
}
"#;

fn go_probe() -> Option<std::path::PathBuf> {
    static P: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    P.get_or_init(|| go_program("go-probe", PROBE_GO, &[]))
        .clone()
}

/// The host data the extras copy, or a skip message.
fn host_has_data() -> bool {
    let ok = Path::new(HOST_CA).is_file() && Path::new(HOST_PARIS).is_file();
    if !ok {
        eprintln!("skipping: the host has no {HOST_CA} or {HOST_PARIS} (ca-certificates, tzdata)");
    }
    ok
}

fn created_by(j: &serde_json::Value) -> Vec<String> {
    j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["created_by"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn with_all_gives_the_rootfs_certs_zoneinfo_users_and_tmp() {
    if !host_has_data() {
        return;
    }
    let env = Env::new();
    let bin = hello_static();
    let layout = env.path("l");
    // A file the program's layer adds into /tmp leaves /tmp as --with made it (1777).
    std::fs::write(env.path("seed"), "seed\n").unwrap();
    let seed = format!("{}:/tmp/seed", env.path("seed").display());
    let j = build_json(
        &env,
        &[
            bin.to_str().unwrap(),
            "--with",
            "all",
            "--add",
            &seed,
            "-o",
            &format!("oci:{}:x", layout.display()),
        ],
    );
    // One layer each, bottom first, then the program.
    assert_eq!(
        created_by(&j),
        [
            "nobase build --with certs",
            "nobase build --with tzdata",
            "nobase build --with passwd",
            "nobase build --with tmp",
            "nobase build /app/hello-static",
        ]
    );
    assert_eq!(
        j["with"],
        serde_json::json!(["certs", "tzdata", "passwd", "tmp"])
    );
    let Some(bundle) = umoci_unpack(&env, &format!("{}:x", layout.display())) else {
        return;
    };
    let rootfs = bundle.join("rootfs");
    let host_ca = std::fs::read(HOST_CA).unwrap();
    assert_eq!(
        std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
        host_ca
    );
    // Where Go, OpenSSL, Alpine and Fedora look: links that resolve inside the rootfs.
    for alias in [
        "etc/ssl/cert.pem",
        "etc/pki/tls/certs/ca-bundle.crt",
        "etc/pki/tls/cacert.pem",
        "etc/ssl/ca-bundle.pem",
        "etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "usr/lib/ssl/cert.pem",
    ] {
        let p = rootfs.join(alias);
        let target = std::fs::read_link(&p).unwrap_or_else(|e| panic!("{alias}: {e}"));
        assert!(target.is_relative(), "{alias} -> {}", target.display());
        assert_eq!(std::fs::read(&p).unwrap(), host_ca, "{alias}");
    }
    assert_eq!(
        std::fs::read(rootfs.join("usr/share/zoneinfo/Europe/Paris")).unwrap(),
        std::fs::read(HOST_PARIS).unwrap()
    );
    // Links inside zoneinfo resolve inside it; none escapes to the host.
    if Path::new("/usr/share/zoneinfo/UTC").exists() {
        assert!(std::fs::read(rootfs.join("usr/share/zoneinfo/UTC"))
            .unwrap()
            .starts_with(b"TZif"));
    }
    for e in walk(&rootfs.join("usr/share/zoneinfo")) {
        if let Ok(t) = std::fs::read_link(&e) {
            assert!(t.is_relative(), "{} -> {}", e.display(), t.display());
            assert!(
                e.canonicalize()
                    .unwrap()
                    .starts_with(rootfs.canonicalize().unwrap()),
                "{} escapes",
                e.display()
            );
        }
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("root:x:0:0:"), "{passwd}");
    assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    assert!(
        passwd.contains("nonroot:x:65532:65532:nonroot:/home/nonroot:"),
        "{passwd}"
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(group.contains("nonroot:x:65532:"), "{group}");
    let home = std::fs::metadata(rootfs.join("home/nonroot")).unwrap();
    assert!(home.is_dir());
    assert_eq!(
        (home.uid(), home.gid(), home.permissions().mode() & 0o7777),
        (65532, 65532, 0o700)
    );
    let tmp = std::fs::metadata(rootfs.join("tmp")).unwrap();
    assert!(tmp.is_dir());
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    assert!(rootfs.join("tmp/seed").is_file());
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let envs: Vec<&str> = cfg["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        envs.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "{envs:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn extra_layers_are_shared_between_images_and_reproducible() {
    if !host_has_data() {
        return;
    }
    let env = Env::new();
    let a = build_json(
        &env,
        &[
            hello_static().to_str().unwrap(),
            "--with",
            "all",
            "-t",
            "a:1",
        ],
    );
    let b = build_json(
        &env,
        &[
            hello_musl_static().to_str().unwrap(),
            "--with",
            "tmp,passwd",
            "--with",
            "tzdata,certs,certs",
            "-t",
            "b:1",
        ],
    );
    let layers = |j: &serde_json::Value| -> Vec<(String, bool)> {
        j["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().to_string(),
                    l["reused"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let (la, lb) = (layers(&a), layers(&b));
    assert_eq!(la.len(), 5);
    // The same four data layers (the second build found them in the layer cache); only
    // the program's differs.
    assert_eq!(
        la[..4].iter().map(|l| &l.0).collect::<Vec<_>>(),
        lb[..4].iter().map(|l| &l.0).collect::<Vec<_>>()
    );
    assert!(lb[..4].iter().all(|l| l.1), "{lb:?}");
    assert_ne!(la[4].0, lb[4].0);
    // Another store, same inputs: the same image digest.
    let env2 = Env::new();
    let again = build_json(
        &env2,
        &[
            hello_static().to_str().unwrap(),
            "--with",
            "all",
            "-t",
            "a:1",
        ],
    );
    assert_eq!(a["digest"], again["digest"]);
    if let Some(d) = skopeo_digest(&format!("oci:{}:a:1", env.store().display())) {
        assert_eq!(a["digest"].as_str().unwrap(), d);
    }
}

#[test]
fn unknown_extras_are_usage_errors() {
    let env = Env::new();
    let r = env
        .nobase(&[
            "build",
            hello_static().to_str().unwrap(),
            "--with",
            "certs,ssl",
        ])
        .code(2);
    assert!(r.stderr.contains("unknown --with \"ssl\""), "{}", r.stderr);
    assert!(
        r.stderr.contains("certs, tzdata, passwd, tmp or all"),
        "{}",
        r.stderr
    );
    // A sysroot that is a file is named as such for a static program too (only
    // `--with` reads it there), and nothing is written.
    let file = env.path("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let r = env
        .nobase(&[
            "build",
            hello_static().to_str().unwrap(),
            "--with",
            "certs",
            "--sysroot",
            file.to_str().unwrap(),
            "-t",
            "s:1",
        ])
        .code(2);
    assert!(
        r.stderr
            .contains(&format!("sysroot {} is not a directory", file.display())),
        "{}",
        r.stderr
    );
    assert_eq!(
        env.nobase(&["images", "--json"]).ok().json(),
        serde_json::json!([])
    );
}

#[test]
fn go_program_finds_roots_zones_and_tmp_as_nonroot() {
    if !host_has_data() {
        return;
    }
    let Some(probe) = go_probe() else { return };
    let env = Env::new();
    let layout = env.path("l");
    let out = |r: &str| format!("oci:{}:{r}", layout.display());
    env.nobase(&[
        "build",
        probe.to_str().unwrap(),
        "--with",
        "all",
        "-u",
        "nonroot",
        "-o",
        &out("with"),
    ])
    .ok();
    env.nobase(&["build", probe.to_str().unwrap(), "-o", &out("without")])
        .ok();
    let Some(r) = runc_run(&env, &format!("{}:with", layout.display()), None) else {
        return;
    };
    assert_eq!(
        r.stdout, "certs: ok\ntzdata: CET\ntmp: ok\nuid: 65532\n",
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 0);
    // The same program in a bare scratch image: each of the three fails.
    let r = runc_run(&env, &format!("{}:without", layout.display()), None).unwrap();
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("certs: none"), "{}", r.stdout);
    assert!(
        r.stdout.contains("tzdata: unknown time zone"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("tmp: open /tmp/probe"), "{}", r.stdout);
}

/// The kinds of a build's `--json` warnings, with the `--with` each names.
fn warned(j: &serde_json::Value) -> Vec<(String, String)> {
    j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["kind"].as_str().unwrap().to_string(),
                w["with"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_go_tls_client_without_certs_is_warned_with_the_fix() {
    if !host_has_data() {
        return;
    }
    let Some(probe) = go_probe() else { return };
    let probe = probe.to_str().unwrap();
    let env = Env::new();
    // The build runs check's analysis on what it wrote and says what will fail, and
    // which --with fixes it.
    let r = env.nobase(&["build", probe, "-t", "p:1"]).ok();
    assert!(
        r.stderr.contains("uses crypto/x509")
            && r.stderr.contains("no CA certificates")
            && r.stderr.contains("`nobase build --with certs`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("  fix: --with certs\n"), "{}", r.stderr);
    assert!(r.stderr.contains("  fix: --with tzdata\n"), "{}", r.stderr);
    let j = build_json(&env, &[probe, "-t", "p:1"]);
    let w = warned(&j);
    for want in [
        ("no-ca-certificates", "certs"),
        ("no-zoneinfo", "tzdata"),
        ("no-writable-tmp", "tmp"),
    ] {
        assert!(w.contains(&(want.0.into(), want.1.into())), "{w:?}");
    }
    // `nobase check` says the same, with the same field.
    let c = env.nobase(&["check", "--json", "p:1"]).ok().json();
    let certs = c["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "no-ca-certificates")
        .expect("check warns too");
    assert_eq!(certs["with"], "certs");
    // Each --with takes its warning away; all of them, every warning.
    let j = build_json(&env, &[probe, "-t", "p:2", "--with", "certs"]);
    let w = warned(&j);
    assert!(!w.iter().any(|(k, _)| k == "no-ca-certificates"), "{w:?}");
    assert!(w.iter().any(|(k, _)| k == "no-zoneinfo"), "{w:?}");
    let j = build_json(&env, &[probe, "-t", "p:3", "--with", "all"]);
    assert_eq!(warned(&j), Vec::<(String, String)>::new());
    let c = env.nobase(&["check", "--json", "p:3"]).ok().json();
    assert_eq!(c["warnings"], serde_json::json!([]));
}

#[test]
fn nonroot_resolves_for_umoci_and_nobase_run_only_with_passwd() {
    let env = Env::new();
    let layout = env.path("l");
    let bin = hello_static();
    // Without the users, the build's check refuses and names the --with that adds them.
    let r = env
        .nobase(&["build", bin.to_str().unwrap(), "-u", "nonroot"])
        .code(1);
    assert!(
        r.stderr.contains("`nobase build --with passwd`"),
        "{}",
        r.stderr
    );
    env.nobase(&[
        "build",
        bin.to_str().unwrap(),
        "--with",
        "passwd",
        "-u",
        "nonroot",
        "-o",
        &format!("oci:{}:x", layout.display()),
        "-t",
        "x:1",
    ])
    .ok();
    if let Some(r) = runc_run(&env, &format!("{}:x", layout.display()), None) {
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "hello world\n"),
            "{}",
            r.stderr
        );
    }
    if have("runc") && is_root() {
        let r = env.nobase(&["run", "x:1"]).code(0);
        assert_eq!(r.stdout, "hello world\n");
    }
}

#[test]
fn cross_builds_take_data_from_the_host_when_the_sysroot_has_none() {
    if !(host_has_data() && have("aarch64-linux-gnu-gcc")) {
        return;
    }
    let sysroot = Path::new("/usr/aarch64-linux-gnu");
    if !sysroot.is_dir() {
        eprintln!("skipping: no {}", sysroot.display());
        return;
    }
    let env = Env::new();
    let layout = env.path("l");
    let j = build_json(
        &env,
        &[
            hello_arm64_dynamic().to_str().unwrap(),
            "--sysroot",
            sysroot.to_str().unwrap(),
            "--with",
            "certs,tzdata",
            "-o",
            &format!("oci:{}:x", layout.display()),
        ],
    );
    assert_eq!(j["platform"], "linux/arm64");
    let Some(bundle) = umoci_unpack(&env, &format!("{}:x", layout.display())) else {
        return;
    };
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
        std::fs::read(HOST_CA).unwrap()
    );
    assert!(rootfs.join("usr/share/zoneinfo/Europe/Paris").is_file());
}
