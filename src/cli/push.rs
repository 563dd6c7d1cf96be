//! `nobase push SRC DEST`: any reference to any reference (typically the store to a
//! registry), and the transfer reporter that `push`, `pull` and `build -o docker://`
//! share: a summary line on stderr, per-blob progress on a terminal, each request
//! with `-v`.

use super::progress::format_line;
use super::render::{human_size, print_json, printable};
use super::Global;
use anyhow::{Context, Result};
use nobase::image::{Descriptor, Platform, Want};
use nobase::refs::ImageRef;
use nobase::registry::{BlobOutcome, Events, Options, Transfer};
use nobase::{sink, source, Error};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Arguments of `nobase push`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nobase push hello:1 docker://registry.example.com/team/hello:1
  nobase push oci:out:hello docker://localhost:5000/hello:1
  nobase push docker://registry.example.com/a:1 docker://registry.example.com/b:1   (blobs are mounted, not copied)
  nobase push hello:1 docker-archive:hello.tar:hello:1
  nobase push docker://a.example/x:1 docker://b.example/x:1 --src-creds-file a.txt --dest-creds-file b.txt

Credentials come from --creds/--creds-file, else what skopeo login or docker login
left (--authfile or $REGISTRY_AUTH_FILE, auth.json, Docker's config.json).
--creds is for the one registry of SRC and DEST; between two registries give each
side its own with --src-creds and --dest-creds (a side without uses those files).
Credentials given for one registry are never sent to the other.")]
pub struct Args {
    /// The image to send: NAME[:TAG], oci:DIR[:REF], docker://HOST/REPO[:TAG|@DIGEST]…
    #[arg(value_name = "SRC")]
    source: String,
    /// Where to: docker://HOST/REPO[:TAG], or any other reference.
    #[arg(value_name = "DEST")]
    destination: String,
    /// Send only this platform's image of a multi-platform one (os/arch[/variant]).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Credentials for a docker:// SRC only
    #[arg(
        long,
        value_name = "USER:PASS",
        help_heading = "Registry options",
        conflicts_with_all = ["src_creds_file", "creds", "creds_file"]
    )]
    src_creds: Option<String>,
    /// A file whose first line is USER:PASS, for a docker:// SRC only
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Registry options",
        conflicts_with_all = ["creds", "creds_file"]
    )]
    src_creds_file: Option<PathBuf>,
    /// Credentials for a docker:// DEST only
    #[arg(
        long,
        value_name = "USER:PASS",
        help_heading = "Registry options",
        conflicts_with_all = ["dest_creds_file", "creds", "creds_file"]
    )]
    dest_creds: Option<String>,
    /// A file whose first line is USER:PASS, for a docker:// DEST only
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Registry options",
        conflicts_with_all = ["creds", "creds_file"]
    )]
    dest_creds_file: Option<PathBuf>,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

/// The registry options of each side of a push: credentials go to exactly one registry.
/// `--creds` names the one registry among SRC and DEST; between two registries it
/// would reach both (a password for one host sent to another), so it is refused there
/// and each side takes its own `--src-creds` / `--dest-creds`.
fn side_options(
    a: &Args,
    src: &ImageRef,
    dest: &ImageRef,
    common: Options,
) -> nobase::Result<(Options, Options)> {
    let (src_host, dest_host) = (src.registry_host(), dest.registry_host());
    let src_given = super::given_creds(
        a.src_creds.as_deref(),
        a.src_creds_file.as_deref(),
        "--src-creds",
    )?;
    let dest_given = super::given_creds(
        a.dest_creds.as_deref(),
        a.dest_creds_file.as_deref(),
        "--dest-creds",
    )?;
    for (given, flag, side, r) in [
        (&src_given, "--src-creds", "SRC", src),
        (&dest_given, "--dest-creds", "DEST", dest),
    ] {
        if given.is_some() && r.registry_host().is_none() {
            return Err(Error::Usage(format!(
                "{flag} is for a registry, and {side} ({r}) is not one (registries are docker://HOST/REPO)"
            )));
        }
    }
    let (src_creds, dest_creds) = match (common.creds.clone(), &src_host, &dest_host) {
        // One registry on both sides (a copy between its repositories, which mounts
        // blobs): the credentials are that registry's.
        (Some(c), Some(s), Some(d)) if s == d => (Some(c.clone()), Some(c)),
        (Some(_), Some(s), Some(d)) => {
            return Err(Error::Usage(format!(
                "--creds would go to both registries, {s} and {d}; say which it is for with \
                 --src-creds or --dest-creds (or --src-creds-file, --dest-creds-file), one \
                 for each that needs credentials"
            )))
        }
        (Some(c), Some(_), None) => (Some(c), None),
        (Some(c), None, Some(_)) => (None, Some(c)),
        (Some(_), None, None) => (None, None),
        (None, _, _) => (src_given, dest_given),
    };
    let both = src_host.is_some() && dest_host.is_some();
    let src_opts = Options {
        creds: src_creds,
        creds_flags: if both {
            "--src-creds or --src-creds-file"
        } else {
            common.creds_flags
        },
        ..common.clone()
    };
    let dest_opts = Options {
        creds: dest_creds,
        creds_flags: if both {
            "--dest-creds or --dest-creds-file"
        } else {
            common.creds_flags
        },
        ..common
    };
    Ok((src_opts, dest_opts))
}

