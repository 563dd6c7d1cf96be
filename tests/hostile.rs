//! Hostile inputs end to end. Image layouts that lie — digests that are paths, blobs and
//! `index.json` that are symlinks to host files, documents that are two kinds at once,
//! sizes past the caps, diff_ids that do not match, decompression bombs — go through
//! every reader (`check`, `tree`, `unpack`, `pull` and `push` copying between layouts);
//! tar streams that tar readers disagree on go through `tree` and `unpack` beside GNU
//! tar; corrupt ELF files go through `elf::parse`, `inspect`, `build` and, inside an
//! image, `check`. Each is refused with a one-line error (or contained), nothing panics,
//! memory and time stay bounded, and nothing outside the reader's own output is touched.
//!
//! Hostile *layers* (names, links, whiteouts) are in `check`, `tree` and `run`'s tests
//! (`refuses_hostile_layers`, `hostile_layers_write_nothing_outside_the_bundle`).

use crate::util::*;
use nobase::elf;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A crafted layout (one layer holding the static hello world at `/app/hello`, its
/// entrypoint) whose documents a case rewrites; every digest above a rewritten document
/// is kept consistent, so only the lie under test remains.
struct Lay {
    dir: PathBuf,
}

impl Lay {
    fn new(env: &Env, name: &str) -> Lay {
        let dir = env.path(name);
        craft_image(
            &dir,
            &json!({"ref": "latest", "config": {"Entrypoint": ["/app/hello"]},
                "layers": [[{"name": "app/hello", "from": hello_static(), "mode": 0o755}]]}),
        );
        Lay { dir }
    }

    fn reference(&self) -> String {
        format!("oci:{}:latest", self.dir.display())
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn put(&self, bytes: &[u8]) -> (String, u64) {
        let h = hex(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(&h), bytes).unwrap();
        (format!("sha256:{h}"), bytes.len() as u64)
    }

    fn json(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn index(&self) -> Value {
        Lay::json(&self.dir.join("index.json"))
    }

    fn set_index(&self, v: &Value) {
        std::fs::write(self.dir.join("index.json"), v.to_string()).unwrap();
    }

    fn manifest(&self) -> Value {
        Lay::json(&self.blob(self.index()["manifests"][0]["digest"].as_str().unwrap()))
    }

    fn set_manifest_bytes(&self, bytes: &[u8]) {
        let (d, n) = self.put(bytes);
        let mut i = self.index();
        i["manifests"][0]["digest"] = d.into();
        i["manifests"][0]["size"] = n.into();
        self.set_index(&i);
    }

    fn set_manifest(&self, m: &Value) {
        self.set_manifest_bytes(m.to_string().as_bytes());
    }

    fn config(&self) -> Value {
        Lay::json(&self.blob(self.manifest()["config"]["digest"].as_str().unwrap()))
    }

    fn set_config_bytes(&self, bytes: &[u8]) {
        let (d, n) = self.put(bytes);
        let mut m = self.manifest();
        m["config"]["digest"] = d.into();
        m["config"]["size"] = n.into();
        self.set_manifest(&m);
    }

    fn set_config(&self, c: &Value) {
        self.set_config_bytes(c.to_string().as_bytes());
    }

    fn layer(&self) -> String {
        self.manifest()["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Replaces blob `digest` by a symlink to a copy of it in `host` (same bytes, so
    /// only refusing symlinks stops a reader from using it).
    fn symlink_blob(&self, digest: &str, host: &Path) {
        let p = self.blob(digest);
        let copy = host.join(digest.trim_start_matches("sha256:"));
        std::fs::copy(&p, &copy).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&copy, &p).unwrap();
    }
}

/// A document padded with whitespace (still valid JSON) to `mib` MiB.
fn padded(doc: &Value, mib: usize) -> Vec<u8> {
    let mut b = doc.to_string().into_bytes();
    b.resize(mib << 20, b' ');
    b
}

/// A layer blob of a few MiB that inflates to `gib` GiB: one gzip member holding a tar
/// header and zeros, then the same 1 MiB of zeros as further members (readers must
/// read multi-member gzip, so they read all of it unless a cap stops them).
fn gzip_bomb(gib: u64) -> Vec<u8> {
    use std::io::Write;
    let member = |data: &[u8]| {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    };
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(gib << 30);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut first = h.as_bytes().to_vec();
    first.resize(1 << 20, 0);
    let rest = member(&vec![0u8; 1 << 20]);
    let mut out = member(&first);
    for _ in 1..(gib << 10) {
        out.extend_from_slice(&rest);
    }
    out
}

/// Runs `nobase ARGS` with its address space capped at 3 GiB, so an allocation sized
/// by a hostile header fails loudly instead of passing unnoticed on a large machine,
/// and with a generous time bound.
fn bounded(env: &Env, args: &[&str]) -> Run {
    let mut c = env.cmd(args);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 3 << 30,
                rlim_max: 3 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let r = run(&mut c);
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "nobase {args:?} took {:?}",
        started.elapsed()
    );
    assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    assert!(
        !r.stderr.contains("memory allocation"),
        "{args:?}: {}",
        r.stderr
    );
    r
}

/// Asserts a refusal: exit 3, one `nobase:` line naming the cause, nothing on stdout.
#[track_caller]
fn refused(r: &Run, what: &str, why: &str) {
    assert_eq!(r.code, 3, "{what}: expected a refusal\n{}", r.stderr);
    let last = r.stderr.trim_end().lines().last().unwrap_or("");
    assert!(last.starts_with("nobase: "), "{what}: {}", r.stderr);
    assert_eq!(
        r.stderr.trim_end().lines().count(),
        1,
        "{what}: {}",
        r.stderr
    );
    assert!(
        last.to_lowercase().contains(&why.to_lowercase()),
        "{what}: expected {why:?} in\n{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{what}: {}", r.stdout);
}

/// The readers. `docker-archive` writes one, which needs every layer uncompressed.
const READERS: [&str; 6] = ["check", "tree", "unpack", "pull", "push", "docker-archive"];

/// Which readers refuse a case: all of them, or only those that read layers (copies move
/// blobs verified by digest and do not open them, as skopeo does).
#[derive(Clone, Copy, PartialEq)]
enum By {
    All,
    LayerReaders,
    /// Only those that read a layer's tar entries (a docker-archive is written from the
    /// layer's bytes, never parsed).
    TarReaders,
}

type Mutate = fn(&Lay, &Path);

#[test]
fn hostile_layouts_are_refused_by_every_reader_and_touch_nothing() {
    let env = Env::new();
    let host = env.path("host");
    std::fs::create_dir(&host).unwrap();
    let untouched = host.join("untouched");
    std::fs::write(&untouched, "keep").unwrap();
    let cases: Vec<(&str, Mutate, By, &str)> = vec![
        (
            "index-digest-is-a-path",
            |l, _| {
                let mut i = l.index();
                i["manifests"][0]["digest"] = "sha256:../../../../etc/passwd".into();
                l.set_index(&i);
            },
            By::All,
            "digest",
        ),
        (
            "index-digest-short",
            |l, _| {
                let mut i = l.index();
                i["manifests"][0]["digest"] = "sha256:abc".into();
                l.set_index(&i);
            },
            By::All,
            "64 hex digits",
        ),
        (
            "index-digest-uppercase",
            |l, _| {
                let mut i = l.index();
                let d = i["manifests"][0]["digest"].as_str().unwrap().to_uppercase();
                i["manifests"][0]["digest"] = d.replace("SHA256", "sha256").into();
                l.set_index(&i);
            },
            By::All,
            "lowercase",
        ),
        (
            "layer-digest-is-a-path",
            |l, _| {
                let mut m = l.manifest();
                m["layers"][0]["digest"] = "sha256:../../../host/untouched".into();
                l.set_manifest(&m);
            },
            By::All,
            "digest",
        ),
        (
            "config-digest-other-algorithm",
            |l, _| {
                let mut m = l.manifest();
                m["config"]["digest"] = format!("sha512:{}", "a".repeat(128)).into();
                l.set_manifest(&m);
            },
            By::All,
            "sha256",
        ),
        (
            "layer-blob-is-a-symlink",
            |l, host| {
                l.symlink_blob(&l.layer(), host);
            },
            By::All,
            "layer",
        ),
        (
            "config-blob-is-a-symlink",
            |l, host| {
                l.symlink_blob(l.manifest()["config"]["digest"].as_str().unwrap(), host);
            },
            By::All,
            "blob",
        ),
        (
            "index-json-is-a-symlink",
            |l, host| {
                let p = l.dir.join("index.json");
                std::fs::copy(&p, host.join("index.json")).unwrap();
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink(host.join("index.json"), &p).unwrap();
            },
            By::All,
            "index.json",
        ),
        (
            "manifest-is-also-an-index",
            |l, _| {
                let mut m = l.manifest();
                m["manifests"] = json!([]);
                l.set_manifest(&m);
            },
            By::All,
            "both an index and a manifest",
        ),
        (
            "manifest-says-another-type",
            |l, _| {
                let mut m = l.manifest();
                m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into();
                l.set_manifest(&m);
            },
            By::All,
            "referenced as",
        ),
        (
            "manifest-referenced-as-an-index",
            |l, _| {
                let mut i = l.index();
                i["manifests"][0]["mediaType"] = "application/vnd.oci.image.index.v1+json".into();
                l.set_index(&i);
            },
            By::All,
            "referenced as",
        ),
        (
            "index-referenced-as-a-manifest",
            |l, _| {
                let top = l.index()["manifests"][0].clone();
                let inner = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [top]});
                let (d, n) = l.put(inner.to_string().as_bytes());
                let mut i = l.index();
                i["manifests"][0]["digest"] = d.into();
                i["manifests"][0]["size"] = n.into();
                l.set_index(&i);
            },
            By::All,
            "referenced as",
        ),
        (
            "more-diff-ids-than-layers",
            |l, _| {
                let mut c = l.config();
                let extra = c["rootfs"]["diff_ids"][0].clone();
                c["rootfs"]["diff_ids"].as_array_mut().unwrap().push(extra);
                l.set_config(&c);
            },
            By::All,
            "layers",
        ),
        (
            "manifest-longer-than-its-descriptor",
            |l, _| {
                let mut i = l.index();
                let n = i["manifests"][0]["size"].as_u64().unwrap();
                i["manifests"][0]["size"] = (n - 1).into();
                l.set_index(&i);
            },
            By::All,
            "longer than",
        ),
        (
            "layer-shorter-than-its-descriptor",
            |l, _| {
                let mut m = l.manifest();
                m["layers"][0]["size"] = (1u64 << 40).into();
                l.set_manifest(&m);
            },
            By::All,
            "descriptor says",
        ),
        (
            "manifest-of-100-mib",
            |l, _| {
                let m = l.manifest();
                l.set_manifest_bytes(&padded(&m, 100));
            },
            By::All,
            "limit",
        ),
        (
            "config-of-100-mib",
            |l, _| {
                let c = l.config();
                l.set_config_bytes(&padded(&c, 100));
            },
            By::All,
            "limit",
        ),
        (
            "index-json-of-100-mib",
            |l, _| {
                let i = l.index();
                std::fs::write(l.dir.join("index.json"), padded(&i, 100)).unwrap();
            },
            By::All,
            "too large",
        ),
        (
            "diff-id-does-not-match",
            |l, _| {
                let mut c = l.config();
                c["rootfs"]["diff_ids"][0] = format!("sha256:{}", "1".repeat(64)).into();
                l.set_config(&c);
            },
            // Copies check a layout's layers by their digests, as skopeo does (only a
            // docker-archive's layer.tar, which has no digest of its own, is
            // decompressed to check its diff_id on the way in).
            By::LayerReaders,
            "diff_id",
        ),
        (
            "layer-is-not-a-layer",
            |l, _| {
                let mut m = l.manifest();
                m["layers"][0]["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
                l.set_manifest(&m);
            },
            By::LayerReaders,
            "media type",
        ),
        (
            // The tar reader holds a long name whole: check and tree took 1.25 GB to
            // refuse a 400 MiB one, then printed it.
            "gnu-long-name-of-4-mib",
            |l, _| {
                let mut layer = block(
                    tar::EntryType::GNULongLink,
                    "././@LongLink",
                    4 << 20,
                    &vec![b'a'; 4 << 20],
                );
                layer.extend(block(tar::EntryType::Regular, "x", 1, b"x"));
                layer.extend([0u8; 1024]);
                let (d, n) = l.put(&layer);
                let mut m = l.manifest();
                m["layers"][0] = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": d, "size": n});
                l.set_manifest(&m);
                let mut c = l.config();
                c["rootfs"]["diff_ids"][0] = d.into();
                l.set_config(&c);
            },
            By::TarReaders,
            "exceed 1048576 bytes",
        ),
        (
            "gzip-bomb-of-2-gib",
            |l, _| {
                let (d, n) = l.put(&gzip_bomb(2));
                let mut m = l.manifest();
                m["layers"][0] = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d, "size": n});
                l.set_manifest(&m);
            },
            By::LayerReaders,
            "decompression bomb",
        ),
    ];
    let store_before = || env.nobase(&["images", "--json"]).ok().json().to_string();
    let images = store_before();
    for (name, mutate, by, why) in cases {
        let lay = Lay::new(&env, name);
        // The untouched layout is fine for every reader.
        if name == "index-digest-is-a-path" {
            bounded(&env, &["check", &lay.reference()]).ok();
        }
        mutate(&lay, &host);
        for reader in READERS {
            let bundle = env.path(&format!("bundle-{name}"));
            let out = env.path(&format!("out-{name}"));
            let tag = format!("copied-{name}:1");
            let args: Vec<String> = match reader {
                "unpack" => vec![
                    "unpack".into(),
                    lay.reference(),
                    bundle.display().to_string(),
                ],
                "pull" => vec!["pull".into(), lay.reference(), "-t".into(), tag.clone()],
                "push" => vec![
                    "push".into(),
                    lay.reference(),
                    format!("oci:{}:copy", out.display()),
                ],
                "docker-archive" => vec![
                    "push".into(),
                    lay.reference(),
                    format!("docker-archive:{}.tar:copy:1", out.display()),
                ],
                r => vec![r.into(), lay.reference()],
            };
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = bounded(&env, &args);
            let what = format!("{name} through {reader}");
            let layer_reader = matches!(reader, "check" | "tree" | "unpack" | "docker-archive");
            let tar_reader = matches!(reader, "check" | "tree" | "unpack");
            let refusing = match by {
                By::All => true,
                By::LayerReaders => layer_reader,
                By::TarReaders => tar_reader,
            };
            if refusing {
                refused(&r, &what, why);
                assert!(!bundle.exists(), "{what}: a bundle was left");
                assert!(
                    !out.with_extension("tar").exists(),
                    "{what}: an archive was left"
                );
                assert_eq!(store_before(), images, "{what}: the store changed");
                if reader == "push" && out.join("index.json").exists() {
                    let i = Lay::json(&out.join("index.json"));
                    assert_eq!(i["manifests"], json!([]), "{what}: an image was written");
                }
            } else {
                assert_eq!(
                    r.code, 0,
                    "{what}: a copy should pass blobs on\n{}",
                    r.stderr
                );
                if reader == "pull" {
                    env.nobase(&["rmi", &tag]).ok();
                }
            }
            assert_eq!(std::fs::read(&untouched).unwrap(), b"keep", "{what}");
            let _ = std::fs::remove_dir_all(&bundle);
        }
        // Whatever the readers did, the crafted layout is as it was made.
        let _ = std::fs::remove_dir_all(&lay.dir);
    }
    // The host copies the symlinks pointed at were only ever read.
    assert_eq!(std::fs::read(&untouched).unwrap(), b"keep");
}

