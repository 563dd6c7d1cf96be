//! The performance mechanisms, tested for behaviour (never for speed): the layer cache
//! reuses only verified content, and parallel compression makes the same bytes whatever
//! the thread count.

use crate::util::*;
use std::process::Command;

/// A file of several MiB mixing text and noise, so compression has work in many blocks.
fn big_input(env: &Env) -> std::path::PathBuf {
    let p = env.path("big.dat");
    let mut data = Vec::with_capacity(5 << 20);
    let mut x = 0x9e37_79b9_u32;
    while data.len() < (5 << 20) + 4321 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if x % 3 == 0 {
            data.extend_from_slice(format!("line {x} of some text\n").as_bytes());
        } else {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn thread_count_does_not_change_digests_of_multi_block_layers() {
    let env = Env::new();
    let bin = hello_static();
    let big = big_input(&env);
    let add = format!("{}:/data/big.dat", big.display());
    for c in ["gzip", "zstd"] {
        let digests: Vec<_> = ["1", "2", "3"]
            .iter()
            .map(|t| {
                build_json(
                    &env,
                    &[
                        bin.to_str().unwrap(),
                        "--add",
                        &add,
                        "--compression",
                        c,
                        "--threads",
                        t,
                        "-t",
                        &format!("t{c}:{t}"),
                    ],
                )["digest"]
                    .clone()
            })
            .collect();
        assert_eq!(digests[0], digests[1], "{c}: 1 vs 2 threads");
        assert_eq!(digests[0], digests[2], "{c}: 1 vs 3 threads");
    }
    // The parallel gzip stream is valid for the system's gzip too.
    let out = env.path("out");
    env.nobase(&[
        "build",
        bin.to_str().unwrap(),
        "--add",
        &add,
        "--threads",
        "2",
        "-o",
        &format!("oci:{}", out.display()),
    ])
    .ok();
    for e in std::fs::read_dir(out.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let head = std::fs::read(e.path()).unwrap();
        if head.starts_with(&[0x1f, 0x8b]) {
            let r = run(Command::new("gzip")
                .arg("-t")
                .stdin(std::fs::File::open(e.path()).unwrap()));
            assert_eq!(r.code, 0, "gzip -t: {}", r.stderr);
        }
    }
}

#[test]
fn rebuild_reuses_the_layer_only_when_the_content_is_the_same() {
    let env = Env::new();
    let bin = env.path("app");
    std::fs::copy(hello_static(), &bin).unwrap();
    let first = build_json(&env, &[bin.to_str().unwrap(), "-t", "c:1"]);
    assert_eq!(first["layers"][0]["reused"], false);
    let again = build_json(&env, &[bin.to_str().unwrap(), "-t", "c:2"]);
    assert_eq!(again["layers"][0]["reused"], true);
    assert_eq!(again["digest"], first["digest"]);

    // Same size, same path, same metadata, one byte different: must not be reused.
    let mut bytes = std::fs::read(&bin).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    std::fs::write(&bin, &bytes).unwrap();
    let changed = build_json(&env, &[bin.to_str().unwrap(), "-t", "c:3"]);
    assert_eq!(changed["layers"][0]["reused"], false);
    assert_ne!(changed["digest"], first["digest"]);

    // Another compression is another recipe.
    let z = build_json(
        &env,
        &[bin.to_str().unwrap(), "--compression", "zstd", "-t", "c:4"],
    );
    assert_eq!(z["layers"][0]["reused"], false);
    // So is another level; the default level named explicitly is the same recipe.
    let b = bin.to_str().unwrap();
    let zstd_at = |level: &str, tag: &str| {
        let args = [b, "--compression", "zstd", "--compression-level", level];
        build_json(&env, &[&args[..], &["-t", tag]].concat())
    };
    let z1 = zstd_at("1", "c:4a");
    assert_eq!(z1["layers"][0]["reused"], false);
    assert_ne!(z1["digest"], z["digest"]);
    let z3 = zstd_at("3", "c:4b");
    assert_eq!(z3["layers"][0]["reused"], true);
    assert_eq!(z3["digest"], z["digest"]);

    // After the blob is collected, the cache entry no longer hits.
    env.nobase(&["rmi", "c:1", "c:2"]).ok();
    std::fs::copy(hello_static(), &bin).unwrap();
    let cold = build_json(&env, &[bin.to_str().unwrap(), "-t", "c:5"]);
    assert_eq!(cold["layers"][0]["reused"], false);
    assert_eq!(cold["digest"], first["digest"]);
}

#[test]
fn compression_levels_are_checked_and_trade_size_for_speed() {
    let env = Env::new();
    let bin = hello_static();
    let big = big_input(&env);
    let add = format!("{}:/data/big.dat", big.display());
    let b = bin.to_str().unwrap();
    // Out of range, or for a plain tar: a usage error naming the range, nothing built.
    for (c, l, want) in [
        ("gzip", "13", "gzip levels go from 1 to 12"),
        ("gzip", "0", "gzip levels go from 1 to 12"),
        ("zstd", "20", "zstd levels go from 1 to 19"),
        ("zstd", "-1", "zstd levels go from 1 to 19"),
        ("none", "3", "not to --compression none"),
    ] {
        let r = env
            .nobase(&[
                "build",
                b,
                "--compression",
                c,
                "--compression-level",
                l,
                "-t",
                "x:1",
            ])
            .code(2);
        assert!(r.stderr.contains(want), "{c} {l}: {}", r.stderr);
    }
    assert_eq!(env.nobase(&["images", "-q"]).ok().stdout.trim(), "");

    // Each level makes a valid image of the same content (same diff_ids); the highest
    // is the smallest, and the same level twice is the same digest.
    let layer_size = |v: &serde_json::Value| v["layers"][0]["size"].as_u64().unwrap();
    for (c, lo, hi) in [("gzip", "1", "12"), ("zstd", "1", "19")] {
        let build = |level: &str, tag: &str| {
            build_json(
                &env,
                &[
                    b,
                    "--add",
                    &add,
                    "--compression",
                    c,
                    "--compression-level",
                    level,
                    "-t",
                    tag,
                ],
            )
        };
        let fast = build(lo, &format!("{c}:{lo}"));
        let small = build(hi, &format!("{c}:{hi}"));
        assert!(
            layer_size(&small) < layer_size(&fast),
            "{c}: level {hi} is not smaller than {lo}"
        );
        let r = env.nobase(&["check", "--json", &format!("{c}:{hi}")]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["ok"], true, "{}", r.stdout);
        let diff_ids = |v: &serde_json::Value| {
            v["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["diff_id"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            diff_ids(&fast),
            diff_ids(&small),
            "{c}: content differs by level"
        );
        let other = env.path(&format!("{c}-again"));
        std::fs::create_dir_all(&other).unwrap();
        let again = build_json(
            &env,
            &[
                b,
                "--add",
                &add,
                "--compression",
                c,
                "--compression-level",
                hi,
                "-o",
                &format!("oci:{}", other.display()),
            ],
        );
        assert_eq!(
            again["digest"], small["digest"],
            "{c} {hi}: not reproducible"
        );
    }
}
