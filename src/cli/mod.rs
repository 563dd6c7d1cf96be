//! The command line: clap types, one file per subcommand, and the mapping of outcomes to
//! exit codes. Nothing below this module sees clap.

/// `println!` that gives back the error instead of panicking: a closed stdout
/// (`nobase -q images | head -1`) or a full disk ends the command through [`report`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

mod build;
mod check;
mod docs;
mod fsck;
mod images;
mod inspect;
mod progress;
mod pull;
mod push;
mod render;
mod run;
mod summary;
mod tree;
mod unpack;

use clap::{Parser, Subcommand};
use std::io::{self, Write};
use std::path::PathBuf;

const WALK: &str = "\
The walk:
  nobase inspect ./hello              what is it? static or dynamic, loader, libraries
  nobase build ./hello -t hello:1     a scratch image in the local store (a dynamic
                                      program gets its loader and libraries)
  nobase build -f Dockerfile .        the FROM-scratch subset of Dockerfiles, no engine
  nobase check hello:1                will it start? names the missing piece if not
  nobase run hello:1                  start it with runc (the program's exit code is nobase's)
  nobase tree hello:1                 what is inside, layer by layer (like dive)
  nobase push hello:1 docker://registry.example.com/team/hello:1

Also: images, rmi, pull, unpack, fsck, completions, man.
Images are named NAME[:TAG] (the local store), oci:DIR[:REF], oci-archive:FILE[:REF],
docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG|@DIGEST].
-q prints only what a script needs (a digest, a name) and errors; -v explains each step.
Exit status: 0 done, 1 the answer is no, 2 usage error, 3 could not do the work.";

/// Turn Linux executables into OCI images with no base operating system.
#[derive(Parser, Debug)]
#[command(name = "nobase", version, about, after_help = WALK)]
struct Cli {
    /// The local store directory [default: $NOBASE_STORE, else ~/.local/share/nobase/store]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    store: Option<PathBuf>,
    /// Print only errors and what a script needs (a digest, a name); no progress.
    #[arg(short, long, global = true, help_heading = "Global options")]
    quiet: bool,
    /// Explain more: libraries and why, layers and their files, checks passed, registry
    /// requests.
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        conflicts_with = "quiet",
        help_heading = "Global options"
    )]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How to reach registries: flattened into the commands that read or write `docker://`
/// references, so the help of the others does not list them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Registry credentials (prefer --creds-file or docker login: arguments are visible to other users)
    #[arg(
        long,
        value_name = "USER:PASS",
        help_heading = "Registry options",
        conflicts_with = "creds_file"
    )]
    creds: Option<String>,
    /// A file whose first line is USER:PASS
    #[arg(long, value_name = "FILE", help_heading = "Registry options")]
    creds_file: Option<PathBuf>,
    /// The credentials file to read instead of skopeo's auth.json and Docker's config.json [default: $REGISTRY_AUTH_FILE]
    #[arg(long, value_name = "FILE", help_heading = "Registry options")]
    authfile: Option<PathBuf>,
    /// Extra CA certificates (*.crt) and a client certificate (*.cert + *.key) for the registry
    #[arg(long, value_name = "DIR", help_heading = "Registry options")]
    cert_dir: Option<PathBuf>,
    /// Allow plain HTTP and unverified TLS for a registry that is not on loopback
    #[arg(long, help_heading = "Registry options")]
    insecure: bool,
    /// skopeo's and podman's spelling: --tls-verify=false is --insecure; --tls-verify=true allows only HTTPS (no plain HTTP even on loopback)
    #[arg(
        long,
        value_name = "BOOL",
        help_heading = "Registry options",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        conflicts_with = "insecure"
    )]
    tls_verify: Option<bool>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Say what an executable is and needs, without running it (like file + ldd).
    Inspect(inspect::Args),
    /// Build a scratch image from an executable (a dynamic one gets its loader and libraries).
    Build(Box<build::Args>),
    /// Say whether an image will start, and name what is missing if not.
    Check(check::Args),
    /// Start an image with the system's OCI runtime (runc or crun); exits with the program's code.
    Run(Box<run::Args>),
    /// Show what each layer adds, changes and removes, and the space it wastes (like dive).
    Tree(tree::Args),
    /// Copy an image from any reference to any other, typically the store to a registry.
    Push(push::Args),
    /// Fetch an image from a registry into the local store.
    Pull(pull::Args),
    /// List the images in the local store.
    Images(images::ListArgs),
    /// Remove tags from the local store and delete blobs nothing uses any more.
    Rmi(images::RmiArgs),
    /// Write an image as an OCI runtime bundle (config.json + rootfs) for runc or crun.
    Unpack(Box<unpack::Args>),
    /// Verify every blob of the store (or a layout) and repair what an interrupted write left.
    Fsck(fsck::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionArgs),
    /// Print the man page, or write all of them into a directory.
    Man(docs::ManArgs),
}