// ---------------------------------------------------------------------------------
// Corrupt ELF files.

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The offset of the first program header of type `p_type` (ELF64 little-endian).
fn phdr(b: &[u8], p_type: u32) -> usize {
    let (phoff, phnum) = (le64(b, 32) as usize, u16::from_le_bytes([b[56], b[57]]));
    (0..phnum as usize)
        .map(|i| phoff + i * 56)
        .find(|&at| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) == p_type)
        .expect("program header present")
}

/// The first `len` bytes of a buffer, without copying it for every cut.
struct Cut<'a>(&'a [u8], usize);

impl elf::ReadAt for Cut<'_> {
    fn size(&self) -> u64 {
        self.1 as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0[..self.1].read_exact_at(offset, buf)
    }
}

/// A file that claims to be enormous (a sparse file, a lying reader): its first bytes
/// are `head`, everything after reads as `fill`.
struct Huge {
    head: Vec<u8>,
    fill: u8,
}

impl elf::ReadAt for Huge {
    fn size(&self) -> u64 {
        1 << 62
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| self.head.get(o + i))
                .copied()
                .unwrap_or(self.fill);
        }
        Ok(())
    }
}

/// A small real program: a dynamically linked x86-64 PIE with 3, DT_NEEDED,
/// version needs and section headers at its end (coreutils' `true`), or None.
fn exe() -> Option<Vec<u8>> {
    let b = std::fs::read("/bin/true")
        .ok()
        .filter(|b| b.len() > 64 && b.starts_with(b"\x7fELF\x02\x01") && b[18] == 62);
    if b.is_none() {
        eprintln!("skipping: /bin/true is not an x86-64 ELF here");
    }
    b
}

