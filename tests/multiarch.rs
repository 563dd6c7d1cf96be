//! Multi-platform builds: one image per executable under an OCI image index, judged by
//! skopeo (the index and its platforms, `--override-arch`), umoci, runc for this
//! machine's image and qemu-user for the others, and a real registry.

use crate::registry::{Auth, Registry};
use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const CROSS_ROOT: &str = "/usr/aarch64-linux-gnu";

/// The cross compiler, or a skip message.
fn cross() -> bool {
    have("aarch64-linux-gnu-gcc")
}

/// A copy of `src` named `name` in the env (the image path follows the file name).
fn named(env: &Env, src: &Path, name: &str) -> PathBuf {
    let dir = env.path("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::copy(src, &p).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Static hello worlds for amd64 and arm64 named `hello-amd64` and `hello-arm64`.
fn static_pair(env: &Env) -> (PathBuf, PathBuf) {
    (
        named(env, &hello_static(), "hello-amd64"),
        named(env, &hello_arm64_static(), "hello-arm64"),
    )
}

/// `skopeo inspect --raw` parsed.
fn raw(args: &[&str]) -> Option<Value> {
    if !have("skopeo") {
        return None;
    }
    let r = run(Command::new("skopeo").args(["inspect", "--raw"]).args(args));
    assert_eq!(r.code, 0, "skopeo inspect --raw {args:?}: {}", r.stderr);
    Some(serde_json::from_str(&r.stdout).unwrap())
}

/// The platforms an index lists, as `os/arch[/variant]`.
fn index_platforms(index: &Value) -> Vec<String> {
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

/// Copies one platform's image out of `src` to `oci:LAYOUT:REF` with `nobase push
/// --platform` (umoci unpacks single manifests, not indexes), then unpacks it with
/// umoci; the rootfs, or None without umoci.
fn unpack_platform(env: &Env, src: &str, platform: &str, tag: &str) -> Option<PathBuf> {
    let layout = env.path("single");
    env.nobase(&[
        "push",
        src,
        &format!("oci:{}:{tag}", layout.display()),
        "--platform",
        platform,
    ])
    .ok();
    Some(umoci_unpack(env, &format!("{}:{tag}", layout.display()))?.join("rootfs"))
}

/// Runs `TOOL [-L rootfs] rootfs/app/hello` under qemu-user and asserts it says hello;
/// skips (with a message) without the tool.
fn qemu_says_hello(tool: &str, rootfs: &Path, with_root: bool) {
    if !have(tool) {
        return;
    }
    let mut c = Command::new(tool);
    if with_root {
        c.arg("-L").arg(rootfs);
    }
    let r = run(c.arg(rootfs.join("app/hello")));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hello world\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn amd64_and_arm64_make_one_index_that_skopeo_and_runtimes_read() {
    if !cross() {
        return;
    }
    let env = Env::new();
    let (amd, arm) = static_pair(&env);
    let layout = env.path("l");
    let oci = format!("oci:{}:app", layout.display());
    let j = build_json(&env, &[s(&amd), s(&arm), "-t", "app:1", "-o", &oci]);
    assert_eq!(
        j["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(j["media_type"], "application/vnd.oci.image.index.v1+json");
    let images = j["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    // Both executables at the name they share once the architecture is taken out; each
    // image's size is its manifest, config and layer blobs as stored.
    let blob = |d: &serde_json::Value| {
        let hex = d
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        std::fs::metadata(layout.join("blobs/sha256").join(hex))
            .unwrap()
            .len()
    };
    for i in images {
        assert_eq!(
            i["layers"][0]["created_by"], "nobase build /app/hello",
            "{i}"
        );
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(i["digest"].as_str().unwrap().trim_start_matches("sha256:")),
            )
            .unwrap(),
        )
        .unwrap();
        let layers: u64 = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| blob(&l["digest"]))
            .sum();
        let want = blob(&i["digest"]) + blob(&manifest["config"]["digest"]) + layers;
        assert_eq!(i["size"].as_u64(), Some(want), "{i}");
    }
    let Some(index) = raw(&[&oci]) else { return };
    assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    // The index is what nobase reported, byte for byte.
    assert_eq!(skopeo_digest(&oci).unwrap(), j["digest"].as_str().unwrap());
    assert_eq!(
        skopeo_digest(&format!("oci:{}:app:1", env.store().display())).unwrap(),
        j["digest"].as_str().unwrap()
    );
    // skopeo picks each platform's config from the index.
    let arm_cfg = skopeo_inspect(&["--override-arch", "arm64", &oci]).unwrap();
    assert_eq!(arm_cfg["Architecture"], "arm64");
    assert_eq!(arm_cfg["Os"], "linux");
    let arm_layer = images[1]["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(arm_cfg["Layers"], serde_json::json!([arm_layer]));
    let amd_cfg = skopeo_inspect(&["--override-arch", "amd64", &oci]).unwrap();
    assert_eq!(amd_cfg["Architecture"], "amd64");
    let raw_cfg =
        run(Command::new("skopeo").args(["--override-arch", "arm64", "inspect", "--config", &oci]))
            .ok();
    let cfg: Value = serde_json::from_str(&raw_cfg.stdout).unwrap();
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/app/hello"])
    );

    // This machine's image starts under runc through `nobase run`; asking for arm64 on
    // an amd64 machine is refused before anything runs.
    if have("runc") && is_root() {
        let r = env.nobase(&["run", "app:1"]).code(0);
        assert_eq!(r.stdout, "hello world\n");
        let r = env
            .nobase(&["run", "--platform", "linux/arm64", "app:1"])
            .code(126);
        // nobase's explanation, before runc is asked (runc's own words are only
        // `exec /app/hello: exec format error`).
        assert!(
            r.stderr
                .contains("/app/hello is built for linux/arm64 and this machine is linux/amd64")
                && r.stderr.contains("exec format error")
                && r.stderr.contains("--no-check"),
            "{}",
            r.stderr
        );
        assert!(r.stdout.is_empty());
    }
    // check and tree read this machine's image of the index, or the one --platform names.
    for (platform, image) in [(None, &images[0]), (Some("linux/arm64"), &images[1])] {
        let mut args = vec!["check", "--json", "app:1"];
        args.extend(platform.iter().flat_map(|p| ["--platform", *p]));
        let r = env.nobase(&args).ok();
        let c = r.json();
        assert_eq!(c["ok"], true, "{c}");
        // Which of the platforms was checked is said, with the others.
        let checked = platform.unwrap_or("linux/amd64");
        assert_eq!(c["platform"], checked, "{c}");
        assert!(
            r.stderr.contains(&format!(
                "checked {checked} of the image's 2 platforms (linux/amd64, linux/arm64); --platform checks another"
            )),
            "{}",
            r.stderr
        );
        // A verdict for another machine than this one says so.
        assert_eq!(
            r.stderr.contains(
                "the verdict is for a linux/arm64 machine: this one is linux/amd64, where `nobase run` needs an emulator"
            ),
            platform.is_some(),
            "{}",
            r.stderr
        );
        let mut args = vec!["tree", "--json", "app:1"];
        args.extend(platform.iter().flat_map(|p| ["--platform", *p]));
        let t = env.nobase(&args).ok().json();
        assert_eq!(t["platform"], image["platform"], "{t}");
        assert_eq!(t["layers"][0]["digest"], image["layers"][0]["digest"]);
    }
    // --all-platforms: every platform's verdict at once.
    let all = env
        .nobase(&["check", "--json", "--all-platforms", "app:1"])
        .ok()
        .json();
    assert_eq!(all["ok"], true, "{all}");
    let names: Vec<&str> = all["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64"], "{all}");
    let text = env
        .nobase(&["check", "--all-platforms", "app:1"])
        .ok()
        .stdout;
    assert!(
        text.contains("app:1 (linux/amd64): will start")
            && text.contains("app:1 (linux/arm64): will start"),
        "{text}"
    );
    // Platforms as containerd reads them: aliases and the v8 of arm64.
    for alias in ["linux/aarch64", "arm64/v8", "linux/arm64/v8"] {
        let c = env
            .nobase(&["check", "--json", "--platform", alias, "app:1"])
            .ok()
            .json();
        assert_eq!(c["ok"], true, "{alias}: {c}");
    }
    // A platform the image lacks is a fact about the image: exit 3, as for a missing tag.
    for (cmd, code) in [("check", 3), ("tree", 3), ("run", 125)] {
        let r = env
            .nobase(&[cmd, "--platform", "linux/s390x", "app:1"])
            .code(code);
        assert!(
            r.stderr
                .contains("no linux/s390x variant (it has linux/amd64, linux/arm64)"),
            "{cmd}: {}",
            r.stderr
        );
    }
    // The arm64 image runs under qemu-user, unpacked by umoci.
    let Some(rootfs) = unpack_platform(&env, "app:1", "linux/arm64", "arm") else {
        return;
    };
    qemu_says_hello("qemu-aarch64-static", &rootfs, false);
}

#[test]
fn arm64_dynamic_bundled_from_the_cross_root_runs_under_qemu() {
    if !cross() {
        return;
    }
    if !Path::new(CROSS_ROOT).is_dir() {
        eprintln!("skipping: no {CROSS_ROOT} (libc6-dev-arm64-cross)");
        return;
    }
    let env = Env::new();
    let arm = named(&env, &hello_arm64_dynamic(), "hello");
    // Without the cross root the host has no arm64 loader (unless arm64 is one of its
    // dpkg architectures): refused, with the way out.
    if !Path::new("/lib/ld-linux-aarch64.so.1").exists() {
        let r = env.nobase(&["build", s(&arm)]).code(1);
        assert!(r.stderr.contains("--sysroot"), "{}", r.stderr);
    }
    let layout = env.path("l");
    let j = build_json(
        &env,
        &[
            s(&arm),
            "--sysroot",
            CROSS_ROOT,
            "-o",
            &format!("oci:{}:arm", layout.display()),
        ],
    );
    assert_eq!(j["platform"], "linux/arm64");
    assert_eq!(j["bundled"]["loader"], "/lib/ld-linux-aarch64.so.1");
    let Some(bundle) = umoci_unpack(&env, &format!("{}:arm", layout.display())) else {
        return;
    };
    let rootfs = bundle.join("rootfs");
    qemu_says_hello("qemu-aarch64-static", &rootfs, true);
}

#[test]
fn dynamic_executables_of_two_platforms_each_bundle_from_their_own_root() {
    if !cross() || !Path::new(CROSS_ROOT).is_dir() {
        return;
    }
    let env = Env::new();
    let amd = named(&env, &hello_dynamic(), "hello-x86_64");
    let arm = named(&env, &hello_arm64_dynamic(), "hello-aarch64");
    // Inspected without its sysroot, its own loader path is no dlopen string.
    let r = env.nobase(&["inspect", s(&arm)]).ok();
    assert!(!r.stdout.contains("contains the string"), "{}", r.stdout);
    // A bare directory is ambiguous with two executables.
    let r = env
        .nobase(&["build", s(&amd), s(&arm), "--sysroot", CROSS_ROOT])
        .code(2);
    assert!(
        r.stderr.contains(&format!("--sysroot arm64={CROSS_ROOT}")),
        "{}",
        r.stderr
    );
    // A platform that matches no executable is a mistake, not ignored.
    let r = env
        .nobase(&["build", s(&amd), s(&arm), "--sysroot", "riscv64=/x"])
        .code(2);
    assert!(
        r.stderr.contains("no executable is for linux/riscv64"),
        "{}",
        r.stderr
    );
    let j = build_json(
        &env,
        &[
            s(&amd),
            s(&arm),
            "--sysroot",
            &format!("arm64={CROSS_ROOT}"),
            "-t",
            "dyn:1",
        ],
    );
    let images = j["images"].as_array().unwrap();
    assert_eq!(images[0]["platform"], "linux/amd64");
    assert_eq!(
        images[0]["bundled"]["loader"],
        "/lib64/ld-linux-x86-64.so.2"
    );
    assert_eq!(images[1]["platform"], "linux/arm64");
    assert_eq!(images[1]["bundled"]["loader"], "/lib/ld-linux-aarch64.so.1");
    if have("runc") && is_root() {
        let r = env.nobase(&["run", "dyn:1"]).code(0);
        assert_eq!(r.stdout, "hello world\n");
    }
    let Some(rootfs) = unpack_platform(&env, "dyn:1", "linux/arm64", "arm") else {
        return;
    };
    qemu_says_hello("qemu-aarch64-static", &rootfs, true);
}

#[test]
fn the_index_is_reproducible_whatever_the_order_or_store() {
    if !cross() {
        return;
    }
    let env = Env::new();
    let (amd, arm) = static_pair(&env);
    let a = build_json(&env, &[s(&amd), s(&arm), "-t", "a:1"]);
    let env2 = Env::new();
    let b = build_json(&env2, &[s(&arm), s(&amd), "-t", "b:1"]);
    assert_eq!(a["digest"], b["digest"]);
    // Layout and archive hold the same index.
    let tar = env.path("x.tar");
    env.nobase(&["push", "a:1", &format!("oci-archive:{}", tar.display())])
        .ok();
    if let Some(d) = skopeo_digest(&format!("oci-archive:{}", tar.display())) {
        assert_eq!(d, a["digest"].as_str().unwrap());
    }
    // A different creation time is a different index: the comparison can fail.
    let c = build_json(
        &env2,
        &[s(&arm), s(&amd), "-t", "c:1", "--source-date-epoch", "1"],
    );
    assert_ne!(a["digest"], c["digest"]);
}

#[test]
fn two_executables_of_one_platform_are_an_error_naming_both() {
    let env = Env::new();
    let a = hello_static();
    let b = hello_musl_static();
    let r = env.nobase(&["build", s(&a), s(&b)]).code(2);
    assert!(
        r.stderr.contains(s(&a)) && r.stderr.contains(s(&b)),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("linux/amd64"), "{}", r.stderr);
    // Names that do not agree need --path.
    let r = env
        .nobase(&[
            "build",
            s(&a),
            s(&b),
            "--platform",
            "linux/amd64/v2",
            "--platform",
            "linux/amd64/v3",
        ])
        .code(2);
    assert!(r.stderr.contains("--path"), "{}", r.stderr);
    // With --platform per executable and a shared path, they are two images.
    let j = build_json(
        &env,
        &[
            s(&a),
            s(&b),
            "--platform",
            "linux/amd64/v2",
            "--platform",
            "linux/amd64/v3",
            "--path",
            "/app/hello",
            "-t",
            "v:1",
        ],
    );
    assert_eq!(
        j["platforms"],
        serde_json::json!(["linux/amd64/v2", "linux/amd64/v3"])
    );
    // --platform: one per executable, and never another architecture.
    let r = env
        .nobase(&["build", s(&a), s(&b), "--platform", "linux/amd64"])
        .code(2);
    assert!(r.stderr.contains("one per executable"), "{}", r.stderr);
    let r = env
        .nobase(&["build", s(&a), "--platform", "linux/arm64"])
        .code(2);
    assert!(r.stderr.contains("exec format error"), "{}", r.stderr);
}

/// Go hello worlds for 32-bit ARM v6 and v7 (Go records GOARM; it writes no ARM
/// attributes), or None without Go.
fn go_arm(v: &'static str) -> Option<PathBuf> {
    static V6: OnceLock<Option<PathBuf>> = OnceLock::new();
    static V7: OnceLock<Option<PathBuf>> = OnceLock::new();
    let cell = if v == "6" { &V6 } else { &V7 };
    cell.get_or_init(|| {
        go_program(
            &format!("hello-go-armv{v}"),
            "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello world\") }\n",
            &[("GOARCH", "arm"), ("GOARM", v)],
        )
    })
    .clone()
}

#[test]
fn arm_variants_come_from_the_binary_and_tell_images_apart() {
    let (Some(v6), Some(v7)) = (go_arm("6"), go_arm("7")) else {
        return;
    };
    let env = Env::new();
    let j = env.nobase(&["inspect", "--json", s(&v6)]).ok().json();
    let info = if j.is_array() { j[0].clone() } else { j };
    assert_eq!(info["variant"], "v6", "{info}");
    let a6 = named(&env, &v6, "hello-armv6");
    let a7 = named(&env, &v7, "hello-armv7");
    let layout = env.path("l");
    let oci = format!("oci:{}:arm", layout.display());
    let j = build_json(&env, &[s(&a6), s(&a7), "-o", &oci, "-t", "arm:1"]);
    assert_eq!(
        j["platforms"],
        serde_json::json!(["linux/arm/v6", "linux/arm/v7"])
    );
    if let Some(index) = raw(&[&oci]) {
        assert_eq!(index_platforms(&index), ["linux/arm/v6", "linux/arm/v7"]);
    }
    // The same variant twice: an error naming both.
    let b7 = named(&env, &v7, "other-armv7");
    let r = env.nobase(&["build", s(&a7), s(&b7)]).code(2);
    assert!(r.stderr.contains("linux/arm/v7"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hello-armv7") && r.stderr.contains("other-armv7"),
        "{}",
        r.stderr
    );
    // The v6 image starts under qemu-user.
    let Some(rootfs) = unpack_platform(&env, "arm:1", "linux/arm/v6", "v6") else {
        return;
    };
    qemu_says_hello("qemu-arm-static", &rootfs, false);
    // A docker-archive has no index: with no image for this machine it is refused.
    let tar = env.path("d.tar");
    let r = env
        .nobase(&[
            "push",
            "arm:1",
            &format!("docker-archive:{}", tar.display()),
        ])
        .code(1);
    assert!(r.stderr.contains("oci-archive:"), "{}", r.stderr);
    assert!(!tar.exists());
}

/// A static 32-bit ARM hello world assembled by GNU as for `.arch ARCH` (as writes
/// `Tag_CPU_arch` into `.ARM.attributes` from it), linked by ld; None without the ARM
/// binutils.
fn arm_asm(env: &Env, arch: &str, name: &str) -> Option<PathBuf> {
    if !(have("arm-linux-gnueabihf-as") && have("arm-linux-gnueabihf-ld")) {
        return None;
    }
    let dir = env.path("asm");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join(format!("{name}.s"));
    std::fs::write(
        &src,
        format!(
            "    .arch {arch}\n    .syntax unified\n    .text\n    .global _start\n_start:\n\
             \x20   mov r0, #1\n    ldr r1, =msg\n    mov r2, #12\n    mov r7, #4\n    svc #0\n\
             \x20   mov r0, #0\n    mov r7, #1\n    svc #0\n    .data\nmsg: .ascii \"hello world\\n\"\n"
        ),
    )
    .unwrap();
    let obj = dir.join(format!("{name}.o"));
    let out = dir.join(name);
    run(Command::new("arm-linux-gnueabihf-as")
        .arg(&src)
        .arg("-o")
        .arg(&obj))
    .ok();
    run(Command::new("arm-linux-gnueabihf-ld")
        .arg(&obj)
        .arg("-o")
        .arg(&out))
    .ok();
    Some(out)
}

#[test]
fn arm_attributes_give_each_image_its_variant() {
    let env = Env::new();
    let Some(v5) = arm_asm(&env, "armv5te", "hello-armv5") else {
        return;
    };
    let v6 = arm_asm(&env, "armv6", "hello-armv6").unwrap();
    let v7 = arm_asm(&env, "armv7-a", "hello-armv7").unwrap();
    let v8 = arm_asm(&env, "armv8-a", "hello-armv8").unwrap();
    // readelf agrees on what the attributes say, so the test reads real ones.
    if have("readelf") {
        let r = run(Command::new("readelf").arg("-A").arg(&v7)).ok();
        assert!(r.stdout.contains("Tag_CPU_arch: v7"), "{}", r.stdout);
    }
    for (bin, want) in [(&v5, "v5"), (&v6, "v6"), (&v7, "v7"), (&v8, "v8")] {
        let j = env.nobase(&["inspect", "--json", s(bin)]).ok().json();
        let info = if j.is_array() { j[0].clone() } else { j };
        assert_eq!(info["variant"], want, "{info}");
    }
    let layout = env.path("l");
    let oci = format!("oci:{}:arm", layout.display());
    let mut args = vec![s(&v8), s(&v6), s(&v5), s(&v7)];
    let amd = named(&env, &hello_static(), "hello-amd64");
    args.push(s(&amd));
    args.extend(["-t", "arm:1", "-o", &oci]);
    let j = build_json(&env, &args);
    assert_eq!(
        j["platforms"],
        serde_json::json!([
            "linux/amd64",
            "linux/arm/v5",
            "linux/arm/v6",
            "linux/arm/v7",
            "linux/arm/v8"
        ])
    );
    if let Some(index) = raw(&[&oci]) {
        assert_eq!(
            index_platforms(&index),
            [
                "linux/amd64",
                "linux/arm/v5",
                "linux/arm/v6",
                "linux/arm/v7",
                "linux/arm/v8"
            ]
        );
    }
    // skopeo picks a variant from the index as runtimes do.
    if have("skopeo") {
        for v in ["v5", "v8"] {
            let r = run(Command::new("skopeo").args([
                "--override-arch",
                "arm",
                "--override-variant",
                v,
                "inspect",
                "--config",
                &oci,
            ]))
            .ok();
            let cfg: Value = serde_json::from_str(&r.stdout).unwrap();
            assert_eq!(
                (&cfg["architecture"], &cfg["variant"]),
                (&"arm".into(), &v.into())
            );
        }
    }
    // Each ARM image starts under qemu-user.
    for p in ["linux/arm/v6", "linux/arm/v7"] {
        let Some(rootfs) = unpack_platform(&env, "arm:1", p, &p.replace('/', "-")) else {
            return;
        };
        qemu_says_hello("qemu-arm-static", &rootfs, false);
    }
}

#[test]
fn archives_and_registries_receive_the_index() {
    if !cross() {
        return;
    }
    let env = Env::new();
    let (amd, arm) = static_pair(&env);
    let oa = env.path("o.tar");
    let da = env.path("d.tar");
    let reg = Registry::start(Auth::None);
    let mut args = vec![
        "build".to_string(),
        s(&amd).into(),
        s(&arm).into(),
        "-o".into(),
        format!("oci-archive:{}", oa.display()),
        "-o".into(),
        format!("docker-archive:{}:app:1", da.display()),
    ];
    if let Some(r) = &reg {
        args.push("-o".into());
        args.push(format!("docker://{}/team/app:1", r.host()));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = env.nobase(&argv).ok();
    // docker-archive holds this machine's image, and the build says so.
    assert!(
        r.stderr.contains("holds only the linux/amd64 image"),
        "{}",
        r.stderr
    );
    let digest = r.stdout.split_whitespace().next().unwrap().to_string();
    let Some(index) = raw(&[&format!("oci-archive:{}", oa.display())]) else {
        return;
    };
    assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    let d = skopeo_inspect(&[&format!("docker-archive:{}", da.display())]).unwrap();
    assert_eq!(d["Architecture"], "amd64");
    // Pushed there from the store: the same note, and the digest printed is the amd64
    // manifest's (the one written), not the index's.
    let da2 = env.path("d2.tar");
    let r = env
        .nobase(&[
            "push",
            &format!("oci-archive:{}", oa.display()),
            &format!("docker-archive:{}:app:2", da2.display()),
        ])
        .ok();
    assert!(
        r.stderr
            .contains("holds only the linux/amd64 image, leaving out linux/arm64"),
        "{}",
        r.stderr
    );
    let written = r.stdout.split_whitespace().next().unwrap().to_string();
    let amd_manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(written, amd_manifest);
    let Some(reg) = reg else { return };
    let remote = format!("docker://{}/team/app:1", reg.host());
    let index = raw(&["--tls-verify=false", &remote]).unwrap();
    assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    let r =
        run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &remote])).ok();
    assert_eq!(sha256_hex(r.stdout.as_bytes()), digest);
    let arm_cfg = skopeo_inspect(&["--override-arch", "arm64", "--tls-verify=false", &remote]);
    assert_eq!(arm_cfg.unwrap()["Architecture"], "arm64");
}

/// The smallest i386 program: writes "hi\n" with int 0x80 and exits 0 (118 bytes, one
/// PT_LOAD at 0x08048000, no sections), assembled by hand.
fn tiny_i386() -> Vec<u8> {
    let base: u32 = 0x0804_8000;
    let code_at: u32 = 52 + 32;
    let mut code: Vec<u8> = Vec::new();
    let msg_at = base + code_at + 31;
    code.extend([0xb8, 4, 0, 0, 0]); // mov eax, 4 (write)
    code.extend([0xbb, 1, 0, 0, 0]); // mov ebx, 1
    code.push(0xb9); // mov ecx, msg
    code.extend(msg_at.to_le_bytes());
    code.extend([0xba, 3, 0, 0, 0]); // mov edx, 3
    code.extend([0xcd, 0x80]); // int 0x80
    code.extend([0xb8, 1, 0, 0, 0]); // mov eax, 1 (exit)
    code.extend([0x31, 0xdb]); // xor ebx, ebx
    code.extend([0xcd, 0x80]); // int 0x80
    assert_eq!(code.len(), 31);
    code.extend(b"hi\n");
    let size = code_at + code.len() as u32;
    let mut f: Vec<u8> = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    f.extend(2u16.to_le_bytes()); // ET_EXEC
    f.extend(3u16.to_le_bytes()); // EM_386
    f.extend(1u32.to_le_bytes());
    f.extend((base + code_at).to_le_bytes()); // entry
    f.extend(52u32.to_le_bytes()); // phoff
    f.extend(0u32.to_le_bytes()); // shoff
    f.extend(0u32.to_le_bytes()); // flags
    for v in [52u16, 32, 1, 40, 0, 0] {
        f.extend(v.to_le_bytes());
    }
    for v in [1u32, 0, base, base, size, size, 5, 0x1000] {
        f.extend(v.to_le_bytes()); // PT_LOAD, R+X
    }
    f.extend(code);
    assert_eq!(f.len() as u32, size);
    f
}

#[test]
fn i386_programs_count_as_runnable_on_amd64() {
    // An x86_64 kernel runs i386 programs (IA-32 emulation), as Docker does with
    // linux/386 images there: `run` refused them as "exec format error".
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    let env = Env::new();
    let p = env.path("hi386");
    std::fs::write(&p, tiny_i386()).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let j = build_json(&env, &[s(&p), "-t", "i386:1"]);
    assert_eq!(j["platform"], "linux/386", "{j}");
    env.nobase(&["check", "i386:1"]).ok();
    // Under runc only where this kernel has IA-32 emulation (it can be built without).
    let native = Command::new(&p).output().is_ok_and(|o| o.stdout == b"hi\n");
    if native && have("runc") && is_root() {
        let r = env.nobase(&["run", "i386:1"]).ok();
        assert_eq!(r.stdout, "hi\n");
    }
}

#[test]
fn a_dockerfile_builds_for_several_platforms_into_one_index() {
    // buildx --platform a,b: `build -f` refused --platform, so a Dockerfile made one
    // platform per run and never an index.
    if !cross() {
        return;
    }
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(hello_static(), ctx.join("svc-amd64")).unwrap();
    std::fs::copy(hello_arm64_static(), ctx.join("svc-arm64")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY svc-${TARGETARCH} /svc\nENTRYPOINT [\"/svc\"]\n",
    )
    .unwrap();
    let df = ctx.join("Dockerfile");
    let build = |extra: &[&str]| {
        let mut a = vec!["build", "--json", "-f", s(&df), s(&ctx)];
        a.extend_from_slice(extra);
        env.nobase(&a)
    };
    let j = build(&["--platform", "linux/arm64,linux/amd64", "-t", "svc:1"])
        .ok()
        .json();
    assert_eq!(
        j["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"]),
        "{j}"
    );
    // Each platform's image is the one a single-platform build makes.
    let arm = build(&["--platform", "linux/arm64", "-t", "svc:arm"])
        .ok()
        .json();
    assert_eq!(j["images"][1]["digest"], arm["digest"], "{j}\n{arm}");
    // Repeated flags are the same as a list; the digest does not depend on the order.
    let again = build(&[
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "-t",
        "svc:2",
    ])
    .ok()
    .json();
    assert_eq!(again["digest"], j["digest"]);
    if let Some(index) = raw(&[&format!("oci:{}:svc:1", env.store().display())]) {
        assert_eq!(index_platforms(&index), ["linux/amd64", "linux/arm64"]);
    }
    env.nobase(&["check", "--all-platforms", "svc:1"]).ok();
    if is_root() && have("runc") {
        // This machine's image of the index.
        assert_eq!(env.nobase(&["run", "svc:1"]).ok().stdout, "hello world\n");
    }
    // A platform twice, and a Dockerfile that pins its own platform, are refused.
    build(&["--platform", "linux/amd64,amd64", "-t", "x:1"]).code(2);
    std::fs::write(
        &df,
        "FROM --platform=linux/amd64 scratch\nCOPY svc-amd64 /svc\nENTRYPOINT [\"/svc\"]\n",
    )
    .unwrap();
    let r = build(&["--platform", "linux/amd64,linux/arm64", "-t", "x:2"]).code(1);
    assert!(
        r.stderr.contains("the image made is for linux/amd64"),
        "{}",
        r.stderr
    );
}
