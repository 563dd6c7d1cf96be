//! Running a plan: each stage starts from `scratch`, an earlier stage or an image (whose
//! layer blobs are reused as they are and whose config is inherited), and its
//! instructions run in order — variables substituted against the stage's `ARG`s and
//! `ENV` at that point, each file-adding instruction written as one layer, each other
//! instruction recorded in the config and in the history as an empty layer. The target
//! stage is assembled into an image whose blobs are all in the store.

use super::bundle::{self, BundleOptions};
use super::context::{self, Context, Matched, Widened};
use super::fs::{self, Owner, StageFs};
use super::lex::{self, Vars};
use super::pattern::{self, Ignore};
use super::plan::{self, at, Cause, Cmdline, Dockerfile, Instr, Op, Stage};
use super::spool::Spool;
use super::tarball;
use crate::build::extras::Extra;
use crate::build::{self, LayerReport, DEFAULT_PATH};
use crate::elf;
use crate::error::{Error, Result};
use crate::image::{self, Descriptor, EmptyObject, History, Image, ImageConfig, Platform};
use crate::imagefs::{self, ImageFs, Keep};
use crate::layer::{self, Compression, LayerOptions};
use crate::refs::ImageRef;
use crate::root::{self, FileType, Root};
use crate::source;
use crate::store::Store;
use crate::tree::{self, Entry, ImageTree, Node};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How to build, besides the Dockerfile and its context.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--build-arg KEY=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// `--target STAGE` (default: the last stage).
    pub target: Option<String>,
    /// `--label KEY=VALUE`, added to the final image.
    pub labels: BTreeMap<String, String>,
    /// Layer compression.
    pub compression: Compression,
    /// Its level (`--compression-level`); None: the default.
    pub compression_level: Option<i32>,
    /// `SOURCE_DATE_EPOCH`: the created time and every mtime of new layers.
    pub epoch: u64,
    /// Compression workers.
    pub threads: u32,
    /// How base images are pulled from registries.
    pub registry: crate::registry::Options,
    /// Dynamic executables: bundle their loader and libraries, or refuse them.
    pub bundle: BundleOptions,
    /// `--with`: data files from the host, each a layer over the target stage.
    pub with: Vec<crate::build::extras::Extra>,
    /// `--platform`: the target platform (`TARGETPLATFORM`, and the platform of every
    /// `FROM` that names none), as buildx's; None: this machine's for the arguments, and
    /// a scratch stage takes its program's.
    pub platform: Option<Platform>,
}

/// Something the user should know that did not stop the build.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Warning {
    /// `unused-build-arg`, a bundling blind spot (`nss`, `dlopen-string`…) or the
    /// self-check's warning code (`no-ca-certificates`…).
    pub kind: String,
    /// What and why, and what to do.
    pub message: String,
    /// The `--with` that fixes it, when one does.
    pub with: Option<crate::build::extras::Extra>,
}

/// A finished Dockerfile build.
#[derive(Clone, Debug)]
pub struct Built {
    /// The image; its blobs are in the store.
    pub image: Image,
    /// The layers this build wrote (base image layers are not listed).
    pub layers: Vec<LayerReport>,
    /// Things the user should know that did not stop the build.
    pub warnings: Vec<Warning>,
}

/// The state of a stage: its config (with the diff_ids and history so far), its layer
/// descriptors, and its filesystem.
#[derive(Clone)]
struct StageOut {
    config: ImageConfig,
    layers: Vec<Descriptor>,
    fs: StageFs,
    reports: Vec<LayerReport>,
    /// Known once the base says so (or at the end for scratch).
    platform: Option<Platform>,
    /// The line of the `HEALTHCHECK` in effect, when a stage of this build set it.
    healthcheck_line: Option<usize>,
}

/// Variables visible to an instruction: `ENV` first, then the `ARG`s in scope.
struct StageVars<'a> {
    env: Vec<String>,
    args: &'a BTreeMap<String, String>,
}

impl<'a> StageVars<'a> {
    /// The variables at this point of a stage: its config's `ENV` and its `ARG`s.
    fn new(config: &ImageConfig, args: &'a BTreeMap<String, String>) -> StageVars<'a> {
        StageVars {
            env: config.config.env.clone().unwrap_or_default(),
            args,
        }
    }

    /// One word processed with these variables; errors point at the instruction.
    fn word(&self, s: &str, esc: char, line: usize, kw: &str) -> Result<String> {
        lex::word(s, esc, self).map_err(|e| at(line, kw, e))
    }
}

impl Vars for StageVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find_map(|kv| {
                kv.split_once('=')
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .or_else(|| self.args.get(name).cloned())
    }
}

struct Builder<'a> {
    df: &'a Dockerfile,
    ctx: &'a Context,
    opts: &'a Options,
    store: &'a Store,
    spool: Spool,
    global: BTreeMap<String, String>,
    used_args: BTreeSet<String>,
    done: Vec<Option<Arc<StageOut>>>,
    images: BTreeMap<String, Arc<StageOut>>,
    /// Stages some `COPY --from` reads.
    copied_from: BTreeSet<usize>,
    created: String,
    /// What the instructions run so far deserve a warning for.
    warnings: Vec<Warning>,
}