/// File offsets of the dynamic entries with tag `tag`.
fn dyn_entries(b: &[u8], tag: u64) -> Vec<usize> {
    let ph = phdr(b, 2);
    let (off, size) = (le64(b, ph + 8) as usize, le64(b, ph + 32) as usize);
    (off..off + size)
        .step_by(16)
        .take_while(|&at| le64(b, at) != 0)
        .filter(|&at| le64(b, at) == tag)
        .collect()
}

#[test]
fn every_truncation_of_the_headers_and_tables_is_an_error() {
    let Some(exe) = exe() else { return };
    let full = elf::parse(&exe).expect("/bin/true parses");
    assert_eq!(full.class, 64);
    assert!(full.interpreter.is_some() && !full.needed.is_empty());
    // Everything the reader needs lies in these regions: cut anywhere inside one (or
    // before its end) and the file cannot be read — an error naming the cause.
    let interp = phdr(&exe, 3);
    let dynamic = phdr(&exe, 2);
    let phend = le64(&exe, 32) as usize + 56 * u16::from_le_bytes([exe[56], exe[57]]) as usize;
    let needed_end = [interp, dynamic]
        .iter()
        .map(|&ph| (le64(&exe, ph + 8) + le64(&exe, ph + 32)) as usize)
        .max()
        .unwrap()
        .max(phend);
    let regions = [
        (0, phend + 4096),
        (le64(&exe, interp + 8) as usize, needed_end),
        (le64(&exe, dynamic + 8) as usize, needed_end),
    ];
    let cuts: std::collections::BTreeSet<usize> = regions
        .iter()
        .flat_map(|&(start, end)| start..end.min(exe.len()))
        .collect();
    assert!(cuts.len() > 8192, "{}", cuts.len());
    for &cut in &cuts {
        {
            match elf::parse(&Cut(&exe, cut)) {
                Err(e) if cut < needed_end => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("outside the file")
                            || msg.contains("not an ELF")
                            || msg.contains("NUL-terminated")
                            || msg.contains("DT_STRTAB")
                            || msg.contains("string table"),
                        "cut at {cut}: {msg}"
                    );
                }
                Ok(_) if cut < needed_end => panic!("cut at {cut} of {needed_end} parsed"),
                _ => {}
            }
        }
    }
    // The section headers sit at the end: without them the facts they carry are
    // lost, nothing else.
    let shoff = le64(&exe, 40) as usize;
    for cut in shoff..exe.len() {
        let info = elf::parse(&Cut(&exe, cut)).expect("sections are optional");
        assert_eq!(info.needed, full.needed);
    }
}

