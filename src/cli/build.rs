//! `nobase build BINARY…`: flags → validated [`BuildPlan`]s (one per executable) and
//! sinks → the library's build (an image, or an index of one image per platform) →
//! every sink publishes the one result.

mod dockerfile;

use super::push::Reporter;
use super::render::{human_size, print_json};
use super::Global;
use super::{progress, summary};
use anyhow::{Context, Result};
use nobase::build::extras::Extra;
use nobase::build::multi::{self, SysrootSpec};
use nobase::build::{self, BuildPlan, Built, Bundle, LayerReport};
use nobase::image::{Image, Platform};
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
                                               one image per platform, under one index
  nobase build -f Dockerfile . -t app:1        a Dockerfile, without an engine")]
pub struct Args {
    /// The executable to package; several (one per platform) make a multi-platform image;
    /// with -f, the build context [default: the Dockerfile's directory].
    #[arg(value_name = "BINARY", required_unless_present = "file", num_args = 1..)]
    binaries: Vec<PathBuf>,
    /// Build from this Dockerfile instead of one executable (`-` reads it from stdin).
    #[arg(short = 'f', long = "file", value_name = "DOCKERFILE")]
    file: Option<PathBuf>,
    /// A Dockerfile ARG value (KEY=VALUE, or KEY to take it from the environment); repeatable.
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", requires = "file")]
    build_args: Vec<String>,
    /// The Dockerfile stage to build [default: the last one].
    #[arg(long, value_name = "STAGE", requires = "file")]
    target: Option<String>,
    /// Arguments after `--` become the image's Cmd.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// Name it in the local store (NAME[:TAG]); repeatable [default: <basename>:latest when no output is named]
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// Also write it to oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG]; repeatable.
    #[arg(short = 'o', long = "output", value_name = "REF")]
    outputs: Vec<String>,
    /// Where the executable goes in the image (a PATH ending in / keeps its name) [default: /app/<basename>]
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
    /// Declare a port or a range (PORT[/tcp|udp|sctp], FIRST-LAST[/PROTO]); repeatable.
    #[arg(long, value_name = "PORT")]
    expose: Vec<String>,
    /// Add a host file or directory at an image path (SRC:DEST, DEST ending in / keeps the name); repeatable.
    #[arg(long = "add", value_name = "SRC:DEST")]
    adds: Vec<String>,
    /// Layer compression.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "none"])]
    compression: String,
    /// Compression level: gzip 1–12 (default 4), zstd 1–19 (default 3). Lower is faster,
    /// higher is smaller; the layer cache keeps each level apart.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    compression_level: Option<i32>,
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
    /// executable, in order. With -f, the target platform, as buildx's: several
    /// (comma-separated or repeated) build the Dockerfile once for each into an index.
    #[arg(long = "platform", value_name = "PLATFORM")]
    platforms: Vec<String>,
    /// Write the image even if the self-check (what `nobase check` does) says it would
    /// not start.
    #[arg(long)]
    no_check: bool,
    /// Creation time and file mtimes, in Unix seconds (up to the end of year 9999, which
    /// RFC 3339 times, and so every image tool, can write) [default: $SOURCE_DATE_EPOCH
    /// when set and not empty, else 0]
    #[arg(
        long,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(0..=MAX_EPOCH)
    )]
    source_date_epoch: Option<u64>,
    /// Compression threads [default: the number of cores]; the output does not depend on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

/// The sinks `-t` and `-o` name, or the store under `default` when they name none.
fn sinks(
    g: &Global,
    a: &Args,
    registry: &nobase::registry::Options,
    default: impl FnOnce() -> nobase::Result<NameTag>,
) -> Result<Vec<Box<dyn Sink>>> {
    let mut refs = Vec::new();
    for t in &a.tags {
        refs.push(ImageRef::Store(NameTag::parse(t)?));
    }
    for o in &a.outputs {
        refs.push(ImageRef::parse(o)?);
    }
    if refs.is_empty() {
        refs.push(ImageRef::Store(default()?));
    }
    // Outputs that cannot be written are found before any is: a failed build leaves no
    // tag or directory behind for a script to mistake for its result.
    for r in &refs {
        writable(r)?;
    }
    Ok(refs
        .iter()
        .map(|r| sink::for_build_output(r, || g.store(), registry))
        .collect::<nobase::Result<Vec<_>>>()?)
}

