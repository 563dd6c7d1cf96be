//! Dynamic executables: the loader and library closure found the way ld.so finds it,
//! bundled into scratch images that runc starts, and the same closure shown by
//! `nobase inspect`, compared with lddtree and ldconfig.

use crate::util::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `bin` into `oci:<env>/out:<name>` with extra arguments; returns the JSON summary.
fn build(env: &Env, bin: &Path, name: &str, extra: &[&str]) -> Value {
    let out = format!("oci:{}:{name}", env.path("out").display());
    let mut args = vec!["build", bin.to_str().unwrap(), "-o", &out, "--json"];
    args.extend_from_slice(extra);
    env.nobase(&args).ok().json()
}

fn layout_ref(env: &Env, name: &str) -> String {
    format!("{}:{name}", env.path("out").display())
}

/// `lddtree -l`: the binary, its interpreter and every library path it resolves.
/// Debian's lddtree needs pyelftools, which a python3 on PATH may lack: prefer the
/// system interpreter.
fn lddtree(bin: &Path) -> Option<BTreeSet<String>> {
    if !have("lddtree") {
        return None;
    }
    let python = Path::new("/usr/bin/python3");
    let script =
        String::from_utf8_lossy(&Command::new("which").arg("lddtree").output().ok()?.stdout)
            .trim()
            .to_string();
    let mut cmd = if python.exists() {
        let mut c = Command::new(python);
        c.arg(&script);
        c
    } else {
        Command::new("lddtree")
    };
    let r = run(cmd.arg("-l").arg(bin));
    assert_eq!(r.code, 0, "lddtree -l {}: {}", bin.display(), r.stderr);
    Some(r.stdout.lines().skip(1).map(str::to_string).collect())
}

/// The interpreter and library paths `nobase inspect --json` resolves.
fn inspect_paths(env: &Env, bin: &Path) -> (BTreeSet<String>, Value) {
    let j = env
        .nobase(&["inspect", "--json", bin.to_str().unwrap()])
        .ok()
        .json();
    let r = &j["resolved"];
    assert_eq!(r["complete"], true, "{r:#}");
    let mut paths: BTreeSet<String> = r["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["found"] == true)
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    paths.insert(r["interpreter"]["path"].as_str().unwrap().to_string());
    (paths, j)
}

/// Regular files of an unpacked rootfs, as image paths.
fn regular_files(rootfs: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(base, &e.path(), out);
            } else if ft.is_file() {
                out.insert(format!(
                    "/{}",
                    e.path().strip_prefix(base).unwrap().display()
                ));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(rootfs, rootfs, &mut out);
    out
}

fn realpaths(paths: &BTreeSet<String>) -> BTreeSet<String> {
    paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap().display().to_string())
        .collect()
}

