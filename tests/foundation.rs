//! The foundation slice: a static executable becomes an image that runc starts, written
//! to the store and every export form, reproducibly; bad input is refused cleanly.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn static_hello_runs_under_runc_and_stays_small() {
    let env = Env::new();
    let bin = hello_static();
    let j = build_json(&env, &[bin.to_str().unwrap(), "-t", "hello:1"]);
    assert_eq!(j["platform"], "linux/amd64");
    let store = env.store();
    let layout_ref = format!("{}:hello:1", store.display());
    if let Some(r) = runc_run(&env, &layout_ref, None) {
        assert_eq!(r.code, 0, "runc: {}", r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
    // The layer as any tar reader sees it: /app then /app/hello-static, owned by 0:0,
    // modes 0755, mtime 0 (no SOURCE_DATE_EPOCH), in path order, and the binary's bytes.
    let layer = &j["layers"][0]["digest"];
    let hex = layer.as_str().unwrap().trim_start_matches("sha256:");
    let blob = std::fs::File::open(store.join("blobs/sha256").join(hex)).unwrap();
    // Every gzip member: the layer is one member per 256 KiB block.
    let mut tar = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    let mut seen = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e.path().unwrap().display().to_string();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{path}");
        assert_eq!(h.mtime().unwrap(), 0, "{path}");
        assert_eq!(h.mode().unwrap() & 0o7777, 0o755, "{path}");
        if path.ends_with("hello-static") {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            assert_eq!(data, std::fs::read(&bin).unwrap());
        }
        seen.push(path);
    }
    assert_eq!(seen, ["app", "app/hello-static"]);
    // The whole layout is at most ~64 KiB more than the binary it carries.
    let binary = std::fs::metadata(&bin).unwrap().len();
    let layout = du(&store);
    assert!(
        layout <= binary + 64 * 1024,
        "layout {layout} bytes for a {binary}-byte binary"
    );
}

#[test]
fn every_output_form_reads_in_skopeo_with_the_same_digest() {
    let env = Env::new();
    let bin = hello_static();
    let j = build_json(
        &env,
        &[
            bin.to_str().unwrap(),
            "-t",
            "hello:1",
            "-o",
            "oci:out:hello",
            "-o",
            "oci-archive:out.tar:v1",
            "-o",
            "docker-archive:docker.tar:hello:1",
        ],
    );
    let digest = j["digest"].as_str().unwrap().to_string();
    assert_eq!(j["outputs"].as_array().unwrap().len(), 4);
    let p = |r: &str| env.path(r).display().to_string();
    for reference in [
        format!("oci:{}:hello:1", env.store().display()),
        format!("oci:{}:hello", p("out")),
        format!("oci-archive:{}:v1", p("out.tar")),
    ] {
        if let Some(d) = skopeo_digest(&reference) {
            assert_eq!(d, digest, "{reference}");
        }
    }
    // docker-archive stores the config and uncompressed layers: compare what skopeo
    // derives from it with our config.
    if let Some(v) = skopeo_inspect(&[&format!("docker-archive:{}", p("docker.tar"))]) {
        assert_eq!(v["Architecture"], "amd64");
        assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["Layers"][0], j["layers"][0]["diff_id"],
            "docker-archive layers are the uncompressed diff_ids"
        );
    }
    let m = run(Command::new("tar").args(["-xOf", &p("docker.tar"), "manifest.json"])).ok();
    let m: serde_json::Value = serde_json::from_str(&m.stdout).unwrap();
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["hello:1"]));
    // The export runs too.
    if let Some(r) = runc_run(&env, &format!("{}:hello", p("out")), None) {
        assert_eq!(r.stdout, "hello world\n", "{}", r.stderr);
    }
}