/// Refuses an archive output whose directory is missing, or a path that is a directory
/// where a file goes (or a file where a layout directory goes).
fn writable(r: &ImageRef) -> nobase::Result<()> {
    let cannot = |path: &Path, why: &str| {
        Error::Invalid(format!("cannot write {r}: {} {why}", path.display()))
    };
    match r {
        ImageRef::OciArchive { file, .. } | ImageRef::DockerArchive { file, .. } => {
            let dir = match file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(cannot(dir, "is not an existing directory"));
            }
            if let Err(e) = nobase::fsutil::may_write(dir) {
                return Err(cannot(dir, &format!("is not writable: {e}")));
            }
            if file.is_dir() {
                return Err(cannot(file, "is a directory; name the archive file"));
            }
        }
        ImageRef::Oci { dir, .. } if dir.exists() && !dir.is_dir() => {
            return Err(cannot(dir, "exists and is not a directory"));
        }
        ImageRef::Oci { dir, .. } => {
            // The layout, or the directory it will be made in, must take new files (a
            // read-only mount, another user's directory).
            let existing = dir
                .ancestors()
                .map(|d| {
                    if d.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        d
                    }
                })
                .find(|d| d.exists())
                .unwrap_or(Path::new("."));
            if let Err(e) = nobase::fsutil::may_write(existing) {
                return Err(cannot(existing, &format!("is not writable: {e}")));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The latest time an image's `created` can say (the end of year 9999).
const MAX_EPOCH: u64 = 253_402_300_799;

/// `--source-date-epoch`, else `SOURCE_DATE_EPOCH` (an empty value is unset, as the
/// reproducible-builds convention has it and as `NOBASE_STORE` is), else 0.
pub(super) fn epoch(a: &Args) -> nobase::Result<u64> {
    if let Some(s) = a.source_date_epoch {
        return Ok(s);
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= MAX_EPOCH)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "SOURCE_DATE_EPOCH={v:?} is not a time in Unix seconds from 0 to {MAX_EPOCH}"
                ))
            }),
        _ => Ok(0),
    }
}

/// Compression workers: `--threads`, else one per core.
fn threads(a: &Args) -> u32 {
    a.threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
        .max(1)
}

/// The one `--sysroot` of a build that has no per-platform choice (`-f`).
fn single_sysroot(a: &Args) -> nobase::Result<Option<PathBuf>> {
    let specs = a
        .sysroot
        .iter()
        .map(|s| SysrootSpec::parse(s))
        .collect::<nobase::Result<Vec<_>>>()?;
    match specs.as_slice() {
        [] => Ok(None),
        [SysrootSpec {
            platform: None,
            dir,
        }] => Ok(Some(dir.clone())),
        _ => Err(Error::Usage(
            "this build takes one --sysroot DIR, without a platform".into(),
        )),
    }
}

/// Where a build's result goes.
type Sinks = Vec<Box<dyn Sink>>;