#[test]
fn dynamic_hello_world_starts() {
    let env = Env::new();
    let j = build(&env, &hello_dynamic(), "hello", &[]);
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{j:#}");
    assert!(
        layers[0]["created_by"]
            .as_str()
            .unwrap()
            .contains("/lib64/ld-linux-x86-64.so.2"),
        "{j:#}"
    );
    assert_eq!(
        j["bundled"]["libraries"],
        serde_json::json!(["/lib/x86_64-linux-gnu/libc.so.6"])
    );
    if let Some(r) = runc_run(&env, &layout_ref(&env, "hello"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
    // The loader path and its symlink chain exist exactly as PT_INTERP asks.
    if let Some(b) = umoci_unpack(&env, &layout_ref(&env, "hello")) {
        let rootfs = b.join("rootfs");
        // Resolved inside the rootfs: its links are absolute, meaning the image root.
        let img_real = nobase::root::resolve(
            &nobase::root::HostRoot::new(&rootfs),
            "/lib64/ld-linux-x86-64.so.2",
        )
        .expect("no loader at its PT_INTERP path");
        let host_real = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
        assert_eq!(img_real, host_real.display().to_string());
    }
}

#[test]
fn real_binaries_start_with_only_their_closure() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("/usr/bin/node", &["-e", "console.log(1)"], "1\n"),
        ("curl", &["--version"], "curl "),
        ("git", &["--version"], "git version"),
        ("openssl", &["version"], "OpenSSL"),
        (
            "/usr/bin/docker-registry",
            &["--version"],
            "docker/distribution",
        ),
        ("skopeo", &["--version"], "skopeo version"),
    ];
    for (name, args, want) in cases {
        let Some(bin) = find_program(name) else {
            eprintln!("skipping {name}: not installed on this machine");
            continue;
        };
        let env = Env::new();
        let tag = bin.file_name().unwrap().to_str().unwrap().to_string();
        // Uncompressed: these layers are large, and umoci does not read zstd.
        let j = build(&env, &bin, &tag, &["--compression", "none"]);
        assert_eq!(j["layers"].as_array().unwrap().len(), 2, "{j:#}");
        let Some(bundle) = umoci_unpack(&env, &layout_ref(&env, &tag)) else {
            return;
        };
        // Only the program, its loader and libraries (each once, at its real path).
        if let Some(tree) = lddtree(&bin) {
            let mut want_files = realpaths(
                &tree
                    .iter()
                    .filter(|p| **p != bin.display().to_string())
                    .cloned()
                    .collect(),
            );
            want_files.remove(&std::fs::canonicalize(&bin).unwrap().display().to_string());
            want_files.insert(format!("/app/{tag}"));
            assert_eq!(regular_files(&bundle.join("rootfs")), want_files, "{name}");
        }
        if let Some(r) = runc_run(&env, &layout_ref(&env, &tag), Some(args)) {
            assert_eq!(r.code, 0, "{name}: {}", r.stderr);
            assert!(r.stdout.contains(want), "{name}: {}", r.stdout);
        }
    }
}

/// A program by absolute path or on PATH. scripts/setup installs every program the
/// tests look for, so in CI (`NOBASE_TEST_REQUIRE_TOOLS=1`) a missing one fails.
fn find_program(name: &str) -> Option<PathBuf> {
    let found = if name.starts_with('/') {
        Path::new(name).is_file().then(|| PathBuf::from(name))
    } else {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    assert!(
        found.is_some() || std::env::var_os("NOBASE_TEST_REQUIRE_TOOLS").is_none(),
        "{name} is required (NOBASE_TEST_REQUIRE_TOOLS is set) but not installed"
    );
    found
}

#[test]
fn inspect_matches_lddtree() {
    let env = Env::new();
    let mut bins = vec![hello_dynamic()];
    for name in [
        "/usr/bin/node",
        "curl",
        "git",
        "openssl",
        "/usr/bin/docker-registry",
        "skopeo",
    ] {
        match find_program(name) {
            Some(p) => bins.push(p),
            None => eprintln!("skipping {name}: not installed on this machine"),
        }
    }
    for bin in bins {
        let Some(theirs) = lddtree(&bin) else {
            return;
        };
        let (mine, j) = inspect_paths(&env, &bin);
        // The same files. (lddtree searches ld.so.conf's directories where ld.so reads
        // the cache, so the spelling of a path may differ on some machines; the exact
        // spelling is judged against ld.so itself in search_rules_agree_with_the_real_loader.)
        assert_eq!(realpaths(&mine), realpaths(&theirs), "{}", bin.display());
        // And exactly as glibc's own loader spells them.
        if let Some(real) = real_loader_list(&bin) {
            let mut ours = name_map(&j);
            ours.remove("ld-linux-x86-64.so.2");
            assert_eq!(ours, real, "{}", bin.display());
        }
        // The human form names the same files.
        let human = env.nobase(&["inspect", bin.to_str().unwrap()]).ok().stdout;
        for l in j["resolved"]["libraries"].as_array().unwrap() {
            if l["first"] == true {
                let line = format!(
                    "{} => {}",
                    l["name"].as_str().unwrap(),
                    l["path"].as_str().unwrap()
                );
                assert!(human.contains(&line), "{line} missing from:\n{human}");
            }
        }
    }
}

const GREET_C: &str = "const char *greet(void) { return \"hello from libgreet\"; }\n";
const MAIN_GREET_C: &str =
    "#include <stdio.h>\nconst char *greet(void);\nint main(void) { puts(greet()); return 0; }\n";

/// `<dir>/opt/app/bin/hello` with RUNPATH `$ORIGIN/../lib` and its private library
/// `<dir>/opt/app/lib/libgreet.so.1` (a symlink to the versioned file).
fn private_app(dir: &Path) -> PathBuf {
    let lib = dir.join("opt/app/lib");
    let bin = dir.join("opt/app/bin");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    cc(
        "gcc",
        GREET_C,
        &lib.join("libgreet.so.1.0.0"),
        &["-shared", "-fPIC", "-Wl,-soname,libgreet.so.1"],
    );
    std::os::unix::fs::symlink("libgreet.so.1.0.0", lib.join("libgreet.so.1")).unwrap();
    let exe = bin.join("hello");
    cc(
        "gcc",
        MAIN_GREET_C,
        &exe,
        &[
            &format!("-L{}", lib.display()),
            "-l:libgreet.so.1",
            "-Wl,-rpath,$ORIGIN/../lib",
            "-Wl,--enable-new-dtags",
        ],
    );
    exe
}

#[test]
fn runpath_origin_private_library_starts_and_missing_is_refused() {
    let env = Env::new();
    let exe = private_app(&env.path("tree"));
    let j = build(&env, &exe, "app", &["--path", "/opt/app/bin/hello"]);
    assert_eq!(
        j["bundled"]["private"],
        serde_json::json!(["/opt/app/lib/libgreet.so.1"])
    );
    assert_eq!(
        j["bundled"]["libraries"],
        serde_json::json!(["/lib/x86_64-linux-gnu/libc.so.6"])
    );
    if let Some(r) = runc_run(&env, &layout_ref(&env, "app"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello from libgreet\n");
    }
    // A --path ending in / is a directory: the program keeps its name there (it became
    // a file named /opt/app/bin).
    let j = build(&env, &exe, "slash", &["--path", "/opt/app/bin/"]);
    assert_eq!(
        j["bundled"]["private"],
        serde_json::json!(["/opt/app/lib/libgreet.so.1"])
    );
    if let Some(c) = skopeo_inspect(&["--config", &format!("oci:{}", layout_ref(&env, "slash"))]) {
        let name = exe.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            c["config"]["Entrypoint"],
            serde_json::json!([format!("/opt/app/bin/{name}")])
        );
    }
    // The private library's mode on the host does not reach the image: 0755 either way,
    // the same digest.
    use std::os::unix::fs::PermissionsExt;
    let so = env.path("tree/opt/app/lib/libgreet.so.1.0.0");
    let mut digests = Vec::new();
    for mode in [0o644, 0o755] {
        std::fs::set_permissions(&so, std::fs::Permissions::from_mode(mode)).unwrap();
        let j = build(&env, &exe, "mode", &["--path", "/opt/app/bin/hello"]);
        digests.push(j["digest"].clone());
    }
    assert_eq!(digests[0], digests[1]);
    let image = format!("oci:{}", layout_ref(&env, "mode"));
    let lib = merged_entry(&env, &image, "/opt/app/lib/libgreet.so.1");
    assert_eq!(lib["mode"], "0755", "{lib}");
    // inspect shows where RUNPATH found it.
    let ij = env
        .nobase(&["inspect", "--json", exe.to_str().unwrap()])
        .ok()
        .json();
    let greet = &ij["resolved"]["libraries"][0];
    assert_eq!(greet["name"], "libgreet.so.1");
    assert_eq!(greet["via"], "RUNPATH $ORIGIN/../lib");
    assert_eq!(ij["runpath"], serde_json::json!(["$ORIGIN/../lib"]));
    assert_eq!(ij["rpath"], serde_json::json!([]));
    assert_eq!(
        ij["needed"],
        serde_json::json!(["libgreet.so.1", "libc.so.6"])
    );
    // The library itself: a shared library with its soname, which plain inspect says.
    let lib = env.path("tree/opt/app/lib/libgreet.so.1.0.0");
    let lj = env
        .nobase(&["inspect", "--json", lib.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(lj["type"], "shared-library");
    assert_eq!(lj["soname"], "libgreet.so.1");
    assert_eq!(lj["interpreter"], serde_json::Value::Null);
    let text = env.nobase(&["inspect", lib.to_str().unwrap()]).ok().stdout;
    assert!(
        text.contains("shared library") && text.contains("soname     libgreet.so.1"),
        "{text}"
    );
    // The old DT_RPATH (without --enable-new-dtags) is reported as rpath.
    let old = env.path("tree/opt/app/bin/hello-rpath");
    cc(
        "gcc",
        MAIN_GREET_C,
        &old,
        &[
            &format!("-L{}", env.path("tree/opt/app/lib").display()),
            "-l:libgreet.so.1",
            "-Wl,-rpath,$ORIGIN/../lib:/opt/other",
            "-Wl,--disable-new-dtags",
        ],
    );
    let oj = env
        .nobase(&["inspect", "--json", old.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(
        oj["rpath"],
        serde_json::json!(["$ORIGIN/../lib", "/opt/other"])
    );
    assert_eq!(oj["runpath"], serde_json::json!([]));
    assert_eq!(
        oj["resolved"]["libraries"][0]["via"],
        "RPATH $ORIGIN/../lib"
    );

    // Without the library: refused, naming it and where it was looked for; nothing written.
    std::fs::remove_file(env.path("tree/opt/app/lib/libgreet.so.1.0.0")).unwrap();
    let r = env
        .nobase(&[
            "build",
            exe.to_str().unwrap(),
            "--path",
            "/opt/app/bin/hello",
            "-o",
            "oci:missing",
        ])
        .code(1);
    assert!(r.stderr.contains("libgreet.so.1"), "{}", r.stderr);
    assert!(r.stderr.contains("RUNPATH $ORIGIN/../lib"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!env.path("missing").exists());
}

#[test]
fn a_library_named_by_a_relative_path_is_opened_from_the_working_directory() {
    // `gcc main.c ./libgreet.so` records the path as given: ld.so opens it from the
    // process's working directory and searches nowhere (ldd finds it from this one).
    let env = Env::new();
    cc(
        "gcc",
        GREET_C,
        &env.path("libgreet.so"),
        &["-shared", "-fPIC"],
    );
    std::fs::write(env.path("main.c"), MAIN_GREET_C).unwrap();
    let r = run(Command::new("gcc").current_dir(env.path("")).args([
        "-O2",
        "-o",
        "app",
        "main.c",
        "./libgreet.so",
    ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ij = env.nobase(&["inspect", "--json", "app"]).ok().json();
    assert_eq!(ij["needed"][0], "./libgreet.so");
    let lib = &ij["resolved"]["libraries"][0];
    assert_eq!(lib["found"], true, "{lib}");
    assert_eq!(
        lib["canonical"].as_str().map(PathBuf::from),
        Some(std::fs::canonicalize(env.path("libgreet.so")).unwrap())
    );
    // From another directory it is not there, for ldd either.
    let r = run(Command::new(nobase_bin()).current_dir("/").args([
        "inspect",
        "--json",
        env.path("app").to_str().unwrap(),
    ]));
    assert_eq!(r.json()["resolved"]["libraries"][0]["found"], false);
    // The image runs in its working directory: the refusal names the --add that puts the
    // library there, and that build starts.
    let r = env
        .nobase(&["build", "app", "-w", "/srv", "-t", "rel:1"])
        .code(1);
    assert!(
        r.stderr
            .contains("opens from the working directory, /srv: add the file there, e.g. --add ./libgreet.so:/srv/libgreet.so"),
        "{}",
        r.stderr
    );
    let add = ["--add", "./libgreet.so:/srv/libgreet.so"];
    let j = build(
        &env,
        Path::new("app"),
        "rel",
        &[&["-w", "/srv"][..], &add].concat(),
    );
    assert_eq!(j["platform"], "linux/amd64", "{j}");
    if let Some(r) = runc_run(&env, &layout_ref(&env, "rel"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello from libgreet\n");
    }
}

#[test]
fn musl_dynamic_hello_starts() {
    if !have("musl-gcc") {
        return;
    }
    let env = Env::new();
    let j = build(&env, &hello_musl(), "musl", &[]);
    assert!(
        j["layers"][0]["created_by"]
            .as_str()
            .unwrap()
            .contains("ld-musl-"),
        "{j:#}"
    );
    if let Some(r) = runc_run(&env, &layout_ref(&env, "musl"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
    // libc.so is musl's loader itself: resolved to it, not searched.
    let ij = env
        .nobase(&["inspect", "--json", hello_musl().to_str().unwrap()])
        .ok()
        .json();
    let r = &ij["resolved"];
    assert_eq!(r["flavor"], "musl");
    assert_eq!(r["libraries"][0]["name"], "libc.so");
    assert_eq!(r["libraries"][0]["path"], r["interpreter"]["path"]);
}

#[test]
fn rebuilt_app_reuses_the_library_layer_blob() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    cc(
        "gcc",
        "#include <stdio.h>\nint main(void) { puts(\"one\"); return 0; }\n",
        &a,
        &[],
    );
    cc(
        "gcc",
        "#include <stdio.h>\nint main(void) { puts(\"two\"); return 0; }\n",
        &b,
        &[],
    );
    let ja = build(&env, &a, "v1", &["--path", "/app/x"]);
    let jb = build(&env, &b, "v2", &["--path", "/app/x"]);
    let digests = |j: &Value| -> Vec<String> {
        j["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let (da, db) = (digests(&ja), digests(&jb));
    assert_eq!(da[0], db[0], "library layer differs");
    assert_ne!(da[1], db[1], "application layer should differ");
    // The manifests skopeo reads say the same.
    if let (Some(ma), Some(mb)) = (
        skopeo_inspect(&[&format!("oci:{}", layout_ref(&env, "v1"))]),
        skopeo_inspect(&[&format!("oci:{}", layout_ref(&env, "v2"))]),
    ) {
        assert_eq!(ma["Layers"][0], mb["Layers"][0]);
        assert_ne!(ma["Layers"][1], mb["Layers"][1]);
    }
    if let Some(r) = runc_run(&env, &layout_ref(&env, "v2"), None) {
        assert_eq!(r.stdout, "two\n", "{}", r.stderr);
    }
}

/// A sysroot holding the host's loader and libc, plus a vendor library in a directory
/// only its /etc/ld.so.conf names.
fn vendor_sysroot(env: &Env) -> (PathBuf, PathBuf) {
    let root = env.path("sysroot");
    let libdir = root.join("lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::create_dir_all(root.join("lib64")).unwrap();
    std::fs::create_dir_all(root.join("etc/ld.so.conf.d")).unwrap();
    std::fs::create_dir_all(root.join("opt/vendor/lib")).unwrap();
    for f in ["ld-linux-x86-64.so.2", "libc.so.6"] {
        std::fs::copy(format!("/lib/x86_64-linux-gnu/{f}"), libdir.join(f)).unwrap();
    }
    std::os::unix::fs::symlink(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        root.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/ld.so.conf"),
        "include /etc/ld.so.conf.d/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/ld.so.conf.d/vendor.conf"),
        "# vendor\n/opt/vendor/lib\n",
    )
    .unwrap();
    cc(
        "gcc",
        "const char *vendor(void) { return \"vendor library via ld.so.conf\"; }\n",
        &root.join("opt/vendor/lib/libvendor.so.1"),
        &["-shared", "-fPIC", "-Wl,-soname,libvendor.so.1"],
    );
    let exe = env.path("uses-vendor");
    cc(
        "gcc",
        "#include <stdio.h>\nconst char *vendor(void);\nint main(void) { puts(vendor()); return 0; }\n",
        &exe,
        &[&format!("{}", root.join("opt/vendor/lib/libvendor.so.1").display())],
    );
    (root, exe)
}

#[test]
fn library_found_only_through_ld_so_conf_gets_an_image_cache() {
    let env = Env::new();
    let (root, exe) = vendor_sysroot(&env);
    let sysroot = root.to_str().unwrap();
    // First without a cache in the sysroot (its ld.so.conf speaks), then with the cache
    // the real ldconfig writes from it.
    for with_cache in [false, true] {
        if with_cache {
            if !have("ldconfig") {
                return;
            }
            run(Command::new("ldconfig").arg("-r").arg(&root)).ok();
            assert!(root.join("etc/ld.so.cache").exists());
        }
        let name = if with_cache { "cached" } else { "conf" };
        let j = build(&env, &exe, name, &["--sysroot", sysroot]);
        assert_eq!(
            j["bundled"]["ld_so_cache"],
            serde_json::json!(["/opt/vendor/lib/libvendor.so.1"]),
            "{j:#}"
        );
        if let Some(r) = runc_run(&env, &layout_ref(&env, name), None) {
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert_eq!(r.stdout, "vendor library via ld.so.conf\n");
        }
        // `nobase check` finds the library as the loader will: through the image's own
        // /etc/ld.so.cache (/opt/vendor/lib is on no default path).
        let r = env
            .nobase(&["check", "-v", &format!("oci:{}", layout_ref(&env, name))])
            .ok();
        assert!(r.stdout.contains("will start"), "{}", r.stdout);
        assert!(
            format!("{}{}", r.stdout, r.stderr).contains("ld.so.cache"),
            "{}{}",
            r.stdout,
            r.stderr
        );
        // The generated cache is one the real ldconfig reads.
        if let Some(b) = umoci_unpack(&env, &layout_ref(&env, name)) {
            let cache = b.join("rootfs/etc/ld.so.cache");
            let r = run(Command::new("ldconfig").arg("-p").arg("-C").arg(&cache));
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert!(
                r.stdout
                    .contains("libvendor.so.1 (libc6,x86-64) => /opt/vendor/lib/libvendor.so.1"),
                "{}",
                r.stdout
            );
        }
    }
}

#[test]
fn host_ld_so_cache_reads_as_ldconfig_prints_it() {
    let Ok(bytes) = std::fs::read("/etc/ld.so.cache") else {
        eprintln!("skipping: this machine has no /etc/ld.so.cache");
        return;
    };
    if !have("ldconfig") {
        return;
    }
    let c = nobase::loader::cache::parse(&bytes, cfg!(target_endian = "little")).unwrap();
    let r = run(Command::new("ldconfig").arg("-p"));
    let mut theirs = Vec::new();
    // After the count line, one line per entry; newer ldconfig ends with a
    // "Cache generated by" line.
    for line in r.stdout.lines().skip(1) {
        let Some((left, path)) = line.trim().split_once(" => ") else {
            continue;
        };
        let name = left.split(" (").next().unwrap();
        theirs.push((name.to_string(), path.to_string()));
    }
    let mine: Vec<(String, String)> = c
        .entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    assert_eq!(mine, theirs);
    // ldconfig's order is the one our writer produces (descending libcmp).
    for w in c.entries.windows(2) {
        assert_ne!(
            nobase::loader::cache::libcmp(&w[0].key, &w[1].key),
            std::cmp::Ordering::Less,
            "{} before {}",
            w[0].key,
            w[1].key
        );
    }
}

#[test]
fn wrong_machine_candidates_are_skipped_like_ld_so() {
    if !have("aarch64-linux-gnu-gcc") {
        return;
    }
    let env = Env::new();
    let arm = env.path("dirs/arm");
    let x86 = env.path("dirs/x86");
    std::fs::create_dir_all(&arm).unwrap();
    std::fs::create_dir_all(&x86).unwrap();
    cc(
        "aarch64-linux-gnu-gcc",
        GREET_C,
        &arm.join("libgreet.so.1"),
        &["-shared", "-fPIC", "-Wl,-soname,libgreet.so.1"],
    );
    cc(
        "gcc",
        GREET_C,
        &x86.join("libgreet.so.1"),
        &["-shared", "-fPIC", "-Wl,-soname,libgreet.so.1"],
    );
    let exe = env.path("hello");
    let rpath = format!("-Wl,-rpath,{}:{}", arm.display(), x86.display());
    cc(
        "gcc",
        MAIN_GREET_C,
        &exe,
        &[
            &format!("{}", x86.join("libgreet.so.1").display()),
            &rpath,
            "-Wl,--disable-new-dtags",
        ],
    );
    let ij = env
        .nobase(&["inspect", "--json", exe.to_str().unwrap()])
        .ok()
        .json();
    let greet = &ij["resolved"]["libraries"][0];
    assert_eq!(
        greet["path"],
        format!("{}/libgreet.so.1", x86.display()),
        "{greet:#}"
    );
    assert_eq!(
        greet["skipped"][0]["path"],
        format!("{}/libgreet.so.1", arm.display())
    );
    assert!(greet["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("aarch64"));
    // Put the arm64 library in the image too: the real loader must pass over it.
    let add = format!("{}:{}/", arm.join("libgreet.so.1").display(), arm.display());
    build(&env, &exe, "skip", &["--add", &add]);
    if let Some(r) = runc_run(&env, &layout_ref(&env, "skip"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello from libgreet\n");
    }
}

#[test]
fn an_add_that_hides_the_loader_is_refused_before_writing() {
    if !std::fs::symlink_metadata("/lib").is_ok_and(|m| m.file_type().is_symlink()) {
        eprintln!("skipping: /lib is not a symlink on this machine (no merged /usr)");
        return;
    }
    // A file added as /lib64 replaces, in the application layer, the directory that
    // holds the loader in the library layer: the loader is gone. (A file added under
    // /lib goes through the /lib -> usr/lib link instead: see
    // an_add_under_a_linked_directory_goes_through_the_link.)
    let env = Env::new();
    std::fs::write(env.path("note"), b"x").unwrap();
    let add = format!("{}:/lib64", env.path("note").display());
    let bin = hello_dynamic();
    let r = env
        .nobase(&[
            "build",
            bin.to_str().unwrap(),
            "--add",
            &add,
            "-o",
            "oci:bad",
        ])
        .code(1);
    // Refused before anything is written (the loader is looked for over what the
    // application adds, so the refusal comes from the bundling, naming the loader).
    assert!(
        r.stderr.contains("/lib64 is not a directory"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("/lib64/ld-linux-x86-64.so.2"),
        "{}",
        r.stderr
    );
    assert!(!env.path("bad").exists());
    // Not even with --no-check: the program cannot be bundled at all.
    env.nobase(&[
        "build",
        bin.to_str().unwrap(),
        "--add",
        &add,
        "-o",
        "oci:bad:x",
        "--no-check",
    ])
    .code(1);
    assert!(!env.path("bad").exists());
}

#[test]
fn cross_architecture_build_from_a_sysroot() {
    let sysroot = Path::new("/usr/aarch64-linux-gnu");
    if !have("aarch64-linux-gnu-gcc") || !sysroot.join("lib/libc.so.6").exists() {
        return;
    }
    let env = Env::new();
    let exe = env.path("hello-arm64");
    cc(
        "aarch64-linux-gnu-gcc",
        "#include <stdio.h>\nint main(void) { puts(\"hello arm64\"); return 0; }\n",
        &exe,
        &[],
    );
    // Against the host it cannot resolve (unless arm64 is one of the host's dpkg
    // architectures), and says which sysroot to use.
    if !Path::new("/lib/ld-linux-aarch64.so.1").exists() {
        let r = env
            .nobase(&["build", exe.to_str().unwrap(), "-o", "oci:x"])
            .code(1);
        assert!(r.stderr.contains("--sysroot"), "{}", r.stderr);
        assert!(r.stderr.contains("aarch64-linux-gnu"), "{}", r.stderr);
    }
    let ij = env
        .nobase(&[
            "inspect",
            "--json",
            "--root",
            "/usr/aarch64-linux-gnu",
            exe.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(ij["resolved"]["complete"], true, "{ij:#}");
    assert_eq!(ij["resolved"]["libraries"][0]["path"], "/lib/libc.so.6");
    let j = build(&env, &exe, "arm", &["--sysroot", "/usr/aarch64-linux-gnu"]);
    assert_eq!(j["platform"], "linux/arm64");
    if !have("qemu-aarch64-static") {
        return;
    }
    if let Some(b) = umoci_unpack(&env, &layout_ref(&env, "arm")) {
        let rootfs = b.join("rootfs");
        let r = run(Command::new("qemu-aarch64-static")
            .arg("-L")
            .arg(&rootfs)
            .arg(rootfs.join("app/hello-arm64")));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello arm64\n");
    }
}

#[test]
fn dlopen_blind_spots_come_with_the_add_that_fixes_them() {
    let env = Env::new();
    let exe = env.path("plugin");
    cc(
        "gcc",
        "#include <dlfcn.h>\n#include <stdio.h>\n#include <pwd.h>\n\
         int main(int argc, char **argv) {\n\
           if (argc > 1) { struct passwd *p = getpwnam(\"root\"); (void)p; }\n\
           void *h = dlopen(\"libz.so.1\", RTLD_NOW);\n\
           if (!h) { printf(\"dlopen failed: %s\\n\", dlerror()); return 1; }\n\
           puts(\"dlopen ok\"); return 0;\n}\n",
        &exe,
        &["-ldl"],
    );
    let j = build(&env, &exe, "without", &[]);
    let warnings = j["warnings"].as_array().unwrap();
    let kinds: Vec<&str> = warnings
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    // No nsswitch.conf in the image: glibc's defaults load no module (files and dns are
    // built in), so the advice is `check`'s: --with passwd, not the host's modules.
    assert!(!kinds.contains(&"nss"), "{j:#}");
    let nss = warnings
        .iter()
        .find(|w| w["kind"] == "no-nsswitch")
        .unwrap_or_else(|| panic!("no no-nsswitch warning: {j:#}"));
    assert_eq!(nss["with"], "passwd");
    let zlib = warnings
        .iter()
        .find(|w| w["kind"] == "dlopen-string")
        .unwrap_or_else(|| panic!("no dlopen warning: {j:#}"));
    assert!(zlib["message"].as_str().unwrap().contains("libz.so.1"));
    let add = zlib["add"][0].as_str().unwrap().to_string();
    // `check` of the image says it too (for images built elsewhere it is the only
    // word), judged by what the image holds; `build` showed it once, with the fix.
    assert!(
        !warnings.iter().any(|w| w["kind"] == "run-time-load"),
        "{j:#}"
    );
    let runtime_loads = |name: &str| -> Vec<String> {
        let c = env
            .nobase(&[
                "check",
                "--json",
                &format!("oci:{}", layout_ref(&env, name)),
            ])
            .ok()
            .json();
        c["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["code"] == "run-time-load")
            .map(|w| w["message"].as_str().unwrap().to_string())
            .collect()
    };
    let said = runtime_loads("without");
    assert!(
        said.len() == 1 && said[0].contains("\"libz.so.1\", a library name that is not in"),
        "{said:?}"
    );
    if let Some(r) = runc_run(&env, &layout_ref(&env, "without"), None) {
        assert_eq!(r.code, 1);
        assert!(r.stdout.contains("dlopen failed"), "{}", r.stdout);
    }
    // The suggested --add makes the dlopen succeed, and the warning goes.
    let j = build(&env, &exe, "with", &["--add", &add, "--with", "passwd"]);
    // Nor does --with passwd's nsswitch.conf, whose services are built into glibc: no NSS
    // warning of either kind (the host's nsswitch.conf was advised here before).
    assert!(
        !j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| ["dlopen-string", "nss", "no-nsswitch"].contains(&w["kind"].as_str().unwrap())),
        "{j:#}"
    );
    assert_eq!(runtime_loads("with"), Vec::<String>::new());
    if let Some(r) = runc_run(&env, &layout_ref(&env, "with"), None) {
        assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
        assert_eq!(r.stdout, "dlopen ok\n");
    }
    // An nsswitch.conf added with the program decides: a service of its that is not
    // built in is a module the program loads, and is named.
    let conf = env.path("nsswitch.conf");
    std::fs::write(&conf, "passwd: files nobasetest\ngroup: files\n").unwrap();
    let j = build(
        &env,
        &exe,
        "conf",
        &["--add", &format!("{}:/etc/nsswitch.conf", conf.display())],
    );
    let nss = warning(&j, "kind", "nss");
    let m = nss["message"].as_str().unwrap();
    assert!(
        m.contains(
            "libnss_nobasetest.so.2 is not in the host or the image, so those services are skipped"
        ),
        "{m}"
    );
    assert_eq!(nss["add"], serde_json::json!([]), "{j:#}");
    // The human form prints the same advice on stderr.
    let r = env
        .nobase(&["build", exe.to_str().unwrap(), "-o", "oci:again"])
        .ok();
    assert!(
        r.stderr.contains(&format!("fix: --add {add}")),
        "{}",
        r.stderr
    );
}

#[test]
fn iconv_programs_are_warned_about_gconv_and_the_add_makes_them_work() {
    if !Path::new("/usr/lib/x86_64-linux-gnu/gconv/gconv-modules").exists() {
        assert!(
            std::env::var_os("NOBASE_TEST_REQUIRE_TOOLS").is_none(),
            "glibc's gconv modules (libc6) are required"
        );
        return;
    }
    let env = Env::new();
    let exe = env.path("conv");
    cc(
        "gcc",
        "#include <iconv.h>\n#include <stdio.h>\n\
         int main(void) {\n\
           iconv_t c = iconv_open(\"SHIFT_JIS\", \"UTF-8\");\n\
           if (c == (iconv_t)-1) { puts(\"iconv failed\"); return 1; }\n\
           puts(\"iconv ok\"); return 0;\n}\n",
        &exe,
        &[],
    );
    let j = build(&env, &exe, "conv", &[]);
    let w = warning(&j, "kind", "iconv");
    assert!(
        w["message"].as_str().unwrap().contains("calls iconv_open"),
        "{w}"
    );
    let add = w["add"][0].as_str().unwrap().to_string();
    assert!(add.contains("/gconv"), "{add}");
    if let Some(r) = runc_run(&env, &layout_ref(&env, "conv"), None) {
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(r.stdout, "iconv failed\n");
    }
    let j = build(&env, &exe, "conv-with", &["--add", &add]);
    assert!(
        !j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "iconv"),
        "{j:#}"
    );
    if let Some(r) = runc_run(&env, &layout_ref(&env, "conv-with"), None) {
        assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
        assert_eq!(r.stdout, "iconv ok\n");
    }
}

/// `ld.so --list PROG`: glibc's own loader resolving a program without running it.
/// Returns name → path (or "not found").
fn real_loader_list(prog: &Path) -> Option<std::collections::BTreeMap<String, String>> {
    let ld = Path::new("/lib64/ld-linux-x86-64.so.2");
    if !ld.exists() {
        eprintln!("skipping: no x86-64 glibc loader on this machine");
        return None;
    }
    let r = run(Command::new(ld).arg("--list").arg(prog));
    let mut out = std::collections::BTreeMap::new();
    // A library of a library that cannot be found stops the listing with the loader's
    // own error: record that name as not found, alone.
    if let Some(rest) = r
        .stderr
        .split("error while loading shared libraries: ")
        .nth(1)
    {
        let name = rest
            .split(": cannot open shared object file")
            .next()
            .unwrap();
        out.insert(name.to_string(), "not found".to_string());
        return Some(out);
    }
    for line in r.stdout.lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(" => ") {
            let path = rest.split(" (").next().unwrap().trim().to_string();
            out.insert(name.to_string(), path);
        } else if line.starts_with('/') {
            // A DT_NEEDED path is listed as itself; so is the loader, which we skip.
            let path = line.split(" (").next().unwrap().to_string();
            if Path::new(&path) != ld {
                out.insert(path.clone(), path);
            }
        }
    }
    Some(out)
}

/// nobase's answer in the same form: name → path (first resolution of each name).
fn nobase_list(env: &Env, prog: &Path) -> std::collections::BTreeMap<String, String> {
    let j = env
        .nobase(&["inspect", "--json", prog.to_str().unwrap()])
        .ok()
        .json();
    name_map(&j)
}

/// name → path (first resolution of each name) from `inspect --json`.
fn name_map(j: &Value) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for l in j["resolved"]["libraries"].as_array().unwrap() {
        let path = if l["found"] == true {
            l["path"].as_str().unwrap().to_string()
        } else {
            "not found".to_string()
        };
        out.entry(l["name"].as_str().unwrap().to_string())
            .or_insert(path);
    }
    out
}

#[test]
fn search_rules_agree_with_the_real_loader() {
    let env = Env::new();
    let d = env.path("rules");
    // Every library named on the command line becomes a DT_NEEDED, used or not.
    let link = |src: &str, out: &Path, flags: &[&str]| {
        let mut all = vec!["-Wl,--no-as-needed"];
        all.extend_from_slice(flags);
        cc("gcc", src, out, &all);
    };
    let lib = |name: &str, dir: &Path, extra: &[&str]| {
        std::fs::create_dir_all(dir).unwrap();
        let soname = format!("-Wl,-soname,{name}");
        let mut flags = vec!["-shared", "-fPIC", soname.as_str()];
        flags.extend_from_slice(extra);
        let body = format!(
            "int f_{}(void) {{ return 1; }}\n",
            name.replace(['.', '-'], "_")
        );
        link(&body, &dir.join(name), &flags);
    };
    let main = "int main(void) { return 0; }\n";
    // libb lives only in X; liba (in Y) needs it.
    let x = d.join("x");
    let y = d.join("y");
    lib("libb.so", &x, &[]);
    let libb = x.join("libb.so").display().to_string();
    lib("liba.so", &y, &[&libb]);
    let liba = y.join("liba.so").display().to_string();
    let rp = format!("-Wl,-rpath,{}:{}", y.display(), x.display());
    // DT_RPATH of the executable is inherited: liba finds libb through it.
    let rpath_exe = d.join("rpath");
    link(main, &rpath_exe, &[&liba, &rp, "-Wl,--disable-new-dtags"]);
    // DT_RUNPATH is not: liba's own lookup of libb fails.
    let runpath_exe = d.join("runpath");
    link(main, &runpath_exe, &[&liba, &rp, "-Wl,--enable-new-dtags"]);
    // $LIB and $ORIGIN in RPATH.
    let libdir = d.join("lib/x86_64-linux-gnu");
    lib("libl.so", &libdir, &[]);
    let dst_exe = d.join("dst");
    let libl = libdir.join("libl.so").display().to_string();
    link(
        main,
        &dst_exe,
        &[
            &libl,
            "-Wl,-rpath,$ORIGIN/nowhere:$ORIGIN/$LIB",
            "-Wl,--disable-new-dtags",
        ],
    );
    // A NEEDED name with a slash (a library linked by path, without SONAME).
    let p = d.join("bypath");
    std::fs::create_dir_all(&p).unwrap();
    link(
        "int f_p(void) { return 2; }\n",
        &p.join("libp.so"),
        &["-shared", "-fPIC"],
    );
    let path_exe = d.join("path");
    let libp = p.join("libp.so").display().to_string();
    link(main, &path_exe, &[&libp]);

    let mut compared = 0;
    for exe in [&rpath_exe, &runpath_exe, &dst_exe, &path_exe] {
        let Some(theirs) = real_loader_list(exe) else {
            return;
        };
        let mut mine = nobase_list(&env, exe);
        // ld.so lists itself without a name.
        mine.remove("ld-linux-x86-64.so.2");
        if theirs.values().any(|v| v == "not found") && theirs.len() == 1 {
            mine.retain(|_, v| v == "not found");
        }
        assert_eq!(mine, theirs, "{}", exe.display());
        compared += 1;
    }
    assert_eq!(compared, 4);
    // The verdicts the comparison covered.
    assert_eq!(nobase_list(&env, &runpath_exe)["libb.so"], "not found");
    assert_eq!(
        nobase_list(&env, &rpath_exe)["libb.so"],
        x.join("libb.so").display().to_string()
    );
}

#[test]
fn glibc_hwcaps_variants_are_bundled_beside_the_baseline() {
    let env = Env::new();
    let dir = env.path("h");
    let v2 = dir.join("glibc-hwcaps/x86-64-v2");
    std::fs::create_dir_all(&v2).unwrap();
    let src = |s: &str| format!("const char *which(void) {{ return \"{s}\"; }}\n");
    let flags = ["-shared", "-fPIC", "-Wl,-soname,libh.so.1"];
    cc("gcc", &src("baseline"), &dir.join("libh.so.1"), &flags);
    cc("gcc", &src("x86-64-v2"), &v2.join("libh.so.1"), &flags);
    let exe = env.path("hw");
    cc(
        "gcc",
        "#include <stdio.h>\nconst char *which(void);\nint main(void) { puts(which()); return 0; }\n",
        &exe,
        &[&format!("{}", dir.join("libh.so.1").display()), &format!("-Wl,-rpath,{}", dir.display())],
    );
    let j = env
        .nobase(&["inspect", "--json", exe.to_str().unwrap()])
        .ok()
        .json();
    let h = &j["resolved"]["libraries"][0];
    assert_eq!(h["path"], dir.join("libh.so.1").display().to_string());
    assert_eq!(
        h["hwcaps"],
        serde_json::json!([v2.join("libh.so.1").display().to_string()])
    );
    build(&env, &exe, "hw", &[]);
    let Some(b) = umoci_unpack(&env, &layout_ref(&env, "hw")) else {
        return;
    };
    let files = regular_files(&b.join("rootfs"));
    for f in [dir.join("libh.so.1"), v2.join("libh.so.1")] {
        assert!(
            files.contains(&f.display().to_string()),
            "{f:?} not in {files:?}"
        );
    }
    // What the loader picks in the container is what it picks on this host.
    let here = run(&mut Command::new(&exe)).stdout;
    if let Some(r) = runc_run(&env, &layout_ref(&env, "hw"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, here);
    }
}

#[test]
fn musl_library_found_through_the_path_file_of_a_sysroot() {
    let musl_ldso = Path::new("/lib/ld-musl-x86_64.so.1");
    if !have("musl-gcc") || !musl_ldso.exists() {
        return;
    }
    let env = Env::new();
    let root = env.path("musl-root");
    std::fs::create_dir_all(root.join("lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("opt/m/lib")).unwrap();
    std::fs::copy(musl_ldso, root.join("lib/ld-musl-x86_64.so.1")).unwrap();
    std::fs::write(root.join("etc/ld-musl-x86_64.path"), "/opt/m/lib\n/lib\n").unwrap();
    cc(
        "musl-gcc",
        GREET_C,
        &root.join("opt/m/lib/libgreet.so"),
        &["-shared", "-fPIC"],
    );
    let exe = env.path("hello-musl-lib");
    cc(
        "musl-gcc",
        MAIN_GREET_C,
        &exe,
        &[
            &format!("-L{}", root.join("opt/m/lib").display()),
            "-lgreet",
        ],
    );
    let r = root.to_str().unwrap();
    let ij = env
        .nobase(&["inspect", "--json", "--root", r, exe.to_str().unwrap()])
        .ok()
        .json();
    let greet = &ij["resolved"]["libraries"][0];
    assert_eq!(greet["path"], "/opt/m/lib/libgreet.so", "{ij:#}");
    assert_eq!(greet["via"], "/etc/ld-musl-x86_64.path");
    build(&env, &exe, "m", &["--sysroot", r]);
    if let Some(b) = umoci_unpack(&env, &layout_ref(&env, "m")) {
        let path_file = std::fs::read_to_string(b.join("rootfs/etc/ld-musl-x86_64.path")).unwrap();
        assert_eq!(path_file, "/opt/m/lib\n/lib\n");
    }
    if let Some(r) = runc_run(&env, &layout_ref(&env, "m"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello from libgreet\n");
    }
    // Without a path file musl searches /lib, /usr/local/lib, /usr/lib.
    std::fs::remove_file(root.join("etc/ld-musl-x86_64.path")).unwrap();
    std::fs::create_dir_all(root.join("usr/local/lib")).unwrap();
    std::fs::rename(
        root.join("opt/m/lib/libgreet.so"),
        root.join("usr/local/lib/libgreet.so"),
    )
    .unwrap();
    let ij = env
        .nobase(&["inspect", "--json", "--root", r, exe.to_str().unwrap()])
        .ok()
        .json();
    let greet = &ij["resolved"]["libraries"][0];
    assert_eq!(greet["path"], "/usr/local/lib/libgreet.so", "{ij:#}");
    build(&env, &exe, "m-default", &["--sysroot", r]);
    if let Some(r) = runc_run(&env, &layout_ref(&env, "m-default"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello from libgreet\n");
    }
}

#[test]
fn pthread_cancel_advice_adds_libgcc_s() {
    let env = Env::new();
    let exe = env.path("cancel");
    cc(
        "gcc",
        "#include <pthread.h>\n#include <stdio.h>\n#include <unistd.h>\n\
         static void *spin(void *a) { (void)a; for (;;) pause(); return 0; }\n\
         int main(void) {\n  pthread_t t; pthread_create(&t, 0, spin, 0);\n\
           pthread_cancel(t); pthread_join(t, 0); puts(\"cancelled\"); return 0;\n}\n",
        &exe,
        &["-pthread"],
    );
    let j = build(&env, &exe, "without", &[]);
    let w = j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == "libgcc_s")
        .unwrap_or_else(|| panic!("no libgcc_s warning: {j:#}"))
        .clone();
    let add = w["add"][0].as_str().unwrap().to_string();
    assert!(add.contains("libgcc_s.so.1"), "{add}");
    if let Some(r) = runc_run(&env, &layout_ref(&env, "without"), None) {
        assert_ne!(r.code, 0, "cancelled without libgcc_s: {}", r.stdout);
        assert!(r.stderr.contains("libgcc_s.so.1"), "{}", r.stderr);
    }
    build(&env, &exe, "with", &["--add", &add]);
    if let Some(r) = runc_run(&env, &layout_ref(&env, "with"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "cancelled\n");
    }
}

#[test]
fn an_add_under_a_linked_directory_goes_through_the_link() {
    // On a merged-/usr host the bundle links /lib to usr/lib; a file added under /lib/
    // must land in /usr/lib through the link, not make a /lib directory that hides the
    // loader's.
    let env = Env::new();
    std::fs::write(env.path("data.txt"), "data\n").unwrap();
    let add = format!("{}:/lib/data.txt", env.path("data.txt").display());
    let j = build(&env, &hello_dynamic(), "linked", &["--add", &add]);
    let t = env
        .nobase(&[
            "tree",
            "--json",
            &format!("oci:{}", layout_ref(&env, "linked")),
        ])
        .ok()
        .json();
    let kind = |path: &str| {
        t["merged"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["kind"].as_str().unwrap().to_string())
    };
    if kind("/lib").as_deref() != Some("symlink") {
        eprintln!("skipping: /lib is not a link in this host's bundle ({j})");
        return;
    }
    assert_eq!(kind("/usr/lib/data.txt").as_deref(), Some("file"), "{t}");
    if let Some(r) = runc_run(&env, &layout_ref(&env, "linked"), None) {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
}

#[test]
fn libraries_of_added_shared_objects_are_bundled_too() {
    // `--add /usr/lib/python3.11:…` put extension modules in the image whose libraries
    // (libssl, libsqlite3…) were not: `import ssl` failed while `check` passed. What an
    // added shared object needs comes with it now, and what cannot be found is said.
    let env = Env::new();
    let plug = env.path("plug.so");
    cc(
        "gcc",
        "#include <math.h>\ndouble plug_cos(double x) { return cos(x); }\n",
        &plug,
        &["-shared", "-fPIC", "-lm"],
    );
    let main = env.path("host");
    cc(
        "gcc",
        "#include <dlfcn.h>\n#include <stdio.h>\n\
         int main(void) {\n\
           void *h = dlopen(\"/app/plug.so\", RTLD_NOW);\n\
           if (!h) { printf(\"%s\\n\", dlerror()); return 1; }\n\
           double (*f)(double) = (double (*)(double))dlsym(h, \"plug_cos\");\n\
           volatile double x = 0;\n\
           printf(\"cos %g\\n\", f(x)); return 0;\n}\n",
        &main,
        &["-ldl"],
    );
    let add = format!("{}:/app/plug.so", plug.display());
    let j = build(&env, &main, "plug", &["--add", &add]);
    let libs: Vec<&str> = j["bundled"]["libraries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(libs.iter().any(|l| l.ends_with("/libm.so.6")), "{j:#}");
    if let Some(r) = runc_run(&env, &layout_ref(&env, "plug"), None) {
        assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
        assert_eq!(r.stdout, "cos 1\n");
    }
    // A library an added object needs that is nowhere: said, the build goes on.
    let dep = env.path("libnbgone.so");
    cc(
        "gcc",
        "int nb_gone(void) { return 1; }\n",
        &dep,
        &["-shared", "-fPIC"],
    );
    let needy = env.path("needy.so");
    cc(
        "gcc",
        "int nb_gone(void);\nint needy(void) { return nb_gone(); }\n",
        &needy,
        &[
            "-shared",
            "-fPIC",
            &format!("-L{}", env.path("").display()),
            "-lnbgone",
        ],
    );
    let add = format!("{}:/app/needy.so", needy.display());
    let j = build(&env, &main, "needy", &["--add", &add]);
    let w = warning(&j, "kind", "added-object");
    assert_eq!(
        w["message"],
        "the added /app/needy.so needs libnbgone.so, which the loader does not find where it looks in the host or the image, so loading it will fail"
    );
}

#[test]
fn an_added_program_of_the_other_c_library_gets_its_own_loader() {
    // A musl program with a glibc tool added beside it: the tool's libc.so.6 came, its
    // loader /lib64/ld-linux-x86-64.so.2 did not, and the tool could not start.
    if !have("musl-gcc") {
        return;
    }
    let env = Env::new();
    let main = env.path("launcher");
    cc(
        "musl-gcc",
        "#include <stdio.h>\n#include <unistd.h>\n\
         int main(int c, char **v) {\n\
           if (c > 1) { execv(v[1], v + 1); perror(\"exec\"); return 127; }\n\
           puts(\"musl\"); return 0;\n}\n",
        &main,
        &[],
    );
    let add = format!("{}:/bin/ghello", hello_dynamic().display());
    let j = build(&env, &main, "mixed", &["--add", &add]);
    assert_eq!(
        j["bundled"]["added_loaders"],
        serde_json::json!(["/lib64/ld-linux-x86-64.so.2"]),
        "{j:#}"
    );
    assert!(
        j["layers"][0]["created_by"]
            .as_str()
            .unwrap()
            .contains("(and /lib64/ld-linux-x86-64.so.2 for added programs)"),
        "{j:#}"
    );
    if let Some(r) = runc_run(&env, &layout_ref(&env, "mixed"), Some(&["/bin/ghello"])) {
        assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
        assert_eq!(r.stdout, "hello world\n");
    }
    // An added program whose loader is nowhere: said, the build goes on.
    let odd = env.path("odd");
    cc(
        "gcc",
        "int main(void) { return 0; }\n",
        &odd,
        &["-Wl,--dynamic-linker=/lib/ld-nobase-nowhere.so.1"],
    );
    let add = format!("{}:/bin/odd", odd.display());
    let j = build(&env, &main, "odd", &["--add", &add]);
    let w = warning(&j, "kind", "added-object");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .starts_with("the added /bin/odd needs its loader /lib/ld-nobase-nowhere.so.1, which is not usable in"),
        "{w}"
    );
}

#[test]
fn an_added_program_finds_a_library_the_entrypoint_keeps_privately() {
    // The entrypoint's `$ORIGIN/lib/libfoo.so` goes to /app/lib; an added program whose
    // RUNPATH reaches the same host file by another path looked there in vain, and the
    // library was taken as placed already (by its host file): no library, no warning.
    let env = Env::new();
    let d = env.path("proj");
    std::fs::create_dir_all(d.join("bin/lib")).unwrap();
    std::fs::create_dir_all(d.join("tools")).unwrap();
    let lib = d.join("bin/lib/libfoo.so");
    cc(
        "gcc",
        "int foo(void) { return 42; }\n",
        &lib,
        &["-shared", "-fPIC"],
    );
    let src = "#include <stdio.h>\nint foo(void);\nint main(void) { printf(\"foo %d\\n\", foo()); return 0; }\n";
    let libdir = format!("-L{}", d.join("bin/lib").display());
    cc(
        "gcc",
        src,
        &d.join("bin/foo"),
        &[
            &libdir,
            "-lfoo",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
        ],
    );
    cc(
        "gcc",
        src,
        &d.join("tools/helper"),
        &[
            &libdir,
            "-lfoo",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../bin/lib",
        ],
    );
    let tools = d.join("tools").display().to_string();
    let j = build(
        &env,
        &d.join("bin/foo"),
        "p",
        &["--add", &format!("{tools}:{tools}")],
    );
    let libs = j["bundled"]["libraries"].to_string();
    assert!(
        libs.contains(&format!("{}/bin/lib/libfoo.so", d.display())),
        "{j:#}"
    );
    assert_eq!(
        j["bundled"]["private"],
        serde_json::json!(["/app/lib/libfoo.so"]),
        "{j:#}"
    );
    let helper = format!("{tools}/helper");
    if let Some(r) = runc_run(
        &env,
        &layout_ref(&env, "p"),
        Some(&["--config.entrypoint", &helper]),
    ) {
        assert_eq!((r.code, r.stdout.as_str()), (0, "foo 42\n"), "{}", r.stderr);
    }
}

#[test]
fn a_loader_added_with_the_application_gets_the_links_that_reach_it() {
    // `--add DIR:/usr/lib/x86_64-linux-gnu` with the loader and libc in DIR: the bundle
    // layer placed nothing (the files were the user's) and made no /lib64 and /lib
    // links either, so the self-check refused ("/lib64 does not exist").
    let libdir = "/usr/lib/x86_64-linux-gnu";
    let (ld, libc) = (
        format!("{libdir}/ld-linux-x86-64.so.2"),
        format!("{libdir}/libc.so.6"),
    );
    if !Path::new(&ld).exists() || !Path::new(&libc).exists() {
        return;
    }
    let env = Env::new();
    let mini = env.path("mini");
    std::fs::create_dir_all(&mini).unwrap();
    std::fs::copy(&ld, mini.join("ld-linux-x86-64.so.2")).unwrap();
    std::fs::copy(&libc, mini.join("libc.so.6")).unwrap();
    let j = build(
        &env,
        &hello_dynamic(),
        "mini",
        &["--add", &format!("{}:{libdir}", mini.display())],
    );
    assert_eq!(
        j["layers"][0]["files"], 0,
        "the bundle layer holds only links: {j:#}"
    );
    // The loader and libc added as files exactly where the loader looks: nothing is left
    // for a bundle layer, and none is written (it was an empty tar that said "loader
    // and 0 libraries"). The program still says what it needs.
    let j = build(
        &env,
        &hello_dynamic(),
        "added",
        &[
            "--add",
            &format!(
                "{}:/lib64/ld-linux-x86-64.so.2",
                mini.join("ld-linux-x86-64.so.2").display()
            ),
            "--add",
            &format!(
                "{}:/lib/x86_64-linux-gnu/libc.so.6",
                mini.join("libc.so.6").display()
            ),
        ],
    );
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{j:#}");
    assert_eq!(layers[0]["files"], 3, "{j:#}");
    assert_eq!(
        j["bundled"]["libraries"][0], "/lib/x86_64-linux-gnu/libc.so.6",
        "{j:#}"
    );
    for name in ["mini", "added"] {
        if let Some(r) = runc_run(&env, &layout_ref(&env, name), None) {
            assert_eq!(
                (r.code, r.stdout.as_str()),
                (0, "hello world\n"),
                "{name}: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn an_added_link_whose_target_stays_on_the_host_is_said() {
    // `--add /usr/lib/x86_64-linux-gnu/libz.so.1:…` adds the link (to libz.so.1.2.13),
    // not the file: the dlopen failed in an image the build said nothing about.
    let env = Env::new();
    let lib = env.path("libreal.so.1.0");
    std::fs::write(&lib, "not really a library\n").unwrap();
    let link = env.path("libreal.so.1");
    std::os::unix::fs::symlink("libreal.so.1.0", &link).unwrap();
    let add = format!("{}:/usr/lib/libreal.so.1", link.display());
    let j = build(&env, &hello_static(), "link", &["--add", &add]);
    let w = warning(&j, "code", "dangling-link");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .starts_with("the added /usr/lib/libreal.so.1 is a link to libreal.so.1.0, which the image does not have"),
        "{w}"
    );
    // Adding the target too: no warning.
    let both = format!("{}:/usr/lib/libreal.so.1.0", lib.display());
    let j = build(
        &env,
        &hello_static(),
        "both",
        &["--add", &add, "--add", &both],
    );
    assert!(
        !j["warnings"].to_string().contains("dangling-link"),
        "{j:#}"
    );
}