/// Builds the target stage of `df` with files from `ctx`, writing blobs into `store`.
pub fn build(df: &Dockerfile, ctx: &Context, opts: &Options, store: &Store) -> Result<Built> {
    let mut b = Builder {
        df,
        ctx,
        opts,
        store,
        spool: Spool::new(store.layout().root().to_path_buf()),
        global: BTreeMap::new(),
        used_args: BTreeSet::new(),
        done: vec![None; df.stages.len()],
        images: BTreeMap::new(),
        copied_from: BTreeSet::new(),
        created: image::rfc3339(opts.epoch),
        warnings: Vec::new(),
    };
    b.global_args()?;
    let target = b.target()?;
    b.check_refusals(target)?;
    let mut out = (*b.stage(target)?).clone();
    let mut warnings = df.warnings.clone();
    warnings.append(&mut b.warnings);
    if let Some(added) = bundle::bundle_missing(&out.fs, &out.config, &opts.bundle)? {
        let layer = place(&out.fs, added.entries, None, df.stages[target].line, "FROM")?;
        b.commit_layer(&mut out, layer, added.created_by)?;
        warnings.extend(added.warnings);
    }
    // `--with`, as for a build from one executable: what a scratch image cannot get
    // from a RUN (CA certificates, zoneinfo, passwd, /tmp), from the sysroot or the
    // host. What the Dockerfile or its base already put there wins: only missing files
    // are added (in `build BINARY` the extras are the bottom layers, so the same holds).
    let mut sources = Vec::new();
    if !opts.with.is_empty() {
        if let Some(s) = &opts.bundle.sysroot {
            sources.push(crate::root::HostRoot::new(crate::build::source_root(
                Some(s),
            )?));
        }
        sources.push(crate::root::HostRoot::new("/"));
    }
    for &x in &opts.with {
        let made = crate::build::extras::make(x, &sources)?;
        let env = out.config.config.env.get_or_insert_with(Vec::new);
        for (k, v) in &made.env {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|p| p.0) == Some(k.as_str()))
            {
                env.push(format!("{k}={v}"));
            }
        }
        // Files the stage has are left alone; directories are added, and one the extra
        // is about (/tmp 1777, a home) is given the extra's metadata unless the stage's
        // is the same already. A directory that only holds the extra's files (/etc,
        // /home) keeps the stage's owner and mode.
        let parents: BTreeSet<&str> = made
            .tree
            .entries()
            .filter_map(|(p, _)| p.rsplit_once('/').map(|(d, _)| d))
            .collect();
        let entries: Vec<_> = made
            .tree
            .entries()
            .filter(|(p, e)| {
                let have = root::resolve(&out.fs, &format!("/{p}"))
                    .ok()
                    .and_then(|r| out.fs.lstat(&r));
                match (&e.node, have) {
                    (_, None) => true,
                    (Node::Dir, Some(m)) if m.kind == FileType::Dir => {
                        !parents.contains(p.as_str())
                            && (m.mode, m.uid, m.gid) != (e.mode, e.uid, e.gid)
                    }
                    (Node::Dir, Some(_)) => true,
                    _ => false,
                }
            })
            .map(|(p, e)| (format!("/{p}"), e.clone()))
            .collect();
        if entries.is_empty() {
            continue;
        }
        let layer = place(&out.fs, entries, None, df.stages[target].line, "FROM")?;
        b.commit_layer(&mut out, layer, format!("nobase build {}", x.flag()))?;
    }
    warnings.extend(healthcheck_without_shell(&out));
    let mut config = out.config.clone();
    if !opts.labels.is_empty() {
        config
            .config
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(opts.labels.clone());
    }
    // The same start-up check as `nobase build BINARY`, on the image as it will be. An
    // image with no command at all is a base or data image: nothing to start, nothing
    // to check.
    let c = &config.config;
    let has_command = c
        .entrypoint
        .iter()
        .chain(c.cmd.iter())
        .any(|v| !v.is_empty());
    if !has_command {
        warnings.push(Warning {
            kind: "no-command".into(),
            message: "the image has no ENTRYPOINT or CMD, so it starts nothing and was not checked (fine for a base or data image)".into(),
            with: None,
        });
    } else if opts.bundle.check {
        // Every object: a static entrypoint's neighbours were not bundled for.
        let check_opts = crate::check::Options {
            every_object: true,
            platform_fix: Some(
                "FROM --platform=…, or the build argument that picks the program, such as --build-arg TARGETARCH=…",
            ),
            ..Default::default()
        };
        let report = build::check_before_writing(&out.fs, "the image", &config, &check_opts)
            .map_err(|e| shell_form_hint(e, &config, &out.fs))?;
        // What a program may load at run time, the bundles said already.
        warnings.extend(
            report
                .warnings
                .into_iter()
                .filter(|w| w.code != crate::check::WarningCode::RunTimeLoad)
                .map(|w| Warning {
                    kind: serde_json::to_value(w.code)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    message: w.message,
                    with: w.with,
                }),
        );
    }
    let image = build::assemble(store.layout(), &config, &out.layers)?;
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !b.used_args.contains(*k))
        .collect();
    if !unused.is_empty() {
        warnings.push(Warning {
            kind: "unused-build-arg".into(),
            with: None,
            message: format!(
                "build arguments not declared with ARG, so not used: {}",
                unused
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(Built {
        image,
        layers: out.reports.clone(),
        warnings,
    })
}

impl Builder<'_> {
    fn escape(&self) -> char {
        self.df.escape
    }

    /// The `ARG`s before the first `FROM`, plus Docker's automatic platform arguments.
    fn global_args(&mut self) -> Result<()> {
        let host = image::host_platform();
        let target = self.opts.platform.clone().unwrap_or_else(|| host.clone());
        for (prefix, p) in [("TARGET", &target), ("BUILD", &host)] {
            self.global
                .insert(format!("{prefix}PLATFORM"), p.to_string());
            self.global.insert(format!("{prefix}OS"), p.os.clone());
            self.global
                .insert(format!("{prefix}ARCH"), p.architecture.clone());
            self.global.insert(
                format!("{prefix}VARIANT"),
                p.variant.clone().unwrap_or_default(),
            );
        }
        for ins in &self.df.global_args {
            let Op::Arg(pairs) = &ins.op else { continue };
            let word = |d: &str| {
                lex::word(d, self.df.escape, &self.global).map_err(|e| at(ins.line, "ARG", e))
            };
            // Declared without a value, an automatic argument (`ARG TARGETARCH`, so that
            // FROM lines may use it) keeps its value, as an earlier global ARG does.
            let set = arg_values(pairs, &self.opts.build_args, &self.global, &word)?;
            for (name, value) in set {
                self.used_args.insert(name.clone());
                if let Some(v) = value {
                    self.global.insert(name, v);
                }
            }
        }
        Ok(())
    }

    fn target(&self) -> Result<usize> {
        match &self.opts.target {
            None => Ok(self.df.stages.len() - 1),
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                self.df
                    .stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(lower.as_str()))
                    .map(|s| s.index)
                    .ok_or_else(|| {
                        let names: Vec<_> = self
                            .df
                            .stages
                            .iter()
                            .filter_map(|s| s.name.clone())
                            .collect();
                        Error::Usage(format!(
                            "--target {t}: no stage is named that (the Dockerfile names {})",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ))
                    })
            }
        }
    }

    /// The earlier stage a name refers to (`AS` name, or an index for `--from`).
    fn stage_ref(&self, name: &str, before: usize, numeric: bool) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.df.stages[..before]
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index)
            .or_else(|| {
                name.parse::<usize>()
                    .ok()
                    .filter(|&i| numeric && i < before)
            })
    }

    /// Whether `name` (an `AS` name, or an index) is stage `current` or one after it,
    /// which a `COPY --from` cannot read (Docker: a circular dependency, or no such stage).
    fn is_this_or_later_stage(&self, name: &str, current: usize) -> bool {
        let lower = name.to_ascii_lowercase();
        name.parse::<usize>().is_ok_and(|i| i >= current)
            || self.df.stages[current..]
                .iter()
                .any(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    /// Finds the stages the target needs (noting those `COPY --from` reads) and refuses,
    /// before any work, an instruction nobase will not run in one of them.
    fn check_refusals(&mut self, target: usize) -> Result<()> {
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            let st = &self.df.stages[i];
            if let Ok(base) = lex::word(&st.base, self.escape(), &self.global) {
                todo.extend(self.stage_ref(&base, i, false));
            }
            for ins in &st.instrs {
                if let Op::Copy(c) = &ins.op {
                    if let Some(Ok(f)) = c
                        .from
                        .as_deref()
                        .map(|f| lex::word(f, self.escape(), &self.global))
                    {
                        if let Some(j) = self.stage_ref(&f, i, true) {
                            self.copied_from.insert(j);
                            todo.push(j);
                        }
                    }
                }
            }
        }
        for i in need {
            for ins in &self.df.stages[i].instrs {
                if let Op::Refused(why) = &ins.op {
                    return Err(Error::Refused(format!("line {}: {why}", ins.line)));
                }
            }
        }
        Ok(())
    }

    /// The result of stage `i`, built on first use.
    fn stage(&mut self, i: usize) -> Result<Arc<StageOut>> {
        if let Some(s) = &self.done[i] {
            return Ok(s.clone());
        }
        let st = &self.df.stages[i];
        let out = Arc::new(self.run_stage(st)?);
        self.done[i] = Some(out.clone());
        Ok(out)
    }

    fn run_stage(&mut self, st: &Stage) -> Result<StageOut> {
        let base =
            lex::word(&st.base, self.escape(), &self.global).map_err(|e| at(st.line, "FROM", e))?;
        if base.is_empty() {
            return Err(at(st.line, "FROM", format!("{:?} names no image", st.base)));
        }
        let platform = match &st.platform {
            // A build for a target platform makes every stage for it, as buildx does.
            None => self.opts.platform.clone(),
            Some(p) => {
                let p = lex::word(p, self.escape(), &self.global)
                    .map_err(|e| at(st.line, "FROM", e))?;
                Some(Platform::parse(&p).map_err(|e| at(st.line, "FROM", e))?)
            }
        };
        let mut out = if base.eq_ignore_ascii_case("scratch") {
            StageOut {
                config: ImageConfig {
                    config: image::ContainerConfig {
                        env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                layers: Vec::new(),
                fs: StageFs::default(),
                reports: Vec::new(),
                platform,
                healthcheck_line: None,
            }
        } else if let Some(idx) = self.stage_ref(&base, st.index, false) {
            // The earlier stage's files stay the upper tree: everything this build
            // added, over the same base.
            let prev = self.stage(idx)?;
            let out = (*prev).clone();
            if let (Some(want), Some(have)) = (&platform, &prev.platform) {
                if !image::platform_matches(have, want) {
                    return Err(at(
                        st.line,
                        "FROM",
                        format!("stage {base} is for {have}, not {want}"),
                    ));
                }
            }
            out
        } else {
            // A stage others copy from needs every byte of its base; otherwise what a
            // start-up check reads is enough.
            let keep = if self.copied_from.contains(&st.index) {
                Keep::All
            } else {
                Keep::Programs
            };
            let img = self
                .open_image(&base, platform.as_ref(), keep)
                .map_err(|e| at(st.line, "FROM", e))?;
            (*img).clone()
        };
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        let mut cmd_set = false;
        for ins in &st.instrs {
            self.run_instr(&mut out, &mut args, &mut cmd_set, st, ins)?;
        }
        if out.platform.is_none() {
            out.platform =
                Some(infer_platform(&out.fs, &out.config).map_err(|e| at(st.line, "FROM", e))?);
        }
        let p = out.platform.clone().expect("set above");
        out.config.architecture = p.architecture;
        out.config.os = p.os;
        out.config.variant = p.variant;
        out.config.created = Some(self.created.clone());
        Ok(out)
    }

    /// Opens an image for `FROM` or `COPY --from`: its layer blobs are copied into the
    /// store (they are reused as they are), its config is inherited.
    fn open_image(
        &mut self,
        name: &str,
        platform: Option<&Platform>,
        keep: Keep,
    ) -> Result<Arc<StageOut>> {
        let key = format!(
            "{name}\0{}\0{keep:?}",
            platform.map(|p| p.to_string()).unwrap_or_default()
        );
        if let Some(img) = self.images.get(&key) {
            return Ok(img.clone());
        }
        let src = self.open_source(name)?;
        let pi = src.image.select(platform)?.clone();
        for (i, d) in pi.manifest.layers.iter().enumerate() {
            if image::layer_compression(&d.media_type).is_none() {
                return Err(Error::Invalid(format!(
                    "{name}: layer {} has media type {:?}, which nobase cannot reuse",
                    d.digest, d.media_type
                )));
            }
            let diff_id = pi.config.rootfs.diff_ids.get(i);
            self.store.layout().copy_layer(d, diff_id, &*src.blobs)?;
        }
        if let Some(Value::Array(triggers)) = pi.config.config.other.get("OnBuild") {
            if !triggers.is_empty() {
                return Err(Error::Refused(format!(
                    "{name} has ONBUILD triggers ({}), which nobase does not run; build FROM an image without them",
                    triggers.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")
                )));
            }
        }
        let opts = imagefs::Options {
            keep,
            ..imagefs::Options::default()
        };
        let files = ImageFs::load(name, &pi, &*src.blobs, &opts)?;
        let mut config = pi.config.clone();
        config.config.other.remove("OnBuild");
        let env = config.config.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        let out = Arc::new(StageOut {
            platform: Some(config.platform()),
            config,
            layers: pi.manifest.layers.clone(),
            fs: StageFs {
                base: Some(Arc::new(files)),
                upper: ImageTree::new(),
            },
            reports: Vec::new(),
            healthcheck_line: None,
        });
        self.images.insert(key, out.clone());
        Ok(out)
    }

    /// Opens an image by the name a Dockerfile gives it: a reference in nobase's
    /// grammar (the store, `oci:`, archives, `docker://`), and a plain name missing from
    /// the store is looked for in its registry as Docker would (`alpine` is
    /// docker.io/library/alpine).
    fn open_source(&self, name: &str) -> Result<source::Source> {
        let r = ImageRef::parse(name).or_else(|e| registry_name(name).ok_or(e))?;
        let store = self.store.clone();
        let in_store = match &r {
            ImageRef::Store(n) => self.store.resolve(n).is_ok(),
            ImageRef::StoreDigest { name: n, prefix } => {
                self.store.resolve_digest(n.as_deref(), prefix).is_ok()
            }
            _ => true,
        };
        match &r {
            // `alpine` and `alpine@sha256:…` (a pinned base) are Docker Hub's when the
            // store has neither.
            ImageRef::Store(_) | ImageRef::StoreDigest { name: Some(_), .. } if !in_store => {
                match registry_name(name) {
                    Some(remote) => source::open_with(&remote, || Ok(store), &self.opts.registry)
                        .map_err(|e| {
                            e.with_prefix(format!(
                                "{name} is not in the local store, and pulling {remote} failed: "
                            ))
                        }),
                    None => source::open_with(&r, || Ok(store), &self.opts.registry),
                }
            }
            _ => source::open_with(&r, || Ok(store), &self.opts.registry),
        }
    }

    fn run_instr(
        &mut self,
        out: &mut StageOut,
        args: &mut BTreeMap<String, String>,
        cmd_set: &mut bool,
        st: &Stage,
        ins: &Instr,
    ) -> Result<()> {
        let esc = self.escape();
        let (line, kw) = (ins.line, ins.keyword);
        let vars = StageVars::new(&out.config, args);
        let word = |s: &str| vars.word(s, esc, line, kw);
        let history: String = match &ins.op {
            Op::Refused(why) => return Err(Error::Refused(format!("line {line}: {why}"))),
            Op::Arg(pairs) => {
                let set = arg_values(pairs, &self.opts.build_args, &self.global, &word)?;
                for (name, value) in set {
                    self.used_args.insert(name.clone());
                    match value {
                        Some(v) => args.insert(name, v),
                        None => args.remove(&name),
                    };
                }
                // ARG values are not recorded: build arguments may carry secrets.
                return Ok(());
            }
            Op::Env(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let k = word(k)?;
                    if k.is_empty() || k.contains('=') {
                        return Err(at(line, kw, format!("{k:?} is not a variable name")));
                    }
                    set.push((k, word(v)?));
                }
                let env = out.config.config.env.get_or_insert_with(Vec::new);
                for (k, v) in &set {
                    let kv = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map(|p| p.0) == Some(k))
                    {
                        Some(e) => *e = kv,
                        None => env.push(kv),
                    }
                }
                format!("ENV {}", pairs_text(&set))
            }
            Op::Label(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let k = word(k)?;
                    if k.is_empty() {
                        return Err(at(line, kw, "a label needs a name"));
                    }
                    set.push((k, word(v)?));
                }
                let labels = out.config.config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in &set {
                    labels.insert(k.clone(), v.clone());
                }
                format!("LABEL {}", pairs_text(&set))
            }
            Op::Copy(c) => {
                let c = c.clone();
                return self.copy(out, &*args, st, ins, &c);
            }
            Op::Workdir(w) => {
                let w = word(w)?;
                if w.is_empty() {
                    return Err(at(line, kw, "needs a directory"));
                }
                let base = out
                    .config
                    .config
                    .working_dir
                    .clone()
                    .unwrap_or_else(|| "/".into());
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{base}/{w}")
                };
                let dir = format!("/{}", pattern::clean(&joined));
                out.config.config.working_dir = Some(dir.clone());
                let exists = root::resolve(&out.fs, &dir)
                    .ok()
                    .and_then(|r| out.fs.lstat(&r))
                    .is_some_and(|m| m.kind == FileType::Dir);
                let created_by = format!("WORKDIR {dir}");
                if dir != "/" && !exists {
                    // Docker creates the directory, as a layer of its own, with its
                    // missing parents, owned by the USER in effect (root when the image
                    // does not know the name, as BuildKit does: said in a warning, for
                    // a program that writes there then fails).
                    let user = out.config.config.user.clone();
                    let owner = match user.as_deref().map(|u| (u, self.owner(u, &out.fs))) {
                        None => Owner { uid: 0, gid: 0 },
                        Some((_, Ok(o))) => o,
                        Some((u, Err(e))) => {
                            self.warnings.push(Warning {
                                kind: "workdir-owner".into(),
                                message: format!(
                                    "line {line}: WORKDIR {dir} is made owned by root, not by USER {u}: {e}; a program running as {u} cannot write there (give USER a number, or add the user's /etc/passwd before)"
                                ),
                                with: None,
                            });
                            Owner { uid: 0, gid: 0 }
                        }
                    };
                    let entry = Entry {
                        node: Node::Dir,
                        mode: 0o755,
                        uid: owner.uid,
                        gid: owner.gid,
                    };
                    let layer = place(&out.fs, vec![(dir, entry)], Some(owner), line, kw)?;
                    return self.commit_layer(out, layer, created_by);
                }
                created_by
            }
            Op::User(u) => {
                let u = word(u)?;
                if u.is_empty() {
                    return Err(at(line, kw, "needs a user (name or uid[:gid])"));
                }
                out.config.config.user = Some(u.clone());
                format!("USER {u}")
            }
            Op::Expose(ports) => {
                let mut all = Vec::new();
                for p in ports {
                    for w in lex::words(p, esc, &vars).map_err(|e| at(line, kw, e))? {
                        all.extend(
                            build::parse_ports(&w).map_err(|e| at(line, kw, e.to_string()))?,
                        );
                    }
                }
                // An EXPOSE that expands to nothing (`EXPOSE $UNSET`) exposes nothing
                // and adds no field: BuildKit makes an empty map, which Go's encoder
                // leaves out of the config.
                if !all.is_empty() {
                    let map = out
                        .config
                        .config
                        .exposed_ports
                        .get_or_insert_with(BTreeMap::new);
                    for p in &all {
                        map.insert(p.clone(), EmptyObject {});
                    }
                }
                format!("EXPOSE {}", all.join(" ")).trim_end().to_string()
            }
            Op::Volume(vols) => {
                let mut all = Vec::new();
                for v in vols {
                    let v = word(v)?;
                    if v.trim().is_empty() {
                        return Err(at(line, kw, "a volume path cannot be empty"));
                    }
                    // BuildKit records a relative path as written, and the container
                    // then fails to start (runc: "mount destination data not absolute");
                    // older engines mounted it below /, never below WORKDIR.
                    if !v.starts_with('/') {
                        return Err(at(
                            line,
                            kw,
                            format!(
                                "{v:?} is not an absolute path; BuildKit records it as written, and a container of the image then fails to start (runc: mount destination {v} not absolute); write the absolute path, such as {:?} (a VOLUME is not relative to WORKDIR)",
                                format!("/{}", pattern::clean(&v))
                            ),
                        ));
                    }
                    all.push(v);
                }
                let map = out.config.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in &all {
                    map.insert(v.clone(), EmptyObject {});
                }
                format!("VOLUME {}", json!(all))
            }
            Op::StopSignal(s) => {
                let s = word(s)?;
                if !valid_signal(&s) {
                    return Err(at(
                        line,
                        kw,
                        format!("{s:?} is not a signal (use a name like SIGTERM or a number)"),
                    ));
                }
                out.config.config.stop_signal = Some(s.clone());
                format!("STOPSIGNAL {s}")
            }
            Op::Cmd(c) => {
                let argv = to_argv(c, &out.config);
                out.config.config.cmd = Some(argv.clone());
                *cmd_set = true;
                format!("CMD {}", json!(argv))
            }
            Op::Entrypoint(c) => {
                let argv = to_argv(c, &out.config);
                // `ENTRYPOINT []` clears it, as Docker's config then has none.
                out.config.config.entrypoint = (!argv.is_empty()).then(|| argv.clone());
                // Docker: a new ENTRYPOINT drops the CMD inherited from the base.
                if !*cmd_set {
                    out.config.config.cmd = None;
                }
                format!("ENTRYPOINT {}", json!(argv))
            }
            Op::Shell(sh) => {
                out.config.config.other.insert("Shell".into(), json!(sh));
                format!("SHELL {}", json!(sh))
            }
            Op::Healthcheck(h) => {
                out.healthcheck_line = Some(line);
                let v = healthcheck_json(h.as_ref());
                out.config
                    .config
                    .other
                    .insert("Healthcheck".into(), v.clone());
                format!("HEALTHCHECK {v}")
            }
            Op::Maintainer(m) => {
                out.config.other.insert("author".into(), json!(m));
                format!("MAINTAINER {m}")
            }
        };
        out.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(history),
            comment: None,
            empty_layer: true,
        });
        Ok(())
    }

    /// Resolves `user[:group]` as the stage's files know it; a name the stage has no
    /// `/etc/passwd` for is looked up in the one `--with passwd` will add (root,
    /// nobody, nonroot), as the running container will see it.
    fn owner(&self, spec: &str, fs: &dyn Root) -> std::result::Result<Owner, String> {
        let found = fs::parse_owner(spec, fs);
        let without_passwd = || {
            root::resolve(fs, "/etc/passwd")
                .ok()
                .and_then(|r| fs.lstat(&r))
                .is_none()
        };
        match found {
            Err(_) if self.opts.with.contains(&Extra::Passwd) && without_passwd() => {
                let table = crate::build::extras::passwd().map_err(|e| e.to_string())?;
                fs::parse_owner(spec, &table).or(found)
            }
            found => found,
        }
    }

    /// Writes a layer and records it in the stage.
    fn commit_layer(
        &mut self,
        out: &mut StageOut,
        tree: ImageTree,
        created_by: String,
    ) -> Result<()> {
        let lopts = LayerOptions {
            compression: self.opts.compression,
            level: self.opts.compression_level,
            mtime: self.opts.epoch,
            threads: self.opts.threads,
        };
        let l = layer::write_layer(&tree, &lopts, self.store.layout())?;
        out.layers.push(l.descriptor.clone());
        out.config.rootfs.diff_ids.push(l.diff_id.clone());
        out.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(created_by.clone()),
            comment: None,
            empty_layer: false,
        });
        out.reports.push(LayerReport {
            created_by,
            files: tree
                .entries()
                .filter(|(_, e)| matches!(e.node, Node::File { .. }))
                .count(),
            file_bytes: tree.file_bytes(),
            layer: l,
        });
        for (p, e) in tree.entries() {
            out.fs.upper.insert(p, e.clone())?;
        }
        Ok(())
    }

    fn copy(
        &mut self,
        out: &mut StageOut,
        args: &BTreeMap<String, String>,
        st: &Stage,
        ins: &Instr,
        c: &plan::Copy,
    ) -> Result<()> {
        let esc = self.escape();
        let (line, kw) = (ins.line, ins.keyword);
        let vars = StageVars::new(&out.config, args);
        let word = |s: &str| vars.word(s, esc, line, kw);
        let from = c.from.as_deref().map(word).transpose()?;
        let chown = c.chown.as_deref().map(word).transpose()?;
        let chmod = c
            .chmod
            .as_deref()
            .map(word)
            .transpose()?
            .map(|m| fs::parse_chmod(&m).map_err(|e| at(line, kw, e)))
            .transpose()?;
        let excludes = c
            .excludes
            .iter()
            .map(|e| word(e))
            .collect::<Result<Vec<_>>>()?;
        let exclude = Ignore::parse(&excludes.join("\n")).map_err(|e| at(line, kw, e))?;
        let dest_raw = word(&c.dest)?;
        let mut shown = vec![kw.to_string()];
        if let Some(f) = &from {
            shown.push(format!("--from={f}"));
        }
        if let Some(o) = &chown {
            shown.push(format!("--chown={o}"));
        }
        if let Some(m) = chmod {
            shown.push(format!("--chmod={m:o}"));
        }
        for e in &excludes {
            shown.push(format!("--exclude={e}"));
        }

        // Where the sources come from.
        let from_fs: Option<Arc<StageOut>> = match &from {
            None => None,
            Some(f) => Some(match self.stage_ref(f, st.index, true) {
                None if self.is_this_or_later_stage(f, st.index) => {
                    let n = self.df.stages.len();
                    let what = match f.parse::<usize>() {
                        Ok(i) if i >= n => format!(
                            "there is no stage {i} (the Dockerfile has {n}, counted from 0)"
                        ),
                        _ => "it names this stage or a later one".to_string(),
                    };
                    return Err(at(
                        line,
                        kw,
                        format!(
                            "--from={f}: {what}; a stage copies only from the stages before it \
                             (this is stage {})",
                            st.index
                        ),
                    ));
                }
                Some(i) => self.stage(i)?,
                None => self
                    .open_image(f, None, Keep::All)
                    .map_err(|e| at(line, kw, e))?,
            }),
        };

        // What the sources name.
        enum Item {
            Ctx(Matched),
            Tar(Matched, tarball::Packing),
            Fs {
                src: Arc<StageOut>,
                path: String,
                name: String,
                is_dir: bool,
            },
            Text {
                name: String,
                text: String,
            },
        }
        let mut items = Vec::new();
        for s in &c.sources {
            match s {
                plan::Source::HereDoc { name, text, expand } => {
                    let text = if *expand {
                        lex::expand_text(text, esc, &vars).map_err(|e| at(line, kw, e))?
                    } else {
                        text.clone()
                    };
                    shown.push(format!("<<{name}"));
                    items.push(Item::Text {
                        name: name.clone(),
                        text,
                    });
                }
                plan::Source::Path(p) => {
                    let p = word(p)?;
                    if c.add && plan::is_remote(&p) {
                        return Err(plan::remote_refusal(line, &p));
                    }
                    shown.push(p.clone());
                    match &from_fs {
                        None => {
                            for m in self.ctx.matches(&p).map_err(|e| at(line, kw, e))? {
                                let packing = if c.add && !m.is_dir {
                                    tarball::detect(&self.ctx.host(&m.real))
                                        .map_err(|e| at(line, kw, e))?
                                } else {
                                    None
                                };
                                items.push(match packing {
                                    Some(pk) => Item::Tar(m, pk),
                                    None => Item::Ctx(m),
                                });
                            }
                        }
                        Some(src) => {
                            let found = fs_matches(&src.fs, &p).map_err(|e| at(line, kw, e))?;
                            for (path, name, is_dir) in found {
                                items.push(Item::Fs {
                                    src: src.clone(),
                                    path,
                                    name,
                                    is_dir,
                                });
                            }
                        }
                    }
                }
            }
        }
        shown.push(dest_raw.clone());

        // Docker's destination rules.
        let workdir = out
            .config
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into());
        let dir_syntax = dest_raw.ends_with('/')
            || dest_raw == "."
            || dest_raw.ends_with("/.")
            || dest_raw.is_empty();
        if items.len() > 1 && !dir_syntax {
            return Err(at(
                line,
                kw,
                format!(
                    "the sources name {} files, so the destination {dest_raw:?} must be a directory ending in /",
                    items.len()
                ),
            ));
        }
        let joined = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{workdir}/{dest_raw}")
        };
        let dest = format!("/{}", pattern::clean(&joined));
        let dest_exists_dir = root::resolve(&out.fs, &dest)
            .ok()
            .and_then(|r| out.fs.lstat(&r))
            .is_some_and(|m| m.kind == FileType::Dir);
        let dest_is_dir = dir_syntax || dest_exists_dir;
        let into = |name: &str| {
            if dest == "/" {
                format!("/{name}")
            } else {
                format!("{dest}/{name}")
            }
        };

        // The entries, at their final image paths.
        let mut entries: Vec<(String, Entry)> = Vec::new();
        let mut dest_dir_needed = false;
        // A directory of a stage or image copied whole: the destination this makes takes
        // its owner and mode, as BuildKit's copy gives the directory it creates the
        // source's metadata (`COPY --from=build /home/app /home/app`).
        let mut dest_dir_from: Option<Entry> = None;
        let single = items.len() == 1;
        // The entries an archive unpacked: they keep its modes (BuildKit gives the
        // unpacking only --chown).
        let mut unpacked: Vec<std::ops::Range<usize>> = Vec::new();
        // Context paths the image opens to more users than the host did.
        let mut widened: Vec<Widened> = Vec::new();
        for item in items {
            match item {
                Item::Ctx(m) if m.is_dir => {
                    dest_dir_needed = true;
                    // The directory this makes for it is 0755 whatever the source's mode.
                    if !dest_exists_dir && dest != "/" {
                        let host = self.ctx.host_mode(&m.real).map_err(|e| at(line, kw, e))?;
                        let shown = if m.rel.is_empty() { "." } else { &m.rel };
                        widened.extend(Widened::check(shown, host, 0o755));
                    }
                    entries.extend(
                        self.ctx
                            .entries(&m, &dest, &exclude, &mut widened)
                            .map_err(|e| at(line, kw, e))?,
                    );
                }
                Item::Ctx(m) => {
                    let target = if dest_is_dir {
                        into(m.name())
                    } else {
                        dest.clone()
                    };
                    entries.extend(
                        self.ctx
                            .entries(&m, &target, &exclude, &mut widened)
                            .map_err(|e| at(line, kw, e))?,
                    );
                }
                Item::Tar(m, packing) => {
                    dest_dir_needed = true;
                    let first = entries.len();
                    entries.extend(
                        tarball::extract(&self.ctx.host(&m.real), packing, &dest, &mut self.spool)
                            .map_err(|e| at(line, kw, e))?,
                    );
                    unpacked.push(first..entries.len());
                }
                Item::Text { name, text } => {
                    let target = if dest_is_dir {
                        into(&name)
                    } else {
                        dest.clone()
                    };
                    let bytes = text.into_bytes();
                    entries.push((
                        target,
                        Entry {
                            node: Node::File {
                                size: bytes.len() as u64,
                                content: tree::Content::Bytes(Arc::from(bytes)),
                            },
                            mode: 0o644,
                            uid: 0,
                            gid: 0,
                        },
                    ));
                }
                Item::Fs {
                    src,
                    path,
                    name,
                    is_dir,
                } => {
                    if is_dir {
                        dest_dir_needed = true;
                        if single {
                            dest_dir_from = Some(
                                fs_entry(&src.fs, &path, &mut self.spool)
                                    .map_err(|e| at(line, kw, e))?,
                            );
                        }
                        walk_fs(
                            &src.fs,
                            &path,
                            "",
                            &dest,
                            &exclude,
                            &mut self.spool,
                            &mut entries,
                        )
                        .map_err(|e| at(line, kw, e))?;
                    } else {
                        let target = if dest_is_dir {
                            into(&name)
                        } else {
                            dest.clone()
                        };
                        let e = fs_entry(&src.fs, &path, &mut self.spool)
                            .map_err(|e| at(line, kw, e))?;
                        entries.push((target, e));
                    }
                }
            }
        }
        if let Some(mode) = chmod {
            for (i, (_, e)) in entries.iter_mut().enumerate() {
                if !matches!(e.node, Node::Symlink(_)) && !unpacked.iter().any(|r| r.contains(&i)) {
                    e.mode = mode;
                }
            }
        }
        // The destination directory, when this instruction creates it: 0755 (--chmod is
        // for what is copied) or the copied directory's mode, owned like the copied files
        // (or as that directory).
        if (dest_dir_needed || dir_syntax) && !dest_exists_dir && dest != "/" {
            let made = dest_dir_from.unwrap_or(Entry {
                node: Node::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
            });
            entries.insert(0, (dest.clone(), made));
        }
        let owner = match &chown {
            Some(spec) => Some(
                self.owner(spec, &out.fs)
                    .map_err(|e| at(line, kw, format!("--chown={spec}: {e}")))?,
            ),
            None => None,
        };
        if let Some(Owner { uid, gid }) = owner {
            for (_, e) in &mut entries {
                e.uid = uid;
                e.gid = gid;
            }
        }
        // Directories this creates above the destination are owned like what is copied,
        // as BuildKit's copy makes them.
        let layer = place(&out.fs, entries, owner, line, kw)?;
        // --chmod gives what is copied the mode it names: nothing was widened then.
        if chmod.is_none() {
            self.warnings
                .extend(widened_warning(line, &shown.join(" "), &widened));
        }
        self.commit_layer(out, layer, shown.join(" "))
    }
}

