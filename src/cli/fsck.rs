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
    /// Delete corrupt blobs and temporary files left by interrupted writes.
    #[arg(long)]
    repair: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `nobase fsck`; exit 1 when problems remain.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let layout = match &a.dir {
        Some(d) => nobase::oci::Layout::open(d)?,
        None => g.store()?.layout().clone(),
    };
    let report = nobase::oci::fsck(&layout, a.repair)?;
    if a.json {
        print_json(&report)?;
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
            "{}: {} blobs ({}) verified, {} images, {} problems{}",
            layout.root().display(),
            report.blobs,
            human_size(report.bytes),
            report.images,
            report.findings.len(),
            if a.repair {
                ", repaired what could be"
            } else {
                ""
            }
        )?;
    }
    Ok(if report.clean() { 0 } else { 1 })
}
