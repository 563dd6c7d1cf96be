//! End-to-end tests through the built binary, judged by real tools (umoci, runc, skopeo).

mod util;

mod check;
mod closure;
mod dockerfile;
mod docs;
mod errors;
mod extras;
mod foundation;
mod hardening;
mod hostile;
mod inspect;
mod multiarch;
mod perf;
mod registry;
mod run;
mod tree;
mod ux;