/// One warning for the context paths an instruction copies with looser modes than they
/// have on the host (a private key 0600 becomes 0644): up to five named, and how many.
/// The normalization stays (it is what makes the digest independent of the checkout);
/// what it gives away should not go unsaid.
fn widened_warning(line: usize, instruction: &str, widened: &[Widened]) -> Option<Warning> {
    const SHOWN: usize = 5;
    let why = "nobase normalizes modes so the digest does not depend on the checkout";
    let message = match widened {
        [] => return None,
        [w] => format!(
            "line {line}: {instruction}: {} was {:04o} on the host and is {:04o} in the image ({why}); keep it private with COPY --chmod={:o}",
            w.source, w.host, w.image, w.host & 0o777
        ),
        all => {
            let mut list: Vec<String> = all
                .iter()
                .take(SHOWN)
                .map(|w| format!("{} ({:04o} → {:04o})", w.source, w.host, w.image))
                .collect();
            if all.len() > SHOWN {
                list.push(format!("and {} more", all.len() - SHOWN));
            }
            format!(
                "line {line}: {instruction}: {} paths are open to more users in the image than on the host: {} ({why}); keep them private with a COPY --chmod of their own (such as --chmod={:o})",
                all.len(),
                list.join(", "),
                all[0].host & 0o777
            )
        }
    };
    Some(Warning {
        kind: "mode-widened".into(),
        message,
        with: None,
    })
}

