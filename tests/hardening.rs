//! Crash safety and concurrency of the store: a build killed at any moment leaves only
//! temporary files that the next write cleans; corrupt blobs are found by fsck; parallel
//! builds and removals lose no tag.

use crate::util::*;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
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
        let tag = format!("killed:{i}");
        let args = [
            "build",
            "-q",
            b,
            "--add",
            &add,
            "--threads",
            "1",
            "-t",
            &tag,
        ];
        kill_after(&env, &args, ms);
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
    // The text output names the file of a finding that is not a blob.
    let junk = env.store().join("blobs/sha256/junk");
    std::fs::write(&junk, b"x").unwrap();
    let r = env.nobase(&["fsck"]).code(1);
    let shown = junk.display().to_string();
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("not-a-blob") && l.contains(&shown)),
        "{}",
        r.stdout
    );
    std::fs::remove_file(&junk).unwrap();
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

/// Starts `nobase ARGS` and SIGKILLs it after `ms` milliseconds (it may have finished).
fn kill_after(env: &Env, args: &[&str], ms: u64) {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let _ = child.kill();
    let _ = child.wait();
}

/// Kill moments: from before the first write to after the last.
const MOMENTS: [u64; 7] = [0, 5, 20, 50, 120, 300, 800];

/// `fsck --json` of a layout directory: only temp files of killed writers may be found.
#[track_caller]
fn only_stale_temps(env: &Env, layout: Option<&std::path::Path>, when: &str) {
    let mut args = vec!["fsck", "--json"];
    let dir = layout.map(|l| l.display().to_string());
    if let Some(d) = &dir {
        args.push(d);
    }
    let r = env.nobase(&args);
    assert!(r.code == 0 || r.code == 1, "fsck {when}: {}", r.stderr);
    for f in r.json()["findings"].as_array().unwrap() {
        assert_eq!(f["code"], "stale-temp", "{when}: {f}");
    }
}

/// The tags of a layout (or the store) with their digests.
fn tags(env: &Env, layout: Option<&std::path::Path>) -> Vec<(String, String)> {
    let index = layout
        .map(|l| l.join("index.json"))
        .unwrap_or_else(|| env.store().join("index.json"));
    let Ok(bytes) = std::fs::read(index) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("index.json is whole");
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn temps_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .count()
        })
        .unwrap_or(0)
}

/// A large image (48 MiB of poorly compressible data) in the store as `big:1`, and a
/// small one as `keep:1`; returns their digests.
fn big_and_keep(env: &Env) -> (String, String) {
    let bin = hello_static();
    let b = bin.to_str().unwrap();
    let keep = build_json(env, &[b, "-t", "keep:1"])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let big = payload(env, 48);
    let add = format!("{}:/data/payload.bin", big.display());
    let big = build_json(env, &[b, "--add", &add, "-t", "big:1"])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    (big, keep)
}