/// Runs `nobase push`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let src = ImageRef::parse(&a.source)?;
    let dest = ImageRef::parse(&a.destination)?;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let reporter = Arc::new(Reporter::new(g, a.json));
    let (src_opts, dest_opts) = side_options(&a, &src, &dest, g.registry(reporter.clone())?)?;
    let shown_dest = match &dest {
        ImageRef::Registry(r) => r.to_string(),
        other => other.to_string(),
    };
    // `docker push 127.0.0.1:5000/app:1` sends to that registry; here a name without
    // docker:// is the local store's, which a docker user would not guess.
    if let ImageRef::Store(n) = &dest {
        if n.name
            .split_once('/')
            .is_some_and(|(first, _)| nobase::refs::is_registry_host(first))
        {
            g.note(format!(
                "note: {n} is a name in the local store; to send the image to that registry, give docker://{n}"
            ));
        }
    }
    let sink = sink::for_ref_with(&dest, || g.store(), &dest_opts)?;
    // With --platform, a registry is asked for that platform's manifest and config only.
    let want = match &platform {
        Some(p) => Want::One(Some(p)),
        None => Want::All,
    };
    let opened = source::open_for(&src, || g.existing_store(), &src_opts, want)
        .with_context(|| format!("reading {src}"))?;
    let image = match &platform {
        Some(_) => opened.image,
        // A docker-archive has no index: it gets this machine's image, said so, and the
        // digest printed is the one written (without one for this machine, the archive
        // writer refuses, naming the choices).
        None if matches!(dest, ImageRef::DockerArchive { .. })
            && opened.image.manifests.len() > 1 =>
        {
            match opened.image.single(None) {
                Ok(one) => {
                    let left: Vec<String> = opened
                        .image
                        .images()
                        .filter(|m| m.descriptor.digest != one.top.digest)
                        .map(|m| m.config.platform().to_string())
                        .collect();
                    g.note(format!(
                        "note: {} holds only the {} image, leaving out {} (docker-archive has \
                         no index; --platform chooses another, oci-archive: keeps every platform)",
                        a.destination,
                        one.manifests[0].config.platform(),
                        left.join(", ")
                    ));
                    one
                }
                Err(_) => opened.image,
            }
        }
        None => opened.image,
    };
    // Every sink into a layout (the store's too) holds the store's collection lock while
    // it publishes (`Layout::publish`).
    sink.publish(&image, opened.blobs.as_ref())
        .with_context(|| format!("push to {shown_dest}"))?;
    reporter.finish();
    let t = reporter.tally();
    if a.json {
        // A registry's tally says what was sent; a layout or archive holds every blob
        // of the image afterwards (it said 0 uploaded, 0 existing for 4 blobs written).
        let blobs = if matches!(dest, ImageRef::Registry(_)) {
            json!({
                "uploaded": t.uploaded,
                "mounted": t.mounted,
                "existing": t.existing,
            })
        } else {
            let all = image.blobs();
            json!({
                "total": all.len(),
                "bytes": all.iter().map(|d| d.size).sum::<u64>(),
            })
        };
        let mut doc = json!({
            "source": src.to_string(),
            "destination": dest.to_string(),
            "digest": image.top.digest.to_string(),
            "blobs": blobs,
        });
        if matches!(dest, ImageRef::Registry(_)) {
            doc["bytes_uploaded"] = json!(t.bytes_up);
        }
        print_json(&doc)?;
    } else {
        if matches!(dest, ImageRef::Registry(_)) {
            g.note(t.push_summary(&image.top.digest.to_string()));
        }
        if g.quiet {
            outln!("{}", image.top.digest)?;
        } else {
            outln!("{}  → {}", image.top.digest, sink.describe())?;
        }
    }
    Ok(0)
}

/// Counts of what moved.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub uploaded: usize,
    pub mounted: usize,
    pub existing: usize,
    pub downloaded: usize,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Tally {
    /// `pushed 3 blobs (1 uploaded, 1 mounted, 1 existing skipped), 12.4 MiB sent, manifest sha256:…`
    pub fn push_summary(&self, digest: &str) -> String {
        format!(
            "pushed {} blobs ({} uploaded, {} mounted, {} existing skipped), {} sent, manifest {digest}",
            self.uploaded + self.mounted + self.existing,
            self.uploaded,
            self.mounted,
            self.existing,
            human_size(self.bytes_up)
        )
    }
}

