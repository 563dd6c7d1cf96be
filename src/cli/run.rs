//! `nobase run IMAGE [ARGS…]`: flags → run options → the library unpacks a fresh
//! bundle, checks it, runs it with runc (or crun, or `--runtime`) and cleans up; the
//! program's exit code becomes nobase's. Also the container flags `unpack` shares.

use super::progress;
use super::Global;
use anyhow::{Context, Result};
use nobase::image::Platform;
use nobase::refs::ImageRef;
use nobase::run::{Limits, ProcessOptions, RunOptions, Runtime, UnpackOptions};
use nobase::{build, Error};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the container is: flags shared by `run` and `unpack`.
#[derive(clap::Args, Debug)]
pub struct ContainerArgs {
    /// The program's arguments: they replace the image's Cmd. As with `docker run`,
    /// everything after the image is the program's, flags too (nobase's own flags go
    /// before the image); a `--` right after it is left out.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
    /// The program to start instead of the image's Entrypoint (a path, or a JSON array;
    /// "" clears it). As in Docker, the image's Cmd is dropped too.
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass this shell's value); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Working directory in the container (made if missing).
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<String>,
    /// User: uid[:gid], or names from the image's /etc/passwd and /etc/group.
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// Platform to pick from a multi-platform image (os/arch[/variant]) [default: this machine's]
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Network: none (a private namespace with only loopback) or host.
    #[arg(long, default_value = "none", value_parser = ["none", "host"])]
    network: String,
    /// Add a line to the container's /etc/hosts: NAME:IP (or NAME=IP; an IPv6 address
    /// may be in brackets), as `docker run --add-host`; repeatable. `host-gateway`
    /// stands for this host, with --network host (127.0.0.1).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// Keep setuid/setgid bits on files (dropped by default) and let them take effect.
    #[arg(long)]
    keep_setuid: bool,
    /// Create the image's device nodes (root only; skipped by default).
    #[arg(long)]
    devices: bool,
    /// Refuse images that unpack to more than this many bytes (suffixes K, M, G, T) [default: 64G]; given, a layer may expand to it however well it compressed (by default a layer over 1 GiB may expand 100× its blob at most, against decompression bombs)
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
}

/// `64G` → bytes.
pub(super) fn parse_size(s: &str) -> nobase::Result<u64> {
    let (num, shift) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 10),
        Some('M') => (&s[..s.len() - 1], 20),
        Some('G') => (&s[..s.len() - 1], 30),
        Some('T') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            Error::Usage(format!(
                "invalid size {s:?}: a number of bytes, optionally with K, M, G or T"
            ))
        })
}

/// `--add-host NAME:IP` (or `NAME=IP`, or `NAME:[V6]`), checked as Docker checks it: a
/// host name of letters, digits, `.`, `-` and `_`, and an address. `host-gateway` is
/// the host itself, reachable only when its network is shared.
fn parse_add_host(s: &str, network_host: bool) -> nobase::Result<(String, std::net::IpAddr)> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--add-host {s:?}: {why} (give NAME:IP, e.g. db:10.0.0.5 or db:[fd00::5])"
        ))
    };
    // The name ends at the first ':' or '=' (a name has neither); the rest is the
    // address, IPv6 ones with their colons.
    let (name, ip) = s.split_once(['=', ':']).ok_or_else(|| bad("no address"))?;
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !name_ok {
        return Err(bad("the name is not a host name"));
    }
    if ip == "host-gateway" {
        return match network_host {
            true => Ok((name.to_string(), std::net::Ipv4Addr::LOCALHOST.into())),
            false => Err(bad(
                "host-gateway is this host, which a container with --network none cannot reach; run with --network host",
            )),
        };
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(ip);
    let addr = bare
        .parse()
        .map_err(|_| bad(&format!("{ip:?} is not an IPv4 or IPv6 address")))?;
    Ok((name.to_string(), addr))
}

/// A terminal is asked for only when stdin is one — and stdout too, so that
/// `nobase run img > file` gets the program's bytes, not a terminal's CRLF line ends.
fn interactive() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(0) == 1 && libc::isatty(1) == 1 }
}

impl ContainerArgs {
    /// The validated unpack options.
    pub fn options(&self) -> nobase::Result<UnpackOptions> {
        let mut env = Vec::new();
        for e in &self.env {
            if e.contains('=') {
                env.push(build::parse_key_value(e, "environment variable")?);
            } else if let Ok(v) = std::env::var(e) {
                // `-e KEY` passes this shell's value, and nothing when it has none (Docker).
                env.push((e.clone(), v));
            }
        }
        let entrypoint = match self.entrypoint.as_deref() {
            Some("") => Some(Vec::new()),
            Some(e) => Some(build::parse_entrypoint(e)?),
            None => None,
        };
        Ok(UnpackOptions {
            platform: self.platform.as_deref().map(Platform::parse).transpose()?,
            process: ProcessOptions {
                entrypoint,
                args: (!self.args.is_empty()).then(|| self.args.clone()),
                env,
                workdir: self.workdir.clone(),
                user: self.user.clone(),
            },
            network_host: self.network == "host",
            add_hosts: self
                .add_host
                .iter()
                .map(|h| parse_add_host(h, self.network == "host"))
                .collect::<nobase::Result<_>>()?,
            keep_setuid: self.keep_setuid,
            devices: self.devices,
            limits: match &self.max_size {
                // Said by the user: the image is trusted that far, whatever the ratio.
                Some(m) => {
                    let max = parse_size(m)?;
                    Limits {
                        max_bytes: max,
                        ratio_floor: max,
                        ..Limits::default()
                    }
                }
                None => Limits::default(),
            },
            terminal: interactive(),
            allow_no_program: false,
        })
    }
}