/// Where the patched structures are: program headers of 3 and 2,
/// section header 0.
struct At {
    interp: usize,
    dynamic: usize,
    sh: usize,
}

#[test]
fn corrupt_headers_are_errors_not_panics() {
    let Some(exe) = exe() else { return };
    let at = At {
        interp: phdr(&exe, 3),
        dynamic: phdr(&exe, 2),
        sh: le64(&exe, 40) as usize,
    };
    type Patch = fn(&mut Vec<u8>, &At);
    // (what, patch, Some(error text) when it must fail)
    let cases: &[(&str, Patch, Option<&str>)] = &[
        (
            "e_phoff = 2^64-1",
            |b, _| put64(b, 32, u64::MAX),
            Some("outside"),
        ),
        (
            "e_phoff past the end",
            |b, _| {
                let n = b.len() as u64;
                put64(b, 32, n)
            },
            Some("outside"),
        ),
        ("e_shoff = 2^64-1", |b, _| put64(b, 40, u64::MAX), None),
        (
            "e_phentsize too small",
            |b, _| b[54] = 8,
            Some("need exactly 56"),
        ),
        (
            "e_phentsize 0xffff",
            |b, _| b[54..56].copy_from_slice(&[0xff, 0xff]),
            Some("need exactly"),
        ),
        (
            "PN_XNUM, section 0 says 2^32-1",
            |b, a| {
                b[56..58].copy_from_slice(&[0xff, 0xff]);
                b[a.sh + 44..a.sh + 48].copy_from_slice(&u32::MAX.to_le_bytes());
            },
            Some("outside"),
        ),
        (
            "PN_XNUM without section headers",
            |b, _| {
                b[56..58].copy_from_slice(&[0xff, 0xff]);
                put64(b, 40, 0);
            },
            Some("outside"),
        ),
        (
            "e_shnum 0, section 0 says 2^64-1 sections",
            |b, a| {
                b[60..62].copy_from_slice(&[0, 0]);
                put64(b, a.sh + 32, u64::MAX);
            },
            None,
        ),
        (
            "SHN_XINDEX, section 0 points at no section",
            |b, a| {
                b[62..64].copy_from_slice(&[0xff, 0xff]);
                b[a.sh + 40..a.sh + 44].copy_from_slice(&u32::MAX.to_le_bytes());
            },
            None,
        ),
        (
            "e_shstrndx out of range",
            |b, _| b[62..64].copy_from_slice(&[0xfe, 0xff]),
            None,
        ),
        (
            "section sizes much larger than the file",
            |b, a| {
                let n = u16::from_le_bytes([b[60], b[61]]) as usize;
                for i in 1..n {
                    put64(b, a.sh + i * 64 + 32, u64::MAX - i as u64);
                }
            },
            None,
        ),
        (
            "3 unterminated",
            |b, a| {
                let (off, len) = (
                    le64(b, a.interp + 8) as usize,
                    le64(b, a.interp + 32) as usize,
                );
                b[off..off + len].fill(b'x');
            },
            Some("NUL-terminated"),
        ),
        (
            "3 past EOF",
            |b, a| {
                let n = b.len() as u64;
                put64(b, a.interp + 8, n + 100)
            },
            Some("outside"),
        ),
        (
            "3 at 2^64-16",
            |b, a| put64(b, a.interp + 8, u64::MAX - 15),
            Some("outside"),
        ),
        (
            "3 of 2^64-1 bytes",
            |b, a| put64(b, a.interp + 32, u64::MAX),
            None,
        ),
        (
            "2 past EOF",
            |b, a| put64(b, a.dynamic + 8, u64::MAX - 8),
            Some("outside"),
        ),
        (
            "2 of 2^64-1 bytes",
            |b, a| put64(b, a.dynamic + 32, u64::MAX),
            Some("outside"),
        ),
        (
            "DT_NEEDED offsets out of range",
            |b, _| {
                for at in dyn_entries(b, 1) {
                    put64(b, at + 8, u64::MAX - 1);
                }
            },
            Some("DT_NEEDED"),
        ),
        (
            "DT_STRSZ of 2^64-1",
            |b, _| {
                for at in dyn_entries(b, 10) {
                    put64(b, at + 8, u64::MAX);
                }
            },
            Some("outside"),
        ),
        (
            "DT_STRTAB unmapped",
            |b, _| {
                for at in dyn_entries(b, 5) {
                    put64(b, at + 8, u64::MAX);
                }
            },
            Some("DT_STRTAB"),
        ),
        (
            "DT_VERNEED count 2^64-1 at the string table",
            |b, _| {
                for at in dyn_entries(b, 0x6fff_ffff) {
                    put64(b, at + 8, u64::MAX);
                }
            },
            None,
        ),
        (
            "every 1 at the top of the address space",
            |b, _| {
                let (phoff, phnum) = (le64(b, 32) as usize, u16::from_le_bytes([b[56], b[57]]));
                for i in 0..phnum as usize {
                    let at = phoff + i * 56;
                    if u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) == 1 {
                        put64(b, at + 8, u64::MAX - 16);
                        put64(b, at + 32, u64::MAX);
                    }
                }
            },
            None,
        ),
    ];
    for (what, patch, want) in cases {
        let mut b = exe.clone();
        patch(&mut b, &at);
        let started = std::time::Instant::now();
        let res = elf::parse(&b);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{what}: slow"
        );
        match (res, want) {
            (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{what}: {e}"),
            (Ok(_), Some(w)) => panic!("{what}: parsed, expected an error about {w}"),
            _ => {}
        }
    }
}

