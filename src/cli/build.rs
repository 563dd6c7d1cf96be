//! `nobase build BINARY`: flags → a validated [`BuildPlan`] and sinks → the library's
//! build → every sink publishes the one result.

use super::push::Reporter;
use super::render::{human_size, print_json};
use super::Global;
use super::{progress, summary};
use anyhow::{Context, Result};
use nobase::build::{self, BuildPlan, Bundle};
use nobase::layer::Compression;
use nobase::oci::Trusted;
use nobase::refs::{ImageRef, NameTag};
use nobase::sink::{self, Sink};
use nobase::Error;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `nobase build`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nobase build ./hello                         store it as hello:latest
  nobase build ./server -t server:1 -e PORT=8080 --expose 8080
  nobase build ./hello -o oci:out:hello -o docker-archive:hello.tar:hello:1
  nobase build ./tool -- --help                Cmd is [\"--help\"]
  nobase build /usr/bin/curl -t curl:1         dynamic: loader and libraries bundled
  nobase build ./hello-arm64 --sysroot /usr/aarch64-linux-gnu")]
pub struct Args {
    /// The executable to package.
    #[arg(value_name = "BINARY")]
    binary: PathBuf,
    /// Arguments after `--` become the image's Cmd.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// Name it in the local store (NAME[:TAG]); repeatable [default: <basename>:latest when no output is named]
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// Also write it to oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG]; repeatable.
    #[arg(short = 'o', long = "output", value_name = "REF")]
    outputs: Vec<String>,
    /// Where the executable goes in the image [default: /app/<basename>]
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// The program to start, replacing the executable's path (a path, or a JSON array).
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// One argument of Cmd; repeatable (or give them after --).
    #[arg(long = "cmd", value_name = "ARG", allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory (created in the image).
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// User to run as: uid[:gid] or a name.
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Add a label (KEY=VALUE); repeatable.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Declare a port (PORT[/tcp|udp|sctp]); repeatable.
    #[arg(long, value_name = "PORT")]
    expose: Vec<String>,
    /// Add a host file or directory at an image path (SRC:DEST, DEST ending in / keeps the name); repeatable.
    #[arg(long = "add", value_name = "SRC:DEST")]
    adds: Vec<String>,
    /// Layer compression.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "none"])]
    compression: String,
    /// Dynamic executables: bundle their loader and libraries (auto) or refuse (never).
    #[arg(long, default_value = "auto", value_parser = ["auto", "never"])]
    bundle: String,
    /// Take the loader and libraries from this tree instead of the host's / (cross builds:
    /// /usr/aarch64-linux-gnu).
    #[arg(long, value_name = "DIR")]
    sysroot: Option<PathBuf>,
    /// Write the image even if the self-check (what `nobase check` does) says it would
    /// not start.
    #[arg(long)]
    no_check: bool,
    /// Creation time and file mtimes, in Unix seconds.
    #[arg(
        long,
        env = "SOURCE_DATE_EPOCH",
        default_value_t = 0,
        value_name = "SECONDS"
    )]
    source_date_epoch: u64,
    /// Compression threads [default: the number of cores]; the output does not depend on it.
    #[arg(long, value_name = "N")]
    threads: Option<u32>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

/// Turns the arguments into a plan and the sinks to publish to.
fn plan(
    g: &Global,
    a: &Args,
    registry: &nobase::registry::Options,
) -> Result<(BuildPlan, Vec<Box<dyn Sink>>)> {
    let env = a
        .env
        .iter()
        .map(|s| build::parse_key_value(s, "environment variable"))
        .collect::<nobase::Result<Vec<_>>>()?;
    let labels = a
        .labels
        .iter()
        .map(|s| build::parse_key_value(s, "label"))
        .collect::<nobase::Result<BTreeMap<_, _>>>()?;
    let expose = a
        .expose
        .iter()
        .map(|p| build::parse_port(p))
        .collect::<nobase::Result<Vec<_>>>()?;
    let adds = a
        .adds
        .iter()
        .map(|s| match s.rsplit_once(':') {
            Some((src, _)) if !src.is_empty() && std::fs::symlink_metadata(src).is_err() => {
                Err(Error::Usage(format!(
                    "--add {s}: {src} does not exist on this machine; give an existing file or directory as SRC"
                )))
            }
            Some((src, dest)) if !src.is_empty() && dest.starts_with('/') => {
                Ok((PathBuf::from(src), dest.to_string()))
            }
            _ => Err(Error::Usage(format!(
                "invalid --add {s:?}: use SRC:DEST with DEST an absolute image path"
            ))),
        })
        .collect::<nobase::Result<Vec<_>>>()?;
    let entrypoint = a
        .entrypoint
        .as_deref()
        .map(build::parse_entrypoint)
        .transpose()?;
    if !a.cmd.is_empty() && !a.args.is_empty() {
        return Err(Error::Usage("give Cmd either with --cmd or after --, not both".into()).into());
    }
    let cmd = if !a.args.is_empty() {
        Some(a.args.clone())
    } else if !a.cmd.is_empty() {
        Some(a.cmd.clone())
    } else {
        None
    };

    let mut refs = Vec::new();
    for t in &a.tags {
        refs.push(ImageRef::Store(NameTag::parse(t)?));
    }
    for o in &a.outputs {
        refs.push(ImageRef::parse(o)?);
    }
    if refs.is_empty() {
        refs.push(ImageRef::Store(default_name(&a.binary)?));
    }
    let sinks = refs
        .iter()
        .map(|r| sink::for_ref_with(r, || g.store(), registry))
        .collect::<nobase::Result<Vec<_>>>()?;

    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    Ok((
        BuildPlan {
            binary: a.binary.clone(),
            app_path: a.path.clone(),
            entrypoint,
            cmd,
            env,
            workdir: a.workdir.clone(),
            user: a.user.clone(),
            labels,
            expose,
            adds,
            compression: Compression::parse(&a.compression)?,
            epoch: a.source_date_epoch,
            bundle: if a.bundle == "never" {
                Bundle::Never
            } else {
                Bundle::Auto
            },
            threads: threads.max(1),
            sysroot: a.sysroot.clone(),
            check: !a.no_check,
        },
        sinks,
    ))
}