#[test]
fn config_flags_land_in_the_config() {
    let env = Env::new();
    let bin = hello_static();
    std::fs::create_dir_all(env.path("data/sub")).unwrap();
    std::fs::write(env.path("data/sub/x.txt"), "x").unwrap();
    build_json(
        &env,
        &[
            bin.to_str().unwrap(),
            "-t",
            "cfg:1",
            "--path",
            "/usr/bin/hello",
            "-e",
            "GREETING=hi there",
            "-w",
            "/work",
            "-u",
            "1000:1000",
            "-l",
            "org.example=yes",
            "--expose",
            "8080",
            "--expose",
            "53/udp",
            // A range and an upper-case protocol, as docker run --expose and EXPOSE
            // take them (they were refused).
            "--expose",
            "9000-9001/TCP",
            "--add",
            "data:/srv/data",
            "--",
            "arg1",
            "--flag",
        ],
    );
    let Some(c) = skopeo_inspect(&["--config", &format!("oci:{}:cfg:1", env.store().display())])
    else {
        return;
    };
    let cfg = &c["config"];
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/usr/bin/hello"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["arg1", "--flag"]));
    assert_eq!(cfg["WorkingDir"], "/work");
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["Labels"]["org.example"], "yes");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert!(cfg["ExposedPorts"]["53/udp"].is_object());
    assert!(cfg["ExposedPorts"]["9000/tcp"].is_object());
    assert!(cfg["ExposedPorts"]["9001/tcp"].is_object());
    assert_eq!(cfg["ExposedPorts"].as_object().unwrap().len(), 4, "{cfg}");
    let env_list: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env_list.contains(&"GREETING=hi there"));
    assert!(env_list.iter().any(|e| e.starts_with("PATH=")));
    // --entrypoint (a JSON array) and --cmd; with no -t or -o the image is named
    // <basename>:latest.
    let j = build_json(
        &env,
        &[
            bin.to_str().unwrap(),
            "--entrypoint",
            r#"["/app/hello-static", "first"]"#,
            "--cmd",
            "a b",
            "--cmd",
            "c",
        ],
    );
    assert_eq!(
        j["outputs"],
        serde_json::json!(["hello-static:latest"]),
        "{j}"
    );
    let c = skopeo_inspect(&[
        "--config",
        &format!("oci:{}:hello-static:latest", env.store().display()),
    ])
    .unwrap();
    assert_eq!(
        c["config"]["Entrypoint"],
        serde_json::json!(["/app/hello-static", "first"])
    );
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["a b", "c"]));
    // The added tree and the workdir are in the image, and it runs from there.
    if have("umoci") && is_root() {
        let bundle = env.path("b");
        run(Command::new("umoci")
            .args([
                "unpack",
                "--image",
                &format!("{}:cfg:1", env.store().display()),
            ])
            .arg(&bundle))
        .ok();
        assert_eq!(
            std::fs::read_to_string(bundle.join("rootfs/srv/data/sub/x.txt")).unwrap(),
            "x"
        );
        assert!(bundle.join("rootfs/work").is_dir());
        assert!(bundle.join("rootfs/usr/bin/hello").is_file());
    }
}

#[test]
fn same_binary_from_elsewhere_gives_the_same_digest() {
    let a = Env::new();
    let b = Env::new();
    let bin = hello_static();
    let d1 = build_json(&a, &[bin.to_str().unwrap(), "-t", "hello:1"])["digest"].clone();
    // Another path, another mtime, another mode, another store.
    let copy = b.path("elsewhere/hello-static");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&bin, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o700)).unwrap();
    run(Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(&copy))
    .ok();
    let d2 = build_json(&b, &[copy.to_str().unwrap(), "-t", "other:2"])["digest"].clone();
    assert_eq!(d1, d2);

    // zstd and uncompressed builds are reproducible too.
    for c in ["zstd", "none"] {
        let x = build_json(
            &a,
            &[bin.to_str().unwrap(), "--compression", c, "-t", "z:1"],
        )["digest"]
            .clone();
        let y = build_json(
            &b,
            &[copy.to_str().unwrap(), "--compression", c, "-t", "z:1"],
        )["digest"]
            .clone();
        assert_eq!(x, y, "{c}");
        assert_ne!(x, d1, "{c} differs from gzip");
        // Every reader reads every compression: check, tree and unpack.
        let r = a.nobase(&["check", "z:1"]).ok();
        assert!(r.stdout.starts_with("z:1: will start"), "{c}: {}", r.stdout);
        let t = a.nobase(&["tree", "--json", "z:1"]).ok().json();
        assert_eq!(t["merged"][1]["path"], "/app/hello-static", "{c}: {t}");
        let bundle = a.path(&format!("unpacked-{c}"));
        a.nobase(&["unpack", "z:1", bundle.to_str().unwrap()]).ok();
        assert_eq!(
            std::fs::read(bundle.join("rootfs/app/hello-static")).unwrap(),
            std::fs::read(&bin).unwrap(),
            "{c}"
        );
    }
}

