//! `nobase tree` on images nobase did not make: a three-layer umoci image (overwrite,
//! whiteout, an empty-layer config step), judged against `umoci unpack`'s rootfs and
//! skopeo's view of the layers; the same image through oci-archive, docker-archive, a
//! registry and the store;
//! the CI gates; hostile layers; and a 700 MB layer read with flat memory.

use crate::check::{craft, refuses_hostile_layers};
use crate::registry::{Auth, Registry};
use crate::util::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[track_caller]
fn ok(cmd: &mut Command) {
    let r = run(cmd);
    assert_eq!(r.code, 0, "{cmd:?}:\n{}{}", r.stdout, r.stderr);
}

/// Bytes that do not compress and differ per seed (xorshift), so no two files of the
/// image are identical unless a test makes them so.
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 4);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A new empty image made by umoci in `env`; returns its reference (`DIR:latest`).
fn umoci_new(env: &Env) -> String {
    let layout = env.path("oci");
    let image = format!("{}:latest", layout.display());
    ok(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    ok(Command::new("umoci").args(["new", "--image", &image]));
    image
}

/// `umoci insert` of a directory at `/`, with a history entry saying `created_by`.
fn umoci_insert(image: &str, dir: &Path, created_by: &str) {
    ok(Command::new("umoci")
        .args([
            "insert",
            "--image",
            image,
            "--history.created_by",
            created_by,
        ])
        .arg(dir)
        .arg("/"));
}

const BIG: usize = 3_000_000;
const KEEP: usize = 400_000;
const GONE: usize = 100_000;
const COPY: usize = 50_000;

/// The three-layer image: layer 1 adds /app (a 3 MB file among others), a config step
/// makes no layer, layer 2 overwrites the 3 MB file with a small one, layer 3 deletes
/// /app/gone by whiteout. Returns the umoci reference (`DIR:latest`).
fn three_layers(env: &Env) -> String {
    let image = umoci_new(env);
    let l1 = env.path("l1");
    write(&l1.join("app/big"), &noise(1, BIG));
    write(&l1.join("app/keep"), &noise(2, KEEP));
    write(&l1.join("app/gone"), &noise(3, GONE));
    write(&l1.join("app/copy1"), &noise(4, COPY));
    write(&l1.join("app/copy2"), &noise(4, COPY));
    write(&l1.join("etc/motd"), b"hello\n");
    umoci_insert(&image, &l1, "COPY app /app");
    ok(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--history.created_by",
        "ENTRYPOINT [\"/app/keep\"]",
        "--config.entrypoint",
        "/app/keep",
    ]));
    let l2 = env.path("l2");
    write(&l2.join("app/big"), b"small now\n");
    umoci_insert(&image, &l2, "RUN shrink /app/big");
    ok(Command::new("umoci").args([
        "insert",
        "--image",
        &image,
        "--history.created_by",
        "RUN rm /app/gone",
        "--whiteout",
        "/app/gone",
    ]));
    image
}

/// Files (not directories) under `root` with their sizes, as `/path`.
fn files_under(root: &Path, prefix: &str, out: &mut BTreeMap<String, u64>) {
    for e in std::fs::read_dir(root).unwrap().flatten() {
        let path = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let m = e.metadata().unwrap();
        if m.is_dir() {
            files_under(&e.path(), &path, out);
        } else {
            out.insert(path, m.len());
        }
    }
}

/// `path → change` of one layer of `tree --json`.
fn changes(layer: &Value) -> BTreeMap<String, String> {
    layer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The human output's lines between the header starting with `head` and the next blank
/// line.
fn section<'a>(out: &'a str, head: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.starts_with(head))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

/// True when a line of `lines` starts (after its indent) with `first` and draws `name`
/// as the last thing on it.
fn has_line(lines: &[&str], first: &str, name: &str) -> bool {
    lines
        .iter()
        .any(|l| l.trim_start().starts_with(first) && l.ends_with(&format!("── {name}")))
}

