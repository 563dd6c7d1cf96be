//! Fuzz target: the Dockerfile front end. The input's text up to its first NUL byte is
//! the Dockerfile and the bytes after it are `x.tar` in the build context (so `ADD
//! x.tar /d/` extracts a hostile archive). Every input parses to a plan or an error;
//! a plan whose stages start from `scratch` or earlier stages is built into a fresh
//! store. No panic, and the build writes nothing outside its store.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use nobase::build::Bundle;
use nobase::dockerfile::{self, BundleOptions, Context, Dockerfile, Op, Options};
use nobase::layer::Compression;
use nobase::store::Store;

/// True when building needs nothing but the context: no base image, no `--from` image
/// (those would be looked up in registries).
fn local_only(df: &Dockerfile) -> bool {
    let stage = |name: &str, before: usize| {
        df.stages[..before]
            .iter()
            .any(|s| s.name.as_deref() == Some(&name.to_lowercase()) || s.index.to_string() == name)
    };
    df.stages.iter().enumerate().all(|(i, s)| {
        (s.base.eq_ignore_ascii_case("scratch") || stage(&s.base, i))
            && s.instrs.iter().all(|ins| match &ins.op {
                Op::Copy(c) => c.from.as_deref().is_none_or(|f| stage(f, i)),
                _ => true,
            })
    })
}

fuzz_target!(|data: &[u8]| {
    let (text, archive) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let Ok(df) = dockerfile::parse(&text) else {
        return;
    };
    if !local_only(&df) {
        return;
    }
    let base = common::sandbox("dockerfile");
    let ctx_dir = base.join("ctx");
    std::fs::create_dir_all(ctx_dir.join("dir")).unwrap();
    std::fs::write(ctx_dir.join("x.tar"), archive).unwrap();
    std::fs::write(ctx_dir.join("a"), "a\n").unwrap();
    std::fs::write(ctx_dir.join("dir/b"), "#!/bin/sh\necho b\n").unwrap();
    std::os::unix::fs::symlink("../a", ctx_dir.join("dir/up")).unwrap();
    if let Ok(ctx) = Context::new(&ctx_dir, Some("*.md\n!keep.md\n")) {
        let store = Store::open(&base.join("store")).unwrap();
        let opts = Options {
            build_args: Default::default(),
            target: None,
            labels: Default::default(),
            compression: Compression::None,
            compression_level: None,
            epoch: 0,
            threads: 1,
            registry: Default::default(),
            bundle: BundleOptions {
                bundle: Bundle::Never,
                sysroot: None,
                check: false,
            },
            with: Vec::new(),
            platform: None,
        };
        let _ = dockerfile::build(&df, &ctx, &opts, &store);
    }
    let mut names: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() <= 2,
        "the build wrote beside its store: {names:?}"
    );
    assert_eq!(std::fs::read(ctx_dir.join("a")).unwrap(), b"a\n");
    std::fs::remove_dir_all(&base).unwrap();
});