/// Turns the arguments into one plan per executable and the sinks to publish to.
fn plan(
    g: &Global,
    a: &Args,
    registry: &nobase::registry::Options,
) -> Result<(Vec<BuildPlan>, Sinks)> {
    let binary = a
        .binaries
        .first()
        .cloned()
        .ok_or_else(|| Error::Usage("name the executable to package".into()))?;
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
        .map(|p| build::parse_ports(p))
        .collect::<nobase::Result<Vec<_>>>()?
        .concat();
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

    let base = BuildPlan {
        binary: binary.clone(),
        app_path: a.path.clone(),
        entrypoint,
        cmd,
        env,
        workdir: a.workdir.clone(),
        user: a.user.as_deref().map(parse_user).transpose()?,
        labels,
        expose,
        adds,
        compression: Compression::parse(&a.compression)?,
        compression_level: Compression::parse(&a.compression)?.check_level(a.compression_level)?,
        epoch: epoch(a)?,
        bundle: if a.bundle == "never" {
            Bundle::Never
        } else {
            Bundle::Auto
        },
        threads: threads(a),
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
    // Several executables share one image path: name the image after it.
    let named = match (plans.len(), &plans[0].app_path) {
        (1, _) | (_, None) => binary,
        (_, Some(p)) => PathBuf::from(p),
    };
    let sinks = sinks(g, a, registry, || default_name(&named))?;
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
                "code": w.kind,
                "message": w.message,
                "add": w.adds.iter().map(|x| format!("{}:{}", x.source, x.dest)).collect::<Vec<_>>(),
                "with": null,
            })
        })
        .collect();
    out.extend(b.notices.iter().map(|(code, m)| {
        json!({
            "kind": code,
            "code": code,
            "message": m,
            "add": [],
            "with": null,
        })
    }));
    if let Some(r) = &b.report {
        out.extend(r.problems.iter().map(|p| {
            json!({
                "kind": p.code,
                "code": p.code,
                "message": format!("the image will not start: {}", p.message),
                "add": [],
                "with": null,
            })
        }));
        out.extend(r.warnings.iter().map(|w| {
            json!({
                "kind": w.code,
                "code": w.code,
                "message": w.message,
                "add": [],
                "with": w.with,
            })
        }));
    }
    out
}

/// One platform's image of a build, for the report.
pub(super) struct Part<'a> {
    /// Its manifest and config.
    image: &'a nobase::image::PlatformImage,
    /// Its layers.
    layers: &'a [LayerReport],
    /// The loader and libraries bundled for it (the summary says who needed each).
    bundled: Option<&'a nobase::build::bundle::Bundled>,
    /// Fields its JSON object gets besides platform, digest, size and layers.
    extra: serde_json::Value,
}

/// Credentials from the command line are for one registry: the registry outputs'
/// host, to which they are bound (a Dockerfile's FROM image on another host is pulled
/// without them; config.json still answers for it). Outputs on two hosts are refused:
/// one host's password would be sent to the other.
fn bind_creds(a: &Args, registry: &mut nobase::registry::Options) -> nobase::Result<()> {
    let Some(given) = registry.creds.as_mut() else {
        return Ok(());
    };
    let mut hosts = Vec::new();
    for o in &a.outputs {
        if let Some(h) = ImageRef::parse(o)?.registry_host() {
            hosts.push(h.to_string());
        }
    }
    hosts.sort_unstable();
    hosts.dedup();
    match hosts.as_slice() {
        [first, second, ..] => Err(nobase::Error::Usage(format!(
            "{} would go to every registry output, {first} and {second}; build to one \
             registry, then copy to the other with `nobase push … --dest-creds`",
            given.origin.split(' ').next().unwrap_or("--creds")
        ))),
        [host] => {
            given.host = Some(host.clone());
            Ok(())
        }
        [] => Ok(()),
    }
}