#[test]
fn huge_claimed_sizes_cost_no_memory() {
    // An ELF header over a file that claims 4 EiB: tables may lie inside the "file"
    // yet never be read whole past the cap.
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    (h[4], h[5], h[16], h[18]) = (2, 1, 2, 62);
    put64(&mut h, 32, 64); // e_phoff
    put64(&mut h, 40, 1 << 40); // e_shoff
    h[54] = 56;
    h[56..58].copy_from_slice(&[0xff, 0xff]); // PN_XNUM
    h[58] = 64;
    for fill in [0u8, 0xff, 0x41] {
        let src = Huge {
            head: h.clone(),
            fill,
        };
        // Section 0 (all `fill`) gives the real counts: 0 or 2^32-1 program headers.
        match elf::parse(&src) {
            Ok(_) => {}
            Err(e) => assert!(
                matches!(
                    e,
                    elf::ElfError::Invalid(_) | elf::ElfError::OutOfBounds { .. }
                ),
                "{e}"
            ),
        }
    }
}

/// Corrupt variants of a dynamically linked hello world, each with the part of the
/// error message that names its cause.
fn bad_elves(env: &Env) -> Vec<(PathBuf, &'static str)> {
    let good = std::fs::read(hello_dynamic()).unwrap();
    let interp = phdr(&good, 3);
    let dynamic = phdr(&good, 2);
    let (doff, dsize) = (le64(&good, dynamic + 8) as usize, le64(&good, dynamic + 32));
    let mut out = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>, why: &'static str| {
        let p = env.path(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        out.push((p, why));
    };
    // Truncated inside the ELF header, the program headers, PT_INTERP, the dynamic section.
    for cut in [
        20,
        63,
        64 + 56 * 2 + 7,
        le64(&good, interp + 8) as usize + 3,
        doff + 17,
    ] {
        add(
            &format!("cut-at-{cut}"),
            good[..cut].to_vec(),
            "outside the file",
        );
    }
    let mut b = good.clone();
    put64(&mut b, 32, u64::MAX); // e_phoff
    add("phoff-max", b, "outside the file");
    let mut b = good.clone();
    b[56..58].copy_from_slice(&[0xff, 0xff]); // PN_XNUM, section 0 says 0
    add("pn-xnum", b, "no loadable segment");
    let mut b = good.clone();
    b[54..56].copy_from_slice(&[0xff, 0xff]); // e_phentsize
    add("phentsize", b, "need exactly 56");
    let mut b = good.clone();
    let (ioff, ilen) = (
        le64(&b, interp + 8) as usize,
        le64(&b, interp + 32) as usize,
    );
    b[ioff..ioff + ilen].fill(b'x');
    add("interp-unterminated", b, "NUL-terminated");
    let mut b = good.clone();
    let n = b.len() as u64;
    put64(&mut b, interp + 8, n + 4096);
    add("interp-past-eof", b, "outside the file");
    let mut b = good.clone();
    for at in (doff..doff + dsize as usize).step_by(16) {
        if le64(&b, at) == 1 {
            put64(&mut b, at + 8, u64::MAX >> 1); // DT_NEEDED's name offset
        }
    }
    add("needed-out-of-range", b, "DT_NEEDED");
    let mut b = good.clone();
    put64(&mut b, dynamic + 32, u64::MAX); // PT_DYNAMIC's size
    add("dynamic-huge", b, "outside the file");
    out
}

