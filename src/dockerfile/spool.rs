//! Holding file contents that have no host file of their own (entries of an `ADD`ed
//! tar, files of a base image copied with `COPY --from`) until their layer is written:
//! small ones in memory, large ones in temporary files beside the store's blobs, removed
//! when the build ends (and, after a crash, by the store's stale-temp cleanup).

use crate::elf::ReadAt;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::tree::Content;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

/// Files up to this size stay in memory.
const IN_MEMORY: u64 = 1 << 20;

/// Temporary contents of one build.
pub struct Spool {
    dir: PathBuf,
    files: Vec<(File, PathBuf)>,
}

impl Spool {
    /// A spool writing its temporary files into `dir` (the store's root, so they sit
    /// on the same filesystem as the blobs and are cleaned like any other temp).
    pub fn new(dir: PathBuf) -> Spool {
        Spool {
            dir,
            files: Vec::new(),
        }
    }

    /// Keeps `size` bytes read from `r`; fails if `r` has fewer or more.
    pub fn keep_read(&mut self, r: &mut dyn Read, size: u64, what: &str) -> Result<Content> {
        let mut limited = r.take(size);
        if size <= IN_MEMORY {
            let mut buf = Vec::with_capacity(size as usize);
            limited
                .read_to_end(&mut buf)
                .io(|| format!("reading {what}"))?;
            if buf.len() as u64 != size {
                return Err(Error::Invalid(format!(
                    "{what} ends after {} of its {size} bytes",
                    buf.len()
                )));
            }
            return Ok(Content::Bytes(Arc::from(buf)));
        }
        let (mut f, path) = fsutil::create_temp(&self.dir)?;
        let res = io::copy(&mut limited, &mut f)
            .and_then(|n| f.flush().map(|_| n))
            .io(|| format!("spooling {what} into {}", path.display()));
        // Registered before checking, so a failed copy is removed too.
        self.files.push((f, path.clone()));
        let n = res?;
        if n != size {
            return Err(Error::Invalid(format!(
                "{what} ends after {n} of its {size} bytes"
            )));
        }
        Ok(Content::Host { path, inode: None })
    }

    /// Keeps the whole of a positioned reader.
    pub fn keep(&mut self, src: &dyn ReadAt, what: &str) -> Result<Content> {
        let mut r = AtReader { src, pos: 0 };
        self.keep_read(&mut r, src.size(), what)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        for (_, p) in self.files.drain(..) {
            crate::fsutil::discard(&p);
        }
    }
}

/// Sequential reads over a [`ReadAt`].
struct AtReader<'a> {
    src: &'a dyn ReadAt,
    pos: u64,
}

impl Read for AtReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.src.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.src.read_exact_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_in_memory_large_on_disk_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path().to_path_buf());
        let small = vec![1u8; 10];
        assert!(matches!(s.keep(&small, "small").unwrap(), Content::Bytes(b) if b.len() == 10));
        let big = vec![2u8; (IN_MEMORY + 1) as usize];
        let Content::Host { path, .. } = s.keep(&big, "big").unwrap() else {
            panic!("expected a spooled file")
        };
        assert_eq!(std::fs::read(&path).unwrap(), big);
        assert!(s.keep_read(&mut &b"abc"[..], 5, "short").is_err());
        drop(s);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