/// One blob's bar on a terminal.
struct Bar {
    label: String,
    done: u64,
    total: u64,
    started: Instant,
    finished: Option<String>,
}

/// Reports transfers: counts for the summary, `-v` request lines, retry notices, and
/// live per-blob progress when stderr is a terminal (redrawn at most ten times a
/// second; never when output is captured, so logs stay clean).
pub struct Reporter {
    quiet: bool,
    verbose: bool,
    live: bool,
    tally: Mutex<Tally>,
    bars: Mutex<(BTreeMap<String, Bar>, usize, Instant)>,
}

impl Reporter {
    /// A reporter following the global `-q`/`-v`; bars only where a progress line may
    /// be drawn (a terminal, and not `--json`).
    pub fn new(g: &Global, json: bool) -> Reporter {
        Reporter {
            quiet: g.quiet,
            verbose: g.verbose > 0,
            live: super::progress::live(g, json),
            tally: Mutex::new(Tally::default()),
            bars: Mutex::new((BTreeMap::new(), 0, Instant::now())),
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts counting afresh (between outputs of one build).
    pub fn reset(&self) {
        *self.tally.lock().unwrap_or_else(|p| p.into_inner()) = Tally::default();
    }

    /// Draws the final state of the bars and forgets them.
    pub fn finish(&self) {
        self.redraw(true);
        let mut b = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        b.0.clear();
        b.1 = 0;
    }

    fn redraw(&self, force: bool) {
        if !self.live {
            return;
        }
        let mut guard = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let (bars, drawn, last) = &mut *guard;
        if !force && last.elapsed() < Duration::from_millis(100) {
            return;
        }
        *last = Instant::now();
        let mut out = String::new();
        if *drawn > 0 {
            // Back to the first bar's line.
            out.push_str(&format!("\x1b[{}A", *drawn));
        }
        for bar in bars.values() {
            let line = match &bar.finished {
                Some(f) => format!("{}  {f}", bar.label),
                None => format_line(&bar.label, bar.done, bar.total, bar.started.elapsed()),
            };
            out.push_str(&format!("\r\x1b[2K{line}\n"));
        }
        *drawn = bars.len();
        let _ = std::io::stderr().write_all(out.as_bytes());
    }

    fn set_bar(&self, desc: &Descriptor, update: impl FnOnce(&mut Bar)) {
        if !self.live {
            return;
        }
        {
            let mut guard = self.bars.lock().unwrap_or_else(|p| p.into_inner());
            let bar = guard
                .0
                .entry(desc.digest.to_string())
                .or_insert_with(|| Bar {
                    label: format!("sha256:{}", desc.digest.short()),
                    done: 0,
                    total: desc.size,
                    started: Instant::now(),
                    finished: None,
                });
            update(bar);
        }
        self.redraw(false);
    }
}

impl Events for Reporter {
    fn trace(&self, line: &str) {
        if self.verbose {
            eprintln!("nobase: {}", printable(line));
        }
    }

    fn retrying(&self, what: &str, why: &str, wait: Duration, attempt: u32, of: u32) {
        if !self.quiet {
            eprintln!(
                "nobase: {}: {}; retrying in {:.1}s (attempt {} of {of})",
                printable(what),
                printable(why),
                wait.as_secs_f64(),
                attempt + 1
            );
        }
    }

    fn blob_start(&self, desc: &Descriptor, _way: Transfer) {
        self.set_bar(desc, |_| {});
    }

    fn blob_progress(&self, desc: &Descriptor, done: u64) {
        self.set_bar(desc, |b| b.done = done);
    }

    fn blob_done(&self, desc: &Descriptor, outcome: BlobOutcome) {
        let label = {
            let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            match &outcome {
                BlobOutcome::Uploaded { bytes } => {
                    t.uploaded += 1;
                    t.bytes_up += bytes;
                    "uploaded".to_string()
                }
                BlobOutcome::Mounted { from } => {
                    t.mounted += 1;
                    format!("mounted from {from}")
                }
                BlobOutcome::Existing => {
                    t.existing += 1;
                    "already there".to_string()
                }
                BlobOutcome::Downloaded { bytes } => {
                    t.downloaded += 1;
                    t.bytes_down += bytes;
                    "downloaded".to_string()
                }
            }
        };
        self.trace(&format!("blob {}: {label}", desc.digest));
        self.set_bar(desc, |b| {
            b.done = b.total;
            b.finished = Some(format!("{label} ({})", human_size(b.total)));
        });
    }

    fn received(&self, bytes: u64) {
        self.tally
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bytes_down += bytes;
    }

    fn manifest_pushed(&self, desc: &Descriptor, reference: &str) {
        self.trace(&format!("manifest {} stored as {reference}", desc.digest));
    }
}
