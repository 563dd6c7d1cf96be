//! The `nobase` binary: parse the command line, run it, map the outcome to an exit code.
//! Everything it does is in the library; `cli` only translates.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
