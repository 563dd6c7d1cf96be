//! Crash safety and concurrency of the store: a build killed at any moment leaves only
//! temporary files that the next write cleans; corrupt blobs are found by fsck; parallel
//! builds and removals lose no tag.

use crate::util::*;
use std::process::Stdio;
use std::time::Duration;

/// A large input that takes a while to compress on one thread.
fn payload(env: &Env, mib: usize) -> std::path::PathBuf {
    let p = env.path("payload.bin");
    let mut data = Vec::with_capacity(mib << 20);
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    while data.len() < mib << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 4 == 0 {
            data.extend_from_slice(format!("record {x:x} ").as_bytes());
        } else {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(&p, data).unwrap();
    p
}

fn fsck(env: &Env) -> (i32, serde_json::Value) {
    let r = env.nobase(&["fsck", "--json"]);
    assert!(r.code == 0 || r.code == 1, "fsck: {}", r.stderr);
    (r.code, r.json())
}

fn temps(env: &Env) -> usize {
    std::fs::read_dir(env.store())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count()
}

#[test]
fn sigkill_during_builds_corrupts_nothing() {
    let env = Env::new();
    let bin = hello_static();
    let b = bin.to_str().unwrap();
    build_json(&env, &[b, "-t", "keep:1"]);
    let keep = build_json(&env, &[b, "-t", "keep:1"])["digest"].clone();
    let big = payload(&env, 48);
    let add = format!("{}:/data/payload.bin", big.display());
    for (i, ms) in [0u64, 15, 40, 100, 250, 600].into_iter().enumerate() {
        let mut child = env
            .cmd(&[
                "build",
                "-q",
                b,
                "--add",
                &add,
                "--threads",
                "1",
                "-t",
                &format!("killed:{i}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment: no corrupt blob, no torn index, the earlier tag intact.
        let (_, report) = fsck(&env);
        for f in report["findings"].as_array().unwrap() {
            assert_eq!(f["code"], "stale-temp", "after a kill at {ms} ms: {f}");
        }
        let list = env.nobase(&["images", "--json"]).ok().json();
        let keep_entry = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "keep")
            .expect("keep:1 survives");
        assert_eq!(keep_entry["digest"], keep);
    }
    // The next write works and cleans what the killed writers left.
    let r = build_json(&env, &[b, "--add", &add, "-t", "after:1"]);
    assert!(r["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(temps(&env), 0, "temporary files were not cleaned");
    let (code, report) = fsck(&env);
    assert_eq!(code, 0, "{report}");
    if let Some(d) = skopeo_digest(&format!("oci:{}:keep:1", env.store().display())) {
        assert_eq!(serde_json::Value::from(d), keep);
    }
}

#[test]
fn fsck_finds_and_repairs_a_corrupt_blob() {
    let env = Env::new();
    let bin = hello_static();
    let j = build_json(&env, &[bin.to_str().unwrap(), "-t", "c:1"]);
    assert_eq!(fsck(&env).0, 0);
    let layer = j["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let path = env.store().join("blobs/sha256").join(&layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 1; // same size, one bit different
    std::fs::write(&path, &bytes).unwrap();
    let (code, report) = fsck(&env);
    assert_eq!(code, 1);
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"corrupt-blob"), "{codes:?}");
    assert!(codes.contains(&"missing-blob"), "{codes:?}");
    let r = env.nobase(&["fsck", "--repair"]).code(1);
    assert!(r.stdout.contains("(removed)"), "{}", r.stdout);
    assert!(!path.exists());
    // Rebuilding restores the blob; the store is clean again.
    build_json(&env, &[bin.to_str().unwrap(), "-t", "c:1"]);
    assert_eq!(fsck(&env).0, 0);
}

#[test]
fn parallel_builds_and_removals_lose_no_tag() {
    let env = Env::new();
    let bin = hello_static();
    let b = bin.to_str().unwrap();
    for i in 0..4 {
        build_json(&env, &[b, "-t", &format!("old:{i}")]);
    }
    let mut children = Vec::new();
    for i in 0..6 {
        let mut c = env.cmd(&["build", "-q", b, "-t", &format!("new:{i}")]);
        if i % 2 == 0 {
            c.args(["--compression", "zstd"]);
        }
        children.push(
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for i in 0..4 {
        children.push(
            env.cmd(&["rmi", &format!("old:{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let list = env.nobase(&["images", "--json"]).ok().json();
    let mut names: Vec<String> = list
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
    names.sort();
    assert_eq!(
        names,
        ["new:0", "new:1", "new:2", "new:3", "new:4", "new:5"]
    );
    // Every remaining image is whole: garbage collection took nothing still in use.
    let (code, report) = fsck(&env);
    assert_eq!(code, 0, "{report}");
}