#[test]
fn sigkill_during_pull_and_push_leaves_whole_images_or_none() {
    let env = Env::new();
    let (big, keep) = big_and_keep(&env);
    // Pulling from a layout into a second store, and from a registry when one is here.
    let src = env.path("src");
    env.nobase(&["push", "big:1", &format!("oci:{}:big", src.display())])
        .ok();
    let registry = crate::registry::Registry::start(crate::registry::Auth::None);
    let mut sources = vec![format!("oci:{}:big", src.display())];
    if let Some(reg) = &registry {
        let dest = format!("docker://{}/big:1", reg.host());
        env.nobase(&["push", "big:1", &dest]).ok();
        sources.push(dest);
    }
    let other = Env::new();
    build_json(&other, &[hello_static().to_str().unwrap(), "-t", "keep:1"]);
    let keep_other = tags(&other, None);
    for source in &sources {
        for ms in MOMENTS {
            let when = format!("pull {source} killed after {ms} ms");
            kill_after(&other, &["pull", source, "-t", "pulled:1"], ms);
            eprintln!("{when}: {} temp files", temps_in(&other.store()));
            only_stale_temps(&other, None, &when);
            let now = tags(&other, None);
            for t in &keep_other {
                assert!(now.contains(t), "{when}: {t:?} lost");
            }
            // Either the image arrived whole (fsck found nothing missing) or not at all.
            if let Some((_, d)) = now.iter().find(|(n, _)| n == "pulled:1") {
                assert_eq!(d, &big, "{when}");
                other.nobase(&["rmi", "pulled:1"]).ok();
            }
        }
        other.nobase(&["pull", source, "-t", "pulled:1"]).ok();
        assert_eq!(temps_in(&other.store()), 0, "{source}: temps not cleaned");
        other.nobase(&["fsck"]).ok();
        other.nobase(&["rmi", "pulled:1"]).ok();
    }
    // Pushing into a layout that already holds an image.
    let dest = env.path("dest");
    env.nobase(&["push", "keep:1", &format!("oci:{}:keep", dest.display())])
        .ok();
    for ms in MOMENTS {
        let when = format!("push killed after {ms} ms");
        kill_after(
            &env,
            &["push", "big:1", &format!("oci:{}:big", dest.display())],
            ms,
        );
        eprintln!("{when}: {} temp files", temps_in(&dest));
        only_stale_temps(&env, Some(&dest), &when);
        let now = tags(&env, Some(&dest));
        assert!(
            now.contains(&("keep".into(), keep.clone())),
            "{when}: {now:?}"
        );
        if let Some((_, d)) = now.iter().find(|(n, _)| n == "big") {
            assert_eq!(d, &big, "{when}");
        }
    }
    env.nobase(&["push", "big:1", &format!("oci:{}:big", dest.display())])
        .ok();
    assert_eq!(
        temps_in(&dest),
        0,
        "push did not clean the killed writers' temps"
    );
    env.nobase(&["fsck", dest.to_str().unwrap()]).ok();
    if let Some(d) = skopeo_digest(&format!("oci:{}:big", dest.display())) {
        assert_eq!(d, big);
    }
}

#[test]
fn sigkill_during_archive_writes_leaves_the_old_archive_or_none() {
    let env = Env::new();
    let (big, keep) = big_and_keep(&env);
    for kind in ["oci-archive", "docker-archive"] {
        let file = env.path(&format!("out-{kind}.tar"));
        let dest = match kind {
            "oci-archive" => format!("oci-archive:{}:img", file.display()),
            _ => format!("docker-archive:{}:img:1", file.display()),
        };
        // No archive yet: a killed write leaves none.
        for ms in MOMENTS {
            kill_after(&env, &["push", "big:1", &dest], ms);
            if file.exists() {
                // Only a finished write renames its file into place.
                if let Some(d) = skopeo_digest(&dest) {
                    assert!(kind == "docker-archive" || d == big, "{kind} after {ms} ms");
                }
                std::fs::remove_file(&file).unwrap();
            }
        }
        // An older archive there: a killed write leaves it byte for byte. A
        // docker-archive holding another image is never written over by a copy (push
        // refuses, as skopeo does); a build's -o replaces it (as `docker save -o`).
        env.nobase(&["push", "keep:1", &dest]).ok();
        let old = std::fs::read(&file).unwrap();
        let bin = hello_static();
        let add = format!("{}:/data/payload.bin", env.path("payload.bin").display());
        let over: Vec<&str> = if kind == "docker-archive" {
            env.nobase(&["push", "big:1", &dest]).code(1);
            assert_eq!(std::fs::read(&file).unwrap(), old);
            vec!["build", bin.to_str().unwrap(), "--add", &add, "-o", &dest]
        } else {
            vec!["push", "big:1", &dest]
        };
        for ms in MOMENTS {
            kill_after(&env, &over, ms);
            let dir = file.parent().unwrap();
            eprintln!("{kind} killed after {ms} ms: {} temp files", temps_in(dir));
            let now = std::fs::read(&file).unwrap();
            if now != old {
                // The write finished: the new archive is whole.
                if let Some(d) = skopeo_digest(&dest) {
                    assert!(kind == "docker-archive" || d == big, "{kind} after {ms} ms");
                }
                std::fs::remove_file(&file).unwrap();
                env.nobase(&["push", "keep:1", &dest]).ok();
            } else if let Some(d) = skopeo_digest(&dest) {
                assert!(
                    kind == "docker-archive" || d == keep,
                    "{kind} after {ms} ms"
                );
            }
        }
        // The next write succeeds and removes what the killed ones left beside it.
        env.nobase(&over).ok();
        assert_eq!(temps_in(file.parent().unwrap()), 0, "{kind}: temps left");
        env.nobase(&["check", &dest]).ok();
    }
}