#[test]
fn tree_shows_each_layer_and_the_waste_of_an_umoci_image() {
    if !(have("umoci") && have("skopeo")) {
        return;
    }
    let env = Env::new();
    let image = three_layers(&env);
    let reference = format!("oci:{image}");

    // Human output: every file under its layer with its mark, the merged tree with the
    // layer each file comes from.
    let human = env.nobase(&["tree", &reference]).ok().stdout;
    let l1 = section(&human, "Layer 1/3");
    for name in [
        "app", "big", "keep", "gone", "copy1", "copy2", "etc", "motd",
    ] {
        assert!(has_line(&l1, "+ ", name), "layer 1 {name}:\n{human}");
    }
    assert!(human.contains("created by: COPY app /app"), "{human}");
    let l2 = section(&human, "Layer 2/3");
    assert!(has_line(&l2, "~ ", "big"), "{human}");
    assert!(human.contains("created by: RUN shrink /app/big"), "{human}");
    let l3 = section(&human, "Layer 3/3");
    assert!(has_line(&l3, "- ", "gone"), "{human}");
    assert!(!l3.iter().any(|l| l.ends_with("── big")), "{human}");
    let merged = section(&human, "Merged tree");
    for (layer, name) in [
        ("L2", "big"),
        ("L1", "keep"),
        ("L1", "copy1"),
        ("L1", "motd"),
    ] {
        assert!(has_line(&merged, layer, name), "merged {name}:\n{human}");
    }
    assert!(!merged.iter().any(|l| l.ends_with("── gone")), "{human}");
    assert!(human.contains("Efficiency"), "{human}");
    // Colours only on a terminal (script gives it one), and never with NO_COLOR.
    assert!(!human.contains('\x1b'), "{human}");
    if have("script") {
        let line = format!("{} tree {reference}", nobase_bin().display());
        let tty = |no_color: bool| {
            let mut c = Command::new("script");
            c.args(["-qec", &line, "/dev/null"]);
            if no_color {
                c.env("NO_COLOR", "1");
            } else {
                c.env_remove("NO_COLOR");
            }
            run(&mut c).stdout
        };
        assert!(
            tty(false).contains("\x1b[32m  + "),
            "no colour on a terminal"
        );
        assert!(!tty(true).contains('\x1b'), "colour despite NO_COLOR");
    }

    // JSON: the same marks, the history mapped past the empty-layer config step.
    let j = env.nobase(&["tree", "--json", &reference]).ok().json();
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let c = |i: usize, p: &str| changes(&layers[i]).get(p).cloned();
    assert_eq!(c(0, "/app/big").as_deref(), Some("added"));
    assert_eq!(c(0, "/etc/motd").as_deref(), Some("added"));
    assert_eq!(c(1, "/app/big").as_deref(), Some("modified"));
    assert_eq!(c(2, "/app/gone").as_deref(), Some("removed"));
    assert_eq!(changes(&layers[1]).get("/app/keep"), None);
    let created: Vec<&str> = layers
        .iter()
        .map(|l| l["created_by"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        created,
        ["COPY app /app", "RUN shrink /app/big", "RUN rm /app/gone"]
    );
    let removed = layers[2]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/app/gone")
        .unwrap();
    assert_eq!(removed["size"], GONE as u64);

    // Layers as skopeo sees them: digests and compressed sizes.
    let raw = run(Command::new("skopeo").args(["inspect", "--raw", &reference]));
    let manifest: Value = serde_json::from_str(&raw.stdout).unwrap();
    let layout_dir = Path::new(image.rsplit_once(':').unwrap().0);
    for (mine, theirs) in layers.iter().zip(manifest["layers"].as_array().unwrap()) {
        assert_eq!(mine["digest"], theirs["digest"]);
        assert_eq!(mine["size"], theirs["size"]);
        let (tar, data) = (&mine["uncompressed_size"], &mine["file_bytes"]);
        assert!(tar.as_u64().unwrap() > data.as_u64().unwrap(), "{mine}");
        // The uncompressed size is the length of the blob's tar stream, exactly.
        let hex = theirs["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        let blob = std::fs::File::open(layout_dir.join("blobs/sha256").join(hex)).unwrap();
        let n = std::io::copy(
            &mut flate2::read::MultiGzDecoder::new(blob),
            &mut std::io::sink(),
        )
        .unwrap();
        assert_eq!(tar.as_u64().unwrap(), n, "{mine}");
    }
    // The image as named, and each file's mode as the layer has it.
    assert_eq!(j["image"], reference.as_str());
    let motd = layers[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/etc/motd")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path("l1/etc/motd"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(motd["mode"], format!("{:04o}", mode & 0o7777));

    // The merged tree is what umoci unpacks: the same files, the same sizes.
    let bundle = umoci_unpack(&env, &image).unwrap();
    let mut unpacked = BTreeMap::new();
    files_under(&bundle.join("rootfs"), "", &mut unpacked);
    let mine: BTreeMap<String, u64> = j["merged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] != "dir")
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(mine, unpacked);
    let from: BTreeMap<&str, u64> = j["merged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["layer"].as_u64().unwrap()))
        .collect();
    assert_eq!(from["/app/big"], 2);
    assert_eq!(from["/app/keep"], 1);

    // ~3 MB wasted: the overwritten 3 MB file (with its small successor, as dive
    // counts), the removed file, and one extra copy of the duplicated file.
    let small = "small now\n".len() as u64;
    let wasted = j["wasted_bytes"].as_u64().unwrap();
    assert_eq!(
        j["wasted"]["overwritten_or_removed"].as_u64().unwrap(),
        BIG as u64 + small + GONE as u64
    );
    assert_eq!(j["wasted"]["duplicates"].as_u64().unwrap(), COPY as u64);
    assert!((3_000_000..3_300_000).contains(&wasted), "{wasted}");
    // dive's efficiency: the smallest version of each path over all versions stored.
    let total = (BIG + KEEP + GONE + 2 * COPY + 6) as u64 + small;
    assert_eq!(j["total_bytes"].as_u64().unwrap(), total);
    let min = (KEEP + 2 * COPY + 6) as u64 + small;
    let eff = j["efficiency"].as_f64().unwrap();
    assert!((eff - min as f64 / total as f64).abs() < 1e-9, "{eff}");
    assert!(eff < 0.9 && eff > 0.1, "{eff}");
    assert_eq!(j["largest"][0]["path"], "/app/keep");
    let dups = &j["duplicates"][0]["paths"];
    assert_eq!(dups, &serde_json::json!(["/app/copy1", "/app/copy2"]));

    // --layer shows one layer; numbers outside the image are usage errors.
    let one = env
        .nobase(&["tree", "--layer", "2", &reference])
        .ok()
        .stdout;
    assert!(
        one.contains("Layer 2/3") && !one.contains("Layer 1/3"),
        "{one}"
    );
    assert!(!one.contains("Merged tree"), "{one}");
    let digest = layers[2]["digest"].as_str().unwrap();
    let by_digest = env
        .nobase(&["tree", "--json", "--layer", &digest[..19], &reference])
        .ok()
        .json();
    assert_eq!(by_digest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(by_digest["layers"][0]["index"], 3);
    let r = env.nobase(&["tree", "--layer", "4", &reference]).code(2);
    assert!(r.stderr.contains("layers 1 to 3"), "{}", r.stderr);

    // The CI gates.
    for (args, code, rule) in [
        (&["--lowest-efficiency", "0.95"][..], 1, "lowest-efficiency"),
        (&["--lowest-efficiency", "0.1"][..], 0, ""),
        (
            &["--highest-wasted-bytes", "1MB"][..],
            1,
            "highest-wasted-bytes",
        ),
        (&["--highest-wasted-bytes", "20MB"][..], 0, ""),
        (
            &["--highest-wasted-bytes", "3000000"][..],
            1,
            "highest-wasted-bytes",
        ),
        (
            &["--highest-user-wasted-percent", "0.5"][..],
            1,
            "highest-user-wasted-percent",
        ),
        (
            &[
                "--lowest-efficiency",
                "0.1",
                "--highest-wasted-bytes",
                "2MiB",
            ][..],
            1,
            "highest-wasted-bytes",
        ),
        // No rule: dive's defaults (efficiency 0.9 fails here).
        (&[][..], 1, "lowest-efficiency"),
    ] {
        let mut a = vec!["tree", "--ci"];
        a.extend_from_slice(args);
        a.push(&reference);
        let r = env.nobase(&a).code(code);
        if code == 1 {
            assert!(
                r.stderr.contains(&format!("CI rule {rule} failed")),
                "{args:?}: {}",
                r.stderr
            );
            assert!(r.stdout.contains(&format!("FAIL  {rule}")), "{}", r.stdout);
        } else {
            assert!(r.stdout.contains("Result: PASS"), "{}", r.stdout);
        }
    }
    let r = env
        .nobase(&[
            "tree",
            "--json",
            "--ci",
            "--lowest-efficiency",
            "0.95",
            &reference,
        ])
        .code(1);
    let ci = &r.json()["ci"];
    assert_eq!(ci["passed"], false);
    assert_eq!(ci["rules"][0]["rule"], "lowest-efficiency");
    // Fractions read the same in the rules and the summary: as a percent too.
    let m = ci["rules"][0]["message"].as_str().unwrap();
    assert!(
        m.contains(" %)") && m.ends_with("(the lowest allowed is 0.9500 (95.0 %))"),
        "{m}"
    );
    for bad in [
        &["--lowest-efficiency", "0.5"][..],
        &["--ci", "--lowest-efficiency", "1.5"][..],
        &["--ci", "--highest-wasted-bytes", "lots"][..],
    ] {
        let mut a = vec!["tree"];
        a.extend_from_slice(bad);
        a.push(&reference);
        env.nobase(&a).code(2);
    }
}

/// The numbers of `tree --json` that do not depend on how the layers are stored.
fn numbers(j: &Value) -> Value {
    let layers: Vec<Value> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            serde_json::json!({
                "uncompressed_size": l["uncompressed_size"],
                "file_bytes": l["file_bytes"],
                "created_by": l["created_by"],
                "files": l["files"],
            })
        })
        .collect();
    serde_json::json!({
        "layers": layers,
        "merged": j["merged"],
        "total_bytes": j["total_bytes"],
        "wasted_bytes": j["wasted_bytes"],
        "efficiency": j["efficiency"],
        "largest": j["largest"],
    })
}

#[test]
fn archives_of_the_image_give_the_same_numbers() {
    if !(have("umoci") && have("skopeo")) {
        return;
    }
    let env = Env::new();
    let image = three_layers(&env);
    let want = numbers(
        &env.nobase(&["tree", "--json", &format!("oci:{image}")])
            .ok()
            .json(),
    );
    let oci_archive = env.path("img-oci.tar");
    let docker_archive = env.path("img-docker.tar");
    ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{image}"),
        &format!("oci-archive:{}:v1", oci_archive.display()),
    ]));
    ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        &format!("oci:{image}"),
        &format!("docker-archive:{}:app:1", docker_archive.display()),
    ]));
    let mut references = vec![
        format!("oci-archive:{}", oci_archive.display()),
        format!("docker-archive:{}", docker_archive.display()),
    ];
    // A registry on loopback (plain HTTP), and the local store after a pull from it.
    let registry = Registry::start(Auth::None);
    if let Some(reg) = &registry {
        let remote = format!("docker://{}/tree/app:1", reg.host());
        ok(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &remote,
        ]));
        env.nobase(&["pull", "-q", &remote, "-t", "app:1"]).ok();
        references.push(remote);
        references.push("app:1".into());
    }
    for reference in references {
        let got = env.nobase(&["tree", "--json", &reference]).ok().json();
        assert_eq!(numbers(&got), want, "{reference}");
        let r = env.nobase(&["tree", "--ci", "--lowest-efficiency", "0.95", &reference]);
        assert_eq!(r.code, 1, "{reference}: {}", r.stderr);
    }
}