#[test]
fn corrupt_elf_files_get_one_line_errors_from_inspect_and_build() {
    let env = Env::new();
    let elves = bad_elves(&env);
    // A static program at the start of a sparse 1 TiB file, its section header table
    // moved into the sparse middle where section 0 claims 2^64-1 sections and a name
    // table at index 2^32-1: nothing may be read whole, memory stays small (the
    // address-space cap would stop it) and the program is still described.
    let huge = env.path("sparse-1tib");
    {
        let mut h = std::fs::read(hello_static()).unwrap();
        put64(&mut h, 40, 1 << 39); // e_shoff, in the sparse middle
        h[60..62].copy_from_slice(&[0, 0]); // e_shnum 0: section 0's sh_size counts
        h[62..64].copy_from_slice(&[0xff, 0xff]); // SHN_XINDEX: section 0's sh_link
        let f = std::fs::File::create(&huge).unwrap();
        f.set_len(1 << 40).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &h, 0).unwrap();
        let mut sec0 = [0xffu8; 64];
        sec0[..4].fill(0);
        std::os::unix::fs::FileExt::write_all_at(&f, &sec0, 1 << 39).unwrap();
    }
    let r = bounded(&env, &["inspect", "--json", huge.to_str().unwrap()]).ok();
    assert_eq!(r.json()["type"], "static", "{}", r.stdout);
    for (path, why) in &elves {
        let p = path.to_str().unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let r = bounded(&env, &["inspect", p]);
        refused(&r, &format!("inspect {name}"), why);
        assert!(r.stderr.contains(name), "{}", r.stderr);
        // With --json, stdout holds the same refusal as a document.
        let r = bounded(&env, &["inspect", "--json", p]);
        let said = r.stderr.trim_end().strip_prefix("nobase: ").unwrap_or("");
        assert!(said.contains(name) && said.contains(why), "{}", r.stderr);
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert_eq!(
            r.json(),
            json!({"error": {"exit_code": 3, "message": said}}),
            "inspect --json {name}"
        );
        let r = bounded(&env, &["build", p, "-t", "bad:1"]);
        refused(&r, &format!("build {name}"), why);
        assert!(r.stderr.contains(name), "{}", r.stderr);
    }
    assert_eq!(blob_count(&env.store()), 0);
}

