//! The `samgate` binary: parse the command line and dispatch.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the proxy path allocates per request, and glibc's allocator
/// cost ~20 % of samgate's CPU under load in the benchmark profile (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    samgate::cli::main()
}