/// [`tree::place`] over the stage's filesystem, errors pointing at the instruction.
fn place(
    fs: &StageFs,
    entries: Vec<(String, Entry)>,
    owner: Option<Owner>,
    line: usize,
    kw: &str,
) -> Result<ImageTree> {
    tree::place(fs, entries, owner.map(|o| (o.uid, o.gid)), false).map_err(|e| at(line, kw, e))
}

/// Image paths a `COPY --from` source names in a stage or image (root-relative,
/// wildcards expanded, symlinks followed inside it): (real path, name, is_dir).
fn fs_matches(fs: &StageFs, src: &str) -> std::result::Result<Vec<(String, String, bool)>, String> {
    let cleaned = pattern::clean(src);
    let rels = if pattern::has_wildcards(&cleaned) {
        context::expand(&cleaned, &|d| fs.list(&format!("/{d}")))?
    } else {
        vec![cleaned.clone()]
    };
    let mut out = Vec::new();
    for rel in rels {
        let path = format!("/{rel}");
        let real = root::resolve(fs, &path)
            .map_err(|e| format!("{src}: not in the source stage or image ({e})"))?;
        let meta = fs
            .lstat(&real)
            .ok_or_else(|| format!("{src}: {real} does not exist"))?;
        let name = rel.rsplit('/').next().unwrap_or("").to_string();
        out.push((real, name, meta.kind == FileType::Dir));
    }
    if out.is_empty() {
        return Err(format!(
            "{src}: nothing matches in the source stage or image"
        ));
    }
    Ok(out)
}