#[test]
fn sigkill_during_garbage_collection_keeps_every_tagged_image() {
    let env = Env::new();
    let bin = hello_static();
    let b = bin.to_str().unwrap();
    // Many images sharing nothing but the program: many blobs to collect.
    for (n, ms) in MOMENTS.into_iter().enumerate() {
        for i in 0..6 {
            let data = env.path(&format!("data-{n}-{i}"));
            std::fs::write(&data, format!("{n} {i}").repeat(1000)).unwrap();
            let add = format!("{}:/data/x", data.display());
            build_json(&env, &[b, "--add", &add, "-t", &format!("gone{i}:{n}")]);
        }
        build_json(&env, &[b, "-t", &format!("kept:{n}")]);
        let kept_before: Vec<_> = tags(&env, None)
            .into_iter()
            .filter(|(t, _)| t.starts_with("kept:"))
            .collect();
        let gone: Vec<String> = (0..6).map(|i| format!("gone{i}:{n}")).collect();
        let mut args = vec!["rmi"];
        args.extend(gone.iter().map(String::as_str));
        kill_after(&env, &args, ms);
        let when = format!("rmi killed after {ms} ms");
        only_stale_temps(&env, None, &when);
        let now = tags(&env, None);
        for t in &kept_before {
            assert!(now.contains(t), "{when}: {t:?} lost");
        }
        // Finish what the killed rmi left (some tags may be gone already).
        for g in &gone {
            let r = env.nobase(&["rmi", g]);
            assert!(r.code == 0 || r.stderr.contains("no image"), "{}", r.stderr);
        }
    }
    let (code, report) = fsck(&env);
    assert_eq!(code, 0, "{report}");
    // Only the kept images' blobs remain: the collection finished after the kills.
    let blobs = blob_count(&env.store());
    let r = env.nobase(&["rmi", "kept:0"]).ok();
    assert!(!r.stderr.contains("deferred"), "{}", r.stderr);
    assert!(blob_count(&env.store()) <= blobs);
}

#[test]
fn parallel_builds_pulls_removals_and_fsck_repairs_lose_nothing() {
    let env = Env::new();
    let bin = hello_static();
    let b = bin.to_str().unwrap();
    // An image to pull, from a layout another store wrote.
    let other = Env::new();
    let data = other.path("data");
    std::fs::write(&data, "pulled data ".repeat(100_000)).unwrap();
    let add = format!("{}:/data/x", data.display());
    let src_digest = build_json(&other, &[b, "--add", &add, "-t", "src:1"])["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let src = other.path("layout");
    other
        .nobase(&["push", "src:1", &format!("oci:{}:img", src.display())])
        .ok();
    let src = format!("oci:{}:img", src.display());
    for i in 0..4 {
        build_json(&env, &[b, "-t", &format!("old:{i}")]);
    }
    // A reader that keeps parsing index.json while the writers run: never torn.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let index = env.store().join("index.json");
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let bytes = std::fs::read(&index).unwrap();
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("torn index.json ({e}): {bytes:?}"));
                reads += 1;
            }
            reads
        })
    };
    // Every command that opens the store also sweeps temp files whose writer is gone:
    // keep doing that while the writers run, so a writer that lets go of its temp file
    // before renaming it loses it.
    let sweeper = {
        let done = done.clone();
        let store = env.store();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let o = Command::new(nobase_bin())
                    .args(["images", "--json"])
                    .env("NOBASE_STORE", &store)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            }
        })
    };
    let mut children = Vec::new();
    let mut spawn = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = env
            .cmd(&a)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push((args, child));
    };
    for i in 0..6 {
        let mut a = vec![
            "build".to_string(),
            "-q".into(),
            b.into(),
            "-t".into(),
            format!("new:{i}"),
        ];
        if i % 2 == 0 {
            a.extend(["--add".into(), add.clone()]);
        }
        spawn(a);
        if i < 4 {
            spawn(vec!["rmi".into(), format!("old:{i}")]);
        }
        if i < 3 {
            spawn(vec![
                "pull".into(),
                src.clone(),
                "-t".into(),
                format!("pulled:{i}"),
            ]);
        }
        if i < 2 {
            spawn(vec!["fsck".into(), "--repair".into(), "--json".into()]);
            spawn(vec!["fsck".into(), "--json".into()]);
        }
    }
    for (args, c) in children {
        let o = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        if args[0] == "fsck" {
            // Concurrent writers are neither corrupt blobs nor missing ones; a temp file
            // caught between its creation and its lock is the only thing fsck may see.
            let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            for f in j["findings"].as_array().unwrap() {
                assert_eq!(f["code"], "stale-temp", "{args:?}: {f}");
            }
        } else {
            assert!(o.status.success(), "{args:?}: {stderr}");
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    sweeper.join().unwrap();
    assert!(reads > 0);
    let mut names: Vec<String> = tags(&env, None).into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "new:0", "new:1", "new:2", "new:3", "new:4", "new:5", "pulled:0", "pulled:1",
            "pulled:2"
        ]
    );
    for (n, d) in tags(&env, None) {
        if n.starts_with("pulled") {
            assert_eq!(d, src_digest);
        }
    }
    // No live blob was deleted, nothing is left half written.
    let (code, report) = fsck(&env);
    assert_eq!(code, 0, "{report}");
    assert_eq!(temps(&env), 0);
    if let Some(d) = skopeo_digest(&format!("oci:{}:pulled:0", env.store().display())) {
        assert_eq!(d, src_digest);
    }
}