#[test]
fn hostile_layers_are_listed_where_written_or_refused_and_never_followed() {
    if !have("python3") {
        return;
    }
    let env = Env::new();
    let victim = env.path("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let v = victim.to_str().unwrap().to_string();
    // A name no host has: if anything were followed out of the image, it would appear.
    let sentinel = format!("nobase-tree-sentinel-{}", std::process::id());
    refuses_hostile_layers(&env, "tree", &v);
    let dir = craft(
        &env,
        "contained",
        serde_json::json!({"layers": [
            [{"name": "escape", "type": "symlink", "link": "../../../../../../"},
             {"name": "abs", "type": "symlink", "link": "/"},
             {"name": "hostvictim", "type": "symlink", "link": v},
             {"name": "/etc/abs-name", "data": "absolute"},
             {"name": "evil\u{1b}[2Jname", "data": "x"},
             {"name": "bell", "type": "symlink", "link": "\u{1b}]0;pwned\u{7}"}],
            [{"name": format!("escape/tmp/{sentinel}"), "data": "e"},
             {"name": format!("/abs/tmp/{sentinel}-2"), "data": "a"},
             {"name": "hostvictim", "data": "overwritten"},
             {"name": v.clone(), "data": "overwritten too"},
             {"name": "escape/.wh.etc", "data": ""}],
        ]}),
    );
    let reference = format!("oci:{}:latest", dir.display());
    let r = env.nobase(&["tree", "--json", &reference]).ok();
    let j = r.json();
    let merged: BTreeMap<String, Value> = j["merged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    // Listed where the layers write them, inside the image.
    assert_eq!(merged["/etc/abs-name"]["kind"], "file");
    assert!(
        merged.contains_key(&format!("/escape/tmp/{sentinel}")),
        "{merged:?}"
    );
    assert!(
        merged.contains_key(&format!("/abs/tmp/{sentinel}-2")),
        "{merged:?}"
    );
    assert!(merged.contains_key(&v), "{merged:?}");
    assert_eq!(merged["/hostvictim"]["kind"], "file");
    // The whiteout through a symlink deletes nothing of the image's /etc.
    assert!(merged.contains_key("/etc/abs-name"));
    let warnings = j["warnings"].to_string();
    assert!(
        warnings.contains("is written below /escape, which is a symlink"),
        "{warnings}"
    );
    assert!(warnings.contains("not followed"), "{warnings}");
    // The human output lists them too, and the warnings go to stderr; control characters
    // of names and targets are shown escaped, never sent to the terminal.
    let r = env.nobase(&["tree", &reference]).ok();
    assert!(r.stdout.contains(&sentinel), "{}", r.stdout);
    assert!(r.stderr.contains("warning"), "{}", r.stderr);
    assert!(r.stdout.contains("evil\\x1b[2Jname"), "{}", r.stdout);
    assert!(
        r.stdout.contains("bell -> \\x1b]0;pwned\\x07"),
        "{}",
        r.stdout
    );
    assert!(
        !(r.stdout + &r.stderr).contains(['\u{1b}', '\u{7}']),
        "raw control characters printed"
    );
    // Nothing outside the image was touched or created.
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    for p in [
        PathBuf::from("/tmp").join(&sentinel),
        PathBuf::from("/tmp").join(format!("{sentinel}-2")),
        std::env::temp_dir().join(&sentinel),
    ] {
        assert!(!p.exists(), "{} was created", p.display());
    }
}

#[test]
fn a_700_mb_layer_is_summarized_with_flat_memory() {
    if !(have("umoci") && have("time")) {
        return;
    }
    let env = Env::new();
    let image = umoci_new(&env);
    // 700 MB of zeros (a sparse file: cheap to make, quick to gzip) and some noise.
    let stage = env.path("big");
    const SIZE: u64 = 700_000_000;
    std::fs::create_dir_all(stage.join("data")).unwrap();
    std::fs::File::create(stage.join("data/zeros"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    write(&stage.join("data/noise"), &noise(9, 1 << 20));
    umoci_insert(&image, &stage, "COPY data /data");
    let r = run(Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib=%M"])
        .arg(nobase_bin())
        .args(["tree", "--json", &format!("oci:{image}")]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["total_bytes"].as_u64().unwrap(), SIZE + (1 << 20));
    assert_eq!(j["largest"][0]["path"], "/data/zeros");
    assert_eq!(j["efficiency"], 1.0);
    let rss_kib: u64 = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {}", r.stderr));
    // Far below the input: file contents are streamed and hashed, never held.
    assert!(
        rss_kib < 100 * 1024,
        "peak RSS {rss_kib} KiB for a {SIZE}-byte layer"
    );
}

/// A pseudo-terminal of 30 rows by 120 columns: its master side and its slave side.
fn pty() -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    let ws = libc::winsize {
        ws_row: 30,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills two descriptors, which are owned from here on.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are not owned elsewhere.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    }
}

#[test]
fn interactive_view_walks_the_layers_and_gives_the_terminal_back() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::sync::{Arc, Mutex};
    if !have("umoci") {
        return;
    }
    let env = Env::new();
    let image = three_layers(&env);
    let reference = format!("oci:{image}");

    // Not on a terminal: a usage error that says so.
    let r = env.nobase(&["tree", "-i", &reference]).code(2);
    assert!(r.stderr.contains("needs a terminal"), "{}", r.stderr);

    /// Kills the view if an assertion fails while it runs.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let (mut master, slave) = pty();
    let tty = |fd: &std::os::fd::OwnedFd| std::process::Stdio::from(fd.try_clone().unwrap());
    let spawn_view = || {
        Reap(
            env.cmd(&["tree", "-i", &reference])
                .stdin(tty(&slave))
                .stdout(tty(&slave))
                .stderr(tty(&slave))
                .spawn()
                .unwrap(),
        )
    };
    // The terminal's modes are as they were before the view: echo, line editing.
    let modes_given_back = |what: &str| {
        // SAFETY: termios is plain data filled by tcgetattr on a live descriptor.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(slave.as_raw_fd(), &mut t) }, 0);
        assert!(
            t.c_lflag & libc::ECHO != 0 && t.c_lflag & libc::ICANON != 0,
            "{what}: raw mode left on"
        );
    };
    // The view's exit status, waited for, and the terminal's modes checked after it.
    let ended = |child: &mut Reap, what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what} did not end the view"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        modes_given_back(what);
        status
    };
    let mut child = spawn_view();
    let screen = Arc::new(Mutex::new(Vec::new()));
    {
        let screen = screen.clone();
        let mut reader = master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    // Waits until `text` is drawn after byte `from` of the output; returns where it ends.
    let wait_for = |from: usize, text: &str| -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let s = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
            if let Some(i) = s.get(from..).and_then(|rest| rest.find(text)) {
                return from + i + text.len();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{text:?} never drawn after byte {from}:\n{}",
                s.get(from..).unwrap_or("")
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // The first frame: every layer's history on the left, layer 1's files on the right.
    let mut at = wait_for(0, "Layer 1/3");
    for step in ["COPY app /app", "RUN shrink /app/big", "RUN rm /app/gone"] {
        wait_for(0, step);
    }
    wait_for(0, "motd");
    // j: layer 2, which modifies /app/big; j again: layer 3, which removes /app/gone.
    master.write_all(b"j").unwrap();
    at = wait_for(at, "Layer 2/3");
    master.write_all(b"\x1b[B").unwrap();
    at = wait_for(at, "Layer 3/3");
    at = wait_for(at, "gone");
    // m: the merged tree, naming the layer of each file.
    master.write_all(b"m").unwrap();
    at = wait_for(at, "Merged tree");
    wait_for(at, "keep");
    // q: the view ends, the screen and the terminal's modes are given back.
    master.write_all(b"q").unwrap();
    let status = ended(&mut child, "q");
    assert!(status.success(), "{status:?}");
    wait_for(at, "\x1b[?1049l");

    // Killed with SIGTERM, or left with a lone Esc: the same restoration.
    for how in ["TERM", "Esc"] {
        let from = screen.lock().unwrap().len();
        let mut child = spawn_view();
        let at = wait_for(from, "Layer 1/3");
        if how == "TERM" {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
        } else {
            master.write_all(b"\x1b").unwrap();
        }
        let status = ended(&mut child, how);
        wait_for(at, "\x1b[?1049l");
        use std::os::unix::process::ExitStatusExt;
        match how {
            "TERM" => assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}"),
            _ => assert!(status.success(), "{status:?}"),
        }
    }

    // Ctrl-Z: the terminal given back and the view stopped, as a shell's job; continued
    // (what `fg` sends), the view is drawn again. In a process group of its own, as a
    // shell's job is: the kernel discards stop signals to an orphaned one.
    let from = screen.lock().unwrap().len();
    let mut child = {
        use std::os::unix::process::CommandExt;
        let mut c = env.cmd(&["tree", "-i", &reference]);
        c.stdin(tty(&slave)).stdout(tty(&slave)).stderr(tty(&slave));
        // SAFETY: setpgid is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            c.pre_exec(|| {
                libc::setpgid(0, 0);
                Ok(())
            })
        };
        Reap(c.spawn().unwrap())
    };
    let pid = child.0.id();
    let at = wait_for(from, "Layer 1/3");
    master.write_all(b"\x1a").unwrap();
    let at = wait_for(at, "\x1b[?1049l");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit(") ").next().unwrap().chars().next();
        if state == Some('T') {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Ctrl-Z did not stop the view: {stat}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    modes_given_back("stopped by Ctrl-Z");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    let at = wait_for(at, "\x1b[?1049h");
    let at = wait_for(at, "Layer 1/3");
    master.write_all(b"j").unwrap();
    let at = wait_for(at, "Layer 2/3");
    master.write_all(b"q").unwrap();
    let status = ended(&mut child, "q after Ctrl-Z");
    assert!(status.success(), "{status:?}");
    wait_for(at, "\x1b[?1049l");
}