/// Arguments of `nobase run`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  nobase run hello:1                       prints what the image's program prints
  nobase run bb:1 ls -l /                  arguments after the image replace its Cmd
  nobase run -e K=V bb:1 sh -c 'echo $K'   nobase's flags before the image, the program's after
  nobase run -e PORT=8080 -u 1000 server:1
  nobase run --entrypoint /bin/sh tools:1 -- -c 'echo hi'

The program's exit code is nobase's. When the program cannot start, the code is Docker's:
127 for a program, loader or library that is not there, 126 for one that cannot be
executed, 125 for every other failure of nobase's own. Each run unpacks a fresh bundle next to the store
(STORE/../bundles/run-*) and removes it afterwards (--keep keeps it).")]
pub struct Args {
    /// The image (NAME[:TAG] in the store, oci:DIR[:REF], …).
    #[arg(value_name = "IMAGE")]
    image: String,
    #[command(flatten)]
    container: ContainerArgs,
    /// The OCI runtime: a name on PATH or a path [default: runc, else crun]
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<String>,
    /// Keep the bundle afterwards (its path is printed on stderr).
    #[arg(long, conflicts_with = "rm")]
    keep: bool,
    /// Remove the bundle afterwards (the default).
    #[arg(long)]
    rm: bool,
    /// Start without checking first that the program is there and may be executed.
    #[arg(long)]
    no_check: bool,
    /// Seconds a container may take to stop after SIGTERM or SIGINT before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    stop_timeout: u64,
    #[command(flatten)]
    pub registry: super::RegistryArgs,
}

/// The directory run bundles go in: `bundles` beside the store.
fn bundles_dir(store_root: &Path) -> PathBuf {
    store_root
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("bundles")
}

/// The platform's image `opts` will pick, if there is one (for the progress total).
pub fn chosen<'a>(
    image: &'a nobase::image::Image,
    opts: &UnpackOptions,
) -> Option<&'a nobase::image::PlatformImage> {
    image.select(opts.platform.as_ref()).ok()
}

/// The exit code of a `run` that failed before its program could start, as `docker run`
/// has it, so that a script can tell nobase's failures from the program's own codes:
/// 126 or 127 when the check found the program cannot be executed or is not found, 125
/// for everything else (the image, the store, the runtime, the flags).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|c| match c.downcast_ref::<Error>() {
            Some(Error::WouldNotStart { run_code, .. }) => Some(*run_code),
            _ => None,
        })
        .unwrap_or(RUN_FAILED)
}

/// `run`'s own failure (Docker's 125).
pub const RUN_FAILED: i32 = 125;

/// Runs `nobase run`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let reference = ImageRef::parse(&a.image)?;
    let unpack = a.container.options()?;
    let runtime = Runtime::find(a.runtime.as_deref())?;
    let bundles = bundles_dir(&g.store_path()?);
    // With the registry flags, so --creds and --insecure work for docker:// too.
    let src = g
        .open_source(&reference)
        .with_context(|| format!("opening {reference}"))?;
    let opts = RunOptions {
        unpack,
        runtime,
        bundles,
        keep: a.keep,
        check: !a.no_check,
        stop_timeout: Duration::from_secs(a.stop_timeout),
    };
    // The line erases itself once every layer is read, before the program starts.
    let line = progress::reading(
        g,
        false,
        &reference.to_string(),
        chosen(&src.image, &opts.unpack),
    );
    let blobs = progress::Counted(&*src.blobs);
    let outcome = nobase::run::run(&src.image, &blobs, &opts, &|m| {
        g.note(format!("nobase: {m}"))
    })
    .with_context(|| format!("running {reference}"))?;
    drop(line);
    if let Some(dir) = &outcome.kept {
        g.note(format!(
            "nobase: bundle kept at {} (start it again with: {} run --bundle {} NAME)",
            dir.display(),
            opts.runtime.name(),
            dir.display()
        ));
    }
    Ok(outcome.code)
}

#[cfg(test)]
mod tests {
    use super::{parse_add_host, parse_size};

    #[test]
    fn add_hosts_parse_as_docker_takes_them() {
        let ok = |s: &str, host: bool| {
            parse_add_host(s, host)
                .map(|(n, ip)| format!("{ip} {n}"))
                .unwrap_or_else(|e| format!("error: {e}"))
        };
        assert_eq!(ok("db:10.0.0.5", false), "10.0.0.5 db");
        assert_eq!(ok("db=10.0.0.5", false), "10.0.0.5 db");
        assert_eq!(ok("db:[fd00::5]", false), "fd00::5 db");
        assert_eq!(ok("db:fd00::5", false), "fd00::5 db");
        assert_eq!(ok("my_db.local:::1", false), "::1 my_db.local");
        assert_eq!(ok("gw:host-gateway", true), "127.0.0.1 gw");
        for (bad, why) in [
            ("db", "no address"),
            ("db:", "is not an IPv4 or IPv6 address"),
            ("db:example.com", "is not an IPv4 or IPv6 address"),
            (":10.0.0.5", "not a host name"),
            ("a b:10.0.0.5", "not a host name"),
            ("-x:10.0.0.5", "not a host name"),
            ("gw:host-gateway", "--network host"),
        ] {
            assert!(ok(bad, false).contains(why), "{bad}: {}", ok(bad, false));
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10").unwrap(), 10);
        assert_eq!(parse_size("10k").unwrap(), 10 << 10);
        assert_eq!(parse_size("64G").unwrap(), 64 << 30);
        for bad in ["", "G", "x", "99999999999T", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
