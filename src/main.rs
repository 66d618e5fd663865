//! The `koor` binary: `koor serve` runs the server; every other command is a client.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the server allocates many small, short-lived
/// buffers per request (headers, JSON, SQL arguments), which glibc's malloc serves slower
/// (measured in docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    koor::cli::main()
}
