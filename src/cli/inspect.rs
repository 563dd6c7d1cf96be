//! `nobase inspect FILE…`: what each file is and needs, without running it.

use super::render::print_json;
use super::Global;
use anyhow::Result;
use nobase::elf::ElfInfo;
use nobase::inspect::{inspect_path, FileKind};
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Arguments of `nobase inspect`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  nobase inspect /usr/bin/curl\n  nobase inspect --json ./hello | jq .needed"
)]
pub struct Args {
    /// Files to inspect.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print one JSON document (an object for one file, an array for several).
    #[arg(long)]
    json: bool,
}

fn json_doc(path: &Path, kind: &FileKind) -> Value {
    let mut v = match kind {
        FileKind::Elf(info) => {
            let mut v = serde_json::to_value(info.as_ref()).expect("serializes");
            v["platform"] = json!(info.platform());
            v
        }
        FileKind::Script(s) => json!({"interpreter": s.interpreter, "argument": s.argument}),
        _ => json!({}),
    };
    v["path"] = json!(path.display().to_string());
    v["format"] = json!(kind.format());
    v
}

fn human(out: &mut impl Write, path: &Path, kind: &FileKind) -> io::Result<()> {
    let p = path.display();
    match kind {
        FileKind::Elf(info) => human_elf(out, path, info),
        FileKind::Script(s) => {
            write!(out, "{p}: script, interpreter {:?}", s.interpreter)?;
            if let Some(a) = &s.argument {
                write!(out, " with argument {a:?}")?;
            }
            writeln!(out)?;
            writeln!(
                out,
                "  scratch    needs {} inside the image to start",
                s.interpreter
            )
        }
        FileKind::Directory => writeln!(out, "{p}: directory"),
        FileKind::Empty => writeln!(out, "{p}: empty file (not an executable)"),
        FileKind::Text => writeln!(out, "{p}: text file without #! (not an executable)"),
        FileKind::Data => writeln!(out, "{p}: data (neither ELF nor a script)"),
    }
}

fn human_elf(out: &mut impl Write, path: &Path, info: &ElfInfo) -> io::Result<()> {
    writeln!(out, "{}: {}", path.display(), info.summary())?;
    let row = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {k:<10} {v}");
    if let Some(s) = &info.soname {
        row(out, "soname", s.clone())?;
    }
    if !info.needed.is_empty() {
        row(out, "needed", info.needed.join(", "))?;
    }
    for n in &info.version_needs {
        row(
            out,
            "versions",
            format!("{}: {}", n.library, n.versions.join(" ")),
        )?;
    }
    if !info.rpath.is_empty() {
        row(out, "rpath", info.rpath.join(":"))?;
    }
    if !info.runpath.is_empty() {
        row(out, "runpath", info.runpath.join(":"))?;
    }
    if let Some(c) = &info.compiler {
        row(out, "compiler", c.clone())?;
    }
    if let Some(g) = &info.go {
        let mut s = g.version.clone();
        if let Some(m) = g.main_module.as_ref().or(g.path.as_ref()) {
            s.push_str(&format!(", {m}"));
        }
        if let Some(c) = g.settings.get("CGO_ENABLED") {
            s.push_str(&format!(", CGO_ENABLED={c}"));
        }
        row(out, "go", s)?;
    }
    let verdict =
        if info.kind.is_static() {
            "starts on its own in FROM scratch: no loader, no libraries".to_string()
        } else if info.kind.is_executable() {
            format!(
            "needs its loader and {} {}: `nobase build` bundles them, or rebuild statically ({})",
            info.needed.len(),
            if info.needed.len() == 1 { "library" } else { "libraries" },
            nobase::build::static_rebuild_hint(info)
        )
        } else {
            "not a program: it cannot be an image's entrypoint".to_string()
        };
    row(out, "scratch", verdict)
}

/// Runs `nobase inspect`.
pub fn run(_g: &Global, args: Args) -> Result<i32> {
    let mut docs = Vec::new();
    let mut code = 0;
    let mut out = io::stdout().lock();
    for path in &args.files {
        match inspect_path(path) {
            Ok(kind) => {
                if args.json {
                    docs.push(json_doc(path, &kind));
                } else {
                    human(&mut out, path, &kind)?;
                }
            }
            Err(e) => {
                // Keep going with the other files; the exit code says one failed.
                eprintln!("nobase: {e}");
                code = code.max(e.exit_code());
            }
        }
    }
    if args.json {
        if args.files.len() == 1 {
            if let Some(d) = docs.pop() {
                print_json(&d)?;
            }
        } else {
            print_json(&docs)?;
        }
    }
    Ok(code)
}
