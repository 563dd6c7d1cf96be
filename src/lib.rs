//! nobase: Linux executables into OCI images with no base operating system.
//!
//! The library holds every rule; the binary (`main.rs` and its `cli` module) only parses
//! arguments, calls in here and renders the results. See DESIGN.md for
//! the pipeline (inputs → plan → image tree → layers → manifest → sinks) and the module map.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod archive;
pub mod build;
pub mod check;
pub mod digest;
pub mod dockerfile;
pub mod elf;
pub mod error;
pub mod explore;
pub mod fsutil;
pub mod image;
pub mod imagefs;
pub mod inspect;
pub mod layer;
pub mod loader;
pub mod oci;
pub mod progress;
pub mod refs;
pub mod registry;
pub mod root;
pub mod run;
pub mod sink;
pub mod source;
pub mod store;
pub mod tree;

pub use error::{Error, Result};
