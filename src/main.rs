//! The `koor` binary: `koor serve` runs the server; every other command is a client.

use std::process::ExitCode;

fn main() -> ExitCode {
    koor::cli::main()
}
