//! The library's error type. Each variant knows which exit code it maps to, so the CLI
//! can tell "no" (1) from "bad usage" (2) from "could not do the work" (3).

use crate::digest::{Digest, DigestError};
use std::fmt::Display;
use std::io;

/// Everything that can go wrong below the CLI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed; `action` names it with its path (`reading /x`).
    // The OS error is part of the message rather than a `source`, so that chains printed
    // with `{:#}` do not repeat it.
    #[error("{action}: {cause}{}", full_disk_hint(.cause))]
    Io {
        /// What was being done, with the object (`writing /store/index.json`).
        action: String,
        /// The OS error.
        cause: io::Error,
    },
    /// An ELF file could not be read.
    #[error("{path}: {error}")]
    Elf {
        /// The file.
        path: String,
        /// Why (not a `source`: the message says it already, and error chains would
        /// say it twice).
        error: crate::elf::ElfError,
    },
    /// The work was understood and deliberately refused (exit code 1): a dynamic binary
    /// with `--bundle never`, an image that would not start.
    #[error("{0}")]
    Refused(String),
    /// `run`'s check found that the program would not start. `run` (its only producer)
    /// exits with `run_code`, as Docker and a shell do: 127 when something is not
    /// found, 126 when it cannot be executed, 125 for the rest of the setup; elsewhere
    /// it would be a refusal (1).
    #[error("{message}")]
    WouldNotStart {
        /// What is missing or wrong, and the way past it.
        message: String,
        /// 125, 126 or 127.
        run_code: i32,
    },
    /// The request itself is wrong (exit code 2): a malformed reference or flag value.
    #[error("{0}")]
    Usage(String),
    /// An input is malformed or hostile, or lacks what was asked of it (no image of that
    /// name, no variant for that platform) (exit code 3).
    #[error("{0}")]
    Invalid(String),
    /// Bytes did not match the digest that names them.
    #[error("{what}: digest mismatch: expected {expected}, found {found}")]
    DigestMismatch {
        /// The object.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        found: Digest,
    },
    /// Talking to a registry failed: unreachable, refused the credentials, answered
    /// with an error. The message names the registry and never holds a secret.
    #[error("{0}")]
    Registry(String),
    /// A digest string is malformed.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code this error maps to (DESIGN.md conventions).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused(_) | Error::WouldNotStart { .. } => 1,
            Error::Usage(_) => 2,
            _ => 3,
        }
    }

    /// An invalid-input error from anything printable.
    pub fn invalid(msg: impl Display) -> Error {
        Error::Invalid(msg.to_string())
    }
}

/// The error for an input the user named (`what`: "the executable to package") that
/// could not be read: a plain sentence when it does not exist, the OS error otherwise.
pub fn input_error(path: &std::path::Path, what: &str, cause: io::Error) -> Error {
    if cause.kind() == io::ErrorKind::NotFound {
        Error::Invalid(format!(
            "{} does not exist; check the path of {what}",
            path.display()
        ))
    } else if cause.raw_os_error() == Some(libc::EISDIR) {
        Error::Invalid(format!(
            "{} is a directory; give the path of {what}, a file",
            path.display()
        ))
    } else {
        Error::Io {
            action: format!("cannot read {}", path.display()),
            cause,
        }
    }
}

/// Whether an error is a full disk or an exhausted quota.
pub fn is_full_disk(cause: &io::Error) -> bool {
    matches!(
        cause.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT)
    )
}

/// What to do about a full disk or quota, after the OS's words.
fn full_disk_hint(cause: &io::Error) -> &'static str {
    if is_full_disk(cause) {
        "; free space there, or write elsewhere (--store DIR, or another -o)"
    } else {
        ""
    }
}

/// Adds the action and path to an I/O error: `.io(|| format!("reading {}", p.display()))`.
pub trait IoContext<T> {
    /// Wraps an `io::Error` with the action that failed.
    fn io<F: FnOnce() -> String>(self, action: F) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io<F: FnOnce() -> String>(self, action: F) -> Result<T> {
        self.map_err(|cause| Error::Io {
            action: action(),
            cause,
        })
    }
}