/// `<basename>:latest`, lowercased, for builds that name no output.
fn default_name(binary: &Path) -> nobase::Result<NameTag> {
    let base = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace(
            |c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)),
            "-",
        );
    NameTag::parse(base.trim_matches(|c: char| !c.is_ascii_alphanumeric())).map_err(|_| {
        Error::Usage(format!(
            "cannot make an image name from {}; name it with -t NAME[:TAG]",
            binary.display()
        ))
    })
}

/// Runs `nobase build`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let reporter = std::sync::Arc::new(Reporter::new(g));
    let (plan, sinks) = plan(g, &a, &g.registry(reporter.clone())?)?;
    // Blobs are written into the store first (it is the blob cache), under a guard that
    // keeps a concurrent `rmi` from collecting them before they are tagged.
    let store = g.store()?;
    let _guard = store.writer_guard()?;
    let built = {
        let _line = progress::Line::start(g, a.json, format!("building {}", plan.binary.display()));
        build::build(&plan, store.layout())
            .with_context(|| format!("building {}", plan.binary.display()))?
    };
    let blobs = Trusted(store.layout());
    for s in &sinks {
        s.publish(&built.image, &blobs)
            .with_context(|| format!("writing {}", s.describe()))?;
        if s.describe().starts_with("docker://") {
            reporter.finish();
            if !a.json {
                g.note(
                    reporter
                        .tally()
                        .push_summary(&built.image.top.digest.to_string()),
                );
            }
            reporter.reset();
        }
    }
    let img = &built.image;
    let platform = img.manifests[0].config.platform().to_string();
    let warnings = built
        .bundled
        .as_ref()
        .map(|b| b.blind_spots.as_slice())
        .unwrap_or_default();
    if !a.json {
        summary::print(g, &built, store.layout(), "")?;
        for w in warnings {
            g.note(format!("warning: {}", w.message));
            for add in &w.adds {
                g.note(format!("  fix: --add {}:{}", add.source, add.dest));
            }
        }
    }
    if a.json {
        print_json(&json!({
            "digest": img.top.digest.to_string(),
            "platform": platform,
            "size": img.size(),
            "outputs": sinks.iter().map(|s| s.describe()).collect::<Vec<_>>(),
            "layers": built.layers.iter().map(|l| json!({
                "digest": l.layer.descriptor.digest.to_string(),
                "diff_id": l.layer.diff_id.to_string(),
                "size": l.layer.descriptor.size,
                "uncompressed_size": l.layer.uncompressed_size,
                "created_by": l.created_by,
                "files": l.files,
                "file_bytes": l.file_bytes,
                "reused": l.layer.reused,
            })).collect::<Vec<_>>(),
            "bundled": built.bundled.as_ref().map(|b| json!({
                "loader": b.closure.interpreter_object().map(|o| &o.path),
                "libraries": b.closure.objects.iter().skip(1)
                    .filter(|o| o.via != nobase::loader::Via::Interpreter)
                    .map(|o| &o.path)
                    .filter(|p| !b.private_sources.contains(p))
                    .collect::<Vec<_>>(),
                "private": b.private,
                "ld_so_cache": b.cached,
            })),
            "warnings": warnings.iter().map(|w| json!({
                "kind": w.kind,
                "message": w.message,
                "add": w.adds.iter().map(|x| format!("{}:{}", x.source, x.dest)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }))?;
    } else if g.quiet {
        println!("{}", img.top.digest);
    } else {
        println!("{}  {platform}  {}", img.top.digest, human_size(img.size()));
        for s in &sinks {
            println!("  → {}", s.describe());
        }
    }
    Ok(0)
}
