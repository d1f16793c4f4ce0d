//! `calseg-server`: the control plane's command line. Thin: `calseg_server::cli` parses the
//! arguments and runs the command.

fn main() -> std::process::ExitCode {
    calseg_server::cli::main()
}