impl Command {
    /// Whether `--json` was given (to commands that take it).
    fn json(&self) -> bool {
        match self {
            Command::Build(a) => a.json,
            Command::Check(a) => a.json,
            Command::Tree(a) => a.json,
            Command::Inspect(a) => a.json,
            Command::Images(a) => a.json,
            Command::Push(a) => a.json,
            Command::Pull(a) => a.json,
            Command::Fsck(a) => a.json,
            _ => false,
        }
    }

    /// The registry flags of commands that take them.
    fn registry_args(&self) -> RegistryArgs {
        match self {
            Command::Build(a) => a.registry.clone(),
            Command::Check(a) => a.registry.clone(),
            Command::Run(a) => a.registry.clone(),
            Command::Tree(a) => a.registry.clone(),
            Command::Push(a) => a.registry.clone(),
            Command::Pull(a) => a.registry.clone(),
            Command::Unpack(a) => a.registry.clone(),
            _ => RegistryArgs::default(),
        }
    }
}

/// Credentials given as `FLAG USER:PASS` or `FLAG-file FILE` (clap keeps the two apart).
pub(crate) fn given_creds(
    value: Option<&str>,
    file: Option<&std::path::Path>,
    flag: &str,
) -> nobase::Result<Option<nobase::registry::GivenCreds>> {
    use nobase::registry as r;
    match (value, file) {
        (Some(c), _) => r::parse_user_pass(c, flag).map(Some),
        (None, Some(f)) => r::read_creds_file(f, &format!("{flag}-file")).map(Some),
        (None, None) => Ok(None),
    }
}

/// Settings every command shares.
pub(crate) struct Global {
    store: Option<PathBuf>,
    pub quiet: bool,
    pub verbose: u8,
    registry: RegistryArgs,
}

impl Global {
    /// The local store's directory (not created).
    pub fn store_path(&self) -> nobase::Result<PathBuf> {
        match &self.store {
            Some(p) => Ok(p.clone()),
            None => nobase::store::default_path(),
        }
    }

    /// Opens the local store (creating it on first use).
    pub fn store(&self) -> nobase::Result<nobase::store::Store> {
        nobase::store::Store::open(&self.store_path()?)
    }

    /// Opens the local store to read from it. One that does not exist is an error
    /// naming it: a typo in --store or NOBASE_STORE must not make a new, empty store
    /// and answer from it ("0 problems", no images).
    pub fn existing_store(&self) -> nobase::Result<nobase::store::Store> {
        let path = self.store_path()?;
        if !path.exists() {
            return Err(nobase::Error::Invalid(format!(
                "the store {} does not exist (the first build or pull makes it); check --store and NOBASE_STORE",
                path.display()
            )));
        }
        nobase::store::Store::open(&path)
    }

