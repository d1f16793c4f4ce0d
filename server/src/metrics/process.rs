//! The standard `process_*` metrics, named as Prometheus' Go and Python clients name them,
//! read from `/proc/self` at each scrape (`prometheus-client` has no process collector). A
//! file that cannot be read leaves its metrics out rather than failing the scrape.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second in `/proc/*/stat` (the kernel's USER_HZ, 100 on every Linux
/// architecture calseg builds for; Prometheus' procfs library assumes the same).
const USER_HZ: f64 = 100.0;

/// What `/proc/self/stat` (and `/proc/stat`'s boot time) say of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Unix time the process started, in seconds.
    pub start_time: f64,
    pub virtual_bytes: u64,
}

/// Reads `stat` (the text of `/proc/self/stat`) with the boot time `btime` (unix seconds).
pub fn parse_stat(stat: &str, btime: u64) -> Option<Stat> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Field n of proc(5) is fields[n - 3]: utime 14, stime 15, starttime 22, vsize 23.
    let number = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_seconds: (number(14)? + number(15)?) as f64 / USER_HZ,
        start_time: btime as f64 + number(22)? as f64 / USER_HZ,
        virtual_bytes: number(23)?,
    })
}

/// `btime` of `/proc/stat`.
pub fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub fn parse_rss(status: &str) -> Option<u64> {
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    Some(kib.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()? * 1024)
}

/// The soft `Max open files` of `/proc/self/limits` (`None` when unlimited).
pub fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Registers the process metrics, read now.
pub fn register(registry: &mut Registry) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let btime = read("/proc/stat").as_deref().and_then(parse_btime);
    let stat = read("/proc/self/stat")
        .zip(btime)
        .and_then(|(stat, btime)| parse_stat(&stat, btime));
    if let Some(stat) = stat {
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            ConstCounter::new(stat.cpu_seconds),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            ConstGauge::new(stat.start_time),
        );
        registry.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            ConstGauge::new(stat.virtual_bytes as f64),
        );
    }
    if let Some(rss) = read("/proc/self/status").as_deref().and_then(parse_rss) {
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            ConstGauge::new(rss as f64),
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        registry.register(
            "process_open_fds",
            "Number of open file descriptors",
            ConstGauge::new(fds.count() as f64),
        );
    }
    if let Some(max) = read("/proc/self/limits").as_deref().and_then(parse_max_fds) {
        registry.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            ConstGauge::new(max as f64),
        );
    }
}
