//! `nobase inspect FILE…`: what each file is and needs, without running it.

use super::render::{print_json, printable, Escaping};
use super::Global;
use anyhow::Result;
use nobase::elf::ElfInfo;
use nobase::inspect::{inspect_path, resolve_in, FileKind, Resolved};
use nobase::loader::{Interpreter, Outcome};
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Arguments of `nobase inspect`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  nobase inspect /usr/bin/curl\n  nobase inspect --json ./hello | jq .needed\n  nobase inspect --root /usr/aarch64-linux-gnu ./hello-arm64"
)]
pub struct Args {
    /// Files to inspect.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print one JSON document (an object for one file, an array for several).
    #[arg(long)]
    pub(crate) json: bool,
    /// Resolve the loader and libraries in this tree instead of the host (a sysroot, an
    /// unpacked image).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

fn json_doc(path: &Path, kind: &FileKind, resolved: Option<&Resolved>) -> Value {
    let mut v = match kind {
        FileKind::Elf(info) => {
            let mut v = serde_json::to_value(info.as_ref()).expect("serializes");
            v["platform"] = json!(info.platform());
            if let Some(r) = resolved {
                v["resolved"] = resolved_json(r);
            }
            v
        }
        FileKind::Script(s) => json!({"interpreter": s.interpreter, "argument": s.argument}),
        _ => json!({}),
    };
    v["path"] = json!(path.display().to_string());
    v["format"] = json!(kind.format());
    v
}

/// The resolved closure as JSON: one entry per DT_NEEDED, breadth-first.
fn resolved_json(r: &Resolved) -> Value {
    let c = &r.closure;
    let interpreter = match &c.interpreter {
        Some(Interpreter::Found { object }) => {
            let o = &c.objects[*object];
            json!({"requested": o.path, "found": true, "path": o.path, "canonical": o.canonical})
        }
        Some(Interpreter::Missing { requested, reason }) => {
            json!({"requested": requested, "found": false, "reason": reason})
        }
        None => Value::Null,
    };
    let libraries: Vec<Value> = c
        .needs
        .iter()
        .map(|n| {
            let mut e = json!({"name": n.name, "needed_by": c.objects[n.requester].path});
            match &n.outcome {
                Outcome::Found { object, first } => {
                    let o = &c.objects[*object];
                    e["found"] = json!(true);
                    e["path"] = json!(o.path);
                    e["canonical"] = json!(o.canonical);
                    e["via"] = json!(o.via.describe());
                    e["first"] = json!(first);
                    if !o.hwcaps.is_empty() {
                        e["hwcaps"] = json!(o.hwcaps);
                    }
                }
                Outcome::NotFound { searched, error } => {
                    e["found"] = json!(false);
                    e["searched"] = json!(searched.iter().map(|s| &s.dir).collect::<Vec<_>>());
                    e["error"] = json!(error);
                }
            }
            if !n.skipped.is_empty() {
                e["skipped"] = json!(n.skipped);
            }
            e
        })
        .collect();
    json!({
        "root": c.root,
        "flavor": c.setup.flavor,
        "complete": c.is_complete(),
        "interpreter": interpreter,
        "libraries": libraries,
        "search": c.setup,
        "warnings": r.blind_spots.iter().map(|b| json!({
            "kind": b.kind,
            "message": b.message,
            "add": b.adds.iter().map(|a| format!("{}:{}", a.source, a.dest)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// The resolved tree in the manner of lddtree: each library once, under the object
/// that first needed it.
fn human_resolved(out: &mut dyn Write, r: &Resolved, verbose: bool) -> io::Result<()> {
    let c = &r.closure;
    match &c.interpreter {
        Some(Interpreter::Found { object }) => {
            let o = &c.objects[*object];
            writeln!(
                out,
                "  {:<10} {} => {}",
                "loader",
                printable(&o.path),
                printable(&o.canonical)
            )?;
        }
        Some(Interpreter::Missing { requested, reason }) => writeln!(
            out,
            "  {:<10} {} => not found ({})",
            "loader",
            printable(requested),
            printable(&reason.to_string())
        )?,
        None => {}
    }
    if c.needs.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "  {:<10} in {}, {} rules, without running anything",
        "libraries",
        c.root,
        match c.setup.flavor {
            nobase::loader::Flavor::Glibc => "glibc",
            nobase::loader::Flavor::Musl => "musl",
        }
    )?;
    fn walk(
        out: &mut dyn Write,
        c: &nobase::loader::Closure,
        at: usize,
        depth: usize,
        verbose: bool,
    ) -> io::Result<()> {
        for n in c.needs.iter().filter(|n| n.requester == at) {
            let pad = "    ".repeat(depth + 1);
            match &n.outcome {
                Outcome::Found {
                    object,
                    first: true,
                } => {
                    let o = &c.objects[*object];
                    if verbose {
                        // Which rule found it, as ld.so's LD_DEBUG=libs would say.
                        let (name, path) = (printable(&n.name), printable(&o.path));
                        writeln!(out, "{pad}{name} => {path}  ({})", o.via.describe())?;
                    } else {
                        let (name, path) = (printable(&n.name), printable(&o.path));
                        writeln!(out, "{pad}{name} => {path}")?;
                    }
                    if depth < 64 {
                        walk(out, c, *object, depth + 1, verbose)?;
                    }
                }
                Outcome::Found { .. } => {}
                Outcome::NotFound { error: Some(e), .. } => {
                    let e = e.to_string();
                    writeln!(
                        out,
                        "{pad}{} => not found ({})",
                        printable(&n.name),
                        printable(&e)
                    )?
                }
                Outcome::NotFound { .. } => {
                    writeln!(out, "{pad}{} => not found", printable(&n.name))?
                }
            }
        }
        Ok(())
    }
    walk(out, c, 0, 0, verbose)?;
    if verbose {
        let s = &c.setup;
        writeln!(
            out,
            "  {:<10} {} ({})",
            "search",
            s.default_dirs.join(":"),
            s.default_dirs_from
        )?;
        if let Some(cache) = &s.cache {
            writeln!(out, "  {:<10} {cache}", "cache")?;
        }
        if !s.conf_dirs.is_empty() {
            writeln!(out, "  {:<10} {}", "ld.so.conf", s.conf_dirs.join(":"))?;
        }
    }
    for b in &r.blind_spots {
        writeln!(out, "  {:<10} {}", "warning", printable(&b.message))?;
        for a in &b.adds {
            let (src, dest) = (printable(&a.source), printable(&a.dest));
            writeln!(out, "  {:<10} fix: --add {src}:{dest}", "")?;
        }
    }
    Ok(())
}

fn human(
    out: &mut impl Write,
    path: &Path,
    kind: &FileKind,
    resolved: Option<&Resolved>,
    g: &Global,
) -> io::Result<()> {
    let p = path.display();
    match kind {
        FileKind::Elf(info) if g.quiet => writeln!(out, "{p}: {}", printable(&info.summary())),
        FileKind::Elf(info) => {
            human_elf(out, path, info)?;
            match resolved {
                Some(r) => human_resolved(out, r, g.verbose > 0),
                None => Ok(()),
            }
        }
        FileKind::Script(s) => {
            write!(out, "{p}: script, interpreter {:?}", s.interpreter)?;
            if let Some(a) = &s.argument {
                write!(out, " with argument {a:?}")?;
            }
            writeln!(out)?;
            if g.quiet {
                return Ok(());
            }
            writeln!(
                out,
                "  scratch    needs {} inside the image to start",
                printable(&s.interpreter)
            )
        }
        FileKind::Directory => writeln!(out, "{p}: directory"),
        FileKind::Special(kind) => {
            writeln!(out, "{p}: {} (not an executable)", kind.replace('-', " "))
        }
        FileKind::Empty => writeln!(out, "{p}: empty file (not an executable)"),
        FileKind::Text => writeln!(out, "{p}: text file without #! (not an executable)"),
        FileKind::Archive => writeln!(
            out,
            "{p}: ar archive (a static library or a package, not an executable; programs link it in)"
        ),
        FileKind::Foreign(what, _) => writeln!(
            out,
            "{p}: {what}, not a Linux program (nobase packages Linux ELF programs; build it for Linux: GOOS=linux for Go, a linux target for Rust or C)"
        ),
        FileKind::Data => writeln!(out, "{p}: data (neither ELF nor a script)"),
    }
}

fn human_elf(out: &mut impl Write, path: &Path, info: &ElfInfo) -> io::Result<()> {
    writeln!(out, "{}: {}", path.display(), printable(&info.summary()))?;
    let row =
        |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {k:<10} {}", printable(&v));
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
    let verdict = if info.kind.is_static() {
        "starts on its own in FROM scratch: no loader, no libraries".to_string()
    } else if info.kind.is_executable() {
        // musl's loader is its C library too: libc.so (and libpthread…) are not more.
        let musl = info
            .interpreter
            .as_deref()
            .is_some_and(|i| i.rsplit('/').next().unwrap_or(i).starts_with("ld-musl-"));
        // A program that names its loader in DT_NEEDED too (node's
        // ld-linux-x86-64.so.2) needs no more for it.
        let loader = info
            .interpreter
            .as_deref()
            .map(|i| i.rsplit('/').next().unwrap_or(i));
        let libs = info
            .needed
            .iter()
            .filter(|n| !(musl && nobase::loader::musl_is_self(n)) && Some(n.as_str()) != loader)
            .count();
        let what = match (libs, musl) {
            (0, true) => "its loader (musl's, which is its C library too)".to_string(),
            (0, false) => "its loader".to_string(),
            (1, _) => "its loader and 1 library".to_string(),
            (n, _) => format!("its loader and {n} libraries"),
        };
        format!(
            "needs {what}: `nobase build` bundles {}, or rebuild statically ({})",
            if libs == 0 { "it" } else { "them" },
            nobase::build::static_rebuild_hint(info)
        )
    } else {
        "not a program: it cannot be an image's entrypoint".to_string()
    };
    row(out, "scratch", verdict)
}

/// Runs `nobase inspect`.
pub fn run(g: &Global, args: Args) -> Result<i32> {
    if !args.root.is_dir() {
        return Err(nobase::Error::Usage(format!(
            "--root {} is not a directory; give the tree to resolve libraries in",
            args.root.display()
        ))
        .into());
    }
    let mut docs = Vec::new();
    let mut code = 0;
    let mut out = Escaping(io::stdout().lock());
    for path in &args.files {
        match inspect_path(path) {
            Ok(kind) => {
                let resolved = match &kind {
                    FileKind::Elf(info)
                        if info.interpreter.is_some() || !info.needed.is_empty() =>
                    {
                        match resolve_in(path, &args.root, info) {
                            Ok(r) => Some(r),
                            Err(e) => {
                                let msg = format!(
                                    "nobase: {}: cannot resolve its libraries: {e}",
                                    path.display()
                                );
                                eprintln!("{}", printable(&msg));
                                code = code.max(e.exit_code());
                                None
                            }
                        }
                    }
                    _ => None,
                };
                if args.json {
                    docs.push(json_doc(path, &kind, resolved.as_ref()));
                } else {
                    human(&mut out, path, &kind, resolved.as_ref(), g)?;
                }
            }
            Err(e) => {
                // Keep going with the other files; the exit code says one failed. In a
                // JSON array the file keeps its place, with the error.
                eprintln!("{}", printable(&format!("nobase: {e}")));
                code = code.max(e.exit_code());
                if args.json && args.files.len() == 1 {
                    super::render::print_json_error(code, &printable(&e.to_string()));
                } else if args.json {
                    docs.push(json!({
                        "path": path.display().to_string(),
                        "format": "error",
                        "error": e.to_string(),
                    }));
                }
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
