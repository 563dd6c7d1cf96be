//! `nobase tree IMAGE`: what each layer adds, changes and removes, the merged final tree,
//! and dive's efficiency and waste figures; `--ci` turns them into gates (exit 1 when a
//! rule fails).

use super::progress;
use super::render::{color_for, count, human_size, paint, print_json, print_table, printable};
use super::Global;
use anyhow::{Context, Result};
use nobase::explore::ci::{self, Gates, RuleResult};
use nobase::explore::{self, Analysis, Change, FileInfo, Kind, LayerFile, MergedFile};
use nobase::image::Platform;
use nobase::refs::ImageRef;
use nobase::Error;
use std::io::{self, IsTerminal, Write};

mod view;

/// Arguments of `nobase tree`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Each layer's entries are marked + added, ~ modified, = unchanged (stored again, identical)
or - removed, against the layers below; the merged tree names the layer each file comes
from. Efficiency and wasted bytes are dive's: a path stored by several layers counts
whole as waste, and efficiency is the smallest version of each path over all versions
stored. Identical files at different paths count as waste too, each copy beyond one,
unless its bytes are already counted: no byte is wasted twice, and the waste never
exceeds the bytes stored.

Exit status: 0 done (in --ci mode: every rule passed), 1 a --ci rule failed (named on
stderr), 2 usage error, 3 the image could not be read.

Examples:
  nobase tree hello:1
  nobase tree --layer 2 oci:./layout:app
  nobase tree --json docker-archive:app.tar | jq .wasted_bytes
  nobase tree --ci --lowest-efficiency 0.95 --highest-wasted-bytes 20MB app:1
  nobase tree -i app:1")]
pub struct Args {
    /// The image: NAME[:TAG], oci:DIR[:REF], oci-archive:FILE[:REF],
    /// docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG].
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Show only this layer: its number (1 is the bottom layer) or a digest prefix
    /// (sha256:59a9; two or more digits that are no layer's number are one too).
    #[arg(long, value_name = "N")]
    layer: Option<String>,
    /// Print one JSON document: {image, layers: [{digest, size, uncompressed_size,
    /// created_by, files}], merged, total_bytes, wasted_bytes, efficiency, largest, …}.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    read: super::ReadLimitArgs,
    /// CI mode: print the summary and check the rules given (without any: dive's
    /// defaults, --lowest-efficiency 0.9 --highest-user-wasted-percent 0.1); exit 1
    /// when one fails.
    #[arg(long)]
    ci: bool,
    /// Rule: fail when efficiency is below F, a fraction from 0 to 1 (0.9, or 90%).
    #[arg(long, value_name = "F", requires = "ci", value_parser = efficiency_arg)]
    lowest_efficiency: Option<f64>,
    /// Rule: fail when more than SIZE bytes are wasted (3000000, 20MB = 20 000 000 as in
    /// dive, 1.5GiB).
    #[arg(long, value_name = "SIZE", requires = "ci", value_parser = ci::parse_bytes)]
    highest_wasted_bytes: Option<u64>,
    /// Rule: fail when wasted bytes exceed this fraction of the bytes added after the
    /// first layer: 0.1 (dive's form) or 10% mean 10 %; more than 100 % only with % (150%).
    #[arg(long, value_name = "F", requires = "ci", value_parser = share_arg)]
    highest_user_wasted_percent: Option<f64>,
    /// Explore the image on the terminal, as dive does: the layers on the left, the
    /// selected layer's changes or the merged tree on the right (keys: ↑↓ or j/k a
    /// layer, space/b a page, g/G top/end, m or tab the merged tree, q quit).
    #[arg(short, long, conflicts_with_all = ["json", "ci", "layer"])]
    interactive: bool,
    /// Which platform of a multi-platform image to show (os/arch[/variant]).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

fn efficiency_arg(s: &str) -> Result<f64, String> {
    ci::parse_fraction(s, Some(1.0))
}

fn share_arg(s: &str) -> Result<f64, String> {
    ci::parse_fraction(s, None)
}

/// The `--json` document: the analysis, and the rules' outcome in CI mode.
#[derive(serde::Serialize)]
struct Doc<'a> {
    #[serde(flatten)]
    analysis: &'a Analysis,
    #[serde(skip_serializing_if = "Option::is_none")]
    ci: Option<CiDoc<'a>>,
}

