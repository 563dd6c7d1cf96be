//! How far long work has got, as two process-wide counters (bytes expected, bytes
//! done) that the library advances where the bytes flow — files read into layers being
//! written, layer blobs read — and a display reads. They change nothing but what is
//! shown: no result depends on them, so a counter shared by the whole process is enough
//! and no signature has to carry a progress handle.

use std::sync::atomic::{AtomicU64, Ordering};

static EXPECTED: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);

/// Announces `bytes` more work (a layer's file bytes before it is written).
pub fn expect(bytes: u64) {
    EXPECTED.fetch_add(bytes, Ordering::Relaxed);
}

/// Records `bytes` of work done.
pub fn advance(bytes: u64) {
    DONE.fetch_add(bytes, Ordering::Relaxed);
}

/// (done, expected) so far. `done` may exceed `expected` when work was not announced.
pub fn snapshot() -> (u64, u64) {
    (
        DONE.load(Ordering::Relaxed),
        EXPECTED.load(Ordering::Relaxed),
    )
}

static NOTICE: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

/// Sets where [`notice`] goes (the command line prints it on stderr unless `--quiet`);
/// without one, notices are dropped.
pub fn on_notice(show: fn(&str)) {
    let _ = NOTICE.set(show);
}

/// A line for the person waiting, about why the work stands still (another process
/// holds a lock it needs).
pub fn notice(msg: &str) {
    if let Some(show) = NOTICE.get() {
        show(msg);
    }
}

/// A reader that counts what passes through it as work done.
pub struct Counted<R>(pub R);

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn counted_reads_advance_the_meter() {
        let (before, _) = snapshot();
        let mut s = String::new();
        Counted(&b"hello"[..]).read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        // Other tests may advance it too, concurrently: at least our five bytes.
        assert!(snapshot().0 >= before + 5);
    }
}
