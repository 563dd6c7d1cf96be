//! The command line: clap types, one file per subcommand, and the mapping of outcomes to
//! exit codes. Nothing below this module sees clap.

mod build;
mod docs;
mod fsck;
mod images;
mod inspect;
mod render;
mod run;
mod unpack;

use clap::{Parser, Subcommand};
use std::io::{self, Write};
use std::path::PathBuf;

const WALK: &str = "\
The walk:
  nobase inspect ./hello              what is it? static or dynamic, loader, libraries
  nobase build ./hello -t hello:1     a scratch image in the local store
  nobase run hello:1                  start it with runc (the program's exit code is nobase's)
  nobase images                       what the store holds
  nobase rmi hello:1                  remove a tag

Images are named NAME[:TAG] (the local store), oci:DIR[:REF], oci-archive:FILE[:REF],
docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO[:TAG].";

/// Turn Linux executables into OCI images with no base operating system.
#[derive(Parser, Debug)]
#[command(name = "nobase", version, about, after_help = WALK)]
struct Cli {
    /// The local store directory [default: $NOBASE_STORE, else ~/.local/share/nobase/store]
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Explain more on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Say what an executable is and needs, without running it (like file + ldd).
    Inspect(inspect::Args),
    /// Build a scratch image from a static executable.
    Build(Box<build::Args>),
    /// List the images in the local store.
    Images(images::ListArgs),
    /// Remove tags from the local store and delete blobs nothing uses any more.
    Rmi(images::RmiArgs),
    /// Start an image with the system's OCI runtime (runc or crun); exits with the program's code.
    Run(Box<run::Args>),
    /// Write an image as an OCI runtime bundle (config.json + rootfs) for runc or crun.
    Unpack(Box<unpack::Args>),
    /// Verify every blob of the store (or a layout) and repair what an interrupted write left.
    Fsck(fsck::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionArgs),
    /// Print the man page, or write all of them into a directory.
    Man(docs::ManArgs),
}

/// Settings every command shares.
pub(crate) struct Global {
    store: Option<PathBuf>,
    pub quiet: bool,
    #[allow(dead_code)]
    pub verbose: u8,
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

    /// Prints a diagnostic line on stderr unless `-q`.
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}

/// Runs nobase with the process's arguments and returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let global = Global {
        store: cli.store,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let Some(command) = cli.command else {
        let _ = writeln!(
            io::stdout(),
            "nobase {}: turn Linux executables into OCI images with no base operating system\n\n{WALK}\n\nRun `nobase help` for every command.",
            env!("CARGO_PKG_VERSION"),
        );
        return 0;
    };
    let result = match command {
        Command::Inspect(a) => inspect::run(&global, a),
        Command::Build(a) => build::run(&global, *a),
        Command::Images(a) => images::list(&global, a),
        Command::Rmi(a) => images::rmi(&global, a),
        Command::Run(a) => run::run(&global, *a),
        Command::Unpack(a) => unpack::run(&global, *a),
        Command::Fsck(a) => fsck::run(&global, a),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => report(&err),
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
    let _ = writeln!(io::stderr(), "nobase: {err:#}");
    err.chain()
        .find_map(|c| c.downcast_ref::<nobase::Error>())
        .map(nobase::Error::exit_code)
        .unwrap_or(3)
}
