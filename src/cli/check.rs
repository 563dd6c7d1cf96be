//! `nobase check IMAGE`: will this image start? Exit 0 yes, 1 no (with each problem
//! named), 3 when the image could not be read.

use super::progress;
use super::render::{color_for, paint, print_json, printable};
use super::Global;
use anyhow::{Context, Result};
use nobase::check::{self, Report};
use nobase::image::Platform;
use nobase::refs::ImageRef;
use std::io::{self, Write};

/// Arguments of `nobase check`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exit status: 0 it will start, 1 it will not (each problem is named), 3 the image could
not be read.

Examples:
  nobase check hello:1
  nobase check docker://registry.example.com/team/app:1
  nobase check --json oci-archive:hello.tar | jq .problems")]
pub struct Args {
    /// The image: NAME[:TAG], oci:DIR[:REF], oci-archive:FILE[:REF],
    /// docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG|@DIGEST].
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Print one JSON document: {ok, image, command, problems, warnings}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Which platform of a multi-platform image to check (os/arch[/variant]).
    #[arg(long, value_name = "PLATFORM", conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// Check every platform of a multi-platform image (exit 1 if any will not start;
    /// --json: {ok, image, platforms: [{platform, ok, command, problems, warnings}]}).
    #[arg(long)]
    all_platforms: bool,
    #[command(flatten)]
    read: super::ReadLimitArgs,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

fn human(out: &mut impl Write, r: &Report, color: bool) -> io::Result<()> {
    let command = r
        .command
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    if r.ok {
        let verdict = paint(color, "32", "will start");
        writeln!(out, "{}: {verdict}: {command}", printable(&r.image))?;
    } else {
        let verdict = paint(color, "1;31", "will NOT start");
        writeln!(out, "{}: {verdict}: {command}", printable(&r.image))?;
        for p in &r.problems {
            let code = serde_json::to_value(p.code).unwrap_or_default();
            let code = paint(color, "31", code.as_str().unwrap_or("problem"));
            writeln!(out, "  {code}: {}", printable(&p.message))?;
        }
    }
    for w in &r.warnings {
        let code = serde_json::to_value(w.code).unwrap_or_default();
        let head = format!("warning {}", code.as_str().unwrap_or("warning"));
        writeln!(
            out,
            "  {}: {}",
            paint(color, "33", &head),
            printable(&w.message)
        )?;
    }
    Ok(())
}

/// Runs `nobase check`.
pub fn run(g: &Global, args: Args) -> Result<i32> {
    let reference = ImageRef::parse(&args.image)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    // With the registry flags, so --creds and --insecure work for docker:// too.
    let src = g.open_source(&reference)?;
    if args.all_platforms {
        return all_platforms(g, &args, &src);
    }
    let image = src.image.select(platform.as_ref())?;
    let report = {
        let _line = progress::reading(g, args.json, &src.reference, Some(image));
        check::check_image(
            &src.reference,
            image,
            &progress::Counted(&*src.blobs),
            args.read.limits()?,
        )
        .with_context(|| format!("checking {}", src.reference))?
    };
    for step in &report.passed {
        g.explain(format_args!("nobase: passed: {step}"));
    }
    // A multi-platform image is checked for one platform: say which, and how to check
    // the others (the verdict is that platform's only).
    let all = src.image.platform_names();
    if all.len() > 1 {
        g.note(format!(
            "checked {} of the image's {} platforms ({}); --platform checks another",
            image.config.platform(),
            all.len(),
            all.join(", ")
        ));
    }
    // The verdict is for a machine of the image's platform: said when this one is not.
    let checked = image.config.platform();
    if !nobase::image::host_runs(&checked) {
        g.note(format!(
            "the verdict is for a {checked} machine: this one is {}, where `nobase run` needs an emulator for it (qemu-user registered with binfmt_misc)",
            nobase::image::host_platform()
        ));
    }
    if args.json {
        print_json(&report)?;
    } else if !g.quiet {
        human(&mut io::stdout().lock(), &report, color_for(&io::stdout()))?;
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// `check --all-platforms`: each platform's image of the reference (attestation
/// manifests left out), one verdict each.
fn all_platforms(g: &Global, args: &Args, src: &nobase::source::Source) -> Result<i32> {
    let mut reports = Vec::new();
    for m in src.image.images() {
        let platform = m.config.platform().to_string();
        let name = format!("{} ({platform})", src.reference);
        let report = {
            let _line = progress::reading(g, args.json, &src.reference, Some(m));
            check::check_image(
                &name,
                m,
                &progress::Counted(&*src.blobs),
                args.read.limits()?,
            )
            .with_context(|| format!("checking {name}"))?
        };
        for step in &report.passed {
            g.explain(format_args!("nobase: passed: {step}"));
        }
        reports.push((platform, report));
    }
    let ok = reports.iter().all(|(_, r)| r.ok);
    if args.json {
        let platforms: Vec<serde_json::Value> = reports
            .iter()
            .map(|(p, r)| {
                serde_json::json!({
                    "platform": p,
                    "ok": r.ok,
                    "command": r.command,
                    "problems": r.problems,
                    "warnings": r.warnings,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "ok": ok,
            "image": src.reference,
            "platforms": platforms,
        }))?;
    } else if !g.quiet {
        let mut out = io::stdout().lock();
        let color = color_for(&io::stdout());
        for (_, r) in &reports {
            human(&mut out, r, color)?;
        }
    }
    Ok(if ok { 0 } else { 1 })
}
