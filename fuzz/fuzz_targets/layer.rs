//! Fuzz target: hostile layers (names, links, whiteouts, PAX/GNU headers, truncation)
//! through every reader that does not write to disk — the streaming entry reader, the
//! merged view `ImageFs` with the start-up check over it, and `tree`'s analysis. No
//! panic; every entry path handed out is normalized (no `..`, no empty components).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use nobase::imagefs::walk::{for_each_entry, Budget, Limits};
use nobase::imagefs::{ImageFs, Keep, Options};
use nobase::root::{self, Root};
use std::io::Read;

const LIMITS: Limits = Limits {
    max_entries: 4096,
    max_bytes: 32 << 20,
    max_ratio: 100,
    ratio_floor: 32 << 20,
    max_name_bytes: 4 << 20,
};

/// Visits the merged tree (at most `budget` nodes), reading what a check would read.
fn visit(fs: &ImageFs, dir: &str, budget: &mut usize) {
    let Some(names) = fs.list(dir) else { return };
    for n in names {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        assert!(
            !n.is_empty() && n != "." && n != ".." && !n.contains('/'),
            "{n:?}"
        );
        let p = if dir == "/" {
            format!("/{n}")
        } else {
            format!("{dir}/{n}")
        };
        let _ = fs.readlink(&p);
        if let Ok(real) = root::resolve(fs, &p) {
            assert!(
                real.starts_with('/') && !real.split('/').any(|c| c == ".."),
                "{real}"
            );
            let _ = root::read_file(fs, &real, 1 << 16);
        }
        if fs.lstat(&p).is_some_and(|m| m.kind == root::FileType::Dir) {
            visit(fs, &p, budget);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let layers = common::split(data);
    let (pi, blobs) = common::image(&layers);
    let budget = Budget::new(LIMITS);
    for (desc, diff) in pi.manifest.layers.iter().zip(&pi.config.rootfs.diff_ids) {
        let _ = for_each_entry(&blobs, desc, Some(diff), &budget, |e, r| {
            assert!(
                !e.path.starts_with('/')
                    && !e
                        .path
                        .split('/')
                        .any(|c| c.is_empty() || c == "." || c == "..")
                    || e.path.is_empty(),
                "{:?}",
                e.path
            );
            let _ = std::io::copy(&mut r.take(1 << 16), &mut std::io::sink());
            Ok(())
        });
    }
    let opts = Options {
        keep: Keep::Programs,
        limits: LIMITS,
    };
    if let Ok(fs) = ImageFs::load("fuzz", &pi, &blobs, &opts) {
        visit(&fs, "/", &mut 10_000);
        let _ = nobase::check::check(&fs, "fuzz", &pi.config);
    }
    let _ = nobase::explore::analyze("fuzz", &pi, &blobs, LIMITS);
});