#[test]
fn a_hard_linked_file_lives_on_when_its_first_name_is_removed() {
    if !have("umoci") {
        return;
    }
    let env = Env::new();
    let image = umoci_new(&env);
    // umoci writes app/a as the file and app/b, app/c as hard links naming it; a later
    // layer removes app/a, as `RUN rm` of one name does.
    let l1 = env.path("l1");
    write(&l1.join("app/a"), &noise(7, 300_000));
    std::fs::hard_link(l1.join("app/a"), l1.join("app/b")).unwrap();
    std::fs::hard_link(l1.join("app/a"), l1.join("app/c")).unwrap();
    umoci_insert(&image, &l1, "COPY app /app");
    ok(Command::new("umoci").args(["insert", "--image", &image, "--whiteout", "/app/a"]));
    let reference = format!("oci:{image}");
    let j = env.nobase(&["tree", "--json", &reference]).ok().json();
    let layer1: Vec<_> = j["layers"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        layer1,
        [
            ("/app", "dir"),
            ("/app/a", "file"),
            ("/app/b", "hardlink"),
            ("/app/c", "hardlink")
        ]
    );
    // Merged: b holds the content now, c links to b; nothing is wasted.
    let merged: Vec<_> = j["merged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                f["kind"].as_str().unwrap(),
                f["size"].as_u64().unwrap(),
                f["target"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        merged,
        [
            ("/app", "dir", 0, ""),
            ("/app/b", "file", 300_000, ""),
            ("/app/c", "hardlink", 300_000, "/app/b"),
        ]
    );
    assert_eq!(j["final_bytes"], 300_000, "{j}");
    assert_eq!(j["wasted_bytes"], 0, "{j}");
    assert_eq!(j["efficiency"], 1.0, "{j}");
    env.nobase(&["tree", "--ci", &reference]).ok();
    // What umoci unpacks agrees: both remaining names hold the 300000 bytes.
    if let Some(bundle) = umoci_unpack(&env, &image) {
        let mut unpacked = BTreeMap::new();
        files_under(&bundle.join("rootfs"), "", &mut unpacked);
        let want: BTreeMap<String, u64> = [
            ("/app/b".to_string(), 300_000),
            ("/app/c".to_string(), 300_000),
        ]
        .into();
        assert_eq!(unpacked, want);
    }
}

#[test]
fn chains_of_hard_links_keep_their_content_as_unpackers_do() {
    // Tar hard links may name another link; names of one file removed or replaced in
    // later layers must leave the merged tree umoci unpacks.
    let env = Env::new();
    let a = "a".repeat(1000);
    let f = |name: &str, data: &str| json!({"name": name, "data": data});
    let l = |name: &str, target: &str| json!({"name": name, "type": "link", "target": target});
    let wh = |name: &str| json!({"name": name, "data": ""});
    let base = json!([{"name": "x", "type": "dir", "mode": 0o755}, f("x/A", &a), l("x/B", "x/A"), l("x/C", "x/B")]);
    for (case, layers, want) in [
        // C -> B -> A: remove A, then B: C holds the content.
        (
            "chain",
            json!([base, [wh("x/.wh.A")], [wh("x/.wh.B")]]),
            vec![("/x/C", "file", 1000)],
        ),
        // Remove the middle link only: C still names the file.
        (
            "midlink",
            json!([base, [wh("x/.wh.B")]]),
            vec![("/x/A", "file", 1000), ("/x/C", "hardlink", 1000)],
        ),
        // Replace the middle link by another file, then remove A: C keeps A's content.
        (
            "midreplace",
            json!([base, [f("x/B", "0123456789")], [wh("x/.wh.A")]]),
            vec![("/x/B", "file", 10), ("/x/C", "file", 1000)],
        ),
        // The file and the middle link go together with their directory: the name
        // outside it keeps the content.
        (
            "dirchain",
            json!([
                [{"name": "d", "type": "dir", "mode": 0o755}, f("d/f", &a), l("d/g", "d/f"), l("y", "d/g")],
                [wh(".wh.d")]
            ]),
            vec![("/y", "file", 1000)],
        ),
        // A link naming its own path changes nothing.
        (
            "selflink",
            json!([[f("s", &a)], [l("s", "s")]]),
            vec![("/s", "file", 1000)],
        ),
    ] {
        let reference = craft_image(&env.path(case), &json!({"ref": "t", "layers": layers}));
        let j = env.nobase(&["tree", "--json", &reference]).ok().json();
        let merged: Vec<(String, String, u64)> = j["merged"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] != "dir")
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["kind"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, String, u64)> = want
            .iter()
            .map(|(p, k, s)| (p.to_string(), k.to_string(), *s))
            .collect();
        assert_eq!(merged, want, "{case}");
        if case == "midlink" {
            let c = j["merged"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["path"] == "/x/C")
                .unwrap();
            assert_eq!(c["target"], "/x/A", "{case}: {c}");
        }
        // umoci refuses a link to itself; nobase's own unpack keeps the file.
        if !have("umoci") || case == "selflink" {
            continue;
        }
        let image = reference.trim_start_matches("oci:");
        if let Some(bundle) = umoci_unpack(&env, image) {
            let mut unpacked = BTreeMap::new();
            files_under(&bundle.join("rootfs"), "", &mut unpacked);
            let mine: BTreeMap<String, u64> =
                merged.iter().map(|(p, _, s)| (p.clone(), *s)).collect();
            assert_eq!(mine, unpacked, "{case}");
        }
    }
}