#[derive(serde::Serialize)]
struct CiDoc<'a> {
    passed: bool,
    rules: &'a [RuleResult],
}

/// Runs `nobase tree`.
pub fn run(g: &Global, args: Args) -> Result<i32> {
    let reference = ImageRef::parse(&args.image)?;
    if args.interactive && !(io::stdin().is_terminal() && io::stdout().is_terminal()) {
        return Err(Error::Usage(
            "--interactive needs a terminal on stdin and stdout; use the plain or --json output in scripts".into(),
        )
        .into());
    }
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let src = g.open_source(&reference)?;
    let image = src.image.select(platform.as_ref())?;
    let mut analysis = {
        let _line = progress::reading(g, args.json, &src.reference, Some(image));
        let blobs = progress::Counted(&*src.blobs);
        explore::analyze(&src.reference, image, &blobs, args.read.limits()?)
            .with_context(|| format!("reading {}", src.reference))?
    };
    if args.interactive {
        view::run(&analysis).context("drawing the interactive view")?;
        warnings(g, &analysis);
        return Ok(0);
    }
    let only = match &args.layer {
        Some(sel) => {
            let digests: Vec<&str> = analysis.layers.iter().map(|l| l.digest.hex()).collect();
            let (i, note) = pick_layer(&digests, sel)?;
            if let Some(note) = note {
                g.note(note);
            }
            Some(i)
        }
        None => None,
    };
    let rules = if args.ci {
        let given = Gates {
            lowest_efficiency: args.lowest_efficiency,
            highest_wasted_bytes: args.highest_wasted_bytes,
            highest_user_wasted_percent: args.highest_user_wasted_percent,
        };
        let gates = if given.is_empty() {
            Gates::dive_defaults()
        } else {
            given
        };
        Some(ci::evaluate(&analysis, &gates))
    } else {
        None
    };
    let passed = rules
        .as_ref()
        .is_none_or(|r| r.iter().all(|rule| rule.passed));
    if args.json {
        if let Some(i) = only {
            analysis.layers.retain(|l| l.index == i);
        }
        print_json(&Doc {
            analysis: &analysis,
            ci: rules.as_deref().map(|rules| CiDoc { passed, rules }),
        })?;
    } else if !g.quiet {
        let color = color_for(&io::stdout());
        let mut out = io::stdout().lock();
        if rules.is_none() {
            for l in &analysis.layers {
                if only.is_none_or(|i| i == l.index) {
                    layer(&mut out, &analysis, l, color)?;
                }
            }
            if only.is_none() {
                merged(&mut out, &analysis, color)?;
            }
        }
        drop(out);
        summary(&analysis)?;
        if let Some(rules) = &rules {
            ci_report(rules, passed, color)?;
        }
    }
    warnings(g, &analysis);
    if let Some(rules) = &rules {
        for r in rules.iter().filter(|r| !r.passed) {
            eprintln!("nobase: CI rule {} failed: {}", r.rule, r.message);
        }
    }
    Ok(if passed { 0 } else { 1 })
}

/// What was odd about the layers, on stderr.
fn warnings(g: &Global, a: &Analysis) {
    for w in &a.warnings {
        g.note(format_args!("nobase: warning: {}", printable(w)));
    }
}

