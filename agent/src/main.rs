//! `calseg-agent`: the node agent's command line. Thin: everything is in the library's
//! [`calseg_agent::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    calseg_agent::cli::main()
}