    /// How to talk to registries: the registry flags, plus tuning from the environment
    /// (`NOBASE_RETRIES`, `NOBASE_RETRY_BASE_MS`, `NOBASE_RETRY_CAP_MS`,
    /// `NOBASE_CHUNK_SIZE`, `NOBASE_IO_TIMEOUT_MS`), reporting to `events`.
    pub fn registry(
        &self,
        events: std::sync::Arc<dyn nobase::registry::Events>,
    ) -> nobase::Result<nobase::registry::Options> {
        use nobase::registry as r;
        use std::time::Duration;
        let mut o = r::Options {
            events,
            ..r::Options::default()
        };
        let flags = &self.registry;
        o.creds = given_creds(
            flags.creds.as_deref(),
            flags.creds_file.as_deref(),
            "--creds",
        )?;
        if let Some(f) = &flags.authfile {
            // A file named on the command line must be there; $REGISTRY_AUTH_FILE
            // naming none only means no credentials, as in skopeo.
            if !f.is_file() {
                return Err(nobase::Error::Usage(format!(
                    "--authfile {}: no such file",
                    f.display()
                )));
            }
            o.authfile = Some(f.clone());
        }
        o.tls.cert_dir = flags.cert_dir.clone();
        o.tls.insecure = flags.insecure || flags.tls_verify == Some(false);
        // Said explicitly, --tls-verify=true means what skopeo makes of it: HTTPS only,
        // no plain-HTTP fall-back even on loopback.
        o.tls.https_only = flags.tls_verify == Some(true);
        if let Some(n) = env_number("NOBASE_RETRIES")? {
            o.retry.attempts = (n as u32).max(1);
        }
        if let Some(ms) = env_number("NOBASE_RETRY_BASE_MS")? {
            o.retry.base = Duration::from_millis(ms);
        }
        if let Some(ms) = env_number("NOBASE_RETRY_CAP_MS")? {
            o.retry.cap = Duration::from_millis(ms);
        }
        if let Some(ms) = env_number("NOBASE_IO_TIMEOUT_MS")? {
            o.io_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = env_number("NOBASE_CHUNK_SIZE")? {
            // Below a few KiB every blob becomes a storm of requests (1 byte each at
            // 0: a push that never ends).
            if n < MIN_CHUNK {
                return Err(nobase::Error::Usage(format!(
                    "NOBASE_CHUNK_SIZE={n} is too small; give at least {MIN_CHUNK} bytes"
                )));
            }
            o.chunk_size = n;
            o.monolithic_max = o.monolithic_max.min(n);
        }
        Ok(o)
    }

    /// Opens any reference for reading with the registry flags applied (commands that
    /// read images should use this rather than `source::open`, so `--creds`,
    /// `--cert-dir` and `--insecure` work for `docker://` everywhere).
    pub fn open_source(
        &self,
        r: &nobase::refs::ImageRef,
    ) -> nobase::Result<nobase::source::Source> {
        // Reading is shown by the command's own progress line: no per-blob bars (as
        // for --json).
        let events = std::sync::Arc::new(push::Reporter::new(self, true));
        nobase::source::open_with(r, || self.existing_store(), &self.registry(events)?)
    }

    /// Prints a diagnostic line on stderr unless `-q`.
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{}", render::printable(&msg.to_string()));
        }
    }

    /// Prints an explanation on stderr with `-v`.
    pub fn explain(&self, msg: impl std::fmt::Display) {
        if self.verbose > 0 {
            eprintln!("{}", render::printable(&msg.to_string()));
        }
    }
}

/// `--max-size` of the commands that read layers without unpacking them (`check`,
/// `tree`), flattened into each so the flag and its help are written once.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ReadLimitArgs {
    /// Read at most this many bytes of layers (suffixes K, M, G, T) [default: 64G]; given, a layer may expand to it however well it compressed (by default a layer over 1 GiB may expand 100× its blob at most)
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
}

impl ReadLimitArgs {
    /// The caps layers are read under: the defaults, or `--max-size SIZE`, which also
    /// lets one layer expand to SIZE however well it compressed (an image the user
    /// trusts, with a large file of zeros, is no decompression bomb).
    pub fn limits(&self) -> nobase::Result<nobase::imagefs::walk::Limits> {
        let mut l = nobase::imagefs::walk::Limits::default();
        if let Some(m) = &self.max_size {
            let max = run::parse_size(m)?;
            l.max_bytes = max;
            l.ratio_floor = max;
        }
        Ok(l)
    }
}

/// A usage error as clap lays it out (`error: …`, hints, a usage line) in one line, as
/// every other error is.
fn one_line(text: &str) -> String {
    let mut parts = Vec::new();
    let mut usage = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        }
        match line.strip_prefix("Usage: ") {
            Some(u) => usage = Some(u),
            None => parts.push(line.strip_prefix("error: ").unwrap_or(line)),
        }
    }
    let mut out = String::new();
    for p in parts {
        if !out.is_empty() {
            // A list continues its line; anything else is a clause of its own.
            out.push_str(if out.ends_with(':') || p.starts_with('[') {
                " "
            } else {
                "; "
            });
        }
        out.push_str(p);
    }
    if let Some(u) = usage {
        out.push_str(&format!(" (usage: {u})"));
    }
    out
}

