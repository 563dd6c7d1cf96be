//! Fuzz target: `run`'s extractor applies hostile layers to a real directory. Besides
//! never panicking, nothing may appear or change outside the root: a sibling sentinel
//! file stays as it was and the sandbox holds nothing but the root and the sentinel.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use nobase::run::extract::{ExtractOptions, Extractor, Limits};

/// Where escapes aimed at absolute host paths in the seeds would land.
const CANARY: &str = "/tmp/nobase-fuzz-escape";

fuzz_target!(|data: &[u8]| {
    let base = common::sandbox("extract");
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(base.join("sentinel"), b"keep").unwrap();
    let opts = ExtractOptions {
        owners: true,
        keep_setuid: false,
        devices: false,
        limits: Limits {
            max_bytes: 32 << 20,
            max_entries: 4096,
            ..Limits::default()
        },
    };
    let mut ex = Extractor::new(&root, opts, &|| false).unwrap();
    let mut ok = true;
    for layer in common::split(data) {
        if ex
            .apply_layer(Box::new(layer), layer.len() as u64, None, "fuzz layer")
            .is_err()
        {
            ok = false;
            break;
        }
    }
    if ok {
        let _ = ex.finish();
    } else {
        drop(ex);
    }
    let mut names: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["root", "sentinel"],
        "something was written beside the root"
    );
    let m = std::fs::symlink_metadata(base.join("sentinel")).unwrap();
    assert!(m.is_file(), "the sentinel was replaced");
    assert_eq!(std::fs::read(base.join("sentinel")).unwrap(), b"keep");
    assert!(
        std::fs::symlink_metadata(CANARY).is_err(),
        "{CANARY} was created"
    );
    // Modes the layer set (0000 directories) do not stop root from removing the tree.
    std::fs::remove_dir_all(&base).unwrap();
});
