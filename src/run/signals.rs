//! Signals while nobase runs a container. nobase must outlive its container: every
//! signal whose default would end nobase is caught, not obeyed (see [`handled`]), as
//! `docker run` catches them for its sig-proxy. Before the runtime starts they cancel
//! the run: the work stops, what was written is removed, and nobase exits with 128 + the signal's number.
//! Afterwards, those sent by another process (`kill`, systemd) are forwarded to the
//! runtime, which passes them to the container's program. Those from the terminal
//! (Ctrl-C) already reach the runtime, which is in the same process group, so they are
//! not sent twice. SIGINT, SIGTERM, SIGHUP and SIGQUIT also start the stop timer
//! ([`stop_requested`]); the others (SIGUSR1 to reload, say) leave the program running.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The signals that ask the program to stop: they start the stop timer.
const STOP_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Signals the kernel also sends for a fault of nobase's own (a trapped instruction, a
/// seccomp-denied call, `abort`): such a one keeps its default action and ends nobase
/// as before; only one sent by another process is forwarded or cancels the run.
const FAULTS: [libc::c_int; 5] = [
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGFPE,
    libc::SIGSYS,
];

/// Signals left alone, with their own dispositions:
/// * SIGKILL and SIGSTOP cannot be caught.
/// * SIGCHLD is about nobase's own child, the runtime, and means nothing to the program.
/// * SIGSEGV and SIGBUS belong to Rust's runtime, whose handler reports a stack
///   overflow; a fault of nobase's own must end it.
/// * SIGPIPE is ignored by Rust's runtime (a broken pipe is an error nobase handles),
///   and one may be nobase's own: `docker run` does not forward it either.
/// * SIGTSTP, SIGTTIN, SIGTTOU and SIGCONT are job control: their default stops or
///   resumes nobase, which kills nothing and orphans nothing, and Ctrl-Z from the
///   terminal reaches the runtime in the same process group anyway.
/// * SIGWINCH and SIGURG are ignored by default; the runtime resizes its terminal from
///   the SIGWINCH the terminal sends it.
const LEFT_ALONE: [libc::c_int; 12] = [
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGCHLD,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGPIPE,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGCONT,
    libc::SIGWINCH,
    libc::SIGURG,
];

/// The signals handled: the standard ones not [`LEFT_ALONE`] (SIGHUP … SIGSYS, among
/// them SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO, SIGPWR,
/// SIGSTKFLT) and the real-time ones the C library leaves to programs (SIGRTMIN to
/// SIGRTMAX; glibc keeps the two below SIGRTMIN for its threads).
fn handled() -> Vec<libc::c_int> {
    (1..32)
        .filter(|s| !LEFT_ALONE.contains(s))
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
        .collect()
}

/// The runtime's pid once it runs (0 before).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal that arrived before the runtime started (0: none).
static PENDING: AtomicI32 = AtomicI32::new(0);
/// A signal that asked the container to stop (0: none), for the stop timer.
static STOP: AtomicI32 = AtomicI32::new(0);
/// nobase's own pid, to tell the signals it caused itself.
static SELF: AtomicI32 = AtomicI32::new(0);
/// True while a [`Guard`] has the handlers installed.
static ACTIVE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only async-signal-safe work here: atomics, signal(2), raise(3) and kill(2).
    let (code, pid) = if info.is_null() {
        (libc::SI_KERNEL, 0)
    } else {
        // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler; si_pid is
        // meaningful for the codes it is used with (SI_USER, SI_QUEUE, SI_TKILL).
        unsafe { ((*info).si_code, (*info).si_pid()) }
    };
    // si_code <= 0 (SI_USER, SI_QUEUE, SI_TKILL): sent by a process, which may be nobase
    // itself (abort, raise, the kernel's SIGXFSZ for a write of its own). The
    // terminal's signals come with SI_KERNEL and were delivered to the runtime as well;
    // faults come with codes of their own, above 0.
    let from_other = code <= 0 && pid != SELF.load(Ordering::SeqCst);
    if FAULTS.contains(&sig) && !from_other {
        // A fault of nobase's own ends it as it would have without the handler: the
        // signal, blocked while this runs, is delivered with its default action on return.
        // SAFETY: signal(2) and raise(3) are async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return;
    }
    if STOP_SIGNALS.contains(&sig) {
        STOP.store(sig, Ordering::SeqCst);
    }
    let child = CHILD.load(Ordering::SeqCst);
    if child <= 0 {
        let _ = PENDING.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        return;
    }
    if from_other {
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
    // SAFETY: getpid has no preconditions.
    SELF.store(unsafe { libc::getpid() }, Ordering::SeqCst);
    let mut old = Vec::new();
    for sig in handled() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_that_would_end_nobase_is_handled_and_the_others_left_alone() {
        let h = handled();
        for (sig, want) in [
            (libc::SIGINT, true),
            (libc::SIGTERM, true),
            (libc::SIGHUP, true),
            (libc::SIGQUIT, true),
            (libc::SIGUSR1, true),
            (libc::SIGUSR2, true),
            (libc::SIGALRM, true),
            (libc::SIGVTALRM, true),
            (libc::SIGPROF, true),
            (libc::SIGXCPU, true),
            (libc::SIGXFSZ, true),
            (libc::SIGIO, true),
            (libc::SIGPWR, true),
            (libc::SIGSYS, true),
            (libc::SIGTRAP, true),
            (libc::SIGABRT, true),
            (libc::SIGRTMIN(), true),
            (libc::SIGRTMAX(), true),
            (libc::SIGKILL, false),
            (libc::SIGSTOP, false),
            (libc::SIGCHLD, false),
            (libc::SIGSEGV, false),
            (libc::SIGBUS, false),
            (libc::SIGPIPE, false),
            (libc::SIGTSTP, false),
            (libc::SIGCONT, false),
            (libc::SIGWINCH, false),
            (libc::SIGURG, false),
            // glibc's own, below SIGRTMIN.
            (libc::SIGRTMIN() - 1, false),
        ] {
            assert_eq!(h.contains(&sig), want, "signal {sig}");
        }
    }
}