/// The layer `--layer` names: a number from 1, or a unique digest prefix (`sha256:`
/// optional), with a note for stderr when the choice could be read the other way.
/// Digits are a number when a layer has it; two or more digits that are no layer's
/// number are a digest prefix (`--layer 59` of a six-layer image is the layer
/// `sha256:59a9…`).
fn pick_layer(digests: &[&str], sel: &str) -> Result<(usize, Option<String>)> {
    let n = digests.len();
    let number = sel
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| sel.parse::<usize>().ok())
        .flatten();
    let hex = sel.strip_prefix("sha256:").unwrap_or(sel);
    let hits: Vec<usize> = (1..=n)
        .filter(|&i| !hex.is_empty() && digests[i - 1].starts_with(hex))
        .collect();
    let usage = |msg: String| Err(Error::Usage(format!("--layer {sel}: {msg}")).into());
    if let Some(i) = number.filter(|i| (1..=n).contains(i)) {
        // One digit names some digest's start more often than not: no note for it.
        let note = (sel.len() > 1 && !hits.is_empty()).then(|| {
            format!(
                "nobase: --layer {sel} is layer {i} (1 is the bottom layer); for the digest starting with {sel}, give --layer sha256:{sel}"
            )
        });
        return Ok((i, note));
    }
    // One digit is a number mistyped far more often than a digest: `--layer 4` of a
    // three-layer image is not the layer whose digest starts with 4.
    if number.is_some() && sel.len() == 1 {
        return usage(format!(
            "the image has layers 1 to {n} (1 is the bottom layer)"
        ));
    }
    match hits[..] {
        [i] if number.is_some() => Ok((
            i,
            Some(format!(
                "nobase: the image has no layer {sel} (it has 1 to {n}); showing layer {i}, whose digest starts with {sel}"
            )),
        )),
        [i] => Ok((i, None)),
        [] if number.is_some() => usage(format!(
            "the image has layers 1 to {n} (1 is the bottom layer), and no layer's digest starts with {sel}"
        )),
        [] => usage(format!(
            "no layer has that number or digest (the image has layers 1 to {n}; a digest prefix looks like sha256:{})",
            digests.first().map_or("", |d| &d[..d.len().min(4)])
        )),
        [first, ..] if hits.iter().all(|&i| digests[i - 1] == digests[first - 1]) => {
            usage(format!(
                "layers {} have the same digest; choose one by its number: --layer {first}",
                and_list(&hits)
            ))
        }
        _ => usage(format!(
            "the digests of layers {} start with it; give more digits, or the layer's number",
            and_list(&hits)
        )),
    }
}

/// `2 and 5`, `1, 2 and 5`.
fn and_list(items: &[usize]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|i| i.to_string()).collect();
            format!("{} and {last}", init.join(", "))
        }
    }
}

/// `drwxr-xr-x`, as `ls -l` shows a mode.
fn perm_string(kind: Kind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::File | Kind::Hardlink => '-',
        Kind::Other => '?',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (who, (bit, set_x, set_no_x)) in special.iter().enumerate() {
        let shift = 6 - 3 * who as u32;
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & bit != 0) {
            (true, true) => *set_x,
            (false, true) => *set_no_x,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// One line of a drawn tree: the branch drawing and name, the item it shows (`None`
/// for a directory only implied by the paths below it), and the bytes under it.
struct Line {
    drawing: String,
    item: Option<usize>,
    total: u64,
}

/// Draws paths (in [`explore::tree_order`]) as a tree with `├──`/`└──` branches,
/// adding the directories they imply, handing each line to `emit` as it is drawn. A
/// directory's total is the sum of `size` of the items under it for which `counted`
/// holds.
fn draw<T>(
    items: &[T],
    path: impl Fn(&T) -> &str,
    size: impl Fn(&T) -> u64,
    counted: impl Fn(&T) -> bool,
    mut emit: impl FnMut(Line) -> io::Result<()>,
) -> io::Result<()> {
    struct Node {
        name: String,
        item: Option<usize>,
        children: Vec<usize>,
        total: u64,
    }
    let mut nodes = vec![Node {
        name: String::new(),
        item: None,
        children: Vec::new(),
        total: 0,
    }];
    for (i, it) in items.iter().enumerate() {
        let comps: Vec<&str> = path(it).split('/').filter(|c| !c.is_empty()).collect();
        let mut at = 0;
        for (depth, comp) in comps.iter().enumerate() {
            let last = depth + 1 == comps.len();
            // Items come in tree order, so an existing child can only be the newest.
            let existing = nodes[at]
                .children
                .last()
                .copied()
                .filter(|&c| nodes[c].name == *comp && !(last && nodes[c].item.is_some()));
            at = match existing {
                Some(c) => c,
                None => {
                    nodes.push(Node {
                        name: comp.to_string(),
                        item: None,
                        children: Vec::new(),
                        total: 0,
                    });
                    let id = nodes.len() - 1;
                    nodes[at].children.push(id);
                    id
                }
            };
            if last {
                nodes[at].item = Some(i);
            }
        }
    }
    // Children always come after their parent in the arena, so one backward pass sums.
    for id in (0..nodes.len()).rev() {
        let own = nodes[id]
            .item
            .map(|i| &items[i])
            .filter(|it| counted(it))
            .map_or(0, &size);
        let below: u64 = nodes[id].children.iter().map(|&c| nodes[c].total).sum();
        nodes[id].total = own + below;
    }
    // Depth first, drawing each line as it is reached; `lasts[d]` says whether the
    // ancestor at depth d was the last of its siblings (no more `│` below it).
    let mut lasts: Vec<bool> = Vec::new();
    let mut stack: Vec<(usize, usize, bool)> = nodes[0]
        .children
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &c)| (c, 0, k == 0))
        .collect();
    while let Some((id, depth, last)) = stack.pop() {
        lasts.truncate(depth);
        let mut drawing: String = lasts
            .iter()
            .map(|&l| if l { "    " } else { "│   " })
            .collect();
        drawing.push_str(if last { "└── " } else { "├── " });
        drawing.push_str(&printable(&nodes[id].name));
        emit(Line {
            drawing,
            item: nodes[id].item,
            total: nodes[id].total,
        })?;
        lasts.push(last);
        for (k, &c) in nodes[id].children.iter().rev().enumerate() {
            stack.push((c, depth + 1, k == 0));
        }
    }
    Ok(())
}