/// Ctrl-C (or SIGTERM) while an archive or a store blob is being written: the process
/// ends by that signal, as before, and the temporary file it was writing is gone with
/// it, not left hidden beside the destination until some later write cleans it.
#[test]
fn an_interrupted_write_takes_its_temporary_file_with_it() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let bin = hello_static();
    // A large uncompressed layer (sparse on disk) makes the copy last long enough.
    let big = env.path("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let add = format!("{}:/big", big.display());
    let b = bin.to_str().unwrap();
    env.nobase(&[
        "build",
        b,
        "--add",
        &add,
        "--compression",
        "none",
        "-t",
        "big:1",
    ])
    .ok();
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    let temps_in = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".nobase-") && n.ends_with(".tmp"))
            .collect()
    };
    let mut judged = 0;
    for (sig, args, dir) in [
        (
            libc::SIGINT,
            vec![
                "push".to_string(),
                "big:1".into(),
                format!("oci-archive:{}/a.tar", out.display()),
            ],
            out.clone(),
        ),
        (
            libc::SIGTERM,
            vec![
                "build".to_string(),
                b.into(),
                "--add".into(),
                add.clone(),
                "--compression".into(),
                "none".into(),
                "-t".into(),
                "big:2".into(),
                "--source-date-epoch".into(),
                "7".into(),
            ],
            env.store(),
        ),
    ] {
        let mut child = env
            .cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let seen = loop {
            if !temps_in(&dir).is_empty() {
                break true;
            }
            if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let status = child.wait().unwrap();
        if !seen || status.signal() != Some(sig) {
            // It finished before the signal: nothing to judge on this machine.
            eprintln!("{args:?} ended before the signal ({status:?}); not judged");
            continue;
        }
        assert_eq!(temps_in(&dir), Vec::<String>::new(), "{args:?}");
        let archive = out.join("a.tar");
        if sig == libc::SIGINT && archive.exists() {
            // The signal came after the finished archive was renamed into place (a test
            // thread held up on a loaded machine): it must be whole, never half written.
            let whole = env.nobase(&["check", &format!("oci-archive:{}", archive.display())]);
            assert_eq!(
                whole.code, 0,
                "a half archive was written: {}",
                whole.stderr
            );
            std::fs::remove_file(&archive).unwrap();
        }
        judged += 1;
    }
    assert!(judged > 0, "every write ended before its signal");
    env.nobase(&["fsck"]).ok();
    // A signal the caller ignores (nohup, a shell's background job) stays ignored: the
    // write goes on to the end.
    let mut c = env.cmd(&[
        "push",
        "big:1",
        &format!("oci-archive:{}/b.tar", out.display()),
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: signal is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        c.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        })
    };
    let mut child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while temps_in(&out).is_empty()
        && child.try_wait().unwrap().is_none()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_micros(200));
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };
    assert!(
        child.wait().unwrap().success(),
        "an ignored SIGHUP ended the push"
    );
    assert!(out.join("b.tar").is_file());
}

