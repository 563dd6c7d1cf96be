//! `nobase build -f Dockerfile [CONTEXT]`: the Dockerfile and its context → the
//! library's Dockerfile build → the same sinks and report as `nobase build BINARY`.

use super::{default_name, publish, publish_parts, sinks, threads, Args, Part};
use crate::cli::push::Reporter;
use crate::cli::Global;
use anyhow::{Context as _, Result};
use nobase::build::Bundle;
use nobase::dockerfile::{self, BundleOptions, Context, Options};
use nobase::layer::Compression;
use nobase::Error;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Flags that describe a single-executable build and have no meaning with `-f`.
fn refuse_binary_flags(a: &Args) -> nobase::Result<()> {
    let given = [
        ("--path", a.path.is_some()),
        ("--entrypoint", a.entrypoint.is_some()),
        ("--cmd", !a.cmd.is_empty()),
        ("-- ARGS", !a.args.is_empty()),
        ("-e/--env", !a.env.is_empty()),
        ("-w/--workdir", a.workdir.is_some()),
        ("-u/--user", a.user.is_some()),
        ("--expose", !a.expose.is_empty()),
        ("--add", !a.adds.is_empty()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(Error::Usage(format!(
            "{flag} describes a build from one executable; with -f the Dockerfile says it (COPY, ENV, WORKDIR, USER, EXPOSE, CMD, ENTRYPOINT)"
        ))),
        None => Ok(()),
    }
}

/// `--build-arg KEY=VALUE`, or `KEY` alone taking the value from the environment (and
/// ignored when the environment has none), as `docker build` does.
fn build_args(list: &[String]) -> nobase::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in list {
        match s.split_once('=') {
            Some(("", _)) => {
                return Err(Error::Usage(format!(
                    "invalid --build-arg {s:?}: use KEY=VALUE or KEY"
                )))
            }
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None if s.is_empty() => {
                return Err(Error::Usage("--build-arg needs KEY=VALUE or KEY".into()))
            }
            None => {
                if let Ok(v) = std::env::var(s) {
                    out.insert(s.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Largest Dockerfile read (real ones are kilobytes).
const MAX_DOCKERFILE: u64 = 16 << 20;

/// The Dockerfile's text, from a file or stdin, bounded and UTF-8.
fn read_dockerfile(path: Option<&Path>, shown: &str) -> nobase::Result<String> {
    let mut bytes = Vec::new();
    let res = match path {
        Some(p) => {
            std::fs::File::open(p).and_then(|f| f.take(MAX_DOCKERFILE + 1).read_to_end(&mut bytes))
        }
        None => std::io::stdin()
            .take(MAX_DOCKERFILE + 1)
            .read_to_end(&mut bytes),
    };
    res.map_err(|e| match path {
        Some(p) => nobase::error::input_error(p, "the Dockerfile (-f)", e),
        None => Error::Io {
            action: format!("reading {shown}"),
            cause: e,
        },
    })?;
    if bytes.len() as u64 > MAX_DOCKERFILE {
        return Err(Error::Invalid(format!(
            "{shown} is larger than {MAX_DOCKERFILE} bytes; that is not a Dockerfile"
        )));
    }
    String::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{shown} is not UTF-8 text")))
}

/// Runs `nobase build -f`.
pub(super) fn run(
    g: &Global,
    a: &Args,
    reporter: &Reporter,
    registry: &nobase::registry::Options,
) -> Result<i32> {
    refuse_binary_flags(a)?;
    let file = a.file.clone().unwrap_or_default();
    let from_stdin = file == Path::new("-");
    let (shown, df_path) = if from_stdin {
        ("the Dockerfile from stdin".to_string(), None)
    } else {
        (file.display().to_string(), Some(file.as_path()))
    };
    let text = read_dockerfile(df_path, &shown)?;
    // The context defaults to the Dockerfile's directory (the current one for stdin).
    let context: PathBuf = match (a.binaries.as_slice(), df_path) {
        ([c], _) => c.clone(),
        ([], Some(f)) => match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
        ([], None) => PathBuf::from("."),
        _ => return Err(Error::Usage("with -f, give one build context directory".into()).into()),
    };
    let ignore = dockerfile::ignore_text(df_path, &context)?;
    let ctx = Context::new(&context, ignore.as_deref())?;
    let df = dockerfile::parse(&text).with_context(|| shown.clone())?;
    let labels = a
        .labels
        .iter()
        .map(|s| nobase::build::parse_key_value(s, "label"))
        .collect::<nobase::Result<BTreeMap<_, _>>>()?;
    let opts = Options {
        build_args: build_args(&a.build_args)?,
        target: a.target.clone(),
        labels,
        compression: Compression::parse(&a.compression)?,
        compression_level: Compression::parse(&a.compression)?.check_level(a.compression_level)?,
        epoch: super::epoch(a)?,
        threads: threads(a),
        registry: registry.clone(),
        bundle: BundleOptions {
            bundle: if a.bundle == "never" {
                Bundle::Never
            } else {
                Bundle::Auto
            },
            sysroot: super::single_sysroot(a)?,
            check: !a.no_check,
        },
        with: nobase::build::extras::Extra::parse_list(&a.with)?,
        platform: None,
    };
    let platforms = target_platforms(&a.platforms)?;
    let sinks = sinks(g, a, registry, || {
        let dir = std::fs::canonicalize(&context).unwrap_or_else(|_| context.clone());
        default_name(&dir)
    })?;
    let store = g.store()?;
    let _guard = store.writer_guard()?;
    if platforms.len() <= 1 {
        let opts = Options {
            platform: platforms.into_iter().next(),
            ..opts
        };
        let built = {
            let _line = super::progress::Line::start(g, a.json, format!("building {shown}"));
            dockerfile::build(&df, &ctx, &opts, &store)
                .with_context(|| format!("building {shown}"))?
        };
        let extra = serde_json::json!({ "warnings": built.warnings });
        publish(
            g,
            a,
            reporter,
            store.layout(),
            &built.image,
            &built.layers,
            &sinks,
            extra,
        )?;
        return Ok(0);
    }
    // Several platforms, as buildx --platform a,b: the Dockerfile once for each (its
    // TARGET* arguments and every FROM without --platform set to it), then an index.
    let mut builds = Vec::new();
    for p in &platforms {
        let opts = Options {
            platform: Some(p.clone()),
            ..opts.clone()
        };
        let what = format!("building {shown} for {p}");
        let built = {
            let _line = super::progress::Line::start(g, a.json, what.clone());
            dockerfile::build(&df, &ctx, &opts, &store).with_context(|| what.clone())?
        };
        let made = built.image.manifests[0].config.platform();
        if !nobase::image::platform_matches(&made, p) {
            return Err(Error::Refused(format!(
                "{what}: the image made is for {made} (a FROM --platform= in the Dockerfile fixes it), so an index of {} would not hold one image per platform",
                platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
        builds.push(built);
    }
    builds.sort_by_key(|b| b.image.manifests[0].config.platform());
    let index = nobase::build::multi::index_of(builds.iter().map(|b| &b.image), store.layout())?;
    let parts: Vec<Part> = builds
        .iter()
        .map(|b| Part {
            image: &b.image.manifests[0],
            layers: &b.layers,
            bundled: None,
            extra: serde_json::json!({ "warnings": b.warnings }),
        })
        .collect();
    publish_parts(
        g,
        a,
        reporter,
        store.layout(),
        &index,
        &parts,
        &sinks,
        serde_json::json!({}),
    )?;
    Ok(0)
}

/// `--platform` with `-f`: the target platforms, each flag one or several separated by
/// commas (`linux/amd64,linux/arm64`, as buildx takes them), none twice.
fn target_platforms(flags: &[String]) -> nobase::Result<Vec<nobase::image::Platform>> {
    let mut out: Vec<nobase::image::Platform> = Vec::new();
    for p in flags.iter().flat_map(|f| f.split(',')).map(str::trim) {
        let p = nobase::image::Platform::parse(p)?;
        if out.iter().any(|q| nobase::image::platform_matches(q, &p)) {
            return Err(Error::Usage(format!("--platform names {p} twice")));
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arg_forms() {
        std::env::set_var("NOBASE_TEST_BUILD_ARG", "from-env");
        let got = build_args(&[
            "A=1".into(),
            "B=".into(),
            "NOBASE_TEST_BUILD_ARG".into(),
            "NOBASE_TEST_UNSET_ARG".into(),
        ])
        .unwrap();
        assert_eq!(got["A"], "1");
        assert_eq!(got["B"], "");
        assert_eq!(got["NOBASE_TEST_BUILD_ARG"], "from-env");
        assert!(!got.contains_key("NOBASE_TEST_UNSET_ARG"));
        assert!(build_args(&["=x".into()]).is_err());
    }
}
