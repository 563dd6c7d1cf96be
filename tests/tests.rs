//! End-to-end tests through the built binary, judged by real tools (umoci, runc, skopeo).

mod util;

mod closure;
mod dockerfile;
mod foundation;
mod hardening;
mod inspect;
mod perf;
mod registry;
mod run;
mod ux;
