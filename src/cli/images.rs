//! `nobase images` and `nobase rmi`: list and remove what the local store holds.

use super::render::{human_size, print_json, print_table, printable};
use super::Global;
use anyhow::Result;
use nobase::oci::read_image;
use nobase::refs::NameTag;
use serde_json::json;

/// Arguments of `nobase images`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
With -q, only NAME:TAG, one a line (for scripts: nobase images -q | xargs nobase rmi);
with -v, full digests.

Examples:
  nobase images
  nobase images --json | jq -r '.[].digest'
  NOBASE_STORE=/srv/images nobase images")]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Arguments of `nobase rmi`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Blobs that no remaining tag uses are deleted at once (-v names each); `nobase fsck`
verifies what is left.

Examples:
  nobase rmi hello:1
  nobase rmi hello            the tag latest
  nobase images -q | grep ^test- | xargs nobase rmi")]
pub struct RmiArgs {
    /// Tags to remove (NAME[:TAG], default tag latest).
    #[arg(required = true, value_name = "NAME[:TAG]")]
    names: Vec<String>,
}

/// Runs `nobase images`.
pub fn list(g: &Global, args: ListArgs) -> Result<i32> {
    // No store yet is no images, as on a fresh machine; it is not made here, and a typo
    // in --store or NOBASE_STORE is said.
    let path = g.store_path()?;
    let store = if path.exists() {
        Some(g.store()?)
    } else {
        g.note(format!(
            "nobase: the store {} does not exist yet (the first build or pull makes it)",
            path.display()
        ));
        None
    };
    // Named images, then those under no name (as Docker's `<none>`), which only their
    // digests reach (`nobase tree sha256:HEX`).
    let listed: Vec<(Option<NameTag>, _, _)> = match &store {
        Some(s) => s
            .list()?
            .into_iter()
            .map(|(n, d)| (Some(n), d, s))
            .chain(s.unnamed()?.into_iter().map(|d| (None, d, s)))
            .collect(),
        None => Vec::new(),
    };
    let mut rows = vec![vec![
        "NAME".to_string(),
        "TAG".into(),
        "DIGEST".into(),
        "PLATFORM".into(),
        "SIZE".into(),
        "CREATED".into(),
    ]];
    let mut docs = Vec::new();
    let mut names = Vec::new();
    for (name, desc, store) in listed {
        if g.quiet && !args.json {
            // Only the names, for scripts (what rmi takes); nothing else is read.
            if let Some(n) = &name {
                names.push(n.to_string());
            }
            continue;
        }
        let shown = match &name {
            Some(n) => n.to_string(),
            None => desc.digest.to_string(),
        };
        // An entry whose blobs are unreadable is still listed, marked, not fatal.
        let (platforms, size, created, artifacts) = match read_image(&desc, store.layout()) {
            Ok(img) => (
                // Attestation manifests (BuildKit's provenance, `unknown/unknown`) are
                // no platform of the image.
                img.platform_names()
                    .iter()
                    .map(|p| printable(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                img.size(),
                img.images()
                    .next()
                    .and_then(|m| {
                        m.config
                            .created
                            .as_deref()
                            .map(|c| printable(c).into_owned())
                    })
                    .unwrap_or_default(),
                // SBOMs, signatures, attestations the index carries beside its images.
                img.artifact_kinds()
                    .iter()
                    .map(|k| printable(k).into_owned())
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                eprintln!("nobase: {shown}: {}", printable(&e.to_string()));
                ("(unreadable)".into(), desc.size, String::new(), Vec::new())
            }
        };
        let (n, t) = match &name {
            Some(n) => (Some(n.name.clone()), Some(n.tag.clone())),
            None => (None, None),
        };
        docs.push(json!({
            "name": n, "tag": t, "digest": desc.digest.to_string(),
            "platform": platforms, "size": size, "created": created,
            "artifacts": artifacts,
        }));
        rows.push(vec![
            n.unwrap_or_else(|| "<none>".into()),
            t.unwrap_or_else(|| "<none>".into()),
            if g.verbose > 0 {
                desc.digest.to_string()
            } else {
                format!("sha256:{}", desc.digest.short())
            },
            platforms,
            human_size(size),
            created,
        ]);
    }
    if args.json {
        print_json(&docs)?;
    } else if g.quiet {
        for n in names {
            outln!("{n}")?;
        }
    } else {
        print_table(&rows)?;
    }
    Ok(0)
}

/// Runs `nobase rmi`.
pub fn rmi(g: &Global, args: RmiArgs) -> Result<i32> {
    let names = args
        .names
        .iter()
        .map(|n| NameTag::parse(n))
        .collect::<nobase::Result<Vec<_>>>()?;
    let store = g.existing_store()?;
    // As `docker rmi`: every name is tried, each failure reported, and the blobs of
    // those removed collected; the first failure's exit code is the command's.
    let mut failed = None;
    let mut untagged = 0;
    for n in &names {
        match store.untag(n) {
            Ok(d) => {
                untagged += 1;
                if !g.quiet {
                    outln!("untagged {n} ({})", d.digest)?;
                }
            }
            Err(e) => {
                // Said as any command's error is, and the command goes on.
                let code = super::report(&anyhow::Error::new(e).context(format!("removing {n}")));
                failed.get_or_insert(code);
            }
        }
    }
    // Nothing removed, nothing to collect: a mistyped name leaves the store as it was.
    if untagged == 0 {
        return Ok(failed.unwrap_or(0));
    }
    let report = store.gc()?;
    super::fsck::note_failed_deletions(g, &report);
    for (d, size) in &report.blobs {
        g.explain(format_args!("deleted {d} ({})", human_size(*size)));
    }
    if report.deferred {
        g.note("blob cleanup deferred: another nobase is writing to the store; the next rmi collects them");
    } else if report.removed > 0 {
        g.note(format!(
            "deleted {} ({})",
            super::render::count(report.removed, "unused blob"),
            human_size(report.bytes)
        ));
    }
    Ok(failed.unwrap_or(0))
}