#[test]
fn an_opaque_directory_put_again_lists_each_path_once() {
    let env = Env::new();
    let f = |name: &str, data: &str| json!({"name": name, "data": data});
    let d = json!({"name": "d", "type": "dir", "mode": 0o755});
    let layers = json!([
        [d.clone(), f("d/c.conf", "x"), f("d/gone", "y")],
        [d, f("d/.wh..wh..opq", ""), f("d/c.conf", "x")]
    ]);
    let reference = craft_image(&env.path("opq"), &json!({"ref": "t", "layers": layers}));
    let j = env.nobase(&["tree", "--json", &reference]).ok().json();
    let second: Vec<(&str, &str)> = j["layers"][1]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["change"].as_str().unwrap()))
        .collect();
    assert_eq!(
        second,
        [
            // Emptied of /d/gone by its opaque marker: modified, as a directory whited
            // out and put again in one layer is.
            ("/d", "modified"),
            ("/d/c.conf", "unchanged"),
            ("/d/gone", "removed")
        ],
        "{j}"
    );
}

#[test]
fn waste_never_counts_a_byte_twice() {
    // The user's report: /big stored twice and copied to /copy was 3 MB wasted of 3 MB
    // (2 MB overwritten, then /big's final version again as a duplicate of /copy).
    let env = Env::new();
    let ctx = env.path("ctx");
    write(&ctx.join("big"), &noise(11, 1_000_000));
    write(
        &ctx.join("Dockerfile"),
        b"FROM scratch\nCOPY big /big\nCOPY big /big\nCOPY big /copy\n",
    );
    let dockerfile = ctx.join("Dockerfile");
    env.nobase(&[
        "-q",
        "build",
        "-f",
        dockerfile.to_str().unwrap(),
        "-t",
        "waste:1",
        "--no-check",
        ctx.to_str().unwrap(),
    ])
    .ok();
    let j = env.nobase(&["tree", "--json", "waste:1"]).ok().json();
    assert_eq!(j["total_bytes"], 3_000_000, "{j}");
    assert_eq!(j["wasted_bytes"], 2_000_000, "{j}");
    assert_eq!(j["wasted"]["duplicates"], 0, "{j}");
    assert_eq!(j["duplicates"][0]["paths"], json!(["/big", "/copy"]), "{j}");
    assert_eq!(j["duplicates"][0]["wasted"], 0, "{j}");
}