/// Runs `nobase build`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let reporter = std::sync::Arc::new(Reporter::new(g, a.json));
    let mut registry = g.registry(reporter.clone())?;
    bind_creds(&a, &mut registry)?;
    if a.file.is_some() {
        return dockerfile::run(g, &a, &reporter, &registry);
    }
    let (plans, sinks) = plan(g, &a, &registry)?;
    // Blobs are written into the store first (it is the blob cache), under a guard that
    // keeps a concurrent `rmi` from collecting them before they are tagged.
    let store = g.store()?;
    let _guard = store.writer_guard()?;
    let shown = a
        .binaries
        .iter()
        .map(|b| b.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let built = {
        let _line = progress::Line::start(g, a.json, format!("building {shown}"));
        multi::build_all(&plans, store.layout()).with_context(|| format!("building {shown}"))?
    };
    let parts: Vec<Part> = built
        .builds
        .iter()
        .map(|b| Part {
            image: &b.image.manifests[0],
            layers: &b.layers,
            bundled: b.bundled.as_ref(),
            extra: json!({
                "bundled": b.bundled.as_ref().map(|b| json!({
                    "loader": b.closure.interpreter_object().map(|o| &o.path),
                    "libraries": b.closure.objects.iter().skip(1)
                        .filter(|o| o.via != nobase::loader::Via::Interpreter)
                        .map(|o| &o.path)
                        .filter(|p| !b.private_sources.contains(p))
                        .chain(&b.added_libraries)
                        .collect::<Vec<_>>(),
                    "added_loaders": b.added_loaders,
                    "private": b.private,
                    "ld_so_cache": b.cached,
                })),
                "warnings": warnings(b),
            }),
        })
        .collect();
    let extra = json!({
        "with": plans[0].with.iter().map(|e| e.name()).collect::<Vec<_>>(),
    });
    publish_parts(
        g,
        &a,
        &reporter,
        store.layout(),
        &built.image,
        &parts,
        &sinks,
        extra,
    )?;
    Ok(0)
}

/// Publishes a built single-platform image to every sink (with a summary of each
/// registry push) and reports it: JSON (with `extra`'s fields added) or text.
#[allow(clippy::too_many_arguments)]
fn publish(
    g: &Global,
    a: &Args,
    reporter: &Reporter,
    layout: &nobase::oci::Layout,
    img: &Image,
    layers: &[LayerReport],
    sinks: &[Box<dyn Sink>],
    extra: serde_json::Value,
) -> Result<()> {
    let part = Part {
        image: &img.manifests[0],
        layers,
        bundled: None,
        extra,
    };
    publish_parts(g, a, reporter, layout, img, &[part], sinks, json!({}))
}

