//! `nobase fsck [LAYOUT]`: re-hash every blob of the store (or an OCI layout) and report,
//! or repair, what is wrong.

use super::render::{human_size, print_json};
use super::Global;
use anyhow::Result;
use std::path::PathBuf;

/// Arguments of `nobase fsck`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exit status: 0 every blob verified, 1 problems remain (each named), 3 the layout could
not be read.

Examples:
  nobase fsck
  nobase fsck --repair              after a killed build or pull
  nobase fsck ./layout --json | jq .findings")]
pub struct Args {
    /// An OCI layout directory to check [default: the local store]
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Delete corrupt blobs and temporary files left by interrupted writes, and in the
    /// store the blobs no image uses.
    #[arg(long)]
    repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `nobase fsck`; exit 1 when problems remain.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let (layout, store) = match &a.dir {
        Some(d) => (nobase::oci::Layout::open(d)?, None),
        None => {
            let s = g.existing_store()?;
            (s.layout().clone(), Some(s))
        }
    };
    let report = nobase::oci::fsck(&layout, a.repair)?;
    // In the store, blobs that no image uses (a build that only pushed, an rmi deferred
    // or killed) are not a fault, but they take space: counted, and collected by
    // --repair as rmi collects them.
    let unused = match &store {
        Some(s) if a.repair => Some(s.gc()?),
        Some(s) => Some(s.unreferenced()?),
        None => None,
    };
    if let Some(u) = &unused {
        note_failed_deletions(g, u);
    }
    // In another layout they are only counted: what else uses its blobs (an image being
    // written by another tool) is not for nobase to know.
    let layout_unused = match (&store, report.unreferenced) {
        (None, Some((n, bytes))) if n > 0 => Some((n, bytes)),
        _ => None,
    };
    if a.json {
        let mut j = serde_json::to_value(&report)?;
        if let Some(u) = &unused {
            j["unused"] = serde_json::json!({
                "blobs": u.removed,
                "bytes": u.bytes,
                "removed": a.repair && !u.deferred,
            });
        } else if let (None, Some((n, bytes))) = (&store, report.unreferenced) {
            j["unused"] = serde_json::json!({"blobs": n, "bytes": bytes, "removed": false});
        }
        print_json(&j)?;
    } else {
        for f in &report.findings {
            // Messages name files of the layout, whose names may hold anything.
            outln!(
                "{:<16} {}{}",
                f.code,
                super::render::printable(&f.message),
                if f.repaired { " (removed)" } else { "" }
            )?;
        }
        if g.quiet {
            return Ok(if report.clean() { 0 } else { 1 });
        }
        outln!(
            "{}: {} ({}) verified, {}, {}{}",
            layout.root().display(),
            super::render::count(report.blobs, "blob"),
            human_size(report.bytes),
            super::render::count(report.images, "image"),
            super::render::count(report.findings.len(), "problem"),
            if a.repair {
                ", repaired what could be"
            } else {
                ""
            }
        )?;
        match &unused {
            Some(u) if u.deferred => {
                g.note("blobs no image uses were left: another nobase is writing to the store")
            }
            Some(u) if u.removed > 0 && a.repair => g.note(format!(
                "deleted {} blobs no image uses ({})",
                u.removed,
                human_size(u.bytes)
            )),
            Some(u) if u.removed > 0 => g.note(format!(
                "{} blobs ({}) no image uses: `nobase fsck --repair` deletes them",
                u.removed,
                human_size(u.bytes)
            )),
            _ => {}
        }
        if let Some((n, bytes)) = layout_unused {
            g.note(format!(
                "{n} blobs ({}) no image of the index uses (not a fault; left in place)",
                human_size(bytes)
            ));
        }
    }
    Ok(if report.clean() { 0 } else { 1 })
}

/// Says which blobs a collection could not delete, and why (a store another user
/// owns): they stay, and so does their space.
pub(super) fn note_failed_deletions(g: &Global, r: &nobase::store::GcReport) {
    if let Some((d, why)) = r.failed.first() {
        g.note(format!(
            "could not delete {} unused blobs (the first, {d}: {why}); their space stays taken",
            r.failed.len()
        ));
    }
}
