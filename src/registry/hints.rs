//! Where blobs were last seen in registries (`HOST`, `REPO`, digest), so a push to a
//! new repository can ask the registry to mount a blob from one it already holds
//! instead of uploading it again (Docker keeps the same kind of record). A small JSON
//! file, bounded, updated under a lock; losing it only costs uploads.

use crate::digest::Digest;
use crate::fsutil::{self, Lock};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// Entries kept; the oldest go first.
const MAX_ENTRIES: usize = 4096;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct File {
    /// `[host, repository, digest]`, oldest first.
    entries: Vec<(String, String, String)>,
}

/// The mount-hint record.
pub struct Hints {
    path: Option<PathBuf>,
    file: File,
}

impl Hints {
    /// Loads the record at `path` (an empty one when it is missing or unreadable).
    pub fn load(path: Option<&Path>) -> Hints {
        let file = path.map(read).unwrap_or_default();
        Hints {
            path: path.map(Path::to_path_buf),
            file,
        }
    }

    /// Repositories of `host` that held `digest`, most recent first, at most `max`.
    pub fn repos_for(&self, host: &str, digest: &Digest, max: usize) -> Vec<String> {
        let d = digest.to_string();
        let mut out: Vec<String> = Vec::new();
        for (h, r, dd) in self.file.entries.iter().rev() {
            if h == host && *dd == d && !out.contains(r) {
                out.push(r.clone());
                if out.len() == max {
                    break;
                }
            }
        }
        out
    }

    /// Records that `host/repo` holds `digests`, and saves (best effort: a read-only
    /// cache directory must not fail a push that succeeded).
    pub fn record(&mut self, host: &str, repo: &str, digests: &[Digest]) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let lock_path = path.with_extension("lock");
        let Ok(lock) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        else {
            return;
        };
        if fsutil::flock(&lock, Lock::Exclusive, true).is_err() {
            return;
        }
        // Another nobase may have written since we loaded: merge into its version.
        let mut file = read(&path);
        for d in digests {
            let e = (host.to_string(), repo.to_string(), d.to_string());
            file.entries.retain(|x| x != &e);
            file.entries.push(e);
        }
        let excess = file.entries.len().saturating_sub(MAX_ENTRIES);
        file.entries.drain(..excess);
        if let Ok(bytes) = serde_json::to_vec(&file) {
            let _ = fsutil::atomic_write(&path, &bytes);
        }
        self.file = file;
    }
}

fn read(path: &Path) -> File {
    std::fs::read(path)
        .ok()
        .filter(|b| b.len() < 16 << 20)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/hints.json");
        let d1 = Digest::of(b"1");
        let d2 = Digest::of(b"2");
        let mut h = Hints::load(Some(&p));
        h.record("r:5000", "a", &[d1.clone(), d2.clone()]);
        let mut h2 = Hints::load(Some(&p));
        h2.record("r:5000", "b", std::slice::from_ref(&d1));
        let h3 = Hints::load(Some(&p));
        assert_eq!(h3.repos_for("r:5000", &d1, 5), ["b", "a"]);
        assert_eq!(h3.repos_for("r:5000", &d2, 5), ["a"]);
        assert!(h3.repos_for("other", &d1, 5).is_empty());
        let many: Vec<Digest> = (0..MAX_ENTRIES + 10)
            .map(|i| Digest::of(i.to_string().as_bytes()))
            .collect();
        h2.record("r:5000", "c", &many);
        assert_eq!(Hints::load(Some(&p)).file.entries.len(), MAX_ENTRIES);
        // Garbage in the file is ignored, not fatal.
        std::fs::write(&p, b"{nonsense").unwrap();
        assert!(Hints::load(Some(&p)).repos_for("r:5000", &d1, 5).is_empty());
    }
}
