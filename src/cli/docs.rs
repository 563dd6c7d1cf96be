//! `nobase completions SHELL` and `nobase man [DIR]`: shell completion scripts and man
//! pages generated from the same clap definitions as `--help`, so they never disagree.

use super::Cli;
use anyhow::Result;
use clap::CommandFactory;
use std::io::{self, Write};
use std::path::PathBuf;

/// Arguments of `nobase completions`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  nobase completions bash > /etc/bash_completion.d/nobase\n  nobase completions zsh > \"${fpath[1]}/_nobase\"\n  nobase completions fish > ~/.config/fish/completions/nobase.fish"
)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Arguments of `nobase man`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  nobase man | man -l -\n  nobase man /usr/local/share/man/man1"
)]
pub struct ManArgs {
    /// Write nobase.1 and one page per command (nobase-build.1…) into DIR instead of
    /// printing nobase.1 on stdout.
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Prints a completion script.
pub fn completions(a: CompletionArgs) -> Result<i32> {
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "nobase", &mut script);
    io::stdout().write_all(&script)?;
    Ok(0)
}

/// Prints or writes man pages.
pub fn man(a: ManArgs) -> Result<i32> {
    // Without clap's `help` subcommand: the pages would list a nobase-help(1) that
    // none of them is (`nobase help COMMAND` still works; `--help` is every page's).
    let cmd = Cli::command().disable_help_subcommand(true);
    match a.dir {
        None => clap_mangen::Man::new(cmd).render(&mut io::stdout())?,
        Some(dir) => {
            let fail = |e: std::io::Error| {
                anyhow::anyhow!(
                    "cannot write man pages into {}: {e}; give a directory you can write to",
                    dir.display()
                )
            };
            std::fs::create_dir_all(&dir).map_err(fail)?;
            clap_mangen::generate_to(cmd, &dir).map_err(fail)?;
        }
    }
    Ok(0)
}
