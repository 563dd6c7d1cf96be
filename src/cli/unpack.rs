//! `nobase unpack IMAGE DIR`: the image as an OCI runtime bundle (`DIR/config.json` and
//! `DIR/rootfs`) that `runc run --bundle DIR NAME` starts.

use super::progress;
use super::render::{human_size, printable};
use super::run::{chosen, ContainerArgs};
use super::Global;
use anyhow::{Context, Result};
use nobase::refs::ImageRef;
use std::path::PathBuf;

/// Arguments of `nobase unpack`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nobase unpack hello:1 bundle && runc run --bundle bundle hello
  nobase unpack -u 1000 -e DEBUG=1 server:1 bundle -- --port 8080

Layers are extracted safely against hostile images: nothing is written outside
DIR/rootfs, device nodes are skipped (--devices) and setuid bits dropped (--keep-setuid).
Not as root, the bundle is rootless: a user namespace maps your uid to root inside.")]
pub struct Args {
    /// The image (NAME[:TAG] in the store, oci:DIR[:REF], …).
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The bundle directory (created; must not hold a bundle already).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    #[command(flatten)]
    container: ContainerArgs,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

/// Runs `nobase unpack`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let reference = ImageRef::parse(&a.image)?;
    if a.dir.exists() && !a.dir.is_dir() {
        return Err(nobase::Error::Usage(format!(
            "{} exists and is not a directory; give a new directory for the bundle",
            a.dir.display()
        ))
        .into());
    }
    let mut opts = a.container.options()?;
    // A data or base image unpacks too, to look at its files (as umoci unpacks it).
    opts.allow_no_program = true;
    // With the registry flags, so --creds and --insecure work for docker:// too.
    let src = g
        .open_source(&reference)
        .with_context(|| format!("opening {reference}"))?;
    let u = {
        let _line = progress::reading(g, false, &reference.to_string(), chosen(&src.image, &opts));
        nobase::run::unpack(&src.image, &progress::Counted(&*src.blobs), &a.dir, &opts)
            .with_context(|| format!("unpacking {reference} into {}", a.dir.display()))?
    };
    for n in &u.notes {
        g.note(format!("nobase: {n}"));
    }
    if !g.quiet {
        outln!(
            "{}  {}  {} entries, {} → {}",
            u.manifest,
            printable(&u.platform.to_string()),
            u.stats.entries,
            human_size(u.stats.bytes),
            a.dir.display()
        )?;
        outln!(
            "  start it with: runc run --bundle {} NAME",
            a.dir.display()
        )?;
    }
    Ok(0)
}
