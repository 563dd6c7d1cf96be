//! What a build put into its image, for people, on stderr: one line per layer (its
//! blob size, its files and their bytes, what made it) and, for a dynamic executable,
//! the bundled libraries with the objects that needed each. With `-v`, every entry of
//! every layer as it is in the written blob, and why each bundled file is there.

use super::render::{human_size, printable};
use super::Global;
use nobase::build::bundle::Bundled;
use nobase::build::LayerReport;
use nobase::imagefs::walk::{self, Budget, EntryKind, Limits};
use nobase::loader::{Closure, Need, Object, Outcome, Via};
use nobase::oci::Blobs;
use std::collections::BTreeMap;

/// Lines longer than this are wrapped (the bundled-library list).
const WIDTH: usize = 100;

/// Prints the summary of one platform's image: its layers (blobs in `blobs`) and what
/// was bundled for it; `prefix` leads every line (the platform of a multi-platform
/// build).
pub fn print(
    g: &Global,
    layers: &[LayerReport],
    bundled: Option<&Bundled>,
    blobs: &dyn Blobs,
    prefix: &str,
) -> anyhow::Result<()> {
    if g.quiet {
        return Ok(());
    }
    let n = layers.len();
    let why = bundled.map(reasons).unwrap_or_default();
    // What the program needs goes under the bundle layer, or under the program's own when
    // the files added with it supplied everything.
    let needs_at = layers
        .iter()
        .position(is_bundle_layer)
        .unwrap_or(n.saturating_sub(1));
    for (i, l) in layers.iter().enumerate() {
        eprintln!("{prefix}{}", printable(&layer_line(i + 1, n, l)));
        if let Some(bundled) = bundled.filter(|_| i == needs_at) {
            for (requester, libs) in needed_groups(bundled) {
                for line in wrap(&libs, &format!("  {requester} needs "), WIDTH) {
                    eprintln!("{prefix}{}", printable(&line));
                }
            }
            // Loaders by path (they are asked for by path), libraries by name.
            let added: Vec<String> = bundled
                .added_loaders
                .iter()
                .cloned()
                .chain(
                    bundled
                        .added_libraries
                        .iter()
                        .map(|p| p.rsplit('/').next().unwrap_or(p).to_string()),
                )
                .collect();
            if !added.is_empty() {
                for line in wrap(&added, "  the added files need ", WIDTH) {
                    eprintln!("{prefix}{}", printable(&line));
                }
            }
        }
        if g.verbose > 0 {
            list_files(l, blobs, &why, prefix)?;
        }
    }
    Ok(())
}

/// Prints a build's warnings (`[{message, add: ["SRC:DEST"], with}]`) with their fixes.
pub fn warnings(g: &Global, list: &serde_json::Value, prefix: &str) {
    for w in list.as_array().into_iter().flatten() {
        g.note(format!(
            "{prefix}warning: {}",
            w["message"].as_str().unwrap_or("")
        ));
        for add in w["add"].as_array().into_iter().flatten() {
            g.note(format!(
                "{prefix}  fix: --add {}",
                add.as_str().unwrap_or("")
            ));
        }
        if let Some(with) = w["with"].as_str() {
            g.note(format!("{prefix}  fix: --with {with}"));
        }
    }
}

/// `layer 1/2  sha256:7d20c717a5c3  961 KiB  2 files, 2.0 MiB  (nobase bundle: …)`
fn layer_line(i: usize, n: usize, l: &LayerReport) -> String {
    format!(
        "layer {i}/{n}  sha256:{}  {:>8}  {} {}, {}  ({}){}",
        l.layer.descriptor.digest.short(),
        human_size(l.layer.descriptor.size),
        l.files,
        if l.files == 1 { "file" } else { "files" },
        human_size(l.file_bytes),
        l.created_by,
        if l.layer.reused {
            ", reused from an earlier build"
        } else {
            ""
        }
    )
}

fn is_bundle_layer(l: &LayerReport) -> bool {
    l.created_by.starts_with("nobase bundle")
}

