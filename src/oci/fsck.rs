//! `fsck` for a layout: re-hash every blob, find what tags reference but is missing,
//! and (with repair) drop corrupt blobs and temporary files left by killed writers.

use super::{read_image, Layout};
use crate::digest::{Digest, HashReader};
use crate::error::{IoContext, Result};
use crate::fsutil;
use std::collections::BTreeSet;
use std::io;

/// One thing wrong with a layout.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// `corrupt-blob`, `not-a-blob`, `missing-blob`, `unreadable-image`, `stale-temp`.
    pub code: &'static str,
    /// The file or reference concerned.
    pub path: String,
    /// One sentence.
    pub message: String,
    /// True when `--repair` removed it.
    pub repaired: bool,
}

/// What `fsck` found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub blobs: usize,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Index entries checked.
    pub images: usize,
    /// Problems.
    pub findings: Vec<Finding>,
    /// Sound blobs that no image of the index uses (count, bytes): not a fault, but
    /// space; `None` when an image could not be read (its blobs are unknown).
    #[serde(skip)]
    pub unreferenced: Option<(usize, u64)>,
}

impl FsckReport {
    /// True when nothing is wrong (or everything wrong was repaired).
    pub fn clean(&self) -> bool {
        self.findings.iter().all(|f| f.repaired)
    }
}

/// Checks `layout`. With `repair`, removes corrupt blobs and stale temporary files (an
/// image whose blob is removed then reports the blob missing: rebuild or pull it again).
pub fn fsck(layout: &Layout, repair: bool) -> Result<FsckReport> {
    // The blob directory's lock, as the store's writers and garbage collector take it:
    // shared to check (garbage collection waits, so a blob it removes is never reported
    // missing), exclusive to repair (no build, pull or collection is writing, so the file
    // found corrupt is the one removed, never a good copy renamed over it meanwhile).
    let blobs = layout.root().join("blobs");
    let guard = fsutil::open_dir(&blobs).io(|| format!("opening {}", blobs.display()))?;
    let mode = if repair {
        fsutil::Lock::Exclusive
    } else {
        fsutil::Lock::Shared
    };
    fsutil::flock_or_say(&guard, mode, layout.root())
        .io(|| format!("locking {}", blobs.display()))?;
    let mut r = FsckReport::default();
    // Temporary files whose writer is gone (their lock is free).
    for e in std::fs::read_dir(layout.root())
        .io(|| format!("listing {}", layout.root().display()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".nobase-") && name.ends_with(".tmp") {
            let f = std::fs::File::open(e.path());
            let stale = f
                .as_ref()
                .map(|f| fsutil::flock(f, fsutil::Lock::Exclusive, false).unwrap_or(false))
                .unwrap_or(false);
            if stale {
                let repaired = repair && std::fs::remove_file(e.path()).is_ok();
                r.findings.push(Finding {
                    code: "stale-temp",
                    path: e.path().display().to_string(),
                    message: format!(
                        "{}: a temporary file left by an interrupted write",
                        e.path().display()
                    ),
                    repaired,
                });
            }
        }
    }
    // What the tags need, read before the blobs are listed: writers store blobs before
    // they tag them, so every blob of this snapshot is already in place below (and the
    // lock keeps garbage collection from removing it), while blobs written after the
    // listing cannot make a tag read later look incomplete.
    let mut needed = Vec::new();
    for m in layout.read_index()?.manifests {
        r.images += 1;
        let name = m.ref_name().unwrap_or("(unnamed)").to_string();
        match read_image(&m, layout) {
            Ok(img) => needed.push((name, img.blobs())),
            Err(e) => r.findings.push(Finding {
                code: "unreadable-image",
                path: name.clone(),
                message: format!("{name} cannot be read: {e}"),
                repaired: false,
            }),
        }
    }
    let dir = layout.root().join("blobs").join("sha256");
    let mut present = std::collections::BTreeMap::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .io(|| format!("listing {}", dir.display()))?
        .flatten()
        .collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(expected) = Digest::parse(&format!("sha256:{name}")) else {
            r.findings.push(Finding {
                code: "not-a-blob",
                path: path.display().to_string(),
                message: format!(
                    "{}: a file whose name is not a sha256 digest",
                    path.display()
                ),
                repaired: false,
            });
            continue;
        };
        match hash(&path) {
            Ok((d, n)) if d == expected => {
                r.blobs += 1;
                r.bytes += n;
                present.insert(expected, n);
            }
            other => {
                let why = match other {
                    Ok((d, _)) => format!("its content hashes to {d}"),
                    Err(e) => format!("it cannot be read as a regular file: {e}"),
                };
                let repaired = repair && std::fs::remove_file(&path).is_ok();
                r.findings.push(Finding {
                    code: "corrupt-blob",
                    path: path.display().to_string(),
                    message: format!("blob {expected} is corrupt: {why}"),
                    repaired,
                });
            }
        }
    }
    // A name replaced while the directory was being listed may have been skipped by it:
    // look once more before calling a blob missing — once per blob, however many images
    // need it.
    let mut looked_again: std::collections::HashMap<Digest, bool> = Default::default();
    let used: BTreeSet<&Digest> = needed
        .iter()
        .flat_map(|(_, blobs)| blobs.iter().map(|d| &d.digest))
        .collect();
    if !r.findings.iter().any(|f| f.code == "unreadable-image") {
        let (n, bytes) = present
            .iter()
            .filter(|(d, _)| !used.contains(d))
            .fold((0, 0), |(n, b), (_, size)| (n + 1, b + size));
        r.unreferenced = Some((n, bytes));
    }
    for (name, blobs) in needed {
        for d in blobs {
            let here = present.contains_key(&d.digest)
                || *looked_again.entry(d.digest.clone()).or_insert_with(|| {
                    hash(&layout.blob_path(&d.digest)).is_ok_and(|(h, _)| h == d.digest)
                });
            if !here {
                r.findings.push(Finding {
                    code: "missing-blob",
                    path: name.clone(),
                    message: format!(
                        "{name} needs blob {} ({} bytes), which is missing or corrupt",
                        d.digest, d.size
                    ),
                    repaired: false,
                });
            }
        }
    }
    Ok(r)
}

/// The digest and length of a regular file (a symlink or anything else is an error).
fn hash(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    let f = fsutil::open_regular_nofollow(path)?;
    let mut h = HashReader::new(io::BufReader::with_capacity(1 << 20, f));
    io::copy(&mut h, &mut io::sink())?;
    Ok(h.finish())
}