#[test]
fn a_store_written_as_an_oci_layout_waits_for_its_garbage_collection() {
    // `nobase push IMG oci:$STORE:x` found blobs present, a concurrent `rmi` collected
    // them, and the tag then pointed at nothing (push exit 0, fsck failing). Writing
    // into any layout now holds the lock a collection takes: while one holds it (as
    // `flock` does here, exclusively, as `rmi` does), the push waits, then completes.
    if !have("flock") {
        return;
    }
    let env = store_with_hello();
    let other = format!("oci:{}:h", env.path("other").display());
    env.nobase(&["push", "h:1", &other]).ok();
    // Held until released below, however slow this machine is: each command must be
    // seen waiting for it, not merely not finished yet.
    let gc = hold_collection_lock(&env, "held", 600);
    let store_as_layout = format!("oci:{}:via", env.store().display());
    let mut push = env
        .cmd(&["push", &other, &store_as_layout])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A reader of the store waits too: a collection never runs under an image being
    // read (an rmi during a push failed it with "No such file or directory").
    let mut check = env
        .cmd(&["check", "h:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = format!("waiting for the lock on {}", env.store().display());
    for (what, child) in [("push", &mut push), ("check", &mut check)] {
        let said = stderr_lines(child).recv_timeout(Duration::from_secs(60));
        assert!(
            said.as_deref().is_ok_and(|l| l.starts_with(&waiting)),
            "{what} did not wait for the lock: {said:?}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what} ended while the lock was held"
        );
    }
    drop(gc);
    assert!(push.wait().unwrap().success());
    assert!(check.wait().unwrap().success());
    assert_eq!(fsck(&env).0, 0);
}

/// The lines a child writes to its (piped) stderr, read on a thread of their own, so
/// that a wait for one can time out instead of hanging the test.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            let _ = tx.send(l);
        }
    });
    lines
}

