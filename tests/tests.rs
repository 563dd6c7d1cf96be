//! End-to-end tests through the built binary, judged by real tools (umoci, runc, skopeo).

mod util;

mod closure;
mod foundation;
mod inspect;
mod perf;