#[test]
fn a_directory_whited_out_and_put_again_lists_its_lost_children() {
    // `.wh.r` and a new `r/` in one layer (the user's c_rmdir.py): the layer showed
    // "= r" and "+ fresh" only, while the summary counted /r/old and /r/sub/x as removed.
    let env = Env::new();
    let f = |name: &str, data: &str| json!({"name": name, "data": data});
    let d = |name: &str| json!({"name": name, "type": "dir", "mode": 0o755});
    let layers = json!([
        [
            d("r"),
            f("r/old", &"o".repeat(40)),
            d("r/sub"),
            f("r/sub/x", &"x".repeat(50))
        ],
        [f(".wh.r", ""), d("r"), f("r/fresh", "fresh")]
    ]);
    let reference = craft_image(&env.path("rmdir"), &json!({"ref": "x", "layers": layers}));
    let j = env.nobase(&["tree", "--json", &reference]).ok().json();
    let want: BTreeMap<String, String> = [
        ("/r", "modified"),
        ("/r/fresh", "added"),
        ("/r/old", "removed"),
        ("/r/sub", "removed"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect();
    assert_eq!(changes(&j["layers"][1]), want, "{j}");
    assert_eq!(j["wasted_bytes"], 90, "{j}");
    let out = env
        .nobase(&["tree", "--layer", "2", &reference])
        .ok()
        .stdout;
    let lines = section(&out, "Layer 2/2");
    assert!(has_line(&lines, "~ d", "r"), "{out}");
    assert!(has_line(&lines, "+ -", "fresh"), "{out}");
    assert!(has_line(&lines, "-", "old"), "{out}");
    assert!(has_line(&lines, "-", "sub"), "{out}");
    // What umoci unpacks agrees: only the fresh file is left.
    if have("umoci") {
        if let Some(bundle) = umoci_unpack(&env, reference.trim_start_matches("oci:")) {
            let mut unpacked = BTreeMap::new();
            files_under(&bundle.join("rootfs"), "", &mut unpacked);
            assert_eq!(unpacked, [("/r/fresh".to_string(), 5)].into());
        }
    }
}

#[test]
fn ci_fractions_cannot_be_misread_as_percentages() {
    // `--highest-user-wasted-percent 10` meant 1000 % and passed (dive's fraction), while
    // `--lowest-efficiency 90` was refused: both flags now take 0.1 or 10%, and refuse a
    // bare number over 1 saying so.
    let env = Env::new();
    for (flag, value, hint) in [
        ("--highest-user-wasted-percent", "10", "write 0.1 or 10%"),
        ("--lowest-efficiency", "90", "write 0.9 or 90%"),
    ] {
        let r = env.nobase(&["tree", "--ci", flag, value, "x:1"]).code(2);
        assert!(r.stderr.contains("0.1 means 10 %"), "{}", r.stderr);
        assert!(r.stderr.contains(hint), "{}", r.stderr);
    }
    let image = craft_image(
        &env.path("one"),
        &json!({"ref": "t", "layers": [[{"name": "a", "data": "x"}], [{"name": "a", "data": "y"}]]}),
    );
    // 2 B wasted of the 1 B added after the first layer: 200 %.
    for (value, code) in [("10%", 1), ("0.1", 1), ("250%", 0)] {
        env.nobase(&[
            "tree",
            "--ci",
            "--highest-user-wasted-percent",
            value,
            &image,
        ])
        .code(code);
    }
}

#[test]
fn hard_links_show_their_files_mode_and_size_and_counts_read_in_the_singular() {
    // git-upload-pack, a hard link to git, showed the link header's 0644 and 0 B while
    // the file is 0755 and 2 MB; and a one-layer image said "in 1 layers", "1 files".
    let env = Env::new();
    let layers = json!([[
        {"name": "bin", "type": "dir", "mode": 0o755},
        {"name": "bin/git", "data": "g".repeat(5000), "mode": 0o755},
        {"name": "bin/git-upload-pack", "type": "link", "target": "bin/git", "mode": 0o644}
    ]]);
    let reference = craft_image(&env.path("git"), &json!({"ref": "t", "layers": layers}));
    let j = env.nobase(&["tree", "--json", &reference]).ok().json();
    for entry in [
        merged_entry(&env, &reference, "/bin/git-upload-pack"),
        j["layers"][0]["files"][2].clone(),
    ] {
        assert_eq!(entry["kind"], "hardlink", "{entry}");
        assert_eq!(entry["mode"], "0755", "{entry}");
        assert_eq!(entry["size"], 5000, "{entry}");
        assert_eq!(entry["target"], "/bin/git", "{entry}");
    }
    // The link stores nothing: no waste, no duplicate, and the directory holds 5000 B.
    assert_eq!(j["total_bytes"], 5000, "{j}");
    assert_eq!(j["final_bytes"], 5000, "{j}");
    assert_eq!(j["wasted_bytes"], 0, "{j}");
    let out = env.nobase(&["tree", &reference]).ok().stdout;
    let merged = section(&out, "Merged tree");
    assert!(
        merged
            .iter()
            .any(|l| l.contains("-rwxr-xr-x") && l.ends_with("git-upload-pack => /bin/git")),
        "{out}"
    );
    assert!(
        merged
            .iter()
            .any(|l| l.contains("4.9 KiB") && l.ends_with("── bin")),
        "{out}"
    );
    assert!(out.contains("Merged tree  4.9 KiB in 2 files"), "{out}");
    assert!(out.contains(" of files in 1 layer ("), "{out}");
    let ci = env
        .nobase(&["tree", "--ci", "--lowest-efficiency", "0.5", &reference])
        .ok()
        .stdout;
    assert!(ci.contains("(0 of 1 rule failed)"), "{ci}");
}
