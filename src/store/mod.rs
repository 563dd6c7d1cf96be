//! The local store: an OCI image layout at `$NOBASE_STORE` (default
//! `$XDG_DATA_HOME/nobase/store`) whose index entries are named `NAME:TAG`, so skopeo and
//! umoci read it as `oci:STORE:NAME:TAG`. It is also where builds write their blobs.

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, Lock};
use crate::image::{Descriptor, Image};
use crate::oci::{read_image, Layout};
use crate::refs::NameTag;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The local image store.
#[derive(Clone, Debug)]
pub struct Store {
    layout: Layout,
}

/// The default store directory: `$NOBASE_STORE`, else `$XDG_DATA_HOME/nobase/store`,
/// else `~/.local/share/nobase/store`.
pub fn default_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NOBASE_STORE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p).join("nobase").join("store"));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/nobase/store")),
        None => Err(Error::Usage(
            "no store directory: set NOBASE_STORE (or HOME) to say where images are kept".into(),
        )),
    }
}

/// What garbage collection did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Blobs removed.
    pub removed: usize,
    /// Bytes freed.
    pub bytes: u64,
    /// True when another nobase was writing, so nothing was collected this time.
    pub deferred: bool,
    /// The blobs removed (or, from [`Store::unreferenced`], removable), with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Blobs that could not be removed, with why.
    pub failed: Vec<(Digest, String)>,
}

/// Whether index entry `m` is the tag `name`: its ref name read as `nobase images`
/// lists it, so a tag other tools wrote without `:TAG` (`umoci tag … v2`) is `v2:latest`
/// for every command.
fn names(m: &Descriptor, name: &NameTag) -> bool {
    m.ref_name()
        .and_then(|r| NameTag::parse(r).ok())
        .is_some_and(|n| &n == name)
}

impl Store {
    /// Opens the store at `path`, creating it if needed.
    pub fn open(path: &Path) -> Result<Store> {
        if path.exists() && !path.is_dir() {
            return Err(Error::Usage(format!(
                "the store {} is not a directory; point --store or NOBASE_STORE at a directory (it is created when missing)",
                path.display()
            )));
        }
        // A directory with files of its own but no oci-layout is someone else's (a typo
        // in --store): never made into a store, not even by a command that only reads.
        // What a store being created by another nobase has at that moment is fine.
        let ours = |n: &std::ffi::OsStr| {
            let n = n.to_string_lossy();
            matches!(n.as_ref(), "blobs" | "index.json" | "oci-layout") || n.starts_with(".nobase")
        };
        if !path.join("oci-layout").exists()
            && std::fs::read_dir(path).is_ok_and(|d| d.flatten().any(|e| !ours(&e.file_name())))
        {
            return Err(Error::Usage(format!(
                "{} is not a nobase store (it has files but no oci-layout); point --store or NOBASE_STORE at a store, or at a new or empty directory to make one",
                path.display()
            )));
        }
        Ok(Store {
            layout: Layout::create(path)?,
        })
    }

    /// The store as a layout (for writing blobs and for sinks).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Holds off garbage collection while a build writes blobs that no tag references
    /// yet: a shared lock on the blob directory, released when the file is dropped.
    pub fn writer_guard(&self) -> Result<File> {
        self.layout.writer_guard()
    }

