//! Signals while nobase runs a container. nobase must outlive its container: SIGINT,
//! SIGTERM, SIGHUP and SIGQUIT are caught, not obeyed. Before the runtime starts they
//! cancel the run; afterwards, those sent by another process (`kill`, systemd) are
//! forwarded to the runtime, which passes them to the container. Those from the
//! terminal (Ctrl-C) already reach the runtime, which is in the same process group, so
//! they are not sent twice. Either kind starts the stop timer ([`stop_requested`]).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The signals handled.
const HANDLED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The runtime's pid once it runs (0 before).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal that arrived before the runtime started (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);
/// A signal that asked the container to stop (0: none), for the stop timer.
static STOP: AtomicI32 = AtomicI32::new(0);
/// True while a [`Guard`] has the handlers installed.
static ACTIVE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only async-signal-safe work here: atomics and kill(2).
    STOP.store(sig, Ordering::SeqCst);
    let child = CHILD.load(Ordering::SeqCst);
    if child <= 0 {
        let _ = PENDING.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        return;
    }
    // si_code <= 0 (SI_USER, SI_QUEUE, SI_TKILL): sent by a process. The terminal's
    // signals come with SI_KERNEL and were delivered to the runtime as well.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let from_process = !info.is_null() && unsafe { (*info).si_code } <= 0;
    if from_process {
        // SAFETY: kill is async-signal-safe; the pid is our own child.
        unsafe { libc::kill(child, sig) };
    }
}

/// Handlers installed; the previous ones come back when the outermost guard is dropped.
pub struct Guard {
    old: Vec<(libc::c_int, libc::sigaction)>,
    outer: bool,
}

/// Installs the handlers (a no-op guard when they already are: `run` unpacks too).
pub fn install() -> io::Result<Guard> {
    if ACTIVE.swap(true, Ordering::SeqCst) {
        return Ok(Guard {
            old: Vec::new(),
            outer: false,
        });
    }
    CHILD.store(0, Ordering::SeqCst);
    PENDING.store(0, Ordering::SeqCst);
    STOP.store(0, Ordering::SeqCst);
    let mut old = Vec::new();
    for sig in HANDLED {
        // SAFETY: all-zero sigaction is valid; we fill the handler, flags and mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as *const () as usize;
        // SA_RESTART: the waits and reads in progress carry on after the handler.
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: sa_mask is a valid sigset to initialize.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: as above, for the previous action.
        let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: pointers to live sigaction structs.
        if unsafe { libc::sigaction(sig, &sa, &mut prev) } != 0 {
            let e = io::Error::last_os_error();
            drop(Guard { old, outer: true });
            return Err(e);
        }
        old.push((sig, prev));
    }
    Ok(Guard { old, outer: true })
}

impl Guard {
    /// Restores the handlers and, if a signal arrived before the runtime started, dies
    /// of it now that cleanup is done (so the caller's shell sees the usual status).
    /// Does nothing for a nested guard: the outer one decides.
    pub fn reraise(self) {
        if !self.outer {
            return;
        }
        let sig = pending();
        drop(self);
        if let Some(sig) = sig {
            // SAFETY: raising a signal whose default action is restored.
            unsafe { libc::raise(sig) };
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        CHILD.store(0, Ordering::SeqCst);
        for (sig, prev) in &self.old {
            // SAFETY: restoring an action the kernel gave us.
            unsafe { libc::sigaction(*sig, prev, std::ptr::null_mut()) };
        }
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

/// Records the runtime's pid (0 when it has exited); a signal that came just before is
/// forwarded now.
pub fn set_child(pid: i32) {
    CHILD.store(pid, Ordering::SeqCst);
    if pid > 0 {
        let sig = PENDING.swap(0, Ordering::SeqCst);
        if sig != 0 {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// A signal that arrived before the runtime started.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The last signal asking the container to stop, if any arrived.
pub fn stop_requested() -> Option<i32> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}