/// The file name of a path, for short mentions (`libc.so.6`, `hello`).
fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The bundled libraries grouped under the object that first needed each (why it is
/// there), in load order: `curl needs libcurl.so.4, libz.so.1, libc.so.6`, then
/// `libcurl.so.4 needs …`. Each library appears once, so this is the closure's tree
/// flattened, a line or two per object that brought new libraries.
fn needed_groups(b: &Bundled) -> Vec<(String, Vec<String>)> {
    let c = &b.closure;
    let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
    for (need, o) in first_finds(c) {
        let name = base(&o.path).to_string();
        match groups.iter_mut().find(|(r, _)| *r == need.requester) {
            Some((_, list)) => list.push(name),
            None => groups.push((need.requester, vec![name])),
        }
    }
    groups
        .into_iter()
        .map(|(r, list)| (base(&c.objects[r].path).to_string(), list))
        .collect()
}

/// Each library the closure loads, once, with the need that first found it; the loader
/// is left out (the layer line names it).
fn first_finds(c: &Closure) -> impl Iterator<Item = (&Need, &Object)> {
    c.needs.iter().filter_map(move |need| match need.outcome {
        Outcome::Found {
            object,
            first: true,
        } if c.objects[object].via != Via::Interpreter => Some((need, &c.objects[object])),
        _ => None,
    })
}

/// Why each bundled file is in the image, by image path (without the leading `/`).
fn reasons(b: &Bundled) -> BTreeMap<String, String> {
    let c = &b.closure;
    let exe = base(&c.executable().path).to_string();
    let mut why = BTreeMap::new();
    let mut put = |path: &str, text: String| {
        why.entry(path.trim_start_matches('/').to_string())
            .or_insert(text);
    };
    if let Some(l) = c.interpreter_object() {
        let text = format!("the loader {exe} names (PT_INTERP)");
        put(&l.path, text.clone());
        put(&l.canonical, text);
    }
    for (need, o) in first_finds(c) {
        let text = format!(
            "{} needs {} (DT_NEEDED), found through {}{}",
            base(&c.objects[need.requester].path),
            need.name,
            o.via.describe(),
            if b.cached.contains(&o.path) {
                "; listed in the image's /etc/ld.so.cache"
            } else {
                ""
            }
        );
        put(&o.path, text.clone());
        put(&o.canonical, text.clone());
        // Libraries found through $ORIGIN sit next to the program in the image.
        if let Some(i) = b.private_sources.iter().position(|s| *s == o.path) {
            if let Some(p) = b.private.get(i) {
                put(p, text);
            }
        }
    }
    why
}

/// Every entry of the layer as written (read back from its blob), with the reason for
/// bundled files.
fn list_files(
    l: &LayerReport,
    blobs: &dyn Blobs,
    why: &BTreeMap<String, String>,
    prefix: &str,
) -> anyhow::Result<()> {
    let budget = Budget::new(Limits::default());
    let desc = &l.layer.descriptor;
    walk::for_each_entry(blobs, desc, Some(&l.layer.diff_id), &budget, |e, _| {
        let (size, name) = match &e.kind {
            EntryKind::File => (human_size(e.size), format!("/{}", e.path)),
            EntryKind::Symlink(t) => (String::new(), format!("/{} -> {t}", e.path)),
            EntryKind::HardLink(t) => (String::new(), format!("/{} => /{t}", e.path)),
            // Directories are implied by the paths; whiteouts do not occur in builds.
            _ => return Ok(()),
        };
        match why.get(&e.path) {
            Some(w) => eprintln!(
                "{prefix}    {size:>8}  {}  {}",
                printable(&name),
                printable(w)
            ),
            None => eprintln!("{prefix}    {size:>8}  {}", printable(&name)),
        }
        Ok(())
    })?;
    Ok(())
}

/// Joins `items` with ", " into lines of at most `width` characters (an item is never
/// split), the first led by `lead` and the others indented to match.
fn wrap(items: &[String], lead: &str, width: usize) -> Vec<String> {
    let indent = " ".repeat(lead.chars().count());
    let mut lines = Vec::new();
    let mut cur = lead.to_string();
    let mut empty = true;
    for item in items {
        let sep = if empty { "" } else { ", " };
        if !empty && cur.chars().count() + sep.len() + item.chars().count() > width {
            cur.push(',');
            lines.push(std::mem::replace(&mut cur, indent.clone()));
            cur.push_str(item);
        } else {
            cur.push_str(sep);
            cur.push_str(item);
        }
        empty = false;
    }
    lines.push(cur);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    fn items(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wraps_at_items() {
        assert_eq!(
            wrap(&items(&["a", "b (c, d)"]), "x: ", 80),
            vec!["x: a, b (c, d)"]
        );
        assert_eq!(
            wrap(&items(&["aaaa", "bbbb", "cccc"]), "x: ", 12),
            vec!["x: aaaa,", "   bbbb,", "   cccc"]
        );
        // An item longer than the width still gets a line of its own.
        assert_eq!(
            wrap(&items(&["aaaaaaaaaaaaaaaa"]), "x: ", 5),
            vec!["x: aaaaaaaaaaaaaaaa"]
        );
    }
}