/// The entry for one non-directory path of a stage or image, owner and mode kept.
fn fs_entry(fs: &StageFs, path: &str, spool: &mut Spool) -> Result<Entry> {
    let m = fs
        .lstat(path)
        .ok_or_else(|| Error::Invalid(format!("{path} does not exist")))?;
    let node = match m.kind {
        FileType::Dir => Node::Dir,
        FileType::Symlink => Node::Symlink(
            fs.readlink(path)
                .ok_or_else(|| Error::Invalid(format!("cannot read the link {path}")))?,
        ),
        FileType::File => Node::File {
            content: fs.content(path, spool)?,
            size: m.size,
        },
        FileType::Other => {
            return Err(Error::Invalid(format!(
                "{path} is a device, FIFO or socket, which cannot be copied into a layer"
            )))
        }
    };
    Ok(Entry {
        node,
        mode: m.mode & 0o7777,
        uid: m.uid,
        gid: m.gid,
    })
}

/// A directory of a stage or image, walked in sorted order into entries under `dest`.
fn walk_fs(
    fs: &StageFs,
    dir: &str,
    below: &str,
    dest: &str,
    exclude: &Ignore,
    spool: &mut Spool,
    out: &mut Vec<(String, Entry)>,
) -> Result<()> {
    let names = fs
        .list(dir)
        .ok_or_else(|| Error::Invalid(format!("cannot list {dir}")))?;
    for name in names {
        let path = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        let rel = context::join_rel(below, &name);
        let target = format!("{}/{name}", dest.trim_end_matches('/'));
        let is_dir = fs.lstat(&path).map(|m| m.kind) == Some(FileType::Dir);
        let excluded = exclude.excluded(&rel);
        if !excluded {
            out.push((target.clone(), fs_entry(fs, &path, spool)?));
        }
        // Below an excluded directory, an exception can still bring files back.
        if is_dir && (!excluded || exclude.has_exceptions()) {
            walk_fs(fs, &path, &rel, &target, exclude, spool, out)?;
        }
    }
    Ok(())
}

