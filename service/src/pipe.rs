//! A closed stdout ends the process quietly. Rust ignores SIGPIPE, so `println!` into a pipe
//! whose reader has gone (`calseg-server nodes list | head -1`) panics with "failed printing to
//! stdout: Broken pipe". [`exit_quietly_on_closed_stdout`] installs a panic hook that turns
//! exactly that panic into a silent exit with status 141 (128 + SIGPIPE, what a C tool killed
//! by SIGPIPE reports); every other panic is reported as before.

/// The exit status on a closed stdout: 128 + SIGPIPE (13).
pub const EXIT_CLOSED_PIPE: i32 = 141;

/// Installs the panic hook; call once at the start of `main`.
pub fn exit_quietly_on_closed_stdout() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_closed_stdout(message) {
            std::process::exit(EXIT_CLOSED_PIPE);
        }
        previous(info);
    }));
}

/// Whether a panic message is std's for writing to a stdout whose reader has gone (EPIPE).
pub fn is_closed_stdout(message: &str) -> bool {
    message.starts_with("failed printing to stdout")
        && (message.contains("os error 32") || message.contains("Broken pipe"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_only_a_broken_stdout_pipe() {
        assert!(is_closed_stdout(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
        assert!(!is_closed_stdout(
            "failed printing to stderr: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_stdout("index out of bounds"));
    }
}
