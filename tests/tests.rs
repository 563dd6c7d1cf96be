//! End-to-end tests through the built binary, judged by real tools (umoci, runc, skopeo).

mod util;

mod check;
mod closure;
mod docs;
mod errors;
mod foundation;
mod hardening;
mod inspect;
mod perf;
mod registry;
mod run;
mod tree;
mod ux;