/// The values an `ARG` instruction gives its names, all computed before any is set (as
/// Docker expands an instruction whole): a `--build-arg`, else the default (substituted
/// by `word`), else the value `inherited` has (a global `ARG` declared again in a stage).
fn arg_values(
    pairs: &[(String, Option<String>)],
    build_args: &BTreeMap<String, String>,
    inherited: &BTreeMap<String, String>,
    word: &dyn Fn(&str) -> Result<String>,
) -> Result<Vec<(String, Option<String>)>> {
    pairs
        .iter()
        .map(|(name, default)| {
            let value = match (build_args.get(name), default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(word(d)?),
                (None, None) => inherited.get(name).cloned(),
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// The registry reference Docker would pull for a plain image name (`docker://` reads
/// names as docker does: Docker Hub unless the first component is a host).
fn registry_name(name: &str) -> Option<ImageRef> {
    if name.contains("://") || name.starts_with("oci:") || name.contains("archive:") {
        return None;
    }
    ImageRef::parse(&format!("docker://{name}")).ok()
}

/// `KEY=VALUE KEY2=VALUE2` for history lines, quoting values with spaces.
fn pairs_text(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            if v.is_empty() || v.contains(char::is_whitespace) || v.contains('"') {
                format!("{k}={}", json!(v))
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A refusal of an image whose command is a shell form (`CMD /app --x`) while the
/// image has no shell: the author never wrote `/bin/sh`, so say where it comes from and
/// give the exec form.
fn shell_form_hint(e: Error, config: &ImageConfig, fs: &dyn Root) -> Error {
    let Error::Refused(m) = e else { return e };
    let c = &config.config;
    let shell = shell_of(config);
    let (kw, argv) = match (&c.entrypoint, &c.cmd) {
        (Some(ep), _) if !ep.is_empty() => ("ENTRYPOINT", ep),
        (_, Some(cmd)) => ("CMD", cmd),
        _ => return Error::Refused(m),
    };
    let in_shell_form = argv.len() == shell.len() + 1 && argv.starts_with(&shell);
    if !in_shell_form || crate::root::resolve(fs, &shell[0]).is_ok() {
        return Error::Refused(m);
    }
    let line = &argv[shell.len()];
    let fix = if line.trim_start().starts_with('[') {
        // `ENTRYPOINT ["/app"] # note`, `CMD ['/app']`: not JSON, so a shell form.
        "it starts with [ but is not a JSON array (a comment after it, or single quotes?); write the array alone on its line, with double quotes".to_string()
    } else {
        let exec: Vec<&str> = line.split_whitespace().collect();
        format!("write it in exec form: {kw} {}", json!(exec))
    };
    Error::Refused(format!(
        "{m}. The Dockerfile's {kw} is in shell form, which runs {} {line:?}, and the image has no {}; {fix}",
        shell.join(" "),
        shell[0],
    ))
}

/// A warning for a `HEALTHCHECK` in shell form (`CMD-SHELL`) in an image without the
/// shell the engine runs it with (the config's `Shell`, else `/bin/sh -c`): the probe can
/// never run, so the container is reported unhealthy. Not refused: the image starts, and
/// its health is the engine's business; the `CMD`/`ENTRYPOINT` refusal is for a program
/// that cannot start at all.
fn healthcheck_without_shell(out: &StageOut) -> Option<Warning> {
    let test = out.config.config.other.get("Healthcheck")?.get("Test")?;
    let test: Vec<String> = serde_json::from_value(test.clone()).ok()?;
    let [kind, line] = &test[..] else {
        return None;
    };
    if kind != "CMD-SHELL" {
        return None;
    }
    let shell = shell_of(&out.config);
    if root::resolve(&out.fs, &shell[0]).is_ok() {
        return None;
    }
    let whence = match out.healthcheck_line {
        Some(n) => format!("line {n}: HEALTHCHECK CMD {line}"),
        None => format!("the HEALTHCHECK CMD {line} the base image sets"),
    };
    // The exec form spelled out only where splitting at spaces keeps the meaning: a
    // line with shell syntax (`curl -f … || exit 1`) needs the program to do it.
    let plain = !line.contains(|c: char| "|&;<>()$`\\\"'*?[]#~".contains(c));
    let exec: Vec<&str> = line.split_whitespace().collect();
    let fix = if plain {
        format!("write it in exec form: HEALTHCHECK CMD {}", json!(exec))
    } else {
        "write it in exec form, HEALTHCHECK CMD [\"PROGRAM\", \"ARG\", …], with a program that does what the shell syntax did".to_string()
    };
    Some(Warning {
        kind: "healthcheck-shell-form".into(),
        message: format!(
            "{whence} is in shell form, which the engine runs as {} {line:?}, and the image has no {}, so the check can never pass (the container is reported unhealthy); {fix}",
            shell.join(" "),
            shell[0],
        ),
        with: None,
    })
}

/// The argv of an exec or shell form: the shell form runs under the stage's `SHELL`
/// (default `/bin/sh -c`), exactly as Docker writes it.
fn to_argv(c: &Cmdline, config: &ImageConfig) -> Vec<String> {
    match c {
        Cmdline::Exec(v) => v.clone(),
        Cmdline::Shell(s) => {
            let mut argv = shell_of(config);
            argv.push(s.clone());
            argv
        }
    }
}

fn shell_of(config: &ImageConfig) -> Vec<String> {
    config
        .config
        .other
        .get("Shell")
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// Docker's `Healthcheck` object: `Test` and the non-zero durations (nanoseconds).
fn healthcheck_json(h: Option<&plan::Healthcheck>) -> Value {
    let Some(h) = h else {
        return json!({ "Test": ["NONE"] });
    };
    let test: Vec<String> = match &h.test {
        Cmdline::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
        Cmdline::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
    };
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), json!(test));
    for (k, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
        ("Retries", h.retries),
    ] {
        if v != 0 {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// A signal name Linux knows (with or without `SIG`, `RTMIN+n`…) or a number.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
        "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP",
        "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN",
        "RTMAX",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    ["RTMIN+", "RTMAX-"].iter().any(|p| {
        name.strip_prefix(p)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=30).contains(&n))
    })
}

/// The platform of a `FROM scratch` stage: that of its program (the entrypoint, else the
/// first word of Cmd) when it is an ELF file in the stage, else the one platform all of
/// its ELF executables share, else the machine's.
fn infer_platform(fs: &StageFs, config: &ImageConfig) -> std::result::Result<Platform, String> {
    let of = |path: &str| -> Option<Platform> {
        let real = root::resolve(fs, path).ok()?;
        let f = fs.open(&real).ok()?;
        let info = elf::parse(&*f).ok()?;
        if !info.kind.is_executable() {
            return None;
        }
        Some(Platform {
            architecture: info.architecture?,
            os: "linux".into(),
            variant: info.variant,
        })
    };
    let c = &config.config;
    let program = c
        .entrypoint
        .as_ref()
        .filter(|e| !e.is_empty())
        .or(c.cmd.as_ref())
        .and_then(|v| v.first())
        .filter(|p| p.starts_with('/'));
    if let Some(p) = program.and_then(|p| of(p)) {
        return Ok(p);
    }
    let mut found = BTreeSet::new();
    for (path, e) in fs.upper.entries() {
        if let Node::File { size, .. } = e.node {
            if size >= 64 {
                found.extend(of(&format!("/{path}")));
            }
        }
    }
    match found.len() {
        0 => Ok(image::host_platform()),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(format!(
            "the stage holds executables for several platforms ({}); say which with FROM --platform=OS/ARCH scratch",
            found.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_map_to_registries_like_docker() {
        for (name, want) in [
            ("alpine", Some("docker://docker.io/library/alpine:latest")),
            (
                "alpine:3.20",
                Some("docker://docker.io/library/alpine:3.20"),
            ),
            ("team/app:1", Some("docker://docker.io/team/app:1")),
            (
                "localhost:5000/app:1",
                Some("docker://localhost:5000/app:1"),
            ),
            ("ghcr.io/o/app", Some("docker://ghcr.io/o/app:latest")),
            ("oci:dir:x", None),
            ("Upper", None),
        ] {
            assert_eq!(
                registry_name(name).map(|r| r.to_string()).as_deref(),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn ports_signals_and_shells() {
        for s in ["SIGTERM", "TERM", "9", "SIGRTMIN+3"] {
            assert!(valid_signal(s), "{s}");
        }
        for s in ["SIGFOO", "0", "99", ""] {
            assert!(!valid_signal(s), "{s}");
        }
        let mut cfg = ImageConfig::default();
        assert_eq!(
            to_argv(&Cmdline::Shell("echo hi".into()), &cfg),
            ["/bin/sh", "-c", "echo hi"]
        );
        cfg.config
            .other
            .insert("Shell".into(), json!(["/bin/bash", "-o", "pipefail", "-c"]));
        assert_eq!(
            to_argv(&Cmdline::Shell("x".into()), &cfg),
            ["/bin/bash", "-o", "pipefail", "-c", "x"]
        );
    }

    #[test]
    fn healthcheck_is_dockers_object() {
        let h = plan::Healthcheck {
            test: Cmdline::Shell("curl -f localhost".into()),
            interval: 30_000_000_000,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 3,
        };
        let v = healthcheck_json(Some(&h));
        assert_eq!(
            v,
            json!({"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 30_000_000_000u64, "Retries": 3})
        );
        assert_eq!(healthcheck_json(None), json!({"Test": ["NONE"]}));
    }

    #[test]
    fn placement_keeps_parent_metadata_and_follows_dir_links() {
        let mut base = ImageTree::new();
        base.add_dir("/usr/bin", 0o755).unwrap();
        base.add_symlink("/bin", "usr/bin").unwrap();
        base.insert(
            "/tmp",
            Entry {
                node: Node::Dir,
                mode: 0o1777,
                uid: 0,
                gid: 0,
            },
        )
        .unwrap();
        let fs = StageFs {
            base: Some(Arc::new(StageFs {
                base: None,
                upper: base,
            })),
            upper: ImageTree::new(),
        };
        let file = |s: &[u8]| Entry {
            node: Node::File {
                size: s.len() as u64,
                content: tree::Content::Bytes(Arc::from(s)),
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let dir = Entry {
            node: Node::Dir,
            mode: 0o700,
            uid: 0,
            gid: 0,
        };
        let layer = place(
            &fs,
            vec![
                ("/tmp/x".into(), file(b"x")),
                ("/bin".into(), dir.clone()),
                ("/bin/tool".into(), file(b"t")),
            ],
            None,
            1,
            "COPY",
        )
        .unwrap();
        let got: Vec<_> = layer.entries().map(|(p, e)| (p.clone(), e.mode)).collect();
        assert_eq!(
            got,
            [
                ("tmp".to_string(), 0o1777),
                ("tmp/x".to_string(), 0o644),
                ("usr".to_string(), 0o755),
                ("usr/bin".to_string(), 0o755),
                ("usr/bin/tool".to_string(), 0o644),
            ]
        );
        // Parents it makes are owned by the owner given; those that exist keep theirs.
        let app = Owner {
            uid: 1000,
            gid: 1001,
        };
        let layer = place(
            &fs,
            vec![("/tmp/a/b/c".into(), file(b"c"))],
            Some(app),
            1,
            "COPY",
        )
        .unwrap();
        let got: Vec<_> = layer
            .entries()
            .map(|(p, e)| (p.as_str(), e.mode, e.uid, e.gid))
            .collect();
        assert_eq!(
            got,
            [
                ("tmp", 0o1777, 0, 0),
                ("tmp/a", 0o755, 1000, 1001),
                ("tmp/a/b", 0o755, 1000, 1001),
                ("tmp/a/b/c", 0o644, 0, 0),
            ]
        );
    }
}
