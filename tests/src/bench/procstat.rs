//! CPU time and peak memory of processes: of a running one from /proc, and of a finished one
//! by running it under a small wrapper (this same benchmark executable, re-executed) whose
//! `getrusage(RUSAGE_CHILDREN)` after `wait` counts exactly that child and what it waited for.

use anyhow::{Context, Result, bail};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The first argument that makes a benchmark executable act as the rusage wrapper:
/// `EXE __calseg_bench_rusage OUT_FILE PROGRAM ARGS…`.
pub const RUSAGE_MODE: &str = "__calseg_bench_rusage";

/// What one finished process cost.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Usage {
    /// User CPU seconds.
    pub user: f64,
    /// System CPU seconds.
    pub sys: f64,
    /// Peak resident set size (ru_maxrss), KiB.
    pub maxrss_kib: u64,
    /// Wall-clock seconds, spawn to exit.
    pub wall: f64,
}

impl Usage {
    /// User + system CPU seconds.
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }

    /// Peak RSS in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.maxrss_kib as f64 / 1024.0
    }
}

/// The wrapper's `main`: when the arguments ask for rusage mode, runs the program, writes its
/// [`Usage`] as JSON to OUT_FILE and returns its exit code; `None` otherwise.
pub fn rusage_wrapper_main() -> Option<i32> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(RUSAGE_MODE) {
        return None;
    }
    Some(match run_wrapped(&args[2..]) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rusage wrapper: {e:#}");
            125
        }
    })
}

fn run_wrapped(args: &[String]) -> Result<i32> {
    let [out, program, rest @ ..] = args else {
        bail!("usage: {RUSAGE_MODE} OUT_FILE PROGRAM ARGS…");
    };
    let started = Instant::now();
    let status = std::process::Command::new(program)
        .args(rest)
        .status()
        .with_context(|| format!("run {program}"))?;
    let wall = started.elapsed().as_secs_f64();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let usage = Usage {
        user: seconds(usage.user_time()),
        sys: seconds(usage.system_time()),
        maxrss_kib: u64::try_from(usage.max_rss()).unwrap_or(0),
        wall,
    };
    std::fs::write(out, serde_json::to_vec(&usage)?)?;
    Ok(status.code().unwrap_or(-1))
}

/// The command line (for `sh -c`) that runs `command` under the wrapper, writing to `out`.
pub fn wrapped_command(out: &str, command: &str) -> Result<String> {
    let exe = std::env::current_exe().context("the benchmark's own executable")?;
    Ok(format!("{} {RUSAGE_MODE} {out} {command}", exe.display()))
}

/// Reads what the wrapper wrote.
pub fn read_usage(file: &Path) -> Result<Usage> {
    let text = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    Ok(serde_json::from_slice(&text)?)
}

/// Utime + stime of running process `pid`, in seconds.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
    let rest = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..))
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<f64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<f64>()?)
    };
    // /proc counts in USER_HZ, 100 on Linux.
    Ok((field(11)? + field(12)?) / 100.0)
}

/// VmHWM (peak resident memory) of running process `pid`, in MiB.
pub fn peak_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .context("no VmHWM in /proc status")
}

/// File descriptors kept for etcd, the server's own files and this process's other needs.
const SPARE_FDS: u64 = 1024;

/// Raises RLIMIT_NOFILE so `wanted` simulated agents fit (one socket each here and one in the
/// server, which inherits the limit); returns how many fit the limit it got.
pub fn raise_nofile(wanted: usize) -> usize {
    let need = wanted as u64 + SPARE_FDS;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return wanted;
    };
    let target = need.max(soft);
    let got = match setrlimit(Resource::RLIMIT_NOFILE, target, target.max(hard)) {
        Ok(()) => target,
        Err(e) => {
            println!("cannot raise RLIMIT_NOFILE to {target} ({e}); trying the hard limit {hard}");
            match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => hard,
                Err(_) => soft,
            }
        }
    };
    let fits = usize::try_from(got.saturating_sub(SPARE_FDS)).unwrap_or(usize::MAX);
    if fits < wanted {
        println!("RLIMIT_NOFILE is {got}: running {fits} agents instead of {wanted}");
    }
    fits.min(wanted)
}
