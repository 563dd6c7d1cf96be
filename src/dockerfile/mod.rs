//! Dockerfiles without an engine: the subset that needs no operating system in the image
//! (`FROM scratch` or another image, `COPY`/`ADD`, and every instruction that only sets
//! the config) is built here, reproducibly, into an image in the store; `RUN` and the
//! other instructions that would need one are refused with their line number.
//!
//! [`parse`] turns the text into a plan ([`Dockerfile`]); [`build`] runs it against a
//! build [`Context`] and returns the image, whose blobs are in the store, for sinks to
//! publish.

mod bundle;
mod context;
mod exec;
mod fs;
mod lex;
mod pattern;
mod plan;
mod spool;
mod tarball;

pub use bundle::BundleOptions;
pub use context::Context;
pub use exec::{build, Built, Options, Warning};
pub use plan::{parse, Dockerfile, RUN_REFUSAL};

use crate::error::{IoContext, Result};
use std::path::Path;

/// The `.dockerignore` text for a build, as Docker finds it: `<Dockerfile>.dockerignore`
/// beside the Dockerfile wins over `.dockerignore` at the context root.
pub fn ignore_text(dockerfile: Option<&Path>, context: &Path) -> Result<Option<String>> {
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile {
        let mut name = df.as_os_str().to_owned();
        name.push(".dockerignore");
        candidates.push(std::path::PathBuf::from(name));
    }
    candidates.push(context.join(".dockerignore"));
    for c in candidates {
        match std::fs::read(&c) {
            Ok(bytes) => return Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).io(|| format!("reading {}", c.display())),
        }
    }
    Ok(None)
}