    /// The descriptor tagged `name`.
    pub fn resolve(&self, name: &NameTag) -> Result<Descriptor> {
        let key = name.to_string();
        self.layout
            .read_index()?
            .manifests
            .into_iter()
            .find(|m| names(m, name))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "no image {key} in the store {}; `nobase images` lists what is there",
                    self.layout.root().display()
                ))
            })
    }

    /// The image whose manifest (or index) digest starts with the hex `prefix`, and
    /// that is tagged `name` (any tag) when one is given; tagged or not.
    pub fn resolve_digest(&self, name: Option<&str>, prefix: &str) -> Result<Descriptor> {
        let shown = match name {
            Some(n) => format!("{n}@sha256:{prefix}"),
            None => format!("sha256:{prefix}"),
        };
        let mut found: Vec<Descriptor> = Vec::new();
        for m in self.layout.read_index()?.manifests {
            let named = name.is_none_or(|n| {
                m.ref_name()
                    .and_then(|r| NameTag::parse(r).ok())
                    .is_some_and(|t| t.name == n)
            });
            if named
                && m.digest.hex().starts_with(prefix)
                && !found.iter().any(|f| f.digest == m.digest)
            {
                found.push(m);
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::Invalid(format!(
                "no image {shown} in the store {}; `nobase images` lists what is there (-v with whole digests)",
                self.layout.root().display()
            ))),
            _ => Err(Error::Usage(format!(
                "{shown} names {} images ({}); give more digits",
                found.len(),
                found
                    .iter()
                    .map(|d| format!("sha256:{}", d.digest.short()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Reads the image tagged `name`.
    pub fn read(&self, name: &NameTag) -> Result<Image> {
        read_image(&self.resolve(name)?, &self.layout)
    }

    /// Every tag with its descriptor, sorted by name.
    pub fn list(&self) -> Result<Vec<(NameTag, Descriptor)>> {
        let mut out: Vec<_> = self
            .layout
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|m| {
                let n = NameTag::parse(m.ref_name()?).ok()?;
                Some((n, m))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Images the store holds under no name (a `skopeo copy … oci:STORE` without a
    /// reference), which only their digests reach.
    pub fn unnamed(&self) -> Result<Vec<Descriptor>> {
        Ok(self
            .layout
            .read_index()?
            .manifests
            .into_iter()
            .filter(|m| m.ref_name().and_then(|r| NameTag::parse(r).ok()).is_none())
            .collect())
    }

    /// Removes a tag; returns the descriptor it pointed at.
    pub fn untag(&self, name: &NameTag) -> Result<Descriptor> {
        let key = name.to_string();
        let root = self.layout.root().display().to_string();
        self.layout.update_index(|index| {
            let pos = index
                .manifests
                .iter()
                .position(|m| names(m, name))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "no image {key} in the store {root}; `nobase images` lists what is there"
                    ))
                })?;
            Ok(index.manifests.remove(pos))
        })
    }

    /// Deletes blobs that no tag references. Skipped (reported as deferred) while any
    /// build holds [`Store::writer_guard`], so it never deletes a blob a running build
    /// has written but not yet tagged.
    pub fn gc(&self) -> Result<GcReport> {
        let blobs_dir = self.layout.root().join("blobs");
        let guard =
            fsutil::open_dir(&blobs_dir).io(|| format!("opening {}", blobs_dir.display()))?;
        if !fsutil::flock(&guard, Lock::Exclusive, false)
            .io(|| format!("locking {}", blobs_dir.display()))?
        {
            return Ok(GcReport {
                deferred: true,
                ..GcReport::default()
            });
        }
        // The index lock keeps tags from changing while we mark.
        let root_dir = fsutil::open_dir(self.layout.root())
            .io(|| format!("opening {}", self.layout.root().display()))?;
        fsutil::flock_or_say(&root_dir, Lock::Exclusive, self.layout.root())
            .io(|| format!("locking {}", self.layout.root().display()))?;
        let report = self.sweep(true)?;
        crate::layer::LayerCache::of(&self.layout).prune(&self.layout);
        Ok(report)
    }

    /// The blobs no tag uses, which the next collection would remove (nothing is
    /// locked: a build running now may still tag some of them).
    pub fn unreferenced(&self) -> Result<GcReport> {
        self.sweep(false)
    }

    /// Marks what the tags use and removes (`delete`) or counts the rest.
    fn sweep(&self, delete: bool) -> Result<GcReport> {
        let mut live: BTreeSet<Digest> = BTreeSet::new();
        for m in self.layout.read_index()?.manifests {
            live.insert(m.digest.clone());
            // An unreadable image keeps its top blob; we cannot know its children, so we
            // keep everything rather than guess.
            match read_image(&m, &self.layout) {
                Ok(img) => live.extend(img.blobs().into_iter().map(|d| d.digest)),
                Err(_) => return Ok(GcReport::default()),
            }
        }
        let dir = self.layout.root().join("blobs").join("sha256");
        let mut report = GcReport::default();
        for e in std::fs::read_dir(&dir).io(|| format!("listing {}", dir.display()))? {
            let e = e.io(|| format!("listing {}", dir.display()))?;
            let name = e.file_name();
            let Some(hex) = name.to_str() else { continue };
            let Ok(d) = Digest::parse(&format!("sha256:{hex}")) else {
                continue;
            };
            if !live.contains(&d) {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                match delete.then(|| std::fs::remove_file(e.path())) {
                    Some(Err(err)) => report.failed.push((d, err.to_string())),
                    _ => {
                        report.removed += 1;
                        report.bytes += len;
                        report.blobs.push((d, len));
                    }
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_prefix_picks_one_image_or_says_which_it_could_be() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = |hex: String, name: &str| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{hex}"),
                "size": 1,
                "annotations": {"org.opencontainers.image.ref.name": name},
            })
        };
        let (a, b) = (
            "abcd1".to_string() + &"0".repeat(59),
            "abcd2".to_string() + &"0".repeat(59),
        );
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::json!({"schemaVersion": 2, "manifests": [entry(a.clone(), "x:1"), entry(b, "y:1")]})
                .to_string(),
        )
        .unwrap();
        let e = store.resolve_digest(None, "abcd").unwrap_err().to_string();
        assert!(
            e.contains("names 2 images") && e.contains("give more digits"),
            "{e}"
        );
        assert_eq!(store.resolve_digest(None, "abcd1").unwrap().digest.hex(), a);
        // With a name, only that name's images count.
        assert_eq!(store.resolve_digest(Some("x"), &a).unwrap().digest.hex(), a);
        let e = store.resolve_digest(Some("y"), &a).unwrap_err().to_string();
        assert!(e.contains("no image y@sha256:abcd1"), "{e}");
    }
}