/// Publishes an image (one platform's, or an index of `parts`) to every sink and
/// reports it. JSON: one platform's fields at the top level, or for an index
/// `platforms`, `images` (one object per platform) and every platform's `warnings`;
/// `extra`'s fields are added at the top level either way.
#[allow(clippy::too_many_arguments)]
fn publish_parts(
    g: &Global,
    a: &Args,
    reporter: &Reporter,
    layout: &nobase::oci::Layout,
    img: &Image,
    parts: &[Part],
    sinks: &[Box<dyn Sink>],
    extra: serde_json::Value,
) -> Result<()> {
    let blobs = Trusted(layout);
    for (i, s) in sinks.iter().enumerate() {
        if let Err(e) = s.publish(img, &blobs) {
            // Outputs are written in order: say which exist and which were never tried.
            let names = |list: &[Box<dyn Sink>]| {
                list.iter()
                    .map(|s| s.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (done, left) = (names(&sinks[..i]), names(&sinks[i + 1..]));
            if !done.is_empty() || !left.is_empty() {
                let done = match done.is_empty() {
                    true => "nothing was written".to_string(),
                    false => format!("written: {done}"),
                };
                let left = match left.is_empty() {
                    true => String::new(),
                    false => format!("; not written: {left}"),
                };
                g.note(format!(
                    "nobase: {done}{left} (the outputs are written in order and the build stopped at {})",
                    s.describe()
                ));
            }
            return Err(anyhow::Error::from(e).context(format!("writing {}", s.describe())));
        }
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
    // A layer readers take for a decompression bomb unless told otherwise (a large file
    // of zeros): said now, not when the image is run.
    let limits = nobase::imagefs::walk::Limits::default();
    for l in parts.iter().flat_map(|p| p.layers) {
        let (size, expands) = (l.layer.descriptor.size, l.layer.uncompressed_size);
        if expands > limits.layer_cap(size) {
            g.note(format!(
                "note: layer sha256:{} expands {} to {} (over {}× its size and over 1 GiB): check, tree, run and unpack read it only with --max-size {} or more, as a decompression bomb would be refused",
                l.layer.descriptor.digest.short(),
                human_size(size),
                human_size(expands),
                limits.max_ratio,
                suggested_size(expands)
            ));
        }
    }
    let platforms: Vec<String> = parts
        .iter()
        .map(|p| p.image.config.platform().to_string())
        .collect();
    let multi = parts.len() > 1;
    if a.json {
        let part_json = |p: &Part| {
            let mut o = json!({
                "platform": p.image.config.platform().to_string(),
                "layers": p.layers.iter().map(|l| json!({
                    "digest": l.layer.descriptor.digest.to_string(),
                    "diff_id": l.layer.diff_id.to_string(),
                    "size": l.layer.descriptor.size,
                    "uncompressed_size": l.layer.uncompressed_size,
                    "created_by": l.created_by,
                    "files": l.files,
                    "file_bytes": l.file_bytes,
                    "reused": l.layer.reused,
                })).collect::<Vec<_>>(),
            });
            merge(&mut o, &p.extra);
            o
        };
        let mut doc = if multi {
            let images: Vec<serde_json::Value> = parts
                .iter()
                .map(|p| {
                    let mut o = part_json(p);
                    o["digest"] = p.image.descriptor.digest.to_string().into();
                    o["size"] = p.image.size().into();
                    o
                })
                .collect();
            let warnings: Vec<serde_json::Value> = images
                .iter()
                .flat_map(|i| {
                    let platform = i["platform"].clone();
                    i["warnings"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |mut w| {
                            w["platform"] = platform.clone();
                            w
                        })
                })
                .collect();
            json!({"platforms": platforms, "images": images, "warnings": warnings})
        } else {
            part_json(&parts[0])
        };
        doc["digest"] = img.top.digest.to_string().into();
        doc["media_type"] = img.top.media_type.clone().into();
        doc["size"] = img.size().into();
        doc["outputs"] = sinks
            .iter()
            .map(|s| s.describe())
            .collect::<Vec<_>>()
            .into();
        merge(&mut doc, &extra);
        print_json(&doc)?;
    } else if g.quiet {
        outln!("{}", img.top.digest)?;
    } else {
        for (p, platform) in parts.iter().zip(&platforms) {
            let prefix = if multi {
                format!("{platform}: ")
            } else {
                String::new()
            };
            summary::print(g, p.layers, p.bundled, layout, &prefix)?;
            if multi {
                g.note(format!(
                    "{prefix}image sha256:{}",
                    p.image.descriptor.digest.short()
                ));
            }
            summary::warnings(g, &p.extra["warnings"], &prefix);
        }
        let what = if multi {
            format!("index of {}", platforms.join(", "))
        } else {
            platforms[0].clone()
        };
        outln!("{}  {what}  {}", img.top.digest, human_size(img.size()))?;
        for s in sinks {
            outln!("  → {}", s.describe())?;
        }
    }
    Ok(())
}

/// Adds the fields of the JSON object `from` to the object `into`.
fn merge(into: &mut serde_json::Value, from: &serde_json::Value) {
    if let (Some(d), Some(x)) = (into.as_object_mut(), from.as_object()) {
        d.extend(x.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// `-u USER[:GROUP]` as docker takes it: one or two non-empty parts (names or numbers).
fn parse_user(u: &str) -> nobase::Result<String> {
    let parts: Vec<&str> = u.split(':').collect();
    if parts.len() > 2
        || parts
            .iter()
            .any(|p| p.is_empty() || p.chars().any(char::is_whitespace))
    {
        return Err(Error::Usage(format!(
            "invalid --user {u:?}: use USER or USER:GROUP (names or numbers), e.g. 1000:1000 or nonroot"
        )));
    }
    Ok(u.to_string())
}

/// A `--max-size` value a little above `bytes`, in whole GiB (`2G`).
fn suggested_size(bytes: u64) -> String {
    format!("{}G", bytes.div_ceil(1 << 30) + 1)
}
