//! `nobase build BINARY…`: flags → validated [`BuildPlan`]s (one per executable) and
//! sinks → the library's build (an image, or an index of one image per platform) →
//! every sink publishes the one result.

use super::push::Reporter;
use super::render::{human_size, print_json};
use super::Global;
use anyhow::{Context, Result};
use nobase::build::extras::Extra;
use nobase::build::multi::{self, SysrootSpec};
use nobase::build::{self, BuildPlan, Built, Bundle};
use nobase::image::Platform;
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
  nobase build ./hello-arm64 --sysroot /usr/aarch64-linux-gnu
  nobase build ./server --with all -u nonroot  CA certificates, zoneinfo, users, /tmp
  nobase build hello-amd64 hello-arm64 --sysroot arm64=/usr/aarch64-linux-gnu -t hello:1
                                               one image per platform, under one index")]
pub struct Args {
    /// The executable to package; several (one per platform) make a multi-platform image.
    #[arg(value_name = "BINARY", required = true, num_args = 1..)]
    binaries: Vec<PathBuf>,
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
    /// /usr/aarch64-linux-gnu); with several executables, PLATFORM=DIR for each platform
    /// that needs one (arm64=/usr/aarch64-linux-gnu); repeatable.
    #[arg(long, value_name = "[PLATFORM=]DIR")]
    sysroot: Vec<String>,
    /// Add runtime data a scratch image lacks, each in its own layer: certs (CA bundle,
    /// SSL_CERT_FILE), tzdata (/usr/share/zoneinfo), passwd (root, nobody, nonroot 65532),
    /// tmp (/tmp 1777), or all; comma-separated, repeatable.
    #[arg(long = "with", value_name = "WHAT")]
    with: Vec<String>,
    /// The platform to declare (os/arch[/variant]) instead of the ELF header's: one per
    /// executable, in order.
    #[arg(long = "platform", value_name = "PLATFORM")]
    platforms: Vec<String>,
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
}

/// Where a build's result goes.
type Sinks = Vec<Box<dyn Sink>>;

/// Turns the arguments into one plan per executable and the sinks to publish to.
fn plan(
    g: &Global,
    a: &Args,
    registry: &nobase::registry::Options,
) -> Result<(Vec<BuildPlan>, Sinks)> {
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

    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    let base = BuildPlan {
        binary: a.binaries[0].clone(),
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
        sysroot: None,
        check: !a.no_check,
        with: Extra::parse_list(&a.with)?,
        platform: None,
    };
    let plans = multi::plans(&multi::Request {
        base,
        binaries: a.binaries.clone(),
        platforms: a
            .platforms
            .iter()
            .map(|p| Platform::parse(p))
            .collect::<nobase::Result<_>>()?,
        sysroots: a
            .sysroot
            .iter()
            .map(|s| SysrootSpec::parse(s))
            .collect::<nobase::Result<_>>()?,
    })?;

    let mut refs = Vec::new();
    for t in &a.tags {
        refs.push(ImageRef::Store(NameTag::parse(t)?));
    }
    for o in &a.outputs {
        refs.push(ImageRef::parse(o)?);
    }
    if refs.is_empty() {
        // Several executables share one image path: name the image after it.
        let named = match (plans.len(), &plans[0].app_path) {
            (1, _) | (_, None) => a.binaries[0].clone(),
            (_, Some(p)) => PathBuf::from(p),
        };
        refs.push(ImageRef::Store(default_name(&named)?));
    }
    let sinks = refs
        .iter()
        .map(|r| sink::for_ref_with(r, || g.store(), registry))
        .collect::<nobase::Result<Vec<_>>>()?;
    Ok((plans, sinks))
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

/// The warnings of one platform's build, as JSON objects with the same fields for text
/// output: run-time loads DT_NEEDED does not show (`add`: the `--add` lines that fix
/// them), what `nobase check` warns about (`with`: the `--with` that fixes it), and,
/// under `--no-check`, why the image would not start.
fn warnings(b: &Built) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = b
        .bundled
        .iter()
        .flat_map(|b| &b.blind_spots)
        .map(|w| {
            json!({
                "kind": w.kind,
                "message": w.message,
                "add": w.adds.iter().map(|x| format!("{}:{}", x.source, x.dest)).collect::<Vec<_>>(),
                "with": null,
            })
        })
        .collect();
    if let Some(r) = &b.report {
        out.extend(r.problems.iter().map(|p| {
            json!({
                "kind": p.code,
                "message": format!("the image will not start: {}", p.message),
                "add": [],
                "with": null,
            })
        }));
        out.extend(r.warnings.iter().map(|w| {
            json!({
                "kind": w.code,
                "message": w.message,
                "add": [],
                "with": w.with,
            })
        }));
    }
    out
}