#[test]
fn the_root_is_a_working_directory() {
    // Docker's default: `-w /` is taken (it was refused as "names the root directory").
    let env = Env::new();
    let bin = hello_static();
    build_json(&env, &[bin.to_str().unwrap(), "-t", "w:1", "-w", "/"]);
    if let Some(c) = skopeo_inspect(&["--config", &format!("oci:{}:w:1", env.store().display())]) {
        assert_eq!(c["config"]["WorkingDir"], "/", "{c}");
    }
    let r = env
        .nobase(&["build", bin.to_str().unwrap(), "-t", "w:2", "-w", ""])
        .code(2);
    assert!(r.stderr.contains("--workdir is empty"), "{}", r.stderr);
}

#[test]
fn source_date_epoch_changes_the_digest_and_the_created_time() {
    let env = Env::new();
    let bin = hello_static();
    let d0 = build_json(&env, &[bin.to_str().unwrap(), "-t", "e:0"])["digest"].clone();
    let r = env
        .cmd(&["build", "--json", bin.to_str().unwrap(), "-t", "e:1"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(r.status.success());
    let d1: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_ne!(d0, d1["digest"]);
    if let Some(c) = skopeo_inspect(&["--config", &format!("oci:{}:e:1", env.store().display())]) {
        assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    }
    if let Some(c) = skopeo_inspect(&["--config", &format!("oci:{}:e:0", env.store().display())]) {
        assert_eq!(c["created"], "1970-01-01T00:00:00Z");
    }
    // An empty SOURCE_DATE_EPOCH is unset (it broke every build, blaming a flag the user
    // never gave); a bad one is named as the variable.
    let run_with = |v: &str| {
        run(env
            .cmd(&["build", "--json", bin.to_str().unwrap(), "-t", "e:2"])
            .env("SOURCE_DATE_EPOCH", v))
    };
    assert_eq!(run_with("").code(0).json()["digest"], d0);
    let r = run_with("soon").code(2);
    assert!(
        r.stderr
            .contains("SOURCE_DATE_EPOCH=\"soon\" is not a time"),
        "{}",
        r.stderr
    );
}

#[test]
fn compression_threads_do_not_change_the_bytes() {
    let env = Env::new();
    let bin = hello_static();
    for c in ["gzip", "zstd"] {
        let one = build_json(
            &env,
            &[
                bin.to_str().unwrap(),
                "--compression",
                c,
                "--threads",
                "1",
                "-t",
                "t:1",
            ],
        );
        let two = build_json(
            &env,
            &[
                bin.to_str().unwrap(),
                "--compression",
                c,
                "--threads",
                "2",
                "-t",
                "t:2",
            ],
        );
        assert_eq!(one["digest"], two["digest"], "{c}");
    }
}

#[test]
fn dynamic_binary_refused_with_never_and_nothing_written() {
    let env = Env::new();
    let bin = hello_dynamic();
    let r = env
        .nobase(&[
            "build",
            bin.to_str().unwrap(),
            "--bundle",
            "never",
            "-t",
            "dyn:1",
            "-o",
            "oci:out",
        ])
        .code(1);
    assert!(r.stderr.contains("ld-linux-x86-64.so.2"), "{}", r.stderr);
    assert!(r.stderr.contains("libc.so.6"), "{}", r.stderr);
    assert!(r.stderr.contains("gcc -static"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!env.path("out").exists(), "an output was written");
    assert_eq!(blob_count(&env.store()), 0, "blobs were written");
    let r = env.nobase(&["images", "--json"]).ok();
    assert_eq!(r.json(), serde_json::json!([]));
    // The static rebuild advised fits the program's toolchain: Rust (this test binary's
    // nobase is a dynamic Rust program), musl, and Go with cgo.
    let mut cases = vec![
        (nobase_bin(), "+crt-static"),
        (hello_musl(), "musl-gcc -static"),
    ];
    let cgo = go_program(
        "hello-cgo",
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os/user\"\n)\n\nfunc main() { u, _ := user.Current(); fmt.Println(u != nil) }\n",
        &[("CGO_ENABLED", "1")],
    );
    if let Some(go) = cgo {
        cases.push((go, "CGO_ENABLED=0 go build"));
    }
    for (bin, fix) in cases {
        let r = env
            .nobase(&["build", bin.to_str().unwrap(), "--bundle", "never"])
            .code(1);
        assert!(
            r.stderr.contains("is dynamically linked") && r.stderr.contains(fix),
            "{}: {}",
            bin.display(),
            r.stderr
        );
    }
}

#[test]
fn malformed_inputs_get_one_line_errors() {
    let env = Env::new();
    let good = std::fs::read(hello_static()).unwrap();
    std::fs::write(env.path("truncated"), &good[..100]).unwrap();
    let mut rng = 0x1234_5678_u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    std::fs::write(env.path("random"), &random).unwrap();
    let mut absurd = good[..64].to_vec();
    absurd[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes()); // e_phoff
    absurd[56..58].copy_from_slice(&0xffffu16.to_le_bytes()); // e_phnum
    std::fs::write(env.path("absurd"), &absurd).unwrap();
    std::fs::create_dir(env.path("adir")).unwrap();
    for input in ["truncated", "random", "absurd", "adir", "missing"] {
        let r = env.nobase(&["build", input, "-t", "bad:1"]);
        assert_ne!(r.code, 0, "{input} was accepted");
        assert!(!r.stderr.contains("panicked"), "{input}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{input}: {}", r.stderr);
        assert!(r.stderr.starts_with("nobase: "), "{input}: {}", r.stderr);
        assert!(r.stderr.contains(input), "{input} not named: {}", r.stderr);
    }
    assert_eq!(blob_count(&env.store()), 0);
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let bin = hello_static();
    let b = bin.to_str().unwrap();
    for args in [
        vec!["build", b, "-t", "Bad:Name"],
        vec!["build", b, "-e", "NOVALUE"],
        vec!["build", b, "--expose", "99999"],
        vec!["build", b, "-o", "ftp://x/y"],
        vec!["build", b, "--compression", "lz4"],
        vec!["frobnicate"],
    ] {
        let r = env.nobase(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
}

#[test]
fn images_lists_and_rmi_collects_unused_blobs() {
    let env = Env::new();
    let bin = hello_static();
    let b = bin.to_str().unwrap();
    build_json(&env, &[b, "-t", "a:1", "-t", "a:2"]);
    build_json(&env, &[b, "--compression", "zstd", "-t", "z:1"]);
    let list = env.nobase(&["images", "--json"]).ok().json();
    let names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["name"].as_str().unwrap(),
                e["tag"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names, ["a:1", "a:2", "z:1"]);
    assert_eq!(list[0]["platform"], "linux/amd64");
    let blobs_before = blob_count(&env.store());
    // a:2 shares everything with a:1: removing it frees nothing.
    env.nobase(&["rmi", "a:2"]).ok();
    assert_eq!(blob_count(&env.store()), blobs_before);
    // z:1's blobs are its own (zstd layer, its config is the same as a:1's).
    env.nobase(&["rmi", "z:1"]).ok();
    assert!(blob_count(&env.store()) < blobs_before);
    assert_eq!(
        blob_count(&env.store()),
        3,
        "a:1 keeps layer, config, manifest"
    );
    let r = env.nobase(&["rmi", "nope:1"]).code(3);
    assert!(r.stderr.contains("nope:1"), "{}", r.stderr);
    // As docker rmi: a name that is not there does not stop the others, and the blobs
    // of those removed are collected.
    build_json(&env, &[b, "--compression", "zstd", "-t", "z:2"]);
    let r = env.nobase(&["rmi", "nope:2", "z:2"]).code(3);
    assert!(
        r.stderr.contains("removing nope:2: no image nope:2"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("untagged z:2"), "{}", r.stdout);
    assert_eq!(blob_count(&env.store()), 3);
    // What remains still reads and runs.
    if let Some(d) = skopeo_digest(&format!("oci:{}:a:1", env.store().display())) {
        assert!(d.starts_with("sha256:"));
    }
}

#[test]
fn parallel_builds_into_one_store_lose_no_tag() {
    let env = Env::new();
    let bin = hello_static();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut c = env.cmd(&[
                "build",
                "-q",
                bin.to_str().unwrap(),
                "-t",
                &format!("p:{i}"),
            ]);
            if i % 2 == 1 {
                c.args(["--compression", "zstd"]);
            }
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let list = env.nobase(&["images", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 8);
    // No temp files were left behind.
    let temps = std::fs::read_dir(env.store())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert_eq!(temps, 0);
}

#[test]
fn a_link_named_as_the_executable_is_followed() {
    // As `/usr/bin/python3` → `python3.11` and `/usr/bin/go` → `../lib/go-1.19/bin/go`:
    // the image gets the program itself under the name given, not a dangling link.
    let env = Env::new();
    std::fs::create_dir_all(env.path("lib/tool/bin")).unwrap();
    std::fs::create_dir_all(env.path("bin")).unwrap();
    for (bin, real, link, target) in [
        (hello_static(), "bin/hello-3.11", "bin/hello", "hello-3.11"),
        (
            hello_dynamic(),
            "lib/tool/bin/dyn-real",
            "bin/dyn",
            "../lib/tool/bin/dyn-real",
        ),
    ] {
        std::fs::copy(&bin, env.path(real)).unwrap();
        std::os::unix::fs::symlink(target, env.path(link)).unwrap();
        let name = link.trim_start_matches("bin/");
        let tag = format!("{name}:1");
        build_json(&env, &[env.path(link).to_str().unwrap(), "-t", &tag]);
        let tree = env.nobase(&["tree", &tag, "--json"]).ok().json();
        let top = tree["layers"].as_array().unwrap().last().unwrap().clone();
        let files: Vec<_> = top["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["path"].as_str().unwrap(), f["kind"].as_str().unwrap()))
            .collect();
        let app = format!("/app/{name}");
        assert_eq!(files, [("/app", "dir"), (app.as_str(), "file")], "{tag}");
        let size = std::fs::metadata(&bin).unwrap().len();
        assert_eq!(top["files"][1]["size"], size, "{tag}");
        let r = env.nobase(&["check", &tag]).ok();
        assert!(r.stdout.contains("will start"), "{tag}: {}", r.stdout);
        let layout_ref = format!("{}:{tag}", env.store().display());
        if let Some(r) = runc_run(&env, &layout_ref, None) {
            assert_eq!(r.code, 0, "{tag}: runc: {}", r.stderr);
            assert_eq!(r.stdout, "hello world\n", "{tag}");
        }
    }
    // A link to nothing is named as such.
    std::os::unix::fs::symlink("gone", env.path("bin/dangling")).unwrap();
    let blobs = blob_count(&env.store());
    let r = env
        .nobase(&["build", env.path("bin/dangling").to_str().unwrap()])
        .code(3);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert_eq!(blob_count(&env.store()), blobs, "blobs were written for it");
}

#[test]
fn hard_links_added_are_stored_and_counted_once() {
    let env = Env::new();
    let bin = hello_static();
    std::fs::write(env.path("data"), vec![7u8; 100_000]).unwrap();
    std::fs::hard_link(env.path("data"), env.path("link")).unwrap();
    let add = |name: &str| format!("{}:/x/{name}", env.path(name).display());
    let j = build_json(
        &env,
        &[
            bin.to_str().unwrap(),
            "--add",
            &add("data"),
            "--add",
            &add("link"),
            "-t",
            "hl:1",
        ],
    );
    let size = std::fs::metadata(&bin).unwrap().len();
    assert_eq!(j["layers"][0]["files"], 3, "{j}");
    assert_eq!(j["layers"][0]["file_bytes"], size + 100_000, "{j}");
    let link = merged_entry(&env, "hl:1", "/x/link");
    assert_eq!(link["kind"], "hardlink", "{link}");
    assert_eq!(link["target"], "/x/data", "{link}");
}

#[test]
fn an_output_that_cannot_be_written_stops_the_build_before_any_is() {
    let env = Env::new();
    let bin = hello_static();
    std::fs::create_dir(env.path("adir")).unwrap();
    std::fs::write(env.path("afile"), "x").unwrap();
    for (bad, why) in [
        (
            "oci-archive:/nonexistent/dir/x.tar",
            "/nonexistent/dir is not an existing directory",
        ),
        (
            "docker-archive:adir",
            "adir is a directory; name the archive file",
        ),
        ("oci:afile", "afile exists and is not a directory"),
    ] {
        let r = env
            .nobase(&[
                "build",
                bin.to_str().unwrap(),
                "-t",
                "half:1",
                "-o",
                "oci:out",
                "-o",
                bad,
            ])
            .code(3);
        assert!(r.stderr.contains(why), "{bad}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(!env.path("out").exists(), "{bad}: oci:out was written");
        let images = env.nobase(&["images", "--json"]).ok().json();
        assert_eq!(images, serde_json::json!([]), "{bad}: a tag was written");
    }
}

/// A tmpfs mounted with `opts` at `name` in the env (root only), or None where mounting
/// is not allowed; the caller unmounts it.
fn tmpfs(env: &Env, name: &str, opts: &str) -> Option<std::path::PathBuf> {
    let dir = env.path(name);
    std::fs::create_dir(&dir).unwrap();
    let r = run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
        .arg(&dir));
    (r.code == 0).then_some(dir)
}

#[test]
fn an_output_on_a_read_only_mount_is_refused_before_anything_is_written() {
    // `-t ok:1 -o oci:/ro/lay:x`: the tag was written, then the layout failed (exit 3).
    if !is_root() {
        return;
    }
    let env = Env::new();
    let Some(ro) = tmpfs(&env, "ro", "ro,size=1m") else {
        return;
    };
    let bin = hello_static();
    let r = env.nobase(&[
        "build",
        bin.to_str().unwrap(),
        "-t",
        "ok:1",
        "-o",
        &format!("oci:{}:x", ro.join("lay").display()),
    ]);
    let r2 = env.nobase(&[
        "build",
        bin.to_str().unwrap(),
        "-t",
        "ok:2",
        "-o",
        &format!("oci-archive:{}", ro.join("a.tar").display()),
    ]);
    run(Command::new("umount").arg(&ro));
    for r in [r, r2] {
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(
            r.stderr.contains("is not writable: Read-only file system"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(env.nobase(&["images", "-q"]).ok().stdout, "");
}

#[test]
fn a_full_disk_is_named_as_the_output_not_the_input() {
    // It said "reading /usr/local/bin/terraform: No space left on device".
    if !is_root() {
        return;
    }
    let env = Env::new();
    let Some(small) = tmpfs(&env, "small", "size=1m") else {
        return;
    };
    // 3 MiB that do not compress.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let data: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(env.path("big"), data).unwrap();
    // Wherever the pipeline is when the disk fills (a file's contents, a header, the
    // last blocks: it depends on the codec, the threads and the machine's load), the
    // error names the store.
    let hello = hello_static();
    let mut failures = Vec::new();
    for (i, extra) in [&[][..], &["--compression", "zstd"], &["--threads", "1"]]
        .into_iter()
        .enumerate()
    {
        let store = small.join(format!("store{i}"));
        let mut args = vec!["build", hello.to_str().unwrap(), "--add", "big:/data/big"];
        args.extend_from_slice(extra);
        let r = run(env.cmd(&args).env("NOBASE_STORE", &store));
        let want = format!(
            "writing the layer into the store {}: No space left on device (os error 28); free space there, or write elsewhere",
            store.display()
        );
        if r.code != 3 || !r.stderr.contains(&want) {
            failures.push(format!("{extra:?}: exit {}: {}", r.code, r.stderr));
        }
        let _ = std::fs::remove_dir_all(&store);
    }
    run(Command::new("umount").arg(&small));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_tag_another_tool_wrote_without_a_colon_is_name_latest_everywhere() {
    // `umoci tag … v2` writes the ref name "v2": `images` listed it as v2:latest, and
    // `check v2` / `rmi v2` then said there was no such image.
    if !have("umoci") {
        return;
    }
    let env = Env::new();
    let bin = hello_static();
    build_json(&env, &[bin.to_str().unwrap(), "-t", "hello:1"]);
    let image = format!("{}:hello:1", env.store().display());
    assert_eq!(
        run(Command::new("umoci").args(["tag", "--image", &image, "v2"])).code,
        0
    );
    let r = env.nobase(&["images", "-q"]).ok();
    assert!(r.stdout.lines().any(|l| l == "v2:latest"), "{}", r.stdout);
    env.nobase(&["check", "v2"]).ok();
    env.nobase(&["rmi", "v2"]).ok();
    assert_eq!(env.nobase(&["images", "-q"]).ok().stdout, "hello:1\n");
}

#[test]
fn a_docker_archive_is_never_silently_replaced_and_oci_dir_keeps_other_images() {
    let env = Env::new();
    let bin = hello_static();
    let bin = bin.to_str().unwrap();
    let a = build_json(&env, &[bin, "-t", "a:1"])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let b = build_json(&env, &[bin, "-t", "b:1", "-e", "B=1"])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(a, b);
    // docker-archive: the same image under the same name again is fine (nothing
    // changes); anything else there is refused, the file left as it was.
    let tar = env.path("x.tar");
    let dest = format!("docker-archive:{}:a:1", tar.display());
    env.nobase(&["push", "a:1", &dest]).ok();
    let before = std::fs::read(&tar).unwrap();
    env.nobase(&["push", "a:1", &dest]).ok();
    for (img, to) in [("b:1", "b:1"), ("a:1", "a:2")] {
        let r = env
            .nobase(&[
                "push",
                img,
                &format!("docker-archive:{}:{to}", tar.display()),
            ])
            .code(1);
        assert!(
            r.stderr
                .contains("already exists and holds an image tagged a:1; a docker-archive cannot be added to or changed"),
            "{}",
            r.stderr
        );
        assert_eq!(std::fs::read(&tar).unwrap(), before, "{img} as {to}");
    }
    // A build's -o names its output file: it replaces what was there, as `docker save
    // -o` does (a rebuild into the same file is the everyday case).
    let other = env.path("y.tar");
    let out = format!("docker-archive:{}:app:1", other.display());
    env.nobase(&["build", bin, "-o", &out, "-q"]).ok();
    let first = std::fs::read(&other).unwrap();
    build_json(&env, &[bin, "-e", "B=2", "-o", &out]);
    assert_ne!(std::fs::read(&other).unwrap(), first);
    if let Some(c) = skopeo_inspect(&["--config", &out]) {
        assert!(c["config"]["Env"].to_string().contains("B=2"), "{c}");
    }
    // docker load names the image by its one RepoTag: so does pull without -t.
    let env2 = Env::new();
    let r = env2
        .nobase(&["pull", &format!("docker-archive:{}", tar.display())])
        .ok();
    assert!(r.stdout.ends_with("  a:1\n"), "{}", r.stdout);
    env2.nobase(&["check", "a:1"]).ok();
    // Without a RepoTag there is no name to take: -t is asked for.
    let untagged = env.path("untagged.tar");
    env.nobase(&[
        "push",
        "b:1",
        &format!("docker-archive:{}", untagged.display()),
    ])
    .ok();
    let r = env2
        .nobase(&["pull", &format!("docker-archive:{}", untagged.display())])
        .code(2);
    assert!(r.stderr.contains("-t NAME[:TAG]"), "{}", r.stderr);
    // oci:DIR without REF adds the image beside the others, as skopeo does; the same
    // one twice is listed once; oci:DIR:REF replaces that name only.
    let dir = env.path("layout");
    let layout = format!("oci:{}", dir.display());
    env.nobase(&["push", "a:1", &format!("{layout}:keep")]).ok();
    env.nobase(&["push", "a:1", &layout]).ok();
    env.nobase(&["push", "b:1", &layout]).ok();
    env.nobase(&["push", "b:1", &layout]).ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entries: Vec<(String, Option<&str>)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_string(),
                m["annotations"]["org.opencontainers.image.ref.name"].as_str(),
            )
        })
        .collect();
    assert_eq!(entries.len(), 3, "{index}");
    for want in [
        (a.clone(), Some("keep")),
        (a.clone(), None),
        (b.clone(), None),
    ] {
        assert!(
            entries.iter().any(|(d, r)| (d, *r) == (&want.0, want.1)),
            "{want:?} in {index}"
        );
    }
    env.nobase(&["push", "b:1", &format!("{layout}:keep")]).ok();
    if let Some(d) = skopeo_digest(&format!("{layout}:keep")) {
        assert_eq!(d, b);
    }
    // fsck of a layout names the blobs no image uses (a's config, manifest and layer
    // are still used by the unnamed entry: none here), without calling them a fault.
    let j = env
        .nobase(&["fsck", "--json", dir.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(j["unused"]["blobs"], 0, "{j}");
    let stray = b"not referenced by anything";
    let hex = sha256_hex(stray);
    std::fs::write(
        dir.join("blobs/sha256")
            .join(hex.trim_start_matches("sha256:")),
        stray,
    )
    .unwrap();
    let j = env
        .nobase(&["fsck", "--json", dir.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(j["unused"]["blobs"], 1, "{j}");
    assert_eq!(j["unused"]["bytes"], stray.len(), "{j}");
    let r = env.nobase(&["fsck", dir.to_str().unwrap()]).ok();
    assert!(
        r.stderr
            .contains("1 blobs (26 B) no image of the index uses"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_rmi_that_removes_nothing_collects_nothing() {
    // A mistyped name (exit 3) still swept the store's unused blobs away.
    let env = Env::new();
    build_json(&env, &[hello_static().to_str().unwrap(), "-t", "a:1"]);
    let r = env.nobase(&["fsck"]).ok();
    assert!(
        r.stdout.contains(" verified, 1 image, 0 problems"),
        "{}",
        r.stdout
    );
    let stray = b"a blob nothing uses";
    let stray_path = env
        .store()
        .join("blobs/sha256")
        .join(sha256_hex(stray).trim_start_matches("sha256:"));
    std::fs::write(&stray_path, stray).unwrap();
    let r = env.nobase(&["rmi", "nope:1"]).code(3);
    assert!(!r.stderr.contains("deleted"), "{}", r.stderr);
    assert!(stray_path.exists(), "a failed rmi collected blobs");
    // An rmi that removes something collects it, and the stray blob with it.
    let r = env.nobase(&["rmi", "a:1"]).ok();
    assert!(r.stderr.contains("deleted"), "{}", r.stderr);
    assert!(!stray_path.exists());
}

#[test]
fn store_images_are_reached_by_digest_named_or_not() {
    // `images` showed digests nothing took, and an image copied into the store under no
    // name was invisible and unreachable.
    let env = Env::new();
    let bin = hello_static();
    build_json(&env, &[bin.to_str().unwrap(), "-t", "h:1"]);
    let list = env.nobase(&["images", "--json"]).ok().json();
    let digest = list[0]["digest"].as_str().unwrap().to_string();
    let short = &digest[..19]; // sha256: and 12 digits, as `images` shows it
    let r = env.nobase(&["check", short]).ok();
    assert!(r.stdout.contains("will start"), "{}", r.stdout);
    env.nobase(&["check", &format!("h@{digest}")]).ok();
    // With its tag too, as Docker takes NAME:TAG@DIGEST (by the digest).
    env.nobase(&["check", &format!("h:1@{digest}")]).ok();
    let r = env.nobase(&["check", &format!("other@{digest}")]).code(3);
    assert!(r.stderr.contains("no image other@sha256:"), "{}", r.stderr);
    env.nobase(&["check", &format!("h@{}", &digest[..20])])
        .code(2);
    env.nobase(&["check", "sha256:2d3"]).code(2);
    // Never a name to write to: a tag sha256:… could not be read back.
    env.nobase(&["build", bin.to_str().unwrap(), "-t", short])
        .code(2);
    env.nobase(&["push", "h:1", short]).code(2);
    // skopeo copies into the store without a name: listed as <none>, reached by digest.
    if !have("skopeo") {
        return;
    }
    let store = env.store();
    let r = run(std::process::Command::new("skopeo").args([
        "copy",
        &format!("oci:{}:h:1", store.display()),
        &format!("oci:{}", store.display()),
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    env.nobase(&["rmi", "h:1"]).ok();
    let list = env.nobase(&["images", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], serde_json::Value::Null, "{list}");
    assert_eq!(list[0]["digest"], digest.as_str());
    let table = env.nobase(&["images"]).ok();
    assert!(table.stdout.contains("<none>"), "{}", table.stdout);
    assert_eq!(env.nobase(&["images", "-q"]).ok().stdout, "");
    let tree = env.nobase(&["tree", "--json", short]).ok().json();
    assert!(
        tree["layers"].as_array().is_some_and(|l| !l.is_empty()),
        "{tree}"
    );
    if is_root() && have("runc") {
        let r = env.nobase(&["run", short]).ok();
        assert_eq!(r.stdout, "hello world\n");
    }
}