/// Draws `items` as a tree, each row led by the cell (and colour) `lead` gives it, then
/// permissions, owner, size (a directory's: the bytes under it) and the branch.
fn tree_rows<T>(
    out: &mut impl Write,
    items: &[T],
    info: impl Fn(&T) -> &FileInfo,
    lead: impl Fn(&T) -> (&'static str, String),
    removed: impl Fn(&T) -> bool,
    color: bool,
) -> io::Result<()> {
    // Widths are known before drawing (sizes are at most 8 characters: `1023 KiB`), so
    // each line is written as it is drawn, however many entries the tree has.
    let owner = |f: &FileInfo| format!("{}:{}", f.uid, f.gid);
    let lead_w = items.iter().map(|it| lead(it).1.len()).max().unwrap_or(1);
    let owner_w = items
        .iter()
        .map(|it| owner(info(it)).len())
        .max()
        .unwrap_or(0);
    let (perm_w, size_w) = (10, 8);
    draw(
        items,
        |it| &info(it).path,
        |it| info(it).size,
        // A hard link is one more name of a file counted where it is stored.
        |it| !removed(it) && info(it).kind != Kind::Hardlink,
        |line| {
            let Some(it) = line.item.map(|i| &items[i]) else {
                // A directory only implied by the paths below it.
                let size = human_size(line.total);
                return writeln!(
                    out,
                    "  {:lead_w$} {:perm_w$} {:owner_w$} {size:>size_w$}  {}",
                    "", "", "", line.drawing
                );
            };
            let f = info(it);
            let (code, first) = lead(it);
            let (perm, own) = if removed(it) {
                (String::new(), String::new())
            } else {
                (perm_string(f.kind, f.mode), owner(f))
            };
            let size = match f.kind {
                Kind::Dir if !removed(it) => line.total,
                _ => f.size,
            };
            let drawing = match (f.kind, &f.target) {
                (Kind::Symlink, Some(t)) => format!("{} -> {}", line.drawing, printable(t)),
                (Kind::Hardlink, Some(t)) => format!("{} => {}", line.drawing, printable(t)),
                _ => line.drawing,
            };
            let text = format!(
                "  {first:lead_w$} {perm:perm_w$} {own:owner_w$} {:>size_w$}  {drawing}",
                human_size(size)
            );
            writeln!(out, "{}", paint(color && !code.is_empty(), code, &text))
        },
    )?;
    writeln!(out)
}

fn layer(out: &mut impl Write, a: &Analysis, l: &explore::Layer, color: bool) -> io::Result<()> {
    let head = format!(
        "Layer {}/{}  {}  {} ({} uncompressed, {} in files)",
        l.index,
        a.layers.len(),
        l.digest,
        human_size(l.size),
        human_size(l.uncompressed_size),
        human_size(l.file_bytes),
    );
    writeln!(out, "{}", paint(color, "1", &head))?;
    if let Some(c) = l
        .created_by
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        writeln!(out, "  created by: {}", printable(c))?;
    }
    let mark = |f: &LayerFile| {
        let (mark, code) = match f.change {
            Change::Added => ("+", "32"),
            Change::Modified => ("~", "33"),
            Change::Unchanged => ("=", "2"),
            Change::Removed => ("-", "31"),
        };
        (code, mark.to_string())
    };
    let removed = |f: &LayerFile| f.change == Change::Removed;
    tree_rows(out, &l.files, |f| &f.info, mark, removed, color)
}