/// Runs nobase with the process's arguments and returns the exit code.
pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    // One clap definition serves both the `--` insertion and the parse (building it is a
    // good part of nobase's start-up).
    let mut cmd = Cli::command();
    let argv = program_args_verbatim(&cmd, std::env::args_os().collect());
    let parsed = cmd
        .try_get_matches_from_mut(argv)
        .and_then(|m| Cli::from_arg_matches(&m).map_err(|e| e.format(&mut cmd)));
    let cli = match parsed {
        Ok(c) => c,
        // --help and --version: clap's own text, on stdout.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            let message = one_line(&e.render().to_string());
            let _ = writeln!(io::stderr(), "nobase: {message}");
            let args = std::env::args_os().collect::<Vec<_>>();
            // A script reads any code but 125–127 from `run` as its program's.
            if subcommand(&cmd, &args).is_some_and(|(_, name)| name == "run") {
                return run::RUN_FAILED;
            }
            // `--json` among the flags of a command that takes it (its clap definition
            // says so), before any `--`.
            let takes_json = subcommand(&cmd, &args).is_some_and(|(_, name)| {
                cmd.find_subcommand(&name)
                    .is_some_and(|c| c.get_arguments().any(|a| a.get_id() == "json"))
            });
            if takes_json
                && args
                    .iter()
                    .skip(1)
                    .take_while(|a| *a != "--")
                    .any(|a| a == "--json")
            {
                render::print_json_error(2, &render::printable(&message));
            }
            return 2;
        }
    };
    let Some(command) = cli.command else {
        let _ = writeln!(
            io::stdout(),
            "nobase {}: turn Linux executables into OCI images with no base operating system\n\n{WALK}\n\nRun `nobase COMMAND --help` for its flags and examples.",
            env!("CARGO_PKG_VERSION"),
        );
        return 0;
    };
    // Ctrl-C, SIGTERM, SIGHUP: the temporary files being written go first (`run` and
    // `tree -i` put handlers of their own in place while they need them).
    nobase::fsutil::remove_temps_on_signals();
    if !cli.quiet {
        nobase::progress::on_notice(|m| eprintln!("{}", render::printable(m)));
    }
    let json = command.json();
    let global = Global {
        store: cli.store,
        quiet: cli.quiet,
        verbose: cli.verbose,
        registry: command.registry_args(),
    };
    let result = match command {
        Command::Inspect(a) => inspect::run(&global, a),
        Command::Build(a) => build::run(&global, *a),
        Command::Check(a) => check::run(&global, a),
        Command::Tree(a) => tree::run(&global, a),
        Command::Images(a) => images::list(&global, a),
        Command::Rmi(a) => images::rmi(&global, a),
        Command::Run(a) => {
            return match run::run(&global, *a) {
                Ok(code) => code,
                Err(err) => match report(&err) {
                    0 => 0,
                    _ => run::exit_code(&err),
                },
            }
        }
        Command::Unpack(a) => unpack::run(&global, *a),
        Command::Push(a) => push::run(&global, a),
        Command::Pull(a) => pull::run(&global, a),
        Command::Fsck(a) => fsck::run(&global, a),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let code = report(&err);
            if json && code != 0 {
                render::print_json_error(code, &render::printable(&format!("{err:#}")));
            }
            code
        }
    }
}

/// The smallest upload chunk `NOBASE_CHUNK_SIZE` may ask for.
const MIN_CHUNK: u64 = 4096;

/// Whether `arg` (as written, `--name` or `-n`) is an option of `cmd` whose value is
/// the next argument.
fn takes_value(cmd: &clap::Command, arg: &str) -> bool {
    let found = if let Some(long) = arg.strip_prefix("--") {
        if long.contains('=') {
            return false;
        }
        cmd.get_arguments().find(|a| a.get_long() == Some(long))
    } else {
        let mut chars = arg.chars().skip(1);
        match (chars.next(), chars.next()) {
            // `-eKEY=V` carries its value; a cluster of flags (`-qv`) takes none.
            (Some(c), None) => cmd.get_arguments().find(|a| a.get_short() == Some(c)),
            _ => None,
        }
    };
    found.is_some_and(|a| a.get_action().takes_values())
}

/// Where the subcommand is in `argv` and its name: the first argument that is not one
/// of the global options or their values.
fn subcommand(top: &clap::Command, argv: &[std::ffi::OsString]) -> Option<(usize, String)> {
    let mut i = 1;
    while i < argv.len() {
        let a = argv[i].to_string_lossy();
        if a == "--" || !a.starts_with('-') || a == "-" {
            break;
        }
        i += if takes_value(top, &a) { 2 } else { 1 };
    }
    argv.get(i).map(|s| (i, s.to_string_lossy().into_owned()))
}