/// One platform's image in `--json`: its manifest, layers, bundled closure, warnings.
fn image_json(b: &Built) -> serde_json::Value {
    json!({
        "platform": b.image.manifests[0].config.platform().to_string(),
        "digest": b.image.manifests[0].descriptor.digest.to_string(),
        "size": b.image.size(),
        "layers": b.layers.iter().map(|l| json!({
            "digest": l.layer.descriptor.digest.to_string(),
            "diff_id": l.layer.diff_id.to_string(),
            "size": l.layer.descriptor.size,
            "uncompressed_size": l.layer.uncompressed_size,
            "created_by": l.created_by,
            "files": l.files,
            "file_bytes": l.file_bytes,
            "reused": l.layer.reused,
        })).collect::<Vec<_>>(),
        "bundled": b.bundled.as_ref().map(|b| json!({
            "loader": b.closure.interpreter_object().map(|o| &o.path),
            "libraries": b.closure.objects.iter().skip(1)
                .filter(|o| o.via != nobase::loader::Via::Interpreter)
                .map(|o| &o.path)
                .filter(|p| !b.private_sources.contains(p))
                .collect::<Vec<_>>(),
            "private": b.private,
            "ld_so_cache": b.cached,
        })),
        "warnings": warnings(b),
    })
}

/// Runs `nobase build`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let reporter = std::sync::Arc::new(Reporter::new(g));
    let (plans, sinks) = plan(g, &a, &g.registry(reporter.clone())?)?;
    // Blobs are written into the store first (it is the blob cache), under a guard that
    // keeps a concurrent `rmi` from collecting them before they are tagged.
    let store = g.store()?;
    let _guard = store.writer_guard()?;
    let built = multi::build_all(&plans, store.layout()).with_context(|| {
        format!(
            "building {}",
            a.binaries
                .iter()
                .map(|b| b.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let img = &built.image;
    let blobs = Trusted(store.layout());
    for s in &sinks {
        s.publish(img, &blobs)
            .with_context(|| format!("writing {}", s.describe()))?;
        if s.describe().starts_with("docker://") {
            reporter.finish();
            if !a.json {
                g.note(reporter.tally().push_summary(&img.top.digest.to_string()));
            }
            reporter.reset();
        }
        if img.index.is_some() && s.describe().starts_with("docker-archive:") {
            // The format has no index: the archive holds the image this machine runs.
            if let Ok(p) = img.select(None) {
                g.note(format!(
                    "note: {} holds only the {} image (docker-archive has no index; use oci-archive: for every platform)",
                    s.describe(),
                    p.config.platform()
                ));
            }
        }
    }
    let platforms: Vec<String> = built
        .builds
        .iter()
        .map(|b| b.image.manifests[0].config.platform().to_string())
        .collect();
    let multi = built.builds.len() > 1;
    if !a.json {
        for (b, p) in built.builds.iter().zip(&platforms) {
            let prefix = if multi {
                format!("{p}: ")
            } else {
                String::new()
            };
            for w in warnings(b) {
                g.note(format!(
                    "{prefix}warning: {}",
                    w["message"].as_str().unwrap_or("")
                ));
                for add in w["add"].as_array().into_iter().flatten() {
                    g.note(format!("  fix: --add {}", add.as_str().unwrap_or("")));
                }
                if let Some(with) = w["with"].as_str() {
                    g.note(format!("  fix: --with {with}"));
                }
            }
        }
    }
    if a.json {
        let mut doc = if multi {
            json!({
                "platforms": platforms,
                "images": built.builds.iter().map(image_json).collect::<Vec<_>>(),
                "warnings": built.builds.iter().flat_map(|b| {
                    let platform = b.image.manifests[0].config.platform().to_string();
                    warnings(b)
                        .into_iter()
                        .map(move |mut w| { w["platform"] = platform.clone().into(); w })
                }).collect::<Vec<_>>(),
            })
        } else {
            let mut one = image_json(&built.builds[0]);
            if let Some(o) = one.as_object_mut() {
                o.remove("digest");
                o.remove("size");
            }
            one
        };
        doc["digest"] = img.top.digest.to_string().into();
        doc["media_type"] = img.top.media_type.clone().into();
        doc["size"] = img.size().into();
        doc["outputs"] = sinks
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .into();
        doc["with"] = plans[0]
            .with
            .iter()
            .map(|e| e.name())
            .collect::<Vec<_>>()
            .into();
        print_json(&doc)?;
    } else if g.quiet {
        println!("{}", img.top.digest);
    } else {
        for (b, p) in built.builds.iter().zip(&platforms) {
            let prefix = if multi {
                format!("{p}: ")
            } else {
                String::new()
            };
            for l in &b.layers {
                eprintln!(
                    "{prefix}layer {}  {} files, {} → {}{}  ({})",
                    l.layer.descriptor.digest.short(),
                    l.files,
                    human_size(l.file_bytes),
                    human_size(l.layer.descriptor.size),
                    if l.layer.reused { ", reused" } else { "" },
                    l.created_by
                );
            }
            if multi {
                eprintln!(
                    "{p}: image {}",
                    b.image.manifests[0].descriptor.digest.short()
                );
            }
        }
        let what = if multi {
            format!("index of {}", platforms.join(", "))
        } else {
            platforms[0].clone()
        };
        println!("{}  {what}  {}", img.top.digest, human_size(img.size()));
        for s in &sinks {
            println!("  → {}", s.describe());
        }
    }
    Ok(0)
}