fn merged(out: &mut impl Write, a: &Analysis, color: bool) -> io::Result<()> {
    let head = format!(
        "Merged tree  {} in {}",
        human_size(a.final_bytes),
        count(
            a.merged.iter().filter(|f| f.info.kind != Kind::Dir).count(),
            "file"
        )
    );
    writeln!(out, "{}", paint(color, "1", &head))?;
    let lead = |f: &MergedFile| ("", format!("L{}", f.layer));
    tree_rows(out, &a.merged, |f| &f.info, lead, |_| false, color)
}

fn percent(f: f64) -> String {
    format!("{:.1} %", f * 100.0)
}

fn summary(a: &Analysis) -> io::Result<()> {
    let compressed: u64 = a.layers.iter().map(|l| l.size).sum();
    print_table(&[
        vec![
            "Image".to_string(),
            format!("{} ({})", printable(&a.image), printable(&a.platform)),
        ],
        vec![
            "Total size".into(),
            format!(
                "{} of files in {} ({} compressed); final tree {}",
                human_size(a.total_bytes),
                count(a.layers.len(), "layer"),
                human_size(compressed),
                human_size(a.final_bytes)
            ),
        ],
        vec![
            "Wasted".into(),
            format!(
                "{} ({} overwritten or removed, {} in duplicate files)",
                human_size(a.wasted_bytes),
                human_size(a.wasted.overwritten_or_removed),
                human_size(a.wasted.duplicates)
            ),
        ],
        vec![
            "User wasted".into(),
            format!(
                "{} of the {} added after the first layer",
                percent(a.user_wasted_percent),
                human_size(a.user_bytes)
            ),
        ],
        vec!["Efficiency".into(), percent(a.efficiency)],
    ])?;
    let mut out = io::stdout().lock();
    let largest = a.largest.iter().map(|f| {
        let text = format!("{}  (layer {})", printable(&f.path), f.layer);
        (human_size(f.size), text)
    });
    list(&mut out, "Largest files", largest)?;
    let stored = a.inefficient.iter().map(|f| {
        // Versions, not layers: one layer may remove a path and store it again, or store
        // it twice.
        let text = format!("{}  ({} times)", printable(&f.path), f.count);
        (human_size(f.bytes), text)
    });
    // A deletion counts as a version, as in dive: a file stored once and removed later
    // was still shipped in a layer.
    list(&mut out, "Stored or removed more than once", stored)?;
    // Copies already counted as overwritten are not counted again: each group says
    // what it adds to the waste.
    let identical = a.duplicates.iter().map(|d| {
        let size = format!("{} ×{}", human_size(d.size), d.paths.len());
        let paths: Vec<_> = d.paths.iter().map(|p| printable(p)).collect();
        let text = format!("{}  ({} wasted)", paths.join(" "), human_size(d.wasted));
        (size, text)
    });
    list(&mut out, "Identical files", identical)
}

/// A titled list of (size, text) rows, sizes right-aligned; nothing when it is empty.
fn list(
    out: &mut impl Write,
    title: &str,
    items: impl Iterator<Item = (String, String)>,
) -> io::Result<()> {
    let rows: Vec<(String, String)> = items.collect();
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "{title}:")?;
    let w = rows
        .iter()
        .map(|(s, _)| s.chars().count())
        .max()
        .unwrap_or(0);
    for (size, text) in rows {
        writeln!(out, "  {size:>w$}  {text}")?;
    }
    Ok(())
}