#[test]
fn corrupt_elf_files_inside_an_image_are_problems_for_check() {
    let env = Env::new();
    let elves = bad_elves(&env);
    let hello = hello_dynamic();
    let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6");
    let loader = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2");
    let (Ok(libc), Ok(loader)) = (libc, loader) else {
        eprintln!("skipping: this machine has no x86-64 glibc");
        return;
    };
    for (i, (bad, _)) in elves.iter().enumerate() {
        let name = bad.file_name().unwrap().to_str().unwrap();
        // The corrupt file as the entrypoint, and as the C library of a good program.
        for (role, layer) in [
            (
                "entrypoint",
                json!([{"name": "app/hello", "from": bad, "mode": 0o755}]),
            ),
            (
                "library",
                json!([
                    {"name": "app/hello", "from": hello, "mode": 0o755},
                    {"name": "lib64/ld-linux-x86-64.so.2", "from": loader, "mode": 0o755},
                    {"name": "lib/x86_64-linux-gnu/libc.so.6", "from": bad, "mode": 0o755},
                ]),
            ),
        ] {
            let r = craft_image(
                &env.path(&format!("img-{i}-{role}")),
                &json!({"ref": "latest", "config": {"Entrypoint": ["/app/hello"]}, "layers": [layer]}),
            );
            let c = bounded(&env, &["check", "--json", &r]);
            let what = format!("{name} as the {role}");
            assert_eq!(c.code, 1, "{what}: {}\n{}", c.stdout, c.stderr);
            let j = c.json();
            let problems = j["problems"].to_string();
            let file = if role == "entrypoint" {
                "/app/hello"
            } else {
                "libc.so.6"
            };
            assert!(problems.contains(file), "{what}: {problems}");
        }
    }
    // The good library in the same place passes, so the problems above are the files'.
    let r = craft_image(
        &env.path("img-good"),
        &json!({"ref": "latest", "config": {"Entrypoint": ["/app/hello"]}, "layers": [[
            {"name": "app/hello", "from": hello, "mode": 0o755},
            {"name": "lib64/ld-linux-x86-64.so.2", "from": loader, "mode": 0o755},
            {"name": "lib/x86_64-linux-gnu/libc.so.6", "from": libc, "mode": 0o755},
        ]]}),
    );
    bounded(&env, &["check", &r]).ok();
}

// ---------------------------------------------------------------------------------
// Tar streams that tar readers have disagreed about.

/// One 512-byte header block (and its data, padded) of any type, unvalidated.
fn block(kind: tar::EntryType, name: &str, size_field: u64, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size_field);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A PAX record `key=value` with its length prefix.
fn pax(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while format!("{n}{body}").len() != n {
        n += 1;
    }
    format!("{n}{body}").into_bytes()
}

/// The files GNU tar lists in `layer` (name and size), sorted.
fn gnu_tar_list(env: &Env, layer: &[u8]) -> Vec<(String, u64)> {
    let p = env.path("listed.tar");
    std::fs::write(&p, layer).unwrap();
    let r = run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvf")
        .arg(&p))
    .ok();
    let mut out: Vec<(String, u64)> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[5..].join(" "), f[2].parse().unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn tar_headers_readers_disagree_on_read_as_gnu_tar_or_are_refused() {
    let env = Env::new();
    let end = vec![0u8; 1024];
    let xheader = |records: &[u8]| {
        block(
            tar::EntryType::XHeader,
            "././@PaxHeader",
            records.len() as u64,
            records,
        )
    };
    let layers: Vec<(&str, Vec<u8>)> = vec![
        (
            // CVE-2025-62518: the ustar size says 0, the PAX size 512; a reader using
            // the ustar size would take the next 512 bytes for a header ("smuggled").
            "pax-size-over-ustar-size",
            [
                xheader(&pax("size", "512")),
                block(tar::EntryType::Regular, "inner", 0, &[]),
                block(tar::EntryType::Regular, "smuggled", 5, b"")[..512].to_vec(),
                block(tar::EntryType::Regular, "after", 5, b"after"),
                end.clone(),
            ]
            .concat(),
        ),
        (
            // A PAX path and then a GNU long name for the same entry: GNU tar takes
            // the PAX path, Go's archive/tar (runtimes) and the tar crate the GNU name.
            "pax-path-then-gnu-longname",
            [
                xheader(&pax("path", "from-pax")),
                block(
                    tar::EntryType::GNULongName,
                    "././@LongLink",
                    9,
                    b"from-gnu\0",
                ),
                block(tar::EntryType::Regular, "short", 3, b"abc"),
                block(tar::EntryType::Regular, "last", 1, b"z"),
                end.clone(),
            ]
            .concat(),
        ),
        (
            "gnu-longname-then-pax-path",
            [
                block(
                    tar::EntryType::GNULongName,
                    "././@LongLink",
                    9,
                    b"from-gnu\0",
                ),
                xheader(&pax("path", "from-pax")),
                block(tar::EntryType::Regular, "short", 3, b"abc"),
                block(tar::EntryType::Regular, "last", 1, b"z"),
                end.clone(),
            ]
            .concat(),
        ),
        (
            // GNU tar's sparse files in PAX format 1.0 (`tar --sparse --format=posix`):
            // runtimes see /app, 1024 bytes; the tar crate a file GNUSparseFile.1/app
            // holding the chunk map and "hello".
            "pax-sparse-1.0",
            [
                xheader(
                    &[
                        pax("GNU.sparse.major", "1"),
                        pax("GNU.sparse.minor", "0"),
                        pax("GNU.sparse.name", "app"),
                        pax("GNU.sparse.realsize", "1024"),
                    ]
                    .concat(),
                ),
                block(
                    tar::EntryType::Regular,
                    "GNUSparseFile.1/app",
                    517,
                    &[&b"1\n0\n5\n"[..], &[0u8; 506], b"hello"].concat(),
                ),
                end.clone(),
            ]
            .concat(),
        ),
        (
            "pax-linkpath-then-gnu-longlink",
            [
                block(tar::EntryType::Regular, "target", 1, b"t"),
                xheader(&pax("linkpath", "target")),
                block(tar::EntryType::GNULongLink, "././@LongLink", 6, b"other\0"),
                block(tar::EntryType::Symlink, "link", 0, &[]),
                end.clone(),
            ]
            .concat(),
        ),
    ];
    for (name, layer) in layers {
        let gnu = gnu_tar_list(&env, &layer);
        let lay = Lay::new(&env, name);
        let (d, n) = lay.put(&layer);
        let mut m = lay.manifest();
        m["layers"][0] =
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n});
        lay.set_manifest(&m);
        let mut c = lay.config();
        c["rootfs"]["diff_ids"][0] = d.clone().into();
        lay.set_config(&c);
        if name != "pax-size-over-ustar-size" {
            // Where readers disagree, every reader of nobase refuses.
            let bundle = env.path(&format!("refused-{name}"));
            let b = bundle.display().to_string();
            let reference = lay.reference();
            for args in [
                vec!["check", &reference],
                vec!["tree", &reference],
                vec!["unpack", &reference, &b],
            ] {
                let r = bounded(&env, &args);
                refused(
                    &r,
                    &format!("{name} through {}", args[0]),
                    "resolve differently",
                );
                assert!(!bundle.exists());
            }
            continue;
        }
        let r = bounded(&env, &["tree", "--json", &lay.reference()]).ok();
        let mut ours: Vec<(String, u64)> = r.json()["merged"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == "file")
            .map(|f| {
                (
                    f["path"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches('/')
                        .to_string(),
                    f["size"].as_u64().unwrap(),
                )
            })
            .collect();
        ours.sort();
        assert_eq!(ours, gnu, "{name}: nobase tree and GNU tar disagree");
        assert!(
            !ours.iter().any(|(p, _)| p == "smuggled"),
            "{name}: {ours:?}"
        );
        // The extractor agrees with the reader.
        let bundle = env.path(&format!("bundle-{name}"));
        bounded(
            &env,
            &["unpack", &lay.reference(), bundle.to_str().unwrap()],
        )
        .ok();
        for (p, size) in &gnu {
            let m = std::fs::metadata(bundle.join("rootfs").join(p)).unwrap();
            assert_eq!(m.len(), *size, "{name}: {p}");
        }
    }
}

