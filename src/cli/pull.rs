//! `nobase pull docker://HOST/REPO[:TAG|@DIGEST] [-t NAME:TAG]`: an image from a
//! registry into the local store, every blob verified as it streams in, layers fetched
//! in parallel.

use super::push::Reporter;
use super::render::{human_size, print_json};
use super::Global;
use anyhow::{Context, Result};
use nobase::image::{Platform, Want};
use nobase::refs::{ImageRef, NameTag};
use nobase::{source, Error};
use serde_json::json;
use std::sync::Arc;

/// Arguments of `nobase pull`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nobase pull docker://registry.example.com/team/hello:1          stored as registry.example.com/team/hello:1
  nobase pull docker://localhost:5000/hello@sha256:… -t hello:1
  nobase pull docker://registry.example.com/tool:2 --platform linux/arm64")]
pub struct Args {
    /// The image: docker://HOST/REPO[:TAG|@DIGEST] (or any reference nobase reads).
    #[arg(value_name = "SRC")]
    source: String,
    /// Name it in the store [default: HOST/REPO:TAG of the source]
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tag: Option<String>,
    /// From a multi-platform image, take this platform's (os/arch[/variant]) [default: this machine's]
    #[arg(long, value_name = "PLATFORM", conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Keep every platform of a multi-platform image (the index as the registry has it).
    #[arg(long)]
    all_platforms: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

/// Runs `nobase pull`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let src = ImageRef::parse(&a.source)?;
    let name = match (&a.tag, &src) {
        (Some(t), _) => NameTag::parse(t)?,
        (None, ImageRef::Registry(r)) => match &r.tag {
            Some(tag) => NameTag::parse(&format!("{}/{}:{tag}", r.host, r.repository))?,
            None => {
                return Err(Error::Usage(format!(
                    "{src} names no tag; give the store name with -t NAME[:TAG]"
                ))
                .into())
            }
        },
        // `docker pull 127.0.0.1:5000/app:1` is a registry; here a bare name is the store.
        (None, ImageRef::Store(n)) => {
            return Err(Error::Usage(format!(
                "{src} is a name in the local store, not a registry; to pull it from a registry give docker://{n}"
            ))
            .into())
        }
        (None, ImageRef::StoreDigest { name: Some(_), .. }) => {
            return Err(Error::Usage(format!(
                "{src} names an image of the local store by digest, not a registry; to pull it from a registry give docker://{}",
                a.source
            ))
            .into())
        }
        // As `docker load`: the archive's own name, when it has exactly one.
        (None, ImageRef::DockerArchive { name: Some(n), .. }) => n.clone(),
        (None, ImageRef::DockerArchive { file, name: None }) => {
            let tags: Vec<String> = nobase::archive::docker_archive_entries(file)
                .with_context(|| format!("reading {src}"))?
                .into_iter()
                .flat_map(|(_, tags, _)| tags)
                .collect();
            match tags.as_slice() {
                [one] => NameTag::parse(one)
                    .with_context(|| format!("{src} names its image {one:?}; give -t NAME[:TAG]"))?,
                [] => {
                    return Err(Error::Usage(format!(
                        "{src} has no RepoTags to name the image by; give the store name with -t NAME[:TAG]"
                    ))
                    .into())
                }
                several => {
                    return Err(Error::Usage(format!(
                        "{src} has several RepoTags ({}); give the store name with -t NAME[:TAG]",
                        several.join(", ")
                    ))
                    .into())
                }
            }
        }
        (None, _) => {
            return Err(
                Error::Usage(format!("give the store name for {src} with -t NAME[:TAG]")).into(),
            )
        }
    };
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let reporter = Arc::new(Reporter::new(g, a.json));
    let opts = g.registry(reporter.clone())?;
    // One platform: only its manifest and config are fetched, not every platform's.
    let want = if a.all_platforms {
        Want::All
    } else {
        Want::One(platform.as_ref())
    };
    let opened = source::open_for(&src, || g.existing_store(), &opts, want)
        .with_context(|| format!("reading {src}"))?;
    let image = opened.image;
    let store = g.store()?;
    let _guard = store.writer_guard()?;
    let layout = store.layout();
    let blobs = image.blobs();
    let present = blobs.iter().filter(|d| layout.has_blob(d)).count();
    let pull = || -> nobase::Result<()> {
        // Layers (the big ones) in parallel; the small documents follow in `publish`.
        let documents: Vec<_> = image
            .manifests
            .iter()
            .flat_map(|m| [&m.manifest.config.digest, &m.descriptor.digest])
            .collect();
        let layers: Vec<_> = blobs
            .iter()
            .filter(|d| !documents.contains(&&d.digest))
            .collect();
        let diff_ids = image.diff_ids()?;
        nobase::registry::parallel(&layers, opts.jobs, |d| {
            layout.copy_layer(d, diff_ids.get(&d.digest), opened.blobs.as_ref())
        })?;
        layout.publish(&image, opened.blobs.as_ref(), Some(&name.to_string()))
    };
    pull().with_context(|| format!("pulling {src}"))?;
    reporter.finish();
    let t = reporter.tally();
    let digest = image.top.digest.to_string();
    // Blobs are counted by what the store lacked; bytes by what came over the network,
    // which includes the manifests and config read to learn the image, stored or not.
    let from_registry = matches!(src, ImageRef::Registry(_));
    if a.json {
        print_json(&json!({
            "source": src.to_string(),
            "name": name.to_string(),
            "digest": digest,
            "blobs": { "downloaded": blobs.len() - present, "present": present },
            "bytes_downloaded": t.bytes_down,
        }))?;
    } else {
        let received = if from_registry {
            format!(
                ", {} received (manifests and config included)",
                human_size(t.bytes_down)
            )
        } else {
            String::new()
        };
        g.note(format!(
            "pulled {} blobs ({} {}, {} already present){received}, manifest {digest}",
            blobs.len(),
            blobs.len() - present,
            if from_registry {
                "downloaded"
            } else {
                "copied"
            },
            present,
        ));
        if g.quiet {
            outln!("{digest}")?;
        } else {
            outln!("{digest}  {name}")?;
        }
    }
    Ok(0)
}
