//! Small filesystem primitives with the guarantees the stores rely on: advisory locks,
//! atomic replacement, and opening files without following symlinks.

use crate::error::{IoContext, Result};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Lock modes for [`flock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Many holders.
    Shared,
    /// One holder.
    Exclusive,
}

/// Takes an advisory lock on `file` (released when the file is closed). With
/// `wait = false`, returns `Ok(false)` instead of blocking when it is held elsewhere.
pub fn flock(file: &File, mode: Lock, wait: bool) -> io::Result<bool> {
    let mut op = match mode {
        Lock::Shared => libc::LOCK_SH,
        Lock::Exclusive => libc::LOCK_EX,
    };
    if !wait {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock on a valid, open descriptor; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Takes `mode` on `file` (the lock of `place`), waiting for it as [`flock`] does; when
/// another process holds it, says first who (from `/proc/locks`) through
/// [`crate::progress::notice`], so a command held up by a stopped or long-running one
/// does not hang in silence.
pub fn flock_or_say(file: &File, mode: Lock, place: &Path) -> io::Result<()> {
    if flock(file, mode, false)? {
        return Ok(());
    }
    crate::progress::notice(&waiting_message(file, place));
    flock(file, mode, true).map(|_| ())
}

/// "waiting for …": the process holding a lock on `file`, what it runs and whether it
/// is stopped, as far as `/proc` tells.
fn waiting_message(file: &File, place: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let holder = file
        .metadata()
        .ok()
        .and_then(|m| lock_holder(m.dev(), m.ino()));
    let Some(pid) = holder else {
        return format!(
            "waiting for the lock on {}: another process holds it",
            place.display()
        );
    };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let mut cmd = std::fs::read(proc.join("cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if cmd.chars().count() > 80 {
        cmd = cmd.chars().take(77).collect::<String>() + "...";
    }
    let what = if cmd.is_empty() {
        format!("process {pid}")
    } else {
        format!("process {pid} ({cmd})")
    };
    // The state follows the command name, which is in parentheses and may hold any byte.
    let stopped = std::fs::read_to_string(proc.join("stat"))
        .ok()
        .and_then(|s| Some(s[s.rfind(')')? + 1..].trim_start().starts_with(['T', 't'])))
        .unwrap_or(false);
    if stopped {
        format!(
            "waiting for the lock on {}: {what} holds it and is stopped; resume it (fg in its shell, or kill -CONT {pid}) or end it",
            place.display()
        )
    } else {
        format!(
            "waiting for the lock on {}: {what} holds it",
            place.display()
        )
    }
}

/// A process holding the lock on the file `dev`/`ino` now, other than this one: one
/// whose open file carries it (a `lock:` line in `/proc/PID/fdinfo/FD`). The pid that
/// `/proc/locks` shows is only the one that took the lock, which may have passed it to
/// a child and exited, so it is tried first and believed only if it still has it.
/// Lines are matched by device and inode, or by inode alone (btrfs shows its subvolume's
/// device in `stat` but the filesystem's in the lock lists).
fn lock_holder(dev: u64, ino: u64) -> Option<u32> {
    let full = format!(" {:02x}:{:02x}:{ino} ", libc::major(dev), libc::minor(dev));
    let inode = format!(":{ino} ");
    let holds =
        |line: &str| !line.contains("->") && (line.contains(&full) || line.contains(&inode));
    let me = std::process::id();
    let carries = |pid: u32| -> bool {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_to_string(fd.path())
                .is_ok_and(|t| t.lines().any(|l| l.starts_with("lock:") && holds(l)))
        })
    };
    let taker = std::fs::read_to_string("/proc/locks").ok().and_then(|t| {
        t.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 5 && f[1] != "->" && holds(&format!("{l} ")))
                .then(|| f[4].parse::<u32>().ok())
                .flatten()
        })
    });
    if let Some(pid) = taker.filter(|&p| p != me && carries(p)) {
        return Some(pid);
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .find(|&pid| carries(pid))
}

/// Opens a directory (to lock it, or to fsync it).
pub fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
}

/// Opens a regular file for reading without following a final symlink, and refuses
/// anything that is not a regular file (a layout blob that is a symlink to
/// `/etc/shadow` must not be read).
pub fn open_regular_nofollow(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(f)
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temporary files this process is writing, for [`remove_temps_on_signals`]: each slot
/// holds a name (a C string) or null, and the key of the name's [`temp_path`] counter.
/// A slot's name is read only by whoever swapped it out (the handler, which unlinks it,
/// or [`untrack`], which frees it), and [`untrack`] finds its slot by the key, never by
/// reading another thread's name. With every slot taken a temp file is simply not
/// tracked: a later write cleans it as a stale one.
const SLOTS: usize = 256;
static LIVE: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];
static KEYS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

/// The key of one of this process's temp names (its counter + 1), if it is one.
fn temp_key(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name
        .strip_prefix(".nobase-")?
        .strip_suffix(".tmp")?
        .split('-');
    let pid: u32 = parts.next()?.parse().ok()?;
    let n: u64 = parts.next()?.parse().ok()?;
    (pid == std::process::id()).then_some(n + 1)
}

fn track(path: &Path) {
    let Some(key) = temp_key(path) else { return };
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let raw = c.into_raw();
    for (slot, k) in LIVE.iter().zip(&KEYS) {
        if slot
            .compare_exchange(ptr::null_mut(), raw, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            k.store(key, Ordering::SeqCst);
            return;
        }
    }
    // SAFETY: `raw` came from CString::into_raw just above and was stored nowhere.
    drop(unsafe { CString::from_raw(raw) });
}

/// Forgets a temporary file that was moved into place or removed.
pub fn untrack(path: &Path) {
    let Some(key) = temp_key(path) else { return };
    for (slot, k) in LIVE.iter().zip(&KEYS) {
        // The key is cleared before the name is taken, so a slot freed here and claimed
        // again at once keeps its new key.
        if k.compare_exchange(key, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            let taken = slot.swap(ptr::null_mut(), Ordering::SeqCst);
            if !taken.is_null() {
                // SAFETY: swapped out here, so owned here; it came from into_raw.
                drop(unsafe { CString::from_raw(taken) });
            }
            return;
        }
    }
}

extern "C" fn remove_temps(sig: libc::c_int) {
    for slot in &LIVE {
        let p = slot.swap(ptr::null_mut(), Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: unlink is async-signal-safe; `p` is a C string owned here.
            unsafe { libc::unlink(p) };
        }
    }
    // SAFETY: signal and raise are async-signal-safe; the default action ends the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// On SIGINT, SIGTERM or SIGHUP, removes the temporary files being written before the
/// signal ends the process as it would have (Ctrl-C during a push to an archive leaves
/// no hidden partial file beside it). A signal the caller ignores (`nohup`, a shell's
/// background job) stays ignored. Commands with handlers of their own (`run`, `tree -i`)
/// put theirs in place meanwhile.
pub fn remove_temps_on_signals() {
    let handler = remove_temps as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction with a null new action only reads the current one.
        let ignored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
        };
        if !ignored {
            // SAFETY: the handler makes only async-signal-safe calls.
            unsafe { libc::signal(sig, handler) };
        }
    }
}

/// A unique temporary name in `dir`: `.nobase-<pid>-<n>.tmp`.
pub fn temp_path(dir: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(".nobase-{}-{n}-{nanos}.tmp", std::process::id()))
}

/// Creates a new temporary file in `dir`, locked exclusively for as long as it is open
/// so that [`clean_stale_temps`] can tell a live writer's file from a dead one's.
pub fn create_temp(dir: &Path) -> Result<(File, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let path = temp_path(dir);
        // Tracked before it exists, so a signal at any moment finds it (the name is
        // unique: removing it before it is made removes nothing).
        track(&path);
        let made = (|| {
            let f = OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
                .io(|| format!("creating a temporary file in {}", dir.display()))?;
            flock(&f, Lock::Exclusive, true).io(|| format!("locking {}", path.display()))?;
            // Between creating and locking, another process's `clean_stale_temps` may
            // have taken the free lock and deleted the name: make sure it is still ours.
            let mine = f.metadata().io(|| format!("reading {}", path.display()))?;
            Ok(match std::fs::symlink_metadata(&path) {
                Ok(m) if m.dev() == mine.dev() && m.ino() == mine.ino() => Some(f),
                _ => None,
            })
        })();
        match made {
            Ok(Some(f)) => return Ok((f, path)),
            Ok(None) => untrack(&path),
            Err(e) => {
                untrack(&path);
                return Err(e);
            }
        }
    }
}

/// Removes `.nobase-*.tmp` files in `dir` left by killed writers (their lock is free).
/// Returns how many were removed.
pub fn clean_stale_temps(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".nobase-") && name.ends_with(".tmp")) {
            continue;
        }
        let p = e.path();
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)
        {
            if flock(&f, Lock::Exclusive, false).unwrap_or(false)
                && std::fs::remove_file(&p).is_ok()
            {
                n += 1;
            }
        }
    }
    n
}

/// Replaces `path` with `bytes` atomically: temp file, fsync, rename, fsync of the
/// directory. Readers see the old or the new content, never a torn one, and after a
/// power cut the new content is there.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Like [`atomic_write`], without the fsyncs: still never torn for readers (or after a
/// killed process), but a power cut may leave the old content or an empty file. For
/// caches and for files recreated when missing or empty.
pub fn replace_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (mut f, tmp) = create_temp(dir)?;
    let res = (|| {
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            open_dir(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    untrack(&tmp);
    res.io(|| format!("writing {}", path.display()))
}

/// Moves a finished file into its final place, failing if the two are on different
/// filesystems (callers create temps beside their destination).
pub fn persist(tmp: &Path, dest: &Path) -> Result<()> {
    let res =
        std::fs::rename(tmp, dest).io(|| format!("moving {} to {}", tmp.display(), dest.display()));
    if res.is_ok() {
        untrack(tmp);
    }
    res
}

/// Removes a temporary file that will not be kept (errors ignored: it may be gone).
pub fn discard(tmp: &Path) {
    let _ = std::fs::remove_file(tmp);
    untrack(tmp);
}

/// Asks the kernel to start writing `[from, to)` of `file` to disk without waiting, so a
/// later fsync finds most of it done. Advisory: failures are ignored.
fn start_writeback(file: &File, from: u64, to: u64) {
    if to <= from {
        return;
    }
    // SAFETY: sync_file_range on a valid descriptor with in-range offsets; no memory.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            (to - from) as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Makes a large file durable in steps while it is still being written, so the fsync
/// that ends the write has only the last step left to wait for.
///
/// Starting writeback early is not enough: on a disk with a volatile write cache (most
/// virtual disks) the fsync's cache flush costs time in proportion to everything written
/// since the last flush — about 20 ms for 24 MiB here, after the data had already left
/// the page cache. So every [`Flusher::STEP`] bytes an `fdatasync` runs on its own thread
/// (one at a time; the writer never waits for it) and writeback of what follows starts.
pub struct Flusher {
    /// Bytes whose writeback has been started.
    started: u64,
    pending: Option<std::thread::JoinHandle<io::Result<()>>>,
    /// The first step that failed (no more are started after it).
    failed: Option<io::Error>,
}

impl Flusher {
    /// How much is written between two steps.
    pub const STEP: u64 = 4 << 20;

    /// A flusher for a file written from its start.
    pub fn new() -> Self {
        Flusher {
            started: 0,
            pending: None,
            failed: None,
        }
    }

    /// Says that the first `on_disk` bytes of `file` have been written to it. Never
    /// fails: a step's error is kept for [`Flusher::wait`].
    pub fn wrote(&mut self, file: &File, on_disk: u64) {
        if self.failed.is_some() || on_disk < self.started + Self::STEP {
            return;
        }
        start_writeback(file, self.started, on_disk);
        self.started = on_disk;
        if self.pending.as_ref().is_none_or(|h| h.is_finished()) {
            if let Err(e) = self.join() {
                self.failed = Some(e);
                return;
            }
            // Advisory: without a descriptor or a thread, the final fsync does the work.
            let Ok(f) = file.try_clone() else { return };
            self.pending = std::thread::Builder::new()
                .name("fdatasync".into())
                .spawn(move || f.sync_data())
                .ok();
        }
    }

    fn join(&mut self) -> io::Result<()> {
        match self.pending.take().map(|h| h.join()) {
            None => Ok(()),
            Some(Ok(res)) => res,
            Some(Err(_)) => Err(io::Error::other("the fdatasync thread panicked")),
        }
    }

    /// Waits for the step in flight and returns the first error of any step. The steps
    /// share the writer's open file description, and an error is reported once per open
    /// file description: a failed step must fail the write that made it.
    pub fn wait(&mut self) -> io::Result<()> {
        let last = self.join();
        match self.failed.take() {
            Some(e) => Err(e),
            None => last,
        }
    }
}

impl Default for Flusher {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether this process may create files in directory `dir` (access(2) with W_OK): the
/// error says why not (a read-only mount, as root too, or missing permission).
pub fn may_write(dir: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: a NUL-terminated path that lives for the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Where `name` is found on PATH, as a shell would find it.
pub fn on_path(name: &str) -> Option<PathBuf> {
    on_path_all(name).into_iter().next()
}

/// Every executable file named `name` in PATH's directories, in PATH's order.
pub fn on_path_all(name: &str) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .map(|d| d.join(name))
        .filter(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flusher_syncs_in_steps_and_reports_a_failed_step() {
        // A file: each step syncs on a thread; the content is untouched.
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("blob")).unwrap();
        let mut fl = Flusher::new();
        let chunk = vec![7u8; 1 << 20];
        for i in 1..=9u64 {
            f.write_all(&chunk).unwrap();
            fl.wrote(&f, i << 20);
            if i == 4 {
                assert!(fl.pending.is_some(), "no sync started after a step");
            }
        }
        fl.wait().unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("blob")).unwrap().len(),
            9 << 20
        );

        // A descriptor fdatasync refuses (a socket: EINVAL): the step's error is kept
        // and returned by wait, not lost on the thread, and no step follows a failed one.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let sock = File::from(std::os::fd::OwnedFd::from(a));
        let mut fl = Flusher::new();
        fl.wrote(&sock, Flusher::STEP);
        while !fl.pending.as_ref().unwrap().is_finished() {
            std::thread::yield_now();
        }
        fl.wrote(&sock, 2 * Flusher::STEP);
        assert!(fl.failed.is_some() && fl.pending.is_none());
        fl.wrote(&sock, 3 * Flusher::STEP);
        assert!(fl.pending.is_none(), "a step after a failed one");
        assert!(fl.wait().is_err());
        // A failure still in flight at the end is returned too.
        let mut fl = Flusher::new();
        fl.wrote(&sock, Flusher::STEP);
        assert!(fl.wait().is_err());
        // Short of a step, nothing runs.
        let mut fl = Flusher::new();
        fl.wrote(&sock, Flusher::STEP - 1);
        assert!(fl.pending.is_none());
        fl.wait().unwrap();
    }
}