// ---------------------------------------------------------------------------------
// Layers whose content is not what the config says.

/// Writes a docker-save archive whose one `layer.tar` is gzip-compressed (as `docker
/// save` of a containerd-store image writes it) and holds other bytes than the config's
/// diff_id names. Returns the archive, the diff_id and the sha256 of what is there.
fn docker_archive_with_wrong_gzip_layer(env: &Env) -> (PathBuf, String, String) {
    let out = env.path("baddiff.tar");
    let script = r#"
import gzip, hashlib, io, json, sys, tarfile
def tar(content):
    buf = io.BytesIO(); t = tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT)
    ti = tarfile.TarInfo("etc/passwd"); ti.size = len(content); ti.mtime = 0
    t.addfile(ti, io.BytesIO(content)); t.close(); return buf.getvalue()
sha = lambda b: hashlib.sha256(b).hexdigest()
good, bad = tar(b"root:x:0:0::/:/bin/sh\n"), tar(b"ROOT:x:0:0::/:/bin/sh\n")
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(good)]}}).encode()
files = {sha(cfg) + ".json": cfg, "l1/layer.tar": gzip.compress(bad, mtime=0),
         "manifest.json": json.dumps([{"Config": sha(cfg) + ".json", "RepoTags": ["bad/diff:1"],
                                       "Layers": ["l1/layer.tar"]}]).encode()}
with tarfile.open(sys.argv[1], "w") as tf:
    for n, d in files.items():
        ti = tarfile.TarInfo(n); ti.size = len(d); tf.addfile(ti, io.BytesIO(d))
print("sha256:" + sha(good), "sha256:" + sha(bad))
"#;
    let r = run(Command::new("python3").args(["-c", script]).arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut digests = r.stdout.split_whitespace().map(str::to_string);
    (out, digests.next().unwrap(), digests.next().unwrap())
}

#[test]
fn pull_and_push_refuse_a_compressed_docker_archive_layer_that_is_not_its_diff_id() {
    let env = Env::new();
    let (archive, want, found) = docker_archive_with_wrong_gzip_layer(&env);
    let src = format!("docker-archive:{}", archive.display());
    // Readers refused it already; skopeo copy does too ("Digest did not match").
    env.nobase(&["tree", &src]).code(3);
    // pull passed it on, and fsck then called the store clean.
    let r = env.nobase(&["pull", &src]).code(3);
    assert!(
        r.stderr.contains("diff_id") && r.stderr.contains(&want) && r.stderr.contains(&found),
        "{}",
        r.stderr
    );
    // Nothing written: no tag, no blob.
    assert_eq!(env.nobase(&["images", "--json"]).ok().json(), json!([]));
    assert_eq!(blob_count(&env.store()), 0);
    env.nobase(&["fsck"]).ok();

    // Pushed to a registry, which checks a blob by its digest alone and would have
    // taken the broken image: refused before anything is named there.
    let Some(reg) = crate::registry::Registry::start(crate::registry::Auth::None) else {
        return;
    };
    let dest = format!("docker://{}/bad/diff:1", reg.host());
    let r = env.nobase(&["push", &src, &dest]).code(3);
    assert!(
        r.stderr.contains("diff_id") && r.stderr.contains(&want) && r.stderr.contains(&found),
        "{}",
        r.stderr
    );
    if have("skopeo") {
        let inspect = run(Command::new("skopeo").args(["inspect", "--tls-verify=false", &dest]));
        assert_ne!(
            inspect.code, 0,
            "the registry has the image: {}",
            inspect.stdout
        );
    }
}
