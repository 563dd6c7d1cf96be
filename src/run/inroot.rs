//! Filesystem operations confined to one directory, for writing hostile layer contents:
//! every path is resolved inside the directory the way a chroot would see it (absolute
//! symlink targets mean the directory itself, `..` stops at it), with `openat2`
//! (`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`) where the kernel has it and a component
//! walk with `O_NOFOLLOW` where it does not. Final components are always operated on
//! relative to their parent's descriptor without following symlinks, so nothing a layer
//! names can reach outside the directory.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// Most symlinks followed while resolving one path (Linux's limit).
const MAX_HOPS: usize = 40;

/// Whether `openat2` works here: 0 not tried yet, 1 yes, 2 no (old kernel or a seccomp
/// filter that refuses it).
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// A directory that confines every path resolved through it.
#[derive(Debug)]
pub struct InRoot {
    fd: OwnedFd,
}

/// `stat` of one entry, the fields extraction needs.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Device and inode, identifying the entry across names.
    pub id: (u64, u64),
}

impl Stat {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// A path component or link target as a C string; an interior NUL is refused.
pub fn c(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "name contains a NUL byte".to_string(),
        )
    })
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open call and is owned by no one else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `openat(dir, name, flags)` with `O_CLOEXEC`.
pub fn openat(dir: RawFd, name: &CStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is a valid C string; the kernel copies it.
        let rc = unsafe {
            libc::openat(
                dir,
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        match cvt(rc) {
            Ok(fd) => return Ok(owned(fd)),
            Err(e) if errno(&e) == libc::EINTR => continue,
            Err(e) => return Err(e),
        }
    }
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;

/// Opens the directory `name` in `dir` without following a symlink.
pub fn open_dir_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, DIR_FLAGS, 0)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` when it does not exist.
pub fn lstat_at(dir: RawFd, name: &CStr) -> io::Result<Option<Stat>> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and a pointer to a live `stat`.
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    match cvt(rc) {
        Ok(_) => Ok(Some(Stat {
            mode: st.st_mode,
            id: (st.st_dev, st.st_ino),
        })),
        Err(e) if errno(&e) == libc::ENOENT => Ok(None),
        Err(e) => Err(e),
    }
}

/// `fstat` of an open descriptor.
pub fn fstat(fd: RawFd) -> io::Result<Stat> {
    // SAFETY: as in `lstat_at`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: pointer to a live `stat`.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(Stat {
        mode: st.st_mode,
        id: (st.st_dev, st.st_ino),
    })
}

/// `mkdirat`; an existing entry is not an error (the caller checks what it is).
pub fn mkdir_at(dir: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid C string.
    match cvt(unsafe { libc::mkdirat(dir, name.as_ptr(), mode as libc::mode_t) }) {
        Err(e) if errno(&e) == libc::EEXIST => Ok(()),
        r => r.map(drop),
    }
}

/// Creates a new regular file (never opening an existing one or following a symlink).
pub fn create_file_at(dir: RawFd, name: &CStr) -> io::Result<File> {
    let fd = openat(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        0o600,
    )?;
    Ok(File::from(fd))
}

/// `symlinkat(target, dir, name)`.
pub fn symlink_at(target: &CStr, dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(drop)
}

/// `linkat(odir, oname, ndir, nname, 0)`: a hard link to `oname` itself (a symlink is
/// linked, not followed).
pub fn link_at(odir: RawFd, oname: &CStr, ndir: RawFd, nname: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings.
    cvt(unsafe { libc::linkat(odir, oname.as_ptr(), ndir, nname.as_ptr(), 0) }).map(drop)
}

/// `mknodat` (FIFOs, and devices when privileged).
pub fn mknod_at(dir: RawFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::mknodat(dir, name.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) })
        .map(drop)
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`: owner of the entry itself, never a link's target.
pub fn lchown_at(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

/// `fchown` of an open descriptor.
pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: no memory is passed.
    cvt(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

/// `fchmod` of an open descriptor.
pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: no memory is passed.
    cvt(unsafe { libc::fchmod(fd, mode as libc::mode_t) }).map(drop)
}

fn timespecs(mtime: i64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    [t, t]
}

/// Sets atime and mtime of an open descriptor.
pub fn futimes(fd: RawFd, mtime: i64) -> io::Result<()> {
    let ts = timespecs(mtime);
    // SAFETY: pointer to two live timespecs.
    cvt(unsafe { libc::futimens(fd, ts.as_ptr()) }).map(drop)
}

/// Sets atime and mtime of the entry itself (a symlink's own times).
pub fn lutimes_at(dir: RawFd, name: &CStr, mtime: i64) -> io::Result<()> {
    let ts = timespecs(mtime);
    // SAFETY: valid C string, pointer to two live timespecs.
    cvt(unsafe { libc::utimensat(dir, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

/// `readlinkat`.
pub fn readlink_at(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: the buffer is live and its length is passed.
    let n = unsafe {
        libc::readlinkat(
            dir,
            name.as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn unlink_at(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(drop)
}

/// The names in an open directory (without `.` and `..`).
pub fn list(dir: RawFd) -> io::Result<Vec<CString>> {
    // fdopendir takes ownership of the descriptor it is given: give it a duplicate.
    // SAFETY: duplicating an open descriptor.
    let dup = cvt(unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `dup` is an open directory descriptor we own; on success DIR owns it.
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    // fdopendir on a descriptor that was read before continues where it stopped.
    // SAFETY: `d` is a live DIR stream.
    unsafe { libc::rewinddir(d) };
    let mut names = Vec::new();
    let result = loop {
        // readdir signals errors only through errno, which must be cleared first.
        // SAFETY: writing this thread's errno.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `d` is a live DIR stream.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if errno(&e) == 0 { Ok(()) } else { Err(e) };
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: closing the stream we opened (and the duplicate it owns).
    unsafe { libc::closedir(d) };
    result.map(|()| names)
}

/// True when this process may ignore permission bits on files it does not own (root).
fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Opens a directory to empty it; without privileges, first gives ourselves the
/// permission to read and change it (the image may have made it 0555 or 0).
fn open_for_removal(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    let fd = match open_dir_at(dir, name) {
        Err(e) if errno(&e) == libc::EACCES && !privileged() => {
            // The entry was just seen to be a directory, not a symlink, and nothing
            // else writes in this tree, so fchmodat (which follows links) is safe here.
            // SAFETY: valid C string.
            cvt(unsafe { libc::fchmodat(dir, name.as_ptr(), 0o700, 0) })?;
            open_dir_at(dir, name)?
        }
        r => r?,
    };
    if !privileged() {
        fchmod(fd.as_raw_fd(), 0o700)?;
    }
    Ok(fd)
}

/// Unlinks everything in `dir` except entries `keep` accepts; returns the kept
/// subdirectories (to descend into) and whether anything else was kept.
fn clear_level(dir: RawFd, keep: &dyn Fn(&Stat) -> bool) -> io::Result<(Vec<CString>, bool)> {
    let mut subdirs = Vec::new();
    let mut kept = false;
    for name in list(dir)? {
        let Some(st) = lstat_at(dir, &name)? else {
            continue;
        };
        if st.is_dir() {
            // Kept or not, a directory is visited: kept ones lose their unkept children,
            // the others are removed once empty (unless something inside is kept).
            subdirs.push(name);
        } else if keep(&st) {
            kept = true;
        } else {
            unlink_at(dir, &name, 0)?;
        }
    }
    Ok((subdirs, kept))
}

/// One directory being pruned: its name in its parent, the subdirectories still to
/// visit, whether it is itself kept, and whether anything inside it is.
struct Frame {
    name: CString,
    todo: Vec<CString>,
    marked: bool,
    kept_inside: bool,
}

/// Removes everything under `dir/name` that `keep` does not accept, and `dir/name`
/// itself unless it is kept or still holds something kept. Iterative, holding one or
/// two descriptors at a time (parents are reached again through `..`), so a hostile
/// tree thousands of levels deep costs heap, not stack or descriptors.
pub fn prune_at(dir: RawFd, name: &CStr, keep: &dyn Fn(&Stat) -> bool) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if !st.is_dir() {
        return if keep(&st) {
            Ok(())
        } else {
            unlink_at(dir, name, 0)
        };
    }
    let mut cur = open_for_removal(dir, name)?;
    let (todo, kept_inside) = clear_level(cur.as_raw_fd(), keep)?;
    let mut stack = vec![Frame {
        name: name.to_owned(),
        todo,
        marked: keep(&st),
        kept_inside,
    }];
    loop {
        let Some(top) = stack.last_mut() else {
            return Ok(());
        };
        if let Some(child) = top.todo.pop() {
            let Some(cst) = lstat_at(cur.as_raw_fd(), &child)? else {
                continue;
            };
            let fd = open_for_removal(cur.as_raw_fd(), &child)?;
            let (todo, kept_inside) = clear_level(fd.as_raw_fd(), keep)?;
            stack.push(Frame {
                name: child,
                todo,
                marked: keep(&cst),
                kept_inside,
            });
            cur = fd;
            continue;
        }
        let Some(done) = stack.pop() else {
            return Ok(());
        };
        let keep_it = done.marked || done.kept_inside;
        let parent = if stack.is_empty() {
            None
        } else {
            // `..` of a directory inside the tree is its real parent, not a symlink.
            Some(openat(cur.as_raw_fd(), c"..", DIR_FLAGS, 0)?)
        };
        let pfd = parent.as_ref().map_or(dir, |p| p.as_raw_fd());
        if keep_it {
            if let Some(up) = stack.last_mut() {
                up.kept_inside = true;
            }
        } else {
            unlink_at(pfd, &done.name, libc::AT_REMOVEDIR)?;
        }
        match parent {
            Some(p) => cur = p,
            None => return Ok(()),
        }
    }
}

/// Removes `dir/name` whatever it is, a whole tree included.
pub fn remove_all_at(dir: RawFd, name: &CStr) -> io::Result<()> {
    prune_at(dir, name, &|_| false)
}

/// Removes a directory tree given by host path (a bundle), never following symlinks
/// inside it. A missing path is not an error.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to remove a path without a final name",
        ));
    };
    let pfd = match File::open(parent) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    use std::os::unix::ffi::OsStrExt;
    remove_all_at(pfd.as_raw_fd(), &c(name.as_bytes())?)
}

fn openat2_in_root(root: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero open_how is valid (and what the kernel wants for unused fields).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    loop {
        // SAFETY: valid C string and a pointer to a live open_how of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if rc >= 0 {
            return Ok(owned(rc as libc::c_int));
        }
        let e = io::Error::last_os_error();
        if errno(&e) != libc::EINTR {
            return Err(e);
        }
    }
}

/// Splits a link target into components (an absolute target starts at the root).
fn target_components(target: &[u8]) -> (bool, Vec<Vec<u8>>) {
    let abs = target.first() == Some(&b'/');
    let comps = target
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    (abs, comps)
}

impl InRoot {
    /// Opens `dir` as the confining root.
    pub fn open(dir: &Path) -> io::Result<InRoot> {
        use std::os::unix::ffi::OsStrExt;
        let p = c(dir.as_os_str().as_bytes())?;
        Ok(InRoot {
            fd: openat(libc::AT_FDCWD, &p, libc::O_RDONLY | libc::O_DIRECTORY, 0)?,
        })
    }

    /// The root's own descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Opens the directory at `comps` (already cleaned: no `.`, `..` or empty
    /// components), following symlinks inside the root. With `create`, missing
    /// directories are made (mode 0755, as tar makes them). `None` when something is
    /// missing and `create` is false.
    pub fn dir(&self, comps: &[Vec<u8>], create: bool) -> io::Result<Option<OwnedFd>> {
        if comps.is_empty() {
            return openat(self.fd(), c".", DIR_FLAGS, 0).map(Some);
        }
        if OPENAT2.load(Ordering::Relaxed) != 2 {
            let joined = c(&comps.join(&b'/'))?;
            match openat2_in_root(self.fd(), &joined, libc::O_RDONLY | libc::O_DIRECTORY) {
                Ok(fd) => {
                    OPENAT2.store(1, Ordering::Relaxed);
                    return Ok(Some(fd));
                }
                Err(e) if errno(&e) == libc::ENOENT && !create => return Ok(None),
                // Missing parts to create: the walk below makes them.
                Err(e) if errno(&e) == libc::ENOENT => {}
                // Not available on this kernel, or filtered: walk from now on.
                Err(e) if matches!(errno(&e), libc::ENOSYS | libc::EPERM | libc::E2BIG) => {
                    OPENAT2.store(2, Ordering::Relaxed);
                }
                // A concurrent rename made the kernel give up: the walk is immune.
                Err(e) if errno(&e) == libc::EAGAIN => {}
                Err(e) => return Err(e),
            }
        }
        self.walk(comps, create)
    }

    /// The component walk: one `openat(O_NOFOLLOW)` per component, symlinks read and
    /// spliced in by hand, `..` handled on our own descriptor stack so it can never
    /// climb above the root.
    pub fn walk(&self, comps: &[Vec<u8>], create: bool) -> io::Result<Option<OwnedFd>> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut todo: Vec<Vec<u8>> = comps.iter().rev().cloned().collect();
        let mut hops = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().map_or(self.fd(), |f| f.as_raw_fd());
            let name = c(&comp)?;
            match open_dir_at(cur, &name) {
                Ok(fd) => stack.push(fd),
                // O_NOFOLLOW on a symlink gives ELOOP (or ENOTDIR with O_DIRECTORY).
                Err(e) if matches!(errno(&e), libc::ELOOP | libc::ENOTDIR) => {
                    let target = match readlink_at(cur, &name) {
                        Ok(t) => t,
                        // Not a symlink: a file where a directory is needed.
                        Err(r) if errno(&r) == libc::EINVAL => {
                            return Err(io::Error::from_raw_os_error(libc::ENOTDIR))
                        }
                        Err(r) => return Err(r),
                    };
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let (abs, parts) = target_components(&target);
                    if abs {
                        stack.clear();
                    }
                    todo.extend(parts.into_iter().rev());
                }
                Err(e) if errno(&e) == libc::ENOENT && create => {
                    mkdir_at(cur, &name, 0o755)?;
                    // Implicit directories are 0755 whatever the umask, as tar makes them.
                    let fd = open_dir_at(cur, &name)?;
                    fchmod(fd.as_raw_fd(), 0o755)?;
                    stack.push(fd);
                }
                Err(e) if errno(&e) == libc::ENOENT => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(Some(fd)),
            None => openat(self.fd(), c".", DIR_FLAGS, 0).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn comps(p: &str) -> Vec<Vec<u8>> {
        p.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    fn path_of(fd: &OwnedFd) -> std::path::PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    #[test]
    fn resolution_stays_inside_with_and_without_openat2() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink(outside.path(), root.join("abs")).unwrap();
        symlink("../../../../..", root.join("real/up")).unwrap();
        symlink("/real", root.join("toreal")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        let r = InRoot::open(&root).unwrap();
        let canon = root.canonicalize().unwrap();
        for walk in [false, true] {
            let get = |p: &str, create: bool| {
                if walk {
                    r.walk(&comps(p), create)
                } else {
                    r.dir(&comps(p), create)
                }
            };
            // A symlink to a host directory means the same path inside the root.
            let abs_inside = canon.join(outside.path().strip_prefix("/").unwrap());
            assert!(get("abs", false).unwrap().is_none(), "walk={walk}");
            let fd = get("abs/new", true).unwrap().unwrap();
            assert_eq!(path_of(&fd), abs_inside.join("new"));
            assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
            // `..` stops at the root.
            assert_eq!(path_of(&get("real/up", false).unwrap().unwrap()), canon);
            assert_eq!(
                path_of(&get("toreal/sub", false).unwrap().unwrap()),
                canon.join("real/sub")
            );
            assert_eq!(
                errno(&get("loop/x", true).unwrap_err()),
                libc::ELOOP,
                "walk={walk}"
            );
            assert_eq!(errno(&get("file/x", true).unwrap_err()), libc::ENOTDIR);
            let first = outside.path().iter().nth(1).unwrap();
            std::fs::remove_dir_all(canon.join(first)).unwrap();
        }
    }

    #[test]
    fn prune_keeps_what_is_marked_and_climbs_back_up() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        std::fs::create_dir_all(t.join("a/b/c")).unwrap();
        std::fs::create_dir_all(t.join("empty")).unwrap();
        std::fs::write(t.join("a/b/c/keep"), "k").unwrap();
        std::fs::write(t.join("a/b/drop"), "d").unwrap();
        std::fs::write(t.join("drop"), "d").unwrap();
        symlink("/etc", t.join("a/link")).unwrap();
        let keep_id = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(t.join("a/b/c/keep")).unwrap();
            (m.dev(), m.ino())
        };
        let dir = File::open(d.path()).unwrap();
        prune_at(dir.as_raw_fd(), c"t", &|s| s.id == keep_id).unwrap();
        assert!(t.join("a/b/c/keep").exists());
        assert!(!t.join("a/b/drop").exists());
        assert!(!t.join("drop").exists());
        assert!(!t.join("empty").exists());
        assert!(std::fs::symlink_metadata(t.join("a/link")).is_err());
        assert!(std::path::Path::new("/etc/passwd").exists());
        remove_tree(&t).unwrap();
        assert!(!t.exists());
        remove_tree(&t).unwrap();
    }

    #[test]
    fn deep_trees_are_removed_without_recursion() {
        let d = tempfile::tempdir().unwrap();
        let r = InRoot::open(d.path()).unwrap();
        // Deeper than the 1024 descriptors a process may hold, longer than PATH_MAX.
        let deep: Vec<Vec<u8>> = (0..1200).map(|_| b"dddddddd".to_vec()).collect();
        r.walk(&deep, true).unwrap().unwrap();
        remove_all_at(r.fd(), c"dddddddd").unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