fn ci_report(rules: &[RuleResult], passed: bool, color: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out)?;
    let failed = rules.iter().filter(|r| !r.passed).count();
    for r in rules {
        let verdict = if r.passed {
            paint(color, "32", "PASS")
        } else {
            paint(color, "1;31", "FAIL")
        };
        writeln!(out, "  {verdict}  {}: {}", r.rule, r.message)?;
    }
    let result = if passed {
        paint(color, "32", "PASS")
    } else {
        paint(color, "1;31", "FAIL")
    };
    writeln!(
        out,
        "Result: {result} ({failed} of {} failed)",
        count(rules.len(), "rule")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_picked_by_number_or_digest_prefix() {
        let d = ["0424aa", "0424bb", "9f00", "51cc", "59a9", "38f8", "38f8"];
        let pick = |sel| {
            pick_layer(&d, sel)
                .map(|(i, _)| i)
                .map_err(|e| e.to_string())
        };
        let note = |sel| pick_layer(&d, sel).unwrap().1.unwrap_or_default();
        assert_eq!(pick("2"), Ok(2));
        assert_eq!(pick("9f"), Ok(3));
        assert_eq!(pick("sha256:51"), Ok(4));
        // Digits only: a number when a layer has it, else a digest prefix, said so.
        assert_eq!(pick("59"), Ok(5));
        assert_eq!(
            note("59"),
            "nobase: the image has no layer 59 (it has 1 to 7); showing layer 5, whose digest starts with 59"
        );
        assert_eq!(pick("5"), Ok(5));
        assert_eq!(note("5"), "");
        let d2 = ["12ab", "34cd"];
        let (i, note) = pick_layer(&d2, "2").unwrap();
        assert_eq!((i, note), (2, None));
        let d12: Vec<String> = (0..12).map(|i| format!("{i:02}ff")).collect();
        let d12: Vec<&str> = d12.iter().map(|s| s.as_str()).collect();
        let (i, note) = pick_layer(&d12, "10").unwrap();
        assert_eq!(i, 10);
        assert_eq!(
            note.unwrap(),
            "nobase: --layer 10 is layer 10 (1 is the bottom layer); for the digest starting with 10, give --layer sha256:10"
        );
        assert_eq!(pick("0424b"), Ok(2));
        assert_eq!(
            pick("0424").unwrap_err(),
            "--layer 0424: the digests of layers 1 and 2 start with it; give more digits, or the layer's number"
        );
        // Two layers with one digest: more digits never help, their numbers do.
        assert_eq!(
            pick("38f8").unwrap_err(),
            "--layer 38f8: layers 6 and 7 have the same digest; choose one by its number: --layer 6"
        );
        assert_eq!(
            pick("80"),
            Err("--layer 80: the image has layers 1 to 7 (1 is the bottom layer), and no layer's digest starts with 80".into())
        );
        assert!(pick("00").unwrap_err().contains("layers 1 to 7"));
        // One digit out of range is a number, even when a digest starts with it.
        assert_eq!(
            pick("9"),
            Err("--layer 9: the image has layers 1 to 7 (1 is the bottom layer)".into())
        );
        assert_eq!(pick("sha256:9"), Ok(3));
        assert_eq!(
            pick("zz").unwrap_err(),
            "--layer zz: no layer has that number or digest (the image has layers 1 to 7; a digest prefix looks like sha256:0424)"
        );
        assert_eq!(and_list(&[1, 2, 5]), "1, 2 and 5");
    }

    #[test]
    fn modes_read_like_ls() {
        let cases = [
            (Kind::Dir, 0o755, "drwxr-xr-x"),
            (Kind::File, 0o644, "-rw-r--r--"),
            (Kind::File, 0o4755, "-rwsr-xr-x"),
            (Kind::File, 0o2644, "-rw-r-Sr--"),
            (Kind::Dir, 0o1777, "drwxrwxrwt"),
            (Kind::Symlink, 0o777, "lrwxrwxrwx"),
            (Kind::Other, 0o600, "?rw-------"),
        ];
        for (kind, mode, want) in cases {
            assert_eq!(perm_string(kind, mode), want, "{mode:o}");
        }
    }

    #[test]
    fn trees_draw_with_implied_directories_and_totals() {
        let items = [("/a/b", 5u64), ("/a/c/d", 7), ("/e", 1)];
        let mut got = Vec::new();
        draw(
            &items,
            |i| i.0,
            |i| i.1,
            |_| true,
            |l| {
                got.push((l.drawing, l.item, l.total));
                Ok(())
            },
        )
        .unwrap();
        let want = vec![
            ("├── a".to_string(), None, 12),
            ("│   ├── b".into(), Some(0), 5),
            ("│   └── c".into(), None, 7),
            ("│       └── d".into(), Some(1), 7),
            ("└── e".into(), Some(2), 1),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn the_same_path_twice_draws_twice() {
        let mut items = Vec::new();
        draw(
            &["/v/x", "/v/x"],
            |i| i,
            |_| 1,
            |_| true,
            |l| {
                items.push(l.item);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(items, vec![None, Some(0), Some(1)]);
    }
}