#[test]
fn blobs_no_image_uses_are_counted_by_fsck_and_collected_by_repair() {
    // A build that only pushes elsewhere keeps its blobs in the store (the blob cache);
    // with no tag to remove, no rmi ever collected them.
    let env = Env::new();
    let hello = hello_static();
    let out = format!("oci:{}:x", env.path("out").display());
    env.nobase(&["build", "-q", hello.to_str().unwrap(), "-o", &out])
        .ok();
    let blobs = || {
        std::fs::read_dir(env.store().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    assert_eq!(blobs(), 3);
    let (code, j) = fsck(&env);
    assert_eq!(code, 0, "unused blobs are not a fault: {j}");
    assert_eq!(j["unused"]["blobs"], 3, "{j}");
    assert_eq!(j["unused"]["removed"], false, "{j}");
    let r = env.nobase(&["fsck"]).ok();
    assert!(
        r.stderr
            .contains("3 blobs (330 KiB) no image uses: `nobase fsck --repair` deletes them"),
        "{}",
        r.stderr
    );
    let r = env.nobase(&["fsck", "--repair"]).ok();
    assert!(
        r.stderr.contains("deleted 3 blobs no image uses"),
        "{}",
        r.stderr
    );
    assert_eq!(blobs(), 0);
    // Images with tags keep theirs.
    env.nobase(&["build", "-q", hello.to_str().unwrap(), "-t", "k:1"])
        .ok();
    env.nobase(&["fsck", "--repair"]).ok();
    assert_eq!(blobs(), 3);
    assert_eq!(fsck(&env).1["unused"]["blobs"], 0);
}

#[test]
fn a_missing_blob_is_explained_not_a_bare_os_error() {
    // "opening blob sha256:… in STORE: No such file or directory (os error 2)".
    let env = Env::new();
    let hello = hello_static();
    let j = build_json(&env, &[hello.to_str().unwrap(), "-t", "m:1"]);
    let layer = j["layers"][0]["digest"].as_str().unwrap().to_string();
    let hex = layer.trim_start_matches("sha256:");
    std::fs::remove_file(env.store().join("blobs/sha256").join(hex)).unwrap();
    let r = env.nobase(&["unpack", "m:1", "b"]).code(3);
    assert!(
        r.stderr.contains(&format!(
            "blob {layer} is missing from {}: the image was removed while it was read (try again), or the layout is damaged (`nobase fsck` says)",
            env.store().display()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn a_push_into_a_layout_reports_the_blobs_it_holds() {
    // `push --json IMG oci:DIR` said 0 uploaded, 0 existing for the 3 blobs it wrote.
    let env = Env::new();
    let hello = hello_static();
    build_json(&env, &[hello.to_str().unwrap(), "-t", "p:1"]);
    let dest = format!("oci:{}:x", env.path("lay").display());
    let j = env.nobase(&["push", "--json", "p:1", &dest]).ok().json();
    assert_eq!(j["blobs"]["total"], 3, "{j}");
    assert!(j["blobs"]["bytes"].as_u64().unwrap() > 100_000, "{j}");
    assert!(j.get("bytes_uploaded").is_none(), "{j}");
}

#[test]
fn a_command_waiting_for_a_store_lock_says_which_process_holds_it() {
    // A command behind a lock held by a stopped process (a `nobase run` suspended with
    // Ctrl-Z, an `fsck --repair`) waited in silence. It says who holds the lock, that the
    // holder is stopped and how to resume it, then goes on once the lock is free.
    if !have("flock") {
        return;
    }
    let env = store_with_hello();
    let holder = hold_collection_lock(&env, "held", 600);
    let pid = holder.pid();
    // SAFETY: signals to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let mut check = env
        .cmd(&["check", "h:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut check);
    let said = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("check waited for the lock without saying so");
    assert!(
        said.starts_with(&format!(
            "waiting for the lock on {}: process {pid} (flock -x ",
            env.store().display()
        )),
        "{said}"
    );
    assert!(
        said.ends_with(&format!(
            "holds it and is stopped; resume it (fg in its shell, or kill -CONT {pid}) or end it"
        )),
        "{said}"
    );
    assert!(
        check.try_wait().unwrap().is_none(),
        "check did not wait for the lock"
    );
    drop(holder);
    assert!(check.wait().unwrap().success());
    assert!(lines.recv().is_err(), "nothing else on stderr");
    // Quiet: the same wait says nothing.
    let holder = hold_collection_lock(&env, "held-again", 1);
    let r = env.nobase(&["-q", "check", "h:1"]).ok();
    assert!(!r.stderr.contains("waiting"), "{}", r.stderr);
    holder.wait();
    // A lock passed on (taken by `flock`, which exits, kept by the `sleep` that inherited
    // the descriptor): the process that has it is named, not the one that took it. The
    // sleep holds it until it is killed below, so `check` finds it held however late it
    // starts.
    let marker = env.path("passed-on");
    let shell = Holder(
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "exec 9<{}; flock -x 9; touch {}; exec sleep 600",
                env.store().join("blobs").display(),
                marker.display()
            ))
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    while !marker.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut check = env
        .cmd(&["check", "h:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let said = stderr_lines(&mut check).recv_timeout(Duration::from_secs(60));
    assert_eq!(
        said.as_deref(),
        Ok(format!(
            "waiting for the lock on {}: process {} (sleep 600) holds it",
            env.store().display(),
            shell.pid()
        )
        .as_str()),
    );
    drop(shell);
    assert!(check.wait().unwrap().success());
}

/// A process holding the store's collection lock, in a process group of its own (so
/// the lock's holder and its shell end together). Dropped, the group is killed (and
/// resumed, if it was stopped) and reaped: the lock is free from then on.
struct Holder(std::process::Child);

impl Holder {
    fn pid(&self) -> libc::pid_t {
        self.0.id() as libc::pid_t
    }

    /// Waits for the holder to end on its own.
    fn wait(mut self) {
        let _ = self.0.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: signals to our own child's process group, which has not been reaped.
            unsafe {
                libc::kill(-self.pid(), libc::SIGKILL);
                libc::kill(-self.pid(), libc::SIGCONT);
            }
        }
        let _ = self.0.wait();
    }
}

/// Holds the store's collection lock (exclusively, as `rmi` takes it) in a `flock`
/// process of its own process group for `secs` seconds; returns once it is held.
fn hold_collection_lock(env: &Env, marker: &str, secs: u32) -> Holder {
    let held = env.path(marker);
    let holder = Holder(
        Command::new("flock")
            .arg("-x")
            .arg(env.store().join("blobs"))
            .arg("-c")
            .arg(format!("touch {}; sleep {secs}", held.display()))
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    while !held.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    holder
}

/// A store holding the static hello world as `h:1`.
fn store_with_hello() -> Env {
    let env = Env::new();
    let hello = hello_static();
    env.nobase(&["build", "-q", hello.to_str().unwrap(), "-t", "h:1"])
        .ok();
    env
}
