//! The `samgate` binary: parse the command line and dispatch.

use std::process::ExitCode;

fn main() -> ExitCode {
    samgate::cli::main()
}