/// `run IMAGE ARGS…` and `unpack IMAGE DIR ARGS…` take everything after their
/// positional arguments as the program's, as `docker run` does (`nobase run bb:1 ls -l`
/// gives ls `-l`, `nobase run img -e x` gives the program `-e x`): a `--` goes in after
/// them, unless the user put one there, so clap reads none of those as nobase's flags.
/// Which options take a value comes from the clap definitions themselves (`top`).
fn program_args_verbatim(
    top: &clap::Command,
    mut argv: Vec<std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let Some((i, name)) = subcommand(top, &argv) else {
        return argv;
    };
    let positionals = match name.as_str() {
        "run" => 1,
        "unpack" => 2,
        _ => return argv,
    };
    let Some(sub) = top.find_subcommand(&name) else {
        return argv;
    };
    let mut seen = 0;
    let mut j = i + 1;
    while j < argv.len() {
        let a = argv[j].to_string_lossy().into_owned();
        if a == "--" {
            return argv;
        }
        if a.starts_with('-') && a != "-" {
            j += if takes_value(sub, &a) || takes_value(top, &a) {
                2
            } else {
                1
            };
            continue;
        }
        seen += 1;
        j += 1;
        if seen == positionals {
            if argv.get(j).is_some_and(|n| n != "--") {
                argv.insert(j, "--".into());
            }
            break;
        }
    }
    argv
}

/// A non-negative number from the environment, if set.
fn env_number(name: &str) -> nobase::Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Some)
            .map_err(|_| nobase::Error::Usage(format!("{name}={v:?} is not a whole number"))),
        _ => Ok(None),
    }
}

/// Prints an error as one line (`nobase: cause: cause…`) and returns its exit code.
/// A closed stdout (`nobase images | head -1`) is not an error.
fn report(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<io::Error>() {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return 0;
            }
        }
    }
    let _ = writeln!(
        io::stderr(),
        "nobase: {}",
        render::printable(&format!("{err:#}"))
    );
    err.chain()
        .find_map(|c| c.downcast_ref::<nobase::Error>())
        .map(nobase::Error::exit_code)
        .unwrap_or(3)
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_programs_arguments_start_after_the_image() {
        let f = |line: &str| {
            let argv = line.split(' ').map(Into::into).collect();
            super::program_args_verbatim(&Cli::command(), argv)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (given, want) in [
            ("nobase run img -e x", "nobase run img -- -e x"),
            (
                "nobase --store s -v run -e K=V -w /t img a -v",
                "nobase --store s -v run -e K=V -w /t img -- a -v",
            ),
            (
                "nobase run --entrypoint=x -eK=V -qv img --keep",
                "nobase run --entrypoint=x -eK=V -qv img -- --keep",
            ),
            (
                "nobase run --store s --platform linux/arm64 img x",
                "nobase run --store s --platform linux/arm64 img -- x",
            ),
            (
                "nobase unpack -u 0 img dir -e X=1",
                "nobase unpack -u 0 img dir -- -e X=1",
            ),
            // Already there, nothing after the image, or another command: as given.
            ("nobase run img -- -e x", "nobase run img -- -e x"),
            ("nobase run -e K img", "nobase run -e K img"),
            ("nobase unpack img dir", "nobase unpack img dir"),
            (
                "nobase build ./x -t a:1 -e K=V",
                "nobase build ./x -t a:1 -e K=V",
            ),
            ("nobase --store run images", "nobase --store run images"),
        ] {
            assert_eq!(f(given), want, "{given}");
        }
    }

    /// Every command says what it does and shows examples; every flag and argument has a
    /// one-line description. A new flag without a doc comment fails here.
    #[test]
    fn every_command_and_flag_is_described() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            if sub.get_about().is_none() {
                missing.push(format!("{name}: no description"));
            }
            let examples = sub
                .get_after_help()
                .is_some_and(|h| h.to_string().contains("Examples:"));
            if !examples {
                missing.push(format!("{name}: no examples in --help"));
            }
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || arg.is_hide_set() {
                    continue;
                }
                match arg.get_help().map(|h| h.to_string()) {
                    None => missing.push(format!("{name} {id}: no description")),
                    Some(h) if h.trim().is_empty() || h.contains('\n') => {
                        missing.push(format!("{name} {id}: not one line: {h:?}"))
                    }
                    Some(_) => {}
                }
            }
        }
        for arg in cli.get_arguments() {
            if arg.get_id() != "help" && arg.get_id() != "version" && arg.get_help().is_none() {
                missing.push(format!("nobase {}: no description", arg.get_id()));
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
